/**
 * The gateway reads request bodies itself, before any handler sees them:
 *
 * - at most `maxBodyBytes`, declared or not: a chunked body that grows past the limit is read to
 *   its end (and discarded, up to a bound) so the client receives `413 payload_too_large` instead
 *   of a reset connection;
 * - a non-empty body must say it is JSON (`415 unsupported_media_type` otherwise, also when the
 *   `Content-Type` header is missing);
 * - JSON nested deeper than `maxJsonDepth`, or with `\uD800`-style escapes that leave a surrogate
 *   unpaired (text no storage can hold), is `400 invalid_json`.
 *
 * The handlers then get a request whose body is the text read here.
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import { ApiFailure } from "./Errors.ts"

/** How deep JSON bodies may nest (objects and arrays). */
export const maxJsonDepth = 64

/** How much of an oversize body is read and discarded before the connection is closed anyway. */
const drainLimitBytes = 8 * 1024 * 1024

const tooLarge = (maxBytes: number) =>
  new ApiFailure({ status: 413, code: "payload_too_large", message: `Request body larger than ${maxBytes} bytes`, headers: { connection: "close" } })

const unsupported = () =>
  new ApiFailure({ status: 415, code: "unsupported_media_type", message: "Send JSON bodies with Content-Type: application/json" })

const invalidJson = (message: string) => new ApiFailure({ status: 400, code: "invalid_json", message })

/** Whether a content type is JSON. */
export const isJson = (contentType: string | undefined): boolean => contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType.trim())

/**
 * Check JSON text before parsing: the deepest nesting, and whether a `\u` escape leaves a
 * surrogate unpaired. Returns a problem, or undefined. Linear in the text, no recursion.
 */
export const jsonProblem = (text: string, maxDepth: number = maxJsonDepth): string | undefined => {
  let depth = 0
  let inString = false
  let pendingHigh = false // the previous escape was a high surrogate waiting for its low half
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) {
        const next = text.charCodeAt(i + 1)
        if (next === 0x75) {
          const unit = parseInt(text.slice(i + 2, i + 6), 16)
          if (!Number.isNaN(unit)) {
            if (unit >= 0xdc00 && unit <= 0xdfff) {
              if (!pendingHigh) return "strings must be valid Unicode (an escape leaves a surrogate unpaired)"
              pendingHigh = false
            } else if (pendingHigh) {
              return "strings must be valid Unicode (an escape leaves a surrogate unpaired)"
            } else {
              pendingHigh = unit >= 0xd800 && unit <= 0xdbff
            }
            i += 5
            continue
          }
        }
        if (pendingHigh) return "strings must be valid Unicode (an escape leaves a surrogate unpaired)"
        i++
        continue
      }
      if (pendingHigh) return "strings must be valid Unicode (an escape leaves a surrogate unpaired)"
      if (c === 0x22) inString = false
      continue
    }
    if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return `JSON nested deeper than ${maxDepth} levels`
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return undefined
}

/** Read the raw body of a Node request: its text, or "too large" after draining what was sent. */
const readLimited = (request: HttpServerRequest.HttpServerRequest, maxBytes: number) =>
  Effect.async<{ readonly text: string } | { readonly tooLarge: true }>((resume) => {
    const source = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    let bytes = 0
    let done = false
    const finish = (result: { readonly text: string } | { readonly tooLarge: true }) => {
      if (done) return
      done = true
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
      resume(Effect.succeed(result))
    }
    const onData = (chunk: Buffer) => {
      bytes += chunk.byteLength
      if (bytes <= maxBytes) chunks.push(chunk)
      else {
        chunks.length = 0
        // past the drain bound, stop reading: the 413 goes out and the connection closes
        if (bytes > drainLimitBytes) {
          source.pause()
          finish({ tooLarge: true })
        }
      }
    }
    const onEnd = () => finish(bytes > maxBytes ? { tooLarge: true } : { text: Buffer.concat(chunks).toString("utf8") })
    const onError = () => finish(bytes > maxBytes ? { tooLarge: true } : { text: "" })
    source.on("data", onData)
    source.once("end", onEnd)
    source.once("error", onError)
    if (source.readableEnded) onEnd()
  })

const bodyMethods = new Set(["POST", "PUT", "PATCH", "DELETE"])

/**
 * The request as the handlers should see it: its body read, checked and kept, or the failure
 * to answer with. Requests without a body method pass unchanged.
 */
export const prepare = (request: HttpServerRequest.HttpServerRequest, maxBytes: number): Effect.Effect<HttpServerRequest.HttpServerRequest, ApiFailure> =>
  Effect.gen(function*() {
    if (!bodyMethods.has(request.method)) return request
    const declared = request.headers["content-length"]
    const chunked = request.headers["transfer-encoding"] !== undefined
    if (declared !== undefined && Number(declared) > maxBytes) return yield* Effect.fail(tooLarge(maxBytes))
    const contentType = request.headers["content-type"]
    const empty = (declared === undefined || Number(declared) === 0) && !chunked
    // a body that is not JSON, or says nothing of what it is, is refused (an empty one may say nothing)
    if (contentType !== undefined ? !isJson(contentType) : !empty) return yield* Effect.fail(unsupported())
    if (empty) return request
    const read = yield* readLimited(request, maxBytes)
    if ("tooLarge" in read) return yield* Effect.fail(tooLarge(maxBytes))
    const problem = jsonProblem(read.text)
    if (problem) return yield* Effect.fail(invalidJson(problem))
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(request.headers)) {
      if (name !== "content-length" && name !== "transfer-encoding" && name !== "connection" && name !== "host") headers[name] = value
    }
    const copy = HttpServerRequest.fromWeb(new Request(`http://gateway.invalid${request.url}`, { method: request.method, headers, body: read.text }))
    return request.remoteAddress._tag === "Some" ? copy.modify({ remoteAddress: request.remoteAddress.value }) : copy
  })
