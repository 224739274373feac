/**
 * The store's HTTP client, as the CLI uses it: publishing through a server's API (blobs with
 * progress, then the signed manifest), browsing the catalog, and the admin's install commands.
 * Errors are the server's `{"error":{"code","message"}}` bodies, typed.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Buffer } from "node:buffer"
import type * as NodeCrypto from "node:crypto"
import * as Oci from "./Oci.ts"
import * as Publish from "./Publish.ts"

/** A request to the server failed; `code` is the server's (or `unreachable`). */
export class ClientError extends Schema.TaggedError<ClientError>()("ClientError", {
  status: Schema.Number,
  code: Schema.String,
  message: Schema.String,
  details: Schema.optional(Schema.Unknown)
}) {}

/** Where and as whom. */
export interface Server {
  readonly url: string
  /** An API key (`trp_…`) or an access token. */
  readonly token: string
}

/** Send a request; JSON in and out (or raw bytes for blobs). */
export const send = <A = unknown>(
  server: Server,
  method: string,
  path: string,
  body?: unknown,
  options: { readonly raw?: Uint8Array; readonly timeoutMs?: number } = {}
): Effect.Effect<A, ClientError> =>
  Effect.tryPromise({
    try: async (signal) => {
      const headers: Record<string, string> = { authorization: `Bearer ${server.token}` }
      let payload: string | Uint8Array | undefined
      if (options.raw) {
        headers["content-type"] = "application/octet-stream"
        payload = options.raw.slice()
      } else if (body !== undefined) {
        headers["content-type"] = "application/json"
        payload = JSON.stringify(body)
      }
      const response = await fetch(new URL(path, server.url.replace(/\/?$/, "/")), {
        method,
        headers,
        ...(payload !== undefined ? { body: payload as BodyInit } : {}),
        signal: AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs ?? 60_000)])
      })
      const text = await response.text()
      const json = text.length > 0 ? (() => {
        try {
          return JSON.parse(text) as unknown
        } catch {
          return text
        }
      })() : undefined
      if (!response.ok) {
        const error = (json as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error
        throw new ClientError({
          status: response.status,
          code: error?.code ?? `http_${response.status}`,
          message: error?.message ?? `${method} ${path} answered ${response.status}`,
          ...(error?.details !== undefined ? { details: error.details } : {})
        })
      }
      return json as A
    },
    catch: (e) => e instanceof ClientError ? e : new ClientError({ status: 0, code: "unreachable", message: `${server.url} is unreachable: ${(e as Error).message}` })
  })

/** What publishing returns. */
export interface Published {
  readonly app: string
  readonly version: string
  readonly digest: string
  readonly size: number
}

/**
 * Publish an app through the server: upload its blobs (reporting bytes sent), then the manifest
 * with the signature of its digest (when a key is given).
 */
export const publish = (
  server: Server,
  request: {
    readonly manifest: { readonly id: string; readonly version: string }
    readonly modules: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>
    readonly privateKey?: NodeCrypto.KeyObject
    readonly progress?: (sent: number, total: number) => void
  }
): Effect.Effect<Published, ClientError> =>
  Effect.gen(function*() {
    const artifact = Oci.build(request.manifest, request.modules)
    const blobs = [artifact.config, ...artifact.layers]
    const total = blobs.reduce((n, b) => n + b.bytes.byteLength, 0)
    let sent = 0
    request.progress?.(0, total)
    for (const blob of blobs) {
      yield* send(server, "PUT", `/v1/store/uploads/${request.manifest.id}/${blob.descriptor.digest}`, undefined, { raw: blob.bytes })
      sent += blob.bytes.byteLength
      request.progress?.(sent, total)
    }
    const signature = request.privateKey ? Publish.sign(request.privateKey, request.manifest.id, artifact.digest) : null
    return yield* send<Published>(server, "POST", "/v1/store/apps", {
      app: request.manifest.id,
      manifest: Buffer.from(artifact.manifestBytes).toString("base64"),
      signature: signature === null ? null : { public_key: signature.publicKey, signature: signature.signature }
    })
  })
