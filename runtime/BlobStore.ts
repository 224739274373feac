/**
 * The blob store: S3 (or MinIO, or any S3-compatible server) when `S3_BUCKET` is set, otherwise
 * a folder in the data dir. Keys are relative paths of safe characters.
 */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client
} from "@aws-sdk/client-s3"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import * as NodeCrypto from "node:crypto"
import * as NodeFsSync from "node:fs"
import * as NodeFs from "node:fs/promises"
import type { Readable } from "node:stream"
import * as NodePath from "node:path"
import type { BlobStoreConfig } from "./Config.ts"
import { TroupeConfig } from "./Config.ts"

/** A blob operation failed (storage unreachable, permissions, I/O). */
export class BlobStoreError extends Schema.TaggedError<BlobStoreError>()("BlobStoreError", {
  operation: Schema.String,
  key: Schema.String,
  message: Schema.String
}) {}

/** The key is not a safe relative path. */
export class InvalidBlobKey extends Schema.TaggedError<InvalidBlobKey>()("InvalidBlobKey", {
  key: Schema.String
}) {}

/** What is known about a stored blob. */
export interface BlobInfo {
  readonly key: string
  readonly size: number
  readonly contentType: string
  readonly lastModified: Date
}

/** The blob store service. */
export interface BlobStoreService {
  readonly kind: "s3" | "filesystem"
  readonly put: (key: string, data: Uint8Array, options?: { readonly contentType?: string }) => Effect.Effect<void, BlobStoreError | InvalidBlobKey>
  readonly get: (key: string) => Effect.Effect<Option.Option<Uint8Array>, BlobStoreError | InvalidBlobKey>
  readonly head: (key: string) => Effect.Effect<Option.Option<BlobInfo>, BlobStoreError | InvalidBlobKey>
  readonly delete: (key: string) => Effect.Effect<void, BlobStoreError | InvalidBlobKey>
  /** Keys under `prefix`, in lexical order (at most 1000 per call). */
  readonly list: (prefix: string) => Effect.Effect<ReadonlyArray<BlobInfo>, BlobStoreError | InvalidBlobKey>
  readonly ping: Effect.Effect<void, BlobStoreError>
  /** Store the file at `path` under `key`, streamed (never whole in memory). */
  readonly putFile: (key: string, path: string, options?: { readonly contentType?: string }) => Effect.Effect<void, BlobStoreError | InvalidBlobKey>
  /** Stream a blob, or the bytes `start..end` (inclusive) of it; none when it does not exist. */
  readonly getStream: (
    key: string,
    range?: { readonly start: number; readonly end: number }
  ) => Effect.Effect<Option.Option<Readable>, BlobStoreError | InvalidBlobKey>
  /** A short-lived URL anyone may GET the blob from (S3: presigned); none on the filesystem. */
  readonly signedUrl: (key: string, ttlSeconds: number) => Effect.Effect<Option.Option<string>, BlobStoreError | InvalidBlobKey>
}

/** The blob store tag. */
export class BlobStore extends Context.Tag("troupe/runtime/BlobStore")<BlobStore, BlobStoreService>() {}

const keyRe = /^[A-Za-z0-9][A-Za-z0-9._=-]*(\/[A-Za-z0-9][A-Za-z0-9._=-]*)*$/

/** Check that a key is a safe relative path (no `..`, no leading `/`, no odd characters). */
export const validateKey = (key: string): Effect.Effect<string, InvalidBlobKey> =>
  key.length > 0 && key.length <= 512 && keyRe.test(key) && !key.split("/").includes("..")
    ? Effect.succeed(key)
    : Effect.fail(new InvalidBlobKey({ key }))

const validatePrefix = (prefix: string) => (prefix === "" ? Effect.succeed(prefix) : validateKey(prefix.replace(/\/$/, "")).pipe(Effect.as(prefix)))

const fail = (operation: string, key: string) => (cause: unknown) =>
  new BlobStoreError({ operation, key, message: cause instanceof Error ? cause.message : String(cause) })

const isNotFound = (e: unknown) =>
  typeof e === "object" && e !== null && (
    (e as { code?: string }).code === "ENOENT" ||
    (e as { name?: string }).name === "NotFound" ||
    (e as { name?: string }).name === "NoSuchKey" ||
    (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404
  )

// ---------------------------------------------------------------------------------------------
// Filesystem

/** Blobs as files under `root`; metadata beside them under `root/.meta`. Writes are atomic. */
export const makeFilesystem = (root: string): BlobStoreService => {
  const file = (key: string) => NodePath.join(root, "data", key)
  const meta = (key: string) => NodePath.join(root, "meta", `${key}.json`)
  const writeAtomic = async (path: string, data: Uint8Array | string) => {
    await NodeFs.mkdir(NodePath.dirname(path), { recursive: true })
    const tmp = `${path}.${NodeCrypto.randomBytes(6).toString("hex")}.tmp`
    await NodeFs.writeFile(tmp, data)
    await NodeFs.rename(tmp, path)
  }
  const info = async (key: string): Promise<BlobInfo | undefined> => {
    try {
      const stat = await NodeFs.stat(file(key))
      const contentType = await NodeFs.readFile(meta(key), "utf8").then(
        (s) => (JSON.parse(s) as { contentType?: string }).contentType ?? "application/octet-stream",
        () => "application/octet-stream"
      )
      return { key, size: stat.size, contentType, lastModified: stat.mtime }
    } catch (e) {
      if (isNotFound(e)) return undefined
      throw e
    }
  }
  return {
    kind: "filesystem",
    put: (key, data, options) =>
      Effect.flatMap(validateKey(key), () =>
        Effect.tryPromise({
          try: async () => {
            await writeAtomic(meta(key), JSON.stringify({ contentType: options?.contentType ?? "application/octet-stream" }))
            await writeAtomic(file(key), data)
          },
          catch: fail("put", key)
        })),
    get: (key) =>
      Effect.flatMap(validateKey(key), () =>
        Effect.tryPromise({
          try: () => NodeFs.readFile(file(key)).then((b) => Option.some(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)), (e) => {
            if (isNotFound(e)) return Option.none<Uint8Array>()
            throw e
          }),
          catch: fail("get", key)
        })),
    head: (key) => Effect.flatMap(validateKey(key), () => Effect.tryPromise({ try: () => info(key).then(Option.fromNullable), catch: fail("head", key) })),
    delete: (key) =>
      Effect.flatMap(validateKey(key), () =>
        Effect.tryPromise({
          try: async () => {
            await NodeFs.rm(file(key), { force: true })
            await NodeFs.rm(meta(key), { force: true })
          },
          catch: fail("delete", key)
        })),
    list: (prefix) =>
      Effect.flatMap(validatePrefix(prefix), () =>
        Effect.tryPromise({
          try: async () => {
            const base = NodePath.join(root, "data")
            const entries = await NodeFs.readdir(base, { recursive: true, withFileTypes: true }).catch((e) => {
              if (isNotFound(e)) return []
              throw e
            })
            const keys = entries
              .filter((e) => e.isFile() && !e.name.endsWith(".tmp"))
              .map((e) => NodePath.relative(base, NodePath.join(e.parentPath, e.name)).split(NodePath.sep).join("/"))
              .filter((k) => k.startsWith(prefix))
              .sort()
              .slice(0, 1000)
            const infos = await Promise.all(keys.map(info))
            return infos.filter((i): i is BlobInfo => i !== undefined)
          },
          catch: fail("list", prefix)
        })),
    ping: Effect.tryPromise({
      try: async () => {
        await NodeFs.mkdir(root, { recursive: true })
        await NodeFs.access(root, NodeFs.constants.W_OK)
      },
      catch: fail("ping", "")
    }),
    putFile: (key, path, options) =>
      Effect.flatMap(validateKey(key), () =>
        Effect.tryPromise({
          try: async () => {
            await writeAtomic(meta(key), JSON.stringify({ contentType: options?.contentType ?? "application/octet-stream" }))
            const target = file(key)
            await NodeFs.mkdir(NodePath.dirname(target), { recursive: true })
            const tmp = `${target}.${NodeCrypto.randomBytes(6).toString("hex")}.tmp`
            await NodeFs.copyFile(path, tmp)
            await NodeFs.rename(tmp, target)
          },
          catch: fail("put", key)
        })),
    getStream: (key, range) =>
      Effect.flatMap(validateKey(key), () =>
        Effect.tryPromise({
          try: () =>
            new Promise<Option.Option<Readable>>((resolve, reject) => {
              const stream = NodeFsSync.createReadStream(file(key), range ? { start: range.start, end: range.end } : {})
              stream.once("open", () => resolve(Option.some(stream)))
              stream.once("error", (e) => (isNotFound(e) ? resolve(Option.none()) : reject(e)))
            }),
          catch: fail("get", key)
        })),
    signedUrl: (key) => Effect.as(validateKey(key), Option.none())
  }
}

/** The filesystem store as a layer. */
export const layerFilesystem = (root: string): Layer.Layer<BlobStore> => Layer.sync(BlobStore, () => makeFilesystem(root))

// ---------------------------------------------------------------------------------------------
// S3

/** Options of the S3 store. */
export interface S3Options {
  readonly endpoint: Option.Option<string>
  readonly bucket: string
  readonly region: string
  readonly accessKeyId: Option.Option<string>
  readonly secretAccessKey: Option.Option<Redacted.Redacted>
  readonly forcePathStyle: boolean
}

/** Blobs in an S3 bucket. */
export const makeS3 = (client: S3Client, bucket: string): BlobStoreService => {
  const send = <A>(operation: string, key: string, f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: fail(operation, key) })
  const head = (key: string) =>
    send("head", key, () =>
      client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
        (r): Option.Option<BlobInfo> =>
          Option.some({
            key,
            size: r.ContentLength ?? 0,
            contentType: r.ContentType ?? "application/octet-stream",
            lastModified: r.LastModified ?? new Date(0)
          }),
        (e) => {
          if (isNotFound(e)) return Option.none()
          throw e
        }
      ))
  return {
    kind: "s3",
    put: (key, data, options) =>
      Effect.flatMap(validateKey(key), () =>
        send("put", key, () =>
          client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: key,
              Body: data,
              ContentLength: data.byteLength,
              ContentType: options?.contentType ?? "application/octet-stream"
            })
          )).pipe(Effect.asVoid)),
    get: (key) =>
      Effect.flatMap(validateKey(key), () =>
        send("get", key, () =>
          client.send(new GetObjectCommand({ Bucket: bucket, Key: key })).then(
            async (r) => Option.some(r.Body ? await r.Body.transformToByteArray() : new Uint8Array()),
            (e) => {
              if (isNotFound(e)) return Option.none<Uint8Array>()
              throw e
            }
          ))),
    head: (key) => Effect.flatMap(validateKey(key), () => head(key)),
    delete: (key) =>
      Effect.flatMap(validateKey(key), () =>
        send("delete", key, () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))).pipe(Effect.asVoid)),
    list: (prefix) =>
      Effect.flatMap(validatePrefix(prefix), () =>
        send("list", prefix, () =>
          client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1000 })).then((r) =>
            Promise.all(
              (r.Contents ?? []).flatMap((o) => (o.Key ? [o.Key] : [])).sort().map((key) =>
                client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then((h): BlobInfo => ({
                  key,
                  size: h.ContentLength ?? 0,
                  contentType: h.ContentType ?? "application/octet-stream",
                  lastModified: h.LastModified ?? new Date(0)
                }))
              )
            )
          ))),
    ping: send("ping", "", () => client.send(new HeadBucketCommand({ Bucket: bucket }))).pipe(Effect.asVoid),
    putFile: (key, path, options) =>
      Effect.flatMap(validateKey(key), () =>
        send("put", key, async () => {
          const { size } = await NodeFs.stat(path)
          await client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: key,
              Body: NodeFsSync.createReadStream(path),
              ContentLength: size,
              ContentType: options?.contentType ?? "application/octet-stream"
            })
          )
        })),
    getStream: (key, range) =>
      Effect.flatMap(validateKey(key), () =>
        send("get", key, () =>
          client.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) })).then(
            (r) => Option.some(r.Body as Readable),
            (e) => {
              if (isNotFound(e)) return Option.none<Readable>()
              throw e
            }
          ))),
    signedUrl: (key, ttlSeconds) =>
      Effect.flatMap(validateKey(key), () =>
        send("sign", key, () => getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: ttlSeconds })).pipe(Effect.map(Option.some)))
  }
}

/** Connect to the bucket, creating it when it does not exist yet. */
export const layerS3 = (options: S3Options): Layer.Layer<BlobStore, BlobStoreError> =>
  Layer.scoped(
    BlobStore,
    Effect.gen(function*() {
      const client = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new S3Client({
            region: options.region,
            endpoint: Option.getOrUndefined(options.endpoint),
            forcePathStyle: options.forcePathStyle,
            credentials: Option.isSome(options.accessKeyId) && Option.isSome(options.secretAccessKey)
              ? { accessKeyId: options.accessKeyId.value, secretAccessKey: Redacted.value(options.secretAccessKey.value) }
              : undefined,
            maxAttempts: 3,
            // checksums only where S3 requires them: a streamed body otherwise goes out aws-chunked with a
            // trailing checksum, which S3-compatible servers that predate it (s3rver, older MinIO) store verbatim
            requestChecksumCalculation: "WHEN_REQUIRED",
            responseChecksumValidation: "WHEN_REQUIRED"
          })
        ),
        (client) => Effect.sync(() => client.destroy())
      )
      const store = makeS3(client, options.bucket)
      yield* store.ping.pipe(
        Effect.catchAll(() =>
          Effect.tryPromise({
            try: () => client.send(new CreateBucketCommand({ Bucket: options.bucket })),
            catch: fail("create-bucket", options.bucket)
          })
        ),
        Effect.timeoutFail({
          duration: "10 seconds",
          onTimeout: () => new BlobStoreError({ operation: "connect", key: "", message: "timed out reaching S3" })
        })
      )
      return store
    })
  )

/** Choose the store from the configuration. */
export const layerFrom = (config: BlobStoreConfig): Layer.Layer<BlobStore, BlobStoreError> =>
  config._tag === "S3" ? layerS3(config) : layerFilesystem(config.root)

/** The blob store chosen by `TroupeConfig`. */
export const layer: Layer.Layer<BlobStore, BlobStoreError, TroupeConfig> = Layer.unwrapEffect(
  Effect.map(TroupeConfig, (config) => layerFrom(config.blobStore))
)
