/**
 * Entity handler instrumentation: counts every message an entity handles, and failures, by
 * entity type and message tag (`troupe_entity_messages_total`); for guarded entity types
 * (`EntityGuard.guard`), a handler's deterministic defect answers the message with
 * `HandlerFailed` instead of restarting the entity and running the message again.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import * as EntityGuard from "./EntityGuard.ts"
import { entityMessageFailures, entityMessages } from "./Telemetry.ts"

type AnyHandler = (request: never) => unknown

/** Wrap each handler so its messages are counted; streams are counted when they start. */
export const instrument = <H extends Record<string, AnyHandler>>(entityType: string, handlers: H): H => {
  const wrapped: Record<string, AnyHandler> = {}
  for (const [tag, handler] of Object.entries(handlers)) {
    const count = Metric.tagged(Metric.tagged(entityMessages, "entity", entityType), "tag", tag)
    const failures = Metric.tagged(Metric.tagged(entityMessageFailures, "entity", entityType), "tag", tag)
    const guarded = EntityGuard.isGuarded(entityType)
    wrapped[tag] = (request: never) => {
      const result = handler(request)
      if (Effect.isEffect(result)) {
        const counted = Metric.increment(count).pipe(
          Effect.zipRight(result),
          Effect.tapErrorCause(() => Metric.increment(failures))
        )
        return guarded ? EntityGuard.guardEffect(entityType, tag, counted) : counted
      }
      if (Stream.StreamTypeId in (result as object)) {
        const counted = Stream.onStart(result as Stream.Stream<unknown, unknown, unknown>, Metric.increment(count))
        return guarded ? EntityGuard.guardStream(entityType, tag, counted) : counted
      }
      return result
    }
  }
  return wrapped as H
}
