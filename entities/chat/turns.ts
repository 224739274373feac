/**
 * The turn engine of a chat: runs the mate's turns (`TurnRunner`, see `turn.ts`) under a credit
 * hold (`withHold`, keyed by the turn, so a replay never reserves or charges twice), journals what
 * the mate emits, and ends each turn once.
 *
 * - A turn is stored `running` by `Post` (with its message) and run by `RunTurn`, which the chat
 *   sends itself. The journal is what survives a crash: a chat that starts runs its `running`
 *   turns, and the turn sweeper (`layerTurnSweeper`, a cluster singleton) wakes chats whose turns
 *   have been `running` a while, so a turn whose runner died runs again on the next owner, which
 *   journals `restarted`. A turn started `maxTurnAttempts` times without finishing is failed.
 * - The mate's emissions are journaled in order, consecutive deltas merged: the first at once,
 *   then at most one write per delta window (`deltaWindowMs`: 100 ms, up to 200 ms while many turns
 *   stream in the process). The last ones ride in the turn's final write with the reply, the charge
 *   and the status.
 * - Cancel interrupts the mate; what it used until then is charged (its `cost` emissions) and
 *   `cancelled` journaled with what it had said. A mate that fails is charged what it used too,
 *   and what it said stays. A runner that stops keeps the hold for the turn's next attempt.
 * - A running turn whose journal is quiet writes a heartbeat every `heartbeatMs`, so the sweeper
 *   tells a silent turn (a slow model, a skill, a user's confirmation) from a dead one.
 * - A turn's start and first output run as interactive work, the rest as background work
 *   (`runtime/Background.ts`, `Phased`): requests and other turns' starts resume before its streaming steps.
 */
import type * as Sharding from "@effect/cluster/Sharding"
import * as Singleton from "@effect/cluster/Singleton"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Background from "../../runtime/Background.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import * as Metrics from "../../runtime/Metrics.ts"
import { type Account, type HoldClosed, releaseHold, withHold } from "../credit/hold.ts"
import { Purpose, SpendScope } from "../credit/protocol.ts"
import { type Journal, SecondWriter } from "./journal.ts"
import { Chat, type EventBody, RunTurn, type TurnStatus } from "./protocol.ts"
import * as Repo from "./repo.ts"
import { ChatAttachments, type TurnEmission, type TurnFailed, type TurnInput, type TurnRunnerService, withAttachments } from "./turn.ts"

/**
 * After a turn's first output (written at once), the journal gathers what the mate streams for this
 * long before its next write: 100 ms (at most 10 writes a second however fast the model streams),
 * growing to 200 ms as more turns stream in this process (from 10 on; 200 ms from 30). Each write
 * is encrypted events, a transaction and a frame to every follower: 50 turns streaming at 50
 * tokens/s make 250 writes a second, not the ~1,600 of a 30 ms window.
 */
export const deltaWindowMs = (streamingTurns: number): number => Math.min(200, 100 + Math.max(0, streamingTurns - 10) * 5)

/** Turns of this process journaling their mate's output now (what `deltaWindowMs` grows with). */
let streamingTurns = 0

/** Marks the end of a turn's emissions in its journaling queue. */
const endOfTurn: unique symbol = Symbol("endOfTurn")

/** Attempts after which a turn that never finishes (its runner keeps dying) is failed, not retried. */
export const maxTurnAttempts = 5

/** How many earlier messages a turn sees unless its runner says otherwise. */
const defaultHistoryWindow = 20

/**
 * How often a running turn that has not written to the journal for as long says it is alive
 * (`chat_turns.heartbeat_at`), so the turn sweeper leaves a model or skill that is silent for many
 * seconds alone (its grace must be longer) and still wakes a turn whose runner died.
 */
export const heartbeatMs = 1000

/** A turn's output so far: the reply's text, the cost reported, emissions not journaled yet. */
interface Progress {
  reply: string
  /** How much of `reply` is journaled as deltas (a cancel journals the rest in its last write). */
  journaled: number
  cost: number
  pending: ReadonlyArray<EventBody>
}

/** What the metrics and the turn's log line need of one attempt (set as it goes). */
interface Watch {
  ids?: Metrics.TurnIds
  attempt?: number
  /** `performance.now()` when the attempt started (its hold made and start journaled). */
  startedAt?: number
  /** When the mate's first output came. */
  firstAt?: number
  /** Runs the attempt's fibers: interactive until its first output is journaled, background after. */
  scheduler?: Background.Phased
  /** The error code the turn ended with, and what it was charged (set by `finish`). */
  code?: string
  charged?: number | null
}

interface RunningTurn {
  fiber: Fiber.RuntimeFiber<void, unknown> | undefined
  cancelRequested: boolean
  readonly done: Deferred.Deferred<TurnStatus>
}

/** How the mate's work ended (the turn is charged what it used in each case). */
type Ended = { readonly _tag: "done" } | { readonly _tag: "cancelled" } | { readonly _tag: "failed"; readonly error: TurnFailed }

/** The turns of one chat (`make`). */
export type Turns = Effect.Effect.Success<ReturnType<typeof make>>

/** The turn engine of the chat `journal` keeps. */
export const make = (options: {
  readonly journal: Journal
  readonly mates: TurnRunnerService
  /** The credit account a turn is charged to. */
  readonly account: (accountId: string) => Account
  /** The chat's own client (to send itself `RunTurn`). */
  readonly self: ReturnType<Effect.Effect.Success<typeof Chat.client>>
}) =>
  Effect.gen(function*() {
    const { account, journal, mates, self } = options
    const { chatId, repo } = journal
    const running = new Map<string, RunningTurn>()
    /** Turns created here since the entity started (saves reading them back). */
    const knownTurns = new Map<string, Repo.TurnRow>()
    /** How turns ended here (their error code and charge), read once by `run` for the metrics. */
    const endings = new Map<string, { readonly code: string | undefined; readonly charged: number | null }>()
    /** The turn in progress, if any (this entity is the only writer of its turns). */
    let busy: string | null = (yield* Effect.orDie(repo.runningTurns))[0]?.turnId ?? null

    const hold = (turn: Repo.TurnRow) => ({ key: turn.holdKey, durable: true })
    const attachments = yield* Effect.serviceOption(ChatAttachments)

    /** What the mate needs: the message and the messages before it. */
    const turnInput = (turn: Repo.TurnRow) =>
      Effect.gen(function*() {
        const chat = yield* journal.requireChat
        const rows = yield* repo.turnContext(turn.messageId, mates.historyWindow ?? defaultHistoryWindow)
        const decrypted = yield* Effect.forEach(rows, (m) =>
          m.body ? Effect.map(journal.decrypt(m.body, `message:${m.messageId}`), (text) => ({ id: m.messageId, role: m.role, text })) : Effect.succeed(undefined))
        const present = decrypted.filter((m) => m !== undefined)
        const current = present.find((m) => m.id === turn.messageId)
        const scope = spendScope(turn)
        const files = Option.isSome(attachments) ? yield* attachments.value.ofMessage(chatId, turn.messageId) : []
        const input: TurnInput = {
          chatId,
          turnId: turn.turnId,
          mateId: turn.mateId,
          ownerId: chat.ownerId,
          accountId: turn.accountId,
          ...(scope ? { scope } : {}),
          ...(turn.apiKeyId !== null ? { apiKeyId: turn.apiKeyId } : {}),
          text: withAttachments(current?.text ?? "", files),
          history: present.filter((m) => m.id !== turn.messageId).map(({ role, text }) => ({ role, text })),
          attempt: turn.attempts + 1
        }
        return input
      })

    /**
     * End a turn once: its last events, the mate's reply (if any) and its status in one write.
     * The reply's id is fixed per turn, so a restarted turn replaces its text. `leading` are the
     * mate's last emissions, not journaled yet: they come first.
     */
    const finish = (
      turn: Repo.TurnRow,
      status: TurnStatus,
      bodies: ReadonlyArray<EventBody>,
      charged: number | null,
      reply: string | null,
      leading: ReadonlyArray<EventBody> = []
    ) =>
      journal.locked(
        Effect.gen(function*() {
          const replyId = reply === null ? null : `${turn.turnId}r`
          const all: ReadonlyArray<EventBody> = replyId === null || reply === null
            ? [...leading, ...bodies]
            : [...leading, { kind: "message_stored", messageId: replyId, role: "mate", authorId: turn.mateId, text: reply }, ...bodies.map((b) => (b.kind === "done" || b.kind === "cancelled" ? { ...b, messageId: replyId } : b))]
          const replyBody = replyId !== null && reply !== null ? yield* Effect.orDie(journal.encrypt(reply, `message:${replyId}`)) : null
          const { finished } = yield* Effect.orDie(journal.write(
            turn.turnId,
            all,
            (seqs) => (replyId !== null && replyBody !== null ? [{ _tag: "UpsertReply", messageId: replyId, authorId: turn.mateId, turnId: turn.turnId, seq: seqs[leading.length]!, body: replyBody }] : []),
            { status, charged, replyMessageId: replyId }
          ))
          knownTurns.delete(turn.turnId)
          const error = all.find((b) => b.kind === "error")
          endings.set(turn.turnId, { code: error?.kind === "error" ? error.code : undefined, charged })
          if (busy === turn.turnId) busy = null
          if (finished) return status
          return (yield* Effect.orDie(repo.turn(turn.turnId)))?.status ?? status
        })
      )

    /**
     * Journal a turn's emissions in order, consecutive deltas merged: the first one at once, then
     * at most one write per `deltaWindowMs`, taking everything that arrived meanwhile. A queue
     * between the mate and the journal does the batching (`Stream.groupedWithin` did the same at a
     * few ms of CPU per turn). The batch that ends the turn is left in `progress.pending` for the
     * turn's last write (one write and one stream chunk fewer per turn). Fails as the mate fails,
     * after journaling what came before (or leaving it pending).
     */
    const journalEmissions = (turnId: string, input: TurnInput, progress: Progress, watch: Watch): Effect.Effect<void, TurnFailed> =>
      Effect.scoped(Effect.gen(function*() {
        yield* Effect.acquireRelease(Effect.sync(() => void streamingTurns++), () => Effect.sync(() => void streamingTurns--))
        const queue = yield* Effect.acquireRelease(Queue.unbounded<Exclude<TurnEmission, { kind: "cost" }> | typeof endOfTurn>(), Queue.shutdown)
        const producer = yield* mates.run(input, (emission) => {
          // what was used and said counts the moment it is emitted: a cancel reads it at once
          if (emission.kind === "cost") {
            progress.cost = emission.credits
            return
          }
          if (emission.kind === "delta") progress.reply += emission.text
          if (emission.kind === "delta" && watch.firstAt === undefined) watch.firstAt = performance.now()
          Queue.unsafeOffer(queue, emission)
        }).pipe(
          Effect.ensuring(Queue.offer(queue, endOfTurn)),
          Effect.forkScoped
        )
        let ended = false
        while (!ended) {
          const items = [yield* Queue.take(queue), ...(yield* Queue.takeAll(queue))]
          // the window counts from this write: what comes after a silence is written at once
          const started = Date.now()
          // the end marker is offered last, after the mate's stream is over
          ended = items[items.length - 1] === endOfTurn
          const bodies: Array<EventBody> = []
          for (const emission of items.filter((i): i is Exclude<TurnEmission, { kind: "cost" }> => i !== endOfTurn)) {
            if (emission.kind === "delta") {
              const previous = bodies[bodies.length - 1]
              if (previous?.kind === "delta") {
                bodies[bodies.length - 1] = { kind: "delta", text: previous.text + emission.text }
                continue
              }
            }
            bodies.push(emission)
          }
          if (ended) progress.pending = bodies
          else if (bodies.length > 0) {
            // written and counted as one step: a cancel waits for the write (one short transaction)
            // instead of cutting in between the commit and the count
            yield* journal.locked(Effect.asVoid(Effect.orDie(journal.write(turnId, bodies)))).pipe(
              Effect.zipRight(Effect.sync(() => {
                for (const b of bodies) if (b.kind === "delta") progress.journaled += b.text.length
                // the first output is out: the rest of the turn gives way to requests and other turns' starts
                watch.scheduler?.demote()
              })),
              Effect.uninterruptible
            )
          }
          const wait = deltaWindowMs(streamingTurns) - (Date.now() - started)
          if (!ended && wait > 0) yield* Effect.sleep(wait)
        }
        yield* Fiber.join(producer)
      }))

    const interrupted = (turn: Repo.TurnRow, progress: Progress, status: HoldClosed["status"]) =>
      Effect.zipRight(
        Effect.logWarning("Turn's credit hold closed before it finished").pipe(Effect.annotateLogs({ chat: chatId, turn: turn.turnId, hold: status, attempts: turn.attempts })),
        finish(turn, "failed", [{ kind: "error", code: "interrupted", message: "The turn's credit hold expired before it finished" }], null, progress.reply || null, progress.pending)
      )

    /** Say the turn is alive whenever the journal has been quiet for `heartbeatMs` (until interrupted). */
    const heartbeat = (turnId: string) =>
      Effect.gen(function*() {
        const quietFor = Date.now() - (journal.state()?.updatedAt.getTime() ?? 0)
        if (quietFor >= heartbeatMs) yield* repo.heartbeat(turnId)
      }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("Turn heartbeat not written", cause)),
        Effect.delay(heartbeatMs),
        Effect.forever
      )

    /**
     * The chat moved to another runner under this attempt (its journal refused a write): stop as a
     * runner that is stopped would — interrupted, the hold kept for the other runner, which runs
     * the turn from the journal — instead of failing the turn and releasing its hold.
     */
    const leaveToOtherWriter = (turnId: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.catchAllCause(effect, (cause) =>
        Option.exists(Cause.dieOption(cause), (defect) => defect instanceof SecondWriter)
          ? Effect.zipRight(
            Effect.logWarning("Turn left to the chat's other writer").pipe(Effect.annotateLogs({ chat: chatId, turn: turnId })),
            Effect.interrupt
          )
          : Effect.failCause(cause))

    /** One attempt: hold, announce, let the mate work, end the turn by how that went. */
    const attempt = (turn: Repo.TurnRow, entry: RunningTurn, watch: Watch) =>
      Effect.gen(function*() {
        const turnId = turn.turnId
        if (turn.attempts >= maxTurnAttempts) {
          // every attempt so far took its runner down (or never got to its end): stop retrying
          yield* Effect.logError("Turn given up after repeated attempts").pipe(Effect.annotateLogs({ chat: chatId, turn: turnId, attempts: turn.attempts }))
          yield* releaseHold(account(turn.accountId), hold(turn))
          return yield* finish(turn, "failed", [{ kind: "error", code: "turn_abandoned", message: `The turn was started ${turn.attempts} times and never finished` }], 0, null)
        }
        const input = yield* Effect.orDie(turnInput(turn))
        const amount = turn.reserved ?? (yield* mates.estimate(input))
        const progress: Progress = { reply: "", journaled: 0, cost: 0, pending: [] }
        const outcome = yield* Effect.exit(withHold(account(turn.accountId), {
          ...hold(turn),
          amount,
          scope: spendScope(turn),
          purpose: Purpose.turn(chatId, turn.apiKeyId ?? Metrics.apiKeyOfScope(turn.scopeId))
        }, (held) =>
          Effect.gen(function*() {
            // the attempt is counted (and announced) in one write
            const attempt = turn.attempts + 1
            yield* journal.locked(
              Effect.orDie(journal.write(turnId, [attempt > 1 ? { kind: "restarted", attempt } : { kind: "turn_started", mateId: turn.mateId, reserved: held.amount }], () =>
                [{ _tag: "StartAttempt", turnId, reserved: held.amount }]))
            )
            watch.ids = { chatId, turnId, userId: input.ownerId, apiKeyId: Metrics.apiKeyOfScope(turn.scopeId) }
            watch.attempt = attempt
            watch.startedAt = performance.now()
            yield* Metrics.turnStarted(watch.ids, attempt)
            const fiber = yield* Effect.fork(journalEmissions(turnId, { ...input, budget: held.amount }, progress, watch))
            entry.fiber = fiber
            if (entry.cancelRequested) yield* Fiber.interrupt(fiber)
            const beat = yield* Effect.fork(heartbeat(turnId))
            const exit = yield* Fiber.await(fiber)
            yield* Fiber.interrupt(beat)
            // what the mate used is charged however it ended: done, cancelled (the mate was
            // stopped), or failed after it had streamed (its failure is the turn's)
            const price = Math.min(progress.cost, held.amount)
            if (progress.cost > held.amount) {
              yield* Effect.logWarning("Turn used more than it held: charged the hold").pipe(Effect.annotateLogs({ chat: chatId, turn: turnId, held: held.amount, used: progress.cost }))
            }
            if (Exit.isInterrupted(exit)) return { value: { _tag: "cancelled" } as Ended, price }
            const failed = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
            if (Option.isSome(failed)) return { value: { _tag: "failed", error: failed.value } as Ended, price }
            yield* exit
            return { value: { _tag: "done" } as Ended, price }
          }).pipe(leaveToOtherWriter(turnId))))

        if (Exit.isSuccess(outcome)) {
          const { charged, held, value } = outcome.value
          const charge: ReadonlyArray<EventBody> = [{ kind: "charge", amount: charged, held }]
          switch (value._tag) {
            case "done":
              return yield* finish(turn, "done", [...charge, { kind: "done", messageId: "" }], charged, progress.reply, progress.pending)
            case "cancelled": {
              // the deltas the mate emitted after the journal's last write: the stream shows all that is kept and charged
              const rest = progress.reply.slice(progress.journaled)
              const leading: ReadonlyArray<EventBody> = [...progress.pending, ...(rest.length > 0 && progress.pending.length === 0 ? [{ kind: "delta" as const, text: rest }] : [])]
              return yield* finish(turn, "cancelled", [...(charged > 0 ? charge : []), { kind: "cancelled", messageId: null }], charged, progress.reply || null, leading)
            }
            case "failed":
              yield* Effect.logWarning("Turn failed", value.error.message).pipe(Effect.annotateLogs({ chat: chatId, turn: turnId, code: value.error.code }))
              // what was said stays (a provider that failed mid-answer), and what was used is charged
              return yield* finish(turn, "failed", [...(charged > 0 ? charge : []), { kind: "error", code: value.error.code, message: value.error.message }], charged, progress.reply || null, progress.pending)
          }
        }
        const error = Cause.failureOption(outcome.cause)
        // stopped with its runner (interrupted, not cancelled): the next owner runs it again
        if (Option.isNone(error) && Exit.isInterrupted(outcome)) return yield* Effect.failCause(outcome.cause as Cause.Cause<never>)
        const e = Option.getOrUndefined(error)
        switch (e?._tag) {
          case "HoldClosed":
            return yield* interrupted(turn, progress, e.status)
          case "InsufficientCredits":
            return yield* finish(turn, "failed", [{ kind: "error", code: "insufficient_credits", message: `This turn needs ${e.requested} credits; ${e.available} available${e.scope ? ` under ${e.scope}` : ""}` }], null, null)
          case "KeyConflict":
            return yield* finish(turn, "failed", [{ kind: "error", code: "internal_error", message: e.message }], null, null)
          case "HoldExceeded":
            return yield* finish(turn, "failed", [{ kind: "error", code: "hold_exceeded", message: `The mate used ${e.price} credits; it held ${e.held}` }], 0, null, progress.pending)
          case undefined:
            yield* Effect.logWarning("Turn failed", outcome.cause).pipe(Effect.annotateLogs({ chat: chatId, turn: turnId }))
            return yield* finish(turn, "failed", [{ kind: "error", code: "internal_error", message: "The mate failed" }], 0, null, progress.pending)
          default:
            // the credit account is unreachable: the turn stays running and the sweeper wakes it
            return yield* Effect.die(e)
        }
      })

    /**
     * Count an attempt's end and write the turn's log line (an attempt that never started, refused
     * for credits or given up, is not a turn that ran: only its ending is forgotten).
     */
    const observe = (turnId: string, watch: Watch, status: TurnStatus | "interrupted") =>
      Effect.suspend(() => {
        const ending = endings.get(turnId)
        endings.delete(turnId)
        if (watch.ids === undefined || watch.startedAt === undefined) return Effect.void
        const end = performance.now()
        const first = watch.firstAt === undefined ? Effect.void : Metrics.turnFirstOutput((watch.firstAt - watch.startedAt) / 1000)
        const charged = ending?.charged ?? null
        return Effect.all([
          first,
          Metrics.creditsChargedFor("turn", charged ?? 0),
          Metrics.turnEnded(watch.ids, {
            status: status === "running" ? "interrupted" : status,
            seconds: (end - watch.startedAt) / 1000,
            code: ending?.code,
            charged,
            attempt: watch.attempt
          })
        ], { discard: true })
      })

    /** Run one attempt of a turn to its end (a no-op for a turn that runs here or has ended). */
    const run = (turnId: string) => {
      // the turn's start and first output are interactive work, the rest background (`Watch.scheduler`)
      const scheduler = new Background.Phased()
      return Effect.gen(function*() {
        const claim = yield* journal.locked(
          Effect.gen(function*() {
            const turn = knownTurns.get(turnId) ?? (yield* Effect.orDie(repo.turn(turnId)))
            const chat = journal.state()
            if (!turn || turn.status !== "running" || !chat || chat.deleted || running.has(turnId)) return undefined
            const entry: RunningTurn = { fiber: undefined, cancelRequested: false, done: yield* Deferred.make<TurnStatus>() }
            running.set(turnId, entry)
            // a later attempt reads the row again (its attempt count)
            knownTurns.delete(turnId)
            return { turn, entry }
          })
        )
        if (!claim) return
        const watch: Watch = { scheduler }
        yield* attempt(claim.turn, claim.entry, watch).pipe(
          // (inside the hold too, so the hold stays; here for the writes that end the turn)
          leaveToOtherWriter(turnId),
          Effect.onExit((exit) =>
            Effect.sync(() => running.delete(turnId)).pipe(
              Effect.zipRight(observe(turnId, watch, Exit.isSuccess(exit) ? exit.value : "interrupted")),
              Effect.zipRight(Deferred.succeed(claim.entry.done, Exit.isSuccess(exit) ? exit.value : "failed"))
            )
          )
        )
      }).pipe(Effect.withScheduler(scheduler))
    }

    /** Cancel a turn that is not running in this process (not started yet, or its runner died). */
    const cancelIdle = (turn: Repo.TurnRow) =>
      Effect.zipRight(releaseHold(account(turn.accountId), hold(turn)), finish(turn, "cancelled", [{ kind: "cancelled", messageId: null }], 0, null))

    /** Ask a running turn to stop: its mate is interrupted (now, or as soon as it starts). */
    const stop = (entry: RunningTurn) =>
      Effect.gen(function*() {
        entry.cancelRequested = true
        if (entry.fiber) yield* Fiber.interrupt(entry.fiber)
      })

    return {
      /** The turn in progress, if any. */
      busy: () => busy,
      /** A turn `Post` stored (in the same write as its message): it is in progress now. */
      started: (turn: Repo.TurnRow) => {
        busy = turn.turnId
        knownTurns.set(turn.turnId, turn)
      },
      run,
      /** Pass the user's answer to a `write` skill call the running turn waits for (false: none waits). */
      confirm: (callId: string, approve: boolean) =>
        mates.confirm && busy !== null && running.has(busy) ? mates.confirm(chatId, callId, approve) : Effect.succeed(false),
      /** Cancel `turn`: stop it if it runs here, end it otherwise. Returns how it ended. */
      cancel: (turn: Repo.TurnRow) =>
        Effect.gen(function*() {
          if (turn.status !== "running") return turn.status
          const entry = running.get(turn.turnId)
          if (!entry) return yield* cancelIdle(turn)
          yield* stop(entry)
          return yield* Deferred.await(entry.done)
        }),
      /** Stop every turn (their holds are released) and close the ones nothing runs: the chat is going. */
      stopAll: Effect.gen(function*() {
        for (const entry of running.values()) {
          yield* stop(entry)
          yield* Deferred.await(entry.done).pipe(Effect.timeout("30 seconds"), Effect.ignore)
        }
        const leftover = yield* Effect.orDie(repo.runningTurns)
        yield* Effect.forEach(leftover, (t) => Effect.zipRight(releaseHold(account(t.accountId), hold(t)), Effect.orDie(repo.finishTurn(t.turnId, "cancelled", 0, null))), { discard: true })
        busy = null
      }),
      /** Run the `running` turns nothing here runs (their runner died, or their `RunTurn` was lost). */
      resume: Effect.gen(function*() {
        const turns = yield* repo.runningTurns
        for (const t of turns) {
          if (!running.has(t.turnId)) yield* self.RunTurn(new RunTurn({ turnId: t.turnId }), { discard: true })
        }
      }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("Could not resume turns", cause)))
    }
  })

/** The spend cap a turn's holds count against (an API key's), if any. */
const spendScope = (turn: Repo.TurnRow) =>
  turn.scopeId !== null && turn.scopeCap !== null ? new SpendScope({ id: turn.scopeId, cap: turn.scopeCap }) : undefined

/** How often the turn sweeper looks, and how long a running turn's chat must be quiet to be woken. */
export interface TurnSweepSettings {
  readonly interval: Duration.Duration
  readonly grace: Duration.Duration
}

/**
 * `TROUPE_TURN_SWEEP_INTERVAL` (default 1 s), `TROUPE_TURN_SWEEP_GRACE` (default 3 s: longer than
 * a running turn's heartbeat, `heartbeatMs`).
 */
export const turnSweepConfig: Config.Config<TurnSweepSettings> = Config.all({
  interval: Config.duration("TROUPE_TURN_SWEEP_INTERVAL").pipe(Config.withDefault(Duration.seconds(1))),
  grace: Config.duration("TROUPE_TURN_SWEEP_GRACE").pipe(Config.withDefault(Duration.seconds(3)))
})

/**
 * Turns survive losing their runner: one runner of the cluster (a singleton) wakes each chat
 * with a `running` turn whose journal has not moved and whose heartbeat has not come for the
 * grace, and the chat — started again
 * on its new owner if its runner died — runs the turns nothing runs. Waking a chat whose turn is
 * running is a no-op; a turn that streams output is never woken (each write moves its chat's
 * `updated_at`), nor one that waits silently for a model or a skill (its heartbeat).
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
