/**
 * Several `troupe runner` processes on one Postgres database, and this test process as a
 * client-only member of their cluster.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Cluster from "../Cluster.ts"
import * as TroupeConfig from "../Config.ts"
import * as Database from "../Database.ts"
import { freePort, spawnTroupe, type Spawned, waitFor } from "./process.ts"

/** A running runner process. */
export interface RunnerProcess {
  readonly proc: Spawned
  /** Its cluster address, as the Probe entity reports it. */
  readonly name: string
  readonly httpPort: number
}

/** Start a runner on `databaseUrl` and wait until it is healthy. */
export const startRunner = async (options: {
  readonly databaseUrl: string
  readonly masterKey: string
  readonly dataDir: string
  readonly env?: Record<string, string>
}): Promise<RunnerProcess> => {
  const [httpPort, runnerPort] = [await freePort(), await freePort()]
  const proc = spawnTroupe(["runner", "--host", "127.0.0.1", "--port", String(runnerPort)], {
    DATABASE_URL: options.databaseUrl,
    TROUPE_MASTER_KEY: options.masterKey,
    TROUPE_PORT: String(httpPort),
    TROUPE_HOST: "127.0.0.1",
    TROUPE_DATA_DIR: options.dataDir,
    TROUPE_LOG_LEVEL: "warning",
    ...options.env
  })
  await waitFor(`http://127.0.0.1:${httpPort}/health`, { proc, timeoutMs: 150_000 })
  return { proc, name: `127.0.0.1:${runnerPort}`, httpPort }
}

/** A random base64 master key. */
export const randomMasterKey = (): string => Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64")

/** This process as a client-only member of the cluster on `databaseUrl`, with the default timings. */
export const layerClientMember = (databaseUrl: string) => {
  const config = Effect.runSync(Effect.withConfigProvider(TroupeConfig.fromEnv, ConfigProvider.fromMap(new Map())))
  return Cluster.layerClientOnly(config.cluster).pipe(
    Layer.provideMerge(Database.layerPostgres({ url: Redacted.make(databaseUrl), maxConnections: 8 }))
  )
}
