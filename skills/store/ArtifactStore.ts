/**
 * Where app artifacts live, behind one interface: a standard OCI distribution registry
 * (`layerRegistry`: `TROUPE_REGISTRY_URL`, optional basic or bearer authentication, including the
 * registry token flow), or the embedded content-addressed store in the blob store
 * (`layerEmbedded`) with the same layout — blobs by digest, manifests by digest, tags naming
 * manifest digests — so `troupe start` needs nothing set up.
 *
 * Nothing here trusts what it reads: callers check digests (`Pull.ts`).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { Buffer } from "node:buffer"
import type { BlobStoreService } from "../../runtime/BlobStore.ts"
import { BlobStore } from "../../runtime/BlobStore.ts"
import { ArtifactNotFound, ArtifactRejected, StoreRefused, StoreUnavailable, type TransportError } from "./Errors.ts"
import * as Oci from "./Oci.ts"

/** The artifact store. */
export interface ArtifactStoreService {
  readonly kind: "registry" | "embedded"
  /** For messages and logs: `registry http://host:5000` or `embedded`. */
  readonly label: string
  readonly hasBlob: (repository: string, digest: string) => Effect.Effect<boolean, TransportError>
  readonly putBlob: (repository: string, blob: Oci.Blob) => Effect.Effect<void, TransportError>
  /** A blob, refused when larger than `maxBytes`. */
  readonly getBlob: (repository: string, digest: string, maxBytes: number) => Effect.Effect<Uint8Array, TransportError | ArtifactNotFound | ArtifactRejected>
  /** Store a manifest and point `tag` at it. */
  readonly putManifest: (repository: string, tag: string, bytes: Uint8Array) => Effect.Effect<void, TransportError>
  /** A manifest by tag or digest (its bytes exactly as stored). */
  readonly getManifest: (repository: string, reference: string) => Effect.Effect<Uint8Array, TransportError | ArtifactNotFound | ArtifactRejected>
  readonly listTags: (repository: string) => Effect.Effect<ReadonlyArray<string>, TransportError>
  readonly listRepositories: Effect.Effect<ReadonlyArray<string>, TransportError>
  readonly ping: Effect.Effect<void, TransportError>
}

/** The artifact store tag. */
export class ArtifactStore extends Context.Tag("troupe/skills/store/ArtifactStore")<ArtifactStore, ArtifactStoreService>() {}

/** Manifests larger than this are refused (ours are a few hundred bytes). */
export const maxManifestBytes = 1024 * 1024

/** An OCI tag for a version: `+` (semver build metadata) is not allowed in tags. */
export const tagOf = (version: string): string => version.replaceAll("+", "_")

/** Upload an artifact's blobs (those missing) and its manifest under `tag`; `progress` gets bytes sent. */
export const push = (
  store: ArtifactStoreService,
  repository: string,
  tag: string,
  artifact: Oci.Artifact,
  progress: (sent: number, total: number) => void = () => {}
): Effect.Effect<void, TransportError> =>
  Effect.gen(function*() {
    const blobs = [artifact.config, ...artifact.layers]
    const total = blobs.reduce((n, b) => n + b.bytes.byteLength, 0) + artifact.manifestBytes.byteLength
    let sent = 0
    for (const blob of blobs) {
      if (!(yield* store.hasBlob(repository, blob.descriptor.digest))) yield* store.putBlob(repository, blob)
      sent += blob.bytes.byteLength
      progress(sent, total)
    }
    yield* store.putManifest(repository, tag, artifact.manifestBytes)
    progress(total, total)
  })

// ---------------------------------------------------------------------------------------------
// Embedded: the blob store

const hexOf = (digest: string) => digest.slice("sha256:".length)

/** The embedded store over a blob store, under `prefix` (default `oci`). */
export const makeEmbedded = (blobs: BlobStoreService, prefix = "oci"): ArtifactStoreService => {
  const label = "embedded"
  const unavailable = (e: { readonly message?: string; readonly _tag: string }) =>
    new StoreUnavailable({ store: label, message: `the blob store failed: ${e.message ?? e._tag}` })
  const blobKey = (digest: string) => `${prefix}/blobs/sha256/${hexOf(digest)}`
  const tagKey = (repository: string, tag: string) => `${prefix}/repositories/${repository}/tags/${tag}`
  const validDigest = (digest: string) => /^sha256:[0-9a-f]{64}$/.test(digest)
  const read = (repository: string, reference: string, digest: string, maxBytes: number) =>
    Effect.gen(function*() {
      if (!validDigest(digest)) return yield* new ArtifactNotFound({ repository, reference, message: `no ${reference} in ${repository}` })
      const info = yield* Effect.mapError(blobs.head(blobKey(digest)), unavailable)
      if (Option.isNone(info)) return yield* new ArtifactNotFound({ repository, reference, message: `no ${reference} in ${repository}` })
      if (info.value.size > maxBytes) {
        return yield* new ArtifactRejected({ reason: "too_large", digest, message: `${reference} is ${info.value.size} bytes; at most ${maxBytes} are accepted` })
      }
      const bytes = yield* Effect.mapError(blobs.get(blobKey(digest)), unavailable)
      if (Option.isNone(bytes)) return yield* new ArtifactNotFound({ repository, reference, message: `no ${reference} in ${repository}` })
      return bytes.value
    })
  return {
    kind: "embedded",
    label,
    hasBlob: (_repository, digest) => Effect.mapError(Effect.map(blobs.head(blobKey(digest)), Option.isSome), unavailable),
    putBlob: (_repository, blob) => Effect.mapError(blobs.put(blobKey(blob.descriptor.digest), blob.bytes, { contentType: blob.descriptor.mediaType }), unavailable),
    getBlob: (repository, digest, maxBytes) => read(repository, digest, digest, maxBytes),
    putManifest: (repository, tag, bytes) =>
      Effect.mapError(
        Effect.zipRight(
          blobs.put(blobKey(Oci.digestOf(bytes)), bytes, { contentType: Oci.MediaType.manifest }),
          blobs.put(tagKey(repository, tag), new TextEncoder().encode(Oci.digestOf(bytes)), { contentType: "text/plain" })
        ),
        unavailable
      ),
    getManifest: (repository, reference) =>
      Effect.gen(function*() {
        let digest = reference
        if (!reference.startsWith("sha256:")) {
          const link = yield* blobs.get(tagKey(repository, reference)).pipe(
            Effect.catchTag("InvalidBlobKey", () => Effect.succeed(Option.none<Uint8Array>())),
            Effect.mapError(unavailable)
          )
          if (Option.isNone(link)) return yield* new ArtifactNotFound({ repository, reference, message: `no ${repository}:${reference}` })
          digest = new TextDecoder().decode(link.value).trim()
        }
        return yield* read(repository, reference, digest, maxManifestBytes)
      }),
    listTags: (repository) =>
      blobs.list(`${prefix}/repositories/${repository}/tags/`).pipe(
        Effect.map((infos) => infos.map((i) => i.key.slice(i.key.lastIndexOf("/") + 1))),
        Effect.catchTag("InvalidBlobKey", () => Effect.succeed([])),
        Effect.mapError(unavailable)
      ),
    listRepositories: blobs.list(`${prefix}/repositories/`).pipe(
      Effect.map((infos) => [...new Set(infos.map((i) => i.key.slice(`${prefix}/repositories/`.length).replace(/\/tags\/[^/]+$/, "")))]),
      Effect.catchTag("InvalidBlobKey", () => Effect.succeed([])),
      Effect.mapError(unavailable)
    ),
    ping: Effect.mapError(blobs.ping, unavailable)
  }
}

/** The embedded store in the role's blob store. */
export const layerEmbedded: Layer.Layer<ArtifactStore, never, BlobStore> = Layer.effect(ArtifactStore, Effect.map(BlobStore, (blobs) => makeEmbedded(blobs)))

// ---------------------------------------------------------------------------------------------
// Registry: the OCI distribution API over HTTP

/** How to reach a registry. */
export interface RegistryOptions {
  /** `http(s)://host[:port]` (a path prefix is kept). */
  readonly url: string
  readonly username?: string
  readonly password?: Redacted.Redacted
  /** A static bearer token (sent on every request). */
  readonly token?: Redacted.Redacted
  /** Per request (default 10 s): a registry that does not answer fails with 503, it never hangs a call. */
  readonly timeoutMs?: number
  /** Replace `fetch` (tests). */
  readonly fetch?: typeof fetch
}

const manifestAccept = [Oci.MediaType.manifest, "application/vnd.docker.distribution.manifest.v2+json"].join(", ")

/** Parse `Bearer realm="…",service="…",scope="…"`. */
const parseChallenge = (header: string): { readonly scheme: string; readonly params: Record<string, string> } => {
  const scheme = header.split(/\s+/, 1)[0] ?? ""
  const params: Record<string, string> = {}
  for (const m of header.slice(scheme.length).matchAll(/([A-Za-z_]+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!
  return { scheme: scheme.toLowerCase(), params }
}

/** A registry client. */
export const makeRegistry = (options: RegistryOptions): ArtifactStoreService => {
  const base = options.url.replace(/\/+$/, "")
  const label = `registry ${base}`
  const doFetch = options.fetch ?? globalThis.fetch
  const timeoutMs = options.timeoutMs ?? 10_000
  const basic = options.username !== undefined
    ? `Basic ${Buffer.from(`${options.username}:${options.password ? Redacted.value(options.password) : ""}`).toString("base64")}`
    : undefined
  /** Tokens from the registry's token service, by scope. */
  const tokens = new Map<string, { readonly token: string; readonly until: number }>()

  const unavailable = (message: string) => new StoreUnavailable({ store: label, message })

  const send = (url: string, init: RequestInit): Effect.Effect<Response, StoreUnavailable> =>
    Effect.tryPromise({
      try: (signal) => doFetch(url, { ...init, redirect: "follow", signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) }),
      catch: (e) => {
        const error = e as Error & { cause?: { code?: string; message?: string } }
        const why = error.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (error.cause?.code ?? error.cause?.message ?? error.message)
        return unavailable(`the registry at ${base} is unreachable (${why})`)
      }
    })

  const fetchToken = (challenge: Record<string, string>, scope: string): Effect.Effect<string, TransportError> =>
    Effect.gen(function*() {
      const cached = tokens.get(scope)
      if (cached && cached.until > Date.now()) return cached.token
      const realm = challenge["realm"]
      if (!realm) return yield* new StoreRefused({ store: label, httpStatus: 401, message: "the registry asked for a bearer token without naming its token service" })
      const url = new URL(realm)
      if (challenge["service"]) url.searchParams.set("service", challenge["service"])
      if (scope) url.searchParams.set("scope", scope)
      const response = yield* send(url.toString(), { headers: basic ? { authorization: basic } : {} })
      if (!response.ok) {
        return yield* new StoreRefused({ store: label, httpStatus: response.status, message: `the registry's token service refused (${response.status})` })
      }
      const body = yield* Effect.tryPromise({
        try: () => response.json() as Promise<{ token?: string; access_token?: string; expires_in?: number }>,
        catch: () => new StoreRefused({ store: label, httpStatus: response.status, message: "the registry's token service did not answer JSON" })
      })
      const token = body.token ?? body.access_token
      if (!token) return yield* new StoreRefused({ store: label, httpStatus: response.status, message: "the registry's token service answered without a token" })
      tokens.set(scope, { token, until: Date.now() + Math.max(10, (body.expires_in ?? 60) - 10) * 1000 })
      return token
    })

  /**
   * A request with credentials: a static token, basic credentials, or a bearer token from the
   * token service named by the registry's challenge (fetched once per scope, then reused).
   */
  const request = (
    path: string,
    scope: string,
    init: { readonly method?: string; readonly headers?: Record<string, string>; readonly body?: Uint8Array }
  ): Effect.Effect<Response, TransportError> =>
    Effect.gen(function*() {
      const url = /^https?:\/\//.test(path) ? path : `${base}${path}`
      const headers = (authorization: string | undefined): Record<string, string> => ({ ...init.headers, ...(authorization ? { authorization } : {}) })
      const cached = tokens.get(scope)
      const first = options.token ? `Bearer ${Redacted.value(options.token)}` : cached && cached.until > Date.now() ? `Bearer ${cached.token}` : basic
      const body = init.body?.slice()
      const attempt = (authorization: string | undefined) =>
        send(url, { method: init.method ?? "GET", headers: headers(authorization), ...(body ? { body } : {}) })
      let response = yield* attempt(first)
      if (response.status === 401 && !options.token) {
        const challenge = parseChallenge(response.headers.get("www-authenticate") ?? "")
        yield* Effect.promise(() => response.arrayBuffer().catch(() => undefined))
        if (challenge.scheme === "bearer") {
          tokens.delete(scope)
          const token = yield* fetchToken(challenge.params, challenge.params["scope"] ?? scope)
          if (challenge.params["scope"] && challenge.params["scope"] !== scope) tokens.set(scope, tokens.get(challenge.params["scope"])!)
          response = yield* attempt(`Bearer ${token}`)
        } else if (challenge.scheme === "basic" && basic && first !== basic) {
          response = yield* attempt(basic)
        }
      }
      if (response.status === 401 || response.status === 403) {
        yield* Effect.promise(() => response.arrayBuffer().catch(() => undefined))
        return yield* new StoreRefused({
          store: label,
          httpStatus: response.status,
          message: `the registry refused the credentials (${response.status}${basic || options.token ? "" : "; none are configured: set TROUPE_REGISTRY_USERNAME/PASSWORD or TROUPE_REGISTRY_TOKEN"})`
        })
      }
      if (response.status >= 500) {
        yield* Effect.promise(() => response.arrayBuffer().catch(() => undefined))
        return yield* unavailable(`the registry at ${base} answered ${response.status}`)
      }
      return response
    })

  const unexpected = (response: Response, what: string): Effect.Effect<never, StoreRefused> =>
    Effect.zipRight(
      Effect.promise(() => response.text().catch(() => "")),
      Effect.fail(new StoreRefused({ store: label, httpStatus: response.status, message: `${what}: the registry answered ${response.status}` }))
    )

  const pullScope = (repository: string) => `repository:${repository}:pull`
  const pushScope = (repository: string) => `repository:${repository}:pull,push`

  /** Read a body, refusing more than `maxBytes`. */
  const readLimited = (response: Response, digest: string, maxBytes: number): Effect.Effect<Uint8Array, ArtifactRejected | StoreUnavailable> =>
    Effect.tryPromise({
      try: async (): Promise<{ readonly bytes: Uint8Array } | { readonly tooLarge: number }> => {
        const declared = Number(response.headers.get("content-length") ?? "NaN")
        if (declared > maxBytes) {
          await response.body?.cancel()
          return { tooLarge: declared }
        }
        const chunks: Array<Uint8Array> = []
        let size = 0
        const reader = response.body?.getReader()
        for (;;) {
          const next = reader ? await reader.read() : { done: true as const, value: undefined }
          if (next.done) break
          size += next.value.byteLength
          if (size > maxBytes) {
            await reader?.cancel().catch(() => undefined)
            return { tooLarge: size }
          }
          chunks.push(next.value)
        }
        return { bytes: new Uint8Array(Buffer.concat(chunks)) }
      },
      catch: (e) => unavailable(`reading from the registry failed: ${(e as Error).message}`)
    }).pipe(
      Effect.flatMap((r) =>
        "bytes" in r
          ? Effect.succeed(r.bytes)
          : Effect.fail(new ArtifactRejected({ reason: "too_large", digest, message: `${digest} is larger than the ${maxBytes} bytes accepted` }))
      )
    )

  return {
    kind: "registry",
    label,
    hasBlob: (repository, digest) =>
      Effect.flatMap(request(`/v2/${repository}/blobs/${digest}`, pushScope(repository), { method: "HEAD" }), (response) =>
        response.status === 200 ? Effect.succeed(true) : response.status === 404 ? Effect.succeed(false) : unexpected(response, `checking ${digest}`)),
    putBlob: (repository, blob) =>
      Effect.gen(function*() {
        const start = yield* request(`/v2/${repository}/blobs/uploads/`, pushScope(repository), { method: "POST" })
        if (start.status !== 202) return yield* unexpected(start, `starting an upload to ${repository}`)
        yield* Effect.promise(() => start.arrayBuffer())
        const location = start.headers.get("location")
        if (!location) return yield* new StoreRefused({ store: label, httpStatus: 202, message: "the registry started an upload without a Location" })
        const url = new URL(location, `${base}/`)
        url.searchParams.set("digest", blob.descriptor.digest)
        const done = yield* request(url.toString(), pushScope(repository), {
          method: "PUT",
          // fetch sets Content-Length from the bytes (an explicit one is refused by undici's own
          // dispatcher when a library installs it as the global one, as in the CLI)
          headers: { "content-type": "application/octet-stream" },
          body: blob.bytes
        })
        if (done.status !== 201) return yield* unexpected(done, `uploading ${blob.descriptor.digest}`)
        yield* Effect.promise(() => done.arrayBuffer())
      }),
    getBlob: (repository, digest, maxBytes) =>
      Effect.gen(function*() {
        const response = yield* request(`/v2/${repository}/blobs/${digest}`, pullScope(repository), {})
        if (response.status === 404) {
          yield* Effect.promise(() => response.arrayBuffer())
          return yield* new ArtifactNotFound({ repository, reference: digest, message: `no blob ${digest} in ${repository}` })
        }
        if (response.status !== 200) return yield* unexpected(response, `reading ${digest}`)
        return yield* readLimited(response, digest, maxBytes)
      }),
    putManifest: (repository, tag, bytes) =>
      Effect.gen(function*() {
        const response = yield* request(`/v2/${repository}/manifests/${tag}`, pushScope(repository), {
          method: "PUT",
          headers: { "content-type": Oci.MediaType.manifest },
          body: bytes
        })
        if (response.status !== 201) return yield* unexpected(response, `writing ${repository}:${tag}`)
        yield* Effect.promise(() => response.arrayBuffer())
      }),
    getManifest: (repository, reference) =>
      Effect.gen(function*() {
        const response = yield* request(`/v2/${repository}/manifests/${reference}`, pullScope(repository), { headers: { accept: manifestAccept } })
        if (response.status === 404) {
          yield* Effect.promise(() => response.arrayBuffer())
          return yield* new ArtifactNotFound({ repository, reference, message: `no ${repository}:${reference}` })
        }
        if (response.status !== 200) return yield* unexpected(response, `reading ${repository}:${reference}`)
        return yield* readLimited(response, reference, maxManifestBytes)
      }),
    listTags: (repository) =>
      Effect.gen(function*() {
        const response = yield* request(`/v2/${repository}/tags/list?n=1000`, pullScope(repository), {})
        if (response.status === 404) {
          yield* Effect.promise(() => response.arrayBuffer())
          return []
        }
        if (response.status !== 200) return yield* unexpected(response, `listing ${repository}`)
        const body = yield* Effect.tryPromise({
          try: () => response.json() as Promise<{ tags?: ReadonlyArray<string> | null }>,
          catch: () => new StoreRefused({ store: label, httpStatus: 200, message: "the registry's tag list is not JSON" })
        })
        return body.tags ?? []
      }),
    listRepositories: Effect.gen(function*() {
      const response = yield* request(`/v2/_catalog?n=1000`, "registry:catalog:*", {})
      if (response.status !== 200) return yield* unexpected(response, "listing repositories")
      const body = yield* Effect.tryPromise({
        try: () => response.json() as Promise<{ repositories?: ReadonlyArray<string> | null }>,
        catch: () => new StoreRefused({ store: label, httpStatus: 200, message: "the registry's catalog is not JSON" })
      })
      return body.repositories ?? []
    }),
    ping: Effect.gen(function*() {
      const response = yield* request("/v2/", "", {})
      yield* Effect.promise(() => response.arrayBuffer())
      if (response.status !== 200) return yield* new StoreRefused({ store: label, httpStatus: response.status, message: `the registry answered ${response.status} at /v2/` })
    })
  }
}

/** A registry as the artifact store. */
export const layerRegistry = (options: RegistryOptions): Layer.Layer<ArtifactStore> => Layer.succeed(ArtifactStore, makeRegistry(options))
