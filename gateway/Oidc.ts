/**
 * Single sign-on with OpenID Connect (openid-client): the providers of `TROUPE_OIDC_PROVIDERS`,
 * the authorization code flow with PKCE, `state` and `nonce`. A login starts with a transaction
 * kept in the shared cache for 10 minutes under a random id that only the browser's cookie
 * carries (so a callback from another browser, or a second use, finds nothing); the callback
 * checks `state` against it, lets openid-client check the issuer (RFC 9207 `iss`), the ID token
 * (signature, issuer, audience, nonce) and the code verifier, and reads the claims of the ID token
 * and the userinfo endpoint. Who the claims sign in is decided by the handler.
 */
import * as Client from "openid-client"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Ids from "../runtime/Ids.ts"
import { Cache } from "../runtime/Cache.ts"
import { GatewayConfig, type OidcProvider } from "./Config.ts"
import { ApiFailure } from "./Errors.ts"

/** The cookie carrying the login transaction's id between the start and the callback. */
export const cookie = "troupe_oidc"

/** How long a started login may take. */
export const transactionTtl = Duration.minutes(10)

const Transaction = Schema.parseJson(Schema.Struct({
  provider: Schema.String,
  state: Schema.String,
  nonce: Schema.String,
  codeVerifier: Schema.String,
  returnTo: Schema.String
}))

/** What the provider says about the user (checked). */
export interface Claims {
  readonly subject: string
  readonly email: string | undefined
  readonly emailVerified: boolean
  readonly preferredUsername: string | undefined
  readonly name: string | undefined
  /** The values of the provider's role claim (empty when it has none or sends none). */
  readonly roleValues: ReadonlyArray<string>
}

const failure = (status: number, code: string, message: string, details?: unknown) =>
  new ApiFailure(details === undefined ? { status, code, message } : { status, code, message, details })

/** Whether the issuer is on this machine (http is allowed only there). */
const isLoopback = (issuer: string) => {
  const host = new URL(issuer).hostname
  return host === "localhost" || host === "127.0.0.1" || host === "[::1]"
}

/** Only local paths are returned to after login (no open redirect). */
export const safeReturnTo = (value: string | undefined): string =>
  value && /^\/(?![/\\])[\x21-\x7e]*$/.test(value) && value.length <= 500 ? value : "/"

/** Why openid-client refused the callback, as our failure. */
const refusal = (e: unknown): ApiFailure => {
  const error = e as { readonly message?: string; readonly code?: string; readonly error?: string; readonly cause?: unknown }
  // openid-client wraps what oauth4webapi found in `cause`
  const cause = error.cause as { readonly message?: string; readonly code?: string } | undefined
  const message = [error.message ?? String(e), cause?.message].filter(Boolean).join(": ")
  if (/"iss"/.test(message)) return failure(400, "oidc_wrong_issuer", "The answer came from another issuer than the provider's (a mix-up is refused)")
  if (/"nonce"/.test(message)) return failure(400, "oidc_nonce_mismatch", "The ID token was not made for this login (nonce)")
  if (error.code === "OAUTH_AUTHORIZATION_RESPONSE_ERROR" || cause?.code === "OAUTH_AUTHORIZATION_RESPONSE_ERROR") return failure(401, "oidc_denied", "The provider refused the login", { error: error.error })
  if (error.code === "OAUTH_RESPONSE_BODY_ERROR") return failure(401, "oidc_denied", "The provider refused the code", { error: error.error })
  return failure(502, "oidc_failed", "The login with the provider did not check out", { reason: message.slice(0, 200) })
}

/** The single sign-on helpers of the auth handlers. */
export const make = Effect.gen(function*() {
  const config = yield* GatewayConfig
  const cache = yield* Cache
  const providers = new Map((config.oidcProviders ?? []).map((p) => [p.id, p]))
  const discovered = new Map<string, Promise<Client.Configuration>>()

  /** The provider's configuration, discovered once (again after a failure). */
  const configuration = (provider: OidcProvider) =>
    Effect.tryPromise({
      try: () => {
        let pending = discovered.get(provider.id)
        if (!pending) {
          pending = Client.discovery(
            new URL(provider.issuer),
            provider.clientId,
            undefined,
            Client.ClientSecretBasic(Redacted.value(provider.clientSecret)),
            isLoopback(provider.issuer) ? { execute: [Client.allowInsecureRequests], timeout: 10 } : { timeout: 10 }
          )
          discovered.set(provider.id, pending)
          pending.catch(() => discovered.delete(provider.id))
        }
        return pending
      },
      catch: (e) => failure(502, "oidc_unavailable", `The provider's discovery document could not be read: ${(e as Error).message}`.slice(0, 300))
    })

  const publicUrl = Option.match(config.publicUrl, {
    onNone: () => Effect.fail(failure(409, "oidc_not_configured", "Single sign-on needs TROUPE_PUBLIC_URL (the callback address comes from it)")),
    onSome: (u) => Effect.succeed(u.replace(/\/+$/, ""))
  })

  const provider = (id: string) => {
    const p = providers.get(id)
    return p ? Effect.succeed(p) : Effect.fail(failure(404, "oidc_provider_not_found", "No such single sign-on provider"))
  }

  const redirectUri = (base: string, id: string) => `${base}/v1/auth/oidc/${id}/callback`
  const key = (transactionId: string) => `oidc:tx:${transactionId}`
  const unavailable = () => failure(503, "unavailable", "The login store is unavailable; retry")

  return {
    providers: [...providers.values()],

    /** Begin a login: where to send the browser and the transaction id for its cookie. */
    start: (id: string, returnTo: string | undefined) =>
      Effect.gen(function*() {
        const p = yield* provider(id)
        const base = yield* publicUrl
        const client = yield* configuration(p)
        const codeVerifier = Client.randomPKCECodeVerifier()
        const state = Client.randomState()
        const nonce = Client.randomNonce()
        const codeChallenge = yield* Effect.promise(() => Client.calculatePKCECodeChallenge(codeVerifier))
        const transactionId = Ids.make("o", 32)
        yield* cache.set(key(transactionId), Schema.encodeSync(Transaction)({ provider: id, state, nonce, codeVerifier, returnTo: safeReturnTo(returnTo) }), transactionTtl).pipe(
          Effect.mapError(unavailable)
        )
        const location = Client.buildAuthorizationUrl(client, {
          redirect_uri: redirectUri(base, id),
          scope: p.scopes.join(" "),
          code_challenge: codeChallenge,
          code_challenge_method: "S256",
          state,
          nonce
        })
        return { location: location.href, transactionId }
      }),

    /** Finish a login: the checked claims and where to go next. */
    callback: (id: string, transactionId: string | undefined, query: URLSearchParams) =>
      Effect.gen(function*() {
        const p = yield* provider(id)
        const base = yield* publicUrl
        if (!transactionId || !Ids.pattern.test(transactionId)) {
          return yield* failure(400, "oidc_state_mismatch", "No login was started in this browser (or it took longer than 10 minutes): start again")
        }
        const stored = yield* cache.get(key(transactionId)).pipe(Effect.mapError(unavailable))
        const tx = Option.getOrUndefined(Option.flatMap(stored, Schema.decodeOption(Transaction)))
        if (!tx || tx.provider !== id) return yield* failure(400, "oidc_state_mismatch", "No login was started in this browser (or it took longer than 10 minutes): start again")
        if (query.get("state") !== tx.state) return yield* failure(400, "oidc_state_mismatch", "The answer's state is not this login's: start again")
        // good once
        yield* cache.delete(key(transactionId)).pipe(Effect.ignore)
        const client = yield* configuration(p)
        const current = new URL(redirectUri(base, id))
        for (const [k, v] of query) current.searchParams.append(k, v)
        const tokens = yield* Effect.tryPromise({
          try: () => Client.authorizationCodeGrant(client, current, { pkceCodeVerifier: tx.codeVerifier, expectedState: tx.state, expectedNonce: tx.nonce, idTokenExpected: true }),
          catch: refusal
        })
        const idClaims = tokens.claims()
        if (!idClaims) return yield* failure(502, "oidc_failed", "The provider sent no ID token")
        const info = yield* Effect.tryPromise({
          try: () => (client.serverMetadata().userinfo_endpoint ? Client.fetchUserInfo(client, tokens.access_token, idClaims.sub) : Promise.resolve({} as Record<string, unknown>)),
          catch: refusal
        })
        const all: Record<string, unknown> = { ...idClaims, ...info }
        const text = (v: unknown) => (typeof v === "string" && v.length > 0 ? v : undefined)
        const role = p.roleClaim ? all[p.roleClaim] : undefined
        const claims: Claims = {
          subject: idClaims.sub,
          email: text(all.email),
          emailVerified: all.email_verified === true || all.email_verified === "true",
          preferredUsername: text(all.preferred_username),
          name: text(all.name),
          roleValues: Array.isArray(role) ? role.filter((v): v is string => typeof v === "string") : typeof role === "string" ? [role] : []
        }
        return { provider: p, claims, returnTo: tx.returnTo }
      })
  }
})

/** The role the provider's claims give, or none when the provider does not manage roles. */
export const roleOf = (provider: OidcProvider, claims: Claims): "admin" | "user" | undefined =>
  provider.roleClaim === undefined ? undefined : claims.roleValues.some((v) => provider.adminValues.includes(v)) ? "admin" : "user"
