/**
 * OpenAI's Chat Completions wire format, for `GET /v1/models` and `POST /v1/chat/completions`:
 * the request as clients send it (unknown fields ignored, as OpenAI does), turned into the turn's
 * neutral `Completion`; the answer as a `chat.completion` or a stream of `chat.completion.chunk`
 * SSE frames ending with `data: [DONE]`; errors in OpenAI's shape
 * `{"error":{"message","type","param","code"}}`; and mates as models (id = a slug of the name,
 * unique per user, stable: the oldest mate keeps the plain slug).
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { Completion, CompletionMessage } from "../../entities/chat/completion.ts"

const Text = Schema.String.pipe(Schema.maxLength(1_000_000))

const ContentPart = Schema.Union(
  Schema.Struct({ type: Schema.Literal("text"), text: Text }),
  Schema.Struct({ type: Schema.Literal("image_url", "input_audio", "file", "refusal"), text: Schema.optional(Schema.String), refusal: Schema.optional(Schema.String) })
)

const Content = Schema.Union(Text, Schema.Array(ContentPart).pipe(Schema.maxItems(100)))

const ToolCall = Schema.Struct({
  id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  type: Schema.optional(Schema.Literal("function")),
  function: Schema.Struct({ name: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64)), arguments: Schema.String.pipe(Schema.maxLength(100_000)) })
})

const Message = Schema.Union(
  Schema.Struct({ role: Schema.Literal("system", "developer"), content: Content, name: Schema.optional(Schema.String) }),
  Schema.Struct({ role: Schema.Literal("user"), content: Content, name: Schema.optional(Schema.String) }),
  Schema.Struct({
    role: Schema.Literal("assistant"),
    content: Schema.optional(Schema.NullOr(Content)),
    tool_calls: Schema.optional(Schema.NullOr(Schema.Array(ToolCall).pipe(Schema.maxItems(128)))),
    name: Schema.optional(Schema.String),
    refusal: Schema.optional(Schema.NullOr(Schema.String))
  }),
  Schema.Struct({ role: Schema.Literal("tool"), content: Content, tool_call_id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)) })
)

const FunctionTool = Schema.Struct({
  type: Schema.Literal("function"),
  function: Schema.Struct({
    name: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,64}$/, { message: () => "must be 1-64 letters, digits, _ or -" })),
    description: Schema.optional(Schema.String.pipe(Schema.maxLength(4000))),
    parameters: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
    strict: Schema.optional(Schema.NullOr(Schema.Boolean))
  })
})

/** A `POST /v1/chat/completions` body (the fields Troupe reads; others are ignored). */
export const ChatCompletionRequest = Schema.Struct({
  model: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  messages: Schema.Array(Message).pipe(Schema.minItems(1), Schema.maxItems(1000)),
  temperature: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.between(0, 2)))),
  max_tokens: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.between(1, 1_000_000)))),
  max_completion_tokens: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.between(1, 1_000_000)))),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(Schema.NullOr(Schema.Struct({ include_usage: Schema.optional(Schema.NullOr(Schema.Boolean)) }))),
  tools: Schema.optional(Schema.NullOr(Schema.Array(FunctionTool).pipe(Schema.maxItems(128)))),
  tool_choice: Schema.optional(Schema.NullOr(Schema.Union(
    Schema.Literal("auto", "none", "required"),
    Schema.Struct({ type: Schema.Literal("function"), function: Schema.Struct({ name: Schema.String }) })
  ))),
  n: Schema.optional(Schema.NullOr(Schema.Literal(1)))
})
export type ChatCompletionRequest = typeof ChatCompletionRequest.Type

/** A request Troupe cannot take: 400 with the offending parameter. */
export interface WireProblem {
  readonly message: string
  readonly param: string | null
  readonly code: string
}

const textOf = (content: typeof Content.Type | null | undefined, param: string): Either.Either<string, WireProblem> => {
  if (content === null || content === undefined) return Either.right("")
  if (typeof content === "string") return Either.right(content)
  const parts: Array<string> = []
  for (const [i, part] of content.entries()) {
    if (part.type === "text") parts.push(part.text)
    else if (part.type === "refusal") parts.push(part.refusal ?? "")
    else return Either.left({ message: `${part.type} content is not supported: send text`, param: `${param}.${i}.type`, code: "unsupported_content" })
  }
  return Either.right(parts.join("\n"))
}

/** Decode and check a request body. */
export const decodeRequest = (body: unknown): Either.Either<ChatCompletionRequest, WireProblem> =>
  Either.mapLeft(Schema.decodeUnknownEither(ChatCompletionRequest)(body), (e) => {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(e)[0]
    const param = issue && issue.path.length > 0 ? issue.path.join(".") : null
    return { message: issue ? `${param ? `${param}: ` : ""}${issue.message}` : "invalid request", param, code: "invalid_request" }
  })

/** The turn's `Completion` from a request (the mate's skill names are refused as client tool names). */
export const toCompletion = (request: ChatCompletionRequest, reserved: (toolName: string) => boolean = () => false): Either.Either<Completion, WireProblem> => {
  const messages: Array<CompletionMessage> = []
  for (const [i, m] of request.messages.entries()) {
    const text = textOf(m.content, `messages.${i}.content`)
    if (Either.isLeft(text)) return Either.left(text.left)
    switch (m.role) {
      case "system":
      case "developer":
        messages.push({ role: "system", text: text.right })
        break
      case "user":
        messages.push({ role: "user", text: text.right })
        break
      case "assistant":
        messages.push({
          role: "assistant",
          text: text.right,
          ...(m.tool_calls && m.tool_calls.length > 0 ? { toolCalls: m.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })) } : {})
        })
        break
      case "tool":
        messages.push({ role: "tool", text: text.right, toolCallId: m.tool_call_id })
        break
    }
  }
  if (!messages.some((m) => m.role === "user")) {
    return Either.left({ message: "messages must hold at least one user message", param: "messages", code: "invalid_request" })
  }
  const tools = (request.tools ?? []).map((t) => ({
    name: t.function.name,
    description: t.function.description ?? "",
    parameters: t.function.parameters ?? { type: "object", properties: {} }
  }))
  for (const [i, t] of tools.entries()) {
    if (reserved(t.name)) return Either.left({ message: `the tool name ${t.name} is one of the mate's skills; choose another`, param: `tools.${i}.function.name`, code: "invalid_request" })
    if (tools.findIndex((o) => o.name === t.name) !== i) return Either.left({ message: `the tool name ${t.name} is used twice`, param: `tools.${i}.function.name`, code: "invalid_request" })
  }
  const choice = request.tool_choice
  const maxTokens = request.max_completion_tokens ?? request.max_tokens
  return Either.right({
    messages,
    tools,
    ...(choice ? { toolChoice: typeof choice === "string" ? choice : "required" as const } : {}),
    ...(request.temperature !== null && request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(maxTokens !== null && maxTokens !== undefined ? { maxTokens } : {})
  })
}

// ---------------------------------------------------------------------------------------------
// Answers

/** Token usage as OpenAI reports it, with what Troupe charged. */
export interface WireUsage {
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly total_tokens: number
  /** Troupe's addition: credits charged for the tokens and for the mate's skill calls. */
  readonly troupe?: { readonly credits: number; readonly skill_calls: ReadonlyArray<{ readonly skill: string; readonly ok: boolean }> }
}

export interface WireToolCall {
  readonly id: string
  readonly type: "function"
  readonly function: { readonly name: string; readonly arguments: string }
}

export type FinishReason = "stop" | "length" | "tool_calls"

/** A whole `chat.completion`. */
export const completion = (options: {
  readonly id: string
  readonly created: number
  readonly model: string
  readonly text: string
  readonly toolCalls: ReadonlyArray<WireToolCall>
  readonly finishReason: FinishReason
  readonly usage: WireUsage
}) => ({
  id: options.id,
  object: "chat.completion" as const,
  created: options.created,
  model: options.model,
  system_fingerprint: null,
  choices: [{
    index: 0,
    message: {
      role: "assistant" as const,
      content: options.text.length > 0 || options.toolCalls.length === 0 ? options.text : null,
      refusal: null,
      ...(options.toolCalls.length > 0 ? { tool_calls: options.toolCalls } : {})
    },
    logprobs: null,
    finish_reason: options.finishReason
  }],
  usage: options.usage
})

/** Builds the SSE frames of one streamed answer. */
export const chunker = (options: { readonly id: string; readonly created: number; readonly model: string }) => {
  let first = true
  const frame = (choices: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id: options.id, object: "chat.completion.chunk", created: options.created, model: options.model, system_fingerprint: null, choices, ...extra })}\n\n`
  const delta = (d: Record<string, unknown>, finish: FinishReason | null = null) => {
    const withRole = first ? { role: "assistant", ...d } : d
    first = false
    return frame([{ index: 0, delta: withRole, logprobs: null, finish_reason: finish }])
  }
  return {
    /** Text. */
    text: (text: string) => delta({ content: text }),
    /** The caller's tool calls, each whole in one chunk. */
    toolCalls: (calls: ReadonlyArray<WireToolCall>) =>
      calls.map((c, index) => delta({ tool_calls: [{ index, id: c.id, type: "function", function: c.function }] })).join(""),
    /** The last choice chunk. */
    finish: (reason: FinishReason) => delta({}, reason),
    /** The usage chunk (`stream_options.include_usage`). */
    usage: (usage: WireUsage) => frame([], { usage }),
    /** An error after the stream started (OpenAI's shape in a data frame). */
    error: (status: number, code: string, message: string) => `data: ${JSON.stringify(errorBody(status, code, message))}\n\n`,
    done: "data: [DONE]\n\n"
  }
}

/** OpenAI's error `type` for a status. */
export const errorType = (status: number): string =>
  status === 401
    ? "authentication_error"
    : status === 403
    ? "permission_error"
    : status === 402
    ? "insufficient_quota"
    : status === 429
    ? "rate_limit_error"
    : status >= 500
    ? "server_error"
    : "invalid_request_error"

/** OpenAI's error body. */
export const errorBody = (status: number, code: string, message: string, param: string | null = null) => ({
  error: { message, type: errorType(status), param, code }
})

/** Is `url` one of the OpenAI-compatible routes (their errors take OpenAI's shape)? */
export const isOpenAiRoute = (url: string): boolean => {
  const path = url.split("?")[0]!
  return path === "/v1/chat/completions" || path === "/v1/models" || path.startsWith("/v1/models/")
}

/** An error response in OpenAI's shape. */
export const errorResponse = (status: number, code: string, message: string, headers?: Readonly<Record<string, string>>) =>
  HttpServerResponse.unsafeJson(errorBody(status, code, message), { status, ...(headers ? { headers } : {}) })

/** A response in Troupe's error shape (`{"error":{"code","message","details"}}`) in OpenAI's instead. */
export const reshapeError = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse => {
  const body = response.body
  if (body._tag !== "Uint8Array") return response
  try {
    const parsed = JSON.parse(new TextDecoder().decode(body.body)) as { error?: { code?: string; message?: string; details?: { issues?: Array<{ path?: string }> } } }
    if (!parsed.error) return response
    const param = parsed.error.details?.issues?.[0]?.path ?? null
    return HttpServerResponse.unsafeJson(errorBody(response.status, parsed.error.code ?? "error", parsed.error.message ?? "error", param), {
      status: response.status,
      headers: response.headers
    })
  } catch {
    return response
  }
}

// ---------------------------------------------------------------------------------------------
// Mates as models

/** The slug of a mate's name: lowercase letters, digits and dashes. */
export const slug = (name: string): string => {
  const s = name.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60)
  return s.length > 0 ? s : "mate"
}

/** Model ids for a user's mates, oldest first: the plain slug, then `-2`, `-3` … for names that collide. */
export const modelIds = <M extends { readonly mateId: string; readonly name: string; readonly createdAt: Date }>(mates: ReadonlyArray<M>): Array<{ readonly id: string; readonly mate: M }> => {
  const sorted = [...mates].sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.mateId.localeCompare(b.mateId))
  const taken = new Set<string>()
  return sorted.map((mate) => {
    const base = slug(mate.name)
    let id = base
    for (let n = 2; taken.has(id); n++) id = `${base}-${n}`
    taken.add(id)
    return { id, mate }
  })
}
