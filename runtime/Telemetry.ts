/**
 * Telemetry: structured JSON logs from Effect's logger, and the process's metrics rendered in
 * the Prometheus text format.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashMap from "effect/HashMap"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import * as NodePerfHooks from "node:perf_hooks"
import { background } from "./Background.ts"

/** One log line as written to stdout. */
export interface LogRecord {
  readonly timestamp: string
  readonly level: string
  readonly service: string
  readonly message: string
  readonly trace_id?: string
  readonly span_id?: string
  readonly context: Record<string, unknown>
  readonly cause?: string
}

const levelName = (level: LogLevel.LogLevel): string => level.label.toLowerCase()

const messageText = (message: unknown): { text: string; extra: Record<string, unknown> } => {
  const parts = Array.isArray(message) ? message : [message]
  const texts: Array<string> = []
  const extra: Record<string, unknown> = {}
  for (const part of parts) {
    if (typeof part === "string") texts.push(part)
    else if (part !== null && typeof part === "object" && !(part instanceof Error)) Object.assign(extra, Inspectable.toJSON(part))
    else texts.push(Inspectable.format(part))
  }
  return { text: texts.join(" "), extra }
}

/** Build the log record for one log call (exported for tests and other sinks). */
export const makeRecord = (service: string, options: Logger.Logger.Options<unknown>): LogRecord => {
  const { extra, text } = messageText(options.message)
  const context: Record<string, unknown> = { ...extra }
  for (const [key, value] of HashMap.toEntries(options.annotations)) context[key] = Inspectable.toJSON(value)
  const now = options.date.getTime()
  for (const span of List.toArray(options.spans)) context[`${span.label}_ms`] = now - span.startTime
  const fiberContext = FiberRefs.getOrDefault(options.context, FiberRef.currentContext)
  const span = Context.getOption(fiberContext, Tracer.ParentSpan)
  const record: {
    -readonly [K in keyof LogRecord]: LogRecord[K]
  } = {
    timestamp: options.date.toISOString(),
    level: levelName(options.logLevel),
    service,
    message: text,
    context
  }
  if (Option.isSome(span)) {
    record.trace_id = span.value.traceId
    record.span_id = span.value.spanId
  }
  if (!Cause.isEmpty(options.cause)) record.cause = Cause.pretty(options.cause, { renderErrorCause: true })
  return record
}

/** A logger writing one JSON object per line. */
export const jsonLogger = (service: string, write: (line: string) => void): Logger.Logger<unknown, void> =>
  Logger.make((options) => write(JSON.stringify(makeRecord(service, options))))

/** A logger for humans at a terminal. */
export const prettyLogger = (service: string, write: (line: string) => void): Logger.Logger<unknown, void> =>
  Logger.make((options) => {
    const r = makeRecord(service, options)
    const ctx = Object.keys(r.context).length > 0 ? ` ${JSON.stringify(r.context)}` : ""
    write(`${r.timestamp} ${r.level.toUpperCase().padEnd(5)} [${service}] ${r.message}${ctx}${r.cause ? `\n${r.cause}` : ""}`)
  })

/** Options of the logging layer. */
export interface LoggingOptions {
  readonly service: string
  readonly level: LogLevel.LogLevel
  readonly format: "json" | "pretty"
  /** Where lines go; stdout by default. */
  readonly write?: ((line: string) => void) | undefined
}

const stdoutWrite = (line: string) => {
  process.stdout.write(line + "\n")
}

/** Replace Effect's default logger with ours. */
export const layerLogging = (options: LoggingOptions): Layer.Layer<never> => {
  const write = options.write ?? stdoutWrite
  const logger = options.format === "json" ? jsonLogger(options.service, write) : prettyLogger(options.service, write)
  return Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(options.level))
}

// ---------------------------------------------------------------------------------------------
// Metrics

/** HTTP requests served, by method, route and status. */
export const httpRequests = Metric.counter("troupe_http_requests_total", {
  description: "HTTP requests served",
  incremental: true
})

/** HTTP request durations. */
export const httpRequestDuration = Metric.histogram(
  "troupe_http_request_duration_seconds",
  MetricBoundaries.fromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  "HTTP request duration in seconds"
)

/** Messages handled by entities, by entity type and message tag. */
export const entityMessages = Metric.counter("troupe_entity_messages_total", {
  description: "Messages handled by entities",
  incremental: true
})

/** Failed entity messages, by entity type and message tag. */
export const entityMessageFailures = Metric.counter("troupe_entity_message_failures_total", {
  description: "Entity messages whose handler failed",
  incremental: true
})

/**
 * A value read at scrape time (database pool, worker pools, caches): a gauge, or a counter kept
 * by its module (`*_total`, only ever growing) when `type` says so.
 */
export interface GaugeSample {
  readonly name: string
  readonly help: string
  readonly labels?: Record<string, string>
  readonly value: number
  readonly type?: "gauge" | "counter"
}

/** Extra gauges sampled when `/metrics` is scraped; modules register theirs. */
export class MetricSources extends Context.Tag("troupe/runtime/Telemetry/MetricSources")<
  MetricSources,
  {
    /** A source read synchronously at each scrape. */
    readonly register: (source: () => ReadonlyArray<GaugeSample>) => Effect.Effect<void>
    /** A source that needs an effect to read (a query, a worker pool's stats); a failing one is left out. */
    readonly registerEffect: (source: Effect.Effect<ReadonlyArray<GaugeSample>, unknown>) => Effect.Effect<void>
    readonly sample: Effect.Effect<ReadonlyArray<GaugeSample>>
  }
>() {}

/** The registry of scrape-time gauges. */
export const layerMetricSources: Layer.Layer<MetricSources> = Layer.sync(MetricSources, () => {
  const sources: Array<Effect.Effect<ReadonlyArray<GaugeSample>>> = []
  const none: ReadonlyArray<GaugeSample> = []
  return {
    register: (source) => Effect.sync(() => void sources.push(Effect.sync(source))),
    registerEffect: (source) => Effect.sync(() => void sources.push(source.pipe(Effect.timeout("2 seconds"), Effect.orElseSucceed(() => none)))),
    sample: Effect.map(
      Effect.forEach(sources, (s) => Effect.catchAllDefect(s, () => Effect.succeed(none)), { concurrency: "unbounded" }),
      (all) => all.flat()
    )
  }
})

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")
const labelText = (labels: ReadonlyArray<readonly [string, string]>) =>
  labels.length === 0 ? "" : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`
const sanitize = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_")
const num = (n: number | bigint) => (typeof n === "bigint" ? n.toString() : Number.isFinite(n) ? String(n) : n > 0 ? "+Inf" : n < 0 ? "-Inf" : "NaN")

/** The event loop's delay, sampled every 10 ms from the first scrape on. */
let loopDelay: NodePerfHooks.IntervalHistogram | undefined

/** Event-loop delay since the previous scrape (p50, p99, max), in seconds; the histogram restarts at each scrape. */
const eventLoopGauges = (): ReadonlyArray<GaugeSample> => {
  if (!loopDelay) {
    loopDelay = NodePerfHooks.monitorEventLoopDelay({ resolution: 10 })
    loopDelay.enable()
  }
  const h = loopDelay
  const s = (ns: number) => (Number.isFinite(ns) && h.count > 0 ? ns / 1e9 : 0)
  const out: ReadonlyArray<GaugeSample> = [
    { name: "nodejs_eventloop_delay_seconds", help: "Event-loop delay since the previous scrape, by quantile", labels: { quantile: "0.5" }, value: s(h.percentile(50)) },
    { name: "nodejs_eventloop_delay_seconds", help: "Event-loop delay since the previous scrape, by quantile", labels: { quantile: "0.99" }, value: s(h.percentile(99)) },
    { name: "nodejs_eventloop_delay_max_seconds", help: "Longest event-loop delay since the previous scrape", value: s(h.max) }
  ]
  h.reset()
  return out
}

/** Process gauges: memory, uptime and event-loop delay. */
export const processGauges = (): ReadonlyArray<GaugeSample> => {
  const m = process.memoryUsage()
  return [
    ...eventLoopGauges(),
    { name: "process_resident_memory_bytes", help: "Resident memory size in bytes", value: m.rss },
    { name: "nodejs_heap_used_bytes", help: "V8 heap used in bytes", value: m.heapUsed },
    { name: "nodejs_heap_total_bytes", help: "V8 heap total in bytes", value: m.heapTotal },
    { name: "nodejs_external_memory_bytes", help: "Memory used by C++ objects bound to JS (incl. WASM)", value: m.external },
    { name: "process_uptime_seconds", help: "Process uptime in seconds", value: process.uptime() },
    // background work (chat turns): a queue that stays long means turns wait for the event loop
    { name: "troupe_background_tasks_queued", help: "Background fiber steps waiting for a slice of the event loop", value: background.queued },
    { name: "troupe_background_slices_total", help: "Slices of the event loop given to background work", value: background.slices, type: "counter" },
    { name: "troupe_background_busy_seconds_total", help: "Time spent running background work", value: background.busyMs / 1000, type: "counter" }
  ]
}

/** Render every Effect metric plus the given gauges in the Prometheus text exposition format. */
export const renderPrometheus = (extra: ReadonlyArray<GaugeSample>): string => {
  type Family = { type: string; help: string; lines: Array<string> }
  const families = new Map<string, Family>()
  const family = (name: string, type: string, help: string) => {
    let f = families.get(name)
    if (!f) {
      f = { type, help, lines: [] }
      families.set(name, f)
    }
    return f
  }
  for (const pair of Metric.unsafeSnapshot()) {
    const key = pair.metricKey
    const name = sanitize(key.name)
    const help = Option.getOrElse(key.description, () => name)
    const labels = key.tags.map((t) => [sanitize(t.key), t.value] as const)
    const state = pair.metricState
    if (MetricState.isCounterState(state)) {
      family(name, "counter", help).lines.push(`${name}${labelText(labels)} ${num(state.count)}`)
    } else if (MetricState.isGaugeState(state)) {
      family(name, "gauge", help).lines.push(`${name}${labelText(labels)} ${num(state.value)}`)
    } else if (MetricState.isHistogramState(state)) {
      const f = family(name, "histogram", help)
      for (const [bound, count] of state.buckets) {
        f.lines.push(`${name}_bucket${labelText([...labels, ["le", num(bound)]])} ${count}`)
      }
      f.lines.push(`${name}_bucket${labelText([...labels, ["le", "+Inf"]])} ${state.count}`)
      f.lines.push(`${name}_sum${labelText(labels)} ${num(state.sum)}`)
      f.lines.push(`${name}_count${labelText(labels)} ${state.count}`)
    } else if (MetricState.isFrequencyState(state)) {
      const f = family(name, "counter", help)
      for (const [word, count] of state.occurrences) {
        f.lines.push(`${name}${labelText([...labels, ["key", word]])} ${count}`)
      }
    } else if (MetricState.isSummaryState(state)) {
      const f = family(name, "summary", help)
      for (const [q, value] of state.quantiles) {
        f.lines.push(`${name}${labelText([...labels, ["quantile", String(q)]])} ${Option.match(value, { onNone: () => "NaN", onSome: num })}`)
      }
      f.lines.push(`${name}_sum${labelText(labels)} ${num(state.sum)}`)
      f.lines.push(`${name}_count${labelText(labels)} ${state.count}`)
    }
  }
  for (const g of extra) {
    const name = sanitize(g.name)
    family(name, g.type ?? "gauge", g.help).lines.push(`${name}${labelText(Object.entries(g.labels ?? {}))} ${num(g.value)}`)
  }
  let out = ""
  for (const [name, f] of families) {
    out += `# HELP ${name} ${f.help.replace(/\n/g, " ")}\n# TYPE ${name} ${f.type}\n${f.lines.join("\n")}\n`
  }
  return out
}
