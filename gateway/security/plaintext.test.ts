/**
 * Security regression tests for what is stored (issue 15, finding 11): chat titles and mates'
 * system prompts are not kept in the clear anywhere in the database (tables of the entities and
 * of the cluster alike), and prompts written before they were sealed get sealed. Failed before
 * the fix (user_mates.system_prompt and user_chats.title held them, and so did the cluster's
 * persisted CreateMate/UpdateMate/AddChat messages).
 */
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import Pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { onboard } from "../testing/flows.ts"
import { initialInvite, request, startServer } from "../testing/server.ts"
import type { TestServer } from "../testing/server.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let pg: Pg.Client
const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-sec-plaintext-"))
const servers: Array<TestServer> = []
const masterKey = new Uint8Array(NodeCrypto.randomBytes(32))

beforeAll(async () => {
  db = await createTestDatabase("secplain")
  pg = new Pg.Client({ connectionString: db.url })
  await pg.connect()
}, 60_000)
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()))
  await pg?.end()
  await db?.drop()
  NodeFs.rmSync(dataDir, { recursive: true, force: true })
})

/** The tables (of any schema but the system's) with a row whose text form contains `needle`. */
const tablesContaining = async (needle: string) => {
  const tables = await pg.query<{ schema: string; name: string }>(
    `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
     WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`
  )
  const found: Array<string> = []
  for (const t of tables.rows) {
    const r = await pg.query(`SELECT 1 FROM "${t.schema}"."${t.name}" x WHERE x::text LIKE $1 LIMIT 1`, [`%${needle}%`])
    if (r.rowCount! > 0) found.push(`${t.schema}.${t.name}`)
  }
  return found
}

describe("finding 11: no plaintext titles or prompts", () => {
  it("stores chat titles and mates' system prompts only encrypted, and seals prompts stored before", async () => {
    const server = await startServer({ databaseUrl: db.url, dataDir, masterKey })
    servers.push(server)
    const { access: token } = await onboard(server, "sealer", initialInvite(dataDir))
    const marker = NodeCrypto.randomBytes(6).toString("hex")
    const mate = await request(server, "POST", "/v1/mates", { token, body: { name: "Keeper", system_prompt: `prompt-one-${marker}` } })
    expect(mate.status).toBe(201)
    expect((await request(server, "PATCH", `/v1/mates/${mate.body.id}`, { token, body: { system_prompt: `prompt-two-${marker}` } })).status).toBe(200)
    const chat = await request(server, "POST", "/v1/chats", { token, body: { title: `title-${marker}`, mate_id: mate.body.id } })
    expect(chat.status).toBe(201)
    // the API shows them
    expect((await request(server, "GET", `/v1/mates/${mate.body.id}`, { token })).body.system_prompt).toBe(`prompt-two-${marker}`)
    expect((await request(server, "GET", "/v1/chats", { token })).body.chats.map((c: { title: string }) => c.title)).toContain(`title-${marker}`)
    // the database does not
    expect(await tablesContaining(marker)).toEqual([])

    // a prompt written before prompts were sealed (as the migration leaves existing rows)
    await pg.query(`UPDATE user_mates SET system_prompt = $1, system_prompt_sealed = NULL WHERE mate_id = $2`, [`prompt-old-${marker}`, mate.body.id])
    await server.close()
    servers.length = 0
    const again = await startServer({ databaseUrl: db.url, dataDir, masterKey })
    servers.push(again)
    // sealed at start, without the user asking for anything
    const deadline = Date.now() + 30_000
    while ((await tablesContaining(marker)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
    expect(await tablesContaining(marker)).toEqual([])
    const relogin = await request(again, "POST", "/v1/auth/login", { body: { login: "sealer", password: "a long password 1" } })
    expect((await request(again, "GET", `/v1/mates/${mate.body.id}`, { token: relogin.body.access_token })).body.system_prompt).toBe(`prompt-old-${marker}`)
  }, 120_000)
})
