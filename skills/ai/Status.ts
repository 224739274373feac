/**
 * Provider health across processes: every process that runs turns publishes its providers and
 * their breakers to the shared cache (Redis when configured), at once when their health changes
 * and every 10 s otherwise; the gateway answers `GET /v1/admin/providers` from there, so admins
 * see every runner's view, whichever process they ask. Keys expire 30 s after a process stops.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as NodeOs from "node:os"
import { Cache } from "../../runtime/Cache.ts"
import * as Ids from "../../runtime/Ids.ts"
import * as Llm from "./Llm.ts"

const indexKey = "troupe:llm:instances"
const statusKey = (instance: string) => `troupe:llm:status:${instance}`
const ttl = Duration.seconds(30)

/** What one process reported. */
export interface Report {
  readonly instance: string
  readonly at: string
  readonly summary: string
  readonly providers: ReadonlyArray<Llm.ProviderStatus>
}

const parse = <A>(text: Option.Option<string>, fallback: A): A => {
  if (Option.isNone(text)) return fallback
  try {
    return JSON.parse(text.value) as A
  } catch {
    return fallback
  }
}

/** Publish this process's providers (when there are any) while the layer lives. */
export const layerPublisher: Layer.Layer<never, never, Llm.Llm | Cache> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const llm = yield* Llm.Llm
    const cache = yield* Cache
    if (!llm.available) return
    const instance = `${NodeOs.hostname()}:${process.pid}:${Ids.make("", 6)}`
    let published = -1
    let publishedAt = 0
    const publish = Effect.gen(function*() {
      const version = llm.version()
      if (version === published && Date.now() - publishedAt < 10_000) return
      const report: Report = { instance, at: new Date().toISOString(), summary: llm.summary, providers: yield* llm.providers }
      yield* cache.set(statusKey(instance), JSON.stringify(report), ttl)
      const index = parse<Array<{ instance: string; at: number }>>(yield* cache.get(indexKey), [])
      const now = Date.now()
      const next = [...index.filter((i) => i.instance !== instance && now - i.at < Duration.toMillis(ttl)), { instance, at: now }]
      yield* cache.set(indexKey, JSON.stringify(next), Duration.minutes(5))
      published = version
      publishedAt = now
    }).pipe(Effect.catchAll((e) => Effect.logDebug("LLM status not published", e)))
    yield* publish.pipe(Effect.repeat(Schedule.spaced("250 millis")), Effect.forkScoped)
  })
)

/** What every live process reported, newest first. */
export const reports: Effect.Effect<ReadonlyArray<Report>, never, Cache> = Effect.gen(function*() {
  const cache = yield* Cache
  const index = parse<Array<{ instance: string; at: number }>>(yield* cache.get(indexKey), [])
  const found = yield* Effect.forEach(index, (i) => Effect.map(cache.get(statusKey(i.instance)), (text) => parse<Report | null>(text, null)))
  return found.filter((r): r is Report => r !== null).sort((a, b) => b.at.localeCompare(a.at))
}).pipe(Effect.catchAll(() => Effect.succeed([])))
