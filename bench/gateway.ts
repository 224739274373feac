/**
 * `npm run bench:gateway`: the gateway's overhead and its streaming latency, in one run.
 *
 * 1. Authenticated `GET /v1/me` (JWT check, revocation lookup, per-user rate limit, a volatile
 *    call to the User entity, JSON encoding) against a bare handler on the same server stack
 *    (the runtime's HTTP server and middleware), requests/s with keep-alive clients in a worker
 *    thread, alternating bare/me rounds to spread the machine's noise over both.
 * 2. `POST /v1/chats/{id}/messages` → first SSE event on that chat's open stream, with 50
 *    streams open at once, the client in a worker thread (`gateway-streams.ts`, so it does not
 *    share the server's event loop): after one warm-up round, posts paced evenly at 50/s (the
 *    headline `first_event_*`; `BENCH_RATE` changes the rate), all 50 posts at the same instant
 *    (`first_event_burst_*`), paced at 10/s (`first_event_10_per_s_*`), and one stream alone (the
 *    floor). During the paced rounds it also reads how busy the server's event loop was and its
 *    thread's CPU time per post and turn.
 *
 * Runs `troupe start` in this process on Postgres (TEST_DATABASE_URL, default local) with the
 * memory cache. The last line is one JSON object with `me_ratio_to_bare` and `first_event_p99_ms`.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import * as NodePerf from "node:perf_hooks"
import * as NodeWorker from "node:worker_threads"
import { Routes } from "../runtime/Http.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import { initialInvite, request, startServer, verificationCode } from "../gateway/testing/server.ts"
import { runInWorker, type Sample } from "./gateway-streams.ts"

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

/**
 * CPU time of this process's main thread (the server's event loop; not the client's worker, not
 * Postgres), from Linux's per-thread accounting in clock ticks (1/100 s); NaN elsewhere.
 */
const mainThreadCpuMs = () => {
  try {
    const stat = NodeFs.readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return Number.NaN
  }
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
    if (signup.body.email_verification === "sent") await request(server, "POST", "/v1/auth/verify_email", { body: { email, code: verificationCode(server.dataDir, email) } })
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
    const rate = Number(process.env.BENCH_RATE ?? streams)
    const chats: Array<string> = []
    for (let i = 0; i < streams; i++) chats.push((await request(server, "POST", "/v1/chats", { token, body: { title: `bench ${i}` } })).body.id)
    // the server's event loop during the paced phase: how busy, and its time per post (and turn)
    const utilization: Array<NodePerf.EventLoopUtilization> = []
    const cpu: Array<number> = []
    // how long the server's loop was held at worst (timer resolution 5 ms)
    const serverDelay = NodePerf.monitorEventLoopDelay({ resolution: 5 })
    const measured = await runInWorker({ url: server.url, token, chats, rounds, rate }, () => {
      utilization.push(NodePerf.performance.eventLoopUtilization())
      cpu.push(mainThreadCpuMs())
      if (utilization.length === 1) serverDelay.enable()
      else serverDelay.disable()
    })
    const loop = NodePerf.performance.eventLoopUtilization(utilization[1], utilization[0])
    const loopMsPerPost = loop.active / (rounds * streams)
    const cpuMsPerPost = (cpu[1]! - cpu[0]!) / (rounds * streams)
    const times = (samples: ReadonlyArray<Sample>) => samples.map(([ms]) => ms)
    const paced = times(measured.paced)
    const warmup = times(measured.warmup)
    const slow = times(measured.slow)
    const burst = times(measured.burst)
    const { burstAcks, pacedAcks, single } = measured
    const slowest = [...measured.paced].sort((a, b) => b[0] - a[0]).slice(0, 5)
    say(`POST → first SSE event, 1 stream, sequential: p50 ${round2(percentile(single, 50))} ms, max ${round2(Math.max(...single))} ms`)
    const p50 = percentile(paced, 50)
    const p99 = percentile(paced, 99)
    say(`POST → first SSE event, ${streams} streams open, posts paced at ${rate}/s (${paced.length} samples): p50 ${round2(p50)} ms, p99 ${round2(p99)} ms, max ${round2(Math.max(...paced))} ms; 202 p50 ${round2(percentile(pacedAcks, 50))} ms, p99 ${round2(percentile(pacedAcks, 99))} ms`)
    say(`  (before those, one warm-up round of ${warmup.length}: p50 ${round2(percentile(warmup, 50))} ms, p99 ${round2(percentile(warmup, 99))} ms)`)
    say(`  server event loop busy ${Math.round(loop.utilization * 100)}% meanwhile (${round2(loopMsPerPost)} ms per post and its turn), its thread's CPU ${round2(cpuMsPerPost)} ms per post and its turn`)
    say(`  event-loop delay meanwhile, p99 / max: server ${round2(serverDelay.percentile(99) / 1e6)} / ${round2(serverDelay.max / 1e6)} ms, client ${round2(measured.clientLoopDelay.p99)} / ${round2(measured.clientLoopDelay.max)} ms`)
    say(`  slowest of those: ${slowest.map(([ms, tag]) => `${round2(ms)} ms (${tag})`).join(", ")}`)
    say(`POST → first SSE event, ${streams} streams open, posts paced at 10/s (${slow.length} samples): p50 ${round2(percentile(slow, 50))} ms, p99 ${round2(percentile(slow, 99))} ms`)
    say(`POST → first SSE event, ${streams} streams, ${streams} posts at once (${burst.length} samples): p50 ${round2(percentile(burst, 50))} ms, p99 ${round2(percentile(burst, 99))} ms; 202 p50 ${round2(percentile(burstAcks, 50))} ms, p99 ${round2(percentile(burstAcks, 99))} ms`)
    say(JSON.stringify({
      me_rps: Math.round(meRps),
      bare_rps: Math.round(bareRps),
      me_ratio_to_bare: round2(meRps / bareRps),
      first_event_p50_ms: round2(p50),
      first_event_p99_ms: round2(p99),
      first_event_warmup_p99_ms: round2(percentile(warmup, 99)),
      first_event_10_per_s_p50_ms: round2(percentile(slow, 50)),
      first_event_10_per_s_p99_ms: round2(percentile(slow, 99)),
      first_event_single_p50_ms: round2(percentile(single, 50)),
      first_event_burst_p50_ms: round2(percentile(burst, 50)),
      first_event_burst_p99_ms: round2(percentile(burst, 99)),
      post_ack_p50_ms: round2(percentile(pacedAcks, 50)),
      post_ack_p99_ms: round2(percentile(pacedAcks, 99)),
      server_loop_utilization: round2(loop.utilization),
      server_loop_ms_per_post: round2(loopMsPerPost),
      server_thread_cpu_ms_per_post: round2(cpuMsPerPost),
      server_loop_delay_p99_ms: round2(serverDelay.percentile(99) / 1e6),
      server_loop_delay_max_ms: round2(serverDelay.max / 1e6),
      client_loop_delay_max_ms: round2(measured.clientLoopDelay.max),
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
