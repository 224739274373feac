/**
 * Idle footprint of `troupe start` as `npm start` runs it (issue 19 point 9): RSS summed over the
 * process and every process it started, 15, 25 and 35 s after `/health` answers with no request;
 * then the first requests after that idle: a failing login (one SQL lookup, an argon2 verify) and
 * the first image upload until its preview is ready, each against the next one.
 *
 *   npx tsx bench/idle.ts [--restart] [--no-requests] [--bare-env] [--node-flags="--max-semi-space-size=32"]
 *
 * `--restart` starts once on a fresh data dir, stops, and measures the second start on that dir.
 * `--node-flags` replaces `npm start`'s node flags, `--bare-env` leaves out the environment its script
 * sets (GLIBC_TUNABLES). Extra environment passes through unchanged.
 * Prints figures, then one JSON line.
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { verificationCode } from "../gateway/testing/server.ts"
import { freePort, type Spawned, stop, waitFor } from "../runtime/testing/process.ts"
import * as NpmStart from "./npm-start.ts"
import sharp from "sharp"

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)

const startEnv: Record<string, string> = flag("bare-env") ? {} : { ...NpmStart.startEnv }
const nodeFlags = option("node-flags") !== undefined
  ? option("node-flags")!.split(" ").filter((f) => f.length > 0)
  : [...NpmStart.startNodeFlags]
/** One line of the bench's output on stdout (benchmarks print figures, not log records). */
const say = (line: string) => process.stdout.write(line + "\n")
const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d
const mb = (bytes: number) => round(bytes / 1048576)

/** The pid and all its descendants (from /proc). */
const tree = (pid: number): Array<number> => {
  const parents = new Map<number, number>()
  for (const entry of NodeFs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = NodeFs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      parents.set(Number(entry), ppid)
    } catch {
      // gone
    }
  }
  const all = [pid]
  for (let i = 0; i < all.length; i++) {
    for (const [child, parent] of parents) if (parent === all[i]) all.push(child)
  }
  return all
}

const rssOf = (pid: number): number => {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(NodeFs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024
  } catch {
    return 0
  }
}

/** RSS summed over the process tree, and how many processes. */
const treeRss = (pid: number) => {
  const pids = tree(pid)
  return { bytes: pids.reduce((sum, p) => sum + rssOf(p), 0), processes: pids.length }
}

const start = (dataDir: string, port: number): Spawned =>
  NpmStart.spawnStart({
    TROUPE_DATA_DIR: dataDir,
    TROUPE_PORT: String(port),
    TROUPE_HOST: "127.0.0.1",
    TROUPE_LOG_LEVEL: process.env.TROUPE_LOG_LEVEL ?? "warning",
    TROUPE_SIGNUP: "open"
  }, { nodeFlags, bareEnv: flag("bare-env") })

const post = async (url: string, body: unknown, token?: string) => {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body)
  })
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> }
}

const timed = async <A>(f: () => Promise<A>): Promise<[A, number]> => {
  const t0 = performance.now()
  const a = await f()
  return [a, round(performance.now() - t0)]
}

/** Upload `bytes` as a JPEG and wait until its preview is ready; milliseconds from the POST. */
const uploadUntilReady = async (url: string, token: string, bytes: Uint8Array<ArrayBuffer>, name: string): Promise<number> => {
  const t0 = performance.now()
  const res = await fetch(`${url}/v1/uploads`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "image/jpeg", "x-file-name": name },
    body: bytes
  })
  const accepted = (await res.json()) as { id: string; status: string }
  if (res.status !== 202) throw new Error(`upload: ${res.status} ${JSON.stringify(accepted)}`)
  for (;;) {
    const status = (await (await fetch(`${url}/v1/uploads/${accepted.id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string }
    if (status.status === "ready") return round(performance.now() - t0)
    if (status.status !== "processing") throw new Error(`upload ${name}: ${JSON.stringify(status)}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** A JPEG of noise (hard to compress), `width`×`height`. */
const noisyJpeg = async (width: number, height: number): Promise<Uint8Array<ArrayBuffer>> =>
  new Uint8Array(
    await sharp({ create: { width, height, channels: 3, background: { r: 0, g: 0, b: 0 }, noise: { type: "gaussian", mean: 128, sigma: 60 } } })
      .jpeg({ quality: 95 })
      .toBuffer()
  )

const main = async () => {
  const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-bench-idle-"))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  try {
    if (flag("restart")) {
      const first = start(dataDir, port)
      await waitFor(`${url}/health`, { proc: first, timeoutMs: 180_000 })
      await stop(first, "SIGTERM")
    }
    const t0 = performance.now()
    const proc = start(dataDir, port)
    await waitFor(`${url}/health`, { proc, timeoutMs: 180_000 })
    const readyMs = round(performance.now() - t0, 0)
    const pid = proc.child.pid!
    const samples: Record<string, number> = {}
    let processes = 1
    let hwm = 0
    for (const at of [15, 25, 35]) {
      await new Promise((r) => setTimeout(r, at * 1000 - (performance.now() - t0 - readyMs)))
      const s = treeRss(pid)
      samples[`idle_rss_${at}s_mb`] = mb(s.bytes)
      processes = Math.max(processes, s.processes)
    }
    hwm = Number(/VmHWM:\s+(\d+) kB/.exec(NodeFs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024
    const idleMb = Math.max(...Object.values(samples))
    say(`${flag("restart") ? "restart on an existing" : "fresh"} data dir, ${Object.entries(startEnv).map(([k, v]) => `${k}=${v} `).join("")}node ${nodeFlags.join(" ") || "(no flags)"}: ready in ${readyMs} ms`)
    say(`idle RSS (tree of ${processes} process(es)) at 15/25/35 s: ${Object.values(samples).join(" / ")} MB; main process peak ${round(hwm)} MB`)

    const result: Record<string, unknown> = { benchmark: "idle", restart: flag("restart"), env: startEnv, node_flags: nodeFlags.join(" "), ready_ms: readyMs, ...samples, idle_rss_mb: idleMb, peak_rss_main_mb: round(hwm), processes, idle_rss_target_mb: 300 }
    if (!flag("no-requests")) {
      const [, loginFirst] = await timed(() => post(`${url}/v1/auth/login`, { login: "nobody", password: "wrong password 1" }))
      const [, loginNext] = await timed(() => post(`${url}/v1/auth/login`, { login: "nobody", password: "wrong password 1" }))
      say(`first failing login after idle: ${loginFirst} ms, the next ${loginNext} ms`)
      const email = "idle@example.com"
      const signup = await post(`${url}/v1/auth/signup`, { email, username: "idle", password: "a long password 1" })
      if (signup.status !== 201) throw new Error(`signup: ${signup.status} ${JSON.stringify(signup.body)}`)
      if (signup.body.email_verification === "sent") {
        await post(`${url}/v1/auth/verify_email`, { email, code: verificationCode(dataDir, email) })
      }
      const login = await post(`${url}/v1/auth/login`, { login: "idle", password: "a long password 1" })
      const token = login.body.access_token as string
      const first = await noisyJpeg(4000, 3000)
      const next = await noisyJpeg(4000, 3001)
      const uploadFirst = await uploadUntilReady(url, token, first, "first.jpg")
      const uploadNext = await uploadUntilReady(url, token, next, "next.jpg")
      const after = treeRss(pid)
      say(`first 12 MP JPEG upload until its preview is ready: ${uploadFirst} ms, the next ${uploadNext} ms; RSS after: ${mb(after.bytes)} MB (${after.processes} processes)`)
      Object.assign(result, { first_login_ms: loginFirst, next_login_ms: loginNext, first_upload_ready_ms: uploadFirst, next_upload_ready_ms: uploadNext, rss_after_uploads_mb: mb(after.bytes) })
    }
    await stop(proc, "SIGTERM")
    say(JSON.stringify(result))
  } finally {
    NodeFs.rmSync(dataDir, { recursive: true, force: true })
  }
}

await main()
