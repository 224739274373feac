/**
 * Scale-out and rolling restarts under chat load, as an operator does them: a `troupe gateway`
 * and `troupe runner` processes on one Postgres, chats posting steadily over HTTP and following
 * their events over SSE, while runners are added, restarted with SIGTERM (graceful hand-over) and
 * killed with SIGKILL. Measures, per chat, the longest wait for its next event while a turn is
 * outstanding (from the post to the turn's end), and checks afterwards in the database that no
 * accepted post was lost, no turn ran twice to completion, every credit hold was settled or
 * released once and the ledger balances.
 *
 * Used by the short variant in `npm test` (bin/scale.test.ts) and the long one
 * (`npm run bench:scale`, bench/scale.ts); the processes are `deployment.ts`'s.
 */
import Pg from "pg"
import { sseFrames } from "../../gateway/testing/sse-frames.ts"
import { stop } from "../../runtime/testing/process.ts"
import { json, startDeployment, verificationCode } from "./deployment.ts"

/** One step of the scenario. */
export type Step =
  | { readonly _tag: "add" }
  | { readonly _tag: "restart"; readonly runner: number }
  | { readonly _tag: "kill"; readonly runner: number }
  | { readonly _tag: "wait"; readonly ms: number }

/** The scenario. */
export interface ScaleOptions {
  readonly runners: number
  readonly chats: number
  /** One post is sent every this many ms, to the next chat that has no turn outstanding. */
  readonly postEveryMs: number
  /** Load before the first step and between steps. */
  readonly settleMs: number
  readonly steps: ReadonlyArray<Step>
  /** Extra environment for every process. */
  readonly env?: Record<string, string>
  readonly log?: (line: string) => void
  /** Write every process's output here when the run ends (for looking into a bad run). */
  readonly logDir?: string | undefined
}

/** What a run measured. */
export interface ScaleResult {
  readonly posts: number
  readonly turns: { readonly done: number; readonly failed: number; readonly cancelled: number; readonly running: number }
  readonly restarted: number
  /** The longest wait of any chat for its next event while a turn was outstanding (ms). */
  readonly worstGapMs: number
  readonly worstGapChat: string
  /** Waits over 10 s, over 5 s, and all waits measured. */
  readonly gapsOver10s: number
  readonly gapsOver5s: number
  readonly p99GapMs: number
  /** Post requests that failed and were retried by the client (same client message id). */
  readonly postRetries: number
  /** Per step: when it ran (ms since load start) and how long it took. */
  readonly steps: ReadonlyArray<{ readonly step: string; readonly atMs: number; readonly tookMs: number; readonly stoppedMs?: number }>
  readonly problems: ReadonlyArray<string>
  readonly durationMs: number
}

interface ChatState {
  readonly chatId: string
  readonly token: string
  posted: number
  /** The turn outstanding: when its post was sent and when the chat last heard anything. */
  outstanding: { readonly turnKey: string; readonly since: number; last: number; turnId: string | null } | null
  lastSeq: number
  controller: AbortController
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Run the scenario; returns what was measured (the caller asserts). */
export const runScale = async (options: ScaleOptions): Promise<ScaleResult> => {
  const log = options.log ?? (() => {})
  const started = Date.now()
  const deployment = await startDeployment({ runners: options.runners, label: "scale", ...(options.env ? { env: options.env } : {}) })
  const { runners, spawnRunner } = deployment
  const base = deployment.url
  const gatewayDir = deployment.gatewayDir
  log(`[scale] ${options.runners} runners and a gateway up after ${Date.now() - started} ms`)

  const chats: Array<ChatState> = []
  const gaps: Array<number> = []
  let worst = { ms: 0, chat: "" }
  const problems: Array<string> = []
  const accepted: Array<{ chatId: string; clientMessageId: string; turnId: string }> = []
  let postRetries = 0
  const stepLog: Array<{ step: string; atMs: number; tookMs: number; stoppedMs?: number }> = []

  try {
    // a few users, each with some of the chats
    const users = Math.max(1, Math.ceil(options.chats / 5))
    const tokens: Array<string> = []
    for (let u = 0; u < users; u++) {
      const name = `scale${u}`
      const email = `${name}@example.com`
      const signup = await json(base, "POST", "/v1/auth/signup", { email, username: name, password: "a long password 1" })
      if (signup.status !== 201) throw new Error(`signup: ${signup.status} ${JSON.stringify(signup.body)}`)
      await json(base, "POST", "/v1/auth/verify_email", { email, code: verificationCode(gatewayDir, email) })
      const login = await json(base, "POST", "/v1/auth/login", { login: name, password: "a long password 1" })
      if (login.status !== 200) throw new Error(`login: ${login.status} ${JSON.stringify(login.body)}`)
      tokens.push(login.body.access_token as string)
    }
    for (let c = 0; c < options.chats; c++) {
      const token = tokens[c % tokens.length]!
      const chat = await json(base, "POST", "/v1/chats", { title: `load ${c}` }, token)
      if (chat.status !== 201) throw new Error(`create chat: ${chat.status} ${JSON.stringify(chat.body)}`)
      chats.push({ chatId: chat.body.id as string, token, posted: 0, outstanding: null, lastSeq: 0, controller: new AbortController() })
    }

    // every chat follows its events; a broken connection is resumed after the last id (as browsers do)
    const follow = async (chat: ChatState) => {
      while (!chat.controller.signal.aborted) {
        try {
          const res = await fetch(`${base}/v1/chats/${chat.chatId}/events`, {
            headers: { authorization: `Bearer ${chat.token}`, ...(chat.lastSeq > 0 ? { "last-event-id": String(chat.lastSeq) } : {}) },
            signal: chat.controller.signal
          })
          if (res.status !== 200 || !res.body) throw new Error(`events: ${res.status}`)
          for await (const frames of sseFrames(res.body)) {
            const now = Date.now()
            for (const { fields } of frames) {
              if (fields.data === undefined || fields.id === undefined) continue
              const seq = Number(fields.id)
              if (seq <= chat.lastSeq) {
                problems.push(`${chat.chatId}: event ${seq} received twice`)
                continue
              }
              if (chat.lastSeq > 0 && seq !== chat.lastSeq + 1) problems.push(`${chat.chatId}: events jump from ${chat.lastSeq} to ${seq}`)
              chat.lastSeq = seq
              const o = chat.outstanding
              if (!o) continue
              const gap = now - o.last
              gaps.push(gap)
              if (gap > 5_000) log(`[scale] ${chat.chatId}: waited ${gap} ms for event ${seq} (${fields.event}) at ${now - started} ms`)
              if (gap > worst.ms) worst = { ms: gap, chat: chat.chatId }
              o.last = now
              const data = JSON.parse(fields.data) as { turn_id?: string }
              if (o.turnId === null && fields.event === "message_stored" && data.turn_id) o.turnId = data.turn_id
              if ((fields.event === "done" || fields.event === "error" || fields.event === "cancelled") && data.turn_id === o.turnId) {
                chat.outstanding = null
              }
            }
          }
        } catch (e) {
          if (chat.controller.signal.aborted) return
          log(`[scale] ${chat.chatId}: event stream broke (${(e as Error).message}); reconnecting`)
          await sleep(200)
        }
      }
    }
    const followers = chats.map(follow)
    await sleep(500)

    // the load: one post every `postEveryMs` to the next idle chat; a failed post is retried with its id
    let loading = true
    const post = async (chat: ChatState) => {
      const clientMessageId = `${chat.chatId}-${chat.posted++}`
      const now = Date.now()
      chat.outstanding = { turnKey: clientMessageId, since: now, last: now, turnId: null }
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await json(base, "POST", `/v1/chats/${chat.chatId}/messages`, { client_message_id: clientMessageId, text: `message ${clientMessageId} with a few words to echo` }, chat.token)
          if (r.status === 202) {
            accepted.push({ chatId: chat.chatId, clientMessageId, turnId: r.body.turn_id as string })
            if (chat.outstanding && chat.outstanding.turnKey === clientMessageId) chat.outstanding.turnId = r.body.turn_id as string
            return
          }
          if (r.status < 500 && r.status !== 429 && r.body?.error?.code !== "turn_in_progress") {
            problems.push(`${clientMessageId}: post refused ${r.status} ${JSON.stringify(r.body)}`)
            chat.outstanding = null
            return
          }
          log(`[scale] ${clientMessageId}: post answered ${r.status} ${JSON.stringify(r.body)}; retrying`)
        } catch (e) {
          log(`[scale] ${clientMessageId}: post failed (${(e as Error).message}); retrying`)
        }
        postRetries++
        if (attempt > 20) {
          problems.push(`${clientMessageId}: post never accepted`)
          chat.outstanding = null
          return
        }
        await sleep(250)
      }
    }
    const load = (async () => {
      let next = 0
      const pending: Array<Promise<void>> = []
      while (loading) {
        for (let i = 0; i < chats.length; i++) {
          const chat = chats[(next + i) % chats.length]!
          if (chat.outstanding === null) {
            next = (next + i + 1) % chats.length
            pending.push(post(chat))
            break
          }
        }
        await sleep(options.postEveryMs)
      }
      await Promise.all(pending)
    })()
    const loadStart = Date.now()

    await sleep(options.settleMs)
    for (const step of options.steps) {
      const at = Date.now()
      let name: string = step._tag
      let stoppedMs: number | undefined
      if (step._tag === "add") {
        runners.push(await spawnRunner(runners.length))
        name = `add runner ${runners.length - 1}`
      } else if (step._tag === "restart") {
        const r = runners[step.runner]!
        const code = await stop(r.proc, "SIGTERM", 60_000)
        if (code !== 0) problems.push(`runner ${step.runner} exited with ${code} on SIGTERM`)
        const stoppedAfter = Date.now() - at
        stoppedMs = stoppedAfter
        r.proc = (await spawnRunner(step.runner, r)).proc
        name = `restart runner ${step.runner} (stopped in ${stoppedAfter} ms)`
      } else if (step._tag === "kill") {
        const r = runners[step.runner]!
        r.proc.child.kill("SIGKILL")
        await r.proc.exited
        name = `kill -9 runner ${step.runner}`
      } else {
        await sleep(step.ms)
      }
      stepLog.push({ step: name, atMs: at - loadStart, tookMs: Date.now() - at, ...(stoppedMs !== undefined ? { stoppedMs } : {}) })
      log(`[scale] ${name} at ${at - loadStart} ms, took ${Date.now() - at} ms; worst gap so far ${worst.ms} ms`)
      await sleep(options.settleMs)
    }
    loading = false
    await load
    // every outstanding turn ends (or is reported stuck)
    const deadline = Date.now() + 60_000
    while (chats.some((c) => c.outstanding !== null) && Date.now() < deadline) await sleep(100)
    const now = Date.now()
    for (const c of chats) {
      if (c.outstanding) {
        problems.push(`${c.chatId}: turn of ${c.outstanding.turnKey} never ended (silent for ${now - c.outstanding.last} ms)`)
        worst = now - c.outstanding.last > worst.ms ? { ms: now - c.outstanding.last, chat: c.chatId } : worst
      }
    }
    for (const c of chats) c.controller.abort()
    await Promise.allSettled(followers)

    // the database's account of it
    const client = new Pg.Client({ connectionString: deployment.databaseUrl })
    await client.connect()
    try {
      const q = async <T>(text: string) => (await client.query(text)).rows as Array<T>
      const messages = await q<{ chat_id: string; client_message_id: string; n: string }>(
        "SELECT chat_id, client_message_id, count(*) AS n FROM chat_messages WHERE role = 'user' GROUP BY chat_id, client_message_id"
      )
      const messageCount = new Map(messages.map((m) => [`${m.chat_id}/${m.client_message_id}`, Number(m.n)]))
      const turns = await q<{ chat_id: string; turn_id: string; status: string; hold_key: string }>("SELECT chat_id, turn_id, status, hold_key FROM chat_turns")
      const turnById = new Map(turns.map((t) => [t.turn_id, t]))
      const holds = await q<{ hold_key: string; status: string }>("SELECT hold_key, status FROM credit_holds")
      const holdCount = new Map<string, Array<string>>()
      for (const h of holds) holdCount.set(h.hold_key, [...(holdCount.get(h.hold_key) ?? []), h.status])
      for (const p of accepted) {
        const n = messageCount.get(`${p.chatId}/${p.clientMessageId}`) ?? 0
        if (n !== 1) problems.push(`${p.clientMessageId}: ${n} stored user messages`)
        const t = turnById.get(p.turnId)
        if (!t) {
          problems.push(`${p.clientMessageId}: turn ${p.turnId} missing`)
          continue
        }
        const h = holdCount.get(t.hold_key) ?? []
        if (t.status === "done" && (h.length !== 1 || h[0] !== "settled")) problems.push(`${p.clientMessageId}: done turn's hold is ${JSON.stringify(h)}`)
        if (t.status !== "done" && h.length > 1) problems.push(`${p.clientMessageId}: ${h.length} holds`)
        if (h.some((s) => s !== "settled" && s !== "released")) problems.push(`${p.clientMessageId}: hold left ${JSON.stringify(h)}`)
      }
      if (turns.length !== accepted.length) problems.push(`${turns.length} turns stored for ${accepted.length} accepted posts`)
      const twice = await q<{ turn_id: string; n: string }>(
        "SELECT turn_id, count(*) AS n FROM chat_events WHERE kind IN ('done', 'charge') GROUP BY turn_id, kind HAVING count(*) > 1"
      )
      for (const t of twice) problems.push(`turn ${t.turn_id} completed ${t.n} times`)
      const [ledger] = await q<{ total: string }>("SELECT COALESCE(SUM(amount), 0) AS total FROM credit_ledger")
      if (Number(ledger!.total) !== 0) problems.push(`ledger sums to ${ledger!.total}`)
      const mismatched = await q<{ account_id: string }>(`
        SELECT a.account_id FROM credit_accounts a
        LEFT JOIN (SELECT account_id, SUM(amount) FILTER (WHERE bucket = 'available') AS available,
                          SUM(amount) FILTER (WHERE bucket = 'reserved') AS reserved
                   FROM credit_ledger GROUP BY account_id) l ON l.account_id = a.account_id
        WHERE a.available <> COALESCE(l.available, 0) OR a.reserved <> COALESCE(l.reserved, 0)`)
      for (const m of mismatched) problems.push(`account ${m.account_id}: balance differs from its ledger`)
      const [reserved] = await q<{ n: string }>("SELECT COALESCE(SUM(reserved), 0) AS n FROM credit_accounts")
      if (Number(reserved!.n) !== 0) problems.push(`${reserved!.n} credits left reserved`)
      const [restarted] = await q<{ n: string }>("SELECT count(*) AS n FROM chat_events WHERE kind = 'restarted'")
      const status = (s: string) => turns.filter((t) => t.status === s).length
      const sorted = [...gaps].sort((a, b) => a - b)
      return {
        posts: accepted.length,
        turns: { done: status("done"), failed: status("failed"), cancelled: status("cancelled"), running: status("running") },
        restarted: Number(restarted!.n),
        worstGapMs: worst.ms,
        worstGapChat: worst.chat,
        gapsOver10s: gaps.filter((g) => g > 10_000).length,
        gapsOver5s: gaps.filter((g) => g > 5_000).length,
        p99GapMs: sorted[Math.floor(sorted.length * 0.99)] ?? 0,
        postRetries,
        steps: stepLog,
        problems,
        durationMs: Date.now() - started
      }
    } finally {
      await client.end()
    }
  } finally {
    for (const c of chats) c.controller.abort()
    await deployment.close({ logDir: options.logDir })
  }
}
