/**
 * A deployment as an operator runs one, as processes: `troupe runner` processes and a `troupe
 * gateway` on one fresh Postgres database (and Redis), each with its own ports, the runners
 * sharing a data dir and the gateway with its own (its outbox holds the verification mails, and
 * the initial admin invite). Used by the scale-out scenario (`scale.ts`: `bin/scale.test.ts`,
 * `npm run bench:scale`) and by the app store's multi-runner test (`bin/store-runners.test.ts`).
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { outboxDir } from "../../gateway/Mailer.ts"
import { randomMasterKey } from "../../runtime/testing/cluster.ts"
import { freePort, type Spawned, spawnTroupe, stop, waitFor } from "../../runtime/testing/process.ts"
import { createTestDatabase, redisUrl } from "../../runtime/testing/services.ts"

/** What to start. */
export interface DeploymentOptions {
  readonly runners: number
  /** Names the test database. */
  readonly label?: string
  /** Extra environment for every process. */
  readonly env?: Record<string, string>
  /** Extra environment for runner `index` (on top of `env`). */
  readonly runnerEnv?: (index: number) => Record<string, string>
}

/** A runner process and its ports (a restart reuses them). */
export interface RunnerProc {
  proc: Spawned
  readonly index: number
  readonly runnerPort: number
  readonly httpPort: number
  /** The admin listener (`/metrics`, `/health/detailed`). */
  readonly adminPort: number
}

/** The running deployment. */
export interface Deployment {
  readonly databaseUrl: string
  /** The gateway's base URL. */
  readonly url: string
  readonly gateway: Spawned
  readonly gatewayDir: string
  /** Started runners, in order (`spawnRunner` does not add to it). */
  readonly runners: Array<RunnerProc>
  /** Start runner `index` (on `ports`, to restart one in place) and wait until it is healthy. */
  readonly spawnRunner: (index: number, ports?: { readonly runnerPort: number; readonly httpPort: number; readonly adminPort: number }) => Promise<RunnerProc>
  /** Kill every process, write their output to `logDir` (if given), drop the database, remove the dirs. */
  readonly close: (options?: { readonly logDir?: string | undefined }) => Promise<void>
}

/** The verification code last mailed to `email` (from the gateway's outbox). */
export const verificationCode = (dataDir: string, email: string): string => {
  const dir = outboxDir(dataDir)
  for (const f of NodeFs.readdirSync(dir).sort().reverse()) {
    const text = NodeFs.readFileSync(NodePath.join(dir, f), "utf8")
    if (text.toLowerCase().includes(`to: ${email}`)) {
      const m = /verification code is (\d{6})/.exec(text)
      if (m) return m[1]!
    }
  }
  throw new Error(`no verification mail to ${email}`)
}

/** A JSON request to `base` (60 s at most); the status and the parsed body. */
export const json = async (base: string, method: string, path: string, body?: unknown, token?: string) => {
  const res = await fetch(base + path, {
    method,
    headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000)
  })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) as Record<string, any> : {} }
}

/** Start `options.runners` runners, then the gateway; resolves once all are healthy. */
export const startDeployment = async (options: DeploymentOptions): Promise<Deployment> => {
  const db = await createTestDatabase(options.label ?? "deploy")
  const dirs: Array<string> = []
  const tempDir = () => {
    const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-deploy-"))
    dirs.push(dir)
    return dir
  }
  const masterKey = randomMasterKey()
  const jwtSecret = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64")
  const runnerDir = tempDir()
  const runners: Array<RunnerProc> = []
  const spawned: Array<{ readonly name: string; readonly proc: Spawned }> = []
  const common = {
    DATABASE_URL: db.url,
    TROUPE_MASTER_KEY: masterKey,
    TROUPE_HOST: "127.0.0.1",
    TROUPE_ADMIN_PORT: "0",
    TROUPE_LOG_LEVEL: "warning",
    NODE_OPTIONS: "--max-semi-space-size=32",
    ...options.env
  }

  const spawnRunner: Deployment["spawnRunner"] = async (index, ports) => {
    const runnerPort = ports?.runnerPort ?? await freePort()
    const httpPort = ports?.httpPort ?? await freePort()
    const adminPort = ports?.adminPort ?? await freePort()
    const proc = spawnTroupe(["runner", "--host", "127.0.0.1", "--port", String(runnerPort)], {
      ...common,
      TROUPE_PORT: String(httpPort),
      TROUPE_ADMIN_PORT: String(adminPort),
      TROUPE_DATA_DIR: runnerDir,
      ...options.runnerEnv?.(index)
    })
    spawned.push({ name: `runner${index}-${spawned.length}`, proc })
    await waitFor(`http://127.0.0.1:${httpPort}/health`, { proc, timeoutMs: 150_000 })
    return { proc, index, runnerPort, httpPort, adminPort }
  }

  const close: Deployment["close"] = async (closing = {}) => {
    await Promise.all(spawned.map(({ proc }) => stop(proc, "SIGKILL")))
    if (closing.logDir) {
      NodeFs.mkdirSync(closing.logDir, { recursive: true })
      for (const { name, proc } of spawned) NodeFs.writeFileSync(NodePath.join(closing.logDir, `${name}.log`), proc.stdout() + proc.stderr())
    }
    await db.drop().catch(() => {})
    for (const dir of dirs) NodeFs.rmSync(dir, { recursive: true, force: true })
  }

  try {
    runners.push(...await Promise.all(Array.from({ length: options.runners }, (_, i) => spawnRunner(i))))
    const gatewayPort = await freePort()
    const gatewayDir = tempDir()
    const gateway = spawnTroupe(["gateway"], {
      ...common,
      REDIS_URL: redisUrl(),
      REDIS_KEY_PREFIX: `troupe-deploy-${Date.now()}:`,
      TROUPE_JWT_SECRET: jwtSecret,
      TROUPE_SIGNUP: "open",
      TROUPE_SIGNUP_CREDITS: "1000000",
      TROUPE_RATE_LIMIT_IP: "1000000/60s",
      TROUPE_RATE_LIMIT_USER: "1000000/60s",
      TROUPE_PORT: String(gatewayPort),
      TROUPE_DATA_DIR: gatewayDir
    })
    spawned.push({ name: "gateway", proc: gateway })
    const url = `http://127.0.0.1:${gatewayPort}`
    await waitFor(`${url}/health`, { proc: gateway, timeoutMs: 150_000 })
    return { databaseUrl: db.url, url, gateway, gatewayDir, runners, spawnRunner, close }
  } catch (e) {
    await close()
    throw e
  }
}
