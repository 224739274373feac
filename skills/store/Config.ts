/**
 * The app store's settings, read at a role's entry point:
 *
 * - `TROUPE_REGISTRY_URL`: an OCI distribution registry (`http(s)://host[:port]`); unset: the
 *   embedded store in the blob store. `TROUPE_REGISTRY_USERNAME` / `TROUPE_REGISTRY_PASSWORD`
 *   (basic, also used for the registry's token service) or `TROUPE_REGISTRY_TOKEN` (a static
 *   bearer token); `TROUPE_REGISTRY_NAMESPACE` (default `troupe`: repositories `troupe/<app>`);
 *   `TROUPE_REGISTRY_TIMEOUT` (per request, default 10 seconds);
 * - `TROUPE_STORE_ALLOW_UNSIGNED` (default false): accept unsigned artifacts and untrusted keys;
 * - `TROUPE_STORE_CACHE_DIR` (default `<data dir>/store-cache`): verified artifacts by digest;
 * - `TROUPE_STORE_MAX_ARTIFACT_BYTES` (default 64 MiB);
 * - `TROUPE_STORE_POLL_INTERVAL` (default 1 second): how soon every process sees an install change.
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as NodePath from "node:path"
import { TroupeConfig } from "../../runtime/Config.ts"
import * as ArtifactStore from "./ArtifactStore.ts"

/** The settings. */
export interface StoreSettings {
  readonly registry: Option.Option<ArtifactStore.RegistryOptions>
  readonly namespace: string
  readonly allowUnsigned: boolean
  readonly cacheDir: string
  readonly maxArtifactBytes: number
  /** How often every process looks for install changes. */
  readonly pollIntervalMs: number
}

/** The settings service. */
export class StoreConfig extends Context.Tag("troupe/skills/store/StoreConfig")<StoreConfig, StoreSettings>() {}

/** The settings from the environment, given the data dir. */
export const fromEnv = (dataDir: string): Config.Config<StoreSettings> =>
  Config.all({
    url: Config.option(Config.string("TROUPE_REGISTRY_URL").pipe(
      Config.validate({ message: "must be an http(s):// URL", validation: (u) => /^https?:\/\/[^\s/]+/.test(u) })
    )),
    username: Config.option(Config.string("TROUPE_REGISTRY_USERNAME")),
    password: Config.option(Config.redacted("TROUPE_REGISTRY_PASSWORD")),
    token: Config.option(Config.redacted("TROUPE_REGISTRY_TOKEN")),
    timeout: Config.duration("TROUPE_REGISTRY_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
    namespace: Config.string("TROUPE_REGISTRY_NAMESPACE").pipe(
      Config.withDefault("troupe"),
      Config.validate({ message: "must be a registry path such as troupe or team/apps", validation: (n) => n === "" || /^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(n) })
    ),
    allowUnsigned: Config.boolean("TROUPE_STORE_ALLOW_UNSIGNED").pipe(Config.withDefault(false)),
    cacheDir: Config.option(Config.string("TROUPE_STORE_CACHE_DIR")),
    maxArtifactBytes: Config.integer("TROUPE_STORE_MAX_ARTIFACT_BYTES").pipe(
      Config.withDefault(64 * 1024 * 1024),
      Config.validate({ message: "must be between 1024 and 1073741824", validation: (n) => n >= 1024 && n <= 1024 * 1024 * 1024 })
    ),
    pollInterval: Config.duration("TROUPE_STORE_POLL_INTERVAL").pipe(Config.withDefault(Duration.seconds(1)))
  }).pipe(
    Config.map((c): StoreSettings => ({
      registry: Option.map(c.url, (url) => ({
        url,
        ...(Option.isSome(c.username) ? { username: c.username.value } : {}),
        ...(Option.isSome(c.password) ? { password: c.password.value as Redacted.Redacted } : {}),
        ...(Option.isSome(c.token) ? { token: c.token.value as Redacted.Redacted } : {}),
        timeoutMs: Duration.toMillis(c.timeout)
      })),
      namespace: c.namespace,
      allowUnsigned: c.allowUnsigned,
      cacheDir: Option.getOrElse(c.cacheDir, () => NodePath.join(dataDir, "store-cache")),
      maxArtifactBytes: c.maxArtifactBytes,
      pollIntervalMs: Math.max(50, Duration.toMillis(c.pollInterval))
    }))
  )

/** The settings read from the environment with the runtime's data dir. */
export const layer: Layer.Layer<StoreConfig, unknown, TroupeConfig> = Layer.effect(
  StoreConfig,
  Effect.flatMap(TroupeConfig, (config) => fromEnv(config.dataDir))
)

/** The artifact store the settings choose: the registry, or the embedded store in the blob store. */
export const layerArtifactStore = Layer.unwrapEffect(
  Effect.map(StoreConfig, (settings) =>
    Option.match(settings.registry, {
      onNone: () => ArtifactStore.layerEmbedded,
      onSome: (options) => ArtifactStore.layerRegistry(options)
    }))
)
