/**
 * Publisher keys and signatures: Ed25519 (node:crypto). A public key is written
 * `ed25519:<base64 of the 32 raw bytes>` everywhere (CLI output, admin API, trust list); a private
 * key is a PKCS#8 PEM file (mode 0600). Publishers sign the simple-signing payload that names an
 * artifact's manifest digest (`Oci.signingPayload`).
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { Buffer } from "node:buffer"
import * as NodeCrypto from "node:crypto"

/** `ed25519:<base64 of 32 bytes>`. */
export const PublicKey = Schema.String.pipe(
  Schema.pattern(/^ed25519:[A-Za-z0-9+/]{43}=$/, { message: () => "must be ed25519:<base64 of the 32 raw key bytes>" })
)

/** The DER prefix of an Ed25519 SubjectPublicKeyInfo (followed by the 32 raw bytes). */
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex")

/** A new key pair. */
export const generate = (): { readonly privateKeyPem: string; readonly publicKey: string } => {
  const { privateKey, publicKey } = NodeCrypto.generateKeyPairSync("ed25519")
  return { privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), publicKey: encodePublicKey(publicKey) }
}

/** `ed25519:<base64>` of a key object. */
export const encodePublicKey = (key: NodeCrypto.KeyObject): string => {
  const der = key.export({ type: "spki", format: "der" })
  return `ed25519:${Buffer.from(der.subarray(SPKI_PREFIX.length)).toString("base64")}`
}

/** Read a PEM private key; a message says what is wrong. */
export const readPrivateKey = (pem: string): Either.Either<NodeCrypto.KeyObject, string> => {
  try {
    const key = NodeCrypto.createPrivateKey(pem)
    return key.asymmetricKeyType === "ed25519" ? Either.right(key) : Either.left(`the key is ${key.asymmetricKeyType}, not Ed25519`)
  } catch (e) {
    return Either.left(`not a PEM private key: ${(e as Error).message}`)
  }
}

/** The public key of a private key. */
export const publicKeyOf = (privateKey: NodeCrypto.KeyObject): string => encodePublicKey(NodeCrypto.createPublicKey(privateKey))

/** Decode `ed25519:<base64>` into a key object. */
export const decodePublicKey = (publicKey: string): Either.Either<NodeCrypto.KeyObject, string> => {
  if (Either.isLeft(Schema.decodeUnknownEither(PublicKey)(publicKey))) return Either.left("must be ed25519:<base64 of the 32 raw key bytes>")
  const raw = Buffer.from(publicKey.slice("ed25519:".length), "base64")
  if (raw.byteLength !== 32) return Either.left("must be ed25519:<base64 of the 32 raw key bytes>")
  try {
    return Either.right(NodeCrypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" }))
  } catch (e) {
    return Either.left(`not an Ed25519 public key: ${(e as Error).message}`)
  }
}

/** Sign `payload`; the signature in base64. */
export const sign = (privateKey: NodeCrypto.KeyObject, payload: Uint8Array): string =>
  NodeCrypto.sign(null, payload, privateKey).toString("base64")

/** Whether `signatureBase64` is `publicKey`'s signature of `payload`. */
export const verify = (publicKey: string, payload: Uint8Array, signatureBase64: string): boolean => {
  const key = decodePublicKey(publicKey)
  if (Either.isLeft(key)) return false
  const signature = Buffer.from(signatureBase64, "base64")
  if (signature.byteLength !== 64) return false
  try {
    return NodeCrypto.verify(null, payload, key.right, signature)
  } catch {
    return false
  }
}
