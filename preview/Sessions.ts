/**
 * The signed-in sessions of the app the preview service runs beside. Embedded in `troupe start`,
 * the gateway provides this service, so the web app's own requests (its session cookie or access
 * token) may use the preview endpoints without an API key or a signed URL. A standalone preview
 * server has no sessions.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** Tells whether a request carries a valid session of the app. */
export class Sessions extends Context.Tag("troupe/preview/Sessions")<Sessions, {
  readonly signedIn: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<boolean>
}>() {}
