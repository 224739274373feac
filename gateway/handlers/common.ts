/** What the handlers share: entity calls, the client address, session cookies, and conversions. */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { retryTransient } from "../../runtime/Cluster.ts"
import type { Profile } from "../../entities/user/protocol.ts"
import { cookies } from "../Auth.ts"
import type { GatewaySettings } from "../Config.ts"
import * as Errors from "../Errors.ts"

/** Call an entity: retried while the cluster is moving shards, errors mapped to HTTP failures. */
export const call = <A, E extends Errors.EntityError | Errors.ApiFailure, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Errors.ApiFailure, R> =>
  Errors.entity(retryTransient(effect))

/** The client's address (the first `X-Forwarded-For` hop when behind a trusted proxy). */
export const clientIp = (request: HttpServerRequest.HttpServerRequest, trustProxy: boolean): string => {
  if (trustProxy) {
    const forwarded = request.headers["x-forwarded-for"]
    if (forwarded) return forwarded.split(",")[0]!.trim().slice(0, 64)
  }
  const address = request.remoteAddress
  return (address._tag === "Some" ? address.value : "unknown").replace(/^::ffff:/, "")
}

/** The user as the API shows them. */
export const toMe = (p: Profile) => ({
  id: p.userId,
  email: p.email,
  username: p.username,
  display_name: p.displayName,
  role: p.role,
  email_verified: p.emailVerified,
  totp_enabled: p.totpEnabled,
  settings: p.settings,
  created_at: p.createdAt
})

/** Set the session cookies on a response: access and refresh tokens HttpOnly, the CSRF token readable by scripts. */
export const withSessionCookies = (
  response: HttpServerResponse.HttpServerResponse,
  config: GatewaySettings,
  session: { readonly accessToken: string; readonly refreshToken: string; readonly csrfToken: string }
) =>
  HttpServerResponse.unsafeSetCookies(response, [
    [cookies.access, session.accessToken, { httpOnly: true, sameSite: "strict", secure: config.secureCookies, path: "/", maxAge: config.accessTokenTtl }],
    [cookies.refresh, session.refreshToken, { httpOnly: true, sameSite: "strict", secure: config.secureCookies, path: "/v1/auth", maxAge: Duration.days(30) }],
    [cookies.csrf, session.csrfToken, { httpOnly: false, sameSite: "strict", secure: config.secureCookies, path: "/", maxAge: Duration.days(30) }]
  ])

/** Expire the session cookies. */
export const withoutSessionCookies = (response: HttpServerResponse.HttpServerResponse, config: GatewaySettings) =>
  HttpServerResponse.unsafeSetCookies(response, [
    [cookies.access, "", { httpOnly: true, sameSite: "strict", secure: config.secureCookies, path: "/", maxAge: 0 }],
    [cookies.refresh, "", { httpOnly: true, sameSite: "strict", secure: config.secureCookies, path: "/v1/auth", maxAge: 0 }],
    [cookies.csrf, "", { httpOnly: false, sameSite: "strict", secure: config.secureCookies, path: "/", maxAge: 0 }]
  ])

/** A 204 response. */
export const noContent = () => HttpServerResponse.empty({ status: 204 })
