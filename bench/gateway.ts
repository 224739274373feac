/**
 * `npm run bench:gateway`: the gateway's overhead and its streaming latency, in one run.
 *
 * 1. Authenticated `GET /v1/me` (JWT check, revocation lookup, per-user rate limit, a volatile
 *    call to the User entity, JSON encoding) against a bare handler on the same server stack
 *    (the runtime's HTTP server and middleware), requests/s with keep-alive clients in a worker
 *    thread, alternating bare/me rounds to spread the machine's noise over both.
 * 2. `POST /v1/chats/{id}/messages` → first SSE event on that chat's open stream, with 50
 *    streams open at once: posts paced evenly at 50/s (the headline `first_event_*`), all 50
 *    posts at the same instant (`first_event_burst_*`), paced at 10/s (`first_event_10_per_s_*`),
 *    and one stream alone (the floor).
 *
 * Runs `troupe start` in this process on Postgres (TEST_DATABASE_URL, default local) with the
 * memory cache. The last line is one JSON object with `me_ratio_to_bare` and `first_event_p99_ms`.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as NodeWorker from "node:worker_threads"
import { Routes } from "../runtime/Http.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import { initialInvite, request, startServer, verificationCode } from "../gateway/testing.ts"

const say = (line: string) => process.stdout.write(line + "\n")

const loadWorker = `
const { parentPort, workerData } = require("node:worker_threads")
const http = require("node:http")
const { port, path, token, concurrency, durationMs } = workerData
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
let ok = 0, failed = 0
const end = Date.now() + durationMs
const one = () => new Promise((resolve) => {
  const req = http.request({ host: "127.0.0.1", port, path, agent, headers: token ? { authorization: "Bearer " + token } : {} }, (res) => {
    res.resume()
    res.on("end", () => { res.statusCode === 200 ? ok++ : failed++; resolve() })
  })
  req.on("error", () => { failed++; resolve() })
  req.end()
})
const loop = async () => { while (Date.now() < end) await one() }
Promise.all(Array.from({ length: concurrency }, loop)).then(() => { agent.destroy(); parentPort.postMessage({ ok, failed }) })
`

const load = (port: number, path: string, token: string | undefined, durationMs: number, concurrency = 32) =>
  new Promise<{ ok: number; failed: number; seconds: number }>((resolve, reject) => {
    const started = performance.now()
    const worker = new NodeWorker.Worker(loadWorker, { eval: true, workerData: { port, path, token, concurrency, durationMs } })
    worker.once("message", (m: { ok: number; failed: number }) => resolve({ ...m, seconds: (performance.now() - started) / 1000 }))
    worker.once("error", reject)
  })

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

const round2 = (n: number) => Math.round(n * 100) / 100

/** An open SSE stream that reports each event's arrival. */
const openStream = async (url: string, token: string, onEvent: (event: string, seq: number) => void) => {
  const controller = new AbortController()
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal })
  if (res.status !== 200) throw new Error(`events: ${res.status}`)
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let buffer = ""
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        buffer += decoder.decode(value, { stream: true })
        let cut: number
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut)
          buffer = buffer.slice(cut + 2)
          const id = /^id: (\d+)$/m.exec(block)
          const event = /^event: (\w+)$/m.exec(block)
          if (id && event) onEvent(event[1]!, Number(id[1]))
        }
      }
    } catch {
      // aborted
    }
  })()
  return { close: () => controller.abort(), pump }
}

const main = async () => {
  const db = await createTestDatabase("benchgw")
  const bare = Routes.use((router) => router.get("/bench/bare", Effect.succeed(HttpServerResponse.unsafeJson({ ok: true }))))
  const unlimited = { points: 100_000_000, duration: Duration.seconds(60) }
  const server = await startServer({
    databaseUrl: db.url,
    extraRoutes: bare,
    settings: { rateLimits: { perIp: unlimited, perUser: unlimited, auth: unlimited, loginFailures: unlimited }, startingCredits: 1_000_000 }
  })
  try {
    const port = Number(new URL(server.url).port)
    const email = "bench@example.com"
    const signup = await request(server, "POST", "/v1/auth/signup", { body: { email, username: "bench", password: "a long password 1", invite_code: initialInvite(server.dataDir) } })
    if (signup.status !== 201) throw new Error(`signup: ${JSON.stringify(signup.body)}`)
    await request(server, "POST", "/v1/auth/verify_email", { body: { email, code: verificationCode(server.dataDir, email) } })
    const login = await request(server, "POST", "/v1/auth/login", { body: { login: "bench", password: "a long password 1" } })
    const token = login.body.access_token as string

    // 1. GET /v1/me against the bare handler
    const seconds = Number(process.env.BENCH_SECONDS ?? 4)
    await load(port, "/bench/bare", undefined, 1500)
    await load(port, "/v1/me", token, 1500)
    const totals = { bare: { ok: 0, failed: 0, seconds: 0 }, me: { ok: 0, failed: 0, seconds: 0 } }
    for (let round = 0; round < 2; round++) {
      for (const [name, path, auth] of [["bare", "/bench/bare", undefined], ["me", "/v1/me", token]] as const) {
        const r = await load(port, path, auth, seconds * 1000)
        totals[name].ok += r.ok
        totals[name].failed += r.failed
        totals[name].seconds += r.seconds
        say(`round ${round + 1} ${name.padEnd(4)} ${Math.round(r.ok / r.seconds)} req/s (${r.failed} failed)`)
      }
    }
    const bareRps = totals.bare.ok / totals.bare.seconds
    const meRps = totals.me.ok / totals.me.seconds
    if (totals.me.failed > 0 || totals.bare.failed > 0) say(`failures: bare ${totals.bare.failed}, me ${totals.me.failed}`)
    say(`GET /v1/me ${Math.round(meRps)} req/s vs bare ${Math.round(bareRps)} req/s: ratio ${round2(meRps / bareRps)}`)

    // 2. POST …/messages → first SSE event, 50 streams at once
    const streams = 50
    const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
    const chats: Array<string> = []
    for (let i = 0; i < streams; i++) chats.push((await request(server, "POST", "/v1/chats", { token, body: { title: `bench ${i}` } })).body.id)
    const sentAt = new Map<string, number>()
    const firstAfter = new Map<string, number>()
    const latencies: Array<number> = []
    const acks: Array<number> = []
    const done = new Map<string, () => void>()
    const open = await Promise.all(chats.map((chatId) =>
      openStream(`${server.url}/v1/chats/${chatId}/events`, token, (event, seq) => {
        const sent = sentAt.get(chatId)
        if (sent !== undefined && seq > (firstAfter.get(chatId) ?? -1)) {
          latencies.push(performance.now() - sent)
          sentAt.delete(chatId)
        }
        if (event === "done" || event === "error" || event === "cancelled") done.get(chatId)?.()
      })
    ))
    /** One round: every chat posts once, `spacingMs` apart (0: all at once), until every turn is done. */
    const round = async (label: string, spacingMs: number, into: Array<number>) => {
      const finished = Promise.all(chats.map((chatId) => new Promise<void>((resolve) => done.set(chatId, resolve))))
      await Promise.all(chats.map(async (chatId, i) => {
        const summary = await request(server, "GET", `/v1/chats/${chatId}?limit=1`, { token })
        firstAfter.set(chatId, summary.body.chat.last_seq)
        if (spacingMs > 0) await new Promise((resolve) => setTimeout(resolve, i * spacingMs))
        const start = performance.now()
        sentAt.set(chatId, start)
        const posted = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token, body: { client_message_id: `${label}`, text: `${label}: hello` } })
        acks.push(performance.now() - start)
        if (posted.status !== 202) throw new Error(`post: ${posted.status} ${JSON.stringify(posted.body)}`)
      }))
      await finished
      into.push(...latencies.splice(0, latencies.length))
    }
    const paced: Array<number> = []
    const burst: Array<number> = []
    for (let r = 0; r < rounds; r++) await round(`paced${r}`, 1000 / streams, paced)
    const pacedAcks = acks.splice(0, acks.length)
    const slow: Array<number> = []
    for (let r = 0; r < 2; r++) await round(`slow${r}`, 100, slow)
    acks.splice(0, acks.length)
    for (let r = 0; r < Math.max(1, Math.floor(rounds / 2)); r++) await round(`burst${r}`, 0, burst)
    const burstAcks = acks.splice(0, acks.length)
    // the same with one stream and one post at a time: the floor under the 50-stream figure
    const single: Array<number> = []
    const lone = chats[0]!
    for (let i = 0; i < 10; i++) {
      const finished = new Promise<void>((resolve) => done.set(lone, resolve))
      const summary = await request(server, "GET", `/v1/chats/${lone}?limit=1`, { token })
      firstAfter.set(lone, summary.body.chat.last_seq)
      const before = latencies.length
      sentAt.set(lone, performance.now())
      await request(server, "POST", `/v1/chats/${lone}/messages`, { token, body: { client_message_id: `single${i}`, text: "alone" } })
      await finished
      single.push(latencies[before]!)
    }
    for (const s of open) s.close()
    say(`POST → first SSE event, 1 stream, sequential: p50 ${round2(percentile(single, 50))} ms, max ${round2(Math.max(...single))} ms`)
    const p50 = percentile(paced, 50)
    const p99 = percentile(paced, 99)
    say(`POST → first SSE event, ${streams} streams open, posts paced at ${streams}/s (${paced.length} samples): p50 ${round2(p50)} ms, p99 ${round2(p99)} ms, max ${round2(Math.max(...paced))} ms; 202 p50 ${round2(percentile(pacedAcks, 50))} ms, p99 ${round2(percentile(pacedAcks, 99))} ms`)
    say(`POST → first SSE event, ${streams} streams open, posts paced at 10/s (${slow.length} samples): p50 ${round2(percentile(slow, 50))} ms, p99 ${round2(percentile(slow, 99))} ms`)
    say(`POST → first SSE event, ${streams} streams, ${streams} posts at once (${burst.length} samples): p50 ${round2(percentile(burst, 50))} ms, p99 ${round2(percentile(burst, 99))} ms; 202 p50 ${round2(percentile(burstAcks, 50))} ms, p99 ${round2(percentile(burstAcks, 99))} ms`)
    say(JSON.stringify({
      me_rps: Math.round(meRps),
      bare_rps: Math.round(bareRps),
      me_ratio_to_bare: round2(meRps / bareRps),
      first_event_p50_ms: round2(p50),
      first_event_p99_ms: round2(p99),
      first_event_10_per_s_p50_ms: round2(percentile(slow, 50)),
      first_event_10_per_s_p99_ms: round2(percentile(slow, 99)),
      first_event_single_p50_ms: round2(percentile(single, 50)),
      first_event_burst_p50_ms: round2(percentile(burst, 50)),
      first_event_burst_p99_ms: round2(percentile(burst, 99)),
      post_ack_p50_ms: round2(percentile(pacedAcks, 50)),
      post_ack_p99_ms: round2(percentile(pacedAcks, 99)),
      streams,
      samples: paced.length
    }))
  } finally {
    await server.close()
    await db.drop()
  }
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`bench:gateway failed: ${(e as Error).stack ?? e}\n`)
  process.exit(1)
})
