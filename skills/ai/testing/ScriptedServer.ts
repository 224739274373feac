/**
 * A scripted OpenAI-compatible server for tests and benchmarks: real HTTP on 127.0.0.1, real SSE
 * chunks in OpenAI's `chat.completion.chunk` format, `tool_calls` deltas split across chunks,
 * `usage`, error statuses with OpenAI's error body, and servers that stall before the first token
 * or in the middle of a stream. Every request is recorded (body, headers, when it arrived, when
 * its first token left, whether the client went away), so a test can assert what the provider saw.
 *
 * Answers come from a `Responder` (a function of the request) or from a queue of scripts
 * (`enqueue`); without either the server says `"Hello!"`. Also serves `GET /v1/models` and
 * Ollama's `GET /api/tags` from `models`.
 */
import * as NodeHttp from "node:http"
import type * as NodeNet from "node:net"

/** One SSE chunk of a scripted answer. */
export interface ScriptChunk {
  /** Text to stream as `delta.content`. */
  readonly content?: string
  /** Tool call fragments (`index` required; `id` and `name` in a call's first fragment). */
  readonly toolCalls?: ReadonlyArray<{ readonly index: number; readonly id?: string; readonly name?: string; readonly arguments?: string }>
  /** Wait this long before sending the chunk (after the previous one). */
  readonly delayMs?: number
  /** Stop here and never send anything else (the connection stays open until the client leaves). */
  readonly stall?: boolean
  /** Send `data: {"error": …}` here and end the stream (as some servers do when generation fails). */
  readonly error?: string
}

/** What the server answers to one request. */
export interface Script {
  /** An error status (429, 500 …): answered with OpenAI's error body instead of a completion. */
  readonly status?: number
  readonly error?: { readonly message?: string; readonly type?: string; readonly code?: string }
  /** `Retry-After` header for an error answer, seconds. */
  readonly retryAfter?: number
  /** Wait before the first chunk (or the error, or the non-streaming body). */
  readonly firstTokenDelayMs?: number
  /** Never answer at all (headers included): a server that stalls before the first token. */
  readonly stallBeforeFirstToken?: boolean
  readonly chunks?: ReadonlyArray<ScriptChunk>
  /** Default: `tool_calls` when the chunks carry tool calls, else `stop`. */
  readonly finishReason?: "stop" | "length" | "tool_calls" | "content_filter"
  /**
   * Usage to report: numbers, `"none"` (no usage at all), or by default counted the scripted way
   * (`prompt_tokens` = whitespace-separated words of the request's messages, `completion_tokens` =
   * number of content chunks + tool-call chunks), sent only if the client asks for it when streaming.
   */
  readonly usage?: { readonly prompt_tokens: number; readonly completion_tokens: number } | "none"
  /** Send `[DONE]` at the end (default true). */
  readonly done?: boolean
}

/** A request as the server saw it. */
export interface RecordedRequest {
  readonly index: number
  readonly method: string
  readonly path: string
  readonly headers: NodeHttp.IncomingHttpHeaders
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any
  /** `performance.now()` when the request's body had arrived. */
  readonly receivedAt: number
  /** `performance.now()` when the first chunk (or the body) was written; undefined if never. */
  firstTokenAt: number | undefined
  /** `performance.now()` when the answer ended. */
  endedAt: number | undefined
  /** The client closed the connection before the answer was complete. */
  aborted: boolean
  /** Chunks written (content and tool-call chunks). */
  chunksSent: number
}

/** Chooses the script of a request. */
export type Responder = (request: RecordedRequest) => Script | Promise<Script>

/** A running scripted server. */
export interface ScriptedServer {
  /** `http://127.0.0.1:<port>/v1`: the `base_url` to configure. */
  readonly baseUrl: string
  readonly port: number
  readonly requests: Array<RecordedRequest>
  /** Answer the next chat completion requests with these scripts, in order (before the responder). */
  readonly enqueue: (...scripts: ReadonlyArray<Script>) => void
  /** Answer with this function from now on (when the queue is empty). */
  readonly respond: (responder: Responder) => void
  /** Resolves when `count` chat completion requests have arrived. */
  readonly waitForRequests: (count: number, timeoutMs?: number) => Promise<void>
  readonly close: () => Promise<void>
}

/** A streamed text answer: one chunk per word (spaces kept), `delayMs` apart. */
export const text = (answer: string, options: { readonly delayMs?: number; readonly firstTokenDelayMs?: number } = {}): Script => ({
  chunks: (answer.match(/\S+\s*|\s+/g) ?? []).map((content) => ({ content, ...(options.delayMs ? { delayMs: options.delayMs } : {}) })),
  ...(options.firstTokenDelayMs ? { firstTokenDelayMs: options.firstTokenDelayMs } : {})
})

/**
 * Tool calls, each call's arguments split into fragments of `split` characters across chunks
 * (calls interleaved as real providers do not, but clients must handle: each fragment names its index).
 */
export const toolCalls = (
  calls: ReadonlyArray<{ readonly id?: string; readonly name: string; readonly arguments: unknown }>,
  options: { readonly split?: number; readonly delayMs?: number; readonly before?: string } = {}
): Script => {
  const split = options.split ?? 7
  const chunks: Array<ScriptChunk> = []
  if (options.before) chunks.push({ content: options.before })
  calls.forEach((call, index) => {
    const args = typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments)
    const id = call.id ?? `call_${index}_${Math.random().toString(36).slice(2, 10)}`
    chunks.push({ toolCalls: [{ index, id, name: call.name, arguments: "" }], ...(options.delayMs ? { delayMs: options.delayMs } : {}) })
    for (let at = 0; at < args.length; at += split) {
      chunks.push({ toolCalls: [{ index, arguments: args.slice(at, at + split) }], ...(options.delayMs ? { delayMs: options.delayMs } : {}) })
    }
  })
  return { chunks, finishReason: "tool_calls" }
}

/** The scripted usage count: whitespace-separated words of every message's text content. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const promptWords = (body: any): number => {
  let n = 0
  for (const m of Array.isArray(body?.messages) ? body.messages : []) {
    const content = typeof m.content === "string"
      ? m.content
      : Array.isArray(m.content)
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      ? m.content.map((p: any) => (typeof p?.text === "string" ? p.text : "")).join(" ")
      : ""
    n += content.split(/\s+/).filter((w: string) => w.length > 0).length
  }
  return n
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Start a scripted server on a free port of 127.0.0.1. */
export const start = async (options: {
  readonly responder?: Responder
  /** Model ids for `GET /v1/models` and `GET /api/tags`. */
  readonly models?: ReadonlyArray<string>
  /** Require this bearer token (401 otherwise). */
  readonly apiKey?: string
  readonly port?: number
} = {}): Promise<ScriptedServer> => {
  const requests: Array<RecordedRequest> = []
  const queue: Array<Script> = []
  let responder: Responder = options.responder ?? (() => text("Hello!"))
  const waiters: Array<{ readonly count: number; readonly resolve: () => void }> = []
  const sockets = new Set<NodeNet.Socket>()
  const completions = () => requests.filter((r) => r.path.endsWith("/chat/completions")).length

  const server = NodeHttp.createServer((req, res) => {
    const parts: Array<Buffer> = []
    req.on("data", (c: Buffer) => parts.push(c))
    req.on("end", () => {
      void handle(req, res, Buffer.concat(parts).toString("utf8")).catch(() => res.destroy())
    })
  })
  server.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })

  const json = (res: NodeHttp.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers })
    res.end(JSON.stringify(body))
  }

  const handle = async (req: NodeHttp.IncomingMessage, res: NodeHttp.ServerResponse, raw: string) => {
    const path = (req.url ?? "/").split("?")[0]!
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return json(res, 401, { error: { message: "Incorrect API key provided", type: "invalid_request_error", code: "invalid_api_key" } })
    }
    if (req.method === "GET" && path.endsWith("/models")) {
      return json(res, 200, { object: "list", data: (options.models ?? ["scripted"]).map((id) => ({ id, object: "model", created: 0, owned_by: "scripted" })) })
    }
    if (req.method === "GET" && path === "/api/tags") {
      return json(res, 200, { models: (options.models ?? ["scripted"]).map((name) => ({ name, model: name })) })
    }
    if (req.method !== "POST" || !path.endsWith("/chat/completions")) {
      return json(res, 404, { error: { message: `no route ${req.method} ${path}`, type: "invalid_request_error" } })
    }
    let body: unknown
    try {
      body = JSON.parse(raw)
    } catch {
      return json(res, 400, { error: { message: "body is not JSON", type: "invalid_request_error" } })
    }
    const record: RecordedRequest = {
      index: requests.length,
      method: req.method,
      path,
      headers: req.headers,
      body,
      receivedAt: performance.now(),
      firstTokenAt: undefined,
      endedAt: undefined,
      aborted: false,
      chunksSent: 0
    }
    requests.push(record)
    const n = completions()
    for (const w of waiters.filter((w) => n >= w.count)) {
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve()
    }
    let closed = false
    res.on("close", () => {
      closed = true
      if (record.endedAt === undefined) record.aborted = true
    })
    const script = queue.shift() ?? (await responder(record))
    if (script.stallBeforeFirstToken) return // never answers; the client gives up
    if (script.firstTokenDelayMs) await sleep(script.firstTokenDelayMs)
    if (closed) return
    if (script.status !== undefined && script.status >= 400) {
      record.firstTokenAt = performance.now()
      record.endedAt = record.firstTokenAt
      return json(
        res,
        script.status,
        { error: { message: script.error?.message ?? `scripted ${script.status}`, type: script.error?.type ?? "server_error", code: script.error?.code ?? null, param: null } },
        script.retryAfter !== undefined ? { "retry-after": String(script.retryAfter) } : {}
      )
    }
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const request = body as any
    const model = typeof request?.model === "string" ? request.model : "scripted"
    const id = `chatcmpl-${record.index}`
    const created = Math.floor(Date.now() / 1000)
    const chunks = script.chunks ?? []
    const hasTools = chunks.some((c) => c.toolCalls && c.toolCalls.length > 0)
    const finishReason = script.finishReason ?? (hasTools ? "tool_calls" : "stop")
    const usageOf = (sent: number) =>
      script.usage === "none"
        ? undefined
        : script.usage ?? { prompt_tokens: promptWords(request), completion_tokens: sent, total_tokens: promptWords(request) + sent }

    if (request?.stream !== true) {
      let content = ""
      const calls = new Map<number, { id: string; type: "function"; function: { name: string; arguments: string } }>()
      for (const c of chunks) {
        if (c.stall) return
        if (c.content) content += c.content
        for (const t of c.toolCalls ?? []) {
          const call = calls.get(t.index) ?? { id: t.id ?? `call_${t.index}`, type: "function" as const, function: { name: "", arguments: "" } }
          if (t.name) call.function.name = t.name
          if (t.arguments) call.function.arguments += t.arguments
          calls.set(t.index, call)
        }
      }
      record.firstTokenAt = performance.now()
      record.chunksSent = chunks.length
      const usage = usageOf(chunks.filter((c) => c.content || c.toolCalls).length)
      record.endedAt = performance.now()
      return json(res, 200, {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [{
          index: 0,
          message: { role: "assistant", content: content.length > 0 ? content : null, ...(calls.size > 0 ? { tool_calls: [...calls.values()] } : {}) },
          finish_reason: finishReason,
          logprobs: null
        }],
        ...(usage ? { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } } : {})
      })
    }

    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" })
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`)
    const chunk = (delta: unknown, finish: string | null) => ({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] })
    let first = true
    for (const c of chunks) {
      if (c.delayMs) await sleep(c.delayMs)
      if (closed) return
      if (c.stall) return
      if (c.error !== undefined) {
        send({ error: { message: c.error, type: "server_error" } })
        record.endedAt = performance.now()
        return void res.end()
      }
      const delta: Record<string, unknown> = first ? { role: "assistant" } : {}
      if (c.content !== undefined) delta.content = c.content
      if (c.toolCalls) {
        delta.tool_calls = c.toolCalls.map((t) => ({
          index: t.index,
          ...(t.id !== undefined ? { id: t.id, type: "function" } : {}),
          function: { ...(t.name !== undefined ? { name: t.name } : {}), ...(t.arguments !== undefined ? { arguments: t.arguments } : {}) }
        }))
      }
      send(chunk(delta, null))
      if (first) record.firstTokenAt = performance.now()
      first = false
      record.chunksSent++
    }
    if (closed) return
    send(chunk({}, finishReason))
    const usage = usageOf(record.chunksSent)
    if (usage && request?.stream_options?.include_usage === true) {
      send({ id, object: "chat.completion.chunk", created, model, choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } })
    }
    if (script.done !== false) res.write("data: [DONE]\n\n")
    record.endedAt = performance.now()
    res.end()
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve())
  })
  const address = server.address()
  const port = typeof address === "object" && address ? address.port : 0
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    enqueue: (...scripts) => void queue.push(...scripts),
    respond: (r) => {
      responder = r
    },
    waitForRequests: (count, timeoutMs = 10_000) =>
      completions() >= count
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`scripted server: ${completions()} of ${count} requests after ${timeoutMs} ms`)), timeoutMs)
          waiters.push({ count, resolve: () => (clearTimeout(timer), resolve()) })
        }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      })
  }
}
