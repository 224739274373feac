import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as Database from "./Database.ts"
import * as KeyRing from "./KeyRing.ts"
import * as Migrations from "./Migrations.ts"
import { createTestDatabase } from "./testing/services.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
const tmp = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-keys-"))
beforeAll(async () => {
  db = await createTestDatabase("keyring")
})
afterAll(async () => {
  await db.drop()
  NodeFs.rmSync(tmp, { recursive: true, force: true })
})

const random = () => globalThis.crypto.getRandomValues(new Uint8Array(32))
const oldMaster = random()
const newMaster = random()

const database = () =>
  Layer.provideMerge(
    Layer.effectDiscard(Migrations.run(KeyRing.migrations)),
    Database.layerPostgres({ url: Redacted.make(db.url), maxConnections: 4 })
  )
const ring = (current: Uint8Array, previous: ReadonlyArray<Uint8Array> = []) =>
  Layer.provideMerge(
    KeyRing.layer(KeyRing.masterKeys(current, previous)),
    database()
  )

describe("key ring", () => {
  it.live("encrypts with a per-owner data key, in a versioned format bound to its context", () =>
    Effect.gen(function*() {
      const keys = yield* KeyRing.KeyRing
      yield* keys.createDataKey("chat:one")
      yield* keys.createDataKey("chat:one") // idempotent
      const cipher = yield* keys.encryptText("chat:one", "hello", "chat:one:message:1")
      expect(cipher[0]).toBe(KeyRing.formatVersion)
      expect(KeyRing.keyIdOf(cipher)).toBe("chat:one")
      expect(Buffer.from(cipher).includes(Buffer.from("hello"))).toBe(false)
      expect(yield* keys.decryptText(cipher, "chat:one:message:1")).toBe("hello")
      // the same plaintext encrypts differently every time
      expect(Buffer.from(yield* keys.encryptText("chat:one", "hello", "x")).equals(Buffer.from(cipher))).toBe(false)
      // moved to another row, or tampered with, it does not decrypt
      expect(yield* Effect.flip(keys.decryptText(cipher, "chat:one:message:2"))).toMatchObject({ _tag: "KeyRingError" })
      const tampered = new Uint8Array(cipher)
      tampered[tampered.length - 1]! ^= 1
      expect(yield* Effect.flip(keys.decryptText(tampered, "chat:one:message:1"))).toMatchObject({ _tag: "KeyRingError" })
      expect(yield* Effect.flip(keys.decryptText(new Uint8Array([9, 9, 9]), "x"))).toMatchObject({ _tag: "KeyRingError" })
    }).pipe(Effect.provide(ring(oldMaster))))

  it.live("makes data unreadable for good when its key is destroyed", () =>
    Effect.gen(function*() {
      const keys = yield* KeyRing.KeyRing
      yield* keys.createDataKey("chat:gone")
      const cipher = yield* keys.encryptText("chat:gone", "secret", "a")
      yield* keys.destroyDataKey("chat:gone")
      expect(yield* Effect.flip(keys.decryptText(cipher, "a"))).toMatchObject({ _tag: "DataKeyDestroyed", keyId: "chat:gone" })
      expect(yield* Effect.flip(keys.encryptText("chat:gone", "more", "a"))).toMatchObject({ _tag: "DataKeyDestroyed" })
    }).pipe(Effect.provide(ring(oldMaster))))

  it.live("rotates the master key by re-wrapping data keys, leaving the data as it is", () =>
    Effect.gen(function*() {
      // data written under the old master key
      const before = yield* Effect.gen(function*() {
        const keys = yield* KeyRing.KeyRing
        yield* keys.createDataKey("chat:rotate")
        return yield* keys.encryptText("chat:rotate", "survives rotation", "r")
      }).pipe(Effect.provide(ring(oldMaster)))

      // the new master key alone cannot read it yet
      const onlyNew = yield* Effect.flip(
        Effect.flatMap(KeyRing.KeyRing, (keys) => keys.decryptText(before, "r")).pipe(Effect.provide(ring(newMaster)))
      )
      expect(onlyNew).toMatchObject({ _tag: "KeyRingError" })

      // with both, rotate: every data key is re-wrapped, the ciphertext is untouched
      const rotated = yield* Effect.flatMap(KeyRing.KeyRing, (keys) => keys.rotateMasterKey).pipe(Effect.provide(ring(newMaster, [oldMaster])))
      expect(rotated.rewrapped).toBeGreaterThanOrEqual(2)
      const again = yield* Effect.flatMap(KeyRing.KeyRing, (keys) => keys.rotateMasterKey).pipe(Effect.provide(ring(newMaster, [oldMaster])))
      expect(again.rewrapped).toBe(0)

      // now the new master key alone reads the old data
      const text = yield* Effect.flatMap(KeyRing.KeyRing, (keys) => keys.decryptText(before, "r")).pipe(Effect.provide(ring(newMaster)))
      expect(text).toBe("survives rotation")
      const masters = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ master_key_id: string }>`SELECT DISTINCT master_key_id FROM troupe_data_keys`).pipe(
        Effect.provide(database())
      )
      const current = KeyRing.importMasterKey(newMaster)
      expect(masters).toEqual([{ master_key_id: current.id }])
    }))

  it("reads and writes the same ciphertexts as WebCrypto's AES-GCM (data written before the switch to node:crypto)", async () => {
    const raw = random()
    const web = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"])
    const key = KeyRing.importMasterKey(raw).key
    // the format as WebCrypto wrote it: header ‖ nonce ‖ AES-GCM(ciphertext ‖ tag), the header and context as associated data
    const id = new TextEncoder().encode("chat:web")
    const header = new Uint8Array([KeyRing.formatVersion, id.byteLength, ...id])
    const aad = new Uint8Array([...header, ...new TextEncoder().encode("chat:web:message:1")])
    const nonce = crypto.getRandomValues(new Uint8Array(12))
    const body = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, web, new TextEncoder().encode("written by WebCrypto")))
    const old = new Uint8Array([...header, ...nonce, ...body])
    expect(new TextDecoder().decode(KeyRing.open(key, old, "chat:web:message:1"))).toBe("written by WebCrypto")
    expect(() => KeyRing.open(key, old, "chat:web:message:2")).toThrow()
    // and what we write now, WebCrypto reads
    const sealed = KeyRing.seal(key, "chat:web", new TextEncoder().encode("written by node:crypto"), "chat:web:message:3")
    const aad3 = new Uint8Array([...header, ...new TextEncoder().encode("chat:web:message:3")])
    const sealedCopy = new Uint8Array(sealed)
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: sealedCopy.slice(header.byteLength, header.byteLength + 12), additionalData: aad3 }, web, sealedCopy.slice(header.byteLength + 12))
    expect(new TextDecoder().decode(plain)).toBe("written by node:crypto")
  })

  it("seals a share with a detached key so that a browser's WebCrypto opens it (nonce ‖ ciphertext ‖ tag)", async () => {
    const raw = KeyRing.newDetachedKey()
    const sealed = new Uint8Array(KeyRing.sealDetached(raw, new TextEncoder().encode("a shared chat")))
    const web = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["decrypt"])
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: sealed.slice(0, 12) }, web, sealed.slice(12))
    expect(new TextDecoder().decode(plain)).toBe("a shared chat")
    const other = await crypto.subtle.importKey("raw", KeyRing.newDetachedKey(), "AES-GCM", false, ["decrypt"])
    await expect(crypto.subtle.decrypt({ name: "AES-GCM", iv: sealed.slice(0, 12) }, other, sealed.slice(12))).rejects.toThrow()
  })

  it("creates the embedded default's master key file once, readable by its owner only", () => {
    const path = NodePath.join(tmp, "data", "master.key")
    const first = KeyRing.loadOrCreateKeyFile(path)
    const second = KeyRing.loadOrCreateKeyFile(path)
    expect(first.byteLength).toBe(32)
    expect(Buffer.from(second).equals(Buffer.from(first))).toBe(true)
    expect(NodeFs.statSync(path).mode & 0o777).toBe(0o600)
  })

  it("accepts only 32-byte base64 master keys", () => {
    expect(KeyRing.decodeMasterKey(Buffer.from(random()).toString("base64")).byteLength).toBe(32)
    expect(() => KeyRing.decodeMasterKey("c2hvcnQ=")).toThrow(/32 bytes/)
    expect(() => KeyRing.decodeMasterKey("not base64 at all!")).toThrow(/32 bytes/)
  })
})
