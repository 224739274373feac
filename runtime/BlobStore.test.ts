import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import S3rver from "s3rver"
import * as BlobStore from "./BlobStore.ts"

const tmp = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-blobs-"))
let s3: S3rver
let s3Port = 0

beforeAll(async () => {
  s3 = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: NodePath.join(tmp, "s3rver") })
  s3Port = (await s3.run()).port
})
afterAll(async () => {
  await s3.close()
  NodeFs.rmSync(tmp, { recursive: true, force: true })
})

const s3Layer = () =>
  BlobStore.layerS3({
    endpoint: Option.some(`http://127.0.0.1:${s3Port}`),
    bucket: "troupe-test",
    region: "us-east-1",
    accessKeyId: Option.some("S3RVER"),
    secretAccessKey: Option.some(Redacted.make("S3RVER")),
    forcePathStyle: true
  })

const contract = (name: string, layer: () => Layer.Layer<BlobStore.BlobStore, unknown>) =>
  describe(`${name} blob store`, () => {
    it.effect("round-trips bytes with their content type", () =>
      Effect.gen(function*() {
        const store = yield* BlobStore.BlobStore
        const bytes = new Uint8Array(70_000).map((_, i) => i % 251)
        yield* store.put("uploads/u1/a.bin", bytes, { contentType: "image/png" })
        const back = yield* store.get("uploads/u1/a.bin")
        expect(Option.isSome(back) && Buffer.from(back.value).equals(Buffer.from(bytes))).toBe(true)
        const info = yield* store.head("uploads/u1/a.bin")
        expect(Option.map(info, (i) => [i.size, i.contentType])).toEqual(Option.some([70_000, "image/png"]))
      }).pipe(Effect.provide(layer())))

    it.effect("lists by prefix and deletes", () =>
      Effect.gen(function*() {
        const store = yield* BlobStore.BlobStore
        yield* store.put("list/x/1", new Uint8Array([1]))
        yield* store.put("list/x/2", new Uint8Array([2, 2]))
        yield* store.put("list/y/1", new Uint8Array([3]))
        const listed = yield* store.list("list/x/")
        expect(listed.map((b) => [b.key, b.size])).toEqual([["list/x/1", 1], ["list/x/2", 2]])
        yield* store.delete("list/x/1")
        expect(yield* store.get("list/x/1")).toEqual(Option.none())
        expect((yield* store.list("list/")).map((b) => b.key)).toEqual(["list/x/2", "list/y/1"])
      }).pipe(Effect.provide(layer())))

    it.effect("answers none for a missing blob", () =>
      Effect.gen(function*() {
        const store = yield* BlobStore.BlobStore
        expect(yield* store.get("nothing/here")).toEqual(Option.none())
        expect(yield* store.head("nothing/here")).toEqual(Option.none())
      }).pipe(Effect.provide(layer())))

    it.effect("refuses keys that escape the store", () =>
      Effect.gen(function*() {
        const store = yield* BlobStore.BlobStore
        for (const key of ["../etc/passwd", "/abs", "a/../../b", "", "a//b", "a\\b"]) {
          const error = yield* Effect.flip(store.put(key, new Uint8Array([1])))
          expect(error._tag).toBe("InvalidBlobKey")
        }
      }).pipe(Effect.provide(layer())))
  })

contract("filesystem", () => BlobStore.layerFilesystem(NodePath.join(tmp, "fs")))
contract("s3", s3Layer)

describe("s3 blob store", () => {
  it.effect("fails to start with a clear error when S3 is unreachable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(BlobStore.layerS3({
        endpoint: Option.some("http://127.0.0.1:1"),
        bucket: "b",
        region: "us-east-1",
        accessKeyId: Option.some("k"),
        secretAccessKey: Option.some(Redacted.make("s")),
        forcePathStyle: true
      })))
      expect(error._tag).toBe("BlobStoreError")
    }).pipe(Effect.scoped))
})
