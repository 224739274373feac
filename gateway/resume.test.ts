/**
 * The event stream survives its source breaking: a stand-in Chat entity whose `Events` stream
 * dies (as when the runner hosting the chat is killed) or ends after a few events; the gateway
 * subscribes again after the last event it sent, so the client's SSE stream has every event
 * exactly once, in order, on one connection.
 */
import * as Entity from "@effect/cluster/Entity"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { Chat, ChatNotFound, ChatSummary } from "../entities/chat/protocol.ts"
import type { ChatEvent } from "../entities/chat/protocol.ts"
import * as CreditBehaviour from "../entities/credit/behaviour.ts"
import * as UserBehaviour from "../entities/user/behaviour.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import { onboard, readEvents } from "./testing/flows.ts"
import { initialInvite, startServer } from "./testing/server.ts"
import type { TestServer } from "./testing/server.ts"

const journal: ReadonlyArray<ChatEvent> = Array.from({ length: 12 }, (_, i): ChatEvent =>
  i === 11
    ? { seq: 12, turnId: "t1", at: new Date(0), kind: "done", messageId: "m2" }
    : { seq: i + 1, turnId: "t1", at: new Date(0), kind: "delta", text: `part ${i + 1}` })

let owner = ""
const subscriptions: Array<number> = []
const stuckSubscriptions: Array<number> = []

/** A Chat whose event stream gives at most 4 events per subscription, then dies or ends. */
const flakyChat = Chat.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const unused = () => Effect.die("unused in this test")
    const summary = () =>
      new ChatSummary({ chatId: address.entityId, ownerId: owner, mateId: "default", title: "", createdAt: new Date(0), updatedAt: new Date(0), lastSeq: 12, runningTurn: null })
    return Chat.of({
      Create: unused,
      Post: unused,
      RunTurn: unused,
      Wake: unused,
      Attachment: unused,
      Confirm: unused,
      Cancel: unused,
      DeleteMessage: unused,
      Rename: unused,
      Delete: unused,
      Share: unused,
      Summary: () => (address.entityId === "gone" ? Effect.fail(new ChatNotFound({ chatId: address.entityId })) : Effect.succeed(summary())),
      History: unused,
      Events: ({ payload }) => {
        if (address.entityId === "stuck") {
          // the first subscription hangs after event 6 (neither ends nor breaks) while the chat goes on
          stuckSubscriptions.push(payload.afterSeq)
          const upTo = stuckSubscriptions.length === 1 ? 6 : 12
          return Stream.concat(Stream.fromIterable(journal.filter((e) => e.seq > payload.afterSeq && e.seq <= upTo)), Stream.never)
        }
        subscriptions.push(payload.afterSeq)
        const next = Stream.fromIterable(journal.filter((e) => e.seq > payload.afterSeq).slice(0, 4))
        const n = subscriptions.length
        // alternately: the connection dies, the stream just ends, and finally it stays open
        return payload.afterSeq >= 12 ? Stream.never : n % 2 === 1 ? Stream.concat(next, Stream.die(new Error("socket closed"))) : next
      },
      ReadShare: unused
    })
  }),
  // as the real Chat entity: a followed stream does not hold up its other requests
  { concurrency: "unbounded" }
)

let db: Awaited<ReturnType<typeof createTestDatabase>>
let server: TestServer
let user: Awaited<ReturnType<typeof onboard>>
beforeAll(async () => {
  db = await createTestDatabase("gwresume")
  server = await startServer({
    databaseUrl: db.url,
    settings: { heartbeat: Duration.seconds(5) },
    // the stand-in's deliberate defects are logged as errors by the cluster
    logLevel: "none",
    entities: Layer.mergeAll(
      UserBehaviour.layer,
      flakyChat,
      Layer.provide(CreditBehaviour.layer, Layer.succeed(CreditBehaviour.CreditConfig, CreditBehaviour.defaults))
    )
  })
  user = await onboard(server, "resumer", initialInvite(server.dataDir))
  owner = user.userId
}, 120_000)
afterAll(async () => {
  await server?.close()
  await db?.drop()
})

describe("SSE resubscription", () => {
  it("resubscribes after the last sent event when the entity stream dies or ends: no gap, no duplicate", async () => {
    const { events } = await readEvents(server, "/v1/chats/flaky/events?after=2", user.access, (es) => es.some((e) => e.event === "done"))
    expect(events.map((e) => e.id)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    expect(events.at(-1)!.data).toMatchObject({ kind: "done", turn_id: "t1", message_id: "m2" })
    // it subscribed again from the last sequence number it had sent (the cluster may also
    // redeliver a request to a restarted entity: those replays are filtered out)
    expect(subscriptions).toEqual(expect.arrayContaining([2, 6, 10]))
    expect(subscriptions).toEqual([...subscriptions].sort((a, b) => a - b))
  })

  it("resubscribes when the entity stream hangs while the chat goes on (asks the chat how far it is after 5 s of silence)", async () => {
    const started = Date.now()
    const { events } = await readEvents(server, "/v1/chats/stuck/events", user.access, (es) => es.some((e) => e.event === "done"))
    const tookMs = Date.now() - started
    expect(events.map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    expect(stuckSubscriptions).toEqual([0, 6])
    // noticed after the quiet time, not at the next heartbeat or never
    expect(tookMs).toBeGreaterThanOrEqual(4_500)
    expect(tookMs).toBeLessThan(15_000)
  }, 30_000)
})
