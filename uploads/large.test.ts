/**
 * A large upload through the real `troupe start` process: streamed to disk, encrypted and stored in
 * chunks, downloaded back with the same SHA-256 — with the server's resident memory staying flat
 * (far below the file's size). 300 MB here (`TROUPE_TEST_UPLOAD_MB` for more; 1 GB was measured by
 * hand, see bench/RESULTS.md). And the process survives hostile files: it still answers afterwards.
 */
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import { fixturesDir } from "../runtime/testing/fixtures.ts"
import { freePort, spawnTroupe, stop, waitFor, type Spawned } from "../runtime/testing/process.ts"
import { settled, uploadMultipart } from "./testing/client.ts"
import * as Files from "./testing/files.ts"

const megabytes = Number(process.env.TROUPE_TEST_UPLOAD_MB ?? "300")
let proc: Spawned
let url: string
let dataDir: string
let token: string

const rssOf = (pid: number) => {
  const status = NodeFs.readFileSync(`/proc/${pid}/status`, "utf8")
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024
}

/** A body of `total` bytes of text lines, made as it is sent; its SHA-256 when done. */
const textBody = (total: number) => {
  const hash = NodeCrypto.createHash("sha256")
  const line = Buffer.from("the quick brown fox jumps over the lazy dog, again and again\n")
  const piece = Buffer.concat(Array.from({ length: Math.ceil((1024 * 1024) / line.byteLength) }, () => line)).subarray(0, 1024 * 1024)
  let sent = 0
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close()
      const chunk = piece.subarray(0, Math.min(piece.byteLength, total - sent))
      hash.update(chunk)
      sent += chunk.byteLength
      controller.enqueue(new Uint8Array(chunk))
    }
  })
  let digest: string | undefined
  return { stream, digest: () => (digest ??= hash.digest("hex")) }
}

beforeAll(async () => {
  dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-large-"))
  const port = await freePort()
  url = `http://127.0.0.1:${port}`
  proc = spawnTroupe(["start"], {
    TROUPE_DATA_DIR: dataDir,
    TROUPE_HOST: "127.0.0.1",
    TROUPE_PORT: String(port),
    TROUPE_LOG_LEVEL: "warning",
    UPLOADS_MAX_FILE_SIZE: `${megabytes + 16}MB`,
    UPLOADS_USER_QUOTA: `${megabytes + 100}MB`
  })
  await waitFor(`${url}/health`, { proc, timeoutMs: 90_000 })
  const invite = NodeFs.readFileSync(NodePath.join(dataDir, "initial-admin-invite"), "utf8").trim()
  const signup = await fetch(`${url}/v1/auth/signup`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "big@example.com", username: "big", password: "a long password 1", invite_code: invite }) })
  expect(signup.status).toBe(201)
  const login = await fetch(`${url}/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ login: "big", password: "a long password 1" }) })
  token = ((await login.json()) as { access_token: string }).access_token
}, 120_000)

afterAll(async () => {
  if (proc) await stop(proc)
  NodeFs.rmSync(dataDir, { recursive: true, force: true })
})

it(`a ${megabytes} MB upload streams through with flat memory and comes back byte for byte`, async () => {
  const s = { url }
  // warm up (first upload, first image) so the baseline includes what any upload costs once
  const warm = await uploadMultipart(s, token, await Files.png(), "warm.png", "image/png")
  await settled(s, token, warm.body.id)
  const pid = proc.child.pid!
  const baseline = rssOf(pid)
  let peak = baseline
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(pid))
  }, 50)
  const started = performance.now()
  const body = textBody(megabytes * 1024 * 1024)
  const res = await fetch(`${url}/v1/uploads`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "text/plain", "x-file-name": "big.txt" },
    body: body.stream,
    duplex: "half"
  } as RequestInit)
  const accepted = (await res.json()) as { id: string; status: string }
  expect(res.status, JSON.stringify(accepted)).toBe(202)
  const done = await settled(s, token, accepted.id)
  const seconds = (performance.now() - started) / 1000
  expect(done).toMatchObject({ status: "ready", size: megabytes * 1024 * 1024, sha256: body.digest() })

  // download, streamed, and hash it
  const download = await fetch(`${url}/v1/files/${accepted.id}`, { headers: { authorization: `Bearer ${token}` } })
  expect(download.status).toBe(200)
  const hash = NodeCrypto.createHash("sha256")
  let received = 0
  for await (const chunk of download.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk)
    received += chunk.byteLength
  }
  clearInterval(sampler)
  expect(received).toBe(megabytes * 1024 * 1024)
  expect(hash.digest("hex")).toBe(body.digest())
  const grew = peak - baseline
  process.stderr.write(`${JSON.stringify({ upload_mb: megabytes, seconds: Math.round(seconds * 10) / 10, baseline_rss_mb: Math.round(baseline / 2 ** 20), peak_rss_mb: Math.round(peak / 2 ** 20), grew_mb: Math.round(grew / 2 ** 20) })}\n`)
  // flat: the server holds a small, fixed fraction of the file at any time (never the file)
  expect(grew).toBeLessThan(Math.min(200, megabytes / 2) * 2 ** 20)
}, 300_000)

it("the process survives hostile files and still answers", async () => {
  const s = { url }
  const hostile: ReadonlyArray<readonly [Uint8Array, string, string]> = [
    [NodeFs.readFileSync(NodePath.join(fixturesDir(), "images", "truncated.jpg")), "truncated.jpg", "image/jpeg"],
    [NodeFs.readFileSync(NodePath.join(fixturesDir(), "images", "corrupt-header.jpg")), "corrupt.jpg", "image/jpeg"],
    [Files.pngBomb(60_000, 60_000), "bomb.png", "image/png"],
    [await Files.pdfWithJavaScript(), "js.pdf", "application/pdf"],
    [new Uint8Array(Buffer.concat([Buffer.from("%PDF-1.7\n"), NodeCrypto.randomBytes(4000)])), "garbage.pdf", "application/pdf"],
    [new Uint8Array(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), NodeCrypto.randomBytes(20_000)])), "noise.jpg", "image/jpeg"]
  ]
  for (const [bytes, name, type] of hostile) {
    const r = await uploadMultipart(s, token, bytes, name, type)
    expect(r.status, `${name}: ${JSON.stringify(r.body)}`).toBeGreaterThanOrEqual(200)
    expect(r.status).toBeLessThan(500)
    if (r.status === 202) {
      const done = await settled(s, token, r.body.id)
      expect(done.status, `${name}: ${JSON.stringify(done)}`).toBe("rejected")
    }
  }
  expect(proc.child.exitCode).toBeNull()
  expect((await fetch(`${url}/health`)).status).toBe(200)
}, 120_000)
