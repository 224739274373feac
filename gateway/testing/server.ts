/**
 * Test harness: the real `troupe start` role (HTTP server and its middleware, single runner,
 * entities, migrations) started in this process on a free port with the gateway's routes, on a
 * real Postgres database or the embedded PGlite default, with Redis or the memory cache. Plus a
 * small JSON client and a reader for the mail outbox.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as Entities from "../../entities/index.ts"
import * as TroupeConfig from "../../runtime/Config.ts"
import type { Routes } from "../../runtime/Http.ts"
import * as KeyRing from "../../runtime/KeyRing.ts"
import * as Roles from "../../runtime/Roles.ts"
import { freePort } from "../../runtime/testing/process.ts"
import * as PreviewServer from "../../preview/Server.ts"
import * as UploadsAttachments from "../../uploads/Attachments.ts"
import * as UploadsRepo from "../../uploads/Repo.ts"
import * as UploadsServer from "../../uploads/Server.ts"
import * as SkillHost from "../../skills/host/Host.ts"
import * as SkillKv from "../../skills/host/KvStore.ts"
import * as AiPrices from "../../skills/ai/Prices.ts"
import * as SkillCalls from "../../skills/Calls.ts"
import * as Skills from "../../skills/Skills.ts"
import type { StoreSettings } from "../../skills/store/Config.ts"
import * as AppStore from "../../skills/store/index.ts"
import { GatewayConfig } from "../Config.ts"
import * as GatewayConfigModule from "../Config.ts"
import type { GatewaySettings } from "../Config.ts"
import { outboxDir } from "../Mailer.ts"
import * as Server from "../Server.ts"

/** A running server. */
export interface TestServer {
  readonly url: string
  /** The admin listener (`/metrics`, `/health/detailed`). */
  readonly adminUrl: string
  readonly dataDir: string
  readonly settings: GatewaySettings
  readonly close: () => Promise<void>
}

/** The skills service as the app wires it (first-party apps; KV in SQL). */
export const layerSkills = Skills.layer().pipe(Layer.provideMerge(SkillHost.layer()), Layer.provide(SkillKv.layerSql()))

/** Start `troupe start` with the gateway in this process. */
export const startServer = async (options: {
  /** Postgres URL; none: the embedded database in the data dir. */
  readonly databaseUrl?: string
  readonly redisUrl?: string
  readonly settings?: Partial<GatewaySettings>
  /** More routes on the same server (the benchmark's bare handler). */
  readonly extraRoutes?: Layer.Layer<never, never, Routes>
  /** Entities to host instead of the real ones (stand-ins for fault tests). */
  readonly entities?: Roles.App["entities"]
  /** App store settings over the defaults (embedded store, signatures required, 100 ms polls). */
  readonly store?: Partial<StoreSettings>
  /** Server log level (default `error`, or TROUPE_TEST_LOG_LEVEL). */
  readonly logLevel?: "none" | "error" | "warning" | "info" | "debug"
  /** More variables of the runtime's configuration (`TROUPE_PUBLIC_URL`, `TROUPE_METRICS_TOKEN`, …). */
  readonly env?: Record<string, string>
  /** The master key (a restart that must read what the last run encrypted); default: a random one. */
  readonly masterKey?: Uint8Array
  /** A data directory to use and keep (a restart of the same server); default: a fresh one, removed on close. */
  readonly dataDir?: string
  /** Serve the embedded preview too (as `troupe start` does), with these `PREVIEW_*` variables. */
  readonly preview?: Record<string, string>
  /** Serve the uploads service too (as `troupe start` does), with these `UPLOADS_*`/`CLAMD_*` variables. */
  readonly uploads?: Record<string, string>
}): Promise<TestServer> => {
  const port = await freePort()
  const adminPort = await freePort()
  const dataDir = options.dataDir ?? NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-gw-"))
  const env = new Map<string, string>([
    ["TROUPE_DATA_DIR", dataDir],
    ["TROUPE_HOST", "127.0.0.1"],
    ["TROUPE_PORT", String(port)],
    ["TROUPE_ADMIN_PORT", String(adminPort)],
    ["TROUPE_LOG_LEVEL", process.env.TROUPE_TEST_LOG_LEVEL ?? options.logLevel ?? "error"]
  ])
  if (options.databaseUrl) env.set("DATABASE_URL", options.databaseUrl)
  if (process.env.DATABASE_MAX_CONNECTIONS) env.set("DATABASE_MAX_CONNECTIONS", process.env.DATABASE_MAX_CONNECTIONS)
  if (options.redisUrl) env.set("REDIS_URL", options.redisUrl)
  // the uploads service reads the master key as a role does: give it the runner's
  if (options.uploads) env.set("TROUPE_MASTER_KEY", Buffer.from(options.masterKey ?? globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64"))
  for (const [k, v] of Object.entries(options.env ?? {})) env.set(k, v)
  const config = Effect.runSync(Effect.withConfigProvider(TroupeConfig.fromEnv, ConfigProvider.fromMap(env)))
  const settings = GatewayConfigModule.make({ dataDir, ...options.settings })
  const store = AppStore.layerWith({
    registry: Option.none(),
    namespace: "troupe",
    allowUnsigned: false,
    cacheDir: NodePath.join(dataDir, "store-cache"),
    maxArtifactBytes: 64 * 1024 * 1024,
    pollIntervalMs: 100,
    ...options.store
  })
  const gatewayRoutes = Server.layerWith.pipe(Layer.provide(Layer.succeed(GatewayConfig, settings)), Layer.provide(store.serving), Layer.provide(layerSkills))
  const uploadsAccess = Server.layerUploadsAccessWith.pipe(Layer.provide(Layer.succeed(GatewayConfig, settings)))
  const withUploads = (env: Record<string, string>) =>
    gatewayRoutes.pipe(
      Layer.provide(UploadsServer.layerRoutes.pipe(Layer.provide(uploadsAccess))),
      Layer.provide(UploadsServer.layerEmbedded.pipe(
        Layer.provide(uploadsAccess),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ TROUPE_DATA_DIR: dataDir, UPLOADS_WORKERS: "1", ...env })))))
      ))
    )
  const app: Roles.App = {
    version: "test",
    migrations: [...Entities.migrations, ...SkillKv.migrations, ...AiPrices.migrations, ...AppStore.migrations, ...UploadsRepo.migrations],
    // skill invocations run in the SkillCall entity, over the same registry as the routes' listings
    entities: Layer.mergeAll(
      options.entities ?? Entities.layer,
      store.entities,
      SkillCalls.layer.pipe(Layer.provide(store.serving), Layer.provide(layerSkills))
    ).pipe(Layer.provide(options.uploads ? UploadsAttachments.layer : Layer.empty)),
    routes: Layer.merge(options.uploads ? withUploads(options.uploads) : gatewayRoutes, options.extraRoutes ?? Layer.empty),
    startRoutes: options.preview
      ? PreviewServer.layerEmbedded.pipe(
        Layer.provide(Server.layerPreviewSessionsWith.pipe(Layer.provide(Layer.succeed(GatewayConfig, settings)))),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ PREVIEW_CACHE_DIR: NodePath.join(dataDir, "preview-cache"), PREVIEW_WORKERS: "1", ...options.preview })))))
      )
      : Layer.empty
  }
  const masterKeys = options.uploads
    ? await Effect.runPromise(Roles.resolveMasterKeys(config))
    : KeyRing.masterKeys(options.masterKey ?? globalThis.crypto.getRandomValues(new Uint8Array(32)))
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(
    Layer.buildWithScope(Roles.layerStart(app, config, masterKeys), scope).pipe(Effect.provide(Roles.layerLogging(config, "test")))
  )
  return {
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    dataDir,
    settings,
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      if (!options.dataDir) NodeFs.rmSync(dataDir, { recursive: true, force: true })
    }
  }
}

/** A response: status, headers and parsed JSON body (if any). */
export interface Reply {
  readonly status: number
  readonly headers: Headers
  /** The parsed JSON of any route's answer: tests read whatever fields they assert on. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any
}

/** Send a JSON request. */
export const request = async (
  server: { readonly url: string },
  method: string,
  path: string,
  options: { readonly token?: string; readonly body?: unknown; readonly headers?: Record<string, string> } = {}
): Promise<Reply> => {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token) headers.authorization = `Bearer ${options.token}`
  let body: string | undefined
  if (options.body !== undefined) {
    headers["content-type"] = "application/json"
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body)
  }
  // a request that never answers (a stuck entity) fails the test instead of hanging it
  const res = await fetch(server.url + path, { method, headers, body, signal: AbortSignal.timeout(30_000) })
  const text = await res.text()
  let parsed: unknown = undefined
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined
  } catch {
    parsed = text
  }
  return { status: res.status, headers: res.headers, body: parsed }
}

/** The verification code of the latest mail to `email` in the outbox. */
export const verificationCode = (dataDir: string, email: string): string => {
  const dir = outboxDir(dataDir)
  const files = NodeFs.existsSync(dir) ? NodeFs.readdirSync(dir).sort().reverse() : []
  for (const f of files) {
    const text = NodeFs.readFileSync(NodePath.join(dir, f), "utf8")
    if (text.toLowerCase().includes(`to: ${email.toLowerCase()}`)) {
      const m = /verification code is (\d{6})/.exec(text)
      if (m) return m[1]!
    }
  }
  throw new Error(`no verification mail to ${email} in ${dir}`)
}

/** The initial admin invite written at first run. */
export const initialInvite = (dataDir: string): string => NodeFs.readFileSync(NodePath.join(dataDir, "initial-admin-invite"), "utf8").trim()
