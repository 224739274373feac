/**
 * The Chat entity's behaviour: each message mapped onto the chat's journal (`journal.ts`: state,
 * writer lock, the one way to write and follow events) and its turn engine (`turns.ts`: running
 * the mate under a credit hold). Every change is one journal write under the writer lock.
 *
 * - `Post` stores the user's message and a `running` turn in one write, then sends the chat
 *   `RunTurn` (volatile: the journal is what survives a crash, see `turns.ts`).
 * - Bodies are encrypted with the chat's own data key; `Delete` stops the turns, then destroys
 *   the key (crypto-shredding).
 * - Share links: `Share` returns `token` = `<chatId>.<shareId>` and `key` (base64url, 32 bytes);
 *   the page is `/s/<token>#<key>`. `ReadShare` returns the snapshot sealed with that key
 *   (`KeyRing.sealDetached`: base64url of `nonce ‖ AES-256-GCM(JSON)`); only the holder of the
 *   link's fragment can read it.
 */
import * as Entity from "@effect/cluster/Entity"
import * as Sharding from "@effect/cluster/Sharding"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { shardReleased } from "../../runtime/Cluster.ts"
import { isUniqueViolation } from "../../runtime/Database.ts"
import { instrument } from "../../runtime/EntityMetrics.ts"
import * as Ids from "../../runtime/Ids.ts"
import * as KeyRing from "../../runtime/KeyRing.ts"
import { Credit } from "../credit/protocol.ts"
import * as Journal from "./journal.ts"
import {
  Chat,
  ChatExists,
  ChatMessage,
  ChatNotFound,
  ChatSummary,
  ConfirmationNotFound,
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
  type EventBody,
  type TurnStatus
} from "./protocol.ts"
import type * as Repo from "./repo.ts"
import { TurnRunner } from "./turn.ts"
import * as Turns from "./turns.ts"

/** Errors of the key ring and the database are defects here; a destroyed key means the chat is gone. */
const chatGone = (chatId: string) => ({
  SqlError: Effect.die,
  KeyRingError: Effect.die,
  DataKeyDestroyed: () => Effect.fail(new ChatNotFound({ chatId }))
})

/** Host Chat entities. */
export const layer: Layer.Layer<never, never, Sharding.Sharding | SqlClient.SqlClient | KeyRing.KeyRing | TurnRunner> = Chat.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const chatId = address.entityId
    // completes when this runner gives the chat's shard up (a runner joined, a drain, SIGTERM)
    const released = Effect.provideService(shardReleased(address.shardId), Sharding.Sharding, yield* Sharding.Sharding)
    const journal = yield* Journal.make(chatId)
    const { repo } = journal
    const keys = yield* KeyRing.KeyRing
    const self = (yield* Chat.client)(chatId)
    const turns = yield* Turns.make({ journal, mates: yield* TurnRunner, account: yield* Credit.client, self })

    function history(before: number | undefined, limit: number) {
      return Effect.gen(function*() {
        yield* journal.requireChat
        const rows = yield* repo.history(before, limit)
        const statuses = new Map<string, TurnStatus>()
        for (const id of new Set(rows.map((r) => r.turnId))) {
          const t = yield* repo.turn(id)
          if (t) statuses.set(id, t.status)
        }
        const messages = yield* Effect.forEach(rows, (r) =>
          Effect.map(r.body ? journal.decrypt(r.body, `message:${r.messageId}`) : Effect.succeed(""), (text) =>
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
      }).pipe(Effect.catchTags(chatGone(chatId)))
    }

    const summary = Effect.gen(function*() {
      const chat = yield* journal.requireChat
      const title = chat.title ? yield* journal.decrypt(chat.title, "title") : ""
      return new ChatSummary({
        chatId,
        ownerId: chat.ownerId,
        mateId: chat.mateId,
        title,
        createdAt: chat.createdAt,
        updatedAt: chat.updatedAt,
        lastSeq: chat.lastSeq,
        runningTurn: turns.busy()
      })
    }).pipe(Effect.catchTags(chatGone(chatId)))

    yield* Effect.forkScoped(turns.resume)

    return instrument("Chat", Chat.of({
      Create: ({ payload }) =>
        journal.locked(
          Effect.gen(function*() {
            const state = journal.state()
            if (state) {
              if (state.ownerId === payload.ownerId && state.mateId === payload.mateId && !state.deleted) return yield* summary
              return yield* new ChatExists({ chatId })
            }
            yield* keys.createDataKey(journal.keyId)
            const title = payload.title ? yield* journal.encrypt(payload.title, "title") : null
            yield* repo.insertChat({ ownerId: payload.ownerId, mateId: payload.mateId, title })
            yield* journal.reload
            return yield* summary
          }).pipe(Effect.catchTags({ SqlError: Effect.die, KeyRingError: Effect.die, DataKeyDestroyed: Effect.die, ChatNotFound: Effect.die }))
        ),

      Post: ({ payload }) =>
        journal.locked(
          Effect.gen(function*() {
            const chat = yield* journal.requireOwner(payload.authorId)
            const duplicate = Effect.flatMap(Effect.orDie(repo.messageByClientId(payload.clientMessageId)), (existing) =>
              existing
                ? Effect.succeed(new Posted({ messageId: existing.messageId, turnId: existing.turnId, seq: existing.seq, duplicate: true }))
                : Effect.dieMessage(`chat ${chatId}: client message ${payload.clientMessageId} conflicted but is not stored`))
            const busy = turns.busy()
            if (busy !== null) {
              // a retry of a post already stored (perhaps the one running) is answered, not refused
              const existing = yield* Effect.orDie(repo.messageByClientId(payload.clientMessageId))
              if (existing) return yield* duplicate
              return yield* new TurnInProgress({ turnId: busy })
            }
            const messageId = Ids.make("m")
            const turnId = Ids.make("t")
            const title = chat.title === null ? yield* Effect.orDie(journal.encrypt(payload.text.replace(/\s+/g, " ").trim().slice(0, 80), "title")) : null
            const turn: Repo.TurnRow = {
              turnId,
              messageId,
              mateId: payload.mateId ?? chat.mateId,
              accountId: payload.accountId ?? payload.authorId,
              scopeId: payload.scope?.id ?? null,
              scopeCap: payload.scope?.cap ?? null,
              apiKeyId: payload.apiKeyId ?? null,
              status: "running",
              attempts: 0,
              holdKey: `chat:${chatId}:${turnId}`,
              reserved: null,
              charged: null
            }
            const body = yield* Effect.orDie(journal.encrypt(payload.text, `message:${messageId}`))
            // a repeated client message id violates its unique key and the whole write is refused
            const stored = yield* journal.write(turnId, [{ kind: "message_stored", messageId, role: "user", authorId: payload.authorId, text: payload.text }], ([seq]) => [
              { _tag: "InsertMessage", messageId, clientMessageId: payload.clientMessageId, role: "user", authorId: payload.authorId, turnId, seq: seq!, body },
              { _tag: "InsertTurn", turn },
              ...(title !== null ? [{ _tag: "SetTitle" as const, title }] : [])
            ]).pipe(
              Effect.map(({ seqs }) => seqs[0]!),
              Effect.catchIf(isUniqueViolation, () => Effect.succeed(undefined)),
              Effect.orDie
            )
            if (stored === undefined) return yield* duplicate
            if (title !== null) journal.setTitle(title)
            turns.started(turn)
            // not once the shard goes: a stopping runner takes no new requests, and the send would
            // retry until the cluster's termination timeout (the next owner runs the turn as it starts)
            yield* Effect.raceFirst(self.RunTurn(new RunTurn({ turnId }), { discard: true }), released).pipe(
              Effect.catchAllCause((cause) => Effect.logWarning("RunTurn not sent; the turn sweeper will wake the chat", cause))
            )
            return new Posted({ messageId, turnId, seq: stored, duplicate: false })
          })
        ),

      // A turn is background work once its first output is out (`turns.ts`): requests (a post, a
      // stream's next frame) and other turns' starts resume before its steps.
      // It stops when the shard goes (the cluster would otherwise wait for it before handing the
      // chat over, and a stopping runner cannot answer the turn's own calls to entities it hosts);
      // the chat's next owner runs it again from the journal as it starts.
      RunTurn: ({ payload }) =>
        Effect.raceFirst(Effect.asVoid(turns.run(payload.turnId)), Effect.zipRight(released, Effect.interrupt)),

      Wake: () => Effect.raceFirst(turns.resume, released),

      Confirm: ({ payload }) =>
        Effect.gen(function*() {
          yield* journal.requireOwner(payload.byUserId)
          if (!(yield* turns.confirm(payload.callId, payload.approve))) return yield* new ConfirmationNotFound({ callId: payload.callId })
        }),

      Cancel: ({ payload }) =>
        Effect.gen(function*() {
          yield* journal.requireOwner(payload.byUserId)
          const turn = yield* Effect.orDie(repo.turn(payload.turnId))
          if (!turn) return yield* new TurnNotFound({ turnId: payload.turnId })
          return yield* turns.cancel(turn)
        }),

      DeleteMessage: ({ payload }) =>
        journal.locked(
          Effect.gen(function*() {
            yield* journal.requireOwner(payload.byUserId)
            const message = yield* Effect.orDie(repo.message(payload.messageId))
            if (!message) return yield* new MessageNotFound({ messageId: payload.messageId })
            if (message.deleted) return
            yield* Effect.orDie(journal.write(null, [{ kind: "message_deleted", messageId: payload.messageId }], () => [{ _tag: "DeleteMessageBody", messageId: payload.messageId }]))
          })
        ),

      Delete: ({ payload }) =>
        Effect.gen(function*() {
          const state = journal.state()
          if (!state || state.deleted) return
          if (state.ownerId !== payload.byUserId) return yield* new NotChatOwner({ chatId })
          // stop running turns first (they release their holds), then forget the key
          yield* turns.stopAll
          yield* journal.locked(
            Effect.gen(function*() {
              yield* repo.sql.withTransaction(Effect.all([repo.markDeleted, repo.deleteShares]))
              yield* keys.destroyDataKey(journal.keyId)
              yield* journal.reload
              yield* journal.publishDeleted
            }).pipe(Effect.orDie)
          )
          yield* Effect.logInfo("Chat deleted").pipe(Effect.annotateLogs({ chat: chatId }))
        }),

      Rename: ({ payload }) =>
        journal.locked(
          Effect.gen(function*() {
            yield* journal.requireOwner(payload.byUserId)
            const title = yield* journal.encrypt(payload.title.replace(/\s+/g, " ").trim(), "title")
            yield* repo.setTitle(title)
            journal.setTitle(title)
            return yield* summary
          }).pipe(Effect.catchTags(chatGone(chatId)))
        ),

      Share: ({ payload }) =>
        Effect.gen(function*() {
          const chat = yield* journal.requireOwner(payload.byUserId)
          const page = yield* history(undefined, 200)
          const title = chat.title ? yield* journal.decrypt(chat.title, "title") : ""
          const snapshot = JSON.stringify({
            title,
            messages: page.messages.map((m) => ({ role: m.role, text: m.text, created_at: m.createdAt.toISOString() }))
          })
          const key = KeyRing.newDetachedKey()
          const shareId = Ids.make("s")
          yield* repo.insertShare(shareId, KeyRing.sealDetached(key, new TextEncoder().encode(snapshot)))
          return new ShareCreated({ token: `${chatId}.${shareId}`, key: Buffer.from(key).toString("base64url") })
        }).pipe(Effect.catchTags(chatGone(chatId))),

      Summary: () => summary,

      Attachment: ({ payload }) =>
        journal.locked(
          Effect.gen(function*() {
            yield* journal.requireOwner(payload.byUserId)
            const body: EventBody = payload.status === "ready"
              ? { kind: "attachment_ready", uploadId: payload.uploadId, name: payload.name, contentType: payload.contentType }
              : { kind: "attachment_rejected", uploadId: payload.uploadId, name: payload.name, code: payload.code ?? "rejected", message: payload.message ?? "" }
            yield* Effect.orDie(journal.write(null, [body]))
          })
        ),

      History: ({ payload }) => history(payload.before, payload.limit),

      // A follower's stream never ends on its own, and the cluster hands a shard over only once
      // its entities have stopped: end the stream as the shard goes, so a graceful hand-over does
      // not wait for the entity termination timeout. The gateway resubscribes and reaches the
      // chat on its new runner.
      Events: ({ payload }) => Stream.interruptWhen(journal.follow(payload.afterSeq), released),

      ReadShare: ({ payload }) =>
        Effect.gen(function*() {
          const state = journal.state()
          if (!state || state.deleted) return yield* new ShareNotFound()
          const found = yield* Effect.orDie(repo.share(payload.shareId))
          if (!found) return yield* new ShareNotFound()
          return new SharedSnapshot({ ciphertext: Buffer.from(found.snapshot).toString("base64url"), createdAt: found.createdAt })
        })
    }))
  }),
  { concurrency: "unbounded", maxIdleTime: "5 minutes" }
)
