import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { describe, expect, it } from "vitest"
import * as DiskCache from "./DiskCache.ts"

const DAY = 86_400_000
const tmp = () => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "disk-cache-"))
const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill)
const meta = { contentType: "image/png", etag: "\"e\"" }

const openAt = (dir: string, clock: { t: number }, image = { maxBytes: 10_000, ttlMs: 7 * DAY }, memoryBytes?: number) =>
  DiskCache.open({
    ...(memoryBytes === undefined ? {} : { memoryBytes }),
    dir,
    kinds: { image, favicon: { maxBytes: 10_000, ttlMs: 7 * DAY }, metadata: { maxBytes: 10_000, ttlMs: DAY } },
    sweepIntervalMs: 0,
    now: () => clock.t
  })

describe("DiskCache", () => {
  it("returns what was stored, with its metadata, and counts hits and misses", async () => {
    const clock = { t: Date.now() }
    const cache = await openAt(tmp(), clock)
    expect(await cache.get("image", "a")).toBeUndefined()
    await cache.set("image", "a", bytes(100, 7), { ...meta, extra: { width: 3 } })
    const hit = await cache.get("image", "a")
    expect(hit?.body).toEqual(bytes(100, 7))
    expect(hit?.meta).toEqual({ ...meta, extra: { width: 3 } })
    expect(cache.stats().image).toMatchObject({ entries: 1, hits: 1, misses: 1, hit_ratio: 0.5, writes: 1 })
    // Kinds are separate.
    expect(await cache.get("favicon", "a")).toBeUndefined()
  })

  it("survives a restart (a new instance on the same folder serves the entries)", async () => {
    const dir = tmp()
    const clock = { t: Date.now() }
    const first = await openAt(dir, clock)
    await first.set("metadata", "page", new TextEncoder().encode("{\"title\":\"x\"}"), { contentType: "application/json", etag: "\"m\"" })
    await first.close()
    const second = await openAt(dir, clock)
    expect(second.stats().metadata.entries).toBe(1)
    expect(new TextDecoder().decode((await second.get("metadata", "page"))!.body)).toBe("{\"title\":\"x\"}")
  })

  it("evicts the least recently used entries to stay within its size, also after a restart", async () => {
    const dir = tmp()
    const clock = { t: Date.now() }
    const cache = await openAt(dir, clock, { maxBytes: 3_500, ttlMs: 7 * DAY })
    const MINUTE = 60_000
    for (const key of ["a", "b", "c"]) {
      clock.t += MINUTE
      await cache.set("image", key, bytes(1000), meta)
    }
    clock.t += MINUTE
    await cache.get("image", "a") // a is now the most recently used
    clock.t += MINUTE
    await cache.set("image", "d", bytes(1000), meta)
    expect(await cache.get("image", "b")).toBeUndefined()
    expect(await cache.get("image", "a")).toBeDefined()
    expect(cache.stats().image.bytes).toBeLessThanOrEqual(3_500)
    expect(cache.stats().image.evictions).toBe(1)
    await cache.close()
    // The access order is kept in the files' atimes (to the minute): after a restart c goes first.
    clock.t += MINUTE
    const reopened = await openAt(dir, clock, { maxBytes: 3_500, ttlMs: 7 * DAY })
    clock.t += MINUTE
    await reopened.set("image", "e", bytes(1000), meta)
    expect(await reopened.get("image", "c")).toBeUndefined()
    expect(await reopened.get("image", "a")).toBeDefined()
    expect(await reopened.get("image", "d")).toBeDefined()
  })

  it("expires entries after their kind's TTL", async () => {
    const clock = { t: Date.now() }
    const cache = await openAt(tmp(), clock)
    await cache.set("metadata", "m", bytes(10), meta)
    await cache.set("image", "i", bytes(10), meta)
    clock.t += DAY + 1
    expect(await cache.get("metadata", "m")).toBeUndefined()
    expect(await cache.get("image", "i")).toBeDefined()
    expect(cache.stats().metadata.expirations).toBe(1)
    clock.t += 7 * DAY
    expect(await cache.get("image", "i")).toBeUndefined()
  })

  it("serves hot entries from memory and stays correct when memory is off", async () => {
    const clock = { t: Date.now() }
    for (const memoryBytes of [0, 1024 * 1024]) {
      const cache = await openAt(tmp(), clock, undefined, memoryBytes)
      await cache.set("image", "h", bytes(100, 3), meta)
      for (let i = 0; i < 3; i++) expect((await cache.get("image", "h"))?.body).toEqual(bytes(100, 3))
      expect(cache.stats().image.memory_bytes > 0).toBe(memoryBytes > 0)
      clock.t += 8 * DAY
      expect(await cache.get("image", "h")).toBeUndefined()
    }
  })

  it("sees entries written by another process on the same folder", async () => {
    const dir = tmp()
    const clock = { t: Date.now() }
    const a = await openAt(dir, clock)
    const b = await openAt(dir, clock)
    await a.set("favicon", "shared", bytes(5, 9), meta)
    expect((await b.get("favicon", "shared"))?.body).toEqual(bytes(5, 9))
  })

  it("treats a damaged file as a miss and removes it", async () => {
    const dir = tmp()
    const clock = { t: Date.now() }
    const cache = await openAt(dir, clock, undefined, 0)
    await cache.set("image", "x", bytes(10), meta)
    const hash = DiskCache.keyHash("x")
    NodeFs.writeFileSync(NodePath.join(dir, "image", hash.slice(0, 2), hash), "garbage")
    expect(await cache.get("image", "x")).toBeUndefined()
    expect(NodeFs.existsSync(NodePath.join(dir, "image", hash.slice(0, 2), hash))).toBe(false)
  })
})
