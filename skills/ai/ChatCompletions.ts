/**
 * One OpenAI-compatible endpoint spoken to through `@effect/ai-openai`'s `OpenAiClient` (base URL,
 * bearer key, SSE parsing, HTTP error mapping to `AiError`), on the Chat Completions API that
 * every compatible server implements (OpenAI, Ollama, vLLM, llama.cpp, LM Studio, OpenRouter,
 * Groq, Mistral). `@effect/ai-openai`'s own language model speaks OpenAI's Responses API, which
 * most compatible servers lack.
 *
 * `stream` yields `@effect/ai` response parts (`text-delta`, `tool-params-*`, `tool-call`, `finish`)
 * without checking tool names against a toolkit: the turn enforces the mate's allowlist itself and
 * answers an unknown tool with a tool error instead of failing the stream. `languageModel` is the
 * same endpoint as an `@effect/ai` `LanguageModel` (for `text.summarize` and anyone using the
 * library's API).
 */
import * as AiError from "@effect/ai/AiError"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import * as Tool from "@effect/ai/Tool"
import type * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import * as Sse from "@effect/experimental/Sse"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** A tool offered to the model: its name and the JSON Schema of its arguments. */
export interface ToolSpec {
  readonly name: string
  readonly description: string
  readonly parameters: Record<string, unknown>
}

/** One request to a model. */
export interface CompletionRequest {
  readonly model: string
  readonly prompt: Prompt.Prompt
  readonly tools?: ReadonlyArray<ToolSpec>
  readonly toolChoice?: "auto" | "none" | "required"
  readonly temperature?: number
  readonly maxTokens?: number
}

/** An endpoint. */
export interface Client {
  /** The answer as `@effect/ai` stream parts; the last one is `finish` (its usage fields undefined when the server reported none). */
  readonly stream: (request: CompletionRequest) => Stream.Stream<Response.StreamPartEncoded, AiError.AiError>
  /**
   * The same parts as `stream`, handed to `onPart` as they come (synchronously, in order); succeeds
   * once the answer is over. The hot path of a turn: a few fiber steps per network read, where the
   * stream takes dozens per part.
   */
  readonly push: (request: CompletionRequest, onPart: (part: Response.StreamPartEncoded) => void) => Effect.Effect<void, AiError.AiError>
  /** The endpoint as an `@effect/ai` `LanguageModel` for `model`. */
  readonly languageModel: (model: string) => Effect.Effect<LanguageModel.Service>
}

// ---------------------------------------------------------------------------------------------
// The wire format (only what is read; unknown fields are ignored)

const ToolCallDelta = Schema.Struct({
  index: Schema.optional(Schema.Number),
  id: Schema.optional(Schema.NullOr(Schema.String)),
  function: Schema.optional(Schema.NullOr(Schema.Struct({
    name: Schema.optional(Schema.NullOr(Schema.String)),
    arguments: Schema.optional(Schema.NullOr(Schema.String))
  })))
})

const Usage = Schema.Struct({
  prompt_tokens: Schema.optional(Schema.NullOr(Schema.Number)),
  completion_tokens: Schema.optional(Schema.NullOr(Schema.Number)),
  total_tokens: Schema.optional(Schema.NullOr(Schema.Number)),
  prompt_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({ cached_tokens: Schema.optional(Schema.NullOr(Schema.Number)) }))),
  completion_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({ reasoning_tokens: Schema.optional(Schema.NullOr(Schema.Number)) })))
})

/** A `chat.completion.chunk` (or an error some servers send in the middle of a stream). */
export const CompletionChunk = Schema.Struct({
  id: Schema.optional(Schema.NullOr(Schema.String)),
  model: Schema.optional(Schema.NullOr(Schema.String)),
  choices: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({
    index: Schema.optional(Schema.Number),
    delta: Schema.optional(Schema.NullOr(Schema.Struct({
      content: Schema.optional(Schema.NullOr(Schema.String)),
      reasoning_content: Schema.optional(Schema.NullOr(Schema.String)),
      reasoning: Schema.optional(Schema.NullOr(Schema.String)),
      tool_calls: Schema.optional(Schema.NullOr(Schema.Array(ToolCallDelta)))
    }))),
    finish_reason: Schema.optional(Schema.NullOr(Schema.String))
  })))),
  usage: Schema.optional(Schema.NullOr(Usage)),
  error: Schema.optional(Schema.NullOr(Schema.Struct({ message: Schema.optional(Schema.String), code: Schema.optional(Schema.Unknown) })))
})
export type CompletionChunk = typeof CompletionChunk.Type

// ---------------------------------------------------------------------------------------------
// Requests

type WireMessage = Record<string, unknown>

const textOf = (parts: ReadonlyArray<Prompt.Part>): string =>
  parts.map((p) => (p.type === "text" ? p.text : "")).join("")

/** The prompt as Chat Completions messages. */
export const toMessages = (prompt: Prompt.Prompt): Array<WireMessage> => {
  const messages: Array<WireMessage> = []
  for (const message of prompt.content) {
    switch (message.role) {
      case "system":
        messages.push({ role: "system", content: message.content })
        break
      case "user":
        messages.push({ role: "user", content: textOf(message.content) })
        break
      case "assistant": {
        const calls = message.content.filter((p): p is Prompt.ToolCallPart => p.type === "tool-call")
        const text = textOf(message.content)
        messages.push({
          role: "assistant",
          content: text.length > 0 ? text : null,
          ...(calls.length > 0
            ? { tool_calls: calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: JSON.stringify(c.params ?? {}) } })) }
            : {})
        })
        break
      }
      case "tool":
        for (const result of message.content) {
          messages.push({ role: "tool", tool_call_id: result.id, content: typeof result.result === "string" ? result.result : JSON.stringify(result.result) })
        }
        break
    }
  }
  return messages
}

/** The request body (streaming, usage requested). */
export const toBody = (request: CompletionRequest): Record<string, unknown> => ({
  model: request.model,
  messages: toMessages(request.prompt),
  stream: true,
  stream_options: { include_usage: true },
  ...(request.tools && request.tools.length > 0
    ? {
      tools: request.tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.parameters } })),
      tool_choice: request.toolChoice ?? "auto"
    }
    : {}),
  ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
  ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {})
})

// ---------------------------------------------------------------------------------------------
// Responses

const finishReason = (reason: string | null | undefined): Response.FinishReason => {
  switch (reason) {
    case "stop":
      return "stop"
    case "length":
      return "length"
    case "tool_calls":
    case "function_call":
      return "tool-calls"
    case "content_filter":
      return "content-filter"
    default:
      return reason ? "other" : "unknown"
  }
}

/** Arguments as JSON when they parse, else the raw text (the turn answers it with a tool error). */
const parseArguments = (raw: string): unknown => {
  if (raw.trim().length === 0) return {}
  try {
    return JSON.parse(raw)
  } catch {
    return raw
  }
}

/**
 * Turns chunks into parts, remembering what spans chunks: the text block, tool calls assembled
 * from fragments by index, the finish reason and the usage (which arrives after it).
 */
export const makeAssembler = () => {
  const textId = "text"
  let textOpen = false
  let reason: string | null | undefined
  let usage: typeof Usage.Type | null | undefined
  let responseId: string | undefined
  let model: string | undefined
  const calls = new Map<number, { id: string; name: string; args: string }>()
  const order: Array<number> = []

  const push = (chunk: CompletionChunk): Array<Response.StreamPartEncoded> => {
    const out: Array<Response.StreamPartEncoded> = []
    if (responseId === undefined && (chunk.id || chunk.model)) {
      responseId = chunk.id ?? undefined
      model = chunk.model ?? undefined
      out.push({ type: "response-metadata", id: responseId, modelId: model, timestamp: undefined } as Response.StreamPartEncoded)
    }
    if (chunk.usage) usage = chunk.usage
    for (const choice of chunk.choices ?? []) {
      const delta = choice.delta
      if (delta?.content) {
        if (!textOpen) {
          textOpen = true
          out.push({ type: "text-start", id: textId })
        }
        out.push({ type: "text-delta", id: textId, delta: delta.content })
      }
      for (const fragment of delta?.tool_calls ?? []) {
        const index = fragment.index ?? order.length
        let call = calls.get(index)
        if (!call) {
          call = { id: fragment.id ?? `call_${index}`, name: fragment.function?.name ?? "", args: "" }
          calls.set(index, call)
          order.push(index)
          out.push({ type: "tool-params-start", id: call.id, name: call.name, providerExecuted: false })
        } else if (fragment.function?.name && call.name.length === 0) {
          call.name = fragment.function.name
        }
        const piece = fragment.function?.arguments
        if (piece) {
          call.args += piece
          out.push({ type: "tool-params-delta", id: call.id, delta: piece })
        }
      }
      if (choice.finish_reason) reason = choice.finish_reason
    }
    return out
  }

  const end = (): Array<Response.StreamPartEncoded> => {
    const out: Array<Response.StreamPartEncoded> = []
    if (textOpen) out.push({ type: "text-end", id: textId })
    for (const index of order) {
      const call = calls.get(index)!
      out.push({ type: "tool-params-end", id: call.id })
      out.push({ type: "tool-call", id: call.id, name: call.name, params: parseArguments(call.args), providerExecuted: false })
    }
    const input = usage?.prompt_tokens ?? undefined
    const output = usage?.completion_tokens ?? undefined
    out.push({
      type: "finish",
      reason: order.length > 0 && (reason === undefined || reason === null || reason === "stop") ? "tool-calls" : finishReason(reason),
      usage: {
        inputTokens: input,
        outputTokens: output,
        totalTokens: usage?.total_tokens ?? (input !== undefined && output !== undefined ? input + output : undefined),
        ...(usage?.completion_tokens_details?.reasoning_tokens != null ? { reasoningTokens: usage.completion_tokens_details.reasoning_tokens } : {}),
        ...(usage?.prompt_tokens_details?.cached_tokens != null ? { cachedInputTokens: usage.prompt_tokens_details.cached_tokens } : {})
      }
    })
    return out
  }

  return { push, end }
}

const isChunk = Schema.is(CompletionChunk)

/** An error event in the middle of a stream. */
const streamError = (message: string) =>
  new AiError.UnknownError({ module: "ChatCompletions", method: "stream", description: `the server reported an error mid-stream: ${message}` })

/** Talk to the endpoint at `baseUrl` (…/v1) with `apiKey`. */
export const make = (options: {
  readonly baseUrl: string
  readonly apiKey?: Redacted.Redacted | undefined
}): Effect.Effect<Client, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    // loaded only when a provider is configured: its generated OpenAI schemas cost ~0.6 s of CPU and ~50 MB at import
    const module: typeof OpenAiClient = yield* Effect.promise(() => import("@effect/ai-openai/OpenAiClient"))
    const openai = yield* module.make({ apiUrl: options.baseUrl.replace(/\/+$/, ""), apiKey: options.apiKey })

    const stream = (request: CompletionRequest): Stream.Stream<Response.StreamPartEncoded, AiError.AiError> =>
      Stream.suspend(() => {
        const assembler = makeAssembler()
        const http = HttpClientRequest.post("/chat/completions", { body: HttpBody.unsafeJson(toBody(request)) }).pipe(
          HttpClientRequest.setHeader("accept", "text/event-stream")
        )
        return openai.streamRequest(http, CompletionChunk).pipe(
          Stream.mapConcatEffect((chunk) => (chunk.error ? Effect.fail(streamError(chunk.error.message ?? "unknown")) : Effect.succeed(assembler.push(chunk)))),
          Stream.concat(Stream.suspend(() => Stream.fromIterable(assembler.end())))
        )
      })

    // the requests `openai.streamRequest` makes (base URL, key, JSON accepted, non-2xx refused),
    // their server-sent events read by `@effect/experimental`'s parser without a stream per part
    const http = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest((request) => {
        const prefixed = HttpClientRequest.acceptJson(HttpClientRequest.prependUrl(request, options.baseUrl.replace(/\/+$/, "")))
        return options.apiKey ? HttpClientRequest.bearerToken(prefixed, options.apiKey) : prefixed
      }),
      HttpClient.filterStatusOk
    )
    const push = (request: CompletionRequest, onPart: (part: Response.StreamPartEncoded) => void): Effect.Effect<void, AiError.AiError> =>
      Effect.scoped(Effect.gen(function*() {
        const assembler = makeAssembler()
        let failure: AiError.AiError | undefined
        const parser = Sse.makeParser((event) => {
          if (failure !== undefined || event._tag !== "Event") return
          let json: unknown
          try {
            json = JSON.parse(event.data)
          } catch {
            // not JSON (`[DONE]`, a keep-alive): skipped, as `OpenAiClient.streamRequest` does
            return
          }
          if (!isChunk(json)) return
          if (json.error) {
            failure = streamError(json.error.message ?? "unknown")
            return
          }
          for (const part of assembler.push(json)) onPart(part)
        })
        const response = yield* http.execute(
          HttpClientRequest.post("/chat/completions", { body: HttpBody.unsafeJson(toBody(request)) }).pipe(HttpClientRequest.setHeader("accept", "text/event-stream"))
        )
        const decoder = new TextDecoder()
        const feed = (text: string) => {
          const tooLarge = parser.feed(text)
          if (tooLarge) return Effect.fail(new AiError.MalformedOutput({ module: "ChatCompletions", method: "push", description: tooLarge.message }))
          return failure === undefined ? Effect.void : Effect.fail(failure)
        }
        yield* Stream.runForEachChunk(response.stream, (chunk) =>
          Effect.suspend(() => {
            let text = ""
            for (const bytes of chunk) text += decoder.decode(bytes, { stream: true })
            return feed(text)
          }))
        yield* feed(decoder.decode())
        for (const part of assembler.end()) onPart(part)
      })).pipe(
        Effect.catchTags({
          RequestError: (error) => AiError.HttpRequestError.fromRequestError({ module: "OpenAiClient", method: "streamRequest", error }),
          ResponseError: (error) => AiError.HttpResponseError.fromResponseError({ module: "OpenAiClient", method: "streamRequest", error })
        })
      )

    const languageModel = (model: string) =>
      LanguageModel.make({
        streamText: (o) => stream({ model, prompt: o.prompt, tools: o.tools.map(toolSpecOf), toolChoice: choiceOf(o.toolChoice) }),
        generateText: (o) =>
          stream({ model, prompt: o.prompt, tools: o.tools.map(toolSpecOf), toolChoice: choiceOf(o.toolChoice) }).pipe(
            Stream.runCollect,
            Effect.map((chunk) => collapse([...chunk]))
          )
      })

    return { stream, push, languageModel }
  })

const toolSpecOf = (tool: Tool.Any): ToolSpec => ({
  name: tool.name,
  description: Tool.getDescription(tool as never) ?? "",
  parameters: Tool.getJsonSchema(tool as never) as unknown as Record<string, unknown>
})

const choiceOf = (choice: LanguageModel.ProviderOptions["toolChoice"]): CompletionRequest["toolChoice"] =>
  choice === "none" || choice === "required" ? choice : "auto"

/** Stream parts as the parts of a whole answer (text joined, tool calls, finish). */
export const collapse = (parts: ReadonlyArray<Response.StreamPartEncoded>): Array<Response.PartEncoded> => {
  const out: Array<Response.PartEncoded> = []
  let text = ""
  for (const part of parts) {
    if (part.type === "text-delta") text += part.delta
  }
  if (text.length > 0) out.push({ type: "text", text })
  for (const part of parts) {
    if (part.type === "tool-call" || part.type === "finish" || part.type === "response-metadata") out.push(part)
  }
  return out
}
