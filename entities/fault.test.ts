/**
 * Fault test on real Postgres: three runner processes, chat posts over many chats and accounts
 * (each turn reserving and settling credits), and `kill -9` of one runner in the middle.
 * The accounts are registered through the User entity and chat with the mate every account
 * starts with, as through the gateway; the runners think with the scripted OpenAI-compatible
 * server (an echo streamed word by word, each runner under its own path), so every turn really
 * runs and is charged its tokens. The runner killed is one that is streaming a turn's answer at
 * that moment, so turns in flight do die with it and must be run again elsewhere.
 * Afterwards every accepted post has exactly one user message, one turn finished `done` (a turn
 * whose runner died is run again; only one that used up its attempts may end failed) and one
 * settled or released hold; credits were charged; the ledger adds up to the balances; journals
 * have no gaps.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { retryTransient } from "../runtime/Cluster.ts"
import { layerClientMember, randomMasterKey, type RunnerProcess, startRunner } from "../runtime/testing/cluster.ts"
import { stop } from "../runtime/testing/process.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import * as Scripted from "../skills/ai/testing/ScriptedServer.ts"
import { Chat, Create, Post } from "./chat/protocol.ts"
import { maxTurnAttempts } from "./chat/turns.ts"
import { AddChat, defaultMateId, Register, User } from "./user/protocol.ts"
import * as Secrets from "./user/secrets.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let llm: Scripted.ScriptedServer
const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-fault-"))
const masterKey = randomMasterKey()
const runners: Array<RunnerProcess> = []

beforeAll(async () => {
  db = await createTestDatabase("fault")
  llm = await Scripted.start()
  // the mate echoes the message word by word (a turn takes a moment, so some are in flight at the kill)
  llm.respond((r) => Scripted.text(`You said: ${String(r.body.messages.at(-1)?.content ?? "")}`, { delayMs: 30 }))
})
afterAll(async () => {
  await Promise.all(runners.map((r) => stop(r.proc, "SIGKILL")))
  await llm?.close()
  await db?.drop()
  NodeFs.rmSync(dataDir, { recursive: true, force: true })
})

const accounts = Array.from({ length: 12 }, (_, i) => `acct${i}`)
const chats = Array.from({ length: 36 }, (_, i) => ({ chatId: `fault${i}`, owner: accounts[i % accounts.length]! }))
const postsPerChat = 4

describe("chats across three runners", () => {
  it("lose nothing and charge nothing twice when a runner is killed mid-load", async () => {
    // each runner asks the model under its own path, so the test sees which runner runs a turn
    const env = (i: number) => ({ TROUPE_LLM_BASE_URL: `http://127.0.0.1:${llm.port}/r${i}/v1`, TROUPE_LLM_MODEL: "scripted" })
    runners.push(...(await Promise.all([0, 1, 2].map((i) => startRunner({ databaseUrl: db.url, masterKey, dataDir, env: env(i) })))))
    /** Runners with a model request still streaming (a turn in flight on them). */
    const streaming = () =>
      [0, 1, 2].filter((i) => llm.requests.some((r) => r.path.startsWith(`/r${i}/`) && r.path.endsWith("/chat/completions") && r.endedAt === undefined))
    const started = Date.now()

    const result = await Effect.runPromise(
      Effect.gen(function*() {
        const users = yield* User.client
        const chat = yield* Chat.client
        // registered as the gateway does: the account, its starting credits and its default mate
        yield* Effect.forEach(accounts, (a) =>
          retryTransient(users(a).Register(
            new Register({
              email: `${a}@example.com`,
              username: a,
              passwordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
              emailCodeHash: Secrets.emailCodeDigest(a, "123456"),
              emailCodeExpiresAt: new Date(Date.now() + 600_000),
              startingCredits: 100_000
            })
          )), { concurrency: 6 })
        yield* Effect.forEach(chats, (c) =>
          Effect.zipRight(
            retryTransient(users(c.owner).AddChat(new AddChat({ chatId: c.chatId, mateId: defaultMateId }))),
            retryTransient(chat(c.chatId).Create(new Create({ ownerId: c.owner, mateId: defaultMateId })))
          ), { concurrency: 12 })

        const accepted: Array<{ chatId: string; clientMessageId: string; turnId: string }> = []
        const waitForTurn = (chatId: string) =>
          retryTransient(chat(chatId).Summary()).pipe(
            Effect.repeat({ until: (s) => s.runningTurn === null }),
            Effect.timeout("120 seconds")
          )
        const load = Effect.forEach(chats, (c) =>
          Effect.forEach(Array.from({ length: postsPerChat }, (_, p) => p), (p) =>
            Effect.gen(function*() {
              const clientMessageId = `${c.chatId}-${p}`
              const posted = yield* retryTransient(chat(c.chatId).Post(new Post({ clientMessageId, authorId: c.owner, text: `fault message ${p} for ${c.chatId} with a few words` })))
              accepted.push({ chatId: c.chatId, clientMessageId, turnId: posted.turnId })
              yield* waitForTurn(c.chatId)
            }), { discard: true }), { concurrency: "unbounded", discard: true })

        const loadFiber = yield* Effect.fork(load)
        // kill a runner once a good part of the load is in flight, at a moment it streams a turn's answer
        // (if no runner ever streams, e.g. every turn fails before asking the model, the assertions below say so)
        yield* Effect.sleep("20 millis").pipe(
          Effect.repeat({ until: () => accepted.length >= chats.length && streaming().length > 0 }),
          Effect.timeout("60 seconds"),
          Effect.ignore
        )
        const killedAfter = accepted.length
        const victimIndex = streaming()[0] ?? 0
        const victim = runners[victimIndex]!
        victim.proc.child.kill("SIGKILL")
        const killedAt = Date.now()
        const streamingAtKill = llm.requests.filter((r) => r.path.startsWith(`/r${victimIndex}/`) && r.path.endsWith("/chat/completions") && r.endedAt === undefined).length
        yield* loadFiber.await.pipe(Effect.flatten)
        const recoveredMs = Date.now() - killedAt

        const sql = yield* SqlClient.SqlClient
        const messages = yield* sql<{ chat_id: string; client_message_id: string; n: string }>`
          SELECT chat_id, client_message_id, count(*) AS n FROM chat_messages WHERE role = 'user' GROUP BY chat_id, client_message_id`
        const turns = yield* sql<{ chat_id: string; turn_id: string; status: string; attempts: number; hold_key: string }>`
          SELECT chat_id, turn_id, status, attempts, hold_key FROM chat_turns`
        const holds = yield* sql<{ hold_key: string; status: string }>`SELECT hold_key, status FROM credit_holds`
        const [ledger] = yield* sql<{ total: string }>`SELECT COALESCE(SUM(amount), 0) AS total FROM credit_ledger`
        const mismatched = yield* sql`
          SELECT a.account_id FROM credit_accounts a
          LEFT JOIN (SELECT account_id, SUM(amount) FILTER (WHERE bucket = 'available') AS available,
                            SUM(amount) FILTER (WHERE bucket = 'reserved') AS reserved
                     FROM credit_ledger GROUP BY account_id) l ON l.account_id = a.account_id
          WHERE a.available <> COALESCE(l.available, 0) OR a.reserved <> COALESCE(l.reserved, 0)`
        const gaps = yield* sql<{ n: string }>`
          SELECT count(*) AS n FROM chat_events e WHERE e.seq > 1
          AND NOT EXISTS (SELECT 1 FROM chat_events p WHERE p.chat_id = e.chat_id AND p.seq = e.seq - 1)`
        const [restarted] = yield* sql<{ n: string }>`SELECT count(*) AS n FROM chat_events WHERE kind = 'restarted'`
        const [charged] = yield* sql<{ n: string }>`SELECT COALESCE(SUM(amount), 0) AS n FROM credit_ledger WHERE account_id = 'system' AND bucket = 'revenue'`
        return { accepted, killedAfter, victimIndex, streamingAtKill, recoveredMs, messages, turns, holds, ledgerTotal: Number(ledger!.total), mismatched: mismatched.length, gaps: Number(gaps[0]!.n), restarted: Number(restarted!.n), charged: Number(charged!.n) }
      }).pipe(
        Effect.provide(layerClientMember(db.url)),
        Effect.scoped,
        Effect.tapErrorCause((cause) => Effect.sync(() => process.stdout.write(`\n[fault] failed: ${Cause.pretty(cause)}\n`)))
      )
    )

    const byHold = new Map(result.holds.map((h) => [h.hold_key, h.status]))
    const holdCounts = new Map<string, number>()
    for (const h of result.holds) holdCounts.set(h.hold_key, (holdCounts.get(h.hold_key) ?? 0) + 1)
    const statusCount = (s: string) => result.turns.filter((t) => t.status === s).length
    process.stdout.write(
      `\n[fault] runners=3 killed=1 accounts=${accounts.length} chats=${chats.length} posts_accepted=${result.accepted.length} ` +
        `accepted_before_kill=${result.killedAfter} streaming_on_victim_at_kill=${result.streamingAtKill} turns_done=${statusCount("done")} turns_failed=${statusCount("failed")} ` +
        `turns_restarted=${result.restarted} holds_settled=${result.holds.filter((h) => h.status === "settled").length} ` +
        `holds_released=${result.holds.filter((h) => h.status === "released").length} credits_charged=${result.charged} ` +
        `ledger_sum=${result.ledgerTotal} sequence_gaps=${result.gaps} llm_requests=${llm.requests.length} ` +
        `load_finished_ms_after_kill=${result.recoveredMs} total_ms=${Date.now() - started}\n`
    )

    expect(result.accepted).toHaveLength(chats.length * postsPerChat)
    const messageCount = new Map(result.messages.map((m) => [`${m.chat_id}/${m.client_message_id}`, Number(m.n)]))
    for (const post of result.accepted) {
      // exactly one user message per accepted post
      expect(messageCount.get(`${post.chatId}/${post.clientMessageId}`), post.clientMessageId).toBe(1)
      // one turn, finished done: a turn whose runner died is run again; only one that used up
      // its attempts may end failed (none left running)
      const turn = result.turns.filter((t) => t.chat_id === post.chatId && t.turn_id === post.turnId)
      expect(turn, post.clientMessageId).toHaveLength(1)
      if (turn[0]!.status !== "done") {
        // what the runners logged about the turn says why it ended so
        const said = runners.flatMap((r) => `${r.proc.stdout()}\n${r.proc.stderr()}`.split("\n")).filter((l) => l.includes(post.turnId)).join("\n")
        expect(turn[0]!.status, `${post.clientMessageId}\n${said}`).toBe("failed")
        expect(turn[0]!.attempts, `${post.clientMessageId} failed before using up its attempts\n${said}`).toBeGreaterThanOrEqual(maxTurnAttempts)
      }
      // one hold, settled or released
      expect(holdCounts.get(turn[0]!.hold_key), post.clientMessageId).toBe(1)
      expect(["settled", "released"]).toContain(byHold.get(turn[0]!.hold_key))
    }
    expect(result.turns).toHaveLength(result.accepted.length)
    // the turns ran and were paid for: done is the rule, and their tokens were charged
    expect(statusCount("done")).toBeGreaterThan(0)
    expect(result.charged).toBeGreaterThan(0)
    // turns were in flight on the killed runner, and they were run again on the others
    expect(result.streamingAtKill).toBeGreaterThan(0)
    expect(result.restarted).toBeGreaterThanOrEqual(1)
    expect(result.ledgerTotal).toBe(0)
    expect(result.mismatched).toBe(0)
    expect(result.gaps).toBe(0)
    for (const r of runners.filter((_, i) => i !== result.victimIndex)) expect(await stop(r.proc, "SIGTERM")).toBe(0)
  }, 600_000)
})
