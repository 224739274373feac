/**
 * The shared cache: Redis (or Dragonfly) when `REDIS_URL` is set, otherwise an in-memory LRU.
 * Values are strings; callers encode. Both implementations honour TTLs and atomic counters.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { Redis } from "ioredis"
import { TroupeConfig } from "./Config.ts"

/** The cache could not be reached or answered with an error. */
export class CacheError extends Schema.TaggedError<CacheError>()("CacheError", {
  operation: Schema.String,
  message: Schema.String
}) {}

/** The cache service. */
export interface CacheService {
  readonly kind: "redis" | "memory"
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, CacheError>
  readonly set: (key: string, value: string, ttl?: Duration.DurationInput) => Effect.Effect<void, CacheError>
  /** Set only if absent; `true` when this call set it. */
  readonly setIfAbsent: (key: string, value: string, ttl: Duration.DurationInput) => Effect.Effect<boolean, CacheError>
  readonly delete: (key: string) => Effect.Effect<void, CacheError>
  /** Atomically add `by` and return the new value; the TTL is set when the key is created. */
  readonly increment: (key: string, by?: number, ttl?: Duration.DurationInput) => Effect.Effect<number, CacheError>
  readonly ping: Effect.Effect<void, CacheError>
  /** Entries held (memory) or keys in the database (redis), for health details. */
  readonly size: Effect.Effect<number, CacheError>
}

/** The cache tag. */
export class Cache extends Context.Tag("troupe/runtime/Cache")<Cache, CacheService>() {}

/** The raw Redis connection, for libraries that need one (rate limiting); absent on the memory cache. */
export class RedisConnection extends Context.Tag("troupe/runtime/Cache/RedisConnection")<RedisConnection, Option.Option<Redis>>() {}

const millis = (ttl: Duration.DurationInput) => Math.max(1, Math.round(Duration.toMillis(Duration.decode(ttl))))

/** An in-memory cache bounded to `maxEntries` (least recently used entries go first). */
export const makeMemory = (options: { readonly maxEntries: number; readonly now?: () => number }): CacheService => {
  const now = options.now ?? Date.now
  const entries = new Map<string, { value: string; expiresAt: number }>()
  const live = (key: string) => {
    const entry = entries.get(key)
    if (!entry) return undefined
    if (entry.expiresAt <= now()) {
      entries.delete(key)
      return undefined
    }
    // refresh recency
    entries.delete(key)
    entries.set(key, entry)
    return entry
  }
  const put = (key: string, value: string, ttl?: Duration.DurationInput) => {
    entries.delete(key)
    entries.set(key, { value, expiresAt: ttl === undefined ? Number.POSITIVE_INFINITY : now() + millis(ttl) })
    while (entries.size > options.maxEntries) {
      const oldest = entries.keys().next().value
      if (oldest === undefined) break
      entries.delete(oldest)
    }
  }
  return {
    kind: "memory",
    get: (key) => Effect.sync(() => Option.fromNullable(live(key)?.value)),
    set: (key, value, ttl) => Effect.sync(() => put(key, value, ttl)),
    setIfAbsent: (key, value, ttl) =>
      Effect.sync(() => {
        if (live(key)) return false
        put(key, value, ttl)
        return true
      }),
    delete: (key) => Effect.sync(() => void entries.delete(key)),
    increment: (key, by = 1, ttl) =>
      Effect.sync(() => {
        const entry = live(key)
        const next = (entry ? Number(entry.value) : 0) + by
        if (entry) entry.value = String(next)
        else put(key, String(next), ttl)
        return next
      }),
    ping: Effect.void,
    size: Effect.sync(() => entries.size)
  }
}

/** The in-memory cache as a layer. */
export const layerMemory = (options: { readonly maxEntries: number }): Layer.Layer<Cache | RedisConnection> =>
  Layer.merge(Layer.sync(Cache, () => makeMemory(options)), Layer.succeed(RedisConnection, Option.none()))

const redisOp = <A>(operation: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new CacheError({ operation, message: cause instanceof Error ? cause.message : String(cause) })
  })

/** A cache on an existing Redis connection; keys are prefixed with `keyPrefix`. */
export const makeRedis = (redis: Redis, keyPrefix: string): CacheService => {
  const k = (key: string) => keyPrefix + key
  return {
    kind: "redis",
    get: (key) => Effect.map(redisOp("get", () => redis.get(k(key))), Option.fromNullable),
    set: (key, value, ttl) =>
      Effect.asVoid(redisOp("set", () => ttl === undefined ? redis.set(k(key), value) : redis.set(k(key), value, "PX", millis(ttl)))),
    setIfAbsent: (key, value, ttl) =>
      Effect.map(redisOp("setIfAbsent", () => redis.set(k(key), value, "PX", millis(ttl), "NX")), (r) => r === "OK"),
    delete: (key) => Effect.asVoid(redisOp("delete", () => redis.del(k(key)))),
    increment: (key, by = 1, ttl) =>
      redisOp("increment", async () => {
        const multi = redis.multi().incrby(k(key), by)
        if (ttl !== undefined) multi.pexpire(k(key), millis(ttl), "NX")
        const results = await multi.exec()
        const first = results?.[0]
        if (!first || first[0]) throw first?.[0] ?? new Error("transaction aborted")
        return Number(first[1])
      }),
    ping: Effect.asVoid(redisOp("ping", () => redis.ping())),
    size: redisOp("size", () => redis.dbsize())
  }
}

/** Connect to Redis at `url`; fails if it cannot be reached within 5 s. */
export const layerRedis = (options: { readonly url: Redacted.Redacted; readonly keyPrefix: string }): Layer.Layer<Cache | RedisConnection, CacheError> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const redis = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new Redis(Redacted.value(options.url), {
            lazyConnect: true,
            maxRetriesPerRequest: 2,
            connectTimeout: 5_000,
            enableOfflineQueue: true
          })
        ),
        (redis) => Effect.promise(() => redis.quit().catch(() => redis.disconnect()))
      )
      redis.on("error", () => {
        // reconnects on its own; each command reports its own failure
      })
      yield* redisOp("connect", () => redis.connect()).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new CacheError({ operation: "connect", message: "timed out connecting to Redis" }) })
      )
      return Context.make(Cache, makeRedis(redis, options.keyPrefix)).pipe(Context.add(RedisConnection, Option.some(redis)))
    })
  )

/** The cache chosen by `TroupeConfig`. */
export const layer: Layer.Layer<Cache | RedisConnection, CacheError, TroupeConfig> = Layer.unwrapEffect(
  Effect.map(TroupeConfig, ({ cache }) =>
    cache._tag === "Redis" ? layerRedis(cache) : layerMemory({ maxEntries: cache.maxEntries })
  )
)
