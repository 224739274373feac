/**
 * What an operator's dashboard reads, through the real gateway and chat entity on the embedded
 * default with the `ai` app's turn runner against a scripted OpenAI-compatible provider: request
 * series labelled by route template (never an id), turn series (started, ended by status and code,
 * duration, first-token latency), skill calls by app, skill and error code, tokens and credits
 * charged, SSE streams open while a client listens; and the log lines of a turn, a post and a skill
 * call with their ids and never their content.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Entities from "../entities/index.ts"
import * as Ai from "../skills/ai/App.ts"
import * as Llm from "../skills/ai/Llm.ts"
import * as Settings from "../skills/ai/Settings.ts"
import * as Scripted from "../skills/ai/testing/ScriptedServer.ts"
import { onboard, readEvents } from "./testing/flows.ts"
import { layerSkills, request, startServer, type TestServer } from "./testing/server.ts"

let provider: Scripted.ScriptedServer
let server: TestServer
let token = ""
const logLines: Array<Record<string, any>> = []
const originalWrite = process.stdout.write.bind(process.stdout)

beforeAll(async () => {
  // the server's JSON log lines, as a log shipper would read them from stdout
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: Array<any>) => {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8")
    for (const line of text.split("\n")) {
      if (line.startsWith("{\"timestamp\"")) {
        try {
          logLines.push(JSON.parse(line))
        } catch {
          // not one of ours
        }
      }
    }
    // the server's own lines are kept here, not printed (the test's output stays readable)
    return text.startsWith("{\"timestamp\"") ? true : originalWrite(chunk, ...rest)
  }) as typeof process.stdout.write
  provider = await Scripted.start()
  const settings = Settings.make({
    providers: [Settings.providerOf({
      name: "scripted",
      base_url: provider.baseUrl,
      models: [{ name: "scripted-model", family: "scripted", context_window: 8192, max_output_tokens: 256 }],
      priority: 1,
      first_token_timeout_ms: 5000,
      idle_timeout_ms: 5000,
      breaker: { failures: 5, cooldown_ms: 60_000 }
    }, Option.none())]
  })
  server = await startServer({
    settings: { signup: { _tag: "Open" }, startingCredits: 1_000_000 },
    logLevel: "info",
    entities: Ai.layerEntities(Entities.layerWith).pipe(Layer.provide(Layer.merge(layerSkills, Llm.layer(settings).pipe(Layer.provide(NodeHttpClient.layerUndici)))))
  })
  token = (await onboard(server, "metrics-ada")).access
}, 180_000)
afterAll(async () => {
  process.stdout.write = originalWrite
  await server?.close()
  await provider?.close()
})

const scrape = async () => {
  const response = await fetch(`${server.adminUrl}/metrics`)
  expect(response.status).toBe(200)
  return response.text()
}

/** The value of one series (labels in any order), 0 when absent. */
const value = (text: string, name: string, labels: Record<string, string> = {}): number => {
  let total = 0
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[3])
  }
  return total
}

describe("metrics and logs worth a dashboard", () => {
  it("label requests by route template, count turns, skill calls, tokens, credits and open streams, and log ids without content", async () => {
    const key = await request(server, "POST", "/v1/api_keys", { token, body: { name: "dash", scopes: ["chats", "skills:math"], spend_cap: 500_000 } })
    expect(key.status, JSON.stringify(key.body)).toBe(201)
    const apiKey = key.body.key as string
    const mate = await request(server, "POST", "/v1/mates", { token, body: { name: "Counter", allowed_skills: ["math"] } })
    expect(mate.status, JSON.stringify(mate.body)).toBe(201)
    const chat = await request(server, "POST", "/v1/chats", { token, body: { mate_id: mate.body.id } })
    expect(chat.status).toBe(201)
    const chatId = chat.body.id as string
    const before = await scrape()

    // a chat client listens while the turn runs: one stream open on the gateway
    const controller = new AbortController()
    const listening = await fetch(`${server.url}/v1/chats/${chatId}/events`, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" }, signal: controller.signal })
    expect(listening.status).toBe(200)
    const reader = listening.body!.getReader()
    void reader.read().catch(() => undefined)
    let open = 0
    for (let i = 0; i < 50 && open < 1; i++) {
      open = value(await scrape(), "troupe_sse_streams_open", { kind: "chat" })
      if (open < 1) await new Promise((r) => setTimeout(r, 100))
    }
    expect(open).toBe(1)

    // a turn that calls a skill twice (one succeeds, one fails), then answers; usage reported
    provider.respond((r) =>
      r.body.messages.at(-1).role === "tool"
        ? { ...Scripted.text("Six times seven is 42.", { firstTokenDelayMs: 30 }), usage: { prompt_tokens: 40, completion_tokens: 8 } }
        : Scripted.toolCalls([
          { id: "good", name: "math__calculate", arguments: { expression: "6 * 7" } },
          { id: "bad", name: "math__calculate", arguments: { expression: "1/0" } }
        ]))
    const secret = "what is six times seven, my secret number"
    const posted = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token: apiKey, body: { client_message_id: "dash-1", text: secret } })
    expect(posted.status, JSON.stringify(posted.body)).toBe(202)
    const turnId = posted.body.turn_id as string
    const { events } = await readEvents(server, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.data.turn_id === turnId && (e.event === "done" || e.event === "error")))
    expect(events.filter((e) => e.data.turn_id === turnId).at(-1)!.event).toBe("done")
    // a skill called straight through the API with the key
    const direct = await request(server, "POST", "/v1/apps/math/skills/calculate", { token: apiKey, body: { input: { expression: "2+2" } } })
    expect(direct.status, JSON.stringify(direct.body)).toBe(200)

    controller.abort()
    await reader.cancel().catch(() => undefined)
    let after = await scrape()
    for (let i = 0; i < 50 && value(after, "troupe_sse_streams_open", { kind: "chat" }) !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      after = await scrape()
    }
    expect(value(after, "troupe_sse_streams_open", { kind: "chat" })).toBe(0)

    // requests by template, never by id
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels)
    expect(delta("troupe_http_requests_total", { method: "POST", route: "/v1/chats/:id/messages", status: "202" })).toBe(1)
    expect(delta("troupe_http_requests_total", { method: "GET", route: "/v1/chats/:id/events", status: "200" })).toBeGreaterThanOrEqual(2)
    expect(delta("troupe_http_requests_total", { method: "POST", route: "/v1/apps/:app/skills/:skill", status: "200" })).toBe(1)
    expect(value(after, "troupe_http_requests_total", { route: "/v1/chats" })).toBeGreaterThanOrEqual(1)
    expect(after).not.toContain(chatId)
    expect(after).toMatch(/^troupe_http_request_duration_seconds_count\{route="\/v1\/chats\/:id\/messages"\} \d+$/m)
    // an unknown path is one bounded label
    await fetch(`${server.url}/v1/no/such/${chatId}`)
    expect(value(await scrape(), "troupe_http_requests_total", { route: "/v1/*", status: "404" })).toBeGreaterThanOrEqual(1)

    // the turn
    expect(after).toContain("# TYPE troupe_turns_started_total counter")
    expect(delta("troupe_turns_started_total", { attempt: "first" })).toBe(1)
    expect(delta("troupe_turns_ended_total", { status: "done", code: "none" })).toBe(1)
    expect(delta("troupe_turn_duration_seconds_count", { status: "done" })).toBe(1)
    expect(delta("troupe_turn_first_token_seconds_count")).toBe(1)
    expect(value(after, "troupe_turns_running")).toBe(0)
    // the skill calls: two in the turn, one straight
    expect(delta("troupe_skill_calls_total", { app: "math", skill: "calculate", outcome: "ok", code: "none" })).toBe(2)
    const failedCalls = after.split("\n").filter((l) => l.startsWith("troupe_skill_calls_total{") && l.includes("outcome=\"error\""))
    expect(failedCalls.length, after).toBeGreaterThanOrEqual(1)
    expect(failedCalls[0]).toMatch(/code="[a-z_]+"/)
    expect(delta("troupe_skill_call_duration_seconds_count", { app: "math", skill: "calculate" })).toBe(3)
    // tokens and credits
    expect(delta("troupe_llm_tokens_total", { kind: "input" })).toBeGreaterThanOrEqual(40)
    expect(delta("troupe_llm_tokens_total", { kind: "output" })).toBeGreaterThanOrEqual(8)
    const charged = events.find((e) => e.event === "charge" && e.data.turn_id === turnId)!.data.amount as number
    expect(delta("troupe_credits_charged_total", { source: "turn" })).toBe(charged)

    // the log lines: the post, the turn and each skill call with ids, never the message
    const keyId = key.body.id as string
    const postLine = logLines.find((l) => l.message === "chat post" && l.context.turn_id === turnId)
    expect(postLine?.context).toMatchObject({ chat_id: chatId, turn_id: turnId, api_key_id: keyId })
    const turnLine = logLines.find((l) => l.message === "turn" && l.context.turn_id === turnId)
    expect(turnLine?.context).toMatchObject({ chat_id: chatId, turn_id: turnId, status: "done", api_key_id: keyId, credits: charged })
    expect(typeof turnLine?.context.user_id).toBe("string")
    const callLines = logLines.filter((l) => l.message === "skill call" && l.context.turn_id === turnId)
    expect(callLines.map((l) => l.context.outcome).sort()).toEqual(["error", "ok"])
    expect(callLines[0]!.context).toMatchObject({ app: "math", skill: "calculate", chat_id: chatId, api_key_id: keyId })
    expect(logLines.some((l) => l.message === "skill call" && l.context.api_key_id === keyId && l.context.turn_id === undefined)).toBe(true)
    const ours = JSON.stringify(logLines.filter((l) => ["chat post", "turn", "skill call"].includes(l.message)))
    expect(ours).not.toContain("secret number")
    expect(ours).not.toContain("6 * 7")
    expect(ours).not.toContain("Six times seven")
  }, 120_000)
})
