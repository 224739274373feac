/**
 * The product's metrics: one home for the series a dashboard reads about chat turns, skill calls,
 * LLM requests and tokens, credits and streams. Every room emits into these helpers instead of
 * defining its own series, so names, labels and buckets stay consistent (the Grafana dashboard in
 * `deploy/` and its test read the names from here).
 *
 * Labels are bounded: never a user, chat, mate or key id (those go in log lines). `app` and
 * `skill` are installed apps' names, `provider`/`model` the configured LLMs, `code` a
 * machine-readable error code.
 *
 * Each helper also writes the matching log line where the issue asks for one (a line per turn and
 * per skill call, with ids, never content).
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Telemetry from "./Telemetry.ts"

const seconds = (...bounds: ReadonlyArray<number>) => MetricBoundaries.fromIterable(bounds)

/** Latency buckets for whole turns and LLM requests (50 ms … 5 min). */
const longBuckets = seconds(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
/** Latency buckets for first tokens (10 ms … 60 s). */
const firstTokenBuckets = seconds(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
/** Latency buckets for skill calls (1 ms … 60 s). */
const skillBuckets = seconds(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

// --- turns -----------------------------------------------------------------------------------

/** Turns started (a restarted attempt counts again, with `attempt="restart"`). */
export const turnsStarted = Metric.counter("troupe_turns_started_total", { description: "Chat turns started", incremental: true })
/** Turns ended, by `status` (done, failed, cancelled) and `code` (failed turns' error code, else "none"). */
export const turnsEnded = Metric.counter("troupe_turns_ended_total", { description: "Chat turns ended, by status and error code", incremental: true })
/** Turns running in this process now. */
export const turnsRunning = Metric.gauge("troupe_turns_running", { description: "Chat turns running in this process" })
/** Turn duration from its start to its end, by `status`. */
export const turnDuration = Metric.histogram("troupe_turn_duration_seconds", longBuckets, "Chat turn duration in seconds, by status")
/** Time from a turn's start to the mate's first output (first token), by `provider`. */
export const turnFirstToken = Metric.histogram("troupe_turn_first_token_seconds", firstTokenBuckets, "Seconds from a turn's start to its first output")

/** Who a turn is for and where it runs: log context, never metric labels. */
export interface TurnIds {
  readonly chatId: string
  readonly turnId: string
  readonly userId: string
  readonly apiKeyId?: string | null | undefined
}

/** The API key id in a spend scope's id (`api_key:<id>`, what the gateway gives capped keys' turns). */
export const apiKeyOfScope = (scopeId: string | null | undefined): string | undefined =>
  scopeId?.startsWith("api_key:") ? scopeId.slice("api_key:".length) : undefined

const idAnnotations = (ids: TurnIds) => ({
  chat_id: ids.chatId,
  turn_id: ids.turnId,
  user_id: ids.userId,
  ...(ids.apiKeyId ? { api_key_id: ids.apiKeyId } : {})
})

/** A turn (or a restarted attempt of it) starts. */
export const turnStarted = (ids: TurnIds, attempt = 1): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.increment(Metric.tagged(turnsStarted, "attempt", attempt > 1 ? "restart" : "first")),
    Metric.increment(turnsRunning)
  ).pipe(Effect.zipRight(Effect.logDebug("turn started").pipe(Effect.annotateLogs({ ...idAnnotations(ids), attempt }))))

/** The status a turn ends with. */
export type TurnEndStatus = "done" | "failed" | "cancelled"

/**
 * A turn ends: counts it, records its duration, and writes the turn's log line (ids, status,
 * code, duration, credits charged; never content). Call once per attempt that `turnStarted`
 * counted; an attempt cut short by its runner stopping is `interrupted` (not counted as ended).
 */
export const turnEnded = (
  ids: TurnIds,
  end: {
    readonly status: TurnEndStatus | "interrupted"
    readonly seconds: number
    readonly code?: string | null | undefined
    readonly charged?: number | null | undefined
    readonly attempt?: number | undefined
  }
): Effect.Effect<void> =>
  Effect.gen(function*() {
    yield* Metric.incrementBy(turnsRunning, -1)
    if (end.status !== "interrupted") {
      const code = end.status === "failed" ? end.code ?? "internal_error" : "none"
      yield* Metric.increment(Metric.tagged(Metric.tagged(turnsEnded, "status", end.status), "code", code))
      yield* Metric.update(Metric.tagged(turnDuration, "status", end.status), end.seconds)
    }
    yield* Effect.logInfo("turn").pipe(Effect.annotateLogs({
      ...idAnnotations(ids),
      status: end.status,
      ...(end.code ? { code: end.code } : {}),
      ...(end.charged !== undefined && end.charged !== null ? { credits: end.charged } : {}),
      ...(end.attempt !== undefined ? { attempt: end.attempt } : {}),
      duration_ms: Math.round(end.seconds * 1000)
    }))
  })

/** The first output of a turn arrived `seconds` after it started. */
export const turnFirstOutput = (seconds: number, provider = "none"): Effect.Effect<void> =>
  Metric.update(Metric.tagged(turnFirstToken, "provider", provider), seconds)

// --- skill calls -----------------------------------------------------------------------------

/** Skill calls, by `app`, `skill`, `outcome` (ok, error) and `code` (the error code, else "none"). */
export const skillCalls = Metric.counter("troupe_skill_calls_total", { description: "Skill calls, by app, skill, outcome and error code", incremental: true })
/** Skill call durations, by `app` and `skill`. */
export const skillCallDuration = Metric.histogram("troupe_skill_call_duration_seconds", skillBuckets, "Skill call duration in seconds, by app and skill")

/** Who called a skill: log context, never metric labels. */
export interface SkillCallIds {
  readonly userId?: string | null | undefined
  readonly apiKeyId?: string | null | undefined
  readonly chatId?: string | null | undefined
  readonly turnId?: string | null | undefined
  readonly callId?: string | null | undefined
}

/** A skill call ended: counts it, records its duration and writes its log line (ids, never input or output). */
export const skillCalled = (
  call: { readonly app: string; readonly skill: string; readonly seconds: number; readonly code?: string | null | undefined; readonly credits?: number | undefined },
  ids: SkillCallIds = {}
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const outcome = call.code ? "error" : "ok"
    yield* Metric.increment(
      Metric.tagged(Metric.tagged(Metric.tagged(Metric.tagged(skillCalls, "app", call.app), "skill", call.skill), "outcome", outcome), "code", call.code ?? "none")
    )
    yield* Metric.update(Metric.tagged(Metric.tagged(skillCallDuration, "app", call.app), "skill", call.skill), call.seconds)
    yield* Effect.logInfo("skill call").pipe(Effect.annotateLogs({
      app: call.app,
      skill: call.skill,
      outcome,
      ...(call.code ? { code: call.code } : {}),
      ...(call.credits !== undefined ? { credits: call.credits } : {}),
      ...(ids.userId ? { user_id: ids.userId } : {}),
      ...(ids.apiKeyId ? { api_key_id: ids.apiKeyId } : {}),
      ...(ids.chatId ? { chat_id: ids.chatId } : {}),
      ...(ids.turnId ? { turn_id: ids.turnId } : {}),
      ...(ids.callId ? { call_id: ids.callId } : {}),
      duration_ms: Math.round(call.seconds * 1000 * 10) / 10
    }))
  })

// --- LLM requests and tokens -------------------------------------------------------------------

/** LLM requests, by `provider`, `model` and `outcome` (ok, error code). */
export const llmRequests = Metric.counter("troupe_llm_requests_total", { description: "LLM requests, by provider, model and outcome", incremental: true })
/** LLM request durations (whole response), by `provider` and `model`. */
export const llmRequestDuration = Metric.histogram("troupe_llm_request_duration_seconds", longBuckets, "LLM request duration in seconds")
/** Tokens, by `provider`, `model` and `kind` (input, output, cached). */
export const llmTokens = Metric.counter("troupe_llm_tokens_total", { description: "LLM tokens, by provider, model and kind", incremental: true })

/** An LLM request ended. `outcome` is "ok" or an error code. */
export const llmRequested = (request: {
  readonly provider: string
  readonly model: string
  readonly seconds: number
  readonly outcome: string
  readonly inputTokens?: number | undefined
  readonly outputTokens?: number | undefined
  readonly cachedTokens?: number | undefined
}): Effect.Effect<void> =>
  Effect.gen(function*() {
    const labels = [MetricLabel.make("provider", request.provider), MetricLabel.make("model", request.model)]
    yield* Metric.increment(Metric.taggedWithLabels(llmRequests, [...labels, MetricLabel.make("outcome", request.outcome)]))
    yield* Metric.update(Metric.taggedWithLabels(llmRequestDuration, labels), request.seconds)
    const tokens = Metric.taggedWithLabels(llmTokens, labels)
    if (request.inputTokens) yield* Metric.incrementBy(Metric.tagged(tokens, "kind", "input"), request.inputTokens)
    if (request.outputTokens) yield* Metric.incrementBy(Metric.tagged(tokens, "kind", "output"), request.outputTokens)
    if (request.cachedTokens) yield* Metric.incrementBy(Metric.tagged(tokens, "kind", "cached"), request.cachedTokens)
  })

// --- credits -------------------------------------------------------------------------------

/** Credits charged (settled), by `source` (turn, skill). */
export const creditsCharged = Metric.counter("troupe_credits_charged_total", { description: "Credits charged, by source", incremental: true })
/** Credits granted, by `reason` kind (signup, invite, purchase, admin, refund). */
export const creditsGranted = Metric.counter("troupe_credits_granted_total", { description: "Credits granted, by reason", incremental: true })

/** `amount` credits were charged for `source`. */
export const creditsChargedFor = (source: "turn" | "skill" | (string & {}), amount: number): Effect.Effect<void> =>
  amount > 0 ? Metric.incrementBy(Metric.tagged(creditsCharged, "source", source), amount) : Effect.void

/** `amount` credits were granted for `reason`. */
export const creditsGrantedFor = (reason: string, amount: number): Effect.Effect<void> =>
  amount > 0 ? Metric.incrementBy(Metric.tagged(creditsGranted, "reason", reason), amount) : Effect.void

// --- streams ---------------------------------------------------------------------------------

/** Server-sent event streams open on this gateway, by `kind` (chat, …). */
export const sseStreamsOpen = Metric.gauge("troupe_sse_streams_open", { description: "Server-sent event streams open" })

/** Count a stream as open while `effect`'s scope lives (use inside the stream's scope). */
export const trackStream = (kind = "chat") => {
  const gauge = Metric.tagged(sseStreamsOpen, "kind", kind)
  return Effect.acquireRelease(Metric.increment(gauge), () => Metric.incrementBy(gauge, -1))
}

/**
 * Make every series of this module visible from the first scrape (a series appears once it is
 * first used; a dashboard should show zeros, not "no data"). Run once when a role starts.
 */
export const touchAll: Effect.Effect<void> = Effect.asVoid(Effect.all([
  Metric.value(turnsStarted),
  Metric.value(turnsEnded),
  Metric.value(turnsRunning),
  Metric.value(turnDuration),
  Metric.value(turnFirstToken),
  Metric.value(skillCalls),
  Metric.value(skillCallDuration),
  Metric.value(llmRequests),
  Metric.value(llmRequestDuration),
  Metric.value(llmTokens),
  Metric.value(creditsCharged),
  Metric.value(creditsGranted),
  Metric.value(sseStreamsOpen),
  Metric.value(Telemetry.entityMessages),
  Metric.value(Telemetry.entityMessageFailures)
]))

/** Every series this module defines, by name (the dashboard test compares against these). */
export const names: ReadonlyArray<string> = [
  "troupe_turns_started_total",
  "troupe_turns_ended_total",
  "troupe_turns_running",
  "troupe_turn_duration_seconds",
  "troupe_turn_first_token_seconds",
  "troupe_skill_calls_total",
  "troupe_skill_call_duration_seconds",
  "troupe_llm_requests_total",
  "troupe_llm_request_duration_seconds",
  "troupe_llm_tokens_total",
  "troupe_credits_charged_total",
  "troupe_credits_granted_total",
  "troupe_sse_streams_open"
]
