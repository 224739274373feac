/**
 * Passkeys in the browser: the WebAuthn API (`navigator.credentials`) fed with the JSON options the
 * server hands out (`POST /v1/auth/passkey/options`, `POST /v1/me/passkeys/options`), its answers
 * sent back as JSON (WebAuthn Level 3's `…JSON` shapes, base64url for the binary fields). Written
 * by hand rather than with `PublicKeyCredential.parse…FromJSON`/`toJSON`, which older browsers lack.
 */
import { ApiError, post } from "./api.ts"
import { loadSession } from "./session.svelte.ts"

const toBase64Url = (buffer: ArrayBuffer): string => {
  let text = ""
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte)
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
}

const fromBase64Url = (value: string): ArrayBuffer => {
  const text = atob(value.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((value.length + 3) % 4))
  const bytes = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i)
  return bytes.buffer
}

interface CredentialDescriptorJson {
  id: string
  type: "public-key"
  transports?: AuthenticatorTransport[]
}

/** `PublicKeyCredentialCreationOptionsJSON` (the fields the server sends). */
export interface CreationOptionsJson {
  challenge: string
  rp: { id?: string; name: string }
  user: { id: string; name: string; displayName: string }
  pubKeyCredParams: PublicKeyCredentialParameters[]
  timeout?: number
  excludeCredentials?: CredentialDescriptorJson[]
  authenticatorSelection?: AuthenticatorSelectionCriteria
  attestation?: AttestationConveyancePreference
  extensions?: AuthenticationExtensionsClientInputs
}

/** `PublicKeyCredentialRequestOptionsJSON`. */
export interface RequestOptionsJson {
  challenge: string
  timeout?: number
  rpId?: string
  allowCredentials?: CredentialDescriptorJson[]
  userVerification?: UserVerificationRequirement
  extensions?: AuthenticationExtensionsClientInputs
}

/** What the server hands out: the options and the id of their challenge. */
export interface PasskeyOptions<T> {
  challenge_id: string
  options: T
}

const descriptor = (d: CredentialDescriptorJson): PublicKeyCredentialDescriptor => ({
  type: d.type,
  id: fromBase64Url(d.id),
  ...(d.transports ? { transports: d.transports } : {})
})

/** The transports the server knows (a browser may name newer ones). */
const transports = new Set(["ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb"])

/** Whether this browser can use passkeys at all. */
export const passkeysSupported = (): boolean => typeof window !== "undefined" && typeof window.PublicKeyCredential === "function" && !!navigator.credentials

/** Turn the browser's refusals into messages a person can act on. */
const refusal = (e: unknown): Error => {
  if (e instanceof ApiError) return e
  const name = e instanceof DOMException ? e.name : ""
  if (name === "NotAllowedError" || name === "AbortError") return new ApiError(0, "passkey_cancelled", "No passkey was used (cancelled or timed out).")
  if (name === "InvalidStateError") return new ApiError(0, "passkey_exists", "This device already holds a passkey for your account.")
  if (name === "SecurityError") return new ApiError(0, "passkey_wrong_site", "Passkeys work only at this server's public address (its TROUPE_PUBLIC_URL). Open Troupe there and try again.")
  if (name === "NotSupportedError") return new ApiError(0, "passkey_unsupported", "This browser or device cannot make that kind of passkey.")
  return new ApiError(0, "passkey_failed", e instanceof Error && e.message ? e.message : "The passkey did not work.")
}

const refusals: Record<string, string> = {
  passkey_unknown: "This passkey is not registered here (it may have been removed). Sign in with your password.",
  passkey_cloned: "This passkey was refused: its counter went backwards, as a copied authenticator's does.",
  passkey_invalid: "The passkey's answer does not check out. Try again.",
  passkey_wrong_origin: "The passkey was used at another address than this server's public one.",
  passkey_challenge_used: "That passkey answer was used already. Try again.",
  passkey_challenge_unknown: "The passkey request expired. Try again.",
  passkeys_not_configured: "Passkeys are not set up on this server (TROUPE_PUBLIC_URL).",
  passkey_exists: "This passkey is registered already."
}

/** The server's passkey refusals in words for people (the API's own messages are for developers). */
export const readable = (e: unknown): Error =>
  e instanceof ApiError && refusals[e.code] ? new ApiError(e.status, e.code, refusals[e.code]!, e.details, e.requestId) : refusal(e)

/** Run a WebAuthn ceremony: the credential made or used, the browser's refusals in words. */
const ceremony = async (run: () => Promise<Credential | null>): Promise<PublicKeyCredential> => {
  let credential: Credential | null
  try {
    credential = await run()
  } catch (e) {
    throw refusal(e)
  }
  if (!(credential instanceof PublicKeyCredential)) throw refusal(undefined)
  return credential
}

/** `PublicKeyCredential.toJSON()`: the envelope around a response's fields. */
const asJson = <R>(credential: PublicKeyCredential, response: R) => ({
  id: credential.id,
  rawId: toBase64Url(credential.rawId),
  type: "public-key" as const,
  response,
  clientExtensionResults: credential.getClientExtensionResults(),
  ...(credential.authenticatorAttachment ? { authenticatorAttachment: credential.authenticatorAttachment } : {})
})

/** `navigator.credentials.create()` with the server's options; the new credential as JSON. */
export const createPasskey = async (options: CreationOptionsJson) => {
  const credential = await ceremony(() =>
    navigator.credentials.create({
      publicKey: {
        ...options,
        challenge: fromBase64Url(options.challenge),
        user: { ...options.user, id: fromBase64Url(options.user.id) },
        excludeCredentials: (options.excludeCredentials ?? []).map(descriptor)
      }
    })
  )
  const response = credential.response as AuthenticatorAttestationResponse
  const publicKey = response.getPublicKey?.()
  return asJson(credential, {
    clientDataJSON: toBase64Url(response.clientDataJSON),
    attestationObject: toBase64Url(response.attestationObject),
    transports: (response.getTransports?.() ?? []).filter((t) => transports.has(t)),
    authenticatorData: toBase64Url(response.getAuthenticatorData()),
    ...(publicKey ? { publicKey: toBase64Url(publicKey), publicKeyAlgorithm: response.getPublicKeyAlgorithm() } : {})
  })
}

/** `navigator.credentials.get()` with the server's options; the assertion as JSON. */
export const usePasskey = async (options: RequestOptionsJson) => {
  const credential = await ceremony(() =>
    navigator.credentials.get({
      publicKey: {
        ...options,
        challenge: fromBase64Url(options.challenge),
        allowCredentials: (options.allowCredentials ?? []).map(descriptor)
      }
    })
  )
  const response = credential.response as AuthenticatorAssertionResponse
  return asJson(credential, {
    clientDataJSON: toBase64Url(response.clientDataJSON),
    authenticatorData: toBase64Url(response.authenticatorData),
    signature: toBase64Url(response.signature),
    ...(response.userHandle ? { userHandle: toBase64Url(response.userHandle) } : {})
  })
}

/** A passkey's answer to a fresh login challenge: `{challenge_id, response}` (for passkey login or as the second factor). */
export const passkeyAnswer = async () => {
  try {
    const { challenge_id, options } = await post<PasskeyOptions<RequestOptionsJson>>("/v1/auth/passkey/options", undefined, { noRefresh: true })
    return { challenge_id, response: await usePasskey(options) }
  } catch (e) {
    throw readable(e)
  }
}

/** Sign in with a passkey alone (a discoverable credential: the browser offers the account's passkeys). */
export const signInWithPasskey = async () => {
  const answer = await passkeyAnswer()
  try {
    await post("/v1/auth/passkey/login", answer, { noRefresh: true })
  } catch (e) {
    throw readable(e)
  }
  await loadSession()
}

/** Register a passkey on this device under `name`; the passkey as listed. */
export const addPasskey = async <T>(name: string): Promise<T> => {
  try {
    const { challenge_id, options } = await post<PasskeyOptions<CreationOptionsJson>>("/v1/me/passkeys/options")
    const response = await createPasskey(options)
    return await post<T>("/v1/me/passkeys", { challenge_id, name, response })
  } catch (e) {
    throw readable(e)
  }
}
