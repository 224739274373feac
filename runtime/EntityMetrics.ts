/**
 * Entity handler instrumentation: counts every message an entity handles, and failures, by
 * entity type and message tag (`troupe_entity_messages_total`).
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import { entityMessageFailures, entityMessages } from "./Telemetry.ts"

type AnyHandler = (request: never) => unknown

/** Wrap each handler so its messages are counted; streams are counted when they start. */
export const instrument = <H extends Record<string, AnyHandler>>(entityType: string, handlers: H): H => {
  const wrapped: Record<string, AnyHandler> = {}
  for (const [tag, handler] of Object.entries(handlers)) {
    const count = Metric.tagged(Metric.tagged(entityMessages, "entity", entityType), "tag", tag)
    const failures = Metric.tagged(Metric.tagged(entityMessageFailures, "entity", entityType), "tag", tag)
    wrapped[tag] = (request: never) => {
      const result = handler(request)
      if (Effect.isEffect(result)) {
        return Metric.increment(count).pipe(
          Effect.zipRight(result),
          Effect.tapErrorCause(() => Metric.increment(failures))
        )
      }
      if (Stream.StreamTypeId in (result as object)) {
        return Stream.onStart(result as Stream.Stream<unknown, unknown, unknown>, Metric.increment(count))
      }
      return result
    }
  }
  return wrapped as H
}
