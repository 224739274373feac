/**
 * The uploads service. A body arrives as a temporary file (streamed to disk by the routes); then:
 *
 * 1. at once, before answering: type by content sniffing, the allowlist and the refusals with their
 *    own codes (SVG, archives, executables, declared type or name disagreeing, pixel bombs from
 *    the header, PDFs that are encrypted, carry JavaScript or launch actions or have too many
 *    pages, malware found by clamd), de-duplication by SHA-256 per user, the user's quota. A
 *    refused file leaves nothing behind: no row, no blob.
 * 2. in the background (the answer was `202 processing`): the file is encrypted with its own key
 *    (AES-256-GCM in chunks, the key wrapped by the key ring under the owner's uploads key) into the
 *    blob store, a preview made on the image engine's worker pool (images: WebP ≤ 1024 px, EXIF
 *    orientation applied, metadata stripped; PDFs: page 1 by pdfium), the text of text files and
 *    PDFs kept (encrypted) for the mates, then `ready` — or `rejected` with a code when the engine
 *    refuses the image, and the stored blobs are removed. While it works, the process touches the
 *    row; an upload left `processing` by a process that stopped (untouched for
 *    `UPLOADS_PROCESSING_TIMEOUT`) is rejected with `processing_interrupted` by the sweeper every
 *    process runs, its blobs removed and its chats told.
 *
 * Public images (`public: true`) are stored in the clear under `public/` and served by a redirect
 * to a presigned (S3) or signed local URL. Deleting a file, its chat or its owner's account
 * crypto-shreds: the wrapped key is forgotten (the owner's uploads key destroyed, for an account)
 * and the blobs deleted.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs/promises"
import { Readable } from "node:stream"
import * as BlobStore from "../runtime/BlobStore.ts"
import * as Ids from "../runtime/Ids.ts"
import * as KeyRing from "../runtime/KeyRing.ts"
import { ImagePool, isInputProblem } from "../preview/engine/Pool.ts"
import { ChatNotifier, type AttachmentNews } from "./Access.ts"
import * as Clamd from "./Clamd.ts"
import { UploadsConfig } from "./Config.ts"
import * as FileCipher from "./FileCipher.ts"
import * as Pdf from "./Pdf.ts"
import * as Repo from "./Repo.ts"
import * as Sniff from "./Sniff.ts"

/** A file refused (or a request about files refused), with its HTTP status and machine-readable code. */
export class UploadRefused extends Schema.TaggedError<UploadRefused>()("UploadRefused", {
  status: Schema.Number,
  code: Schema.String,
  message: Schema.String
}) {}

/** The service cannot take or serve files right now (storage, database or a required scanner down). */
export class UploadUnavailable extends Schema.TaggedError<UploadUnavailable>()("UploadUnavailable", {
  code: Schema.String,
  message: Schema.String
}) {}

/** A body that arrived, on disk. */
export interface Incoming {
  readonly ownerId: string
  readonly name: string
  readonly declared: string | undefined
  readonly path: string
  readonly size: number
  readonly sha256: string
  readonly public: boolean
  readonly chatId: string | null
}

/** What an upload's caller is told. */
export interface Accepted {
  readonly id: string
  readonly status: Repo.Status
  readonly duplicate: boolean
}

/** An opened stored file. */
export interface Opened {
  readonly row: Repo.Row
  readonly size: number
  readonly mime: string
  readonly range: { readonly start: number; readonly end: number } | undefined
  readonly body: Readable
}

/** The uploads service. */
export interface UploadsService {
  readonly accept: (incoming: Incoming) => Effect.Effect<Accepted, UploadRefused | UploadUnavailable>
  /** The upload as its owner sees it; none for anyone else. */
  readonly status: (ownerId: string, id: string) => Effect.Effect<Option.Option<Repo.Row>, UploadUnavailable>
  /** The file (or its preview), decrypted as a stream; none when it is not the caller's or not ready. */
  readonly open: (
    ownerId: string,
    id: string,
    which: "file" | "preview",
    range: { readonly start: number; readonly end: number | undefined } | { readonly suffix: number } | undefined
  ) => Effect.Effect<Option.Option<Opened>, UploadRefused | UploadUnavailable>
  /** A public image's short-lived URL (presigned S3 or signed local); none when it is not a public file. */
  readonly publicUrl: (id: string, which: "file" | "preview", localBase: string) => Effect.Effect<Option.Option<string>, UploadUnavailable>
  /** Serve a signed local URL of a public file; none when the signature or the file does not hold. */
  readonly openPublic: (id: string, which: "file" | "preview", expires: number, sig: string) => Effect.Effect<Option.Option<{ readonly mime: string; readonly size: number; readonly body: Readable }>, UploadUnavailable>
  /** Link the caller's uploads to a message of a chat (before it is posted); unknown ids are refused. */
  readonly attach: (ownerId: string, ids: ReadonlyArray<string>, chatId: string, clientMessageId: string) => Effect.Effect<ReadonlyArray<Repo.Row>, UploadRefused | UploadUnavailable>
  readonly shred: (ownerId: string, id: string) => Effect.Effect<boolean, UploadUnavailable>
  readonly shredChat: (chatId: string) => Effect.Effect<number, UploadUnavailable>
  readonly shredUser: (userId: string) => Effect.Effect<number, UploadUnavailable>
  /** Background jobs still running (tests and shutdown wait for them). */
  readonly pending: Effect.Effect<number>
}

/** The uploads service tag. */
export class Uploads extends Context.Tag("troupe/uploads/Uploads")<Uploads, UploadsService>() {}

/** The key ring key that wraps an owner's file keys. */
export const ownerKeyId = (ownerId: string) => `uploads:${ownerId}`

/** Blob keys of an upload. */
export const blobKeys = (id: string) => ({ file: `uploads/${id}/file`, preview: `uploads/${id}/preview`, publicFile: `public/${id}/file`, publicPreview: `public/${id}/preview.webp` })

const unavailable = (what: string) => (e: { readonly message?: string }) =>
  new UploadUnavailable({ code: "unavailable", message: `${what}: ${e.message ?? "failed"}` })

const refused = (r: { readonly status: number; readonly code: string; readonly message: string }) => new UploadRefused(r)

/** Build the service. */
export const make = Effect.gen(function*() {
  const config = yield* UploadsConfig
  const repo = yield* Repo.make
  const blobs = yield* BlobStore.BlobStore
  const keyRing = yield* KeyRing.KeyRing
  const pool = yield* ImagePool
  const notifier = yield* Effect.serviceOption(ChatNotifier)
  const urlSecret = yield* repo.secret("public-url", NodeCrypto.randomBytes(32)).pipe(Effect.orDie)
  const scope = yield* Effect.scope
  let running = 0
  yield* Effect.promise(() => NodeFs.mkdir(config.tmpDir, { recursive: true, mode: 0o700 }))

  const db = <A, E extends { readonly message?: string }, R>(effect: Effect.Effect<A, E, R>) => Effect.mapError(effect, unavailable("database"))
  const store = <A, E extends { readonly message?: string }, R>(effect: Effect.Effect<A, E, R>) => Effect.mapError(effect, unavailable("blob store"))
  const removeFile = (path: string) => Effect.promise(() => NodeFs.rm(path, { force: true }))

  const tell = (row: Pick<Repo.Row, "uploadId" | "ownerId">, news: AttachmentNews) =>
    Option.match(notifier, {
      onNone: () => Effect.void,
      onSome: (n) =>
        repo.chatsOf(row.uploadId).pipe(
          Effect.flatMap((chats) => Effect.forEach(chats, (chatId) => n.notify(chatId, row.ownerId, news), { discard: true })),
          Effect.catchAllCause((cause) => Effect.logWarning("could not tell the chats about an attachment", cause))
        )
    })

  /** An upload that will not be ready: its blobs removed (whatever part was stored), its chats told. */
  const discarded = (row: Pick<Repo.Row, "uploadId" | "ownerId" | "name">, code: string, message: string) =>
    Effect.zipRight(
      Effect.forEach(Object.values(blobKeys(row.uploadId)), (key) => blobs.delete(key), { discard: true }).pipe(Effect.ignore),
      tell(row, { kind: "attachment_rejected", uploadId: row.uploadId, name: row.name, code, message })
    )

  /** The scan, as configured: `off` skips it, `optional` skips it when clamd is down, `required` refuses then. */
  const scan = (path: string): Effect.Effect<void, UploadRefused | UploadUnavailable> => {
    if (config.scan.mode === "off") return Effect.void
    return Option.match(config.scan.clamd, {
      onNone: () =>
        config.scan.mode === "required"
          ? Effect.fail(new UploadUnavailable({ code: "scanner_unavailable", message: "uploads must be scanned (TROUPE_UPLOADS_SCAN=required) but no clamd is configured (CLAMD_HOST/CLAMD_PORT or CLAMD_SOCKET)" }))
          : Effect.void,
      onSome: (address) =>
        Clamd.scanFile(address, path, config.scan.timeoutMs).pipe(
          Effect.catchTag("ClamdUnavailable", (e) =>
            config.scan.mode === "required"
              ? Effect.fail(new UploadUnavailable({ code: "scanner_unavailable", message: `the malware scanner is unavailable; try again later (${e.message})` }))
              : Effect.as(Effect.logWarning("clamd unavailable: upload accepted without a scan").pipe(Effect.annotateLogs({ reason: e.message })), { clean: true } as const)),
          Effect.flatMap((verdict) =>
            verdict.clean ? Effect.void : Effect.fail(refused({ status: 422, code: "malware_detected", message: `the file carries malware (${verdict.signature})` })))
        )
    })
  }

  const checks = (incoming: Incoming) =>
    Effect.gen(function*() {
      if (incoming.size === 0) return yield* Effect.fail(refused({ status: 400, code: "empty_file", message: "the file is empty" }))
      // a reader that throws on a hostile file refuses it; it never fails the request with a 500
      const unreadable = (e: unknown) => refused({ status: 422, code: "file_unreadable", message: `the file could not be read: ${e instanceof Error ? e.message.slice(0, 200) : "unknown error"}` })
      const sniffed = yield* Effect.tryPromise({ try: () => Sniff.sniff(incoming.path, incoming.declared, incoming.name), catch: unreadable })
      if (Sniff.isRefusal(sniffed)) return yield* Effect.fail(refused(sniffed))
      let dims: { width: number; height: number } | null = null
      if (sniffed.kind === "image") {
        const header = yield* Effect.tryPromise({ try: () => Sniff.checkImageHeader(incoming.path, config.maxPixels), catch: unreadable })
        if (Sniff.isRefusal(header)) return yield* Effect.fail(refused(header))
        dims = header
      } else if (incoming.public) {
        return yield* Effect.fail(refused({ status: 400, code: "public_images_only", message: "only images may be public (profile pictures)" }))
      }
      if (sniffed.kind === "pdf") {
        const bytes = yield* Effect.promise(() => NodeFs.readFile(incoming.path))
        const refusal = yield* Effect.tryPromise({ try: () => Pdf.check(bytes, config.maxPdfPages), catch: unreadable })
        if (refusal) return yield* Effect.fail(refused({ status: 422, ...refusal }))
      }
      yield* scan(incoming.path)
      return { sniffed, dims }
    })

  const accept = (incoming: Incoming): Effect.Effect<Accepted, UploadRefused | UploadUnavailable> =>
    Effect.gen(function*() {
      const { dims, sniffed } = yield* checks(incoming)
      const twin = yield* db(repo.duplicate(incoming.ownerId, incoming.sha256, incoming.public))
      if (twin) {
        yield* removeFile(incoming.path)
        return { id: twin.uploadId, status: twin.status, duplicate: true }
      }
      const used = yield* db(repo.used(incoming.ownerId))
      if (used + incoming.size > config.userQuotaBytes) {
        return yield* Effect.fail(refused({ status: 413, code: "quota_exceeded", message: `this file (${incoming.size} bytes) would take your files over your quota of ${config.userQuotaBytes} bytes (${used} used)` }))
      }
      const id = Ids.make("f")
      const inserted = yield* db(repo.insert({
        uploadId: id,
        ownerId: incoming.ownerId,
        name: incoming.name,
        mime: sniffed.mime,
        kind: sniffed.kind,
        size: incoming.size,
        sha256: incoming.sha256,
        public: incoming.public,
        width: dims?.width ?? null,
        height: dims?.height ?? null,
        chatId: incoming.chatId
      }))
      if (!inserted) {
        const again = yield* db(repo.duplicate(incoming.ownerId, incoming.sha256, incoming.public))
        yield* removeFile(incoming.path)
        if (again) return { id: again.uploadId, status: again.status, duplicate: true }
        return yield* Effect.fail(new UploadUnavailable({ code: "unavailable", message: "could not record the upload; retry" }))
      }
      // over quota after all (uploads of the same user in parallel): the last one in gives way
      if ((yield* db(repo.used(incoming.ownerId))) > config.userQuotaBytes) {
        yield* db(repo.remove(id))
        return yield* Effect.fail(refused({ status: 413, code: "quota_exceeded", message: `this file would take your files over your quota of ${config.userQuotaBytes} bytes` }))
      }
      running++
      yield* process(id, incoming, sniffed).pipe(
        Effect.ensuring(Effect.zipRight(removeFile(incoming.path), Effect.sync(() => running--))),
        Effect.forkIn(scope)
      )
      return { id, status: "processing" as const, duplicate: false }
    }).pipe(Effect.tapError(() => removeFile(incoming.path)))

  const sealText = (ownerId: string, id: string, text: string) =>
    text.length === 0 ? Effect.succeed(null) : keyRing.encryptText(ownerKeyId(ownerId), text, `upload-text:${id}`)

  /** The text of a text file: its first characters (whole UTF-8 sequences only). */
  const readText = (path: string) =>
    Effect.promise(async () => {
      const handle = await NodeFs.open(path, "r")
      try {
        const buffer = Buffer.alloc(config.maxContextChars * 4)
        const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, 0)
        return new TextDecoder().decode(buffer.subarray(0, bytesRead)).replace(/\uFFFD+$/, "").slice(0, config.maxContextChars)
      } finally {
        await handle.close()
      }
    })

  class Rejected {
    constructor(readonly code: string, readonly message: string) {}
  }

  const previewOf = (source: Uint8Array) =>
    pool.transform(source, { maxWidth: config.previewSize, maxHeight: config.previewSize, quality: 80, format: "webp" }, { maxPixels: config.maxPixels, maxFrames: 1000 }).pipe(
      Effect.catchTag("ImageError", (e) => isInputProblem(e.code) ? Effect.fail(new Rejected(e.code, e.message)) : Effect.fail(e))
    )

  const timeout = config.processingTimeoutSeconds
  const heartbeat = (id: string) =>
    repo.touch(id).pipe(Effect.ignore, Effect.repeat(Schedule.spaced(`${Math.max(200, Math.floor((timeout * 1000) / 3))} millis`)))

  /** Reject the uploads a stopped process left `processing`; at start, then every half timeout. */
  const sweep = Effect.gen(function*() {
    const message = `processing stopped (the process handling the file ended) and did not resume within ${timeout} s; upload the file again`
    const swept = yield* repo.rejectStale(timeout, "processing_interrupted", message)
    yield* Effect.forEach(swept, (row) => discarded(row, "processing_interrupted", message), { discard: true })
    if (swept.length > 0) yield* Effect.logWarning("uploads left processing were rejected").pipe(Effect.annotateLogs({ upload_ids: swept.map((r) => r.uploadId).join(",") }))
  }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("sweeping stuck uploads failed", cause)))
  yield* sweep.pipe(Effect.repeat(Schedule.spaced(`${Math.max(500, Math.floor((timeout * 1000) / 2))} millis`)), Effect.forkIn(scope))

  const process = (id: string, incoming: Incoming, sniffed: Sniff.Sniffed) => {
    const kind = sniffed.kind
    const keys = blobKeys(id)
    const encrypted = `${incoming.path}.sealed`
    return Effect.gen(function*() {
      const fileKey = FileCipher.newKey()
      yield* keyRing.createDataKey(ownerKeyId(incoming.ownerId))
      const wrappedKey = yield* keyRing.encrypt(ownerKeyId(incoming.ownerId), fileKey, `upload-key:${id}`)
      let preview: { bytes: Uint8Array; width: number; height: number } | undefined
      let text = ""
      let pages: number | null = null
      if (kind === "image") {
        const source = yield* Effect.promise(() => NodeFs.readFile(incoming.path))
        preview = yield* previewOf(source)
      } else if (kind === "pdf") {
        const source = yield* Effect.promise(() => NodeFs.readFile(incoming.path))
        const rendered = yield* Effect.tryPromise({
          try: () => Pdf.render(source, config.previewSize, config.maxContextChars),
          catch: (e) => new Rejected("pdf_invalid", `the PDF could not be rendered: ${e instanceof Error ? e.message.slice(0, 200) : "unknown"}`)
        })
        pages = rendered.pages
        text = rendered.text
        preview = yield* previewOf(rendered.png)
      } else if (kind === "text") {
        text = yield* readText(incoming.path)
      }
      if (incoming.public) {
        yield* blobs.putFile(keys.publicFile, incoming.path, { contentType: sniffed.mime })
        if (preview) yield* blobs.put(keys.publicPreview, preview.bytes, { contentType: "image/webp" })
      } else {
        yield* Effect.promise(() => FileCipher.encryptFile(fileKey, id, incoming.size, incoming.path, encrypted))
        yield* blobs.putFile(keys.file, encrypted, { contentType: "application/octet-stream" })
        if (preview) {
          const sealed = KeyRing.seal(NodeCrypto.createSecretKey(fileKey), id, preview.bytes, `${id}:preview`)
          yield* blobs.put(keys.preview, sealed, { contentType: "application/octet-stream" })
        }
      }
      const textSealed = yield* sealText(incoming.ownerId, id, text)
      yield* repo.ready(id, {
        wrappedKey,
        hasPreview: preview !== undefined,
        width: kind === "image" ? null : preview?.width ?? null,
        height: kind === "image" ? null : preview?.height ?? null,
        pages,
        textSealed
      })
      yield* Effect.logInfo("upload ready").pipe(Effect.annotateLogs({ upload_id: id, kind, size: incoming.size }))
      yield* tell({ uploadId: id, ownerId: incoming.ownerId }, { kind: "attachment_ready", uploadId: id, name: incoming.name, contentType: sniffed.mime })
    }).pipe(
      Effect.catchAll((e) => {
        const [code, message] = e instanceof Rejected ? [e.code, e.message] : ["processing_failed", `the file could not be processed: ${String((e as { message?: unknown }).message ?? "unknown error").slice(0, 200)}`]
        return Effect.gen(function*() {
          if (!(e instanceof Rejected)) yield* Effect.logError("upload processing failed", e).pipe(Effect.annotateLogs({ upload_id: id }))
          yield* repo.reject(id, code, message).pipe(Effect.ignore)
          yield* discarded({ uploadId: id, ownerId: incoming.ownerId, name: incoming.name }, code, message)
        })
      }),
      // the row shows this process is alive: the sweeper of any process leaves it alone
      (work) => Effect.scoped(Effect.zipRight(Effect.forkScoped(heartbeat(id)), work)),
      Effect.ensuring(removeFile(encrypted)),
      Effect.catchAllCause((cause) => Effect.logError("upload processing died", cause))
    )
  }

  const owned = (ownerId: string, id: string) =>
    Ids.pattern.test(id)
      ? Effect.map(db(repo.get(id)), (row) => (row && row.ownerId === ownerId && row.status !== "deleted" ? Option.some(row) : Option.none()))
      : Effect.succeed(Option.none<Repo.Row>())

  const fileKeyOf = (row: Repo.Row) =>
    row.wrappedKey === null
      ? Effect.fail(new UploadUnavailable({ code: "unavailable", message: "the file's key is gone" }))
      : keyRing.decrypt(row.wrappedKey, `upload-key:${row.uploadId}`).pipe(Effect.mapError(unavailable("key ring")))

  const sign = (id: string, which: string, expires: number) =>
    NodeCrypto.createHmac("sha256", urlSecret).update(`${id}:${which}:${expires}`).digest("base64url")

  const service: UploadsService = {
    accept,
    status: owned,
    open: (ownerId, id, which, requested) =>
      Effect.gen(function*() {
        const found = yield* owned(ownerId, id)
        if (Option.isNone(found) || found.value.status !== "ready") return Option.none()
        const row = found.value
        const keys = blobKeys(row.uploadId)
        if (which === "preview") {
          if (!row.hasPreview) return Option.none()
          if (row.public) {
            const body = yield* store(blobs.getStream(keys.publicPreview))
            const info = yield* store(blobs.head(keys.publicPreview))
            return Option.map(body, (b) => ({ row, size: Option.match(info, { onNone: () => 0, onSome: (i) => i.size }), mime: "image/webp", range: undefined, body: b }))
          }
          const sealed = yield* store(blobs.get(keys.preview))
          if (Option.isNone(sealed)) return Option.none()
          const fileKey = yield* fileKeyOf(row)
          const plain = yield* Effect.try({
            try: () => KeyRing.open(NodeCrypto.createSecretKey(fileKey), sealed.value, `${row.uploadId}:preview`),
            catch: () => new UploadUnavailable({ code: "unavailable", message: "the stored preview does not decrypt" })
          })
          return Option.some({ row, size: plain.byteLength, mime: "image/webp", range: undefined, body: Readable.from([Buffer.from(plain)]) })
        }
        let range: { start: number; end: number } | undefined
        if (requested !== undefined && row.size > 0) {
          const [start, end] = "suffix" in requested
            ? [Math.max(0, row.size - requested.suffix), row.size - 1]
            : [requested.start, Math.min(requested.end ?? row.size - 1, row.size - 1)]
          if (start >= row.size || start > end || ("suffix" in requested && requested.suffix === 0)) {
            return yield* Effect.fail(refused({ status: 416, code: "range_not_satisfiable", message: `the file has ${row.size} bytes` }))
          }
          range = { start, end }
        }
        if (row.public) {
          const body = yield* store(blobs.getStream(keys.publicFile, range))
          return Option.map(body, (b) => ({ row, size: row.size, mime: row.mime, range, body: b }))
        }
        const fileKey = yield* fileKeyOf(row)
        const plainStart = range?.start ?? 0
        const plainEnd = range?.end ?? row.size - 1
        const sealed = FileCipher.sealedRange(row.uploadId, row.size, plainStart, plainEnd)
        const body = yield* store(blobs.getStream(keys.file, { start: sealed.start, end: sealed.end }))
        if (Option.isNone(body)) return Option.none()
        const decrypt = FileCipher.decryptStream(fileKey, row.uploadId, row.size, sealed.first, plainStart, plainEnd)
        body.value.on("error", (e) => decrypt.destroy(e))
        return Option.some({ row, size: row.size, mime: row.mime, range, body: body.value.pipe(decrypt) })
      }),
    publicUrl: (id, which, localBase) =>
      Effect.gen(function*() {
        if (!Ids.pattern.test(id)) return Option.none()
        const row = yield* db(repo.get(id))
        if (!row || !row.public || row.status !== "ready" || (which === "preview" && !row.hasPreview)) return Option.none()
        const keys = blobKeys(id)
        const presigned = yield* store(blobs.signedUrl(which === "file" ? keys.publicFile : keys.publicPreview, config.publicUrlTtlSeconds))
        if (Option.isSome(presigned)) return presigned
        const expires = Math.floor(Date.now() / 1000) + config.publicUrlTtlSeconds
        return Option.some(`${localBase}/v1/files/${id}/${which === "file" ? "public" : "public-preview"}?expires=${expires}&sig=${sign(id, which, expires)}`)
      }),
    openPublic: (id, which, expires, sig) =>
      Effect.gen(function*() {
        if (!Ids.pattern.test(id) || !Number.isSafeInteger(expires) || expires < Date.now() / 1000) return Option.none()
        const expected = Buffer.from(sign(id, which, expires))
        const given = Buffer.from(sig)
        if (expected.byteLength !== given.byteLength || !NodeCrypto.timingSafeEqual(expected, given)) return Option.none()
        const row = yield* db(repo.get(id))
        if (!row || !row.public || row.status !== "ready") return Option.none()
        const key = which === "file" ? blobKeys(id).publicFile : blobKeys(id).publicPreview
        const info = yield* store(blobs.head(key))
        const body = yield* store(blobs.getStream(key))
        if (Option.isNone(info) || Option.isNone(body)) return Option.none()
        return Option.some({ mime: which === "file" ? row.mime : "image/webp", size: info.value.size, body: body.value })
      }),
    attach: (ownerId, ids, chatId, clientMessageId) =>
      Effect.gen(function*() {
        const rows: Array<Repo.Row> = []
        for (const id of ids) {
          const found = yield* owned(ownerId, id)
          if (Option.isNone(found)) return yield* Effect.fail(refused({ status: 404, code: "upload_not_found", message: `no upload ${id}` }))
          if (found.value.status === "rejected") return yield* Effect.fail(refused({ status: 422, code: "upload_rejected", message: `upload ${id} was rejected (${found.value.code})` }))
          rows.push(found.value)
        }
        for (const row of rows) yield* db(repo.attach(row.uploadId, chatId, clientMessageId))
        return rows
      }),
    shred: (ownerId, id) =>
      Effect.gen(function*() {
        const found = yield* owned(ownerId, id)
        if (Option.isNone(found)) return false
        yield* shredRow(found.value)
        return true
      }),
    shredChat: (chatId) =>
      Effect.gen(function*() {
        const rows = yield* db(repo.onlyInChat(chatId))
        yield* Effect.forEach(rows, shredRow, { discard: true })
        yield* db(repo.detachChat(chatId))
        return rows.length
      }),
    shredUser: (userId) =>
      Effect.gen(function*() {
        // the owner's uploads key wraps every file key: destroying it makes all of them unreadable at once
        yield* db(keyRing.destroyDataKey(ownerKeyId(userId)))
        const rows = yield* db(repo.ofOwner(userId))
        yield* Effect.forEach(rows, shredRow, { discard: true })
        return rows.length
      }),
    pending: Effect.sync(() => running)
  }

  const shredRow = (row: Repo.Row) =>
    Effect.gen(function*() {
      yield* db(repo.shred(row.uploadId))
      yield* Effect.forEach(Object.values(blobKeys(row.uploadId)), (key) => store(blobs.delete(key)), { discard: true })
    })

  return service
})

/** The service as a layer (its background jobs end with the layer's scope). */
export const layer: Layer.Layer<Uploads, never, UploadsConfig | SqlClient.SqlClient | BlobStore.BlobStore | KeyRing.KeyRing | ImagePool> = Layer.scoped(Uploads, make)

/** The service when uploads cannot work in this process (no master key): every call answers 503 with the reason. */
export const disabled = (reason: string): UploadsService => {
  const no = Effect.fail(new UploadUnavailable({ code: "uploads_unavailable", message: reason }))
  return {
    accept: () => no,
    status: () => no,
    open: () => no,
    publicUrl: () => no,
    openPublic: () => no,
    attach: () => no,
    shred: () => no,
    shredChat: () => no,
    shredUser: () => no,
    pending: Effect.succeed(0)
  }
}
