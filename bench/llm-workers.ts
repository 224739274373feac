/**
 * The two other programs of `npm run bench:llm`, each in its own worker thread so that neither
 * shares Troupe's event loop: the scripted OpenAI-compatible provider (`provider`) and the chat
 * clients (`clients`: one SSE stream per chat, posts, the clock).
 *
 * Times cross threads as epoch milliseconds (`performance.timeOrigin + performance.now()`); the
 * headline figure only subtracts times taken in the same thread.
 */
import * as NodeWorker from "node:worker_threads"
import { sseFrames } from "../gateway/testing/sse-frames.ts"
import * as Scripted from "../skills/ai/testing/ScriptedServer.ts"

const epoch = () => performance.timeOrigin + performance.now()

export interface ProviderInput {
  readonly role: "provider"
  /** Tokens before the tool call (first request) and after it (second request). */
  readonly tokensBefore: number
  readonly tokensAfter: number
  /** One token every this many ms. */
  readonly tokenMs: number
}

/** The first model request of a turn as the provider saw it (epoch ms). */
export interface ProviderRecord {
  readonly tag: string
  readonly receivedAt: number
  readonly firstTokenAt: number
}

export interface ClientsInput {
  readonly role: "clients"
  readonly url: string
  readonly token: string
  readonly chats: ReadonlyArray<string>
  /** Each chat's owner's token, when the chats belong to several users (`BENCH_USERS`). */
  readonly tokens?: ReadonlyArray<string>
  readonly rounds: number
  /** Posts of one round are spread evenly over this many ms. */
  readonly spreadMs: number
}

/** One turn as its client saw it (epoch ms). */
export interface ClientRecord {
  readonly tag: string
  readonly round: number
  readonly postedAt: number
  readonly firstDeltaAt: number
  readonly doneAt: number
  readonly event: string
  /** Tokens received as delta text. */
  readonly deltas: number
  /** Events of the turn on the chat's stream (about one journal write each: deltas arrive merged). */
  readonly events: number
  readonly skillOk: boolean
}

const provider = async (input: ProviderInput) => {
  const records: Array<ProviderRecord> = []
  const server = await Scripted.start({
    responder: (r) => {
      const messages = r.body.messages as Array<{ role: string; content: unknown }>
      const token = (i: number): Scripted.ScriptChunk => ({ content: `t${i} `, delayMs: input.tokenMs })
      if (messages.at(-1)?.role === "tool") return { chunks: Array.from({ length: input.tokensAfter }, (_, i) => token(input.tokensBefore + i)) }
      const tag = String(messages.at(-1)?.content ?? "").split(":")[0]!
      // recorded once the first token has left (the server sets firstTokenAt when it writes it)
      const watch = setInterval(() => {
        if (r.firstTokenAt !== undefined || r.aborted) {
          clearInterval(watch)
          if (r.firstTokenAt !== undefined) records.push({ tag, receivedAt: performance.timeOrigin + r.receivedAt, firstTokenAt: performance.timeOrigin + r.firstTokenAt })
        }
      }, 5)
      const call = Scripted.toolCalls([{ name: "math__calculate", arguments: { expression: "6 * 7" } }], { split: 6 })
      return { chunks: [...Array.from({ length: input.tokensBefore }, (_, i) => token(i)), ...call.chunks!], finishReason: "tool_calls" }
    }
  })
  const port = NodeWorker.parentPort!
  port.postMessage({ baseUrl: server.baseUrl })
  port.on("message", (m: { readonly collect?: boolean }) => {
    if (m.collect) port.postMessage({ records: records.splice(0, records.length) })
  })
}

const clients = async ({ url, token: oneToken, chats, tokens, rounds, spreadMs }: ClientsInput) => {
  const tokenOf = (chatId: string) => tokens?.[chats.indexOf(chatId)] ?? oneToken
  const port = NodeWorker.parentPort!
  interface Pending {
    tag: string
    round: number
    postedAt: number
    firstDeltaAt: number
    deltas: number
    events: number
    skillOk: boolean
    done: (event: string) => void
  }
  const pending = new Map<string, Pending>()
  const streams = await Promise.all(chats.map(async (chatId) => {
    const controller = new AbortController()
    const res = await fetch(`${url}/v1/chats/${chatId}/events`, { headers: { authorization: `Bearer ${tokenOf(chatId)}` }, signal: controller.signal })
    if (res.status !== 200) throw new Error(`events: ${res.status}`)
    void (async () => {
      try {
        for await (const frames of sseFrames(res.body!)) {
          for (const { fields } of frames) {
            const p = pending.get(chatId)
            if (!p || fields.event === undefined) continue
            p.events++
            if (fields.event === "delta") {
              if (p.deltas === 0) p.firstDeltaAt = epoch()
              // deltas arrive merged (the journal writes at most one per delta window): count the tokens
              p.deltas += (JSON.parse(fields.data ?? "{}").text ?? "").split(" ").filter((w: string) => w.length > 0).length
            } else if (fields.event === "skill_result") {
              p.skillOk = JSON.parse(fields.data ?? "{}").ok === true
            } else if (fields.event === "done" || fields.event === "error" || fields.event === "cancelled") {
              p.done(fields.event)
            }
          }
        }
      } catch {
        // closed at the end
      }
    })()
    return controller
  }))
  const out: Array<ClientRecord> = []
  for (let round = 0; round < rounds; round++) {
    port.postMessage({ mark: `round-start`, round })
    const origin = performance.now()
    await Promise.all(chats.map(async (chatId, i) => {
      const wait = origin + (i * spreadMs) / chats.length - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      const tag = `r${round}c${i}`
      const finished = new Promise<string>((resolve) => {
        pending.set(chatId, { tag, round, postedAt: epoch(), firstDeltaAt: 0, deltas: 0, events: 0, skillOk: false, done: resolve })
      })
      const res = await fetch(`${url}/v1/chats/${chatId}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${tokenOf(chatId)}`, "content-type": "application/json" },
        body: JSON.stringify({ client_message_id: tag, text: `${tag}: tell me a long story and compute 6 * 7` })
      })
      if (res.status !== 202) throw new Error(`post: ${res.status} ${await res.text()}`)
      await res.arrayBuffer()
      const event = await finished
      const p = pending.get(chatId)!
      pending.delete(chatId)
      out.push({ tag, round, postedAt: p.postedAt, firstDeltaAt: p.firstDeltaAt, doneAt: epoch(), event, deltas: p.deltas, events: p.events, skillOk: p.skillOk })
    }))
    port.postMessage({ mark: `round-end`, round })
  }
  for (const s of streams) s.abort()
  port.postMessage({ records: out })
}

/** Start a worker of this file with `input`; messages go to `onMessage`. */
export const startWorker = <M>(input: ProviderInput | ClientsInput, onMessage: (message: M) => void) => {
  // the worker loads this file through tsx's API (loader flags do not reach workers on Node 20)
  const boot = `import("tsx/esm/api").then((tsx) => tsx.tsImport(${JSON.stringify(import.meta.url)}, ${JSON.stringify(import.meta.url)}))`
  const worker = new NodeWorker.Worker(boot, { eval: true, workerData: input })
  worker.on("message", (message: unknown) => onMessage(message as M))
  return worker
}

if (!NodeWorker.isMainThread && NodeWorker.parentPort) {
  const input = NodeWorker.workerData as ProviderInput | ClientsInput
  // a failure is an unhandled rejection: the worker dies and the bench fails with it
  void (input.role === "provider" ? provider(input) : clients(input))
}
