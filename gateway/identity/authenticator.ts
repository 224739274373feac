/**
 * A software WebAuthn authenticator for tests: an ES256 (P-256) key per credential made with
 * node:crypto, attestation `none`, discoverable credentials (the user handle is kept), user
 * presence and verification flags set, a signature counter per credential. It builds the
 * responses a browser returns from `navigator.credentials.create()` / `.get()` (as JSON), per
 * WebAuthn Level 2 §6.1 (authenticator data), §6.5 (attestation object), §7 (client data).
 */
import * as NodeCrypto from "node:crypto"

const b64u = (bytes: Uint8Array | Buffer): string => Buffer.from(bytes).toString("base64url")
const sha256 = (data: Uint8Array | string): Buffer => NodeCrypto.createHash("sha256").update(data).digest()

type Cbor = number | string | Uint8Array | ReadonlyArray<Cbor> | Map<Cbor, Cbor> | { readonly [k: string]: Cbor }

const head = (major: number, n: number): Buffer => {
  if (n < 24) return Buffer.from([(major << 5) | n])
  if (n < 256) return Buffer.from([(major << 5) | 24, n])
  if (n < 65536) {
    const b = Buffer.alloc(3)
    b[0] = (major << 5) | 25
    b.writeUInt16BE(n, 1)
    return b
  }
  const b = Buffer.alloc(5)
  b[0] = (major << 5) | 26
  b.writeUInt32BE(n, 1)
  return b
}

/** A small CBOR encoder (RFC 8949): integers, byte and text strings, arrays, maps. */
export const cbor = (value: Cbor): Buffer => {
  if (typeof value === "number") return value >= 0 ? head(0, value) : head(1, -1 - value)
  if (typeof value === "string") {
    const bytes = Buffer.from(value, "utf8")
    return Buffer.concat([head(3, bytes.length), bytes])
  }
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), Buffer.from(value)])
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(cbor)])
  const entries: Array<[Cbor, Cbor]> = value instanceof Map ? [...value.entries()] : Object.entries(value)
  return Buffer.concat([head(5, entries.length), ...entries.flatMap(([k, v]) => [cbor(k), cbor(v)])])
}

interface Credential {
  readonly id: Buffer
  readonly privateKey: NodeCrypto.KeyObject
  readonly rpId: string
  readonly userHandle: string
  counter: number
}

/** Options of `navigator.credentials.create()` as the server sends them (the fields used). */
export interface CreationOptions {
  readonly challenge: string
  readonly rp: { readonly id?: string; readonly name: string }
  readonly user: { readonly id: string; readonly name: string }
}

/** Options of `navigator.credentials.get()` (the fields used). */
export interface RequestOptions {
  readonly challenge: string
  readonly rpId?: string
}

/** A software authenticator holding any number of credentials. */
export class SoftAuthenticator {
  private readonly credentials = new Map<string, Credential>()

  /** `navigator.credentials.create()` at `origin`: a new ES256 credential, attestation `none`. */
  create(options: CreationOptions, origin: string) {
    const rpId = options.rp.id ?? new URL(origin).hostname
    const { privateKey, publicKey } = NodeCrypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
    const jwk = publicKey.export({ format: "jwk" })
    const cose = cbor(new Map<Cbor, Cbor>([
      [1, 2], // kty: EC2
      [3, -7], // alg: ES256
      [-1, 1], // crv: P-256
      [-2, Buffer.from(jwk.x!, "base64url")],
      [-3, Buffer.from(jwk.y!, "base64url")]
    ]))
    const id = NodeCrypto.randomBytes(16)
    const credentialIdLength = Buffer.alloc(2)
    credentialIdLength.writeUInt16BE(id.length)
    const authData = Buffer.concat([
      sha256(rpId),
      Buffer.from([0x01 | 0x04 | 0x40]), // user present, user verified, attested credential data
      Buffer.alloc(4), // sign count 0
      Buffer.alloc(16), // AAGUID: none
      credentialIdLength,
      id,
      cose
    ])
    const clientDataJSON = Buffer.from(JSON.stringify({ type: "webauthn.create", challenge: options.challenge, origin, crossOrigin: false }))
    this.credentials.set(b64u(id), { id, privateKey, rpId, userHandle: options.user.id, counter: 0 })
    return {
      id: b64u(id),
      rawId: b64u(id),
      type: "public-key" as const,
      response: {
        clientDataJSON: b64u(clientDataJSON),
        attestationObject: b64u(cbor({ fmt: "none", attStmt: {}, authData })),
        transports: ["internal" as const]
      },
      clientExtensionResults: {},
      authenticatorAttachment: "platform" as const
    }
  }

  /** `navigator.credentials.get()` at `origin` with one of the credentials (the first one by default). */
  get(options: RequestOptions, origin: string, credentialId?: string) {
    const credential = credentialId ? this.credentials.get(credentialId) : [...this.credentials.values()][0]
    if (!credential) throw new Error("no such credential")
    credential.counter += 1
    const count = Buffer.alloc(4)
    count.writeUInt32BE(credential.counter)
    const authData = Buffer.concat([sha256(options.rpId ?? credential.rpId), Buffer.from([0x01 | 0x04]), count])
    const clientDataJSON = Buffer.from(JSON.stringify({ type: "webauthn.get", challenge: options.challenge, origin, crossOrigin: false }))
    const signature = NodeCrypto.sign("sha256", Buffer.concat([authData, sha256(clientDataJSON)]), credential.privateKey) // DER, as WebAuthn wants for ES256
    return {
      id: b64u(credential.id),
      rawId: b64u(credential.id),
      type: "public-key" as const,
      response: {
        clientDataJSON: b64u(clientDataJSON),
        authenticatorData: b64u(authData),
        signature: b64u(signature),
        userHandle: credential.userHandle
      },
      clientExtensionResults: {},
      authenticatorAttachment: "platform" as const
    }
  }

  /** Another authenticator holding copies of these credentials, counters included (a clone). */
  clone(): SoftAuthenticator {
    const copy = new SoftAuthenticator()
    for (const [k, c] of this.credentials) copy.credentials.set(k, { ...c })
    return copy
  }

  /** The ids of the credentials held. */
  ids(): ReadonlyArray<string> {
    return [...this.credentials.keys()]
  }
}
