/**
 * `npm run bench:llm`: what Troupe adds to a thinking mate's first token.
 *
 * `troupe start` runs in this process on Postgres (TEST_DATABASE_URL, default local) with the `ai`
 * app's turn runner pointed at the scripted OpenAI-compatible server, which runs in a worker thread
 * and answers every turn with 200 tokens at 50 tokens/s (`BENCH_TOKEN_MS`, default 20 ms a token):
 * 100 tokens, a `math__calculate` tool call, and after the skill's result the other 100. The chat
 * clients run in another worker thread: one SSE stream per chat, 50 chats (`BENCH_CHATS`), each
 * round every chat posts once (spread over one second) and waits for its `done`; the first round
 * warms up and is reported on its own, `BENCH_ROUNDS` (default 3) more are measured.
 *
 * Per turn, in the same run:
 * - the scripted server's own first token: its request arrived → its first chunk left;
 * - the client's first token: `POST …/messages` sent → first `delta` event on the chat's stream;
 * - Troupe's extra latency = the client's first token − the server's own (both differences within
 *   one thread); split into before (post sent → the model request arrived) and relay (first chunk
 *   left → delta event arrived), which compare clocks across threads of this process.
 * - events per turn: the turn's events on its chat's stream (about one journal write each; deltas merged).
 * `BENCH_USERS` (default 1) spreads the chats over that many users, each with its own credit account
 * (one account's holds are one entity's queue).
 * The bench runs with `--max-semi-space-size=32`, the V8 flag `npm start` and the Docker image give the
 * server (a larger young generation: fewer scavenges of a streaming turn's short-lived garbage).
 * CPU per turn is the main thread's (Troupe's event loop: gateway, entities, turn runner, SQL
 * client); Postgres and the two worker threads are not in it. Memory: this process's peak RSS and
 * heap after the run. The last line is one JSON object; the target is `extra_first_token_p99_ms` < 30.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as NodeFs from "node:fs"
import * as NodePerf from "node:perf_hooks"
import type * as NodeWorker from "node:worker_threads"
import * as Entities from "../entities/index.ts"
import { initialInvite, layerSkills, request, startServer, verificationCode } from "../gateway/testing/server.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"
import * as Ai from "../skills/ai/App.ts"
import * as Llm from "../skills/ai/Llm.ts"
import * as Settings from "../skills/ai/Settings.ts"
import { type ClientRecord, type ProviderRecord, startWorker } from "./llm-workers.ts"

const say = (line: string) => process.stdout.write(line + "\n")

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
const round2 = (n: number) => Math.round(n * 100) / 100

/** CPU time of this process's main thread, from Linux's per-thread accounting (1/100 s ticks); NaN elsewhere. */
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
  const chatsCount = Number(process.env.BENCH_CHATS ?? 50)
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
  const tokenMs = Number(process.env.BENCH_TOKEN_MS ?? 20)
  const tokensBefore = 100
  const tokensAfter = 100

  // the scripted provider in its own thread
  let collect: (records: ReadonlyArray<ProviderRecord>) => void = () => {}
  let providerReady: (baseUrl: string) => void = () => {}
  const baseUrlP = new Promise<string>((resolve) => (providerReady = resolve))
  const providerWorker: NodeWorker.Worker = startWorker({ role: "provider", tokensBefore, tokensAfter, tokenMs }, (m: { baseUrl?: string; records?: ReadonlyArray<ProviderRecord> }) => {
    if (m.baseUrl) providerReady(m.baseUrl)
    if (m.records) collect(m.records)
  })
  providerWorker.once("error", (e) => {
    process.stderr.write(`provider worker failed: ${e.stack ?? e}\n`)
    process.exit(1)
  })
  const baseUrl = await baseUrlP
  const collectProvider = () =>
    new Promise<ReadonlyArray<ProviderRecord>>((resolve) => {
      collect = resolve
      providerWorker.postMessage({ collect: true })
    })

  const db = await createTestDatabase("benchllm")
  const settings = Settings.make({
    providers: [Settings.providerOf({
      name: "scripted",
      base_url: baseUrl,
      models: [{ name: "scripted-model", family: "scripted", context_window: 8192, max_output_tokens: 512 }],
      priority: 1,
      first_token_timeout_ms: 10_000,
      idle_timeout_ms: 10_000
    }, Option.none())]
  })
  const entities = Ai.layerEntities(Entities.layerWith).pipe(
    Layer.provide(Layer.merge(layerSkills, Llm.layer(settings).pipe(Layer.provide(NodeHttpClient.layerUndici))))
  )
  const unlimited = { points: 100_000_000, duration: Duration.seconds(60) }
  const server = await startServer({
    databaseUrl: db.url,
    entities,
    settings: { rateLimits: { perIp: unlimited, perUser: unlimited, auth: unlimited, loginFailures: unlimited }, startingCredits: 100_000_000 }
  })
  try {
    // BENCH_USERS (default 1): the chats are spread over this many users (each with its own credit
    // account), to compare one account's holds queueing with many accounts'
    const usersCount = Math.max(1, Number(process.env.BENCH_USERS ?? 1))
    const users: Array<{ token: string; mateId: string }> = []
    let inviteCode = initialInvite(server.dataDir)
    for (let u = 0; u < usersCount; u++) {
      const name = u === 0 ? "bench" : `bench${u}`
      const email = `${name}@example.com`
      const signup = await request(server, "POST", "/v1/auth/signup", { body: { email, username: name, password: "a long password 1", invite_code: inviteCode } })
      if (signup.status !== 201) throw new Error(`signup: ${JSON.stringify(signup.body)}`)
      if (signup.body.email_verification === "sent") await request(server, "POST", "/v1/auth/verify_email", { body: { email, code: verificationCode(server.dataDir, email) } })
      const login = await request(server, "POST", "/v1/auth/login", { body: { login: name, password: "a long password 1" } })
      const userToken = login.body.access_token as string
      const mate = await request(server, "POST", "/v1/mates", { token: userToken, body: { name: "Bench", allowed_skills: ["math"], model: "scripted-model" } })
      if (mate.status !== 201) throw new Error(`mate: ${JSON.stringify(mate.body)}`)
      users.push({ token: userToken, mateId: mate.body.id as string })
      if (u === 0 && usersCount > 1) {
        // the first user is the admin: an invite for the others
        const invite = await request(server, "POST", "/v1/admin/invites", { token: userToken, body: { uses: usersCount } })
        if (invite.status !== 201) throw new Error(`invite: ${JSON.stringify(invite.body)}`)
        inviteCode = invite.body.code as string
      }
    }
    const token = users[0]!.token
    const chats: Array<string> = []
    const tokens: Array<string> = []
    for (let i = 0; i < chatsCount; i++) {
      const owner = users[i % usersCount]!
      const chat = await request(server, "POST", "/v1/chats", { token: owner.token, body: { mate_id: owner.mateId, title: `bench ${i}` } })
      if (chat.status !== 201) throw new Error(`chat: ${JSON.stringify(chat.body)}`)
      chats.push(chat.body.id)
      tokens.push(owner.token)
    }

    // the clients in their own thread; the main thread's CPU is read at each measured round's edges
    let cpuMs = 0
    let cpuAt = 0
    let peakRss = 0
    const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100)
    const loopDelay = NodePerf.monitorEventLoopDelay({ resolution: 5 })
    const started = performance.now()
    const clientRecords = await new Promise<ReadonlyArray<ClientRecord>>((resolve, reject) => {
      const worker = startWorker({ role: "clients", url: server.url, token, chats, tokens, rounds: rounds + 1, spreadMs: 1000 }, (m: { mark?: string; round?: number; records?: ReadonlyArray<ClientRecord> }) => {
        if (m.mark === "round-start" && m.round! > 0) {
          cpuAt = mainThreadCpuMs()
          loopDelay.enable()
        }
        if (m.mark === "round-end" && m.round! > 0) {
          cpuMs += mainThreadCpuMs() - cpuAt
          loopDelay.disable()
        }
        if (m.mark === "round-end") say(`round ${m.round === 0 ? "warm-up" : m.round}: done at ${Math.round((performance.now() - started) / 1000)} s`)
        if (m.records) {
          resolve(m.records)
          void worker.terminate()
        }
      })
      worker.once("error", reject)
    })
    clearInterval(rssTimer)
    peakRss = Math.max(peakRss, process.memoryUsage.rss())
    const providerRecords = new Map((await collectProvider()).map((r) => [r.tag, r]))

    const failed = clientRecords.filter((r) => r.event !== "done" || !r.skillOk || r.deltas < tokensBefore + tokensAfter)
    if (failed.length > 0) say(`turns not complete: ${failed.length} (e.g. ${JSON.stringify(failed[0])})`)
    const turns = clientRecords.map((c) => ({ c, p: providerRecords.get(c.tag) })).filter((t): t is { c: ClientRecord; p: ProviderRecord } => t.p !== undefined)
    const figures = (round: (r: number) => boolean) => {
      const ts = turns.filter((t) => round(t.c.round))
      const client = ts.map((t) => t.c.firstDeltaAt - t.c.postedAt)
      const own = ts.map((t) => t.p.firstTokenAt - t.p.receivedAt)
      const extra = ts.map((t) => t.c.firstDeltaAt - t.c.postedAt - (t.p.firstTokenAt - t.p.receivedAt))
      const before = ts.map((t) => t.p.receivedAt - t.c.postedAt)
      const relay = ts.map((t) => t.c.firstDeltaAt - t.p.firstTokenAt)
      const turn = ts.map((t) => t.c.doneAt - t.c.postedAt)
      const events = ts.map((t) => t.c.events)
      return { n: ts.length, client, own, extra, before, relay, turn, events }
    }
    const warm = figures((r) => r === 0)
    const m = figures((r) => r > 0)
    const line = (label: string, xs: ReadonlyArray<number>) => `${label}: p50 ${round2(percentile(xs, 50))} ms, p99 ${round2(percentile(xs, 99))} ms, max ${round2(Math.max(...xs))} ms`
    say(`${chatsCount} concurrent streaming chats, ${tokensBefore + tokensAfter} tokens at ${round2(1000 / tokenMs)} tokens/s with one tool call each; ${m.n} measured turns over ${rounds} rounds (+${warm.n} warm-up)`)
    say(line("  scripted server's own first token (request → first chunk)", m.own))
    say(line("  client's first token (POST → first delta event)", m.client))
    say(line("  Troupe's extra latency to the first token", m.extra))
    say(line("    of it before the model request (POST sent → request at the provider)", m.before))
    say(line("    of it relaying the first chunk (chunk sent → delta event at the client)", m.relay))
    say(line("  whole turn (POST → done)", m.turn))
    const eventsPerTurn = m.events.reduce((a, b) => a + b, 0) / Math.max(1, m.n)
    say(`  events per turn on the chat's stream (≈ journal writes; deltas merged): ${round2(eventsPerTurn)}`)
    say(line("  warm-up round, extra latency", warm.extra))
    const cpuPerTurn = cpuMs / Math.max(1, m.n)
    const mem = process.memoryUsage()
    say(`  Troupe's main thread: ${round2(cpuPerTurn)} CPU ms per turn (${tokensBefore + tokensAfter} deltas journaled and streamed, one skill call, two model requests); event-loop delay p99 ${round2(loopDelay.percentile(99) / 1e6)} ms, max ${round2(loopDelay.max / 1e6)} ms`)
    say(`  memory: peak RSS ${Math.round(peakRss / 2 ** 20)} MB (the process with both worker threads), heap used ${Math.round(mem.heapUsed / 2 ** 20)} MB after the run`)
    say(JSON.stringify({
      chats: chatsCount,
      turns: m.n,
      incomplete_turns: failed.length,
      tokens_per_turn: tokensBefore + tokensAfter,
      tokens_per_s: round2(1000 / tokenMs),
      provider_first_token_p50_ms: round2(percentile(m.own, 50)),
      provider_first_token_p99_ms: round2(percentile(m.own, 99)),
      client_first_token_p50_ms: round2(percentile(m.client, 50)),
      client_first_token_p99_ms: round2(percentile(m.client, 99)),
      extra_first_token_p50_ms: round2(percentile(m.extra, 50)),
      extra_first_token_p99_ms: round2(percentile(m.extra, 99)),
      extra_before_request_p99_ms: round2(percentile(m.before, 99)),
      extra_relay_p99_ms: round2(percentile(m.relay, 99)),
      warmup_extra_first_token_p99_ms: round2(percentile(warm.extra, 99)),
      turn_p50_ms: round2(percentile(m.turn, 50)),
      cpu_ms_per_turn: round2(cpuPerTurn),
      events_per_turn: round2(eventsPerTurn),
      loop_delay_p99_ms: round2(loopDelay.percentile(99) / 1e6),
      peak_rss_mb: Math.round(peakRss / 2 ** 20),
      heap_used_mb: Math.round(mem.heapUsed / 2 ** 20),
      target_extra_p99_ms: 30
    }))
  } finally {
    await server.close()
    await db.drop()
    await providerWorker.terminate()
  }
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`bench:llm failed: ${(e as Error).stack ?? e}\n`)
  process.exit(1)
})
