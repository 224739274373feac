import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import { background, Phased } from "../../runtime/Background.ts"
import { KeyRing } from "../../runtime/KeyRing.ts"
import { entityMessages } from "../../runtime/Telemetry.ts"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import * as CreditBehaviour from "../credit/behaviour.ts"
import { Credit, Grant } from "../credit/protocol.ts"
import * as CreditRepo from "../credit/repo.ts"
import { layerCluster } from "../testing/cluster.ts"
import * as Behaviour from "./behaviour.ts"
import { Cancel, Chat, type ChatEvent, Create, Delete, DeleteMessage, Post } from "./protocol.ts"
import * as Repo from "./repo.ts"
import * as Turn from "./turn.ts"
import * as Turns from "./turns.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
beforeAll(async () => {
  db = await createTestDatabase("chat")
})
afterAll(() => db.drop())

/** The cluster with its turn sweeper (by default it wakes every chat with a running turn, 5 times a second). */
const cluster = (
  mates: Layer.Layer<Turn.TurnRunner> = Turn.layerEcho({ delay: "10 millis" }),
  sweep: Turns.TurnSweepSettings = { interval: Duration.millis(200), grace: Duration.zero }
) =>
  layerCluster({
    url: db.url,
    migrations: [...CreditRepo.migrations, ...Repo.migrations],
    entities: Layer.mergeAll(
      Behaviour.layer,
      Turns.layerTurnSweeper(sweep),
      CreditBehaviour.layer
    ).pipe(
      Layer.provide(Layer.succeed(CreditBehaviour.CreditConfig, CreditBehaviour.defaults)),
      Layer.provide(mates)
    )
  })

/** A mate that streams `words` as fast as it can, then fails if `failAfter` is set. */
const layerBurst = (words: number, failAfter = false) =>
  Layer.succeed(Turn.TurnRunner, {
    estimate: () => Effect.succeed(5),
    run: (_, emit) =>
      Turn.emitStream(
        Stream.fromIterable(Array.from({ length: words }, (_, i): Turn.TurnEmission => ({ kind: "delta", text: `w${i} ` }))).pipe(
          Stream.concat(failAfter
            ? Stream.fail(new Turn.TurnFailed({ code: "mate_failed", message: "gave up midway" }))
            : Stream.succeed<Turn.TurnEmission>({ kind: "cost", credits: 3 }))
        ),
        emit
      )
  })

const chatOf = (id: string) => Effect.map(Chat.client, (client) => client(id))
const grant = (user: string, amount: number) =>
  Effect.flatMap(Credit.client, (client) => client(user).Grant(new Grant({ key: `g-${user}-${amount}`, amount, reason: "test" })))
const balance = (user: string) => Effect.flatMap(Credit.client, (client) => client(user).Balance())

/** Events from `afterSeq` until (and including) the first event matching `until`. */
const eventsUntil = (chatId: string, afterSeq: number, until: (e: ChatEvent) => boolean) =>
  Effect.flatMap(chatOf(chatId), (chat) =>
    chat.Events({ afterSeq }).pipe(
      Stream.takeUntil(until),
      Stream.runCollect,
      Effect.map(Chunk.toReadonlyArray),
      Effect.timeout("20 seconds")
    ))

/**
 * What a runner that died while a turn ran leaves behind: the user's message and a `running` turn
 * (started `attempts` times), and no RunTurn anywhere.
 */
const leaveRunningTurn = (chatId: string, owner: string, turnId: string, options: { readonly seq: number; readonly attempts: number }) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.zipRight(
      sql`INSERT INTO chat_messages (chat_id, message_id, client_message_id, role, author_id, turn_id, seq, body)
        VALUES (${chatId}, ${`m-${turnId}`}, ${`c-${turnId}`}, 'user', ${owner}, ${turnId}, ${options.seq}, NULL)`,
      sql`INSERT INTO chat_turns (chat_id, turn_id, message_id, mate_id, account_id, status, attempts, hold_key)
        VALUES (${chatId}, ${turnId}, ${`m-${turnId}`}, 'echo', ${owner}, 'running', ${options.attempts}, ${`chat:${chatId}:${turnId}`})`
    ))

/** A turn's stored status and attempt count. */
const storedTurn = (turnId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ status: string; attempts: number }>`SELECT status, attempts FROM chat_turns WHERE turn_id = ${turnId}`, (rows) => rows[0]))

const ended = (e: ChatEvent) => e.kind === "done" || e.kind === "cancelled" || e.kind === "error"

/** The turn sweeper as it runs by default (`TROUPE_TURN_SWEEP_INTERVAL` 1 s, `TROUPE_TURN_SWEEP_GRACE` 3 s). */
const defaultSweep = Effect.runSync(Effect.orDie(Turns.turnSweepConfig))

/** How many `Wake`s chats have handled in this process (what the turn sweeper sends). */
const wakes = Effect.map(Metric.value(Metric.tagged(Metric.tagged(entityMessages, "entity", "Chat"), "tag", "Wake")), (state) => state.count)

/**
 * A mate that says nothing for `silentMs` (a slow model, a skill that takes its time), then answers
 * and costs 2; with `opening`, it says that at once before its silence.
 */
const layerSilent = (silentMs: number, opening?: string) =>
  Layer.succeed(Turn.TurnRunner, {
    estimate: () => Effect.succeed(5),
    run: (_, emit) =>
      Effect.sync(() => opening === undefined || emit({ kind: "delta", text: opening })).pipe(
        Effect.zipRight(Effect.sleep(Duration.millis(silentMs))),
        Effect.zipRight(Effect.sync(() => {
          emit({ kind: "delta", text: "Thought it " })
          emit({ kind: "delta", text: "over." })
          emit({ kind: "cost", credits: 2 })
        }))
      )
  })

describe("Chat entity", () => {
  it.live("answers a post through the journal and charges the turn once", () =>
    Effect.gen(function*() {
      yield* grant("alice", 100)
      const chat = yield* chatOf("chat-a")
      yield* chat.Create(new Create({ ownerId: "alice", mateId: "echo" }))
      const posted = yield* chat.Post(new Post({ clientMessageId: "c1", authorId: "alice", text: "hello there mate" }))
      expect(posted).toMatchObject({ seq: 1, duplicate: false })
      const events = yield* eventsUntil("chat-a", 0, ended)
      // streamed text arrives as one or more deltas (merged when they come close together)
      expect(events.map((e) => e.kind).join(",")).toMatch(/^message_stored,turn_started,(delta,)+message_stored,charge,done$/)
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
      const reply = events.filter((e) => e.kind === "delta").map((e) => (e.kind === "delta" ? e.text : "")).join("")
      expect(reply).toBe("You said: hello there mate")
      const charge = events.find((e) => e.kind === "charge")
      expect(charge).toMatchObject({ amount: 1, held: 2 })
      expect(yield* balance("alice")).toMatchObject({ available: 99, reserved: 0 })

      const history = yield* chat.History({ limit: 50 })
      expect(history.messages.map((m) => [m.role, m.text, m.status])).toEqual([
        ["user", "hello there mate", "done"],
        ["mate", "You said: hello there mate", "done"]
      ])
      const summary = yield* chat.Summary()
      expect(summary).toMatchObject({ title: "hello there mate", lastSeq: events.length, runningTurn: null })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("creates one message and one charge for a post sent twice", () =>
    Effect.gen(function*() {
      yield* grant("bob", 100)
      const chat = yield* chatOf("chat-dup")
      yield* chat.Create(new Create({ ownerId: "bob", mateId: "echo" }))
      const post = new Post({ clientMessageId: "same", authorId: "bob", text: "only once" })
      // the handler itself sees every send: Post is volatile, so nothing de-duplicates in front of it
      const [a, b] = yield* Effect.all([chat.Post(post), chat.Post(post)], { concurrency: 2 })
      expect(a.turnId).toBe(b.turnId)
      expect([a.duplicate, b.duplicate].sort()).toEqual([false, true])
      yield* eventsUntil("chat-dup", 0, ended)
      const again = yield* chat.Post(post)
      expect(again).toMatchObject({ turnId: a.turnId, duplicate: true })
      const sql = yield* SqlClient.SqlClient
      const messages = yield* sql`SELECT 1 FROM chat_messages WHERE chat_id = 'chat-dup' AND role = 'user'`
      const settles = yield* sql`SELECT 1 FROM credit_ledger WHERE account_id = 'bob' AND kind = 'settle'`
      expect(messages).toHaveLength(1)
      expect(settles.length).toBeGreaterThan(0)
      const holds = yield* sql`SELECT status FROM credit_holds WHERE account_id = 'bob'`
      expect(holds).toEqual([{ status: "settled" }])
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("cancels a running turn, releasing its hold", () =>
    Effect.gen(function*() {
      yield* grant("carol", 100)
      const chat = yield* chatOf("chat-cancel")
      yield* chat.Create(new Create({ ownerId: "carol", mateId: "echo" }))
      const long = Array.from({ length: 300 }, (_, i) => `w${i}`).join(" ")
      const posted = yield* chat.Post(new Post({ clientMessageId: "long", authorId: "carol", text: long }))
      yield* eventsUntil("chat-cancel", 0, (e) => e.kind === "delta")
      expect(yield* Effect.flip(chat.Post(new Post({ clientMessageId: "second", authorId: "carol", text: "wait" })))).toMatchObject({ _tag: "TurnInProgress" })
      expect(yield* chat.Cancel(new Cancel({ turnId: posted.turnId, byUserId: "carol" }))).toBe("cancelled")
      const events = yield* eventsUntil("chat-cancel", 0, ended)
      expect(events[events.length - 1]!.kind).toBe("cancelled")
      expect(events.some((e) => e.kind === "charge")).toBe(false)
      expect(yield* balance("carol")).toMatchObject({ available: 100, reserved: 0 })
      // the chat takes posts again
      yield* chat.Post(new Post({ clientMessageId: "after", authorId: "carol", text: "again" }))
      const more = yield* eventsUntil("chat-cancel", events[events.length - 1]!.seq, ended)
      expect(more[more.length - 1]!.kind).toBe("done")
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("fails a turn without credits or when the mate fails, and releases what it held", () =>
    Effect.gen(function*() {
      const chat = yield* chatOf("chat-fail")
      yield* chat.Create(new Create({ ownerId: "dave", mateId: "echo" }))
      yield* chat.Post(new Post({ clientMessageId: "broke", authorId: "dave", text: "hi" }))
      const first = yield* eventsUntil("chat-fail", 0, ended)
      expect(first[first.length - 1]).toMatchObject({ kind: "error", code: "insufficient_credits" })

      yield* grant("dave", 10)
      yield* chat.Post(new Post({ clientMessageId: "boom", authorId: "dave", text: "/fail please" }))
      const second = yield* eventsUntil("chat-fail", first[first.length - 1]!.seq, ended)
      expect(second[second.length - 1]).toMatchObject({ kind: "error", code: "mate_failed" })
      expect(yield* balance("dave")).toMatchObject({ available: 10, reserved: 0 })
      const history = yield* chat.History({ limit: 10 })
      expect(history.messages.map((m) => m.status)).toEqual(["failed", "failed"])
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("journals a fast stream in a few transactions, in order", () =>
    Effect.gen(function*() {
      yield* grant("fay", 100)
      const chat = yield* chatOf("chat-burst")
      yield* chat.Create(new Create({ ownerId: "fay", mateId: "echo" }))
      yield* chat.Post(new Post({ clientMessageId: "b1", authorId: "fay", text: "go" }))
      const events = yield* eventsUntil("chat-burst", 0, ended)
      const deltas = events.filter((e) => e.kind === "delta")
      const expected = Array.from({ length: 500 }, (_, i) => `w${i} `).join("")
      expect(deltas.map((e) => (e.kind === "delta" ? e.text : "")).join("")).toBe(expected)
      expect(deltas.length).toBeLessThan(20) // 500 deltas arriving at once are not 500 transactions
      expect(events[events.length - 1]).toMatchObject({ kind: "done" })
      expect(events.find((e) => e.kind === "charge")).toMatchObject({ amount: 3 })
      const history = yield* chat.History({ limit: 10 })
      expect(history.messages[1]).toMatchObject({ role: "mate", text: expected })
    }).pipe(Effect.provide(cluster(layerBurst(500)))), { timeout: 60_000 })

  it.live("writes a steady stream's first word at once, then at most ten writes a second", () => {
    // a model at 100 tokens/s after its first token: one word, a pause shorter than the delta window, 60 more
    const paced = Layer.succeed(Turn.TurnRunner, {
      estimate: () => Effect.succeed(5),
      run: (_, emit) =>
        Effect.async<void>((resume) => {
          let next = 0
          let timer: ReturnType<typeof setTimeout> | undefined
          const say = () => {
            emit({ kind: "delta", text: `w${next++} ` })
            if (next <= 60) {
              timer = setTimeout(say, next === 1 ? 80 : 10)
              return
            }
            emit({ kind: "cost", credits: 1 })
            resume(Effect.void)
          }
          say()
          return Effect.sync(() => clearTimeout(timer))
        })
    })
    return Effect.gen(function*() {
      yield* grant("max", 100)
      const chat = yield* chatOf("chat-paced")
      yield* chat.Create(new Create({ ownerId: "max", mateId: "echo" }))
      yield* chat.Post(new Post({ clientMessageId: "p1", authorId: "max", text: "go" }))
      const events = yield* eventsUntil("chat-paced", 0, ended)
      const deltas = events.filter((e) => e.kind === "delta").map((e) => (e.kind === "delta" ? e.text : ""))
      expect(deltas.join("")).toBe(Array.from({ length: 61 }, (_, i) => `w${i} `).join(""))
      // the first word did not wait for the window (the next one came 80 ms later)
      expect(deltas[0]).toBe("w0 ")
      // ~0.7 s of streaming in at most one write per 100 ms (the last ones ride in the turn's final write)
      const streamedMs = new Date(events.at(-1)!.at).getTime() - new Date(events.find((e) => e.kind === "delta")!.at).getTime()
      expect(deltas.length).toBeLessThanOrEqual(Math.ceil(streamedMs / 100) + 1)
      expect(deltas.length).toBeLessThan(12)
    }).pipe(Effect.provide(cluster(paced)))
  }, { timeout: 60_000 })

  it.live("runs a turn's start as interactive work, and the rest, once its first output is journaled, as background work", () => {
    const seen: Array<{ readonly phased: boolean; readonly interactive: boolean }> = []
    const look = Effect.map(FiberRef.get(FiberRef.currentScheduler), (scheduler) => {
      seen.push({ phased: scheduler instanceof Phased, interactive: scheduler instanceof Phased && scheduler.interactive })
    })
    const recording = Layer.succeed(Turn.TurnRunner, {
      estimate: () => Effect.succeed(2),
      run: (_, emit) =>
        Effect.gen(function*() {
          yield* look
          emit({ kind: "delta", text: "fine" })
          // the first output is written at once; after it, the turn is background work
          yield* Effect.sleep("300 millis")
          yield* look
          emit({ kind: "cost", credits: 1 })
        })
    })
    return Effect.gen(function*() {
      yield* grant("hal", 100)
      const chat = yield* chatOf("chat-background")
      yield* chat.Create(new Create({ ownerId: "hal", mateId: "echo" }))
      const slicesBefore = background.slices
      yield* chat.Post(new Post({ clientMessageId: "h1", authorId: "hal", text: "hi" }))
      const events = yield* eventsUntil("chat-background", 0, ended)
      expect(events.map((e) => e.kind)).toEqual(["message_stored", "turn_started", "delta", "message_stored", "charge", "done"])
      expect(seen).toEqual([{ phased: true, interactive: true }, { phased: true, interactive: false }])
      // the rest of the turn ran in the background scheduler's slices
      expect(background.slices).toBeGreaterThan(slicesBefore)
      // the request that started it did not run there
      expect(yield* FiberRef.get(FiberRef.currentScheduler)).not.toBeInstanceOf(Phased)
    }).pipe(Effect.provide(cluster(recording)))
  }, { timeout: 60_000 })

  it.live("runs a turn left running with nothing running it (its runner died) once the turn sweeper wakes its chat", () =>
    Effect.gen(function*() {
      yield* grant("ivy", 100)
      const chat = yield* chatOf("chat-orphan")
      yield* chat.Create(new Create({ ownerId: "ivy", mateId: "echo" }))
      yield* chat.Post(new Post({ clientMessageId: "o1", authorId: "ivy", text: "first" }))
      const first = yield* eventsUntil("chat-orphan", 0, ended)
      // a runner died right after storing a post (the chat itself stays alive here)
      yield* leaveRunningTurn("chat-orphan", "ivy", "t-orphan", { seq: first.length, attempts: 0 })
      const events = yield* eventsUntil("chat-orphan", first.length, ended)
      expect(events.map((e) => e.kind).join(",")).toMatch(/^turn_started,(delta,)+message_stored,charge,done$/)
      expect(events.every((e) => e.turnId === "t-orphan")).toBe(true)
      expect(yield* storedTurn("t-orphan")).toEqual({ status: "done", attempts: 1 })
      expect(yield* balance("ivy")).toMatchObject({ available: 98, reserved: 0 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("leaves a live turn that is silent for several sweeps alone (its heartbeat), then finishes it once, charged once", () =>
    Effect.gen(function*() {
      const silentMs = 2 * Duration.toMillis(defaultSweep.grace) + 1000
      yield* grant("kim", 100)
      const chat = yield* chatOf("chat-silent")
      yield* chat.Create(new Create({ ownerId: "kim", mateId: "echo" }))
      const sql = yield* SqlClient.SqlClient
      const posted = yield* chat.Post(new Post({ clientMessageId: "s1", authorId: "kim", text: "take your time" }))
      yield* eventsUntil("chat-silent", 0, (e) => e.kind === "turn_started")
      const running = yield* sql<{ chat_id: string }>`SELECT chat_id FROM chat_turns WHERE status = 'running'`
      expect(running.map((r) => r.chat_id)).toEqual(["chat-silent"])
      const wakesBefore = yield* wakes
      // the mate is silent for more than twice the sweeper's grace: without a heartbeat, the chat would be woken over and over
      const events = yield* eventsUntil("chat-silent", 0, ended).pipe(Effect.timeout(Duration.millis(silentMs + 20_000)))
      expect(yield* wakes, "Wake messages the sweeper sent during the silence").toBe(wakesBefore)
      expect(events.map((e) => e.kind)).toEqual(["message_stored", "turn_started", "delta", "message_stored", "charge", "done"])
      expect(events.every((e) => e.turnId === posted.turnId)).toBe(true)
      expect(events[2]).toMatchObject({ kind: "delta", text: "Thought it over." })
      expect(events.find((e) => e.kind === "charge")).toMatchObject({ amount: 2, held: 5 })
      expect(yield* storedTurn(posted.turnId)).toEqual({ status: "done", attempts: 1 })
      expect(yield* balance("kim")).toMatchObject({ available: 98, reserved: 0 })
      const settles = yield* sql`SELECT 1 FROM credit_holds WHERE account_id = 'kim' AND status = 'settled'`
      expect(settles).toHaveLength(1)
    }).pipe(Effect.provide(cluster(layerSilent(2 * Duration.toMillis(defaultSweep.grace) + 1000), defaultSweep))), { timeout: 90_000 })

  it.live("still recovers a turn whose runner died right after its last heartbeat, within the sweeper's grace", () =>
    Effect.gen(function*() {
      yield* grant("lea", 100)
      const chat = yield* chatOf("chat-dead-beat")
      yield* chat.Create(new Create({ ownerId: "lea", mateId: "echo" }))
      // a runner that was running this turn (it had just said it was alive) and died: nothing runs it now
      const sql = yield* SqlClient.SqlClient
      yield* leaveRunningTurn("chat-dead-beat", "lea", "t-dead-beat", { seq: 0, attempts: 1 })
      yield* sql`UPDATE chat_turns SET heartbeat_at = now() WHERE turn_id = 't-dead-beat'`
      yield* sql`UPDATE chats SET updated_at = now() WHERE chat_id = 'chat-dead-beat'`
      const diedAt = Date.now()
      const events = yield* eventsUntil("chat-dead-beat", 0, ended)
      const recoveredMs = Date.now() - diedAt
      expect(events.map((e) => e.kind).join(",")).toMatch(/^restarted,(delta,)+message_stored,charge,done$/)
      expect(events[0]).toMatchObject({ kind: "restarted", attempt: 2, turnId: "t-dead-beat" })
      expect(yield* storedTurn("t-dead-beat")).toEqual({ status: "done", attempts: 2 })
      expect(yield* balance("lea")).toMatchObject({ reserved: 0 })
      // woken once the heartbeat was older than the grace: seconds, not minutes
      expect(recoveredMs).toBeGreaterThanOrEqual(Duration.toMillis(defaultSweep.grace) - 500)
      expect(recoveredMs).toBeLessThan(Duration.toMillis(defaultSweep.grace) + Duration.toMillis(defaultSweep.interval) + 10_000)
    }).pipe(Effect.provide(cluster(Turn.layerEcho({ delay: "10 millis" }), defaultSweep))), { timeout: 90_000 })

  // a shard handed over before this runner's turn stopped: another runner took the chat over and
  // wrote to it, so this runner's next write is refused (mid-answer, or as it ends the turn)
  for (const moved of [
    { at: "mid-answer", opening: "Let me see. ", after: "delta", kinds: "message_stored,turn_started,delta,restarted,delta,delta,message_stored,charge,done" },
    { at: "as it ends the turn", opening: undefined, after: "turn_started", kinds: "message_stored,turn_started,restarted,delta,message_stored,charge,done" }
  ] as const) {
    it.live(`leaves a turn to the chat's other writer when the journal moves under it ${moved.at}: not failed, run again, charged once`, () =>
      Effect.gen(function*() {
        const owner = moved.opening ? "nia" : "ned"
        const chatId = `chat-moved-${owner}`
        yield* grant(owner, 100)
        const chat = yield* chatOf(chatId)
        yield* chat.Create(new Create({ ownerId: owner, mateId: "echo" }))
        const posted = yield* chat.Post(new Post({ clientMessageId: "mv1", authorId: owner, text: "take your time" }))
        yield* eventsUntil(chatId, 0, (e) => e.kind === moved.after)
        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE chats SET last_seq = last_seq + 1, updated_at = now() WHERE chat_id = ${chatId}`
        const events = yield* eventsUntil(chatId, 0, ended)
        // the refused attempt neither ended the turn nor gave its hold back: the turn ran again
        expect(events.map((e) => e.kind).join(",")).toBe(moved.kinds)
        expect(events.every((e) => e.turnId === posted.turnId)).toBe(true)
        expect(events.find((e) => e.kind === "charge")).toMatchObject({ amount: 2, held: 5 })
        expect(yield* storedTurn(posted.turnId)).toEqual({ status: "done", attempts: 2 })
        expect(yield* balance(owner)).toMatchObject({ available: 98, reserved: 0 })
        const holds = yield* sql<{ status: string }>`SELECT status FROM credit_holds WHERE account_id = ${owner}`
        expect(holds).toEqual([{ status: "settled" }])
      }).pipe(Effect.provide(cluster(layerSilent(1500, moved.opening)))), { timeout: 60_000 })
  }

  it.live("gives up a turn whose every attempt died, instead of retrying it forever", () =>
    Effect.gen(function*() {
      yield* grant("jon", 100)
      const chat = yield* chatOf("chat-poison")
      yield* chat.Create(new Create({ ownerId: "jon", mateId: "echo" }))
      // a turn started five times, each attempt's runner gone before its end
      yield* leaveRunningTurn("chat-poison", "jon", "t-poison", { seq: 0, attempts: 5 })
      const events = yield* eventsUntil("chat-poison", 0, ended)
      expect(events).toHaveLength(1)
      expect(events[0]).toMatchObject({ kind: "error", code: "turn_abandoned", turnId: "t-poison" })
      expect(yield* storedTurn("t-poison")).toEqual({ status: "failed", attempts: 5 })
      expect(yield* balance("jon")).toMatchObject({ available: 100, reserved: 0 })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("keeps the deltas a mate sent before it failed, and charges nothing", () =>
    Effect.gen(function*() {
      yield* grant("gus", 100)
      const chat = yield* chatOf("chat-burst-fail")
      yield* chat.Create(new Create({ ownerId: "gus", mateId: "echo" }))
      yield* chat.Post(new Post({ clientMessageId: "b1", authorId: "gus", text: "go" }))
      const events = yield* eventsUntil("chat-burst-fail", 0, ended)
      const text = events.filter((e) => e.kind === "delta").map((e) => (e.kind === "delta" ? e.text : "")).join("")
      expect(text).toBe(Array.from({ length: 50 }, (_, i) => `w${i} `).join(""))
      expect(events[events.length - 1]).toMatchObject({ kind: "error", code: "mate_failed" })
      expect(yield* balance("gus")).toMatchObject({ available: 100, reserved: 0 })
    }).pipe(Effect.provide(cluster(layerBurst(50, true)))), { timeout: 60_000 })

  it.live("keeps a gap-free journal that readers can resume from any sequence number", () =>
    Effect.gen(function*() {
      yield* grant("erin", 100)
      const chat = yield* chatOf("chat-journal")
      yield* chat.Create(new Create({ ownerId: "erin", mateId: "echo" }))
      // a reader that follows the whole time, while the chat is busy
      const follower = yield* Effect.fork(
        chat.Events({ afterSeq: 0 }).pipe(Stream.take(16), Stream.runCollect, Effect.map(Chunk.toReadonlyArray), Effect.timeout("30 seconds"))
      )
      let last = 0
      for (let i = 0; i < 4; i++) {
        yield* chat.Post(new Post({ clientMessageId: `m${i}`, authorId: "erin", text: `message ${i}` }))
        const events = yield* eventsUntil("chat-journal", last, ended)
        last = events[events.length - 1]!.seq
      }
      const all = yield* eventsUntil("chat-journal", 0, (e) => e.seq === last)
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1))
      const resumed = yield* eventsUntil("chat-journal", 7, (e) => e.seq === last)
      expect(resumed.map((e) => e.seq)).toEqual(all.slice(7).map((e) => e.seq))
      const followed = yield* Fiber.join(follower)
      expect(followed.map((e) => e.seq)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1))
      const sql = yield* SqlClient.SqlClient
      const gaps = yield* sql<{ n: string }>`
        SELECT count(*) AS n FROM chat_events e WHERE e.chat_id = 'chat-journal' AND e.seq > 1
        AND NOT EXISTS (SELECT 1 FROM chat_events p WHERE p.chat_id = e.chat_id AND p.seq = e.seq - 1)`
      expect(Number(gaps[0]!.n)).toBe(0)
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("deletes a message's content", () =>
    Effect.gen(function*() {
      yield* grant("fay", 10)
      const chat = yield* chatOf("chat-del-msg")
      yield* chat.Create(new Create({ ownerId: "fay", mateId: "echo" }))
      const posted = yield* chat.Post(new Post({ clientMessageId: "x", authorId: "fay", text: "regrettable" }))
      const events = yield* eventsUntil("chat-del-msg", 0, ended)
      yield* chat.DeleteMessage(new DeleteMessage({ messageId: posted.messageId, byUserId: "fay" }))
      const after = yield* eventsUntil("chat-del-msg", events[events.length - 1]!.seq, (e) => e.kind === "message_deleted")
      expect(after).toMatchObject([{ kind: "message_deleted", messageId: posted.messageId }])
      const history = yield* chat.History({ limit: 10 })
      expect(history.messages.map((m) => m.role)).toEqual(["mate"])
      expect(yield* Effect.flip(chat.DeleteMessage(new DeleteMessage({ messageId: posted.messageId, byUserId: "eve" })))).toMatchObject({ _tag: "NotChatOwner" })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("crypto-shreds a deleted chat: rows stay as unreadable ciphertext, reads say ChatNotFound", () =>
    Effect.gen(function*() {
      yield* grant("gus", 10)
      const chat = yield* chatOf("chat-shred")
      const sentence = "The treasure is buried under the old oak tree"
      yield* chat.Create(new Create({ ownerId: "gus", mateId: "echo", title: "secret plans" }))
      yield* chat.Post(new Post({ clientMessageId: "s", authorId: "gus", text: sentence }))
      yield* eventsUntil("chat-shred", 0, ended)
      const share = yield* chat.Share({ byUserId: "gus" })
      const [, shareId] = share.token.split(".")

      // the share decrypts with the key from the link, and only with it
      const snapshot = yield* chat.ReadShare({ shareId: shareId! })
      const sealed = Buffer.from(snapshot.ciphertext, "base64url")
      const key = yield* Effect.promise(() => crypto.subtle.importKey("raw", Buffer.from(share.key, "base64url"), "AES-GCM", false, ["decrypt"]))
      const plain = yield* Effect.promise(() => crypto.subtle.decrypt({ name: "AES-GCM", iv: sealed.subarray(0, 12) }, key, sealed.subarray(12)))
      expect(JSON.parse(new TextDecoder().decode(plain))).toMatchObject({ title: "secret plans", messages: [{ role: "user", text: sentence }, { role: "mate" }] })

      yield* chat.Delete(new Delete({ byUserId: "gus" }))
      expect(yield* Effect.flip(chat.Summary())).toMatchObject({ _tag: "ChatNotFound" })
      expect(yield* Effect.flip(chat.History({ limit: 5 }))).toMatchObject({ _tag: "ChatNotFound" })
      expect(yield* Effect.flip(chat.Post(new Post({ clientMessageId: "late", authorId: "gus", text: "hi" })))).toMatchObject({ _tag: "ChatNotFound" })
      expect(yield* Effect.flip(chat.ReadShare({ shareId: shareId! }))).toMatchObject({ _tag: "ShareNotFound" })
      const eventsError = yield* Effect.flip(chat.Events({ afterSeq: 0 }).pipe(Stream.runDrain))
      expect(eventsError).toMatchObject({ _tag: "ChatNotFound" })

      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ body: Uint8Array; seq: string }>`SELECT body, seq FROM chat_events WHERE chat_id = 'chat-shred'`
      expect(rows.length).toBeGreaterThan(5)
      const keys = yield* KeyRing
      for (const row of rows) {
        expect(Buffer.from(row.body).includes(Buffer.from("treasure"))).toBe(false)
        expect(yield* Effect.flip(keys.decryptText(row.body, `chat-shred:event:${row.seq}`))).toMatchObject({ _tag: "DataKeyDestroyed" })
      }
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("leaves no plaintext of a chat anywhere in the database", () =>
    Effect.gen(function*() {
      yield* grant("hal", 10)
      const chat = yield* chatOf("chat-scan")
      const sentence = "Purple elephants dance at midnight in Reykjavik"
      yield* chat.Create(new Create({ ownerId: "hal", mateId: "echo", title: "Reykjavik trip" }))
      yield* chat.Post(new Post({ clientMessageId: "p", authorId: "hal", text: sentence }))
      yield* eventsUntil("chat-scan", 0, ended)
      yield* chat.Share({ byUserId: "hal" })
      const sql = yield* SqlClient.SqlClient
      const tables = yield* sql<{ table_name: string }>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`
      let scanned = 0
      for (const { table_name } of tables) {
        const rows = yield* sql.unsafe<Record<string, unknown>>(`SELECT * FROM "${table_name}"`)
        for (const row of rows) {
          for (const value of Object.values(row)) {
            const text = value instanceof Uint8Array ? Buffer.from(value).toString("latin1") : typeof value === "string" ? value : JSON.stringify(value) ?? ""
            scanned++
            expect(text.includes("Reykjavik"), `${table_name} holds plaintext`).toBe(false)
            expect(text.includes("elephants"), `${table_name} holds plaintext`).toBe(false)
          }
        }
      }
      expect(scanned).toBeGreaterThan(100)
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })
})
