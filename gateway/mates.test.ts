/**
 * Mates that think, through the real gateway and chat entity on the embedded default, with the
 * `ai` app's turn runner against scripted OpenAI-compatible providers over real HTTP and SSE:
 * a streamed reply followed by an SSE resume, the turn billed from the reported usage at the
 * admin's price, parallel tool calls of real skills (`web.read` of slow pages), a tool outside the
 * allowlist, a failing skill, failover before the first token and none after it, the providers'
 * health for admins, and `/app.skill {json}` without a provider.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as NodeHttp from "node:http"
import * as Option from "effect/Option"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Entities from "../entities/index.ts"
import * as Ai from "../skills/ai/App.ts"
import * as Llm from "../skills/ai/Llm.ts"
import * as Loop from "../skills/ai/Loop.ts"
import * as Settings from "../skills/ai/Settings.ts"
import * as Scripted from "../skills/ai/testing/ScriptedServer.ts"
import * as Tokens from "../skills/ai/Tokens.ts"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { onboard, readEvents, type SseEvent } from "./testing/flows.ts"
import { initialInvite, layerSkills, request, startServer } from "./testing/server.ts"
import type { TestServer } from "./testing/server.ts"

let primary: Scripted.ScriptedServer
let backup: Scripted.ScriptedServer
let pages: NodeHttp.Server
let pagesOrigin = ""
let server: TestServer
let bare: TestServer
let admin = ""
let token = ""

const provider = (name: string, s: Scripted.ScriptedServer, priority: number) =>
  Settings.providerOf({
    name,
    base_url: s.baseUrl,
    models: [{ name: `${name}-model`, family: "scripted", context_window: 8192, max_output_tokens: 256 }],
    priority,
    first_token_timeout_ms: 1500,
    idle_timeout_ms: 1000,
    breaker: { failures: 2, cooldown_ms: 60_000 }
  }, Option.none())

const withLlm = (settings: Settings.LlmSettings) =>
  Ai.layerEntities(Entities.layerWith).pipe(Layer.provide(Layer.merge(layerSkills, Llm.layer(settings).pipe(Layer.provide(NodeHttpClient.layerUndici)))))

beforeAll(async () => {
  primary = await Scripted.start()
  backup = await Scripted.start()
  pages = NodeHttp.createServer((req, res) => {
    const delay = Number(new URL(req.url ?? "/", "http://x").searchParams.get("delay") ?? "0")
    setTimeout(() => {
      res.writeHead(200, { "content-type": "text/html" })
      res.end(`<html><head><title>Page ${delay}</title></head><body><article><p>This page took ${delay} ms.</p></article></body></html>`)
    }, delay)
  })
  await new Promise<void>((resolve) => pages.listen(0, "127.0.0.1", resolve))
  const address = pages.address()
  pagesOrigin = `127.0.0.1:${typeof address === "object" && address ? address.port : 0}`
  // web.read may reach this test's page server (the operator's private-host allowlist)
  process.env.TROUPE_SKILLS_ALLOWED_PRIVATE_HOSTS = pagesOrigin
  server = await startServer({
    settings: { signup: { _tag: "Open" }, startingCredits: 1_000_000 },
    entities: withLlm(Settings.make({ providers: [provider("primary", primary, 1), provider("backup", backup, 2)] }))
  })
  bare = await startServer({ settings: { signup: { _tag: "Open" } }, entities: withLlm(Settings.make({ providers: [] })) })
  admin = (await onboard(server, "root", initialInvite(server.dataDir))).access
  token = (await onboard(server, "ada")).access
}, 180_000)
afterAll(async () => {
  await server?.close()
  await bare?.close()
  await primary?.close()
  await backup?.close()
  await new Promise<void>((resolve) => pages.close(() => resolve()))
})

const chatWith = async (s: TestServer, t: string, mateId?: string) => {
  const chat = await request(s, "POST", "/v1/chats", { token: t, body: mateId ? { mate_id: mateId } : {} })
  expect(chat.status, JSON.stringify(chat.body)).toBe(201)
  return chat.body.id as string
}

let posts = 0
const say = async (s: TestServer, t: string, chatId: string, text: string) => {
  const posted = await request(s, "POST", `/v1/chats/${chatId}/messages`, { token: t, body: { client_message_id: `m${++posts}`, text } })
  expect(posted.status, JSON.stringify(posted.body)).toBe(202)
  const { events } = await readEvents(s, `/v1/chats/${chatId}/events`, t, (es) =>
    es.some((e) => e.data.turn_id === posted.body.turn_id && (e.event === "done" || e.event === "error" || e.event === "cancelled")))
  return events.filter((e) => e.data.turn_id === posted.body.turn_id)
}

const textOf = (events: ReadonlyArray<SseEvent>) => events.filter((e) => e.event === "delta").map((e) => e.data.text).join("")

describe("mates that think", () => {
  it("streams the model's reply, bills the reported usage at the admin's price, and resumes the stream", async () => {
    const price = await request(server, "PUT", "/v1/admin/models/primary-model/price", { token: admin, body: { input: 1000, output: 2000 } })
    expect(price.status).toBe(200)
    primary.respond(() => ({ ...Scripted.text("Hello Ada, nice to meet you.", { delayMs: 5 }), usage: { prompt_tokens: 17, completion_tokens: 6 } }))
    const chatId = await chatWith(server, token)
    const events = await say(server, token, chatId, "Hi there")
    expect(events.map((e) => e.event).at(-1)).toBe("done")
    expect(textOf(events)).toBe("Hello Ada, nice to meet you.")
    // 17 × 1 + 6 × 2 credits
    expect(events.find((e) => e.event === "charge")!.data.amount).toBe(29)
    const sent = primary.requests.at(-1)!.body
    expect(sent.messages).toEqual([{ role: "system", content: "You are a helpful team-mate." }, { role: "user", content: "Hi there" }])
    expect(sent.model).toBe("primary-model")
    // a client that reconnects after the first event gets exactly the rest
    const all = await readEvents(server, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.event === "done"))
    const resumed = await readEvents(server, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.event === "done"), { "last-event-id": String(all.events[1]!.id) })
    expect(resumed.events.map((e) => e.id)).toEqual(all.events.slice(2).map((e) => e.id))
    // the history goes to the model with the next message
    primary.respond(() => Scripted.text("Again."))
    await say(server, token, chatId, "And again")
    expect(primary.requests.at(-1)!.body.messages.slice(1)).toEqual([
      { role: "user", content: "Hi there" },
      { role: "assistant", content: "Hello Ada, nice to meet you." },
      { role: "user", content: "And again" }
    ])
  })

  it("runs the model's parallel calls of allowed skills, refuses the others, reports failures, and answers", async () => {
    const mate = await request(server, "POST", "/v1/mates", { token, body: { name: "Reader", allowed_skills: ["web.read", "math"] } })
    expect(mate.status, JSON.stringify(mate.body)).toBe(201)
    primary.respond((r) =>
      r.body.messages.at(-1).role === "tool"
        ? Scripted.text("Both pages read.")
        : Scripted.toolCalls([
          { id: "slow", name: "web__read", arguments: { url: `http://${pagesOrigin}/a?delay=1900` } },
          { id: "slower", name: "web__read", arguments: { url: `http://${pagesOrigin}/b?delay=2000` } },
          { id: "nope", name: "text__summarize", arguments: { text: "x" } },
          { id: "bad", name: "math__calculate", arguments: { expression: "1/0" } }
        ], { split: 9 }))
    const chatId = await chatWith(server, token, mate.body.id)
    const events = await say(server, token, chatId, "Read both")
    expect(textOf(events)).toBe("Both pages read.")
    const calls = events.filter((e) => e.event === "skill_call")
    expect(calls.map((e) => `${e.data.app}.${e.data.skill}`).sort()).toEqual(["math.calculate", "text.summarize", "web.read", "web.read"])
    const results = new Map(events.filter((e) => e.event === "skill_result").map((e) => [e.data.call_id, e.data]))
    const byApp = (skill: string) => calls.filter((c) => `${c.data.app}.${c.data.skill}` === skill).map((c) => results.get(c.data.call_id))
    expect(byApp("web.read").map((r) => r.ok)).toEqual([true, true])
    expect(byApp("web.read").map((r) => r.output.title).sort()).toEqual(["Page 1900", "Page 2000"])
    expect(byApp("text.summarize")[0]).toMatchObject({ ok: false, error: expect.stringMatching(/^skill_not_allowed/) })
    expect(byApp("math.calculate")[0]).toMatchObject({ ok: false })
    // the two reads overlapped: both results arrived about when the slower page answered (2 s), well before the sum (3.9 s)
    const called = Math.min(...calls.map((c) => new Date(c.data.at).getTime()))
    const lastResult = Math.max(...events.filter((e) => e.event === "skill_result" && e.data.ok).map((e) => new Date(e.data.at).getTime()))
    expect(lastResult - called).toBeGreaterThanOrEqual(1900)
    expect(lastResult - called).toBeLessThan(1.6 * 2000)
    // the model got every result back, errors included
    const toolMessages = primary.requests.at(-1)!.body.messages.filter((m: { role: string }) => m.role === "tool")
    expect(toolMessages).toHaveLength(4)
  })

  it("cancelled mid-stream: stops the provider, keeps what was said, charges exactly the prompt sent and the output received", async () => {
    // one credit a token, in and out: the charge is the token count itself
    const price = await request(server, "PUT", "/v1/admin/models/primary-model/price", { token: admin, body: { input: 1000, output: 1000 } })
    expect(price.status).toBe(200)
    primary.respond(() => ({ chunks: Array.from({ length: 80 }, (_, i) => ({ content: `word${i} `, delayMs: 40 })) }))
    const chatId = await chatWith(server, token)
    const before = (await request(server, "GET", "/v1/credits", { token })).body
    const text = "Tell me a long story please"
    const posted = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token, body: { client_message_id: `m${++posts}`, text } })
    expect(posted.status).toBe(202)
    const turnId = posted.body.turn_id as string
    const ended = readEvents(server, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.data.turn_id === turnId && (e.event === "done" || e.event === "cancelled" || e.event === "error")))
    // cancel once the provider has streamed a few words
    const call = primary.requests.length
    await primary.waitForRequests(call + 1, 30_000)
    for (let i = 0; i < 600 && (primary.requests.at(-1)?.chunksSent ?? 0) < 5; i++) await new Promise((r) => setTimeout(r, 25))
    const cancel = await request(server, "POST", `/v1/chats/${chatId}/cancel`, { token, body: { turn_id: turnId } })
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(200)
    expect(cancel.body).toEqual({ turn_id: turnId, status: "cancelled" })
    const events = (await ended).events.filter((e) => e.data.turn_id === turnId)
    expect(events.at(-1)!.event).toBe("cancelled")
    // the provider was stopped: its stream was cut well before its 80 words
    for (let i = 0; i < 40 && !primary.requests.at(-1)!.aborted; i++) await new Promise((r) => setTimeout(r, 50))
    expect(primary.requests.at(-1)!.aborted).toBe(true)
    expect(primary.requests.at(-1)!.chunksSent).toBeLessThan(80)
    // what was said is kept, and charged with the prompt: the system prompt, the message and the
    // tools offered (the default mate's first-party skills), counted locally
    const said = textOf(events)
    expect(said.length).toBeGreaterThan(0)
    expect(said).toMatch(/^word0 word1 /)
    const history = await request(server, "GET", `/v1/chats/${chatId}`, { token })
    const kept = history.body.messages.find((m: { role: string; turn_id: string }) => m.role === "mate" && m.turn_id === turnId)
    expect(kept.text).toBe(said)
    expect(kept.status).toBe("cancelled")
    const tokens = await Effect.runPromise(Tokens.make)
    const offered = (primary.requests.at(-1)!.body.tools ?? []) as Array<{ function: { name: string; description: string; parameters: Record<string, unknown> } }>
    expect(offered.map((t) => t.function.name)).toContain("math__calculate")
    const toolTokens = Loop.toolsTokens(tokens, offered.map((t) => t.function))
    const prompt = Tokens.perAnswer + 2 * Tokens.perMessage + tokens.count("You are a helpful team-mate.") + tokens.count(text) + toolTokens
    const charged = events.find((e) => e.event === "charge")!.data.amount
    expect(charged).toBe(prompt + tokens.count(said))
    const after = (await request(server, "GET", `/v1/credits`, { token })).body
    expect(after).toEqual({ available: before.available - charged, reserved: 0 })
  })

  it("fails over before the first token, never after it, and shows the providers' health to admins", async () => {
    primary.respond(() => ({ status: 503 }))
    backup.respond(() => Scripted.text("From the backup."))
    const chatId = await chatWith(server, token)
    const events = await say(server, token, chatId, "anyone there?")
    expect(textOf(events)).toBe("From the backup.")
    expect(events.at(-1)!.event).toBe("done")

    primary.respond(() => ({ chunks: [{ content: "Half an " }, { content: "answer" }, { stall: true }] }))
    // the breaker of `primary` has one failure (of two that open it): it is tried, fails mid-answer, and no backup is asked
    const before = backup.requests.length
    primary.requests.length = 0
    const cut = await say(server, token, chatId, "and now?")
    expect(primary.requests).toHaveLength(1)
    expect(cut.at(-1)!.event).toBe("error")
    expect(cut.at(-1)!.data.code).toBe("provider_failed")
    expect(textOf(cut)).toBe("Half an answer")
    expect(backup.requests.length).toBe(before)
    // runners publish their providers' health within a quarter second of a change
    let health = await request(server, "GET", "/v1/admin/providers", { token: admin })
    for (let i = 0; i < 40 && health.body.providers?.find((p: { name: string }) => p.name === "primary")?.health.state !== "open"; i++) {
      await new Promise((r) => setTimeout(r, 100))
      health = await request(server, "GET", "/v1/admin/providers", { token: admin })
    }
    expect(health.status).toBe(200)
    const primaryHealth = health.body.providers.find((p: { name: string }) => p.name === "primary")
    expect(primaryHealth).toMatchObject({ base_url: primary.baseUrl, api_key_set: false, priority: 1, source: "providers" })
    expect(primaryHealth.health.failures).toBeGreaterThanOrEqual(2)
    expect(primaryHealth.health.state).toBe("open")
    expect(JSON.stringify(health.body)).not.toMatch(/sk-/)
  })

  it("answers without a provider with the setup help and runs /app.skill {json}", async () => {
    const user = (await onboard(bare, "grace", initialInvite(bare.dataDir))).access
    const mate = await request(bare, "POST", "/v1/mates", { token: user, body: { name: "Calc", allowed_skills: ["math"] } })
    const chatId = await chatWith(bare, user, mate.body.id)
    const help = await say(bare, user, chatId, "hello?")
    expect(textOf(help)).toMatch(/no language model is configured/)
    expect(help.at(-1)!.event).toBe("done")
    const calc = await say(bare, user, chatId, "/math.calculate {\"expression\": \"6 * 7\"}")
    expect(calc.find((e) => e.event === "skill_result")!.data).toMatchObject({ ok: true, output: { result: 42 } })
    expect(textOf(calc)).toMatch(/"result": 42/)
    const refused = await say(bare, user, chatId, "/web.read {\"url\": \"https://example.com\"}")
    expect(refused.find((e) => e.event === "skill_result")!.data.error).toMatch(/^skill_not_allowed/)
  })
})
