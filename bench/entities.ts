/**
 * `npm run bench:entities` — the cluster's raw cost (a trivial entity) against our entities, in
 * one run, on the local Postgres:
 *
 * - volatile reads: Probe.Ping (baseline) vs Credit.Balance (our read path);
 * - persisted commands: Probe.Record (baseline) vs Credit.Grant;
 * - chat posts acknowledged at a fixed arrival rate (open loop), turns running behind them;
 *
 * single runner (in this process) and socket runners (two `troupe runner` processes, this
 * process a client-only member). The last line is JSON with every figure.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Chat, Create, Post } from "../entities/chat/protocol.ts"
import { Credit, Grant } from "../entities/credit/protocol.ts"
import * as Entities from "../entities/index.ts"
import { layerCluster } from "../entities/testing/cluster.ts"
import { retryTransient } from "../runtime/Cluster.ts"
import * as Probe from "../runtime/Probe.ts"
import { layerClientMember, randomMasterKey, startRunner } from "../runtime/testing/cluster.ts"
import { stop } from "../runtime/testing/process.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"

interface Figures {
  readonly ops: number
  readonly per_second: number
  readonly p50_ms: number
  readonly p99_ms: number
}

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0
const round = (n: number) => Math.round(n * 100) / 100

/** Run `op(i)` `total` times with `concurrency` in flight; closed loop. */
const closedLoop = <E, R>(total: number, concurrency: number, op: (i: number) => Effect.Effect<unknown, E, R>) =>
  Effect.gen(function*() {
    const latencies: Array<number> = []
    const start = performance.now()
    yield* Effect.forEach(Array.from({ length: total }, (_, i) => i), (i) => {
      const t = performance.now()
      return Effect.tap(op(i), () => Effect.sync(() => latencies.push(performance.now() - t)))
    }, { concurrency, discard: true })
    const seconds = (performance.now() - start) / 1000
    latencies.sort((a, b) => a - b)
    return { ops: total, per_second: round(total / seconds), p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)) } satisfies Figures
  })

/** Start `op(i)` at `rate` per second for `seconds` regardless of completions; open loop. */
const openLoop = <E, R>(rate: number, seconds: number, op: (i: number) => Effect.Effect<unknown, E, R>) =>
  Effect.gen(function*() {
    const total = Math.round(rate * seconds)
    const latencies: Array<number> = []
    const start = performance.now()
    yield* Effect.forEach(Array.from({ length: total }, (_, i) => i), (i) =>
      Effect.gen(function*() {
        const due = start + (i * 1000) / rate
        const wait = due - performance.now()
        if (wait > 0) yield* Effect.sleep(wait)
        const t = performance.now()
        yield* op(i)
        latencies.push(performance.now() - t)
      }), { concurrency: "unbounded", discard: true })
    const elapsed = (performance.now() - start) / 1000
    latencies.sort((a, b) => a - b)
    return { ops: total, per_second: round(total / elapsed), p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)) } satisfies Figures
  })

const scenario = (label: string, options: { readonly reads: number; readonly commands: number; readonly postRate: number; readonly postSeconds: number }) =>
  Effect.gen(function*() {
    const probe = yield* Probe.Probe.client
    const credit = yield* Credit.client
    const chat = yield* Chat.client
    const ids = Array.from({ length: 200 }, (_, i) => `b${i}`)
    // warm up: activate every entity once
    yield* Effect.forEach(ids, (id) => Effect.zip(probe(id).Ping(), credit(id).Balance()), { concurrency: 50, discard: true })

    const rawRead = yield* closedLoop(options.reads, 64, (i) => retryTransient(probe(ids[i % ids.length]!).Ping()))
    const ourRead = yield* closedLoop(options.reads, 64, (i) => retryTransient(credit(ids[i % ids.length]!).Balance()))
    const rawCommand = yield* closedLoop(options.commands, 32, (i) => retryTransient(probe(ids[i % ids.length]!).Record(new Probe.RecordMessage({ messageId: `${label}-${i}` }))))
    const ourCommand = yield* closedLoop(options.commands, 32, (i) => retryTransient(credit(ids[i % ids.length]!).Grant(new Grant({ key: `${label}-${i}`, amount: 10, reason: "bench" }))))

    // posts: every chat gets one post, so none waits for a turn in progress
    const posts = Math.round(options.postRate * options.postSeconds)
    yield* Effect.forEach(Array.from({ length: posts }, (_, i) => i), (i) =>
      chat(`${label}-chat-${i}`).Create(new Create({ ownerId: ids[i % ids.length]!, mateId: "echo" })), { concurrency: 32, discard: true })
    const post = yield* openLoop(options.postRate, options.postSeconds, (i) =>
      retryTransient(chat(`${label}-chat-${i}`).Post(new Post({ clientMessageId: `p${i}`, authorId: ids[i % ids.length]!, text: "benchmark message" }))))
    // the same at a quarter of the rate, once every turn of the first run has ended: latency when not saturated
    const sql = yield* SqlClient.SqlClient
    yield* sql<{ n: string }>`SELECT count(*) AS n FROM chat_turns WHERE status = 'running'`.pipe(
      Effect.repeat({ until: (rows) => Number(rows[0]!.n) === 0, schedule: Schedule.spaced("500 millis") }),
      Effect.timeout("5 minutes")
    )
    const slowRate = Math.max(1, Math.round(options.postRate / 4))
    const slowPosts = Math.round(slowRate * options.postSeconds)
    yield* Effect.forEach(Array.from({ length: slowPosts }, (_, i) => i), (i) =>
      chat(`${label}-slow-${i}`).Create(new Create({ ownerId: ids[i % ids.length]!, mateId: "echo" })), { concurrency: 32, discard: true })
    const postSlow = yield* openLoop(slowRate, options.postSeconds, (i) =>
      retryTransient(chat(`${label}-slow-${i}`).Post(new Post({ clientMessageId: `p${i}`, authorId: ids[i % ids.length]!, text: "benchmark message" }))))
    return { raw_read: rawRead, credit_balance_read: ourRead, raw_persisted: rawCommand, credit_grant_persisted: ourCommand, chat_post_ack: post, chat_post_ack_quarter_rate: postSlow }
  })

const quiet = Logger.minimumLogLevel(LogLevel.Warning)

const main = async () => {
  const reads = Number(process.env.BENCH_READS ?? 20_000)
  const commands = Number(process.env.BENCH_COMMANDS ?? 2_000)
  const postRate = Number(process.env.BENCH_POST_RATE ?? 200)
  const postSeconds = Number(process.env.BENCH_POST_SECONDS ?? 10)
  const say = (line: string) => process.stdout.write(line + "\n")

  // single runner, in this process
  const single = await createTestDatabase("bench_single")
  let singleFigures
  try {
    singleFigures = await Effect.runPromise(
      scenario("single", { reads, commands, postRate, postSeconds }).pipe(
        Effect.provide(layerCluster({ url: single.url, migrations: [...Probe.migrations, ...Entities.migrations], entities: Layer.merge(Entities.layer, Probe.layer("bench")) })),
        Effect.provide(quiet),
        Effect.scoped
      )
    )
  } finally {
    await single.drop()
  }
  say(`single runner: ${JSON.stringify(singleFigures)}`)

  // socket runners: two runner processes, this process a client-only member
  const sockets = await createTestDatabase("bench_sockets")
  const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-bench-"))
  const masterKey = randomMasterKey()
  const runners = await Promise.all([0, 1].map(() => startRunner({ databaseUrl: sockets.url, masterKey, dataDir })))
  let socketFigures
  try {
    socketFigures = await Effect.runPromise(
      scenario("sockets", { reads: Math.round(reads / 2), commands, postRate, postSeconds }).pipe(
        Effect.provide(layerClientMember(sockets.url)),
        Effect.provide(quiet),
        Effect.scoped
      )
    )
  } finally {
    await Promise.all(runners.map((r) => stop(r.proc)))
    await sockets.drop()
    NodeFs.rmSync(dataDir, { recursive: true, force: true })
  }
  say(`socket runners: ${JSON.stringify(socketFigures)}`)

  const readRatio = round(singleFigures.credit_balance_read.per_second / singleFigures.raw_read.per_second)
  const readRatioSockets = round(socketFigures.credit_balance_read.per_second / socketFigures.raw_read.per_second)
  const commandRatio = round(singleFigures.credit_grant_persisted.per_second / singleFigures.raw_persisted.per_second)
  say(`read path vs raw: ${readRatio} (single), ${readRatioSockets} (sockets); persisted command vs raw: ${commandRatio}`)
  say(`chat post ack p99 at ${postRate}/s: ${singleFigures.chat_post_ack.p99_ms} ms (single), ${socketFigures.chat_post_ack.p99_ms} ms (sockets); sustained ${singleFigures.chat_post_ack.per_second}/s`)
  say(`chat post ack p99 at ${Math.round(postRate / 4)}/s: ${singleFigures.chat_post_ack_quarter_rate.p99_ms} ms (single), ${socketFigures.chat_post_ack_quarter_rate.p99_ms} ms (sockets)`)
  say(JSON.stringify({
    bench: "entities",
    machine: `${NodeOs.cpus().length} cores, ${Math.round(NodeOs.totalmem() / 2 ** 30)} GiB, node ${process.version}`,
    single: singleFigures,
    sockets: socketFigures,
    read_ratio_to_raw: readRatio,
    read_ratio_to_raw_sockets: readRatioSockets,
    persisted_ratio_to_raw: commandRatio,
    post_rate_per_s: postRate,
    post_p99_ms: singleFigures.chat_post_ack.p99_ms,
    post_p99_ms_sockets: socketFigures.chat_post_ack.p99_ms,
    post_sustained_per_s: singleFigures.chat_post_ack.per_second,
    post_p99_ms_quarter_rate: singleFigures.chat_post_ack_quarter_rate.p99_ms,
    post_p99_ms_quarter_rate_sockets: socketFigures.chat_post_ack_quarter_rate.p99_ms
  }))
}

main().then(() => process.exit(0), (error) => {
  process.stderr.write(`bench:entities failed: ${error instanceof Error ? error.stack : String(error)}\n`)
  process.exit(1)
})
