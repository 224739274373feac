/**
 * The preview disk cache: one folder per kind (images, favicons, metadata), each a size-bounded
 * LRU with its own TTL. Files are the truth, so the cache survives restarts and can be shared by
 * several processes on one folder:
 *
 * - an entry is one file `<dir>/<kind>/<hh>/<sha256(key)>`, written to a temporary name and renamed
 *   (readers never see half a file), holding a small JSON header and the body;
 * - its mtime is when it was written (expiry = mtime + the kind's TTL, so a TTL change applies to
 *   existing entries) and its atime is when it was last served (LRU order, restored at start-up);
 * - each process keeps an index (size, times) rebuilt by scanning at start and every few minutes;
 *   evicting deletes the oldest files until the kind fits its size.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"

/** The kinds of cached things. */
export type Kind = "image" | "favicon" | "metadata"

/** Limits of one kind. */
export interface KindLimits {
  readonly maxBytes: number
  readonly ttlMs: number
}

/** Cache settings. */
export interface DiskCacheOptions {
  readonly dir: string
  readonly kinds: Record<Kind, KindLimits>
  /** How often expired entries are swept and the index re-synchronised with the folder. */
  readonly sweepIntervalMs?: number
  /** The clock (tests move it). */
  readonly now?: () => number
  /** Bytes of recently served entries also kept in memory (0 = none); default 64 MiB. */
  readonly memoryBytes?: number
}

/** What is stored with a body. */
export interface EntryMeta {
  readonly contentType: string
  readonly etag: string
  /** Anything else the caller needs to serve the entry (dimensions, status). */
  readonly extra?: Record<string, string | number | boolean>
}

/** A cache hit. */
export interface Hit {
  readonly meta: EntryMeta
  readonly body: Uint8Array
  readonly storedAt: number
  readonly expiresAt: number
}

/** Figures for one kind. */
export interface KindStats {
  readonly entries: number
  readonly bytes: number
  readonly max_bytes: number
  readonly ttl_seconds: number
  readonly hits: number
  readonly misses: number
  readonly hit_ratio: number
  /** Bytes of this kind also held in memory. */
  readonly memory_bytes: number
  readonly writes: number
  readonly evictions: number
  readonly expirations: number
}

interface IndexEntry {
  size: number
  writtenAt: number
  accessedAt: number
}

const MAGIC = new TextEncoder().encode("TPC1")
const KINDS: ReadonlyArray<Kind> = ["image", "favicon", "metadata"]

/** The hashed file name of a key. */
export const keyHash = (key: string): string => NodeCrypto.createHash("sha256").update(key).digest("hex")

const encodeEntry = (meta: EntryMeta, body: Uint8Array): Uint8Array => {
  const header = new TextEncoder().encode(JSON.stringify(meta))
  const out = new Uint8Array(8 + header.byteLength + body.byteLength)
  out.set(MAGIC, 0)
  new DataView(out.buffer).setUint32(4, header.byteLength)
  out.set(header, 8)
  out.set(body, 8 + header.byteLength)
  return out
}

const decodeEntry = (bytes: Uint8Array): { meta: EntryMeta; body: Uint8Array } | undefined => {
  if (bytes.byteLength < 8 || !MAGIC.every((b, i) => bytes[i] === b)) return undefined
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4)
  if (8 + length > bytes.byteLength) return undefined
  try {
    const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as EntryMeta
    if (typeof meta.contentType !== "string" || typeof meta.etag !== "string") return undefined
    return { meta, body: bytes.subarray(8 + length) }
  } catch {
    return undefined
  }
}

const ignoreMissing = (e: unknown) => {
  if ((e as { code?: string }).code !== "ENOENT") throw e
}

/** The cache (plain Promise API, wrapped by the service below). */
export const open = async (options: DiskCacheOptions) => {
  const now = options.now ?? Date.now
  const index: Record<Kind, Map<string, IndexEntry>> = { image: new Map(), favicon: new Map(), metadata: new Map() }
  const totals: Record<Kind, number> = { image: 0, favicon: 0, metadata: 0 }
  const counters = Object.fromEntries(KINDS.map((k) => [k, { hits: 0, misses: 0, writes: 0, evictions: 0, expirations: 0 }])) as Record<
    Kind,
    { hits: number; misses: number; writes: number; evictions: number; expirations: number }
  >

  const pathOf = (kind: Kind, hash: string) => NodePath.join(options.dir, kind, hash.slice(0, 2), hash)

  // A small in-memory LRU in front of the files for hot entries (no file system round trips).
  const memoryMax = options.memoryBytes ?? 64 * 1024 * 1024
  const memory = new Map<string, { meta: EntryMeta; body: Uint8Array; writtenAt: number; size: number }>()
  let memoryTotal = 0
  const memoryDrop = (id: string) => {
    const old = memory.get(id)
    if (old) {
      memoryTotal -= old.size
      memory.delete(id)
    }
  }
  const memoryPut = (id: string, meta: EntryMeta, body: Uint8Array, writtenAt: number) => {
    memoryDrop(id)
    const size = body.byteLength + 256
    if (size > memoryMax / 8) return
    memory.set(id, { meta, body, writtenAt, size })
    memoryTotal += size
    while (memoryTotal > memoryMax) memoryDrop(memory.keys().next().value as string)
  }
  /** A hot entry's atime is written at most this often (LRU order on disk is this coarse). */
  const ATIME_EVERY_MS = 60_000
  const inFlight = new Set<Promise<unknown>>()

  const put = (kind: Kind, hash: string, entry: IndexEntry) => {
    const old = index[kind].get(hash)
    if (old) {
      totals[kind] -= old.size
      index[kind].delete(hash)
    }
    index[kind].set(hash, entry)
    totals[kind] += entry.size
  }

  const drop = (kind: Kind, hash: string) => {
    memoryDrop(`${kind}/${hash}`)
    const old = index[kind].get(hash)
    if (old) {
      totals[kind] -= old.size
      index[kind].delete(hash)
    }
  }

  const remove = async (kind: Kind, hash: string) => {
    drop(kind, hash)
    await NodeFs.unlink(pathOf(kind, hash)).catch(ignoreMissing)
  }

  const expired = (kind: Kind, writtenAt: number) => now() - writtenAt >= options.kinds[kind].ttlMs

  /** Rebuild a kind's index from the folder, oldest access first. */
  const scan = async (kind: Kind) => {
    const root = NodePath.join(options.dir, kind)
    await NodeFs.mkdir(root, { recursive: true })
    const found: Array<[string, IndexEntry]> = []
    for (const shard of await NodeFs.readdir(root)) {
      const shardDir = NodePath.join(root, shard)
      let names: Array<string>
      try {
        names = await NodeFs.readdir(shardDir)
      } catch {
        continue
      }
      for (const name of names) {
        const file = NodePath.join(shardDir, name)
        if (name.endsWith(".tmp")) {
          const st = await NodeFs.stat(file).catch(() => undefined)
          if (st && now() - st.mtimeMs > 60_000) await NodeFs.unlink(file).catch(() => undefined)
          continue
        }
        const st = await NodeFs.stat(file).catch(() => undefined)
        if (!st || !st.isFile()) continue
        found.push([name, { size: st.size, writtenAt: st.mtimeMs, accessedAt: Math.max(st.atimeMs, st.mtimeMs) }])
      }
    }
    found.sort((a, b) => a[1].accessedAt - b[1].accessedAt)
    index[kind].clear()
    totals[kind] = 0
    for (const [hash, entry] of found) put(kind, hash, entry)
    await sweep(kind)
  }

  const sweep = async (kind: Kind) => {
    for (const [hash, entry] of [...index[kind]]) {
      if (expired(kind, entry.writtenAt)) {
        counters[kind].expirations++
        await remove(kind, hash)
      }
    }
    await evict(kind)
  }

  const evict = async (kind: Kind) => {
    const max = options.kinds[kind].maxBytes
    while (totals[kind] > max && index[kind].size > 0) {
      const oldest = index[kind].keys().next().value as string
      counters[kind].evictions++
      await remove(kind, oldest)
    }
  }

  const touch = (kind: Kind, hash: string, size: number, writtenAt: number, previousAccess: number | undefined) => {
    const accessedAt = now()
    put(kind, hash, { size, writtenAt, accessedAt })
    // Record the access in the file's atime (keeping mtime = written) so LRU order survives restarts.
    if (previousAccess === undefined || accessedAt - previousAccess >= ATIME_EVERY_MS) {
      const pending = NodeFs.utimes(pathOf(kind, hash), new Date(accessedAt), new Date(writtenAt)).catch(() => undefined)
      inFlight.add(pending)
      void pending.finally(() => inFlight.delete(pending))
    } else {
      const entry = index[kind].get(hash)
      if (entry) entry.accessedAt = accessedAt
    }
  }

  const get = async (kind: Kind, key: string): Promise<Hit | undefined> => {
    const hash = keyHash(key)
    const file = pathOf(kind, hash)
    const id = `${kind}/${hash}`
    const hot = memory.get(id)
    if (hot) {
      if (expired(kind, hot.writtenAt)) {
        counters[kind].expirations++
        counters[kind].misses++
        await remove(kind, hash)
        return undefined
      }
      memory.delete(id)
      memory.set(id, hot)
      counters[kind].hits++
      const previous = index[kind].get(hash)?.accessedAt
      touch(kind, hash, index[kind].get(hash)?.size ?? hot.size, hot.writtenAt, previous)
      return { meta: hot.meta, body: hot.body, storedAt: hot.writtenAt, expiresAt: hot.writtenAt + options.kinds[kind].ttlMs }
    }
    let bytes: Uint8Array
    let writtenAt: number
    try {
      const handle = await NodeFs.open(file, "r")
      try {
        const st = await handle.stat()
        writtenAt = st.mtimeMs
        bytes = new Uint8Array(await handle.readFile())
      } finally {
        await handle.close()
      }
    } catch (e) {
      ignoreMissing(e)
      drop(kind, hash)
      counters[kind].misses++
      return undefined
    }
    if (expired(kind, writtenAt)) {
      counters[kind].expirations++
      counters[kind].misses++
      await remove(kind, hash)
      return undefined
    }
    const decoded = decodeEntry(bytes)
    if (!decoded) {
      counters[kind].misses++
      await remove(kind, hash)
      return undefined
    }
    counters[kind].hits++
    touch(kind, hash, bytes.byteLength, writtenAt, undefined)
    memoryPut(id, decoded.meta, decoded.body, writtenAt)
    return { ...decoded, storedAt: writtenAt, expiresAt: writtenAt + options.kinds[kind].ttlMs }
  }

  const set = async (kind: Kind, key: string, body: Uint8Array, meta: EntryMeta): Promise<void> => {
    const hash = keyHash(key)
    const file = pathOf(kind, hash)
    const bytes = encodeEntry(meta, body)
    if (bytes.byteLength > options.kinds[kind].maxBytes) return
    await NodeFs.mkdir(NodePath.dirname(file), { recursive: true })
    const tmp = `${file}.${NodeCrypto.randomBytes(6).toString("hex")}.tmp`
    await NodeFs.writeFile(tmp, bytes)
    const at = now()
    await NodeFs.utimes(tmp, new Date(at), new Date(at))
    await NodeFs.rename(tmp, file)
    counters[kind].writes++
    put(kind, hash, { size: bytes.byteLength, writtenAt: at, accessedAt: at })
    memoryPut(`${kind}/${hash}`, meta, body, at)
    await evict(kind)
  }

  const stats = (): Record<Kind, KindStats> =>
    Object.fromEntries(KINDS.map((kind) => {
      const c = counters[kind]
      const lookups = c.hits + c.misses
      return [kind, {
        entries: index[kind].size,
        bytes: totals[kind],
        max_bytes: options.kinds[kind].maxBytes,
        ttl_seconds: Math.round(options.kinds[kind].ttlMs / 1000),
        hits: c.hits,
        misses: c.misses,
        hit_ratio: lookups === 0 ? 0 : Math.round((c.hits / lookups) * 1000) / 1000,
        memory_bytes: [...memory.entries()].filter(([id]) => id.startsWith(`${kind}/`)).reduce((n, [, e]) => n + e.size, 0),
        writes: c.writes,
        evictions: c.evictions,
        expirations: c.expirations
      }]
    })) as Record<Kind, KindStats>

  for (const kind of KINDS) await scan(kind)

  let timer: ReturnType<typeof setInterval> | undefined
  if (options.sweepIntervalMs !== 0) {
    timer = setInterval(() => {
      void Promise.all(KINDS.map(scan)).catch(() => undefined)
    }, options.sweepIntervalMs ?? 5 * 60_000)
    timer.unref()
  }

  return {
    get,
    set,
    stats,
    /** Re-read the folder (entries written by other processes) and sweep. */
    rescan: () => Promise.all(KINDS.map(scan)).then(() => undefined),
    /** Stop sweeping and wait for pending atime updates. */
    close: async () => {
      if (timer) clearInterval(timer)
      await Promise.all([...inFlight])
    }
  }
}

/** The cache service. Failures of the disk are logged by callers and treated as misses. */
export class DiskCache extends Context.Tag("troupe/preview/DiskCache")<DiskCache, {
  readonly get: (kind: Kind, key: string) => Effect.Effect<Hit | undefined>
  readonly set: (kind: Kind, key: string, body: Uint8Array, meta: EntryMeta) => Effect.Effect<void>
  readonly stats: Effect.Effect<Record<Kind, KindStats>>
}>() {}

/** The cache on a folder. */
export const layer = (options: DiskCacheOptions): Layer.Layer<DiskCache, Error> =>
  Layer.scoped(
    DiskCache,
    Effect.gen(function*() {
      const cache = yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => open(options), catch: (e) => new Error(`cannot open the preview cache in ${options.dir}: ${String(e)}`) }),
        (c) => Effect.promise(c.close)
      )
      return DiskCache.of({
        get: (kind, key) =>
          Effect.tryPromise(() => cache.get(kind, key)).pipe(
            Effect.catchAll((e) => Effect.as(Effect.logWarning("preview cache read failed", e), undefined))
          ),
        set: (kind, key, body, meta) =>
          Effect.tryPromise(() => cache.set(kind, key, body, meta)).pipe(
            Effect.catchAll((e) => Effect.logWarning("preview cache write failed", e))
          ),
        stats: Effect.sync(cache.stats)
      })
    })
  )
