/**
 * The configured LLM providers behind one service: which provider serves a model, a circuit
 * breaker per provider, failover, timeouts, and health for admins.
 *
 * `step` runs one model request. It tries the providers that serve the model's family in
 * priority order, skipping those whose breaker is open, and moves to the next one on a failure
 * or timeout **only until the request's first part (token or tool call) has arrived**; after that
 * a failure ends the step with `StepFailed` (`partial: true`) and what was streamed stays with the
 * caller. Each provider has a time-to-first-token, an idle (between parts) and a total timeout.
 * A `4xx` that says the request itself is wrong (400, 413, 422) neither trips the breaker nor
 * fails over: every provider would refuse it.
 */
import type * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Metrics from "../../runtime/Metrics.ts"
import * as Breaker from "./Breaker.ts"
import * as ChatCompletions from "./ChatCompletions.ts"
import * as Settings from "./Settings.ts"

/** A model request of a turn. */
export interface StepRequest {
  /** The mate's model: a model name, a family, or `default`. */
  readonly model: string
  readonly prompt: Prompt.Prompt
  readonly tools?: ReadonlyArray<ChatCompletions.ToolSpec>
  readonly toolChoice?: "auto" | "none" | "required"
  readonly temperature?: number
  readonly maxTokens?: number
}

/** A tool call the model asked for (`params` is the raw text when it was not JSON). */
export interface ToolCall {
  readonly id: string
  readonly name: string
  readonly params: unknown
}

/** What a step produced. */
export interface StepResult {
  readonly provider: string
  readonly model: Settings.ModelInfo
  readonly text: string
  readonly toolCalls: ReadonlyArray<ToolCall>
  readonly finishReason: Response.FinishReason
  /** As the provider reported it (undefined when it did not). */
  readonly usage: { readonly inputTokens: number | undefined; readonly outputTokens: number | undefined }
  /** Providers tried before the one that answered, with why they were left. */
  readonly skipped: ReadonlyArray<{ readonly provider: string; readonly reason: string }>
}

/** A step could not be completed. `partial`: parts had already been passed on when it failed. */
export class StepFailed extends Schema.TaggedError<StepFailed>()("StepFailed", {
  code: Schema.Literal("no_provider", "model_not_served", "providers_unavailable", "provider_failed", "provider_rejected"),
  message: Schema.String,
  partial: Schema.Boolean,
  provider: Schema.NullOr(Schema.String)
}) {}

/** A provider as admins see it (never its key). */
export interface ProviderStatus {
  readonly name: string
  readonly baseUrl: string
  readonly apiKeyEnv: string | null
  readonly apiKeySet: boolean
  readonly priority: number
  readonly models: ReadonlyArray<Settings.ModelInfo>
  readonly timeouts: { readonly firstTokenMs: number; readonly idleMs: number; readonly totalMs: number }
  readonly source: "providers" | "short" | "probe"
  readonly health: Breaker.BreakerSnapshot
}

/** Where a model is served: its family and the (provider, model) pairs in priority order. */
export interface Resolved {
  readonly family: string
  readonly candidates: ReadonlyArray<{ readonly provider: string; readonly model: Settings.ModelInfo }>
}

/** The service. */
export class Llm extends Context.Tag("troupe/skills/ai/Llm")<Llm, {
  readonly settings: Settings.LlmSettings
  /** Any provider configured (or found by the probe)? */
  readonly available: boolean
  /** One line for the ready message: which provider and model answer. */
  readonly summary: string
  /** Grows whenever a provider's health changes (a request succeeded or failed). */
  readonly version: () => number
  readonly providers: Effect.Effect<ReadonlyArray<ProviderStatus>>
  readonly resolve: (model: string) => Option.Option<Resolved>
  /** Run one model request; `onPart` gets each part as it arrives (synchronously). */
  readonly step: (request: StepRequest, onPart?: (part: Response.StreamPartEncoded) => void) => Effect.Effect<StepResult, StepFailed>
}>() {}

/** Is this a part that counts as the answer having started? */
const isFirstToken = (part: Response.StreamPartEncoded): boolean =>
  (part.type === "text-delta" && part.delta.length > 0) || part.type === "tool-params-start" || part.type === "tool-call" ||
  part.type === "reasoning-delta"

/** The request itself was refused (every provider would refuse it). */
const isRequestError = (error: unknown): boolean => {
  const e = error as { _tag?: string; response?: { status?: number } }
  return e?._tag === "HttpResponseError" && (e.response?.status === 400 || e.response?.status === 413 || e.response?.status === 422)
}

class AttemptTimeout {
  readonly _tag = "AttemptTimeout"
  constructor(readonly what: string) {}
}

const describeError = (error: unknown): string => {
  if (error instanceof AttemptTimeout) return error.what
  const e = error as { _tag?: string; response?: { status?: number }; reason?: string; description?: string; message?: string }
  if (e?._tag === "HttpResponseError") return `HTTP ${e.response?.status ?? "?"}`
  if (e?._tag === "HttpRequestError") return `request failed (${e.reason ?? "transport"}${e.description ? `: ${e.description}` : ""})`
  if (e?._tag === "MalformedOutput") return "malformed answer"
  return e?.description ?? e?.message ?? String(error)
}

interface Entry {
  readonly settings: Settings.ProviderSettings
  readonly source: ProviderStatus["source"]
  readonly client: ChatCompletions.Client
  readonly breaker: Breaker.Breaker
}

/** A breaker that calls `changed` after every verdict (health publishers watch it). */
const counted = (breaker: Breaker.Breaker, changed: () => void): Breaker.Breaker => ({
  ...breaker,
  succeeded: () => {
    breaker.succeeded()
    changed()
  },
  failed: (error, now) => {
    breaker.failed(error, now)
    changed()
  },
  abandoned: (admission) => {
    breaker.abandoned(admission)
    changed()
  }
})

/** Ollama's chat models at `url` (`GET /api/tags`); none if nothing answers within `timeout` (a refused connection answers at once). */
export const probeOllama = (url: string, timeout: Duration.DurationInput = "5 seconds") =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.get(`${url}/api/tags`).pipe(Effect.flatMap((r) => (r.status === 200 ? r.json : Effect.fail(new Error(`HTTP ${r.status}`)))))
    const models = ((response as { models?: Array<{ name?: unknown }> })?.models ?? [])
      .map((m) => m?.name)
      .filter((n): n is string => typeof n === "string" && n.length > 0)
    const chat = models.filter((n) => !/embed/i.test(n))
    return chat.length > 0 ? Option.some(chat) : Option.none<ReadonlyArray<string>>()
  }).pipe(
    Effect.scoped,
    Effect.timeout(timeout),
    Effect.catchAll(() => Effect.succeed(Option.none<ReadonlyArray<string>>()))
  )

/** Build the service over `settings`; with `probe`, look for Ollama when no provider is configured. */
export const make = (settings: Settings.LlmSettings, options: { readonly probe?: boolean } = {}) =>
  Effect.gen(function*() {
    let configured: ReadonlyArray<{ readonly settings: Settings.ProviderSettings; readonly source: ProviderStatus["source"] }> = settings.providers.map((p) => ({
      settings: p,
      source: settings.source === "short" ? "short" as const : "providers" as const
    }))
    if (configured.length === 0 && options.probe && Option.isSome(settings.ollamaUrl)) {
      const found = yield* probeOllama(settings.ollamaUrl.value)
      if (Option.isSome(found)) {
        const entry = yield* Schema.decodeUnknown(Settings.ProviderEntry)({ name: "ollama", base_url: `${settings.ollamaUrl.value}/v1`, models: found.value }).pipe(Effect.orDie)
        configured = [{ settings: Settings.providerOf(entry, Option.none()), source: "probe" }]
      }
    }
    let version = 0
    const entries: Array<Entry> = []
    for (const p of [...configured].sort((a, b) => a.settings.priority - b.settings.priority)) {
      entries.push({
        settings: p.settings,
        source: p.source,
        client: yield* ChatCompletions.make({ baseUrl: p.settings.baseUrl, apiKey: Option.getOrUndefined(p.settings.apiKey) }),
        breaker: counted(Breaker.make(p.settings.breaker), () => void version++)
      })
    }
    const byName = new Map(entries.map((e) => [e.settings.name, e]))

    const resolve = (model: string): Option.Option<Resolved> => {
      const first = entries[0]?.settings.models[0]
      if (!first) return Option.none()
      let family: string | undefined
      if (model === "" || model === "default") family = first.family
      else {
        for (const e of entries) {
          const m = e.settings.models.find((m) => m.name === model || m.family === model)
          if (m) {
            family = m.family
            break
          }
        }
      }
      if (family === undefined) return Option.none()
      const candidates: Array<Resolved["candidates"][number]> = []
      for (const e of entries) {
        // the model named exactly first, then the rest of its family
        const served = e.settings.models.filter((m) => m.family === family)
        served.sort((a, b) => Number(b.name === model) - Number(a.name === model))
        if (served[0]) candidates.push({ provider: e.settings.name, model: served[0] })
      }
      return Option.some({ family, candidates })
    }

    /** One attempt on one provider: parts go to `onPart`; `started` says whether any token came. */
    const attempt = (entry: Entry, model: Settings.ModelInfo, request: StepRequest, onPart: (part: Response.StreamPartEncoded) => void, progress: { started: boolean }) =>
      Effect.scoped(Effect.gen(function*() {
        const p = entry.settings
        const idleMs = Duration.toMillis(p.idleTimeout)
        /** When the stream times out: the first token's deadline, then `idleMs` after the last part. */
        let deadline = Date.now() + Duration.toMillis(p.firstTokenTimeout)
        let text = ""
        const toolCalls: Array<ToolCall> = []
        let finish: Response.FinishPartEncoded | undefined
        const read = entry.client.push({
          model: model.name,
          prompt: request.prompt,
          ...(request.tools ? { tools: request.tools } : {}),
          ...(request.toolChoice ? { toolChoice: request.toolChoice } : {}),
          ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
          maxTokens: Math.min(request.maxTokens ?? model.maxOutputTokens, model.maxOutputTokens)
        }, (part) => {
          if (!progress.started && isFirstToken(part)) progress.started = true
          if (part.type === "text-delta") text += part.delta
          else if (part.type === "tool-call") toolCalls.push({ id: part.id, name: part.name, params: part.params })
          else if (part.type === "finish") finish = part
          onPart(part)
          if (progress.started) deadline = Date.now() + idleMs
        })
        // one timer for the whole stream, not a race per chunk (a fiber and a timer per token): it
        // sleeps until the deadline, which each chunk moves on, and fails the attempt once it has passed
        const watchdog: Effect.Effect<never, AttemptTimeout> = Effect.suspend(() => {
          const left = deadline - Date.now()
          return left > 0
            ? Effect.zipRight(Effect.sleep(left), watchdog)
            : Effect.fail(new AttemptTimeout(progress.started ? `no answer for ${idleMs} ms (idle timeout)` : `no first token within ${Duration.toMillis(p.firstTokenTimeout)} ms`))
        })
        yield* Effect.raceFirst(read, watchdog)
        return {
          provider: p.name,
          model,
          text,
          toolCalls,
          finishReason: finish?.reason ?? "unknown",
          usage: { inputTokens: finish?.usage.inputTokens, outputTokens: finish?.usage.outputTokens },
          skipped: []
        } satisfies StepResult
      })).pipe(
        Effect.timeoutFail({ duration: entry.settings.totalTimeout, onTimeout: () => new AttemptTimeout(`no complete answer within ${Duration.toMillis(entry.settings.totalTimeout)} ms`) })
      )

    const step = (request: StepRequest, onPart: (part: Response.StreamPartEncoded) => void = () => {}): Effect.Effect<StepResult, StepFailed> =>
      Effect.gen(function*() {
        if (entries.length === 0) {
          return yield* new StepFailed({ code: "no_provider", message: "No LLM provider is configured", partial: false, provider: null })
        }
        const resolved = resolve(request.model)
        if (Option.isNone(resolved)) {
          return yield* new StepFailed({
            code: "model_not_served",
            message: `No configured provider serves the model "${request.model}" (served: ${[...new Set(entries.flatMap((e) => e.settings.models.map((m) => m.name)))].join(", ")})`,
            partial: false,
            provider: null
          })
        }
        const skipped: Array<{ provider: string; reason: string }> = []
        for (const candidate of resolved.value.candidates) {
          const entry = byName.get(candidate.provider)!
          const admission = entry.breaker.acquire()
          if (admission === "rejected") {
            skipped.push({ provider: candidate.provider, reason: "circuit open" })
            continue
          }
          const progress = { started: false }
          const sent = performance.now()
          const exit = yield* attempt(entry, candidate.model, request, onPart, progress).pipe(
            Effect.onInterrupt(() => Effect.sync(() => entry.breaker.abandoned(admission))),
            Effect.withSpan("llm.request", { attributes: { "gen_ai.system": candidate.provider, "gen_ai.request.model": candidate.model.name } }),
            Effect.exit
          )
          const measured = (outcome: string, usage?: StepResult["usage"]) =>
            Metrics.llmRequested({
              provider: candidate.provider,
              model: candidate.model.name,
              seconds: (performance.now() - sent) / 1000,
              outcome,
              inputTokens: usage?.inputTokens,
              outputTokens: usage?.outputTokens
            })
          if (Exit.isSuccess(exit)) {
            entry.breaker.succeeded()
            yield* measured("ok", exit.value.usage)
            return { ...exit.value, skipped }
          }
          if (Exit.isInterrupted(exit)) yield* measured("cancelled")
          const found = Cause.failureOption(exit.cause)
          // no failure in the cause: a defect or an interruption, passed on as it is
          if (Option.isNone(found)) return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
          const failure = found.value
          const reason = describeError(failure)
          yield* measured(failure instanceof AttemptTimeout ? "timeout" : (failure as { _tag: string })._tag === "HttpResponseError" ? `http_${(failure as { response: { status: number } }).response.status}` : "error")
          if (isRequestError(failure)) {
            entry.breaker.abandoned(admission)
            return yield* new StepFailed({ code: "provider_rejected", message: `${candidate.provider} refused the request: ${reason}`, partial: progress.started, provider: candidate.provider })
          }
          entry.breaker.failed(reason)
          yield* Effect.logWarning(`LLM provider ${candidate.provider} failed: ${reason}`).pipe(
            Effect.annotateLogs({ provider: candidate.provider, model: candidate.model.name, started: progress.started })
          )
          if (progress.started) {
            return yield* new StepFailed({ code: "provider_failed", message: `${candidate.provider} failed in the middle of its answer: ${reason}`, partial: true, provider: candidate.provider })
          }
          skipped.push({ provider: candidate.provider, reason })
        }
        return yield* new StepFailed({
          code: "providers_unavailable",
          message: `No provider could answer: ${skipped.map((s) => `${s.provider}: ${s.reason}`).join("; ") || "none serves the model"}`,
          partial: false,
          provider: null
        })
      })

    const providers = Effect.sync(() =>
      entries.map((e): ProviderStatus => ({
        name: e.settings.name,
        baseUrl: e.settings.baseUrl,
        apiKeyEnv: e.settings.apiKeyEnv,
        apiKeySet: Option.isSome(e.settings.apiKey),
        priority: e.settings.priority,
        models: e.settings.models,
        timeouts: {
          firstTokenMs: Duration.toMillis(e.settings.firstTokenTimeout),
          idleMs: Duration.toMillis(e.settings.idleTimeout),
          totalMs: Duration.toMillis(e.settings.totalTimeout)
        },
        source: e.source,
        health: e.breaker.snapshot()
      }))
    )

    const first = entries[0]
    const summary = first
      ? `LLM: ${first.settings.name} (${first.settings.models[0]!.name})${first.source === "probe" ? ` found at ${Option.getOrElse(settings.ollamaUrl, () => "")}` : ""}` +
        (entries.length > 1 ? ` + ${entries.length - 1} more` : "")
      : "LLM: none configured (mates explain how to set TROUPE_LLM_BASE_URL / TROUPE_LLM_MODEL)"

    return Llm.of({ settings, available: entries.length > 0, summary, version: () => version, providers, resolve, step })
  })

/** The service over `settings` (HTTP through the given client). */
export const layer = (settings: Settings.LlmSettings, options: { readonly probe?: boolean } = {}): Layer.Layer<Llm, never, HttpClient.HttpClient> =>
  Layer.scoped(Llm, make(settings, options))

/** The service from the environment (`Settings.fromEnv`). */
export const layerFromEnv = (options: { readonly probe?: boolean } = {}) =>
  Layer.unwrapEffect(Effect.map(Settings.fromEnv, (settings) => layer(settings, options)))
