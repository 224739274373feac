/**
 * The gateway as its own processes: one `troupe runner` hosting the entities and two
 * `troupe gateway` processes (client-only members, no key ring) sharing Postgres, Redis and the
 * JWT secret. A session made on one gateway works on the other, a chat's events stream from
 * either and resume across them, logout on one is refused on the other at once, and exactly one
 * gateway prints the first-run admin invite.
 */
import Pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { randomMasterKey, startRunner } from "../runtime/testing/cluster.ts"
import { freePort, spawnTroupe, stop, waitFor } from "../runtime/testing/process.ts"
import type { Spawned } from "../runtime/testing/process.ts"
import { createTestDatabase, redisUrl } from "../runtime/testing/services.ts"
import { readEvents } from "./testing/flows.ts"
import { request, verificationCode } from "./testing/server.ts"
import type { TestServer } from "./testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
const procs: Array<Spawned> = []
const dirs: Array<string> = []
const gateways: Array<TestServer & { readonly proc: Spawned }> = []
const jwtSecret = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64")
const prefix = `troupe-roles-${Date.now()}:`

const tempDir = () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-gwrole-"))
  dirs.push(dir)
  return dir
}

const startGateway = async () => {
  const port = await freePort()
  const adminPort = await freePort()
  const dataDir = tempDir()
  const proc = spawnTroupe(["gateway"], {
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl(),
    REDIS_KEY_PREFIX: prefix,
    TROUPE_JWT_SECRET: jwtSecret,
    TROUPE_SIGNUP: "open",
    TROUPE_PORT: String(port),
    TROUPE_ADMIN_PORT: String(adminPort),
    TROUPE_HOST: "127.0.0.1",
    TROUPE_DATA_DIR: dataDir,
    TROUPE_LOG_LEVEL: "warning"
  })
  procs.push(proc)
  await waitFor(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 150_000 })
  const gateway = { url: `http://127.0.0.1:${port}`, adminUrl: `http://127.0.0.1:${adminPort}`, dataDir, proc, settings: undefined as never, close: async () => {} }
  gateways.push(gateway)
  return gateway
}

beforeAll(async () => {
  db = await createTestDatabase("gwroles")
  const runner = await startRunner({ databaseUrl: db.url, masterKey: randomMasterKey(), dataDir: tempDir() })
  procs.push(runner.proc)
  await Promise.all([startGateway(), startGateway()])
}, 300_000)
afterAll(async () => {
  await Promise.all(procs.map((p) => stop(p, "SIGKILL")))
  await db?.drop()
  for (const dir of dirs) NodeFs.rmSync(dir, { recursive: true, force: true })
})

describe("troupe gateway processes", () => {
  it("share sessions, stream and resume a chat across gateways, revoke everywhere, print the admin invite once", async () => {
    const [a, b] = gateways as [typeof gateways[0], typeof gateways[0]]
    const printed = [a, b].map((g) => (g.proc.stdout().match(/Admin invite code: inv_\w+/g) ?? []).length)
    expect(printed.reduce((x, y) => x + y, 0)).toBe(1)

    const email = "roles@example.com"
    expect((await request(a, "POST", "/v1/auth/signup", { body: { email, username: "roles", password: "a long password 1" } })).status).toBe(201)
    expect((await request(b, "POST", "/v1/auth/verify_email", { body: { email, code: verificationCode(a.dataDir, email) } })).status).toBe(200)
    const login = await request(b, "POST", "/v1/auth/login", { body: { login: "roles", password: "a long password 1" } })
    expect(login.status).toBe(200)
    const token = login.body.access_token as string
    expect((await request(a, "GET", "/v1/me", { token })).body.username).toBe("roles")

    const chat = await request(a, "POST", "/v1/chats", { token, body: {} })
    expect(chat.status).toBe(201)
    const chatId = chat.body.id as string
    expect((await request(a, "POST", `/v1/chats/${chatId}/messages`, { token, body: { client_message_id: "x1", text: "across gateways" } })).status).toBe(202)
    const onB = await readEvents(b, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.event === "done" || e.event === "error"))
    expect(onB.events.at(-1)!.event).toBe("done")
    const ids = onB.events.map((e) => e.id)
    const onA = await readEvents(a, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.event === "done"), { "last-event-id": String(ids[0]) })
    expect(onA.events.map((e) => e.id)).toEqual(ids.slice(1))

    expect((await request(a, "POST", "/v1/auth/logout", { token })).status).toBe(204)
    const after = await request(b, "GET", "/v1/me", { token })
    expect(after.status).toBe(401)
    expect(after.body.error.code).toBe("session_revoked")
  }, 120_000)

  it("refuse to start without the shared JWT secret, with one line naming it, before touching the database", async () => {
    const fresh = await createTestDatabase("gwbadcfg")
    try {
      for (const secret of [undefined, "too-short"]) {
        const proc = spawnTroupe(["gateway"], {
          DATABASE_URL: fresh.url,
          ...(secret ? { TROUPE_JWT_SECRET: secret } : {}),
          TROUPE_PORT: String(await freePort()),
          TROUPE_DATA_DIR: tempDir()
        })
        expect(await proc.exited).toBe(1)
        expect(proc.stderr().trim()).toMatch(/^troupe: invalid configuration: TROUPE_JWT_SECRET: [^\n]+$/)
      }
      const client = new Pg.Client({ connectionString: fresh.url })
      await client.connect()
      const { rows } = await client.query<{ t: string | null }>("SELECT to_regclass('troupe_migrations')::text AS t")
      await client.end()
      expect(rows[0]!.t).toBeNull()
    } finally {
      await fresh.drop()
    }
  }, 60_000)
})
