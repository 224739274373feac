/**
 * The tokens the gateway hands out and checks:
 *
 * - access tokens: short-lived JWTs (HS256 with `TROUPE_JWT_SECRET`), `sub` = user id,
 *   `sid` = session (refresh-token family), `role`; only HS256 is accepted (`alg: none` and
 *   every other algorithm are refused), and issuer, audience and expiry are checked;
 * - refresh tokens: `rt.<userId>.<familyId>.<secret>`, stored by the User entity as a hash,
 *   rotated on every use;
 * - API keys: `trp_<userId>_<keyId>_<secret>`, stored as a hash.
 *
 * A revoked session is remembered in the shared cache until its last access token expires,
 * so logout takes effect at once on every gateway that shares the cache (Redis). The revocation
 * itself is durable in the database (the User entity marks the session revoked before the
 * gateway is told), and each gateway reads the recently revoked sessions when it starts and
 * every `refreshInterval` after: a restart (the embedded default's memory cache starts empty)
 * or a cache that lost its keys never lets a logged-out token back in.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"
import * as Jose from "jose"
import * as Schedule from "effect/Schedule"
import { Cache } from "../runtime/Cache.ts"
import { UserDirectory } from "../entities/user/directory.ts"
import { Role } from "../entities/user/protocol.ts"
import * as Secrets from "../entities/user/secrets.ts"
import * as Ids from "../runtime/Ids.ts"
import { GatewayConfig } from "./Config.ts"

const issuer = "troupe"
const audience = "troupe-api"

/** The claims of a valid access token. */
export interface AccessClaims {
  readonly userId: string
  readonly familyId: string
  readonly role: Role
  readonly expiresAt: number
}

/** Why an access token was refused. */
export type AccessError = "expired" | "invalid" | "revoked"

const Claims = Schema.Struct({ sub: Schema.String, sid: Schema.String, role: Role, exp: Schema.Number })
const decodeClaims = Schema.decodeUnknownOption(Claims)

/** A parsed refresh token. */
export interface RefreshToken {
  readonly userId: string
  readonly familyId: string
  readonly secret: string
  /** What the User entity stores. */
  readonly hash: string
}

/** A parsed API key. */
export interface ApiKey {
  readonly userId: string
  readonly keyId: string
  readonly hash: string
}

const idRe = /^[a-z0-9]{1,64}$/

/** Make a new refresh token for a family. */
export const newRefreshToken = (userId: string, familyId: string): RefreshToken => {
  const secret = Secrets.randomSecret()
  return { userId, familyId, secret, hash: Secrets.digest("refresh", secret) }
}

/** The string form of a refresh token. */
export const formatRefreshToken = (t: RefreshToken): string => `rt.${t.userId}.${t.familyId}.${t.secret}`

/** Parse a refresh token, or none if it is not one. */
export const parseRefreshToken = (value: string): Option.Option<RefreshToken> => {
  const parts = value.split(".")
  if (parts.length !== 4 || parts[0] !== "rt" || !idRe.test(parts[1]!) || !idRe.test(parts[2]!) || !/^[A-Za-z0-9_-]{20,100}$/.test(parts[3]!)) return Option.none()
  return Option.some({ userId: parts[1]!, familyId: parts[2]!, secret: parts[3]!, hash: Secrets.digest("refresh", parts[3]!) })
}

/** Make a new API key: its string (shown once) and what is stored. */
export const newApiKey = (userId: string): { readonly key: string; readonly keyId: string; readonly hash: string } => {
  const keyId = Ids.make("k", 12)
  const secret = Secrets.randomSecret(24).replace(/[-_]/g, "x")
  return { key: `trp_${userId}_${keyId}_${secret}`, keyId, hash: Secrets.digest("api-key", secret) }
}

/** Whether a bearer credential looks like an API key (rather than a JWT). */
export const isApiKey = (value: string): boolean => value.startsWith("trp_")

/** Parse an API key, or none if malformed. */
export const parseApiKey = (value: string): Option.Option<ApiKey> => {
  const parts = value.split("_")
  if (parts.length !== 4 || parts[0] !== "trp" || !idRe.test(parts[1]!) || !idRe.test(parts[2]!) || !/^[A-Za-z0-9]{16,100}$/.test(parts[3]!)) return Option.none()
  return Option.some({ userId: parts[1]!, keyId: parts[2]!, hash: Secrets.digest("api-key", parts[3]!) })
}

/** Signs and checks access tokens, and remembers revoked sessions. */
export class Tokens extends Context.Tag("troupe/gateway/Tokens")<Tokens, {
  readonly issue: (claims: { readonly userId: string; readonly familyId: string; readonly role: Role }) => Effect.Effect<{ readonly token: string; readonly expiresIn: number }>
  readonly verify: (token: string) => Effect.Effect<AccessClaims, AccessError>
  /** Refuse the access tokens of these sessions from now on. */
  readonly revoke: (familyIds: ReadonlyArray<string>) => Effect.Effect<void>
}>() {}

/** How often a gateway reads the revoked sessions again from the database. */
export const refreshInterval = Duration.seconds(30)

/** The token service. */
export const layer: Layer.Layer<Tokens, never, GatewayConfig | Cache | UserDirectory> = Layer.scoped(
  Tokens,
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const cache = yield* Cache
    const directory = yield* UserDirectory
    const key = NodeCrypto.createSecretKey(Redacted.value(config.jwtSecret))
    // verified tokens, until they expire: the signature is checked once per token, not per request
    const verified = new Map<string, AccessClaims>()
    const remember = (token: string, claims: AccessClaims) => {
      if (verified.size >= 10_000) verified.delete(verified.keys().next().value!)
      verified.set(token, claims)
    }
    const check = (token: string): Effect.Effect<AccessClaims, AccessError> => {
      const known = verified.get(token)
      if (known) {
        if (known.expiresAt * 1000 > Date.now()) return Effect.succeed(known)
        verified.delete(token)
        return Effect.fail("expired")
      }
      return Effect.tryPromise({
        try: () => Jose.jwtVerify(token, key, { algorithms: ["HS256"], issuer, audience, requiredClaims: ["sub", "exp", "sid"] }),
        catch: (e): AccessError => (e instanceof Jose.errors.JWTExpired ? "expired" : "invalid")
      }).pipe(
        Effect.flatMap(({ payload }) =>
          Option.match(decodeClaims(payload), {
            onNone: () => Effect.fail<AccessError>("invalid"),
            onSome: (c) => Effect.succeed<AccessClaims>({ userId: c.sub, familyId: c.sid, role: c.role, expiresAt: c.exp })
          })
        ),
        Effect.tap((claims) => Effect.sync(() => remember(token, claims)))
      )
    }
    const ttlSeconds = Math.round(Duration.toSeconds(config.accessTokenTtl))
    const revokedKey = (familyId: string) => `gw:revoked:${familyId}`
    // a revoked session's tokens stay refused until the last one issued before it has expired
    const keepMs = (ttlSeconds + 60) * 1000
    const revoked = new Map<string, number>() // family id → until (ms)
    const forget = () => {
      const now = Date.now()
      for (const [id, until] of revoked) if (until <= now) revoked.delete(id)
    }
    const load = directory.revokedSessions(new Date(Date.now() - keepMs)).pipe(
      Effect.tap((rows) =>
        Effect.forEach(rows, ({ familyId, revokedAt }) => {
          const until = revokedAt.getTime() + keepMs
          const left = until - Date.now()
          if (left <= 0) return Effect.void
          revoked.set(familyId, Math.max(until, revoked.get(familyId) ?? 0))
          return cache.set(revokedKey(familyId), "1", Duration.millis(left)).pipe(Effect.ignore)
        }, { discard: true })),
      Effect.tap(() => Effect.sync(forget))
    )
    // at start, before the first request: a failure here stops the gateway rather than let
    // revoked sessions back in (the database is required anyway)
    yield* Effect.retry(load, { times: 5, schedule: Schedule.spaced("1 second") }).pipe(Effect.orDie)
    yield* load.pipe(
      Effect.catchAll((e) => Effect.logWarning("Could not read revoked sessions", e.message)),
      Effect.repeat(Schedule.spaced(refreshInterval)),
      Effect.delay(refreshInterval),
      Effect.forkScoped
    )
    return Tokens.of({
      issue: (claims) =>
        Effect.promise(() =>
          new Jose.SignJWT({ sid: claims.familyId, role: claims.role })
            .setProtectedHeader({ alg: "HS256", typ: "JWT" })
            .setSubject(claims.userId)
            .setIssuer(issuer)
            .setAudience(audience)
            .setIssuedAt()
            .setExpirationTime(`${ttlSeconds}s`)
            .sign(key)
        ).pipe(Effect.map((token) => ({ token, expiresIn: ttlSeconds }))),
      verify: (token) =>
        check(token).pipe(
          Effect.flatMap((claims) =>
            (revoked.get(claims.familyId) ?? 0) > Date.now() ? Effect.fail<AccessError>("revoked") : cache.get(revokedKey(claims.familyId)).pipe(
              Effect.orElseSucceed(() => Option.none<string>()),
              Effect.flatMap((revoked) => (Option.isSome(revoked) ? Effect.fail<AccessError>("revoked") : Effect.succeed(claims)))
            )
          )
        ),
      revoke: (familyIds) =>
        Effect.forEach(familyIds, (id) => {
          revoked.set(id, Date.now() + keepMs)
          return cache.set(revokedKey(id), "1", Duration.millis(keepMs)).pipe(Effect.ignore)
        }, { discard: true })
    })
  })
)
