/**
 * Rate limits with rate-limiter-flexible: on Redis when `REDIS_URL` is set (shared by every
 * gateway), in memory otherwise. A Redis outage falls back to a per-process memory limiter
 * rather than failing requests. A refused request fails with 429 `rate_limited` and
 * `Retry-After`.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible"
import type { RateLimiterAbstract } from "rate-limiter-flexible"
import { RedisConnection } from "../runtime/Cache.ts"
import { defaultLimits, GatewayConfig, type Limit } from "./Config.ts"
import { ApiFailure } from "./Errors.ts"

/** The limits the gateway applies. */
export type Bucket = "ip" | "user" | "auth" | "login" | "loginAccount" | "emailCode" | "mail"

/** The rate limiter service. */
export class RateLimiter extends Context.Tag("troupe/gateway/RateLimiter")<RateLimiter, {
  /** Count one request against `bucket` for `key`; fails with 429 when over the limit. */
  readonly consume: (bucket: Bucket, key: string) => Effect.Effect<void, ApiFailure>
  /** Fail with 429 if `key` is already over the limit of `bucket` (without counting). */
  readonly check: (bucket: Bucket, key: string) => Effect.Effect<void, ApiFailure>
  /** Count a failure (failed logins). */
  readonly penalize: (bucket: Bucket, key: string) => Effect.Effect<void>
  /**
   * Give back one point `consume` took (an attempt that turned out good). Attempts are consumed
   * before they are checked, atomically, so parallel attempts cannot all pass a `check` first.
   */
  readonly refund: (bucket: Bucket, key: string) => Effect.Effect<void>
  /** Forget `key` (a successful login clears its failures). */
  readonly reset: (bucket: Bucket, key: string) => Effect.Effect<void>
  readonly kind: "redis" | "memory"
}>() {}

const tooMany = (msBeforeNext: number) => {
  const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000))
  return new ApiFailure({
    status: 429,
    code: "rate_limited",
    message: `Too many requests: retry in ${seconds} s`,
    details: { retry_after_seconds: seconds },
    headers: { "retry-after": String(seconds) }
  })
}

/** The limiter, on Redis if the process has a Redis connection. */
export const layer: Layer.Layer<RateLimiter, never, GatewayConfig | RedisConnection> = Layer.effect(
  RateLimiter,
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const redis = yield* RedisConnection
    const mailLimit = config.rateLimits.mailPerAddress ?? { points: 5, duration: Duration.hours(1) }
    const make = (name: Bucket, limit: Limit): RateLimiterAbstract => {
      const options = { keyPrefix: `${config.rateLimitPrefix}${name}`, points: limit.points, duration: Math.round(Duration.toSeconds(limit.duration)) }
      const memory = new RateLimiterMemory(options)
      return Option.match(redis, {
        onNone: () => memory,
        onSome: (client) => new RateLimiterRedis({ ...options, storeClient: client, insuranceLimiter: memory })
      })
    }
    const limits: Record<Bucket, Limit> = {
      ip: config.rateLimits.perIp,
      user: config.rateLimits.perUser,
      auth: config.rateLimits.auth,
      login: config.rateLimits.loginFailures,
      loginAccount: config.rateLimits.loginAccountFailures ?? defaultLimits.loginAccountFailures,
      emailCode: config.rateLimits.emailCodeAttempts ?? defaultLimits.emailCodeAttempts,
      mail: mailLimit
    }
    const buckets = Object.keys(limits) as Array<Bucket>
    const limiters = Object.fromEntries(buckets.map((b) => [b, make(b, limits[b])])) as Record<Bucket, RateLimiterAbstract>
    const points = Object.fromEntries(buckets.map((b) => [b, limits[b].points])) as Record<Bucket, number>
    const refused = (e: unknown) => (e instanceof RateLimiterRes ? tooMany(e.msBeforeNext) : undefined)
    return RateLimiter.of({
      kind: Option.isSome(redis) ? "redis" : "memory",
      consume: (bucket, key) =>
        Effect.tryPromise({ try: () => limiters[bucket].consume(key), catch: (e) => e }).pipe(
          Effect.asVoid,
          Effect.catchAll((e) => {
            const failure = refused(e)
            return failure ? Effect.fail(failure) : Effect.logWarning("Rate limiter unavailable", e)
          })
        ),
      check: (bucket, key) =>
        Effect.tryPromise({ try: () => limiters[bucket].get(key), catch: (e) => e }).pipe(
          Effect.catchAll((e) => Effect.as(Effect.logWarning("Rate limiter unavailable", e), null)),
          Effect.flatMap((res) => (res && res.consumedPoints >= points[bucket] ? Effect.fail(tooMany(res.msBeforeNext)) : Effect.void))
        ),
      penalize: (bucket, key) =>
        Effect.tryPromise({ try: () => limiters[bucket].penalty(key, 1), catch: (e) => e }).pipe(Effect.ignore),
      refund: (bucket, key) => Effect.tryPromise({ try: () => limiters[bucket].reward(key, 1), catch: (e) => e }).pipe(Effect.ignore),
      reset: (bucket, key) => Effect.tryPromise({ try: () => limiters[bucket].delete(key), catch: (e) => e }).pipe(Effect.ignore)
    })
  })
)
