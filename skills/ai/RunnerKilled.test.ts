/**
 * A runner killed in the middle of a thinking mate's turn, on real Postgres: two `troupe runner`
 * processes, each pointed at the scripted OpenAI-compatible server (under its own path, so the
 * test knows which runner asked), a mate allowed `web.read`, and a turn whose model calls
 * `web.read` on a page that never answers. While that call runs (the turn's hold and the call's own
 * hold both open) the runner running the turn gets `kill -9`. The other runner takes the chat over,
 * the turn runs again (or ends failed), and afterwards every hold is settled or released exactly
 * once, the reserved bucket of every hold nets to zero, and the ledger adds up to the balances.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type * as NodeNet from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Chat, Create, Post } from "../../entities/chat/protocol.ts"
import { CreateMate, Register, User } from "../../entities/user/protocol.ts"
import * as Secrets from "../../entities/user/secrets.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import { layerClientMember, randomMasterKey, type RunnerProcess, startRunner } from "../../runtime/testing/cluster.ts"
import { stop } from "../../runtime/testing/process.ts"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import * as Scripted from "./testing/ScriptedServer.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let llm: Scripted.ScriptedServer
let pages: NodeHttp.Server
let pagesOrigin = ""
const pageSockets = new Set<NodeNet.Socket>()
/** Paths the page server was asked for, in order. */
const pageRequests: Array<string> = []
const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-killed-"))
const masterKey = randomMasterKey()
const runners: Array<RunnerProcess> = []

beforeAll(async () => {
  db = await createTestDatabase("killed")
  llm = await Scripted.start()
  // `/hang` never answers (a skill call in flight when its runner dies); anything else answers at once
  pages = NodeHttp.createServer((req, res) => {
    pageRequests.push(req.url ?? "/")
    if ((req.url ?? "").startsWith("/hang")) return
    res.writeHead(200, { "content-type": "text/html" })
    res.end("<html><head><title>Quick page</title></head><body><article><p>The quick page answered.</p></article></body></html>")
  })
  pages.on("connection", (s) => {
    pageSockets.add(s)
    s.on("close", () => pageSockets.delete(s))
  })
  await new Promise<void>((resolve) => pages.listen(0, "127.0.0.1", resolve))
  const address = pages.address()
  pagesOrigin = `127.0.0.1:${typeof address === "object" && address ? address.port : 0}`
}, 60_000)
afterAll(async () => {
  await Promise.all(runners.map((r) => stop(r.proc, "SIGKILL")))
  await llm?.close()
  for (const s of pageSockets) s.destroy()
  await new Promise<void>((resolve) => pages.close(() => resolve()))
  await db?.drop()
  NodeFs.rmSync(dataDir, { recursive: true, force: true })
})

const runnerEnv = (name: string) => ({
  TROUPE_LLM_BASE_URL: `http://127.0.0.1:${llm.port}/${name}/v1`,
  TROUPE_LLM_MODEL: "scripted",
  TROUPE_SKILLS_ALLOWED_PRIVATE_HOSTS: pagesOrigin
})

describe("a thinking mate's runner killed mid-turn", () => {
  it("retries the turn or ends it failed, and settles or releases every hold exactly once", async () => {
    const names = ["a", "b"]
    runners.push(...(await Promise.all(names.map((name) => startRunner({ databaseUrl: db.url, masterKey, dataDir, env: runnerEnv(name) })))))

    // before the kill: the model calls web.read on the page that hangs; after it: on the quick page, then answers
    let killed = false
    llm.respond((r) => {
      const last = r.body.messages.at(-1)
      if (last.role === "tool") return Scripted.text("Recovered answer after the restart.", { delayMs: 5 })
      return Scripted.toolCalls([{ id: `read-${r.index}`, name: "web__read", arguments: { url: `http://${pagesOrigin}/${killed ? "quick" : "hang"}` } }], { split: 5 })
    })

    const userId = "killeduser"
    const chatId = "killedchat"
    const result = await Effect.runPromise(
      Effect.gen(function*() {
        const users = yield* User.client
        const chats = yield* Chat.client
        yield* retryTransient(users(userId).Register(
          new Register({
            email: "killed@example.com",
            username: "killed",
            passwordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            emailCodeHash: Secrets.emailCodeDigest(userId, "123456"),
            emailCodeExpiresAt: new Date(Date.now() + 600_000),
            startingCredits: 100_000
          })
        ))
        yield* retryTransient(users(userId).CreateMate(new CreateMate({ mateId: "reader", name: "Reader", systemPrompt: "Read links.", model: "default", allowedSkills: ["web.read"] })))
        yield* retryTransient(chats(chatId).Create(new Create({ ownerId: userId, mateId: "reader" })))
        const posted = yield* retryTransient(chats(chatId).Post(new Post({ clientMessageId: "k1", authorId: userId, text: `Please read http://${pagesOrigin}/hang` })))

        // wait until the skill call is in flight on the page that hangs
        yield* Effect.promise(() => llm.waitForRequests(1, 90_000))
        yield* Effect.sleep("100 millis").pipe(Effect.repeat({ until: () => pageRequests.some((p) => p.startsWith("/hang")) }), Effect.timeout("60 seconds"))
        const first = llm.requests.find((r) => r.path.endsWith("/chat/completions"))!
        const victim = names.indexOf(first.path.split("/")[1]!)
        expect(victim).toBeGreaterThanOrEqual(0)
        killed = true
        runners[victim]!.proc.child.kill("SIGKILL")
        yield* Effect.promise(() => runners[victim]!.proc.exited)
        const killedAt = Date.now()

        // the survivor takes the chat over and the turn ends one way or the other
        const summary = yield* retryTransient(chats(chatId).Summary()).pipe(
          Effect.delay("200 millis"),
          Effect.repeat({ until: (s) => s.runningTurn === null }),
          Effect.timeout("120 seconds")
        )
        const recoveredMs = Date.now() - killedAt
        const history = yield* retryTransient(chats(chatId).History({ limit: 10 }))

        const sql = yield* SqlClient.SqlClient
        const turns = yield* sql<{ turn_id: string; status: string; attempts: number; hold_key: string }>`
          SELECT turn_id, status, attempts, hold_key FROM chat_turns WHERE chat_id = ${chatId}`
        const holds = yield* sql<{ hold_key: string; status: string; amount: string; charged: string }>`
          SELECT hold_key, status, amount, charged FROM credit_holds WHERE account_id = ${userId} ORDER BY created_at`
        const ledger = yield* sql<{ txn_key: string; bucket: string; kind: string; amount: string }>`
          SELECT txn_key, bucket, kind, amount FROM credit_ledger WHERE account_id = ${userId}`
        const [total] = yield* sql<{ total: string }>`SELECT COALESCE(SUM(amount), 0) AS total FROM credit_ledger`
        const mismatched = yield* sql`
          SELECT a.account_id FROM credit_accounts a
          LEFT JOIN (SELECT account_id, SUM(amount) FILTER (WHERE bucket = 'available') AS available,
                            SUM(amount) FILTER (WHERE bucket = 'reserved') AS reserved
                     FROM credit_ledger GROUP BY account_id) l ON l.account_id = a.account_id
          WHERE a.available <> COALESCE(l.available, 0) OR a.reserved <> COALESCE(l.reserved, 0)`
        const [account] = yield* sql<{ reserved: string }>`SELECT reserved FROM credit_accounts WHERE account_id = ${userId}`
        const [restarted] = yield* sql<{ n: string }>`SELECT count(*) AS n FROM chat_events WHERE chat_id = ${chatId} AND kind = 'restarted'`
        return {
          turnId: posted.turnId,
          victim,
          summary,
          recoveredMs,
          history: history.messages,
          turns,
          holds,
          ledger,
          ledgerTotal: Number(total!.total),
          mismatched: mismatched.length,
          reserved: Number(account!.reserved),
          restarted: Number(restarted!.n)
        }
      }).pipe(
        Effect.provide(layerClientMember(db.url)),
        Effect.scoped,
        Effect.tapErrorCause((cause) => Effect.sync(() => process.stdout.write(`\n[killed] failed: ${Cause.pretty(cause)}\n`)))
      )
    )

    const turn = result.turns.find((t) => t.turn_id === result.turnId)!
    process.stdout.write(
      `\n[killed] victim=${names[result.victim]} turn=${turn.status} attempts=${turn.attempts} restarted_events=${result.restarted} ` +
        `holds=${result.holds.map((h) => `${h.hold_key.split(":").slice(3).join(":") || "turn"}=${h.status}/${h.charged}`).join(",")} ` +
        `recovered_ms=${result.recoveredMs} llm_requests=${llm.requests.length} pages=${pageRequests.join(",")}\n`
    )

    // one turn; it was run again on the survivor (or ended failed), never left running
    expect(result.turns).toHaveLength(1)
    expect(["done", "failed"]).toContain(turn.status)
    expect(result.summary.runningTurn).toBeNull()
    expect(result.restarted).toBeGreaterThanOrEqual(1)
    if (turn.status === "done") {
      expect(turn.attempts).toBeGreaterThanOrEqual(2)
      expect(result.history.find((m) => m.role === "mate" && m.turnId === result.turnId)!.text).toContain("Recovered answer after the restart.")
      // the survivor asked the model again, under its own path
      expect(llm.requests.some((r) => r.path.startsWith(`/${names[1 - result.victim]}/`))).toBe(true)
    }

    // the turn's hold and the killed attempt's skill-call hold, plus the new attempt's call if it ran
    const turnHold = result.holds.find((h) => h.hold_key === turn.hold_key)
    expect(turnHold).toBeDefined()
    const skillHolds = result.holds.filter((h) => h.hold_key.startsWith(`${turn.hold_key}:`))
    expect(skillHolds.length).toBeGreaterThanOrEqual(1)
    // the call cut off with its runner was never answered: released, nothing charged for it
    const cutOff = skillHolds[0]!
    expect(cutOff.status).toBe("released")
    expect(Number(cutOff.charged)).toBe(0)
    if (turn.status === "done") expect(skillHolds.some((h) => h.status === "settled")).toBe(true)

    for (const h of result.holds) {
      // closed, exactly once: one reserve and one closing transaction per hold, the reserved bucket back to zero
      expect(["settled", "released"], h.hold_key).toContain(h.status)
      const entries = result.ledger.filter((l) => l.txn_key.endsWith(`:${userId}:${h.hold_key}`))
      const reserves = new Set(entries.filter((l) => l.kind === "reserve").map((l) => l.txn_key))
      const closes = new Set(entries.filter((l) => l.kind === "settle" || l.kind === "release" || l.kind === "expire").map((l) => l.txn_key))
      expect(reserves.size, h.hold_key).toBe(1)
      expect(closes.size, h.hold_key).toBe(1)
      expect(entries.filter((l) => l.bucket === "reserved").reduce((n, l) => n + Number(l.amount), 0), h.hold_key).toBe(0)
      expect(Number(h.charged), h.hold_key).toBeLessThanOrEqual(Number(h.amount))
    }
    expect(result.reserved).toBe(0)
    expect(result.ledgerTotal).toBe(0)
    expect(result.mismatched).toBe(0)
    expect(await stop(runners[1 - result.victim]!.proc, "SIGTERM")).toBe(0)
  }, 300_000)
})
