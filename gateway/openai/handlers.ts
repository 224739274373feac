/**
 * Handlers of the OpenAI-compatible API. A completion runs in the `ai` app's `Completion` entity
 * on a runner (the same mate runner and billing as a chat's turn); the gateway only translates:
 * the request into the turn's `Completion`, the entity's events into `chat.completion.chunk`
 * frames or one `chat.completion`, and every failure into OpenAI's error body.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Mate } from "../../entities/user/protocol.ts"
import { User } from "../../entities/user/protocol.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import * as Ids from "../../runtime/Ids.ts"
import * as Metrics from "../../runtime/Metrics.ts"
import { CompletionEntity, type CompletionEvent, type CompletionFailed, RunCompletion } from "../../skills/ai/Completions.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import { ApiFailure } from "../Errors.ts"
import * as Policy from "../Policy.ts"
import { call } from "../handlers/common.ts"
import * as Wire from "./wire.ts"

/** An error response in OpenAI's shape. */
const openAiError = (status: number, code: string, message: string, param: string | null = null) =>
  HttpServerResponse.unsafeJson(Wire.errorBody(status, code, message, param), { status })

const toModel = (m: { readonly id: string; readonly mate: Mate }) => ({
  id: m.id,
  object: "model" as const,
  created: Math.floor(m.mate.createdAt.getTime() / 1000),
  owned_by: "troupe"
})

interface Collected {
  text: string
  skills: Array<{ readonly skill: string; readonly ok: boolean }>
  end: Extract<CompletionEvent, { kind: "end" }> | undefined
}

const usageOf = (c: Collected): Wire.WireUsage => ({
  prompt_tokens: c.end?.inputTokens ?? 0,
  completion_tokens: c.end?.outputTokens ?? 0,
  total_tokens: (c.end?.inputTokens ?? 0) + (c.end?.outputTokens ?? 0),
  troupe: { credits: c.end?.credits ?? 0, skill_calls: c.skills }
})

const toolCallsOf = (end: Collected["end"]): Array<Wire.WireToolCall> =>
  (end?.toolCalls ?? []).map((c) => ({ id: c.id, type: "function" as const, function: { name: c.name, arguments: c.arguments } }))

const failureOf = (e: CompletionFailed | ApiFailure | { readonly _tag: string }) =>
  e instanceof ApiFailure
    ? openAiError(e.status, e.code, e.message)
    : e._tag === "CompletionFailed"
    ? openAiError((e as CompletionFailed).status, (e as CompletionFailed).code, (e as CompletionFailed).message)
    : openAiError(503, "unavailable", "A backend is busy or restarting; retry")

export const layer = HttpApiBuilder.group(TroupeApi, "openai", (handlers) =>
  Effect.gen(function*() {
    const users = yield* User.client
    const completions = yield* CompletionEntity.client

    const models = (userId: string) => Effect.map(call(users(userId).Mates()), (mates) => Wire.modelIds(mates))

    return handlers
      .handle("models", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.ReadChats)
          return { object: "list" as const, data: (yield* models(principal.userId)).map(toModel) }
        }))
      .handle("model", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.ReadChats)
          const found = (yield* models(principal.userId)).find((m) => m.id === path.model)
          if (!found) return openAiError(404, "model_not_found", `The model \`${path.model}\` does not exist or you do not have access to it.`, "model")
          return toModel(found)
        }))
      .handle("completions", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.WriteChats)
          const request = Wire.decodeRequest(payload)
          if (Either.isLeft(request)) return openAiError(400, request.left.code, request.left.message, request.left.param)
          const available = yield* models(principal.userId)
          const chosen = available.find((m) => m.id === request.right.model) ?? available.find((m) => m.mate.mateId === request.right.model)
          if (!chosen) {
            return openAiError(404, "model_not_found", `The model \`${request.right.model}\` does not exist or you do not have access to it (GET /v1/models lists your mates).`, "model")
          }
          const completion = Wire.toCompletion(request.right, (name) => name.includes("__"))
          if (Either.isLeft(completion)) return openAiError(400, completion.left.code, completion.left.message, completion.left.param)
          const id = Ids.make("", 24)
          const scope = Policy.spendScope(principal)
          const events = completions(id).Run(new RunCompletion({
            ownerId: principal.userId,
            mateId: chosen.mate.mateId,
            accountId: principal.userId,
            ...(scope ? { scope } : {}),
            model: chosen.id,
            ...Option.match(principal.apiKey, { onNone: () => ({}), onSome: (k) => ({ apiKeyId: k.keyId }) }),
            completion: completion.right
          }))
          const meta = { id: `chatcmpl-${id}`, created: Math.floor(Date.now() / 1000), model: chosen.id }
          const collected: Collected = { text: "", skills: [], end: undefined }
          const note = (e: CompletionEvent) => {
            if (e.kind === "delta") collected.text += e.text
            else if (e.kind === "skill") collected.skills.push({ skill: `${e.app}.${e.skill}`, ok: e.ok })
            else collected.end = e
          }

          if (request.right.stream !== true) {
            const exit = yield* Effect.exit(Stream.runForEach(events, (e) => Effect.sync(() => note(e))))
            if (Exit.isFailure(exit)) return Option.match(Exit.causeOption(exit).pipe(Option.flatMap((c) => Option.fromNullable(c._tag === "Fail" ? c.error : undefined))), {
              onNone: () => openAiError(503, "unavailable", "A backend is busy or restarting; retry"),
              onSome: failureOf
            })
            return HttpServerResponse.unsafeJson(Wire.completion({
              ...meta,
              text: collected.text,
              toolCalls: toolCallsOf(collected.end),
              finishReason: collected.end?.finishReason ?? "stop",
              usage: usageOf(collected)
            }))
          }

          // the first event decides the status: a failure before anything streamed is an HTTP error
          const scopeOfStream = yield* Scope.make()
          const pull = yield* Scope.extend(Stream.toPull(events), scopeOfStream)
          const first = yield* Effect.either(retryTransient(pull))
          if (Either.isLeft(first)) {
            yield* Scope.close(scopeOfStream, Exit.void)
            return Option.match(first.left, { onNone: () => openAiError(502, "empty_answer", "The mate ended without answering"), onSome: failureOf })
          }
          const frames = Wire.chunker(meta)
          const includeUsage = request.right.stream_options?.include_usage === true
          const encoder = new TextEncoder()
          const encode = (events: Chunk.Chunk<CompletionEvent>): string => {
            let out = ""
            for (const e of events) {
              note(e)
              if (e.kind === "delta") out += frames.text(e.text)
              else if (e.kind === "end") {
                const calls = toolCallsOf(e)
                if (calls.length > 0) out += frames.toolCalls(calls)
                out += frames.finish(e.finishReason)
                if (includeUsage) out += frames.usage(usageOf(collected))
                out += frames.done
              }
            }
            return out
          }
          const rest = Stream.repeatEffectChunkOption(pull).pipe(
            Stream.mapChunks((events) => Chunk.of(encode(events))),
            // a failure after the stream started: OpenAI's error shape in a data frame, then the end
            Stream.catchAll((e) => {
              const f = e as CompletionFailed | { readonly _tag: string }
              const [status, code, message] = f._tag === "CompletionFailed"
                ? [(f as CompletionFailed).status, (f as CompletionFailed).code, (f as CompletionFailed).message]
                : [503, "unavailable", "A backend is busy or restarting"]
              return Stream.make(frames.error(status, code, message) + frames.done)
            }),
            Stream.ensuring(Scope.close(scopeOfStream, Exit.void))
          )
          const body = Stream.concat(Stream.make(encode(first.right)), rest).pipe(
            Stream.filter((s) => s.length > 0),
            Stream.map((s) => encoder.encode(s))
          )
          return HttpServerResponse.stream(Stream.unwrapScoped(Effect.as(Metrics.trackStream("completion"), body)), {
            contentType: "text/event-stream; charset=utf-8",
            headers: { "cache-control": "no-cache, no-transform", "x-accel-buffering": "no", connection: "keep-alive" }
          })
        }).pipe(
          // OpenAI's error shape for this route's own failures (policy, entity calls)
          Effect.catchIf((e): e is ApiFailure => e instanceof ApiFailure, (e) => Effect.succeed(failureOf(e)))
        ))
  }))
