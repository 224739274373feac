/**
 * `troupe uploads` as its own process on its own port (UPLOADS_PORT), beside a `troupe runner`
 * (the entities: sessions, chats) and a `troupe gateway` on the same Postgres, sharing the JWT
 * secret and the master key: a file uploaded through it goes to `ready` and downloads byte for byte, someone
 * else gets 404; an upload a stopped process left `processing` is rejected by its sweeper
 * (`processing_interrupted`) after UPLOADS_PROCESSING_TIMEOUT, its partial blob removed and its
 * chat told.
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { onboard, readEvents } from "../gateway/testing/flows.ts"
import { request, type TestServer } from "../gateway/testing/server.ts"
import { startRunner } from "../runtime/testing/cluster.ts"
import { freePort, spawnTroupe, stop, waitFor, type Spawned } from "../runtime/testing/process.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import { settled, uploadMultipart } from "./testing/client.ts"
import * as Files from "./testing/files.ts"

const jwtSecret = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64")
const masterKey = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64")
const dirs: Array<string> = []
const procs: Array<Spawned> = []
let db: Awaited<ReturnType<typeof createTestDatabase>>
let client: pg.Client
let gateway: TestServer
let uploads: { readonly url: string }
let uploadsDir: string
let alice: { access: string; userId: string }
let bob: { access: string; userId: string }

const tempDir = () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-uploads-role-"))
  dirs.push(dir)
  return dir
}

/** Spawn `troupe <role>` on the test database with the shared secrets; its URL once healthy. */
const spawnRole = async (role: "gateway" | "uploads", dataDir: string, env: Record<string, string>) => {
  const port = await freePort()
  const proc = spawnTroupe([role], {
    DATABASE_URL: db.url,
    TROUPE_JWT_SECRET: jwtSecret,
    TROUPE_MASTER_KEY: masterKey,
    TROUPE_DATA_DIR: dataDir,
    TROUPE_HOST: "127.0.0.1",
    TROUPE_PORT: String(port),
    UPLOADS_HOST: "127.0.0.1",
    UPLOADS_PORT: String(port),
    TROUPE_LOG_LEVEL: "warning",
    ...env
  })
  procs.push(proc)
  await waitFor(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 180_000 })
  return `http://127.0.0.1:${port}`
}

beforeAll(async () => {
  db = await createTestDatabase("uprole")
  client = new pg.Client({ connectionString: db.url })
  await client.connect()
  procs.push((await startRunner({ databaseUrl: db.url, masterKey, dataDir: tempDir() })).proc)
  const gatewayDir = tempDir()
  gateway = { url: await spawnRole("gateway", gatewayDir, { TROUPE_SIGNUP: "open" }), adminUrl: "", dataDir: gatewayDir, settings: undefined as never, close: async () => {} }
  alice = await onboard(gateway, "alice")
  bob = await onboard(gateway, "bob")
}, 400_000)

afterAll(async () => {
  await Promise.all(procs.map((p) => stop(p, "SIGKILL")))
  await client?.end()
  await db?.drop()
  for (const dir of dirs) NodeFs.rmSync(dir, { recursive: true, force: true })
})

describe("troupe uploads, alone on its port", () => {
  it("rejects an upload a stopped process left processing; takes, processes and serves files", async () => {
    // what a process killed mid-processing leaves: the row `processing`, untouched since, a partial blob
    const chat = await request(gateway, "POST", "/v1/chats", { token: alice.access, body: { title: "files" } })
    expect(chat.status).toBe(201)
    const stuck = "fstuck00000000000001"
    await client.query(
      `INSERT INTO uploads (upload_id, owner_id, status, name, mime, kind, size, sha256, chat_id, updated_at)
       VALUES ($1, $2, 'processing', 'half.jpg', 'image/jpeg', 'image', 1234, 'aa', $3, now() - interval '20 seconds')`,
      [stuck, alice.userId, chat.body.id]
    )
    uploadsDir = tempDir()
    const partial = NodePath.join(uploadsDir, "blobs", "data", "uploads", stuck, "file")
    NodeFs.mkdirSync(NodePath.dirname(partial), { recursive: true })
    NodeFs.writeFileSync(partial, "half a file")

    uploads = { url: await spawnRole("uploads", uploadsDir, { UPLOADS_PROCESSING_TIMEOUT: "3" }) }

    // its sweeper rejects it with a code, removes what was stored, and tells the chat
    let status: { status?: string; error?: { code?: string } } = {}
    for (let i = 0; i < 300; i++) {
      status = (await request(uploads, "GET", `/v1/uploads/${stuck}`, { token: alice.access })).body
      if (status.status !== "processing") break
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(status.status).toBe("rejected")
    expect(status.error.code).toBe("processing_interrupted")
    expect(NodeFs.existsSync(partial)).toBe(false)
    const { events } = await readEvents(gateway, `/v1/chats/${chat.body.id}/events`, alice.access, (es) => es.some((e) => e.event === "attachment_rejected"))
    expect(events.find((e) => e.event === "attachment_rejected")?.data).toMatchObject({ upload_id: stuck, code: "processing_interrupted" })

    // files uploaded through it go to ready (longer than the 3 s timeout is fine: the live process keeps them fresh)
    const jpeg = await Files.jpegWithGps()
    const up = await uploadMultipart(uploads, alice.access, jpeg, "photo.jpg", "image/jpeg")
    expect(up.status, JSON.stringify(up.body)).toBe(202)
    expect((await settled(uploads, alice.access, up.body.id)).status).toBe("ready")
    const file = await fetch(`${uploads.url}/v1/files/${up.body.id}`, { headers: { authorization: `Bearer ${alice.access}` } })
    expect(file.status).toBe(200)
    expect(Buffer.from(await file.arrayBuffer()).equals(Buffer.from(jpeg))).toBe(true)
    const preview = await fetch(`${uploads.url}/v1/files/${up.body.id}/preview`, { headers: { authorization: `Bearer ${alice.access}` } })
    expect(preview.status).toBe(200)
    expect(preview.headers.get("content-type")).toBe("image/webp")
    // someone else: 404 on the file and on its status
    expect((await fetch(`${uploads.url}/v1/files/${up.body.id}`, { headers: { authorization: `Bearer ${bob.access}` } })).status).toBe(404)
    expect((await request(uploads, "GET", `/v1/uploads/${up.body.id}`, { token: bob.access })).status).toBe(404)
    // no session: 401
    expect((await fetch(`${uploads.url}/v1/files/${up.body.id}`)).status).toBe(401)
  }, 240_000)
})
