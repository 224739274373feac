/**
 * Handlers of `/v1/chats/*` and `/v1/shares/*`, including the event stream: Server-Sent Events
 * with `id: <seq>`, resuming after `Last-Event-ID` or `?after=`. The chat's journal is read
 * through the Chat entity from whichever runner hosts it; when that stream breaks (the runner
 * died, shards moved) the gateway subscribes again after the last sequence number it sent, so
 * the client sees no gap and no duplicate. Comment lines keep idle connections open through
 * proxies.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { Cancel, Chat, Confirm, Create, Delete, DeleteMessage, Post, Rename } from "../../entities/chat/protocol.ts"
import type { ChatEvent, ChatMessage, ChatNotFound, ChatSummary } from "../../entities/chat/protocol.ts"
import { AddChat, defaultMateId, RemoveChat, User } from "../../entities/user/protocol.ts"
import * as Ids from "../../runtime/Ids.ts"
import * as Metrics from "../../runtime/Metrics.ts"
import { TroupeApi } from "../Api.ts"
import { CurrentPrincipal } from "../Auth.ts"
import type { Principal } from "../Auth.ts"
import { GatewayConfig } from "../Config.ts"
import { ApiFailure, fail, fromEntity } from "../Errors.ts"
import * as Policy from "../Policy.ts"
import { Uploads } from "../../uploads/Uploads.ts"
import { call, noContent } from "./common.ts"

const toChat = (s: ChatSummary) => ({
  id: s.chatId,
  mate_id: s.mateId,
  title: s.title,
  created_at: s.createdAt,
  updated_at: s.updatedAt,
  last_seq: s.lastSeq,
  running_turn: s.runningTurn
})

const toMessage = (m: ChatMessage) => ({
  id: m.messageId,
  role: m.role,
  author_id: m.authorId,
  text: m.text,
  turn_id: m.turnId,
  status: m.status,
  created_at: m.createdAt
})

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** An event as sent to clients: snake_case fields, ISO times. */
export const eventJson = (event: ChatEvent): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(event)) out[snake(k)] = v instanceof Date ? v.toISOString() : v
  return out
}

const encoder = new TextEncoder()

/** One SSE frame for an event. */
const frameText = (event: ChatEvent): string => `id: ${event.seq}\nevent: ${event.kind}\ndata: ${JSON.stringify(eventJson(event))}\n\n`

class Reconnect extends Data.TaggedError("Reconnect")<{}> {}

/** Parse a `Last-Event-ID` header. */
const lastEventId = (value: string | undefined): number | undefined => {
  if (value === undefined || !/^\d{1,15}$/.test(value.trim())) return undefined
  return Number(value.trim())
}

const connected = encoder.encode("retry: 2000\n: connected\n\n")
const heartbeatFrame = encoder.encode(": heartbeat\n\n")
const endOfStream: unique symbol = Symbol("endOfStream")
/** ms before resubscribing: 100, doubling while nothing gets through, at most 2 s. */
const firstRetryMs = 100
const maxRetryMs = 2000

const isChatNotFound = (e: { readonly _tag: string }): e is ChatNotFound => e._tag === "ChatNotFound"

/** Where a chat's events come from (the Chat entity, or a test's stand-in). */
export interface ChatEventSource<E extends { readonly _tag: string }> {
  readonly chatId: string
  /** The chat's events after `afterSeq`, then live ones. */
  readonly follow: (afterSeq: number) => Stream.Stream<ChatEvent, E>
  /** The chat's last sequence number now. */
  readonly lastSeq: Effect.Effect<number, unknown>
  readonly heartbeatMs: number
  /** How long the stream may say nothing before the chat is asked how far it is (ms; 5 s by default). */
  readonly quietMs?: number
}

/**
 * A chat's events as SSE frames, resubscribed after the last event sent whenever the entity's
 * stream ends or breaks, with heartbeats while idle. One fiber pumps the entity's stream into a
 * small queue (bounded: a slow client slows the pump) and a timer adds heartbeats; the response
 * reads the queue. (`Stream.merge` with a heartbeat stream and `Stream.retry` cost ~100 fiber
 * steps per chunk more.) A stream that goes quiet while the chat has moved on (a cluster stream
 * left hanging while its shard moved: seen in 2 of 11 `bench:scale` runs, 79 and 106 s until the
 * run ended) is noticed by asking the chat its last sequence number after 5 s of silence (one
 * `Summary` per quiet stream every 5 s), and resubscribed.
 */
export const chatEventFrames = <E extends { readonly _tag: string }>(source: ChatEventSource<E>, after: number) =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const { chatId } = source
    const queue = yield* Effect.acquireRelease(Queue.bounded<Uint8Array | typeof endOfStream>(16), Queue.shutdown)
    let last = after
    /** Whether an event was sent since the last resubscription. */
    let delivered = false
    /** When the source last said something (or was subscribed). */
    let heard = Date.now()
    const quietMs = source.quietMs ?? 5_000
    const followed = Stream.suspend(() => {
      heard = Date.now()
      return source.follow(last)
    }).pipe(
      // a source restarted under us may replay events already sent: send each sequence number once.
      // One step per chunk (events committed together arrive together) and one write for them all.
      Stream.runForEachChunk((events) => {
        heard = Date.now()
        let text = ""
        for (const event of events) {
          if (event.seq <= last) continue
          last = event.seq
          text += frameText(event)
        }
        if (text !== "") delivered = true
        return text === "" ? Effect.void : Queue.offer(queue, encoder.encode(text))
      })
    )
    /** Completes once the source has been quiet while the chat moved past what was sent. */
    const behind = Effect.gen(function*() {
      while (true) {
        const left = heard + quietMs - Date.now()
        if (left > 0) {
          yield* Effect.sleep(left)
          continue
        }
        heard = Date.now()
        const now = yield* Effect.exit(Effect.timeout(source.lastSeq, "5 seconds"))
        if (now._tag === "Success" && now.value > last) {
          return yield* Effect.logWarning("Chat event stream fell behind the chat; resubscribing").pipe(
            Effect.annotateLogs({ chat_id: chatId, sent: last, chat_seq: now.value })
          )
        }
      }
    })
    // (the hanging stream is let go in the background: its interruption may wait on its runner)
    const once = Effect.raceFirst(Effect.disconnect(followed), behind).pipe(
      // a stream that ends, breaks or falls behind is resumed after the last event sent
      Effect.zipRight(Effect.fail(new Reconnect())),
      Effect.catchAllCause((cause): Effect.Effect<never, ApiFailure | Reconnect> => {
        // the entity's stream was interrupted by its runner (shards moving, the runner stopping):
        // resubscribe. (Were this fiber itself interrupted, no handler would run: Effect skips
        // failure handlers of an interrupted fiber.)
        if (Cause.isInterruptedOnly(cause)) return Effect.fail(new Reconnect())
        const failure = Cause.failureOption(cause)
        if (Option.isSome(failure) && isChatNotFound(failure.value)) return Effect.fail(fromEntity(failure.value))
        if (Option.isNone(failure) || failure.value._tag !== "Reconnect") {
          return Effect.zipRight(
            Effect.logWarning("Chat event stream broke; resubscribing", cause).pipe(Effect.annotateLogs({ chat_id: chatId, after: last })),
            Effect.fail(new Reconnect())
          )
        }
        return Effect.fail(new Reconnect())
      })
    )
    const pump = Effect.gen(function*() {
      let wait = firstRetryMs
      while (true) {
        const e = yield* Effect.flip(once)
        if (e._tag === "ApiFailure") {
          // a deleted chat ends the stream with an error event
          return yield* Queue.offer(queue, encoder.encode(`event: error\ndata: ${JSON.stringify({ code: e.code, message: e.message })}\n\n`))
        }
        if (delivered) wait = firstRetryMs
        delivered = false
        yield* Effect.sleep(wait)
        wait = Math.min(wait * 2, maxRetryMs)
      }
    })
    // the pump ends only there (every other cause is retried) or by interruption
    yield* pump.pipe(Effect.zipRight(Queue.offer(queue, endOfStream)), Effect.forkScoped)
    yield* Effect.acquireRelease(
      Effect.sync(() => setInterval(() => Queue.unsafeOffer(queue, heartbeatFrame), source.heartbeatMs)),
      (timer) => Effect.sync(() => clearInterval(timer))
    )
    return Stream.concat(
      Stream.succeed(connected),
      Stream.takeWhile(Stream.fromQueue(queue), (frame): frame is Uint8Array => frame !== endOfStream)
    )
  }))

const chats = HttpApiBuilder.group(TroupeApi, "chats", (handlers) =>
  Effect.gen(function*() {
    const chatClient = yield* Chat.client
    const users = yield* User.client
    const config = yield* GatewayConfig
    const uploads = yield* Effect.serviceOption(Uploads)

    /** The chat's summary, if the principal owns it (404 otherwise). */
    const owned = (principal: Principal, chatId: string) =>
      Effect.tap(call(chatClient(chatId).Summary()), (summary) => Policy.requireChatOwner(principal, summary))

    const events = (chatId: string, after: number) =>
      chatEventFrames({
        chatId,
        follow: (afterSeq) => chatClient(chatId).Events({ afterSeq }),
        lastSeq: Effect.map(chatClient(chatId).Summary(), (summary) => summary.lastSeq),
        heartbeatMs: Duration.toMillis(config.heartbeat)
      }, after)

    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.WriteChats)
          const mateId = payload.mate_id ?? defaultMateId
          yield* call(users(principal.userId).GetMate({ mateId }))
          const chatId = Ids.make("c", 20)
          const title = payload.title ?? ""
          yield* call(users(principal.userId).AddChat(new AddChat({ chatId, mateId })))
          const summary = yield* call(chatClient(chatId).Create(new Create({ ownerId: principal.userId, mateId, ...(payload.title !== undefined ? { title } : {}) })))
          return toChat(summary)
        }))
      .handle("list", ({ urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.ReadChats)
          const page = yield* call(users(principal.userId).Chats({ limit: urlParams.limit ?? 50, ...(urlParams.before !== undefined ? { before: urlParams.before } : {}) }))
          const summaries = yield* Effect.forEach(
            page.chats,
            (ref) => call(chatClient(ref.chatId).Summary()).pipe(Effect.option),
            { concurrency: 8 }
          )
          return { chats: summaries.flatMap((s) => (Option.isSome(s) ? [toChat(s.value)] : [])), next_before: page.before }
        }))
      .handle("get", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.ReadChats)
          const summary = yield* owned(principal, path.id)
          const history = yield* call(chatClient(path.id).History({ limit: urlParams.limit ?? 50, ...(urlParams.before !== undefined ? { before: urlParams.before } : {}) }))
          return { chat: toChat(summary), messages: history.messages.map(toMessage), next_before: history.before }
        }))
      .handle("post", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.WriteChats)
          const scope = Policy.spendScope(principal)
          if (payload.attachments && payload.attachments.length > 0) {
            if (Option.isNone(uploads)) return yield* fail(503, "uploads_unavailable", "This server takes no uploads")
            yield* owned(principal, path.id)
            // linked by the client's message id before the message exists: the turn finds them when it starts
            yield* uploads.value.attach(principal.userId, payload.attachments, path.id, payload.client_message_id).pipe(
              Effect.mapError((e) => e._tag === "UploadRefused" ? new ApiFailure({ status: e.status, code: e.code, message: e.message }) : new ApiFailure({ status: 503, code: e.code, message: e.message }))
            )
          }
          const posted = yield* call(chatClient(path.id).Post(
            new Post({
              clientMessageId: payload.client_message_id,
              authorId: principal.userId,
              text: payload.text,
              ...(scope ? { scope } : {}),
              ...Option.match(principal.apiKey, { onNone: () => ({}), onSome: (k) => ({ apiKeyId: k.keyId }) })
            })
          ))
          // the post's line ties the turn to who asked (the turn's own line comes from its runner)
          yield* Effect.logInfo("chat post").pipe(Effect.annotateLogs({
            chat_id: path.id,
            turn_id: posted.turnId,
            message_id: posted.messageId,
            user_id: principal.userId,
            ...(Option.isSome(principal.apiKey) ? { api_key_id: principal.apiKey.value.keyId } : {}),
            duplicate: posted.duplicate
          }))
          return { message_id: posted.messageId, turn_id: posted.turnId, seq: posted.seq, duplicate: posted.duplicate }
        }))
      .handle("events", ({ path, urlParams, request }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.ReadChats)
          yield* owned(principal, path.id)
          const after = urlParams.after ?? lastEventId(request.headers["last-event-id"]) ?? 0
          // counted open while the response streams (until the client goes or the stream ends)
          return HttpServerResponse.stream(Stream.unwrapScoped(Effect.as(Metrics.trackStream("chat"), events(path.id, after))), {
            contentType: "text/event-stream; charset=utf-8",
            headers: { "cache-control": "no-cache, no-transform", "x-accel-buffering": "no", connection: "keep-alive" }
          })
        }))
      .handle("cancel", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.WriteChats)
          let turnId = payload?.turn_id
          if (!turnId) {
            const summary = yield* owned(principal, path.id)
            if (!summary.runningTurn) return yield* fail(409, "no_running_turn", "No turn is running in this chat")
            turnId = summary.runningTurn
          }
          const status = yield* call(chatClient(path.id).Cancel(new Cancel({ turnId, byUserId: principal.userId })))
          return { turn_id: turnId, status }
        }))
      .handle("confirm", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.WriteChats)
          yield* call(chatClient(path.id).Confirm(new Confirm({ callId: payload.call_id, approve: payload.approve, byUserId: principal.userId })))
          return { call_id: payload.call_id, approved: payload.approve }
        }))
      .handle("rename", ({ path, payload }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.WriteChats)
          return toChat(yield* call(chatClient(path.id).Rename(new Rename({ title: payload.title, byUserId: principal.userId }))))
        }))
      .handle("deleteMessage", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.WriteChats)
          yield* call(chatClient(path.id).DeleteMessage(new DeleteMessage({ messageId: path.message_id, byUserId: principal.userId })))
          return noContent()
        }))
      .handle("delete", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.WriteChats)
          yield* owned(principal, path.id)
          yield* call(chatClient(path.id).Delete(new Delete({ byUserId: principal.userId })))
          yield* call(users(principal.userId).RemoveChat(new RemoveChat({ chatId: path.id })))
          // the chat's files go with it (crypto-shredded)
          if (Option.isSome(uploads)) {
            yield* uploads.value.shredChat(path.id).pipe(Effect.catchAll((e) => Effect.logError("could not shred the chat's files", e)))
          }
          return noContent()
        }))
      .handle("share", ({ path }) =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          yield* Policy.require(principal, Policy.WriteChats)
          const share = yield* call(chatClient(path.id).Share({ byUserId: principal.userId }))
          const base = Option.getOrElse(config.publicUrl, () => "").replace(/\/$/, "")
          return { token: share.token, key: share.key, url: `${base}/s/${share.token}#${share.key}` }
        }))
  }))

const shares = HttpApiBuilder.group(TroupeApi, "shares", (handlers) =>
  Effect.gen(function*() {
    const chatClient = yield* Chat.client
    return handlers.handle("get", ({ path }) =>
      Effect.gen(function*() {
        const dot = path.token.indexOf(".")
        const chatId = path.token.slice(0, dot)
        const shareId = path.token.slice(dot + 1)
        const snapshot = yield* call(chatClient(chatId).ReadShare({ shareId }))
        return { ciphertext: snapshot.ciphertext, created_at: snapshot.createdAt }
      }))
  }))

export const layer = Layer.mergeAll(chats, shares)
