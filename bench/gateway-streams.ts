/**
 * The streaming half of `npm run bench:gateway`, run in a worker thread so that the client (50 SSE
 * parsers, the posts, the clock) does not share the server's event loop: a real client is another
 * program. Given open chats and a token, it measures `POST …/messages` → first new SSE event on
 * that chat's stream, in rounds, and posts the samples back.
 */
import * as NodePerf from "node:perf_hooks"
import * as NodeWorker from "node:worker_threads"
import { sseFrames } from "../gateway/testing/sse-frames.ts"

export interface StreamsInput {
  readonly url: string
  readonly token: string
  readonly chats: ReadonlyArray<string>
  readonly rounds: number
  /** Posts per second in the paced rounds (one round: every chat posts once). */
  readonly rate: number
}

/** A sample: latency, and where it came from (round, the post's index, its planned offset). */
export type Sample = readonly [ms: number, tag: string]

export interface StreamsOutput {
  readonly warmup: ReadonlyArray<Sample>
  readonly paced: ReadonlyArray<Sample>
  readonly pacedAcks: ReadonlyArray<number>
  readonly slow: ReadonlyArray<Sample>
  readonly burst: ReadonlyArray<Sample>
  readonly burstAcks: ReadonlyArray<number>
  readonly single: ReadonlyArray<number>
  /** The client's own event-loop delay during the paced rounds (ms): a stall here inflates the samples. */
  readonly clientLoopDelay: { readonly p99: number; readonly max: number }
}

interface Json {
  readonly status: number
  readonly body: { readonly chat?: { readonly last_seq: number } } & Record<string, unknown>
}

const call = async (url: string, token: string, method: string, body?: unknown): Promise<Json> => {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000)
  })
  return { status: res.status, body: (await res.json()) as Json["body"] }
}

/** An open SSE stream that reports each event's arrival. */
const openStream = async (url: string, token: string, onEvent: (event: string, seq: number) => void) => {
  const controller = new AbortController()
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal })
  if (res.status !== 200) throw new Error(`events: ${res.status}`)
  const pump = (async () => {
    try {
      for await (const frames of sseFrames(res.body!)) {
        for (const { fields } of frames) {
          if (fields.id !== undefined && fields.event !== undefined) onEvent(fields.event, Number(fields.id))
        }
      }
    } catch {
      // aborted
    }
  })()
  return { close: () => controller.abort(), pump }
}

const run = async ({ url, token, chats, rounds, rate }: StreamsInput): Promise<StreamsOutput> => {
  const sentAt = new Map<string, { readonly at: number; readonly tag: string }>()
  const firstAfter = new Map<string, number>()
  const samples: Array<Sample> = []
  const acks: Array<number> = []
  const done = new Map<string, () => void>()
  const open = await Promise.all(chats.map((chatId) =>
    openStream(`${url}/v1/chats/${chatId}/events`, token, (event, seq) => {
      seen.set(chatId, Math.max(seq, seen.get(chatId) ?? 0))
      const sent = sentAt.get(chatId)
      if (sent !== undefined && seq > (firstAfter.get(chatId) ?? -1)) {
        samples.push([performance.now() - sent.at, sent.tag])
        sentAt.delete(chatId)
      }
      if (event === "done" || event === "error" || event === "cancelled") done.get(chatId)?.()
    })
  ))
  /** The last seq each chat's stream delivered (a round starts after the previous one's turns are done). */
  const seen = new Map<string, number>()
  const lastSeq = async (chatId: string) => {
    const known = seen.get(chatId)
    if (known !== undefined) return void firstAfter.set(chatId, known)
    const summary = await call(`${url}/v1/chats/${chatId}?limit=1`, token, "GET")
    firstAfter.set(chatId, summary.body.chat!.last_seq)
  }
  const post = async (chatId: string, tag: string, clientMessageId: string) => {
    const start = performance.now()
    sentAt.set(chatId, { at: start, tag })
    const posted = await call(`${url}/v1/chats/${chatId}/messages`, token, "POST", { client_message_id: clientMessageId, text: `${clientMessageId}: hello` })
    acks.push(performance.now() - start)
    if (posted.status !== 202) throw new Error(`post: ${posted.status} ${JSON.stringify(posted.body)}`)
  }
  /**
   * One round: every chat posts once, `spacingMs` apart (0: all at once), until every turn is done.
   * Each chat's last seq is known first (from its stream, or read once before the first round), so
   * that no reads run among the posts; the posts then go out on a fixed schedule from one start instant.
   */
  const round = async (label: string, spacingMs: number) => {
    const finished = Promise.all(chats.map((chatId) => new Promise<void>((resolve) => done.set(chatId, resolve))))
    await Promise.all(chats.map(lastSeq))
    const origin = performance.now()
    await Promise.all(chats.map(async (chatId, i) => {
      const wait = origin + i * spacingMs - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      await post(chatId, `${label}#${i}@${Math.round(performance.now() - origin)}ms`, label)
    }))
    await finished
    return samples.splice(0, samples.length)
  }
  // a first round warms the server's code paths up (JIT) and is reported on its own
  const warmup = await round("warmup", 1000 / rate)
  acks.splice(0, acks.length)
  const paced: Array<Sample> = []
  const delay = NodePerf.monitorEventLoopDelay({ resolution: 5 })
  delay.enable()
  NodeWorker.parentPort?.postMessage({ mark: "paced" })
  for (let r = 0; r < rounds; r++) paced.push(...(await round(`paced${r}`, 1000 / rate)))
  const pacedAcks = acks.splice(0, acks.length)
  NodeWorker.parentPort?.postMessage({ mark: "paced-end" })
  delay.disable()
  const clientLoopDelay = { p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 }
  const slow: Array<Sample> = []
  for (let r = 0; r < 2; r++) slow.push(...(await round(`slow${r}`, 100)))
  acks.splice(0, acks.length)
  const burst: Array<Sample> = []
  for (let r = 0; r < Math.max(1, Math.floor(rounds / 2)); r++) burst.push(...(await round(`burst${r}`, 0)))
  const burstAcks = acks.splice(0, acks.length)
  // one stream and one post at a time: the floor under the 50-stream figure
  const single: Array<number> = []
  const lone = chats[0]!
  for (let i = 0; i < 10; i++) {
    const finished = new Promise<void>((resolve) => done.set(lone, resolve))
    await lastSeq(lone)
    await post(lone, `single#${i}`, `single${i}`)
    await finished
    single.push(samples.splice(0, samples.length)[0]![0])
  }
  for (const s of open) s.close()
  return { warmup, paced, pacedAcks, slow, burst, burstAcks, single, clientLoopDelay }
}

/**
 * Run the streaming half in a worker thread; `onMark` hears when the paced phase starts
 * (`paced`) and ends (`paced-end`), at once, so that the caller can measure the server meanwhile.
 */
export const runInWorker = (input: StreamsInput, onMark: (mark: string) => void = () => {}) =>
  new Promise<StreamsOutput>((resolve, reject) => {
    // the worker loads this file through tsx's API (loader flags do not reach workers on Node 20)
    const boot = `import("tsx/esm/api").then((tsx) => tsx.tsImport(${JSON.stringify(import.meta.url)}, ${JSON.stringify(import.meta.url)}))`
    const worker = new NodeWorker.Worker(boot, { eval: true, workerData: input })
    worker.on("message", (message: StreamsOutput | { readonly mark: string }) => {
      if ("mark" in message) return onMark(message.mark)
      resolve(message)
      void worker.terminate()
    })
    worker.once("error", reject)
    worker.once("exit", (code) => (code === 0 ? undefined : reject(new Error(`stream worker exited with ${code}`))))
  })

if (!NodeWorker.isMainThread && NodeWorker.parentPort) {
  const port = NodeWorker.parentPort
  // a failure is an unhandled rejection: the worker dies and `runInWorker` rejects with it
  void run(NodeWorker.workerData as StreamsInput).then((output) => port.postMessage(output))
}
