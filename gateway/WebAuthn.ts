/**
 * WebAuthn on the gateway's side: the relying party (id and origin from `TROUPE_PUBLIC_URL`),
 * the challenges it hands out (random, in the shared cache for 5 minutes, good once: a replayed
 * response finds its challenge spent), and the verification of a new passkey's attestation with
 * @simplewebauthn/server. Assertions are checked by the User entity, which owns the counters
 * (`entities/user/passkeys.ts`).
 */
import { generateAuthenticationOptions, generateRegistrationOptions, verifyRegistrationResponse } from "@simplewebauthn/server"
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON } from "@simplewebauthn/server"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Passkeys from "../entities/user/passkeys.ts"
import type { AttestationJson, PasskeyInfo } from "../entities/user/protocol.ts"
import * as Ids from "../runtime/Ids.ts"
import { Cache } from "../runtime/Cache.ts"
import { GatewayConfig } from "./Config.ts"
import { ApiFailure } from "./Errors.ts"

/** The relying party: this server, as `TROUPE_PUBLIC_URL` names it. */
export interface RelyingParty {
  readonly id: string
  readonly origin: string
  readonly name: string
}

/** How long a challenge is good for. */
export const challengeTtl = Duration.minutes(5)

const Stored = Schema.parseJson(Schema.Struct({ challenge: Schema.String, purpose: Schema.Literal("register", "login"), userId: Schema.NullOr(Schema.String) }))

/** A passkey about to be stored: what the attestation proved. */
export interface VerifiedPasskey {
  readonly credentialId: string
  readonly publicKey: string
  readonly counter: number
  readonly transports: ReadonlyArray<"ble" | "cable" | "hybrid" | "internal" | "nfc" | "smart-card" | "usb">
  readonly deviceType: "singleDevice" | "multiDevice"
  readonly backedUp: boolean
}

const failure = (status: number, code: string, message: string) => new ApiFailure({ status, code, message })

/** The WebAuthn helpers of the gateway's handlers. */
export const make = Effect.gen(function*() {
  const cache = yield* Cache
  const config = yield* GatewayConfig
  const rp: Option.Option<RelyingParty> = Option.map(config.publicUrl, (url) => {
    const u = new URL(url)
    return { id: u.hostname, origin: u.origin, name: config.issuer }
  })
  const relyingParty = Option.match(rp, {
    onNone: () => Effect.fail(failure(409, "passkeys_not_configured", "Passkeys need TROUPE_PUBLIC_URL (the relying party id and origin come from it)")),
    onSome: Effect.succeed
  })
  const key = (id: string) => `webauthn:challenge:${id}`
  const unavailable = () => failure(503, "unavailable", "The challenge store is unavailable; retry")

  /** Remember a challenge; its id. */
  const remember = (challenge: string, purpose: "register" | "login", userId: string | null) =>
    Effect.gen(function*() {
      const id = Ids.make("w", 24)
      yield* cache.set(key(id), Schema.encodeSync(Stored)({ challenge, purpose, userId }), challengeTtl).pipe(Effect.mapError(unavailable))
      return id
    })

  /** Spend a challenge: refused when it was spent already, expired or never handed out, or is another purpose's or user's. */
  const take = (challengeId: string, purpose: "register" | "login", userId: string | null) =>
    Effect.gen(function*() {
      if (!Ids.pattern.test(challengeId)) return yield* failure(400, "passkey_challenge_unknown", "Unknown or expired challenge: ask for new options")
      const uses = yield* cache.increment(`${key(challengeId)}:uses`, 1, challengeTtl).pipe(Effect.mapError(unavailable))
      const stored = yield* cache.get(key(challengeId)).pipe(Effect.mapError(unavailable))
      if (uses > 1) return yield* failure(400, "passkey_challenge_used", "This challenge was answered already (a replayed response): ask for new options")
      const value = Option.flatMap(stored, Schema.decodeOption(Stored))
      if (Option.isNone(value) || value.value.purpose !== purpose || value.value.userId !== userId) {
        return yield* failure(400, "passkey_challenge_unknown", "Unknown or expired challenge: ask for new options")
      }
      yield* cache.delete(key(challengeId)).pipe(Effect.ignore)
      return value.value.challenge
    })

  return {
    relyingParty,

    /** Options for `navigator.credentials.create()`: a discoverable credential, user verification preferred. */
    registrationOptions: (user: { readonly userId: string; readonly username: string; readonly displayName: string }, existing: ReadonlyArray<PasskeyInfo>) =>
      Effect.gen(function*() {
        const party = yield* relyingParty
        const options: PublicKeyCredentialCreationOptionsJSON = yield* Effect.promise(() =>
          generateRegistrationOptions({
            rpName: party.name,
            rpID: party.id,
            userName: user.username,
            userDisplayName: user.displayName || user.username,
            userID: new TextEncoder().encode(user.userId),
            attestationType: "none",
            excludeCredentials: existing.map((p) => ({ id: p.credentialId })),
            authenticatorSelection: { residentKey: "required", userVerification: "preferred" }
          })
        )
        return { challengeId: yield* remember(options.challenge, "register", user.userId), options }
      }),

    /** Options for `navigator.credentials.get()` without a list of credentials (discoverable): passkey login or second factor. */
    authenticationOptions: Effect.gen(function*() {
      const party = yield* relyingParty
      const options: PublicKeyCredentialRequestOptionsJSON = yield* Effect.promise(() =>
        generateAuthenticationOptions({ rpID: party.id, userVerification: "required", allowCredentials: [] })
      )
      return { challengeId: yield* remember(options.challenge, "login", null), options }
    }),

    /** Spend a login challenge: what the assertion must match. */
    expectLogin: (challengeId: string) =>
      Effect.gen(function*() {
        const party = yield* relyingParty
        const challenge = yield* take(challengeId, "login", null)
        return { challenge, origin: party.origin, rpId: party.id }
      }),

    /** Check a new passkey's attestation against the user's registration challenge. */
    verifyRegistration: (userId: string, challengeId: string, attestation: AttestationJson) =>
      Effect.gen(function*() {
        const party = yield* relyingParty
        const challenge = yield* take(challengeId, "register", userId)
        const data = Passkeys.clientData(attestation.response.clientDataJSON)
        if (data && data.origin !== party.origin) return yield* failure(400, "passkey_wrong_origin", "The passkey was made on another site than this server's TROUPE_PUBLIC_URL")
        const { transports, ...fields } = attestation.response
        const response: RegistrationResponseJSON = {
          id: attestation.id,
          rawId: attestation.rawId,
          type: "public-key",
          response: { ...fields, ...(transports ? { transports: [...transports] } : {}) },
          clientExtensionResults: attestation.clientExtensionResults ?? {},
          ...(attestation.authenticatorAttachment ? { authenticatorAttachment: attestation.authenticatorAttachment } : {})
        }
        const result = yield* Effect.tryPromise(() =>
          verifyRegistrationResponse({ response, expectedChallenge: challenge, expectedOrigin: party.origin, expectedRPID: party.id, requireUserVerification: false })
        ).pipe(Effect.mapError((e) => new ApiFailure({ status: 400, code: "passkey_invalid", message: `The passkey's attestation does not check out: ${e.error instanceof Error ? e.error.message : "invalid"}` })))
        if (!result.verified) return yield* failure(400, "passkey_invalid", "The passkey's attestation does not check out")
        const info = result.registrationInfo
        const verified: VerifiedPasskey = {
          credentialId: info.credential.id,
          publicKey: Buffer.from(info.credential.publicKey).toString("base64url"),
          counter: info.credential.counter,
          transports: attestation.response.transports ?? [],
          deviceType: info.credentialDeviceType,
          backedUp: info.credentialBackedUp
        }
        return verified
      }),

    /** The user a discoverable assertion names (its user handle is the user id), if any. */
    userHandle: (handle: string | undefined) => (handle ? Buffer.from(handle, "base64url").toString("utf8") : undefined)
  }
})

/** The WebAuthn helpers' type. */
export type WebAuthn = Effect.Effect.Success<typeof make>
