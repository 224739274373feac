/**
 * The Chat entity's behaviour.
 *
 * - Every state change goes through the entity's writer lock and one SQL transaction, and every
 *   event is journaled with the next sequence number in that transaction: the journal has no
 *   gaps and no duplicates.
 * - `Post` stores the user's message and a `running` turn in one transaction, then sends the
 *   chat `RunTurn` (not persisted: storing it cost six SQL round trips per turn). The journal is
 *   what survives: a chat that starts runs its `running` turns, and the turn sweeper (a cluster
 *   singleton) wakes chats whose turns have been `running` a while, so a turn whose runner died
 *   runs again on the next owner, which records `restarted`. The turn's hold is keyed by the
 *   turn, so a replay never reserves or charges twice. Turns run as background work
 *   (`runtime/Background.ts`): requests resume before their steps.
 * - A turn reserves credits before it starts and settles (success) or releases them (cancel,
 *   failure, deletion).
 * - Bodies are encrypted with the chat's own data key; `Delete` destroys it (crypto-shredding).
 *
 * Share links: `Share` returns `token` = `<chatId>.<shareId>` and `key` (base64url, 32 bytes);
 * the page is `/s/<token>#<key>`. `ReadShare` returns the snapshot as base64url of
 * `nonce (12 bytes) ‖ AES-256-GCM(JSON)`; only the holder of the link's fragment can read it.
 */
import * as Entity from "@effect/cluster/Entity"
import * as Singleton from "@effect/cluster/Singleton"
import type * as Sharding from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { inBackground } from "../../runtime/Background.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import { isUniqueViolation } from "../../runtime/Database.ts"
import { instrument } from "../../runtime/EntityMetrics.ts"
import * as Ids from "../../runtime/Ids.ts"
import { KeyRing } from "../../runtime/KeyRing.ts"
import { Credit, Release, Reserve, Settle, SpendScope } from "../credit/protocol.ts"
import {
  Chat,
  ChatEvent,
  ChatExists,
  ChatMessage,
  ChatNotFound,
  ChatSummary,
  type EventBody,
  HistoryPage,
  MessageNotFound,
  NotChatOwner,
  Posted,
  RunTurn,
  ShareCreated,
  SharedSnapshot,
  ShareNotFound,
  TurnInProgress,
  TurnNotFound,
  type TurnStatus
} from "./protocol.ts"
import * as Repo from "./repo.ts"
import { type TurnEmission, type TurnFailed, type TurnInput, TurnRunner } from "./turn.ts"

/** Streamed output is journaled at most once per this many ms (fewer, larger transactions). */
const deltaWindowMs = 30

/** Marks the end of a turn's emissions in its journaling queue. */
const endOfTurn: unique symbol = Symbol("endOfTurn")

/** Attempts after which a turn that never finishes (its runner keeps dying) is failed, not retried. */
const maxTurnAttempts = 5

/** How many earlier messages a turn sees. */
const historyWindow = 20

const decodeEvent = Schema.decodeUnknown(ChatEvent)

type Published = { readonly _tag: "event"; readonly event: ChatEvent } | { readonly _tag: "deleted" }

/** A turn's output so far: the reply's text, the cost reported, emissions not journaled yet. */
interface Progress {
  reply: string
  cost: number
  pending: ReadonlyArray<EventBody>
}

interface RunningTurn {
  fiber: Fiber.RuntimeFiber<void, unknown> | undefined
  cancelRequested: boolean
  readonly done: Deferred.Deferred<TurnStatus>
}

/** Host Chat entities. */
export const layer: Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient | KeyRing | TurnRunner> = Chat.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const chatId = address.entityId
    const repo = yield* Repo.make(chatId)
    const keys = yield* KeyRing
    const mates = yield* TurnRunner
    const credits = yield* Credit.client
    const self = (yield* Chat.client)(chatId)
    const writer = yield* Effect.makeSemaphore(1)
    const live = yield* PubSub.unbounded<Published>()
    const running = new Map<string, RunningTurn>()
    const keyId = `chat:${chatId}`
    const aad = (what: string) => `${chatId}:${what}`
    let state = yield* Effect.orDie(repo.chat)
    /** The turn in progress, if any (this entity is the only writer of its turns). */
    let busy: string | null = (yield* Effect.orDie(repo.runningTurns))[0]?.turnId ?? null

    const requireChat = Effect.suspend(() =>
      state && !state.deleted ? Effect.succeed(state) : Effect.fail(new ChatNotFound({ chatId }))
    )
    const requireOwner = (userId: string) =>
      Effect.flatMap(requireChat, (chat) => (chat.ownerId === userId ? Effect.succeed(chat) : Effect.fail(new NotChatOwner({ chatId }))))

    const encrypt = (text: string, what: string) => keys.encryptText(keyId, text, aad(what))
    const decrypt = (cipher: Uint8Array, what: string) => keys.decryptText(cipher, aad(what))

    /**
     * Journal events (and any other writes) in one transaction, then publish them. Callers hold
     * the writer lock. Sequence numbers come from memory (this entity is the chat's only
     * writer); the chat row's counter moves only if it still holds the number we started from,
     * so a second writer could never interleave, and nothing moves unless all commits.
     */
    const journal = (
      turnId: string | null,
      bodies: ReadonlyArray<EventBody>,
      extras: (seqs: ReadonlyArray<number>) => ReadonlyArray<Repo.JournalExtra> = () => [],
      finish?: { readonly status: TurnStatus; readonly charged: number | null; readonly replyMessageId: string | null }
    ): Effect.Effect<{ readonly seqs: ReadonlyArray<number>; readonly finished: boolean }, SqlError> =>
      Effect.gen(function*() {
        const chat = yield* Effect.orDie(requireChat)
        const at = new Date()
        const base = chat.lastSeq
        const seqs = bodies.map((_, i) => base + i + 1)
        const events = yield* Effect.forEach(bodies, (body, i) => {
          const { kind, ...rest } = body
          return Effect.map(Effect.orDie(encrypt(JSON.stringify(rest), `event:${seqs[i]}`)), (cipher) => ({ seq: seqs[i]!, turnId, kind, body: cipher }))
        })
        const result = yield* repo.writeJournal({
          from: base,
          events,
          extras: extras(seqs),
          finish: finish && turnId !== null ? { turnId, ...finish } : undefined
        })
        if (!result.written) {
          if (finish && !result.finished) return { seqs: [], finished: false }
          return yield* Effect.dieMessage(`chat ${chatId}: sequence moved under a second writer`)
        }
        if (state && bodies.length > 0) state = { ...state, lastSeq: base + bodies.length, updatedAt: at }
        // one batch, one chunk for the streams that follow this chat (and one acknowledgement each)
        if (bodies.length > 0) {
          yield* PubSub.publishAll(live, bodies.map((body, i): Published => ({ _tag: "event", event: { ...body, seq: seqs[i]!, turnId, at } as ChatEvent })))
        }
        return { seqs, finished: true }
      }).pipe(
        // a cancel interrupts a turn between writes, never between a commit and the memory that follows it
        Effect.uninterruptible
      )

    const toEvent = (row: Repo.EventRow) =>
      Effect.gen(function*() {
        const body = JSON.parse(yield* decrypt(row.body, `event:${row.seq}`)) as Record<string, unknown>
        return yield* decodeEvent({ ...body, kind: row.kind, seq: row.seq, turnId: row.turnId, at: row.createdAt.getTime() })
      })

    /** Turns created here since the entity started (saves reading them back). */
    const knownTurns = new Map<string, Repo.TurnRow>()

    /** What the mate needs: the message and the messages before it. */
    const turnInput = (turn: Repo.TurnRow) =>
      Effect.gen(function*() {
        const chat = yield* requireChat
        const rows = yield* repo.turnContext(turn.messageId, historyWindow)
        const decrypted = yield* Effect.forEach(rows, (m) =>
          m.body ? Effect.map(decrypt(m.body, `message:${m.messageId}`), (text) => ({ id: m.messageId, role: m.role, text })) : Effect.succeed(undefined))
        const present = decrypted.filter((m) => m !== undefined)
        const current = present.find((m) => m.id === turn.messageId)
        const input: TurnInput = {
          chatId,
          turnId: turn.turnId,
          mateId: turn.mateId,
          ownerId: chat.ownerId,
          accountId: turn.accountId,
          text: current?.text ?? "",
          history: present.filter((m) => m.id !== turn.messageId).map(({ role, text }) => ({ role, text }))
        }
        return input
      })

    const hold = (turn: Repo.TurnRow) => credits(turn.accountId)

    /**
     * End a turn once: its last events, the mate's reply (if any) and its status in one
     * transaction. The reply's id is fixed per turn, so a restarted turn replaces its text.
     * `leading` are the mate's last emissions, not journaled yet: they come first.
     */
    const finish = (
      turn: Repo.TurnRow,
      status: TurnStatus,
      bodies: ReadonlyArray<EventBody>,
      charged: number | null,
      reply: string | null,
      leading: ReadonlyArray<EventBody> = []
    ) =>
      writer.withPermits(1)(
        Effect.gen(function*() {
          const replyId = reply === null ? null : `${turn.turnId}r`
          const all: ReadonlyArray<EventBody> = replyId === null || reply === null
            ? [...leading, ...bodies]
            : [...leading, { kind: "message_stored", messageId: replyId, role: "mate", authorId: turn.mateId, text: reply }, ...bodies.map((b) => (b.kind === "done" || b.kind === "cancelled" ? { ...b, messageId: replyId } : b))]
          const replyBody = replyId !== null && reply !== null ? yield* Effect.orDie(encrypt(reply, `message:${replyId}`)) : null
          const { finished } = yield* Effect.orDie(journal(
            turn.turnId,
            all,
            (seqs) => (replyId !== null && replyBody !== null ? [{ _tag: "UpsertReply", messageId: replyId, authorId: turn.mateId, turnId: turn.turnId, seq: seqs[leading.length]!, body: replyBody }] : []),
            { status, charged, replyMessageId: replyId }
          ))
          const ended = finished
          knownTurns.delete(turn.turnId)
          if (busy === turn.turnId) busy = null
          if (ended) return status
          return (yield* Effect.orDie(repo.turn(turn.turnId)))?.status ?? status
        })
      )

    /**
     * Journal a turn's emissions in order, consecutive deltas merged: the first one at once, then
     * at most one transaction per `deltaWindow`, taking everything that arrived meanwhile. A queue
     * between the mate and the journal does the batching (`Stream.groupedWithin` did the same at a
     * few ms of CPU per turn). The batch that ends the turn is left in `progress.pending` for the
     * turn's last transaction (one write and one stream chunk fewer per turn). Fails as the mate
     * fails, after journaling what came before (or leaving it pending).
     */
    const journalEmissions = (
      turnId: string,
      input: TurnInput,
      progress: Progress
    ): Effect.Effect<void, TurnFailed> =>
      Effect.scoped(Effect.gen(function*() {
        const queue = yield* Effect.acquireRelease(Queue.unbounded<TurnEmission | typeof endOfTurn>(), Queue.shutdown)
        const producer = yield* mates.run(input, (emission) => void Queue.unsafeOffer(queue, emission)).pipe(
          Effect.ensuring(Queue.offer(queue, endOfTurn)),
          Effect.forkScoped
        )
        let ended = false
        while (!ended) {
          const started = Date.now()
          const items = [yield* Queue.take(queue), ...(yield* Queue.takeAll(queue))]
          // the end marker is offered last, after the mate's stream is over
          ended = items[items.length - 1] === endOfTurn
          const bodies: Array<EventBody> = []
          for (const emission of items.filter((i): i is TurnEmission => i !== endOfTurn)) {
            if (emission.kind === "cost") {
              progress.cost = emission.credits
              continue
            }
            if (emission.kind === "delta") {
              progress.reply += emission.text
              const previous = bodies[bodies.length - 1]
              if (previous?.kind === "delta") {
                bodies[bodies.length - 1] = { kind: "delta", text: previous.text + emission.text }
                continue
              }
            }
            bodies.push(emission)
          }
          if (ended) progress.pending = bodies
          else if (bodies.length > 0) yield* writer.withPermits(1)(Effect.asVoid(Effect.orDie(journal(turnId, bodies))))
          const wait = deltaWindowMs - (Date.now() - started)
          if (!ended && wait > 0) yield* Effect.sleep(wait)
        }
        yield* Fiber.join(producer)
      }))

    const release = (turn: Repo.TurnRow) => retryTransient(hold(turn).ReleaseVolatile(new Release({ key: turn.holdKey }))).pipe(Effect.orDie)

    const interrupted = (progress?: Progress) => (turn: Repo.TurnRow) =>
      finish(turn, "failed", [{ kind: "error", code: "interrupted", message: "The turn's credit hold expired before it finished" }], null, progress?.reply ?? null, progress?.pending)

    /** Run one attempt of a turn to its end. */
    const runTurn = (turnId: string) =>
      Effect.gen(function*() {
        const claim = yield* writer.withPermits(1)(
          Effect.gen(function*() {
            const turn = knownTurns.get(turnId) ?? (yield* Effect.orDie(repo.turn(turnId)))
            if (!turn || turn.status !== "running" || !state || state.deleted || running.has(turnId)) return undefined
            const entry: RunningTurn = { fiber: undefined, cancelRequested: false, done: yield* Deferred.make<TurnStatus>() }
            running.set(turnId, entry)
            // a later attempt reads the row again (its attempt count)
            knownTurns.delete(turnId)
            return { turn, entry }
          })
        )
        if (!claim) return
        const { entry, turn } = claim
        const status = yield* Effect.gen(function*() {
          if (turn.attempts >= maxTurnAttempts) {
            // every attempt so far took its runner down (or never got to its end): stop retrying
            yield* Effect.logError("Turn given up after repeated attempts").pipe(Effect.annotateLogs({ chat: chatId, turn: turnId, attempts: turn.attempts }))
            yield* release(turn)
            return yield* finish(turn, "failed", [{
              kind: "error",
              code: "turn_abandoned",
              message: `The turn was started ${turn.attempts} times and never finished`
            }], 0, null)
          }
          const input = yield* Effect.orDie(turnInput(turn))
          const reserved = turn.reserved ?? (yield* mates.estimate(input))
          const scope = turn.scopeId !== null && turn.scopeCap !== null ? new SpendScope({ id: turn.scopeId, cap: turn.scopeCap }) : undefined
          const reservation = yield* retryTransient(hold(turn).ReserveVolatile(new Reserve({ key: turn.holdKey, amount: reserved, scope }))).pipe(
            Effect.either,
            Effect.orDie
          )
          if (reservation._tag === "Left") {
            const e = reservation.left
            return yield* finish(turn, "failed", [
              e._tag === "InsufficientCredits"
                ? { kind: "error", code: "insufficient_credits", message: `This turn needs ${e.requested} credits; ${e.available} available${e.scope ? ` under ${e.scope}` : ""}` }
                : { kind: "error", code: "internal_error", message: e.message }
            ], null, null)
          }
          const held = reservation.right
          if (held.status === "released" || held.status === "expired") return yield* interrupted()(turn)

          // the attempt is counted (and announced) in one transaction
          const attempt = turn.attempts + 1
          yield* writer.withPermits(1)(
            Effect.orDie(journal(turnId, [attempt > 1 ? { kind: "restarted", attempt } : { kind: "turn_started", mateId: turn.mateId, reserved: held.amount }], () =>
              [{ _tag: "StartAttempt", turnId, reserved: held.amount }]))
          )

          const progress: Progress = { reply: "", cost: 0, pending: [] }
          const work = journalEmissions(turnId, input, progress)
          const fiber = yield* Effect.fork(work)
          entry.fiber = fiber
          if (entry.cancelRequested) yield* Fiber.interrupt(fiber)
          const exit = yield* Fiber.await(fiber)

          if (Exit.isSuccess(exit)) {
            // an earlier attempt may have been charged already: settling again changes nothing
            const settled = held.status === "settled"
              ? { _tag: "Right" as const, right: { charged: held.charged, held: held.amount } }
              : yield* retryTransient(hold(turn).SettleVolatile(new Settle({ key: turn.holdKey, actual: progress.cost }))).pipe(Effect.either, Effect.orDie)
            if (settled._tag === "Left") return yield* interrupted(progress)(turn)
            return yield* finish(turn, "done", [
              { kind: "charge", amount: settled.right.charged, held: settled.right.held },
              { kind: "done", messageId: "" }
            ], settled.right.charged, progress.reply, progress.pending)
          }
          if (Exit.isInterrupted(exit)) {
            yield* release(turn)
            return yield* finish(turn, "cancelled", [{ kind: "cancelled", messageId: null }], 0, progress.reply.length > 0 ? progress.reply : null, progress.pending)
          }
          const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
          yield* Effect.logWarning("Turn failed", exit.cause).pipe(Effect.annotateLogs({ chat: chatId, turn: turnId }))
          yield* release(turn)
          return yield* finish(turn, "failed", [{
            kind: "error",
            code: error?.code ?? "internal_error",
            message: error?.message ?? "The mate failed"
          }], 0, null, progress.pending)
        }).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => running.delete(turnId)).pipe(
              Effect.zipRight(Deferred.succeed(entry.done, Exit.isSuccess(exit) ? exit.value : "failed"))
            )
          )
        )
        return status
      })

    /** Cancel a turn that is not running in this process (not started yet, or its runner died). */
    const cancelIdle = (turn: Repo.TurnRow) =>
      Effect.zipRight(release(turn), finish(turn, "cancelled", [{ kind: "cancelled", messageId: null }], 0, null))

    function history(before: number | undefined, limit: number) {
      return Effect.gen(function*() {
        yield* requireChat
        const rows = yield* repo.history(before, limit)
        const statuses = new Map<string, TurnStatus>()
        for (const id of new Set(rows.map((r) => r.turnId))) {
          const t = yield* repo.turn(id)
          if (t) statuses.set(id, t.status)
        }
        const messages = yield* Effect.forEach(rows, (r) =>
          Effect.map(r.body ? decrypt(r.body, `message:${r.messageId}`) : Effect.succeed(""), (text) =>
            new ChatMessage({
              messageId: r.messageId,
              role: r.role,
              authorId: r.authorId,
              text,
              turnId: r.turnId,
              status: statuses.get(r.turnId) ?? "done",
              createdAt: r.createdAt
            })))
        return new HistoryPage({ messages, before: rows.length === limit && rows.length > 0 ? rows[0]!.seq : null })
      }).pipe(Effect.catchTags({ SqlError: Effect.die, KeyRingError: Effect.die, DataKeyDestroyed: () => Effect.fail(new ChatNotFound({ chatId })) }))
    }

    function summaryOf(chat: Repo.ChatRow) {
      return Effect.gen(function*() {
        const title = chat.title ? yield* decrypt(chat.title, "title") : ""
        return new ChatSummary({
          chatId,
          ownerId: chat.ownerId,
          mateId: chat.mateId,
          title,
          createdAt: chat.createdAt,
          updatedAt: chat.updatedAt,
          lastSeq: chat.lastSeq,
          runningTurn: busy
        })
      })
    }

    const summary = Effect.flatMap(requireChat, summaryOf).pipe(
      Effect.catchTags({ SqlError: Effect.die, KeyRingError: Effect.die, DataKeyDestroyed: () => Effect.fail(new ChatNotFound({ chatId })) })
    )

    /** Run the `running` turns nothing here runs (their runner died, or their `RunTurn` was lost). */
    const resumeTurns = Effect.gen(function*() {
      const turns = yield* repo.runningTurns
      for (const t of turns) {
        if (!running.has(t.turnId)) yield* self.RunTurn(new RunTurn({ turnId: t.turnId }), { discard: true })
      }
    }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("Could not resume turns", cause)))

    yield* Effect.forkScoped(resumeTurns)

    return instrument("Chat", Chat.of({
      Create: ({ payload }) =>
        writer.withPermits(1)(
          Effect.gen(function*() {
            if (state) {
              if (state.ownerId === payload.ownerId && state.mateId === payload.mateId && !state.deleted) return yield* summary
              return yield* new ChatExists({ chatId })
            }
            yield* keys.createDataKey(keyId)
            const title = payload.title ? yield* encrypt(payload.title, "title") : null
            yield* repo.insertChat({ ownerId: payload.ownerId, mateId: payload.mateId, title })
            state = yield* repo.chat
            return yield* summary
          }).pipe(Effect.catchTags({ SqlError: Effect.die, KeyRingError: Effect.die, DataKeyDestroyed: Effect.die, ChatNotFound: Effect.die }))
        ),

      Post: ({ payload }) =>
        writer.withPermits(1)(
          Effect.gen(function*() {
            const chat = yield* requireOwner(payload.authorId)
            const duplicate = Effect.flatMap(Effect.orDie(repo.messageByClientId(payload.clientMessageId)), (existing) =>
              existing
                ? Effect.succeed(new Posted({ messageId: existing.messageId, turnId: existing.turnId, seq: existing.seq, duplicate: true }))
                : Effect.dieMessage(`chat ${chatId}: client message ${payload.clientMessageId} conflicted but is not stored`))
            if (busy !== null) {
              // a retry of a post already stored (perhaps the one running) is answered, not refused
              const existing = yield* Effect.orDie(repo.messageByClientId(payload.clientMessageId))
              if (existing) return yield* duplicate
              return yield* new TurnInProgress({ turnId: busy })
            }
            const messageId = Ids.make("m")
            const turnId = Ids.make("t")
            const mateId = payload.mateId ?? chat.mateId
            const title = chat.title === null ? yield* Effect.orDie(encrypt(payload.text.replace(/\s+/g, " ").trim().slice(0, 80), "title")) : null
            const turn: Repo.TurnRow = {
              turnId,
              messageId,
              mateId,
              accountId: payload.accountId ?? payload.authorId,
              scopeId: payload.scope?.id ?? null,
              scopeCap: payload.scope?.cap ?? null,
              status: "running",
              attempts: 0,
              holdKey: `chat:${chatId}:${turnId}`,
              reserved: null,
              charged: null
            }
            const body = yield* Effect.orDie(encrypt(payload.text, `message:${messageId}`))
            // a repeated client message id violates its unique key and the whole write is refused
            const stored = yield* journal(turnId, [{ kind: "message_stored", messageId, role: "user", authorId: payload.authorId, text: payload.text }], ([seq]) => [
              { _tag: "InsertMessage", messageId, clientMessageId: payload.clientMessageId, role: "user", authorId: payload.authorId, turnId, seq: seq!, body },
              { _tag: "InsertTurn", turn },
              ...(title !== null ? [{ _tag: "SetTitle" as const, title }] : [])
            ]).pipe(
              Effect.map(({ seqs }) => seqs[0]!),
              Effect.catchIf(isUniqueViolation, () => Effect.succeed(undefined)),
              Effect.orDie
            )
            if (stored === undefined) return yield* duplicate
            if (title !== null && state) state = { ...state, title }
            busy = turnId
            knownTurns.set(turnId, turn)
            yield* self.RunTurn(new RunTurn({ turnId }), { discard: true }).pipe(
              Effect.catchAllCause((cause) => Effect.logWarning("RunTurn not sent; the turn sweeper will wake the chat", cause))
            )
            return new Posted({ messageId, turnId, seq: stored, duplicate: false })
          })
        ),

      // a turn is background work: requests (a post, a stream's next frame) resume before its steps
      RunTurn: ({ payload }) => inBackground(Effect.asVoid(runTurn(payload.turnId))),

      Wake: () => resumeTurns,

      Cancel: ({ payload }) =>
        Effect.gen(function*() {
          yield* requireOwner(payload.byUserId)
          const turn = yield* Effect.orDie(repo.turn(payload.turnId))
          if (!turn) return yield* new TurnNotFound({ turnId: payload.turnId })
          if (turn.status !== "running") return turn.status
          const entry = running.get(payload.turnId)
          if (entry) {
            entry.cancelRequested = true
            if (entry.fiber) yield* Fiber.interrupt(entry.fiber)
            return yield* Deferred.await(entry.done)
          }
          return yield* cancelIdle(turn)
        }),

      DeleteMessage: ({ payload }) =>
        writer.withPermits(1)(
          Effect.gen(function*() {
            yield* requireOwner(payload.byUserId)
            const message = yield* Effect.orDie(repo.message(payload.messageId))
            if (!message) return yield* new MessageNotFound({ messageId: payload.messageId })
            if (message.deleted) return
            yield* Effect.orDie(journal(null, [{ kind: "message_deleted", messageId: payload.messageId }], () => [{ _tag: "DeleteMessageBody", messageId: payload.messageId }]))
          })
        ),

      Delete: ({ payload }) =>
        Effect.gen(function*() {
          if (!state || state.deleted) return
          if (state.ownerId !== payload.byUserId) return yield* new NotChatOwner({ chatId })
          // stop running turns first (they release their holds), then forget the key
          for (const entry of running.values()) {
            entry.cancelRequested = true
            if (entry.fiber) yield* Fiber.interrupt(entry.fiber)
            yield* Deferred.await(entry.done).pipe(Effect.timeout("30 seconds"), Effect.ignore)
          }
          const leftover = yield* Effect.orDie(repo.runningTurns)
          yield* Effect.forEach(leftover, (t) => Effect.zipRight(release(t), Effect.orDie(repo.finishTurn(t.turnId, "cancelled", 0, null))), { discard: true })
          busy = null
          yield* writer.withPermits(1)(
            Effect.gen(function*() {
              yield* repo.sql.withTransaction(Effect.all([repo.markDeleted, repo.deleteShares]))
              yield* keys.destroyDataKey(keyId)
              state = yield* repo.chat
              yield* PubSub.publish(live, { _tag: "deleted" })
            }).pipe(Effect.orDie)
          )
          yield* Effect.logInfo("Chat deleted").pipe(Effect.annotateLogs({ chat: chatId }))
        }),

      Share: ({ payload }) =>
        Effect.gen(function*() {
          const chat = yield* requireOwner(payload.byUserId)
          const page = yield* history(undefined, 200)
          const title = chat.title ? yield* decrypt(chat.title, "title") : ""
          const snapshot = JSON.stringify({
            title,
            messages: page.messages.map((m) => ({ role: m.role, text: m.text, created_at: m.createdAt.toISOString() }))
          })
          const raw = globalThis.crypto.getRandomValues(new Uint8Array(32))
          const key = yield* Effect.promise(() => globalThis.crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]))
          const nonce = globalThis.crypto.getRandomValues(new Uint8Array(12))
          const body = new Uint8Array(yield* Effect.promise(() => globalThis.crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, key, new TextEncoder().encode(snapshot))))
          const shareId = Ids.make("s")
          const sealed = new Uint8Array(nonce.byteLength + body.byteLength)
          sealed.set(nonce)
          sealed.set(body, nonce.byteLength)
          yield* repo.insertShare(shareId, sealed)
          return new ShareCreated({ token: `${chatId}.${shareId}`, key: Buffer.from(raw).toString("base64url") })
        }).pipe(Effect.catchTags({ SqlError: Effect.die, KeyRingError: Effect.die, DataKeyDestroyed: () => Effect.fail(new ChatNotFound({ chatId })) })),

      Summary: () => summary,

      History: ({ payload }) => history(payload.before, payload.limit),

      Events: ({ payload }) =>
        Stream.unwrapScoped(
          Effect.gen(function*() {
            yield* requireChat
            // subscribe before replaying, so nothing committed meanwhile is missed
            const subscription = yield* PubSub.subscribe(live)
            let last = payload.afterSeq
            const replay = Stream.paginateChunkEffect(payload.afterSeq, (after) =>
              Effect.gen(function*() {
                const rows = yield* repo.events(after, 200)
                const events = yield* Effect.forEach(rows, toEvent)
                const next = rows.length === 200 ? Option.some(rows[rows.length - 1]!.seq) : Option.none<number>()
                return [events, next] as const
              }).pipe(Effect.map(([events, next]) => [Chunk.fromIterable(events), next] as const)))
            const follow = Stream.fromQueue(subscription).pipe(
              Stream.takeWhile((p) => p._tag === "event"),
              Stream.filterMap((p) => (p._tag === "event" && p.event.seq > last ? Option.some(p.event) : Option.none())),
              Stream.concat(Stream.suspend(() => (state?.deleted ? Stream.fail(new ChatNotFound({ chatId })) : Stream.empty)))
            )
            return replay.pipe(
              Stream.concat(follow),
              // per chunk, not per event: a per-element tap costs a fiber step or ten per event
              Stream.mapChunks((events) => {
                const end = Chunk.last(events)
                if (end._tag === "Some") last = end.value.seq
                return events
              })
            )
          })
        ).pipe(Stream.catchTags({ SqlError: Stream.die, KeyRingError: Stream.die, ParseError: Stream.die, DataKeyDestroyed: () => Stream.fail(new ChatNotFound({ chatId })) })),

      ReadShare: ({ payload }) =>
        Effect.gen(function*() {
          if (!state || state.deleted) return yield* new ShareNotFound()
          const found = yield* Effect.orDie(repo.share(payload.shareId))
          if (!found) return yield* new ShareNotFound()
          return new SharedSnapshot({ ciphertext: Buffer.from(found.snapshot).toString("base64url"), createdAt: found.createdAt })
        })
    }))

  }),
  { concurrency: "unbounded", maxIdleTime: "5 minutes" }
)

/** How often the turn sweeper looks, and how long a running turn's chat must be quiet to be woken. */
export interface TurnSweepSettings {
  readonly interval: Duration.Duration
  readonly grace: Duration.Duration
}

/** `TROUPE_TURN_SWEEP_INTERVAL` (default 1 s), `TROUPE_TURN_SWEEP_GRACE` (default 1 s). */
export const turnSweepConfig: Config.Config<TurnSweepSettings> = Config.all({
  interval: Config.duration("TROUPE_TURN_SWEEP_INTERVAL").pipe(Config.withDefault(Duration.seconds(1))),
  grace: Config.duration("TROUPE_TURN_SWEEP_GRACE").pipe(Config.withDefault(Duration.seconds(1)))
})

/**
 * Turns survive losing their runner: one runner of the cluster (a singleton) wakes each chat
 * with a `running` turn whose journal has not moved for the grace, and the chat — started again
 * on its new owner if its runner died — runs the turns nothing runs. Waking a chat whose turn is
 * running is a no-op, so the sweeper needs no liveness information; a turn that streams output is
 * never woken (each write moves its chat's `updated_at`), one that waits silently is woken once
 * per interval.
 */
export const layerTurnSweeper = (settings?: TurnSweepSettings): Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient> =>
  Layer.unwrapEffect(
    Effect.map(settings ? Effect.succeed(settings) : Effect.orDie(turnSweepConfig), ({ grace, interval }) =>
      Singleton.make(
        "troupe-chat-turn-sweeper",
        Effect.gen(function*() {
          const client = yield* Chat.client
          const chats = yield* Repo.chatsWithStalledTurns(Math.round(Duration.toMillis(grace)), 1000)
          yield* Effect.forEach(chats, (chatId) => retryTransient(client(chatId).Wake()), { concurrency: 8, discard: true })
        }).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning("Turn sweep failed", cause)),
          Effect.repeat(Schedule.spaced(interval)),
          Effect.asVoid
        )
      ))
  )

