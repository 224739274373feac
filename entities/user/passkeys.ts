/**
 * Passkeys (WebAuthn) on the User entity's side: checking an assertion against a stored
 * credential with @simplewebauthn/server. The origin, the challenge and the signature counter are
 * checked first so each refusal has its own reason: a counter that does not move forward means
 * a cloned authenticator (WebAuthn §6.1.1), and is refused.
 */
import { verifyAuthenticationResponse } from "@simplewebauthn/server"
import type { AuthenticationResponseJSON, AuthenticatorTransportFuture } from "@simplewebauthn/server"
import * as Effect from "effect/Effect"
import type { AssertionJson } from "./protocol.ts"
import { PasskeyInfo, PasskeyRefused } from "./protocol.ts"
import * as Repo from "./repo.ts"

/** An assertion as the protocol carries it. */
export type AssertionOf = AssertionJson

/** What an assertion must match. */
export interface Expected {
  readonly challenge: string
  readonly origin: string
  readonly rpId: string
}

/** The client data of a response (undefined when it is not JSON). */
export const clientData = (clientDataJSON: string): { readonly type?: unknown; readonly challenge?: unknown; readonly origin?: unknown } | undefined => {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(clientDataJSON, "base64url").toString("utf8"))
    return typeof parsed === "object" && parsed !== null ? parsed : undefined
  } catch {
    return undefined
  }
}

/** The signature counter of authenticator data (bytes 33-36, big-endian), or undefined if too short. */
const signCount = (authenticatorData: string): number | undefined => {
  const bytes = Buffer.from(authenticatorData, "base64url")
  return bytes.length >= 37 ? bytes.readUInt32BE(33) : undefined
}

/** Check an assertion against a stored passkey: its new counter, or why it is refused. */
export const verify = (row: Repo.PasskeyRow, assertion: AssertionJson, expected: Expected): Effect.Effect<number, PasskeyRefused> =>
  Effect.gen(function*() {
    const data = clientData(assertion.response.clientDataJSON)
    if (!data || data.type !== "webauthn.get") return yield* new PasskeyRefused({ reason: "invalid" })
    if (data.origin !== expected.origin) return yield* new PasskeyRefused({ reason: "wrong_origin" })
    if (data.challenge !== expected.challenge) return yield* new PasskeyRefused({ reason: "wrong_challenge" })
    const stored = Number(row.counter)
    const counter = signCount(assertion.response.authenticatorData)
    if (counter === undefined) return yield* new PasskeyRefused({ reason: "invalid" })
    if ((counter > 0 || stored > 0) && counter <= stored) return yield* new PasskeyRefused({ reason: "cloned" })
    const response: AuthenticationResponseJSON = {
      id: assertion.id,
      rawId: assertion.rawId,
      type: "public-key",
      response: assertion.response,
      clientExtensionResults: assertion.clientExtensionResults ?? {},
      ...(assertion.authenticatorAttachment ? { authenticatorAttachment: assertion.authenticatorAttachment } : {})
    }
    const result = yield* Effect.tryPromise(() =>
      verifyAuthenticationResponse({
        response,
        expectedChallenge: expected.challenge,
        expectedOrigin: expected.origin,
        expectedRPID: expected.rpId,
        credential: {
          id: row.credential_id,
          publicKey: Uint8Array.from(Repo.bytes(row.public_key)),
          counter: stored,
          transports: Repo.json(row.transports) as Array<AuthenticatorTransportFuture>
        },
        requireUserVerification: true
      })
    ).pipe(Effect.orElseSucceed(() => undefined))
    if (!result?.verified) return yield* new PasskeyRefused({ reason: "invalid" })
    return result.authenticationInfo.newCounter
  })

/** A stored passkey as listed. */
export const toInfo = (row: Repo.PasskeyRow): PasskeyInfo =>
  new PasskeyInfo({
    credentialId: row.credential_id,
    name: row.name,
    deviceType: row.device_type,
    backedUp: row.backed_up,
    transports: Repo.json(row.transports),
    createdAt: new Date(row.created_at),
    lastUsedAt: row.last_used_at ? new Date(row.last_used_at) : null
  })
