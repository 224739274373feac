/**
 * Poison messages. When an entity's handler dies, the cluster restarts the entity and runs the
 * same message again — forever, every ~10 s, if the failure is deterministic (a value Postgres
 * refuses, a bug), while the caller never gets an answer and the entity's other messages wait.
 *
 * A guarded entity answers such a message with the typed error `HandlerFailed` instead and goes
 * on with the next one. Only failures that may pass by themselves — the database unreachable, a
 * serialization failure, the cluster moving shards — still restart the entity and run the message
 * again, which is how a persisted command survives an outage.
 *
 * `guard(Entity.make(...))` adds `HandlerFailed` to every message's errors (so it travels between
 * runners and callers) and marks the entity type; `EntityMetrics.instrument` (which wraps every
 * handler) turns deterministic defects into it for guarded types.
 */
import * as Entity from "@effect/cluster/Entity"
import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { isTransient } from "./Cluster.ts"

/**
 * A handler failed in a way that running it again would not change: `unstorable` when storage
 * refused a value of the message (a Postgres data exception), `internal` otherwise.
 */
export class HandlerFailed extends Schema.TaggedError<HandlerFailed>()("HandlerFailed", {
  entity: Schema.String,
  tag: Schema.String,
  reason: Schema.Literal("unstorable", "internal")
}) {}

/** What a handler's defect means for the message. */
export type Verdict = "transient" | "unstorable" | "internal"

/** SQLSTATE classes of failures that pass: connection, transaction rollback (serialization, deadlock), resources, operator intervention, system. */
const transientClasses = new Set(["08", "40", "53", "57", "58"])

const sqlState = (cause: unknown): string | undefined => {
  for (let c = cause, depth = 0; typeof c === "object" && c !== null && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code
  }
  return undefined
}

/** Classify a handler's defect: may it pass if the message runs again? */
export const classify = (defect: unknown): Verdict => {
  if (isTransient(defect)) return "transient"
  if (typeof defect === "object" && defect !== null && (defect as { _tag?: unknown })._tag === "SqlError") {
    const code = sqlState((defect as { cause?: unknown }).cause)
    // no SQLSTATE: the statement never reached a server that judged it (connection lost, pool closed)
    if (code === undefined) return "transient"
    if (transientClasses.has(code.slice(0, 2))) return "transient"
    // data exceptions (bad JSON text, out-of-range timestamps, bad encodings) and program limits
    if (code.startsWith("22") || code.startsWith("54")) return "unstorable"
    return "internal"
  }
  return "internal"
}

const guardedTypes = new Set<string>()

/** Whether an entity type's protocol carries `HandlerFailed`. */
export const isGuarded = (entityType: string): boolean => guardedTypes.has(entityType)

/** An Rpc whose errors also include `HandlerFailed`. */
export type WithHandlerFailed<R> = R extends Rpc.Rpc<infer Tag, infer Payload, infer Success, infer Error, infer Middleware>
  ? Rpc.Rpc<Tag, Payload, Success, Schema.Union<[Error, typeof HandlerFailed]>, Middleware>
  : never

/** The entity with `HandlerFailed` among every message's errors; its deterministic defects answer with it. */
export const guard = <Type extends string, Rpcs extends Rpc.Any>(entity: Entity.Entity<Type, Rpcs>): Entity.Entity<Type, WithHandlerFailed<Rpcs>> => {
  guardedTypes.add(entity.type)
  const rpcs = [...entity.protocol.requests.values()].map((rpc) => {
    const r = rpc as unknown as Rpc.Rpc<string, Schema.Struct<{}>, Schema.Schema.Any, Schema.Schema.All>
    return r.setError(Schema.Union(r.errorSchema, HandlerFailed))
  })
  const group = RpcGroup.make(...rpcs).annotateContext(entity.protocol.annotations)
  return Entity.fromRpcGroup(entity.type, group) as unknown as Entity.Entity<Type, WithHandlerFailed<Rpcs>>
}

const answer = (entityType: string, tag: string, cause: Cause.Cause<unknown>) => {
  const defect = Cause.dieOption(cause)
  if (defect._tag === "None" || Cause.isInterrupted(cause)) return undefined
  const verdict = classify(defect.value)
  if (verdict === "transient") return undefined
  return Effect.logError("Handler failed: answering with HandlerFailed instead of running the message again", cause).pipe(
    Effect.annotateLogs({ entity: entityType, tag, reason: verdict }),
    Effect.zipRight(Effect.fail(new HandlerFailed({ entity: entityType, tag, reason: verdict })))
  )
}

/** An effect handler's deterministic defects as `HandlerFailed` (transient ones stay defects). */
export const guardEffect = <A, E, R>(entityType: string, tag: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | HandlerFailed, R> =>
  Effect.catchAllCause(effect, (cause): Effect.Effect<never, E | HandlerFailed> => answer(entityType, tag, cause) ?? Effect.failCause(cause))

/** A stream handler's deterministic defects as `HandlerFailed`. */
export const guardStream = <A, E, R>(entityType: string, tag: string, stream: Stream.Stream<A, E, R>): Stream.Stream<A, E | HandlerFailed, R> =>
  Stream.catchAllCause(stream, (cause): Stream.Stream<never, E | HandlerFailed> => {
    const handled = answer(entityType, tag, cause)
    return handled ? Stream.fromEffect(handled) : Stream.failCause(cause)
  })
