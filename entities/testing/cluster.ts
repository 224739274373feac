/**
 * Test harness for entities: a single-runner cluster on a fresh Postgres database (the real
 * server: these tests are about it), with migrations, a key ring and the entity layers given.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as BlobStore from "../../runtime/BlobStore.ts"
import * as Cluster from "../../runtime/Cluster.ts"
import * as TroupeConfig from "../../runtime/Config.ts"
import * as Database from "../../runtime/Database.ts"
import * as KeyRing from "../../runtime/KeyRing.ts"
import * as Migrations from "../../runtime/Migrations.ts"

/** The default cluster configuration, as a process without any variables would have it. */
export const clusterConfig = (): TroupeConfig.ClusterConfig =>
  Effect.runSync(Effect.withConfigProvider(TroupeConfig.fromEnv, ConfigProvider.fromMap(new Map()))).cluster

/** A random master key ring. */
export const layerKeyRing: Layer.Layer<KeyRing.KeyRing, never, SqlClient.SqlClient> = Layer.unwrapEffect(
  Effect.sync(() => KeyRing.masterKeys(globalThis.crypto.getRandomValues(new Uint8Array(32)))).pipe(Effect.map(KeyRing.layer))
)

/** The runtime's configuration as a process without any variables would have it. */
export const troupeConfig = (): TroupeConfig.TroupeConfigShape =>
  Effect.runSync(Effect.withConfigProvider(TroupeConfig.fromEnv, ConfigProvider.fromMap(new Map())))

/** A blob folder in a fresh temporary directory. */
export const layerTempBlobs: Layer.Layer<BlobStore.BlobStore> = Layer.suspend(() =>
  BlobStore.layerFilesystem(NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-blobs-")))
)

/** Everything an entity needs, on the database at `url`, hosting `entities`. */
export const layerCluster = <E, R>(options: {
  readonly url: string
  readonly migrations: ReadonlyArray<Migrations.Migration>
  readonly entities: Layer.Layer<never, E, R>
}) =>
  options.entities.pipe(
    Layer.provideMerge(Cluster.layerSingle(clusterConfig())),
    Layer.provideMerge(layerKeyRing),
    Layer.provideMerge(Layer.merge(TroupeConfig.layer(troupeConfig()), layerTempBlobs)),
    Layer.provideMerge(Layer.effectDiscard(Migrations.run([...KeyRing.migrations, ...options.migrations]))),
    Layer.provideMerge(Database.layerPostgres({ url: Redacted.make(options.url), maxConnections: 8 }))
  )
