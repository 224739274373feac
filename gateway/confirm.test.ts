/**
 * Confirming a `write` skill call through the real gateway (`POST /v1/chats/{id}/confirm`), with
 * the mates that think answering from the scripted OpenAI-compatible server over real HTTP: the
 * model calls `notes.save` (a skill that writes), the chat's journal carries
 * `confirmation_required`, and then
 *
 * - approved: the skill runs once and its call is billed once (one settled hold of its price);
 * - declined: refused (`confirmation_declined`), never run, nothing held or billed for it;
 * - no answer: refused when `TROUPE_LLM_CONFIRM_TIMEOUT` (short here) runs out, never run or billed;
 * - a wrong `call_id` answers 404 `confirmation_not_found`, another user's chat 404 `chat_not_found`,
 *   and neither touches the waiting call.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Entities from "../entities/index.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import * as Ai from "../skills/ai/App.ts"
import * as Llm from "../skills/ai/Llm.ts"
import * as Settings from "../skills/ai/Settings.ts"
import * as Scripted from "../skills/ai/testing/ScriptedServer.ts"
import * as FirstParty from "../skills/firstparty/apps.ts"
import * as Host from "../skills/host/Host.ts"
import * as KvStore from "../skills/host/KvStore.ts"
import * as Skills from "../skills/Skills.ts"
import { onboard, readEvents, type SseEvent } from "./testing/flows.ts"
import { initialInvite, request, startServer, type TestServer } from "./testing/server.ts"
import * as NotesApp from "../skills/ai/testing/NotesApp.ts"

/** How long a `write` call waits for its answer here (long enough for a loaded machine to answer in time). */
const confirmTimeoutMs = 6000

/** The `notes` app; `saved`: what `notes.save` was asked to save, in order (the skill ran once per entry). */
const { app: notes, saved } = NotesApp.make()

let db: Awaited<ReturnType<typeof createTestDatabase>>
let llm: Scripted.ScriptedServer
let server: TestServer
let owner: { readonly userId: string; readonly access: string }
let stranger: { readonly access: string }
let chatId = ""

beforeAll(async () => {
  db = await createTestDatabase("confirm")
  llm = await Scripted.start()
  // the model saves a note; once the tool's result (or refusal) is back, it answers with what it got
  llm.respond((r) => {
    const last = r.body.messages.at(-1)
    if (last.role === "tool") return Scripted.text(`The note tool said: ${String(last.content).slice(0, 80)}`)
    const asked = String(last.content)
    return Scripted.toolCalls([{ id: `save-${r.index}`, name: "notes__save", arguments: { text: asked } }], { split: 6 })
  })
  const settings = Settings.make({
    providers: [Settings.providerOf({ name: "scripted", base_url: llm.baseUrl, models: [{ name: "scripted-model", context_window: 8192, max_output_tokens: 256 }] }, Option.none())],
    confirmTimeout: Duration.millis(confirmTimeoutMs)
  })
  const skills = Skills.layer([...FirstParty.apps, notes]).pipe(Layer.provide(Host.layer({ poolSize: 1 })), Layer.provide(KvStore.layerMemory()))
  server = await startServer({
    databaseUrl: db.url,
    settings: { signup: { _tag: "Open" }, startingCredits: 1000 },
    entities: Ai.layerEntities(Entities.layerWith).pipe(Layer.provide(Layer.merge(skills, Llm.layer(settings).pipe(Layer.provide(NodeHttpClient.layerUndici)))))
  })
  owner = await onboard(server, "noter", initialInvite(server.dataDir))
  stranger = await onboard(server, "stranger")
  const mate = await request(server, "POST", "/v1/mates", { token: owner.access, body: { name: "Scribe", model: "scripted-model", allowed_skills: ["notes"] } })
  expect(mate.status, JSON.stringify(mate.body)).toBe(201)
  const chat = await request(server, "POST", "/v1/chats", { token: owner.access, body: { mate_id: mate.body.id } })
  expect(chat.status, JSON.stringify(chat.body)).toBe(201)
  chatId = chat.body.id
}, 180_000)
afterAll(async () => {
  await server?.close()
  await llm?.close()
  await db?.drop()
})

const ended = (e: SseEvent) => e.event === "done" || e.event === "error" || e.event === "cancelled"
/** The chat's events after `after` until `until` says stop. */
const eventsAfter = async (after: number, until: (events: ReadonlyArray<SseEvent>) => boolean) =>
  (await readEvents(server, `/v1/chats/${chatId}/events?after=${after}`, owner.access, until)).events
const lastSeq = async () => (await request(server, "GET", `/v1/chats/${chatId}`, { token: owner.access })).body.chat.last_seq as number
const balance = async () => (await request(server, "GET", "/v1/credits", { token: owner.access })).body as { available: number; reserved: number }
/** The ledger entries of the hold of one skill call (its key ends with the call's id). */
const callLedger = async (turnId: string, callId: string) => {
  const page = await request(server, "GET", "/v1/credits/ledger?limit=100", { token: owner.access })
  expect(page.status).toBe(200)
  return (page.body.entries as Array<{ key: string; kind: string; bucket: string; amount: number }>).filter((e) => e.key.endsWith(`:chat:${chatId}:${turnId}:${callId}`))
}
/** What the turn was charged for its tokens (its `charge` event). */
const tokenCharge = (events: ReadonlyArray<SseEvent>) => events.find((e) => e.event === "charge")?.data.amount as number

/** Post `text`, wait until the turn asks for confirmation: the turn and the call waiting. */
const postAndAwaitConfirmation = async (text: string, clientMessageId: string) => {
  const after = await lastSeq()
  const posted = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token: owner.access, body: { client_message_id: clientMessageId, text } })
  expect(posted.status, JSON.stringify(posted.body)).toBe(202)
  const events = await eventsAfter(after, (es) => es.some((e) => e.event === "confirmation_required" || ended(e)))
  const asked = events.find((e) => e.event === "confirmation_required")
  expect(asked, JSON.stringify(events.map((e) => e.event))).toBeDefined()
  expect(asked!.data).toMatchObject({ app: "notes", skill: "save", input: { text }, timeout_ms: confirmTimeoutMs, turn_id: posted.body.turn_id })
  return { turnId: posted.body.turn_id as string, callId: asked!.data.call_id as string, after }
}

describe("POST /v1/chats/{id}/confirm with a thinking mate", () => {
  it("runs an approved write skill once and bills its call once; refuses wrong calls and other users", async () => {
    const before = await balance()
    const { after, callId, turnId } = await postAndAwaitConfirmation("buy oat milk", "approve")
    expect(saved).toEqual([])

    const wrong = await request(server, "POST", `/v1/chats/${chatId}/confirm`, { token: owner.access, body: { call_id: "no-such-call", approve: true } })
    expect(wrong.status).toBe(404)
    expect(wrong.body.error).toMatchObject({ code: "confirmation_not_found", details: { call_id: "no-such-call" } })
    const foreign = await request(server, "POST", `/v1/chats/${chatId}/confirm`, { token: stranger.access, body: { call_id: callId, approve: false } })
    expect(foreign.status).toBe(404)
    expect(foreign.body.error.code).toBe("chat_not_found")

    const approved = await request(server, "POST", `/v1/chats/${chatId}/confirm`, { token: owner.access, body: { call_id: callId, approve: true } })
    expect(approved.status, JSON.stringify(approved.body)).toBe(200)
    expect(approved.body).toEqual({ call_id: callId, approved: true })
    const events = await eventsAfter(after, (es) => es.some(ended))
    expect(events.at(-1)!.event).toBe("done")
    // the stranger's "no" never reached the call
    expect(events.find((e) => e.event === "confirmation_resolved")!.data).toMatchObject({ call_id: callId, approved: true, reason: "approved" })
    expect(events.find((e) => e.event === "skill_result")!.data).toMatchObject({ call_id: callId, ok: true, output: { saved: true } })
    expect(saved).toEqual([{ text: "buy oat milk" }])
    // answered once: a second answer finds nothing waiting
    const again = await request(server, "POST", `/v1/chats/${chatId}/confirm`, { token: owner.access, body: { call_id: callId, approve: true } })
    expect(again.status).toBe(404)
    expect(again.body.error.code).toBe("confirmation_not_found")

    // the call's own hold: reserved once, settled once, costing the skill's price (3)
    const ledger = await callLedger(turnId, callId)
    const sum = (bucket: string) => ledger.filter((e) => e.bucket === bucket).reduce((n, e) => n + e.amount, 0)
    expect(new Set(ledger.filter((e) => e.kind === "reserve").map((e) => e.key)).size).toBe(1)
    expect(new Set(ledger.filter((e) => e.kind === "settle").map((e) => e.key)).size).toBe(1)
    expect(ledger.every((e) => e.kind === "reserve" || e.kind === "settle")).toBe(true)
    expect(sum("available")).toBe(-3)
    expect(sum("reserved")).toBe(0)
    expect(await balance()).toEqual({ available: before.available - 3 - tokenCharge(events), reserved: 0 })
  }, 90_000)

  it("refuses a declined write skill without running or billing it", async () => {
    const before = await balance()
    const savedBefore = saved.length
    const { after, callId, turnId } = await postAndAwaitConfirmation("delete my notes", "decline")
    const declined = await request(server, "POST", `/v1/chats/${chatId}/confirm`, { token: owner.access, body: { call_id: callId, approve: false } })
    expect(declined.status, JSON.stringify(declined.body)).toBe(200)
    expect(declined.body).toEqual({ call_id: callId, approved: false })
    const events = await eventsAfter(after, (es) => es.some(ended))
    expect(events.at(-1)!.event).toBe("done")
    expect(events.find((e) => e.event === "confirmation_resolved")!.data).toMatchObject({ call_id: callId, approved: false, reason: "declined" })
    expect(events.find((e) => e.event === "skill_result")!.data).toMatchObject({ call_id: callId, ok: false })
    expect(events.find((e) => e.event === "skill_result")!.data.error).toMatch(/^confirmation_declined: /)
    // the model heard the refusal
    expect(llm.requests.at(-1)!.body.messages.at(-1).content).toContain("confirmation_declined")
    expect(saved).toHaveLength(savedBefore)
    expect(await callLedger(turnId, callId)).toEqual([])
    expect(await balance()).toEqual({ available: before.available - tokenCharge(events), reserved: 0 })
  }, 90_000)

  it("refuses a write skill nobody answers once the confirmation times out", async () => {
    const before = await balance()
    const savedBefore = saved.length
    const { after, callId, turnId } = await postAndAwaitConfirmation("remember the milk", "silence")
    const askedAt = Date.now()
    const events = await eventsAfter(after, (es) => es.some(ended))
    expect(Date.now() - askedAt).toBeGreaterThanOrEqual(confirmTimeoutMs - 1000)
    expect(events.at(-1)!.event).toBe("done")
    expect(events.find((e) => e.event === "confirmation_resolved")!.data).toMatchObject({ call_id: callId, approved: false, reason: "timeout" })
    expect(events.find((e) => e.event === "skill_result")!.data.error).toMatch(/^confirmation_timeout: /)
    // too late: nothing waits any more
    const late = await request(server, "POST", `/v1/chats/${chatId}/confirm`, { token: owner.access, body: { call_id: callId, approve: true } })
    expect(late.status).toBe(404)
    expect(late.body.error.code).toBe("confirmation_not_found")
    expect(saved).toHaveLength(savedBefore)
    expect(await callLedger(turnId, callId)).toEqual([])
    expect(await balance()).toEqual({ available: before.available - tokenCharge(events), reserved: 0 })
  }, 90_000)
})
