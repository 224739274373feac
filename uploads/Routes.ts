/**
 * The uploads HTTP endpoints, added to the runtime's `Routes` (outside the JSON API: their bodies
 * are neither JSON nor small):
 *
 * - `POST /v1/uploads` — multipart (the file in field `file`; optional fields `public`, `chat_id`)
 *   or a raw body (its `Content-Type`, the name in `X-File-Name` or `?name=`; `?public=`,
 *   `?chat_id=`); streamed to disk while it arrives; `202 {id, status: "processing"}`
 * - `GET /v1/uploads/{id}` — `processing | ready | rejected` with the reason; `DELETE` shreds it
 * - `GET /v1/files/{id}` — the original, byte for byte (`Range` supported); a public image
 *   answers `302` to a short-lived URL; `GET /v1/files/{id}/preview` — the WebP preview
 *
 * Someone else's file is a 404, never a 403. Errors are `{"error":{"code","message"}}`.
 */
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Multipart from "@effect/platform/Multipart"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as Http from "../runtime/Http.ts"
import * as Ids from "../runtime/Ids.ts"
import { Authenticator, type Caller, type Refused } from "./Access.ts"
import { UploadsConfig } from "./Config.ts"
import type * as Repo from "./Repo.ts"
import { type Opened, UploadRefused, Uploads, UploadUnavailable } from "./Uploads.ts"

/** Paths whose bodies may be large (the runtime's 1 MB body check leaves them to these routes). */
export const largeBodyPaths = ["/v1/uploads"] as const

/** An upload as the API shows it. */
export const uploadJson = (row: Repo.Row) => ({
  id: row.uploadId,
  status: row.status,
  name: row.name,
  content_type: row.mime,
  size: row.size,
  sha256: row.sha256,
  public: row.public,
  preview: row.hasPreview,
  ...(row.width !== null ? { width: row.width, height: row.height } : {}),
  ...(row.pages !== null ? { pages: row.pages } : {}),
  ...(row.status === "rejected" ? { error: { code: row.code, message: row.reason } } : {}),
  url: `/v1/files/${row.uploadId}`,
  ...(row.hasPreview ? { preview_url: `/v1/files/${row.uploadId}/preview` } : {}),
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString()
})

const fail = (status: number, code: string, message: string) => Effect.fail(new UploadRefused({ status, code, message }))

const notFound = () => Http.errorResponse(404, "not_found", "No such file")

/** `Content-Disposition` with an ASCII fallback and the UTF-8 name. */
export const disposition = (kind: "inline" | "attachment", name: string) => {
  const ascii = name.replace(/[^\x20-\x7e]/g, "_").replace(/["\\]/g, "_")
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`
}

/** A single `bytes=` range (anything else is ignored and the whole file served, as RFC 9110 allows). */
export const parseRange = (header: string | undefined): { start: number; end: number | undefined } | { suffix: number } | undefined => {
  const m = /^bytes=(\d*)-(\d*)$/.exec((header ?? "").trim())
  if (!m || (m[1] === "" && m[2] === "")) return undefined
  if (m[1] === "") return { suffix: Number(m[2]) }
  const start = Number(m[1])
  const end = m[2] === "" ? undefined : Number(m[2])
  if (!Number.isSafeInteger(start) || (end !== undefined && !Number.isSafeInteger(end))) return undefined
  return { start, end }
}

const fileName = (raw: string | undefined) => {
  const name = (raw ?? "").replace(/[\x00-\x1f\x7f/\\]/g, "_").trim().slice(0, 255)
  return name.length > 0 ? name : "file"
}

const truthy = (v: string | undefined | null) => v !== undefined && v !== null && /^(1|true|yes|on)$/i.test(v.trim())

/**
 * Add the uploads endpoints to `Routes`. They are mounts: build this layer before the gateway's
 * (provide it to the gateway's layer), whose `/v1` mount would otherwise take their paths.
 */
export const layer: Layer.Layer<never, never, Http.Routes | Uploads | UploadsConfig | Authenticator> = Http.Routes.use((router) =>
  Effect.gen(function*() {
    const uploads = yield* Uploads
    const config = yield* UploadsConfig
    const auth = yield* Authenticator
    for (const path of largeBodyPaths) Http.allowLargeBodies(path)

    const render = (e: UploadRefused | UploadUnavailable | Refused) =>
      "_tag" in e && e._tag === "UploadUnavailable"
        ? Http.errorResponse(503, e.code, e.message).pipe(HttpServerResponse.setHeader("retry-after", "30"))
        : HttpServerResponse.setHeaders(Http.errorResponse((e as Refused).status, (e as Refused).code, (e as Refused).message), (e as Refused).headers ?? {})

    const guarded = <R>(
      need: "write" | "read",
      handler: (request: HttpServerRequest.HttpServerRequest, caller: Caller, url: URL) => Effect.Effect<HttpServerResponse.HttpServerResponse, UploadRefused | UploadUnavailable, R>
    ) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const url = new URL(request.url, "http://uploads.local")
        const caller = yield* auth.authenticate(request)
        if (need === "write" ? !caller.mayWrite : !caller.mayRead) {
          return yield* fail(403, "insufficient_scope", `This API key lacks the scope for this (needs one of: ${need === "write" ? "chats" : "chats, read"})`)
        }
        return yield* handler(request, caller, url)
      }).pipe(
        Effect.catchAll((e) => Effect.succeed(render(e))),
        Effect.map((r) => r.headers["cache-control"] ? r : HttpServerResponse.setHeader(r, "cache-control", "no-store"))
      )

    /** Write a body stream to `path`, hashing and counting; refuse it past the size limit. */
    const intake = <E>(stream: Stream.Stream<Uint8Array, E>, path: string) =>
      Effect.gen(function*() {
        const hash = NodeCrypto.createHash("sha256")
        const out = NodeFs.createWriteStream(path, { mode: 0o600 })
        let size = 0
        const write = (chunk: Uint8Array) =>
          Effect.async<void, UploadRefused>((resume) => {
            size += chunk.byteLength
            if (size > config.maxFileBytes) {
              resume(fail(413, "file_too_large", `a file is at most ${config.maxFileBytes} bytes (UPLOADS_MAX_FILE_SIZE)`))
              return
            }
            hash.update(chunk)
            if (out.write(chunk)) resume(Effect.void)
            else out.once("drain", () => resume(Effect.void))
          })
        const closed = Effect.async<void>((resume) => {
          if (out.closed) return resume(Effect.void)
          out.end(() => resume(Effect.void))
        })
        yield* Stream.runForEach(stream, write).pipe(
          Effect.mapError((e) => (e instanceof UploadRefused ? e : bodyFailure(e))),
          Effect.ensuring(closed)
        )
        return { size, sha256: hash.digest("hex") }
      })

    const bodyFailure = (e: unknown): UploadRefused => {
      const reason = (e as { reason?: string }).reason
      if (reason === "FileTooLarge" || reason === "BodyTooLarge") return new UploadRefused({ status: 413, code: "file_too_large", message: `a file is at most ${config.maxFileBytes} bytes (UPLOADS_MAX_FILE_SIZE)` })
      if (reason === "TooManyParts" || reason === "FieldTooLarge" || reason === "Parse") return new UploadRefused({ status: 400, code: "invalid_multipart", message: `the multipart body could not be read (${reason})` })
      return new UploadRefused({ status: 400, code: "body_incomplete", message: "the body ended before the file did (connection closed?)" })
    }

    const tmpPath = () => NodePath.join(config.tmpDir, `in-${Ids.make("", 24)}`)

    const upload = guarded("write", (request, caller, url) =>
      Effect.gen(function*() {
        const declaredLength = Number(request.headers["content-length"] ?? "0")
        if (declaredLength > config.maxFileBytes + 64 * 1024) {
          return yield* fail(413, "file_too_large", `a file is at most ${config.maxFileBytes} bytes (UPLOADS_MAX_FILE_SIZE)`)
        }
        const path = tmpPath()
        const contentType = request.headers["content-type"] ?? ""
        const fields: Record<string, string> = {}
        let file: { name: string; declared: string | undefined; size: number; sha256: string } | undefined
        const cleanup = Effect.promise(() => NodeFs.promises.rm(path, { force: true }))
        if (/^multipart\/form-data/i.test(contentType)) {
          yield* request.multipartStream.pipe(
            Stream.mapError(bodyFailure),
            Stream.runForEach((part) => {
              if (part._tag === "Field") {
                fields[part.key] = part.value
                return Effect.void
              }
              if (part.key !== "file" || file !== undefined) return Stream.runDrain(part.content).pipe(Effect.mapError(bodyFailure))
              return Effect.map(intake(part.content, path), (r) => {
                file = { name: fileName(part.name), declared: part.contentType, ...r }
              })
            }),
            Multipart.withLimits({ maxParts: Option.some(20), maxFieldSize: 64 * 1024, maxFileSize: Option.some(config.maxFileBytes + 1), maxTotalSize: Option.some(config.maxFileBytes + 1024 * 1024) }),
            Effect.onError(() => cleanup)
          )
          if (!file) return yield* fail(400, "missing_file", "the multipart body has no part named `file`")
        } else {
          if (contentType === "") return yield* fail(400, "missing_content_type", "send the file as multipart/form-data (field `file`) or as a raw body with its Content-Type")
          const cd = /filename\*=UTF-8''([^;]+)|filename="?([^";]+)"?/i.exec(request.headers["content-disposition"] ?? "")
          const named = request.headers["x-file-name"] ?? url.searchParams.get("name") ?? (cd ? (cd[1] ? decodeURIComponent(cd[1]) : cd[2]) : undefined)
          const r = yield* intake(request.stream, path).pipe(Effect.onError(() => cleanup))
          file = { name: fileName(named ? safeDecode(named) : undefined), declared: contentType, ...r }
        }
        const chatId = fields["chat_id"] ?? url.searchParams.get("chat_id")
        if (chatId !== null && chatId !== undefined && !Ids.pattern.test(chatId)) {
          yield* cleanup
          return yield* fail(400, "invalid_request", "chat_id must be a chat's id")
        }
        const accepted = yield* uploads.accept({
          ownerId: caller.userId,
          name: file.name,
          declared: file.declared,
          path,
          size: file.size,
          sha256: file.sha256,
          public: truthy(fields["public"] ?? url.searchParams.get("public")),
          chatId: chatId ?? null
        })
        return HttpServerResponse.unsafeJson(
          { id: accepted.id, status: accepted.status, ...(accepted.duplicate ? { duplicate: true } : {}) },
          { status: accepted.duplicate ? 200 : 202, headers: { location: `/v1/uploads/${accepted.id}` } }
        )
      }).pipe(HttpIncomingMessage.withMaxBodySize(Option.some(config.maxFileBytes + 1024 * 1024)))
    )

    const idParam = Effect.map(HttpRouter.params, (p) => p["id"] ?? "")

    const status = guarded("read", (_request, caller) =>
      Effect.gen(function*() {
        const id = yield* idParam
        const row = yield* uploads.status(caller.userId, id)
        return Option.match(row, { onNone: notFound, onSome: (r) => HttpServerResponse.unsafeJson(uploadJson(r)) })
      }))

    const remove = guarded("write", (_request, caller) =>
      Effect.gen(function*() {
        const id = yield* idParam
        const done = yield* uploads.shred(caller.userId, id)
        return done ? HttpServerResponse.empty({ status: 204 }) : notFound()
      }))

    const security = {
      "x-content-type-options": "nosniff",
      "content-security-policy": "default-src 'none'; sandbox",
      "cross-origin-resource-policy": "same-origin"
    }

    const serve = (opened: Opened, which: "file" | "preview") => {
      const inline = which === "preview" || opened.mime.startsWith("image/") || opened.mime === "application/pdf"
      const headers: Record<string, string> = {
        ...security,
        "accept-ranges": which === "file" ? "bytes" : "none",
        "cache-control": "private, max-age=0, must-revalidate",
        etag: `"${opened.row.sha256.slice(0, 32)}${which === "preview" ? "-p" : ""}"`,
        "content-disposition": disposition(inline ? "inline" : "attachment", which === "preview" ? `${opened.row.name}.webp` : opened.row.name)
      }
      if (opened.range) {
        headers["content-range"] = `bytes ${opened.range.start}-${opened.range.end}/${opened.size}`
        return HttpServerResponse.raw(opened.body, { status: 206, contentType: opened.mime, contentLength: opened.range.end - opened.range.start + 1, headers })
      }
      return HttpServerResponse.raw(opened.body, { status: 200, contentType: opened.mime, contentLength: opened.size, headers })
    }

    const download = (which: "file" | "preview") =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const id = yield* idParam
        // a public image is anyone's to see: a redirect to a short-lived URL, no session needed
        const base = `${request.headers["x-forwarded-proto"] === "https" ? "https" : "http"}://${request.headers.host ?? "localhost"}`
        const publicUrl = yield* uploads.publicUrl(id, which, "").pipe(Effect.map(Option.map((u) => (u.startsWith("/") ? `${base}${u}` : u))), Effect.orElseSucceed(() => Option.none<string>()))
        if (Option.isSome(publicUrl)) {
          return HttpServerResponse.empty({ status: 302, headers: { location: publicUrl.value, "cache-control": "no-store" } })
        }
        return yield* guarded("read", (req, caller) =>
          Effect.gen(function*() {
            const opened = yield* uploads.open(caller.userId, id, which, which === "file" ? parseRange(req.headers["range"]) : undefined)
            return Option.match(opened, { onNone: notFound, onSome: (o) => serve(o, which) })
          }).pipe(
            Effect.catchIf((e): e is UploadRefused => e._tag === "UploadRefused" && e.status === 416, (e) =>
              Effect.succeed(HttpServerResponse.setHeaders(Http.errorResponse(416, e.code, e.message), { "content-range": `bytes */${e.message.replace(/\D/g, "")}` })))
          ))
      })

    const publicFile = (which: "file" | "preview") =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const id = yield* idParam
        const url = new URL(request.url, "http://uploads.local")
        const opened = yield* uploads.openPublic(id, which, Number(url.searchParams.get("expires") ?? "0"), url.searchParams.get("sig") ?? "").pipe(
          Effect.orElseSucceed(() => Option.none())
        )
        if (Option.isNone(opened)) return notFound()
        return HttpServerResponse.raw(opened.value.body, {
          status: 200,
          contentType: opened.value.mime,
          contentLength: opened.value.size,
          headers: { ...security, "cache-control": "public, max-age=300", "cross-origin-resource-policy": "cross-origin", "content-disposition": "inline" }
        })
      })

    const app = HttpRouter.empty.pipe(
      HttpRouter.post("/v1/uploads", upload),
      HttpRouter.get("/v1/uploads/:id", status),
      HttpRouter.del("/v1/uploads/:id", remove),
      HttpRouter.get("/v1/files/:id", download("file")),
      HttpRouter.get("/v1/files/:id/preview", download("preview")),
      HttpRouter.get("/v1/files/:id/public", publicFile("file")),
      HttpRouter.get("/v1/files/:id/public-preview", publicFile("preview")),
      HttpRouter.withRouterConfig({ caseSensitive: true })
    )
    // mounted, not routed: a mount registered before the API's `/v1` mount is found first
    yield* router.mountApp("/v1/uploads", app, { includePrefix: true })
    yield* router.mountApp("/v1/files", app, { includePrefix: true })
  })
)

const safeDecode = (s: string) => {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}
