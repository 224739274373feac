/**
 * Envelope encryption with AES-256-GCM (`node:crypto`, which Deno implements too). Encryption and
 * decryption run synchronously: for the small bodies of a chat they cost microseconds, far less
 * than handing each one to WebCrypto's thread pool and waiting for a promise.
 *
 * - A **master key** (32 bytes) wraps data keys. It comes from `TROUPE_MASTER_KEY` (base64), or on
 *   the embedded default is generated once into `<data dir>/master.key` (mode 0600). Older master
 *   keys stay usable for unwrapping (`TROUPE_PREVIOUS_MASTER_KEYS`) until a rotation re-wraps
 *   every data key with the current one — without touching the data they encrypt.
 * - A **data key** per owner (a chat, a user's secrets) encrypts that owner's data. Destroying it
 *   makes the owner's data unreadable (crypto-shredding).
 * - Ciphertext = header (`version`, key id) ‖ nonce ‖ AES-GCM output; the caller may bind it to
 *   its place with associated data, so a ciphertext moved to another row does not decrypt.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import type { Migration } from "./Migrations.ts"

/** Version byte of the ciphertext format. */
export const formatVersion = 1

/** A key or ciphertext could not be used (bad master key, corrupt ciphertext, wrong context). */
export class KeyRingError extends Schema.TaggedError<KeyRingError>()("KeyRingError", {
  message: Schema.String
}) {}

/** The data key was destroyed (or never existed): its data is gone for good. */
export class DataKeyDestroyed extends Schema.TaggedError<DataKeyDestroyed>()("DataKeyDestroyed", {
  keyId: Schema.String
}) {}

/** A master key and its id (derived from the key, so nothing else needs configuring). */
export interface MasterKey {
  readonly id: string
  readonly key: NodeCrypto.KeyObject
}

/** Master keys: the current one wraps; all of them unwrap. */
export interface MasterKeys {
  readonly current: MasterKey
  readonly previous: ReadonlyArray<MasterKey>
}

const toHex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")

/** Import 32 raw bytes as a master key. */
export const importMasterKey = (raw: Uint8Array): MasterKey => {
  if (raw.byteLength !== 32) throw new Error(`a master key is 32 bytes, got ${raw.byteLength}`)
  const digest = NodeCrypto.createHash("sha256").update(raw).digest()
  return { id: `m${toHex(digest.subarray(0, 6))}`, key: importKey(raw) }
}

/** 32 raw bytes as an AES-256 key. */
const importKey = (raw: Uint8Array): NodeCrypto.KeyObject => {
  if (raw.byteLength !== 32) throw new Error(`an AES-256 key is 32 bytes, got ${raw.byteLength}`)
  return NodeCrypto.createSecretKey(raw)
}

const algorithm = "aes-256-gcm"
const tagLength = 16

/** Decode a base64 master key (`TROUPE_MASTER_KEY`). */
export const decodeMasterKey = (base64: string): Uint8Array => {
  const raw = Buffer.from(base64.trim(), "base64")
  if (raw.byteLength !== 32 || raw.toString("base64").replace(/=+$/, "") !== base64.trim().replace(/=+$/, "")) {
    throw new Error("must be 32 bytes encoded in base64 (e.g. `openssl rand -base64 32`)")
  }
  return new Uint8Array(raw)
}

/**
 * The master key file of the embedded default: created once with mode 0600, then reused.
 * Returns the raw key.
 */
export const loadOrCreateKeyFile = (path: string): Uint8Array => {
  try {
    return decodeMasterKey(NodeFs.readFileSync(path, "utf8"))
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOENT") throw e
  }
  NodeFs.mkdirSync(NodePath.dirname(path), { recursive: true, mode: 0o700 })
  const raw = globalThis.crypto.getRandomValues(new Uint8Array(32))
  try {
    NodeFs.writeFileSync(path, Buffer.from(raw).toString("base64") + "\n", { mode: 0o600, flag: "wx" })
    return raw
  } catch (e) {
    // another process created it first: use theirs
    if ((e as { code?: string }).code === "EEXIST") return decodeMasterKey(NodeFs.readFileSync(path, "utf8"))
    throw e
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * Encrypt `plaintext` with `key`; the output starts with the header naming `keyId`. The AES-GCM
 * part is laid out as WebCrypto lays it out (ciphertext ‖ 16-byte tag).
 */
export const seal = (key: NodeCrypto.KeyObject, keyId: string, plaintext: Uint8Array, aad: string): Uint8Array => {
  const id = encoder.encode(keyId)
  if (id.byteLength > 255) throw new Error("key id too long")
  const nonce = NodeCrypto.randomBytes(12)
  const header = new Uint8Array(2 + id.byteLength)
  header[0] = formatVersion
  header[1] = id.byteLength
  header.set(id, 2)
  const cipher = NodeCrypto.createCipheriv(algorithm, key, nonce, { authTagLength: tagLength })
  cipher.setAAD(concat(header, encoder.encode(aad)))
  const body = cipher.update(plaintext)
  const last = cipher.final()
  return concat(header, nonce, body, last, cipher.getAuthTag())
}

/**
 * Encrypt `plaintext` with a raw 32-byte key as WebCrypto's AES-GCM would, with no header or
 * associated data: `nonce (12 bytes) ‖ ciphertext ‖ tag`. For data whose key is handed to
 * someone else (a share link's key, decrypted in a browser), not kept in the ring.
 */
export const sealDetached = (raw: Uint8Array, plaintext: Uint8Array): Uint8Array => {
  const nonce = NodeCrypto.randomBytes(12)
  const cipher = NodeCrypto.createCipheriv(algorithm, importKey(raw), nonce, { authTagLength: tagLength })
  const body = cipher.update(plaintext)
  const last = cipher.final()
  return concat(nonce, body, last, cipher.getAuthTag())
}

/** A new random 32-byte key (for `sealDetached`). */
export const newDetachedKey = (): Uint8Array<ArrayBuffer> => NodeCrypto.randomFillSync(new Uint8Array(32))

/** The key id named in a ciphertext's header. */
export const keyIdOf = (ciphertext: Uint8Array): string => {
  if (ciphertext.byteLength < 2 + 12 + 16 || ciphertext[0] !== formatVersion) throw new Error("not a Troupe ciphertext")
  const length = ciphertext[1]!
  return decoder.decode(ciphertext.subarray(2, 2 + length))
}

/** Decrypt a ciphertext made by `seal` with the same key and associated data; throws if it does not. */
export const open = (key: NodeCrypto.KeyObject, ciphertext: Uint8Array, aad: string): Uint8Array => {
  const length = ciphertext[1]!
  const header = ciphertext.subarray(0, 2 + length)
  const nonce = ciphertext.subarray(2 + length, 2 + length + 12)
  const body = ciphertext.subarray(2 + length + 12)
  if (body.byteLength < tagLength) throw new Error("ciphertext too short")
  const decipher = NodeCrypto.createDecipheriv(algorithm, key, nonce, { authTagLength: tagLength })
  decipher.setAAD(concat(header, encoder.encode(aad)))
  decipher.setAuthTag(body.subarray(body.byteLength - tagLength))
  const plain = decipher.update(body.subarray(0, body.byteLength - tagLength))
  const last = decipher.final()
  return last.byteLength === 0 ? new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength) : concat(plain, last)
}

const concat = (...parts: ReadonlyArray<Uint8Array>) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.byteLength
  }
  return out
}

/** The key ring service. */
export interface KeyRingService {
  readonly masterKeyId: string
  /** Create data key `keyId` if it does not exist yet (idempotent). */
  readonly createDataKey: (keyId: string) => Effect.Effect<void, KeyRingError | SqlError>
  /** Encrypt with data key `keyId`, bound to `aad` (e.g. the row it goes into). */
  readonly encrypt: (keyId: string, plaintext: Uint8Array, aad: string) => Effect.Effect<Uint8Array, KeyRingError | DataKeyDestroyed | SqlError>
  readonly decrypt: (ciphertext: Uint8Array, aad: string) => Effect.Effect<Uint8Array, KeyRingError | DataKeyDestroyed | SqlError>
  readonly encryptText: (keyId: string, plaintext: string, aad: string) => Effect.Effect<Uint8Array, KeyRingError | DataKeyDestroyed | SqlError>
  readonly decryptText: (ciphertext: Uint8Array, aad: string) => Effect.Effect<string, KeyRingError | DataKeyDestroyed | SqlError>
  /** Destroy data key `keyId`: everything it encrypted becomes unreadable. Idempotent. */
  readonly destroyDataKey: (keyId: string) => Effect.Effect<void, SqlError>
  /** Re-wrap every data key with the current master key; returns how many changed. */
  readonly rotateMasterKey: Effect.Effect<{ readonly rewrapped: number }, KeyRingError | SqlError>
}

/** The key ring tag. */
export class KeyRing extends Context.Tag("troupe/runtime/KeyRing")<KeyRing, KeyRingService>() {}

/** The data keys table. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026112102,
    name: "data_keys",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`CREATE TABLE IF NOT EXISTS troupe_data_keys (
        key_id TEXT PRIMARY KEY,
        master_key_id TEXT NOT NULL,
        wrapped BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        rewrapped_at TIMESTAMPTZ
      )`)
  }
]

const toBytes = (value: unknown): Uint8Array =>
  value instanceof Uint8Array ? value : new Uint8Array(Buffer.from(value as ArrayBuffer))

/** Build the key ring over the SQL data key table. */
export const make = (masters: MasterKeys, options: { readonly cacheSize?: number } = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const byId = new Map([masters.current, ...masters.previous].map((m) => [m.id, m]))
    const cacheSize = options.cacheSize ?? 10_000
    const cache = new Map<string, NodeCrypto.KeyObject>()
    const remember = (keyId: string, key: NodeCrypto.KeyObject) => {
      cache.delete(keyId)
      cache.set(keyId, key)
      if (cache.size > cacheSize) cache.delete(cache.keys().next().value!)
    }
    const fail = (message: string) => new KeyRingError({ message })
    const wrapAad = (keyId: string) => `troupe-data-key:${keyId}`

    const unwrap = (keyId: string, masterKeyId: string, wrapped: Uint8Array) => {
      const master = byId.get(masterKeyId)
      if (!master) return Effect.fail(fail(`data key ${keyId} is wrapped by master key ${masterKeyId}, which is not configured`))
      return Effect.try({
        try: () => importKey(open(master.key, wrapped, wrapAad(keyId))),
        catch: () => fail(`data key ${keyId} could not be unwrapped (wrong master key?)`)
      })
    }

    const dataKey = (keyId: string): Effect.Effect<NodeCrypto.KeyObject, KeyRingError | DataKeyDestroyed | SqlError> =>
      Effect.suspend(() => {
        const cached = cache.get(keyId)
        return cached ? Effect.succeed(cached) : loadDataKey(keyId)
      })

    const loadDataKey = (keyId: string): Effect.Effect<NodeCrypto.KeyObject, KeyRingError | DataKeyDestroyed | SqlError> =>
      Effect.gen(function*() {
        const rows = yield* sql<{ master_key_id: string; wrapped: Uint8Array }>`
          SELECT master_key_id, wrapped FROM troupe_data_keys WHERE key_id = ${keyId}`
        const row = rows[0]
        if (!row) return yield* new DataKeyDestroyed({ keyId })
        const key = yield* unwrap(keyId, row.master_key_id, toBytes(row.wrapped))
        remember(keyId, key)
        return key
      })

    const createDataKey = (keyId: string) =>
      Effect.gen(function*() {
        if (cache.has(keyId)) return
        const raw = NodeCrypto.randomBytes(32)
        const wrapped = yield* Effect.try({
          try: () => seal(masters.current.key, masters.current.id, raw, wrapAad(keyId)),
          catch: () => fail("could not wrap a data key")
        })
        const inserted = yield* sql`INSERT INTO troupe_data_keys (key_id, master_key_id, wrapped)
                   VALUES (${keyId}, ${masters.current.id}, ${wrapped}) ON CONFLICT (key_id) DO NOTHING RETURNING key_id`
        // ours is the stored key only if the row is new (another writer may have created it first)
        if (inserted.length === 1) remember(keyId, importKey(raw))
      })

    const encrypt = (keyId: string, plaintext: Uint8Array, aad: string) =>
      Effect.flatMap(dataKey(keyId), (key) => Effect.try({ try: () => seal(key, keyId, plaintext, aad), catch: () => fail("encryption failed") }))

    const decrypt = (ciphertext: Uint8Array, aad: string) =>
      Effect.flatMap(Effect.try({ try: () => keyIdOf(ciphertext), catch: () => fail("not a Troupe ciphertext") }), (keyId) =>
        Effect.flatMap(dataKey(keyId), (key) =>
          Effect.try({ try: () => open(key, ciphertext, aad), catch: () => fail(`ciphertext does not decrypt with ${keyId} in this context`) })))

    const service: KeyRingService = {
      masterKeyId: masters.current.id,
      createDataKey,
      encrypt,
      decrypt,
      encryptText: (keyId, plaintext, aad) => encrypt(keyId, encoder.encode(plaintext), aad),
      decryptText: (ciphertext, aad) => Effect.map(decrypt(ciphertext, aad), (bytes) => decoder.decode(bytes)),
      destroyDataKey: (keyId) =>
        Effect.zipRight(Effect.sync(() => cache.delete(keyId)), sql`DELETE FROM troupe_data_keys WHERE key_id = ${keyId}`).pipe(Effect.asVoid),
      rotateMasterKey: Effect.gen(function*() {
        let rewrapped = 0
        for (;;) {
          const rows = yield* sql<{ key_id: string; master_key_id: string; wrapped: Uint8Array }>`
            SELECT key_id, master_key_id, wrapped FROM troupe_data_keys
            WHERE master_key_id <> ${masters.current.id} ORDER BY key_id LIMIT 500`
          if (rows.length === 0) return { rewrapped }
          for (const row of rows) {
            const master = byId.get(row.master_key_id)
            if (!master) return yield* Effect.fail(fail(`data key ${row.key_id} is wrapped by unknown master key ${row.master_key_id}`))
            const next = yield* Effect.try({
              try: () => seal(masters.current.key, masters.current.id, open(master.key, toBytes(row.wrapped), wrapAad(row.key_id)), wrapAad(row.key_id)),
              catch: () => fail(`data key ${row.key_id} could not be re-wrapped`)
            })
            yield* sql`UPDATE troupe_data_keys SET master_key_id = ${masters.current.id}, wrapped = ${next}, rewrapped_at = now()
                       WHERE key_id = ${row.key_id} AND master_key_id = ${row.master_key_id}`
            rewrapped++
          }
        }
      })
    }
    return service
  })

/** The key ring over the given master keys. */
export const layer = (masters: MasterKeys): Layer.Layer<KeyRing, never, SqlClient.SqlClient> => Layer.effect(KeyRing, make(masters))

/** Master keys from raw bytes (the first is current). */
export const masterKeys = (current: Uint8Array, previous: ReadonlyArray<Uint8Array> = []): MasterKeys => ({
  current: importMasterKey(current),
  previous: previous.map(importMasterKey)
})
