/**
 * A chat's journal: the chat's row as its entity knows it, the writer lock, and the one way to
 * change the chat — `write`, which journals events (and any other writes riding along) in one
 * SQL statement with the next sequence numbers, then publishes them to the chat's followers.
 *
 * Sequence numbers come from memory (the entity is the chat's only writer); the chat row's counter
 * moves only if it still holds the number the write started from, so a second writer could never
 * interleave, and nothing moves unless all commits. A write is uninterruptible: a cancel stops a
 * turn between writes, never between a commit and the memory that follows it. The events of one
 * write are published together, so a stream following the chat receives them as one chunk.
 *
 * Bodies are encrypted with the chat's data key, bound to their place (`event:<seq>`,
 * `message:<id>`, `title`).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { KeyRing } from "../../runtime/KeyRing.ts"
import { ChatEvent, ChatNotFound, type EventBody, NotChatOwner, type TurnStatus } from "./protocol.ts"
import * as Repo from "./repo.ts"

const decodeEvent = Schema.decodeUnknown(ChatEvent)

type Published = { readonly _tag: "event"; readonly event: ChatEvent } | { readonly _tag: "deleted" }

/** How a write ends a turn: its status, charge and reply, only if it is still running. */
export interface Finish {
  readonly status: TurnStatus
  readonly charged: number | null
  readonly replyMessageId: string | null
}

/**
 * Another writer moved the chat's sequence number (this entity's copy of the chat is stale: the
 * chat has moved to another runner while this one still ran a turn). Nothing was written; the
 * write dies with this, and the writer stops, leaving the chat and its turn to the other one.
 */
export class SecondWriter extends Data.TaggedError("SecondWriter")<{ readonly chatId: string; readonly from: number }> {
  override get message() {
    return `chat ${this.chatId}: sequence moved from ${this.from} under a second writer`
  }
}

/** The journal of one chat (`make`). */
export type Journal = Effect.Effect.Success<ReturnType<typeof make>>

/** The journal of chat `chatId`, with the chat's row loaded. */
export const make = (chatId: string) =>
  Effect.gen(function*() {
    const repo = yield* Repo.make(chatId)
    const keys = yield* KeyRing
    const writer = yield* Effect.makeSemaphore(1)
    const live = yield* PubSub.unbounded<Published>()
    const keyId = `chat:${chatId}`
    const aad = (what: string) => `${chatId}:${what}`
    let state = yield* Effect.orDie(repo.chat)

    const requireChat = Effect.suspend(() =>
      state && !state.deleted ? Effect.succeed(state) : Effect.fail(new ChatNotFound({ chatId }))
    )
    const requireOwner = (userId: string) =>
      Effect.flatMap(requireChat, (chat) => (chat.ownerId === userId ? Effect.succeed(chat) : Effect.fail(new NotChatOwner({ chatId }))))

    const encrypt = (text: string, what: string) => keys.encryptText(keyId, text, aad(what))
    const decrypt = (cipher: Uint8Array, what: string) => keys.decryptText(cipher, aad(what))

    /**
     * Journal `bodies` for `turnId` with `extras` (given the sequence numbers) and, with `finish`,
     * end the turn — all in one statement — then publish the events. Callers hold the writer
     * lock (`locked`). With `finish`, `finished: false` says the turn had ended already and
     * nothing was written.
     */
    const write = (
      turnId: string | null,
      bodies: ReadonlyArray<EventBody>,
      extras: (seqs: ReadonlyArray<number>) => ReadonlyArray<Repo.JournalExtra> = () => [],
      finish?: Finish
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
        if (!result.current) {
          // the row as it is now, so this entity answers reads right until the chat leaves it
          yield* Effect.ignore(Effect.map(repo.chat, (row) => void (state = row)))
          return yield* Effect.die(new SecondWriter({ chatId, from: base }))
        }
        if (!result.written) {
          if (finish && !result.finished) return { seqs: [], finished: false }
          return yield* Effect.dieMessage(`chat ${chatId}: journal write refused`)
        }
        if (state && bodies.length > 0) state = { ...state, lastSeq: base + bodies.length, updatedAt: at }
        // one batch, one chunk for the streams that follow this chat (and one acknowledgement each)
        if (bodies.length > 0) {
          yield* PubSub.publishAll(live, bodies.map((body, i): Published => ({ _tag: "event", event: { ...body, seq: seqs[i]!, turnId, at } as ChatEvent })))
        }
        return { seqs, finished: true }
      }).pipe(Effect.uninterruptible)

    const toEvent = (row: Repo.EventRow) =>
      Effect.gen(function*() {
        const body = JSON.parse(yield* decrypt(row.body, `event:${row.seq}`)) as Record<string, unknown>
        return yield* decodeEvent({ ...body, kind: row.kind, seq: row.seq, turnId: row.turnId, at: row.createdAt.getTime() })
      })

    /** Every event after `afterSeq`, then live ones; fails with `ChatNotFound` once the chat is deleted. */
    const follow = (afterSeq: number) =>
      Stream.unwrapScoped(
        Effect.gen(function*() {
          yield* requireChat
          // subscribe before replaying, so nothing committed meanwhile is missed
          const subscription = yield* PubSub.subscribe(live)
          let last = afterSeq
          const replay = Stream.paginateChunkEffect(afterSeq, (after) =>
            Effect.gen(function*() {
              const rows = yield* repo.events(after, 200)
              const events = yield* Effect.forEach(rows, toEvent)
              const next = rows.length === 200 ? Option.some(rows[rows.length - 1]!.seq) : Option.none<number>()
              return [Chunk.fromIterable(events), next] as const
            }))
          const following = Stream.fromQueue(subscription).pipe(
            Stream.takeWhile((p) => p._tag === "event"),
            Stream.filterMap((p) => (p._tag === "event" && p.event.seq > last ? Option.some(p.event) : Option.none())),
            Stream.concat(Stream.suspend(() => (state?.deleted ? Stream.fail(new ChatNotFound({ chatId })) : Stream.empty)))
          )
          return replay.pipe(
            Stream.concat(following),
            // per chunk, not per event: a per-element tap costs a fiber step or ten per event
            Stream.mapChunks((events) => {
              const end = Chunk.last(events)
              if (end._tag === "Some") last = end.value.seq
              return events
            })
          )
        })
      ).pipe(Stream.catchTags({ SqlError: Stream.die, KeyRingError: Stream.die, ParseError: Stream.die, DataKeyDestroyed: () => Stream.fail(new ChatNotFound({ chatId })) }))

    return {
      chatId,
      repo,
      keyId,
      /** The chat's row as this entity knows it (undefined: never created). */
      state: () => state,
      /** Read the chat's row again (after a write outside `write`). */
      reload: Effect.map(repo.chat, (row) => void (state = row)),
      /** Remember a new title (written by a `SetTitle` extra). */
      setTitle: (title: Uint8Array) => void (state && (state = { ...state, title })),
      requireChat,
      requireOwner,
      encrypt,
      decrypt,
      /** Run `effect` holding the writer lock (every change to the chat does). */
      locked: writer.withPermits(1),
      write,
      follow,
      /** Tell followers the chat is gone (their streams fail with `ChatNotFound`). */
      publishDeleted: PubSub.publish(live, { _tag: "deleted" })
    }
  })

/** What a chat's journal needs. */
export type Requirements = SqlClient.SqlClient | KeyRing
