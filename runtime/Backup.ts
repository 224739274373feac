/**
 * Backups: `troupe admin backup --to <dir | s3://bucket/prefix>` and `troupe admin restore --from …`.
 *
 * A backup is a folder `<target>/troupe-<UTC time>/` with
 * - `database.enc`: the database — `pg_dump --format=custom` on Postgres (one consistent snapshot;
 *   `pg_dump` must be at least the server's major version), PGlite's data-dir dump on the embedded
 *   default;
 * - `blobs.enc`: every object of the blob store (a header line of JSON then the bytes, per object);
 * - `manifest.json`: what is in it, each file's size and SHA-256 (of the encrypted bytes, checked
 *   before anything is decrypted), authenticated with an HMAC under the backup key.
 * Files are encrypted with AES-256-GCM under `TROUPE_BACKUP_KEY` (32 bytes, base64, like
 * `TROUPE_MASTER_KEY`): `TRBK1` + 12-byte IV + ciphertext + 16-byte tag.
 *
 * A restore goes into the configured database and blob store, and refuses either when it holds
 * data unless forced (then the database's schemas are dropped, the embedded data dir removed, and
 * blobs are overwritten).
 *
 * Scheduled backups (`TROUPE_BACKUP_SCHEDULE`, cron syntax) run on the runners as a cluster
 * singleton: one runner of the cluster takes them, then prunes the target to `TROUPE_BACKUP_KEEP`.
 */
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import { PGlite } from "@electric-sql/pglite"
import type * as Sharding from "@effect/cluster/Sharding"
import * as Singleton from "@effect/cluster/Singleton"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Cron from "effect/Cron"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeChildProcess from "node:child_process"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeFsp from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as NodeStream from "node:stream/promises"
import Pg from "pg"
import * as BlobStore from "./BlobStore.ts"
import type { BlobStoreConfig, DatabaseConfig, TroupeConfigShape } from "./Config.ts"

/** A backup or restore could not be done; the message says why, for the operator. */
export class BackupError extends Data.TaggedError("BackupError")<{ readonly message: string }> {}

const fail = (message: string) => new BackupError({ message })
const attempt = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, BackupError> =>
  Effect.tryPromise({ try: f, catch: (e) => fail(`${what}: ${e instanceof Error ? e.message : String(e)}`) })

export const format = "troupe-backup/1"
const magic = Buffer.from("TRBK1")

/** One file of a backup, as its manifest lists it. */
export interface ManifestFile {
  readonly name: string
  readonly bytes: number
  readonly sha256: string
}

/** What a backup holds. */
export interface Manifest {
  readonly format: typeof format
  readonly id: string
  readonly created_at: string
  readonly troupe_version: string
  readonly database: { readonly kind: "postgres" | "embedded"; readonly server_version?: string }
  readonly blobs: number
  readonly files: ReadonlyArray<ManifestFile>
  /** HMAC-SHA256 of the manifest without this field, under the backup key. */
  readonly mac: string
}

/** The backup key from `TROUPE_BACKUP_KEY` (32 bytes in base64). */
export const parseKey = (raw: string | undefined): Effect.Effect<Buffer, BackupError> => {
  if (raw === undefined || raw.trim() === "") return Effect.fail(fail("TROUPE_BACKUP_KEY is not set (32 random bytes in base64: `openssl rand -base64 32`)"))
  const key = Buffer.from(raw.trim(), "base64")
  return key.length === 32 ? Effect.succeed(key) : Effect.fail(fail(`TROUPE_BACKUP_KEY must be 32 bytes in base64 (it decodes to ${key.length})`))
}

/** Where backups go or come from. */
export type Location =
  | { readonly _tag: "Dir"; readonly path: string }
  | { readonly _tag: "S3"; readonly bucket: string; readonly prefix: string }

/** `s3://bucket/prefix` or a directory. */
export const parseLocation = (raw: string): Location => {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(raw)
  return m ? { _tag: "S3", bucket: m[1]!, prefix: m[2]!.replace(/\/+$/, "") } : { _tag: "Dir", path: NodePath.resolve(raw) }
}

/** The files of a location, as a small store: put a local file, read one, list names. */
interface Target {
  readonly putFile: (name: string, path: string) => Effect.Effect<void, BackupError>
  readonly getFile: (name: string, path: string) => Effect.Effect<boolean, BackupError>
  readonly list: Effect.Effect<ReadonlyArray<string>, BackupError>
  readonly remove: (name: string) => Effect.Effect<void, BackupError>
  /** Remove what is left of a backup's folder once its files are gone (a directory's empty folder). */
  readonly removeFolder: (id: string) => Effect.Effect<void, BackupError>
}

const s3Client = (blobs: BlobStoreConfig): S3Client =>
  new S3Client({
    region: blobs._tag === "S3" ? blobs.region : process.env.S3_REGION ?? "us-east-1",
    endpoint: blobs._tag === "S3" ? Option.getOrUndefined(blobs.endpoint) : process.env.S3_ENDPOINT,
    forcePathStyle: blobs._tag === "S3" ? blobs.forcePathStyle : true,
    credentials: blobs._tag === "S3" && Option.isSome(blobs.accessKeyId) && Option.isSome(blobs.secretAccessKey)
      ? { accessKeyId: blobs.accessKeyId.value, secretAccessKey: Redacted.value(blobs.secretAccessKey.value) }
      : process.env.S3_ACCESS_KEY_ID && process.env.S3_SECRET_ACCESS_KEY
      ? { accessKeyId: process.env.S3_ACCESS_KEY_ID, secretAccessKey: process.env.S3_SECRET_ACCESS_KEY }
      : undefined,
    maxAttempts: 3,
    // as the blob store's client: a streamed upload otherwise goes out aws-chunked with a trailing
    // checksum, which S3-compatible servers that predate it (s3rver, older MinIO) store verbatim
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  })

/** Every object of an S3 bucket under `prefix` (all pages). */
const listS3 = (client: S3Client, bucket: string, prefix: string) =>
  attempt(`list s3://${bucket}/${prefix}`, async () => {
    const keys: Array<string> = []
    let token: string | undefined
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }))
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key)
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token)
    return keys
  })

const targetOf = (location: Location, blobs: BlobStoreConfig): Target => {
  if (location._tag === "Dir") {
    const full = (name: string) => NodePath.join(location.path, name)
    return {
      putFile: (name, path) =>
        attempt(`write ${full(name)}`, async () => {
          await NodeFsp.mkdir(NodePath.dirname(full(name)), { recursive: true })
          await NodeFsp.copyFile(path, full(name))
        }),
      getFile: (name, path) =>
        attempt(`read ${full(name)}`, async () => {
          if (!NodeFs.existsSync(full(name))) return false
          await NodeFsp.copyFile(full(name), path)
          return true
        }),
      list: attempt(`list ${location.path}`, async () =>
        NodeFs.existsSync(location.path)
          ? (await NodeFsp.readdir(location.path, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) =>
            NodePath.relative(location.path, NodePath.join(e.parentPath, e.name)).split(NodePath.sep).join("/")
          )
          : []),
      remove: (name) => attempt(`remove ${full(name)}`, () => NodeFsp.rm(full(name), { force: true })),
      removeFolder: (id) => attempt(`remove ${full(id)}`, () => NodeFsp.rm(full(id), { recursive: true, force: true }))
    }
  }
  const client = s3Client(blobs)
  const store = BlobStore.makeS3(client, location.bucket)
  const key = (name: string) => (location.prefix ? `${location.prefix}/${name}` : name)
  const mapErr = (e: { readonly message: string }) => fail(`s3://${location.bucket}: ${e.message}`)
  return {
    putFile: (name, path) => Effect.mapError(store.putFile(key(name), path, { contentType: "application/octet-stream" }), mapErr),
    getFile: (name, path) =>
      Effect.flatMap(Effect.mapError(store.get(key(name)), mapErr), (data) =>
        Option.isNone(data) ? Effect.succeed(false) : Effect.as(attempt(`write ${path}`, () => NodeFsp.writeFile(path, data.value)), true)),
    list: Effect.map(listS3(client, location.bucket, location.prefix ? `${location.prefix}/` : ""), (keys) =>
      keys.map((k) => (location.prefix ? k.slice(location.prefix.length + 1) : k))),
    remove: (name) => Effect.mapError(store.delete(key(name)), mapErr),
    removeFolder: () => Effect.void
  }
}

// --- encryption ------------------------------------------------------------------------------

/** Encrypt `from` into `to` (streaming); returns the encrypted file's size and SHA-256. */
const encryptFile = (key: Buffer, from: string, to: string) =>
  attempt("encrypt", async () => {
    const iv = NodeCrypto.randomBytes(12)
    const cipher = NodeCrypto.createCipheriv("aes-256-gcm", key, iv)
    const out = NodeFs.createWriteStream(to)
    out.write(magic)
    out.write(iv)
    await NodeStream.pipeline(NodeFs.createReadStream(from), cipher, out, { end: false })
    await new Promise<void>((resolve, reject) => out.end(cipher.getAuthTag(), () => resolve()).on("error", reject))
    return { bytes: (await NodeFsp.stat(to)).size, sha256: await sha256File(to) }
  })

/** Decrypt `from` into `to`; fails when the key is wrong or the file was changed. */
const decryptFile = (key: Buffer, from: string, to: string) =>
  attempt("decrypt", async () => {
    const size = (await NodeFsp.stat(from)).size
    const header = magic.length + 12
    if (size < header + 16) throw new Error("file too short")
    const fd = await NodeFsp.open(from, "r")
    const head = Buffer.alloc(header)
    const tag = Buffer.alloc(16)
    await fd.read(head, 0, header, 0)
    await fd.read(tag, 0, 16, size - 16)
    await fd.close()
    if (!head.subarray(0, magic.length).equals(magic)) throw new Error("not a Troupe backup file")
    const decipher = NodeCrypto.createDecipheriv("aes-256-gcm", key, head.subarray(magic.length))
    decipher.setAuthTag(tag)
    if (size === header + 16) {
      // nothing was encrypted (an empty blob store): the tag still has to verify
      decipher.final()
      await NodeFsp.writeFile(to, new Uint8Array(0))
      return
    }
    await NodeStream.pipeline(NodeFs.createReadStream(from, { start: header, end: size - 17 }), decipher, NodeFs.createWriteStream(to))
  }).pipe(Effect.mapError((e) => fail(`${e.message} (wrong TROUPE_BACKUP_KEY, or the file was altered)`)))

const sha256File = async (path: string) => {
  const hash = NodeCrypto.createHash("sha256")
  await NodeStream.pipeline(NodeFs.createReadStream(path), hash)
  return hash.digest("hex")
}

const macOf = (key: Buffer, manifest: Omit<Manifest, "mac">) =>
  NodeCrypto.createHmac("sha256", key).update("troupe-backup-manifest\0").update(JSON.stringify(manifest)).digest("hex")

// --- progress --------------------------------------------------------------------------------

/** A progress bar on stderr when it is a terminal, plain lines otherwise. */
export interface Progress {
  readonly step: (label: string, done: number, total: number) => void
  readonly line: (text: string) => void
}

export const terminalProgress = (stream: NodeJS.WriteStream = process.stderr): Progress => {
  let last = ""
  return {
    step: (label, done, total) => {
      const ratio = total > 0 ? Math.min(1, done / total) : 1
      const width = 30
      const bar = "#".repeat(Math.round(ratio * width)).padEnd(width, ".")
      const text = `${label.padEnd(10)} [${bar}] ${String(Math.round(ratio * 100)).padStart(3)}% ${done}/${total}`
      if (stream.isTTY) stream.write(`\r${text}\x1b[K${done >= total ? "\n" : ""}`)
      else if (done >= total && text !== last) stream.write(text + "\n")
      last = text
    },
    line: (text) => void stream.write(text + "\n")
  }
}

export const silentProgress: Progress = { step: () => {}, line: () => {} }

// --- database --------------------------------------------------------------------------------

const run = (command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  attempt(command, () =>
    new Promise<string>((resolve, reject) => {
      const child = NodeChildProcess.spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
      let out = ""
      let err = ""
      child.stdout.on("data", (d: Buffer) => (out += d.toString()))
      child.stderr.on("data", (d: Buffer) => (err += d.toString()))
      child.on("error", (e) => reject(new Error(`${e.message} (is the PostgreSQL client installed?)`)))
      child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(err.trim().split("\n").slice(-3).join(" ") || `exit ${code}`))))
    }))

const withPg = <A>(url: string, f: (client: Pg.Client) => Promise<A>) =>
  attempt("database", async () => {
    const client = new Pg.Client({ connectionString: url })
    await client.connect()
    try {
      return await f(client)
    } finally {
      await client.end()
    }
  })

const major = (version: string) => Number(/(\d+)/.exec(version)?.[1] ?? "0")

/** Whether the configured database holds any table (a restore refuses one that does). */
const databaseHasData = (database: DatabaseConfig): Effect.Effect<boolean, BackupError> =>
  database._tag === "Postgres"
    ? withPg(Redacted.value(database.url), async (c) =>
      Number((await c.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")).rows[0].n) > 0)
    : Effect.sync(() => NodeFs.existsSync(NodePath.join(database.dataDir, "PG_VERSION")))

const dumpDatabase = (database: DatabaseConfig, to: string) =>
  Effect.gen(function*() {
    if (database._tag === "Postgres") {
      const url = Redacted.value(database.url)
      const server = yield* withPg(url, async (c) => String((await c.query("SHOW server_version")).rows[0].server_version))
      const client = yield* run("pg_dump", ["--version"])
      if (major(client.replace(/^[^\d]*/, "")) < major(server)) {
        return yield* Effect.fail(fail(`pg_dump is ${client.trim()} but the server is PostgreSQL ${server}: install a pg_dump of version ${major(server)} or newer`))
      }
      yield* run("pg_dump", ["--format=custom", "--no-owner", "--no-privileges", "--file", to, "--dbname", url])
      return { kind: "postgres" as const, server_version: server }
    }
    // the embedded database: its data dir as PGlite dumps it (the server must not have it open)
    yield* attempt("embedded database dump", async () => {
      const db = await PGlite.create(database.dataDir)
      try {
        const dump = await db.dumpDataDir("gzip")
        await NodeFsp.writeFile(to, Buffer.from(await dump.arrayBuffer()))
      } finally {
        await db.close()
      }
    })
    return { kind: "embedded" as const }
  })

const restoreDatabase = (database: DatabaseConfig, from: string, kind: "postgres" | "embedded", force: boolean) =>
  Effect.gen(function*() {
    const configured = database._tag === "Postgres" ? "postgres" : "embedded"
    if (configured !== kind) return yield* Effect.fail(fail(`the backup holds a ${kind} database but this server is configured for ${configured}`))
    if (database._tag === "Postgres") {
      const url = Redacted.value(database.url)
      if (force) {
        yield* withPg(url, async (c) => {
          const schemas = (await c.query("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'")).rows as Array<{ nspname: string }>
          for (const s of schemas) await c.query(`DROP SCHEMA "${s.nspname.replace(/"/g, "\"\"")}" CASCADE`)
          await c.query("CREATE SCHEMA IF NOT EXISTS public")
        })
      }
      yield* run("pg_restore", ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--dbname", url, from])
      return
    }
    yield* attempt("embedded database restore", async () => {
      if (force) await NodeFsp.rm(database.dataDir, { recursive: true, force: true })
      await NodeFsp.mkdir(database.dataDir, { recursive: true })
      const db = await PGlite.create(database.dataDir, { loadDataDir: new Blob([await NodeFsp.readFile(from)]) })
      await db.query("SELECT 1")
      await db.close()
    })
  })

// --- blobs -----------------------------------------------------------------------------------

/** Every key of the configured blob store (all pages). */
const blobKeys = (blobs: BlobStoreConfig): Effect.Effect<ReadonlyArray<string>, BackupError> =>
  blobs._tag === "S3"
    ? Effect.suspend(() => {
      const client = s3Client(blobs)
      return Effect.ensuring(listS3(client, blobs.bucket, ""), Effect.sync(() => client.destroy()))
    })
    : attempt("list blobs", async () => {
      const base = NodePath.join(blobs.root, "data")
      if (!NodeFs.existsSync(base)) return []
      return (await NodeFsp.readdir(base, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile() && !e.name.endsWith(".tmp"))
        .map((e) => NodePath.relative(base, NodePath.join(e.parentPath, e.name)).split(NodePath.sep).join("/"))
        .sort()
    })

/**
 * The blob store's keys that are data: without the backups themselves when they are kept in the
 * blob store's own bucket (each backup would otherwise hold the ones before it).
 */
const dataKeys = (blobs: BlobStoreConfig, backups: Location): Effect.Effect<ReadonlyArray<string>, BackupError> =>
  Effect.map(blobKeys(blobs), (keys) =>
    blobs._tag === "S3" && backups._tag === "S3" && backups.bucket === blobs.bucket
      ? keys.filter((k) => !backupFile.test(k))
      : keys)

/** A file of a backup, wherever it sits in a bucket. */
const backupFile = /(^|\/)troupe-\d{8}T\d{6}Z\/(manifest\.json|database\.enc|blobs\.enc)$/

const withBlobStore = <A>(blobs: BlobStoreConfig, f: (store: BlobStore.BlobStoreService) => Effect.Effect<A, BackupError>) =>
  Effect.scoped(Effect.flatMap(
    Effect.mapError(Layer.build(BlobStore.layerFrom(blobs)), (e) => fail(`blob store: ${e.message}`)),
    (context) => f(Context.get(context, BlobStore.BlobStore))
  ))

const dumpBlobs = (blobs: BlobStoreConfig, backups: Location, to: string, progress: Progress) =>
  withBlobStore(blobs, (store) =>
    Effect.gen(function*() {
      const keys = yield* dataKeys(blobs, backups)
      const out = NodeFs.createWriteStream(to)
      let done = 0
      progress.step("blobs", 0, keys.length)
      for (const key of keys) {
        const info = yield* Effect.mapError(store.head(key), (e) => fail(`blob ${key}: ${e.message}`))
        const data = yield* Effect.mapError(store.get(key), (e) => fail(`blob ${key}: ${e.message}`))
        if (Option.isNone(data)) continue
        const header = JSON.stringify({ key, size: data.value.byteLength, content_type: Option.match(info, { onNone: () => "application/octet-stream", onSome: (i) => i.contentType }) })
        yield* attempt("write blobs", () =>
          new Promise<void>((resolve, reject) => {
            out.write(header + "\n")
            out.write(data.value, (e) => (e ? reject(e) : resolve()))
          }))
        progress.step("blobs", ++done, keys.length)
      }
      yield* attempt("write blobs", () => new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve()))))
      return done
    }))

const restoreBlobs = (blobs: BlobStoreConfig, from: string, count: number, progress: Progress) =>
  withBlobStore(blobs, (store) =>
    Effect.gen(function*() {
      const data = yield* attempt("read blobs", () => NodeFsp.readFile(from))
      let at = 0
      let done = 0
      progress.step("blobs", 0, count)
      while (at < data.length) {
        const nl = data.indexOf(10, at)
        if (nl < 0) return yield* Effect.fail(fail("blobs archive is truncated"))
        const header = JSON.parse(data.subarray(at, nl).toString("utf8")) as { key: string; size: number; content_type: string }
        const body = data.subarray(nl + 1, nl + 1 + header.size)
        yield* Effect.mapError(store.put(header.key, new Uint8Array(body), { contentType: header.content_type }), (e) => fail(`blob ${header.key}: ${e.message}`))
        at = nl + 1 + header.size
        progress.step("blobs", ++done, count)
      }
      return done
    }))

// --- backup and restore ----------------------------------------------------------------------

/** What backup and restore read: the same settings as the other roles. */
export interface Settings {
  readonly database: DatabaseConfig
  readonly blobStore: BlobStoreConfig
  readonly key: Buffer
  readonly version: string
}

const tempDir = Effect.acquireRelease(
  Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-backup-"))),
  (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
)

/** Write a backup under `to`; returns its manifest. */
export const backup = (settings: Settings, to: Location, progress: Progress = silentProgress): Effect.Effect<Manifest, BackupError> =>
  Effect.scoped(Effect.gen(function*() {
    const work = yield* tempDir
    const id = `troupe-${new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}`
    const target = targetOf(to, settings.blobStore)
    progress.step("database", 0, 1)
    const database = yield* dumpDatabase(settings.database, NodePath.join(work, "database"))
    progress.step("database", 1, 1)
    const blobs = yield* dumpBlobs(settings.blobStore, to, NodePath.join(work, "blobs"), progress)
    const files: Array<ManifestFile> = []
    for (const name of ["database", "blobs"]) {
      const sealed = yield* encryptFile(settings.key, NodePath.join(work, name), NodePath.join(work, `${name}.enc`))
      files.push({ name: `${name}.enc`, ...sealed })
    }
    const body: Omit<Manifest, "mac"> = { format, id, created_at: new Date().toISOString(), troupe_version: settings.version, database, blobs, files }
    const manifest: Manifest = { ...body, mac: macOf(settings.key, body) }
    yield* attempt("manifest", () => NodeFsp.writeFile(NodePath.join(work, "manifest.json"), JSON.stringify(manifest, null, 2)))
    let uploaded = 0
    for (const name of [...files.map((f) => f.name), "manifest.json"]) {
      progress.step("upload", uploaded, files.length + 1)
      yield* target.putFile(`${id}/${name}`, NodePath.join(work, name))
      progress.step("upload", ++uploaded, files.length + 1)
    }
    return manifest
  }))

/** The backups under a location, oldest first (folders with a manifest). */
export const list = (location: Location, blobs: BlobStoreConfig): Effect.Effect<ReadonlyArray<string>, BackupError> =>
  Effect.map(targetOf(location, blobs).list, (names) =>
    names.filter((n) => /^troupe-[0-9TZ]+\/manifest\.json$/.test(n)).map((n) => n.split("/")[0]!).sort())

/** Keep the newest `keep` backups under a location, delete the others. */
export const prune = (location: Location, blobs: BlobStoreConfig, keep: number): Effect.Effect<ReadonlyArray<string>, BackupError> =>
  Effect.gen(function*() {
    const target = targetOf(location, blobs)
    const all = yield* list(location, blobs)
    const old = all.slice(0, Math.max(0, all.length - keep))
    const names = yield* target.list
    for (const id of old) {
      // the manifest last: a half-deleted backup is never listed as one
      for (const n of names.filter((n) => n.startsWith(`${id}/`) && !n.endsWith("manifest.json"))) yield* target.remove(n)
      yield* target.remove(`${id}/manifest.json`)
      yield* target.removeFolder(id)
    }
    return old
  })

/**
 * Restore the backup at `from` (a backup's folder, or a location holding backups: the newest) into
 * the configured database and blob store. Checks every checksum before touching anything.
 */
export const restore = (settings: Settings, from: Location, options: { readonly force: boolean; readonly progress?: Progress }): Effect.Effect<Manifest, BackupError> =>
  Effect.scoped(Effect.gen(function*() {
    const progress = options.progress ?? silentProgress
    const work = yield* tempDir
    // a backup's own folder, or the newest backup under the location
    let location = from
    let target = targetOf(location, settings.blobStore)
    if (!(yield* target.getFile("manifest.json", NodePath.join(work, "manifest.json")))) {
      const all = yield* list(from, settings.blobStore)
      const newest = all.at(-1)
      if (!newest) return yield* Effect.fail(fail("no backup there (no manifest.json)"))
      location = from._tag === "Dir" ? { _tag: "Dir", path: NodePath.join(from.path, newest) } : { ...from, prefix: from.prefix ? `${from.prefix}/${newest}` : newest }
      target = targetOf(location, settings.blobStore)
      yield* target.getFile("manifest.json", NodePath.join(work, "manifest.json"))
    }
    const manifest = yield* attempt("manifest", async () => JSON.parse(await NodeFsp.readFile(NodePath.join(work, "manifest.json"), "utf8")) as Manifest)
    if (manifest.format !== format) return yield* Effect.fail(fail(`unknown backup format ${JSON.stringify(manifest.format)}`))
    const { mac, ...body } = manifest
    const expected = macOf(settings.key, body)
    if (typeof mac !== "string" || mac.length !== expected.length || !NodeCrypto.timingSafeEqual(Buffer.from(mac), Buffer.from(expected))) {
      return yield* Effect.fail(fail("the manifest does not verify: wrong TROUPE_BACKUP_KEY, or the manifest was altered"))
    }
    // every file present and intact before anything is changed
    let fetched = 0
    for (const file of manifest.files) {
      progress.step("download", fetched, manifest.files.length)
      const path = NodePath.join(work, file.name)
      if (!(yield* target.getFile(file.name, path))) return yield* Effect.fail(fail(`${file.name} is missing from the backup`))
      const sha = yield* attempt("checksum", () => sha256File(path))
      if (sha !== file.sha256) return yield* Effect.fail(fail(`${file.name} fails its checksum (the backup is damaged): expected ${file.sha256}, got ${sha}`))
      progress.step("download", ++fetched, manifest.files.length)
    }
    for (const file of manifest.files) yield* decryptFile(settings.key, NodePath.join(work, file.name), NodePath.join(work, file.name.replace(/\.enc$/, "")))
    if (!options.force) {
      if (yield* databaseHasData(settings.database)) {
        return yield* Effect.fail(fail("the configured database is not empty: restore into an empty one, or pass --force to replace what it holds"))
      }
      if ((yield* dataKeys(settings.blobStore, from)).length > 0) {
        return yield* Effect.fail(fail("the configured blob store is not empty: restore into an empty one, or pass --force to overwrite"))
      }
    }
    progress.step("database", 0, 1)
    yield* restoreDatabase(settings.database, NodePath.join(work, "database"), manifest.database.kind, options.force)
    progress.step("database", 1, 1)
    yield* restoreBlobs(settings.blobStore, NodePath.join(work, "blobs"), manifest.blobs, progress)
    return manifest
  }))

// --- scheduled backups -----------------------------------------------------------------------

/** What a scheduled backup does: when, where to, how many to keep, under which key. */
export interface ScheduleSettings {
  readonly cron: Cron.Cron
  /** The expression as configured (for the logs). */
  readonly expression: string
  readonly to: Location
  readonly keep: number
  readonly key: Buffer
}

const invalid = (name: string, message: string) => Either.left(ConfigError.InvalidData([name], message))

/**
 * `TROUPE_BACKUP_SCHEDULE` (cron: 5 fields, or 6 with seconds first; UTC), `TROUPE_BACKUP_TO`,
 * `TROUPE_BACKUP_KEEP` (default 7) and `TROUPE_BACKUP_KEY`; none when no schedule is set.
 */
export const scheduleFromEnv: Config.Config<Option.Option<ScheduleSettings>> = Config.all({
  // empty counts as unset (a template's blank default)
  schedule: Config.string("TROUPE_BACKUP_SCHEDULE").pipe(Config.withDefault(""), Config.map((s) => Option.liftPredicate(s.trim(), (t) => t !== ""))),
  to: Config.string("TROUPE_BACKUP_TO").pipe(Config.withDefault(""), Config.map((s) => Option.liftPredicate(s.trim(), (t) => t !== ""))),
  keep: Config.integer("TROUPE_BACKUP_KEEP").pipe(Config.withDefault(7)),
  key: Config.option(Config.redacted("TROUPE_BACKUP_KEY"))
}).pipe(Config.mapOrFail(({ keep, key, schedule, to }): Either.Either<Option.Option<ScheduleSettings>, ConfigError.ConfigError> => {
  if (Option.isNone(schedule)) return Either.right(Option.none())
  const cron = Cron.parse(schedule.value, "UTC")
  if (Either.isLeft(cron)) return invalid("TROUPE_BACKUP_SCHEDULE", `is not a cron expression (${cron.left.message}): e.g. "0 3 * * *" for 03:00 UTC daily`)
  if (Option.isNone(to)) return invalid("TROUPE_BACKUP_TO", "is required with TROUPE_BACKUP_SCHEDULE: a directory or s3://bucket/prefix")
  if (keep < 1) return invalid("TROUPE_BACKUP_KEEP", "must be at least 1")
  const parsedKey = Effect.runSync(Effect.either(parseKey(Option.match(key, { onNone: () => undefined, onSome: Redacted.value }))))
  if (Either.isLeft(parsedKey)) return invalid("TROUPE_BACKUP_KEY", parsedKey.left.message.replace(/^TROUPE_BACKUP_KEY /, ""))
  return Either.right(Option.some({ cron: cron.right, expression: schedule.value, to: parseLocation(to.value), keep, key: parsedKey.right }))
}))

/** The schedule of a hosting role with this configuration (checked before the role starts). */
export const scheduleFor = (config: TroupeConfigShape): Effect.Effect<Option.Option<ScheduleSettings>, ConfigError.ConfigError> =>
  Effect.flatMap(scheduleFromEnv, (schedule) =>
    Option.isSome(schedule) && config.database._tag !== "Postgres"
      ? Effect.fail(ConfigError.InvalidData(["TROUPE_BACKUP_SCHEDULE"], "needs DATABASE_URL (Postgres): the embedded database cannot be dumped while the server runs; stop it and run `troupe admin backup`"))
      : Effect.succeed(schedule))

/** One scheduled backup, then retention; failures are logged, never fatal (the next tick tries again). */
export const scheduledOnce = (settings: Settings, schedule: ScheduleSettings): Effect.Effect<void> =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const manifest = yield* backup(settings, schedule.to)
    const pruned = yield* prune(schedule.to, settings.blobStore, schedule.keep)
    yield* Effect.logInfo("Scheduled backup written").pipe(Effect.annotateLogs({
      backup_id: manifest.id,
      bytes: manifest.files.reduce((n, f) => n + f.bytes, 0),
      blobs: manifest.blobs,
      duration_ms: (yield* Clock.currentTimeMillis) - started,
      pruned: pruned.join(",")
    }))
  }).pipe(
    Effect.catchAll((e) => Effect.logError("Scheduled backup failed", e.message)),
    Effect.withSpan("backup.scheduled")
  )

/** Run `once` at every time `cron` names (waits for the next one first), forever. */
export const onCron = <R>(cron: Cron.Cron, once: Effect.Effect<void, never, R>): Effect.Effect<never, never, R> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const next = Cron.next(cron, new Date(now)).getTime()
    yield* Effect.sleep(Duration.millis(Math.max(0, next - now)))
    yield* once
  }).pipe(Effect.forever)

/**
 * Scheduled backups of a hosting role, when `TROUPE_BACKUP_SCHEDULE` is set: a cluster singleton,
 * so one runner of the cluster takes them however many share the database. Needs Postgres (the
 * embedded database cannot be dumped while the server has it open).
 */
export const layerScheduled = (config: TroupeConfigShape, version: string): Layer.Layer<never, ConfigError.ConfigError, Sharding.Sharding> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const schedule = yield* scheduleFor(config)
    if (Option.isNone(schedule)) return Layer.empty
    const settings: Settings = { database: config.database, blobStore: config.blobStore, key: schedule.value.key, version }
    yield* Effect.logInfo("Scheduled backups on").pipe(Effect.annotateLogs({ schedule: schedule.value.expression, keep: schedule.value.keep }))
    return Singleton.make("troupe-scheduled-backup", onCron(schedule.value.cron, scheduledOnce(settings, schedule.value)))
  }))
