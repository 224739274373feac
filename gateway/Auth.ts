/**
 * Authentication of requests: `Authorization: Bearer <access token | API key>`, or the access
 * token cookie set at login. Cookie-authenticated requests that change state must also carry
 * the CSRF token (`X-CSRF-Token` equal to the `troupe_csrf` cookie: double submit), so another
 * site cannot make a signed-in browser act; bearer requests need no CSRF token because browsers
 * never attach them on their own. Authenticated requests are rate limited per user.
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { Sharding } from "@effect/cluster/Sharding"
import { retryTransient } from "../runtime/Cluster.ts"
import { User } from "../entities/user/protocol.ts"
import type { Role } from "../entities/user/protocol.ts"
import * as Secrets from "../entities/user/secrets.ts"
import { ApiFailure, Unauthorized } from "./Errors.ts"
import { RateLimiter } from "./RateLimit.ts"
import * as Tokens from "./Tokens.ts"

/** Cookie names. */
export const cookies = { access: "troupe_access", refresh: "troupe_refresh", csrf: "troupe_csrf" } as const

/** Who is calling. */
export interface Principal {
  readonly userId: string
  readonly role: Role
  /** A signed-in session (JWT) or an API key. */
  readonly via: "session" | "api_key"
  /** The session of a JWT. */
  readonly familyId: Option.Option<string>
  /** The API key's id, scopes and spend cap. */
  readonly apiKey: Option.Option<{ readonly keyId: string; readonly scopes: ReadonlyArray<string>; readonly spendCap: number | null }>
}

/** The authenticated caller of a request. */
export class CurrentPrincipal extends Context.Tag("troupe/gateway/CurrentPrincipal")<CurrentPrincipal, Principal>() {}

/** The security middleware of every authenticated endpoint. */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("troupe/gateway/Authentication", {
  provides: CurrentPrincipal,
  failure: Unauthorized,
  security: {
    bearer: HttpApiSecurity.bearer,
    cookie: HttpApiSecurity.apiKey({ in: "cookie", key: cookies.access })
  }
}) {}

const unauthorized = (code: string, message: string) => new ApiFailure({ status: 401, code, message })

const unsafe = (method: string) => method !== "GET" && method !== "HEAD" && method !== "OPTIONS"

/** Authenticate a request (used by the middleware and by the SSE route). */
export const authenticate = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    const tokens = yield* Tokens.Tokens
    const users = yield* User.client
    const limiter = yield* RateLimiter
    const header = request.headers.authorization
    let principal: Principal
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
      if (!match) return yield* Effect.fail(unauthorized("invalid_authorization", "Authorization must be `Bearer <access token or API key>`"))
      const credential = match[1]!
      if (Tokens.isApiKey(credential)) {
        const parsed = Tokens.parseApiKey(credential)
        if (Option.isNone(parsed)) return yield* Effect.fail(unauthorized("invalid_api_key", "Malformed API key"))
        const grant = yield* retryTransient(users(parsed.value.userId).VerifyApiKey({ keyId: parsed.value.keyId, secretHash: parsed.value.hash })).pipe(
          Effect.mapError((e) =>
            e._tag === "ApiKeyInvalid"
              ? new ApiFailure({ status: 401, code: "invalid_api_key", message: "Unknown, revoked or expired API key", details: { reason: e.reason } })
              : new ApiFailure({ status: 503, code: "unavailable", message: "Could not check the API key; retry" })
          )
        )
        principal = {
          userId: grant.userId,
          role: grant.role,
          via: "api_key",
          familyId: Option.none(),
          apiKey: Option.some({ keyId: grant.keyId, scopes: grant.scopes, spendCap: grant.spendCap })
        }
      } else {
        principal = yield* fromJwt(tokens, credential)
      }
    } else {
      const cookie = request.cookies[cookies.access]
      if (!cookie) return yield* Effect.fail(unauthorized("unauthorized", "Authentication required: send `Authorization: Bearer <token>`"))
      principal = yield* fromJwt(tokens, cookie)
      if (unsafe(request.method)) {
        const csrf = request.cookies[cookies.csrf]
        const sent = request.headers["x-csrf-token"]
        if (!csrf || !sent || !Secrets.sameDigest(Secrets.digest(csrf), Secrets.digest(sent))) {
          return yield* Effect.fail(new ApiFailure({ status: 403, code: "csrf_failed", message: "Cookie-authenticated requests that change state need the X-CSRF-Token header (the troupe_csrf cookie's value)" }))
        }
      }
    }
    yield* limiter.consume("user", principal.userId)
    return principal
  })

const fromJwt = (tokens: Tokens.Tokens["Type"], token: string) =>
  tokens.verify(token).pipe(
    Effect.mapError((reason) =>
      reason === "expired"
        ? unauthorized("token_expired", "The access token expired: refresh it (POST /v1/auth/refresh)")
        : reason === "revoked"
        ? unauthorized("session_revoked", "This session was signed out")
        : unauthorized("invalid_token", "Invalid access token")
    ),
    Effect.map((c): Principal => ({ userId: c.userId, role: c.role, via: "session", familyId: Option.some(c.familyId), apiKey: Option.none() }))
  )

/** The middleware's implementation. */
export const layer: Layer.Layer<Authentication, never, Tokens.Tokens | RateLimiter | Sharding> = Layer.effect(
  Authentication,
  Effect.gen(function*() {
    const context = yield* Effect.context<Tokens.Tokens | RateLimiter | Sharding>()
    // the security entries are tried in order; the first (bearer) does the whole check, the
    // second only repeats its failure, so the client sees why its credential was refused
    const failures = new WeakMap<object, ApiFailure>()
    const run = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      return yield* authenticate(request).pipe(
        Effect.provide(context),
        Effect.tapError((f) => Effect.sync(() => failures.set(request, f)))
      )
    })
    return Authentication.of({
      bearer: () => run,
      cookie: () =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          Effect.fail(failures.get(request) ?? unauthorized("unauthorized", "Authentication required")))
    })
  })
)
