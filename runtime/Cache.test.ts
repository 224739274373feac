import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeCrypto from "node:crypto"
import * as Cache from "./Cache.ts"
import { redisUrl } from "./testing/services.ts"

const prefix = `test:${NodeCrypto.randomBytes(4).toString("hex")}:`

const contract = (name: string, layer: Layer.Layer<Cache.Cache | Cache.RedisConnection, unknown>) =>
  describe(`${name} cache`, () => {
    it.effect("stores, reads and deletes values", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.Cache
        expect(yield* cache.get("missing")).toEqual(Option.none())
        yield* cache.set("a", "1")
        expect(yield* cache.get("a")).toEqual(Option.some("1"))
        yield* cache.delete("a")
        expect(yield* cache.get("a")).toEqual(Option.none())
      }).pipe(Effect.provide(layer)))

    it.effect("expires values after their TTL", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.Cache
        yield* cache.set("ttl", "x", "50 millis")
        expect(yield* cache.get("ttl")).toEqual(Option.some("x"))
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 120)))
        expect(yield* cache.get("ttl")).toEqual(Option.none())
      }).pipe(Effect.provide(layer)))

    it.effect("counts atomically under concurrency and keeps the first TTL", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.Cache
        const results = yield* Effect.forEach(Array.from({ length: 50 }), () => cache.increment("counter", 2, "10 seconds"), { concurrency: 50 })
        expect(new Set(results).size).toBe(50)
        expect(Math.max(...results)).toBe(100)
        expect(yield* cache.get("counter")).toEqual(Option.some("100"))
      }).pipe(Effect.provide(layer)))

    it.effect("sets only when absent", () =>
      Effect.gen(function*() {
        const cache = yield* Cache.Cache
        const wins = yield* Effect.forEach(Array.from({ length: 10 }), (_, i) => cache.setIfAbsent("once", String(i), "10 seconds"), { concurrency: 10 })
        expect(wins.filter(Boolean)).toHaveLength(1)
      }).pipe(Effect.provide(layer)))
  })

contract("memory", Cache.layerMemory({ maxEntries: 1000 }))
contract("redis", Cache.layerRedis({ url: Redacted.make(redisUrl()), keyPrefix: prefix }))

describe("memory cache bounds", () => {
  it("evicts the least recently used entries beyond its bound", () => {
    const cache = Cache.makeMemory({ maxEntries: 3 })
    Effect.runSync(Effect.all([cache.set("a", "1"), cache.set("b", "2"), cache.set("c", "3")]))
    Effect.runSync(cache.get("a")) // a is now the most recent
    Effect.runSync(cache.set("d", "4"))
    expect(Effect.runSync(cache.get("b"))).toEqual(Option.none())
    expect(Effect.runSync(cache.get("a"))).toEqual(Option.some("1"))
    expect(Effect.runSync(cache.size)).toBe(3)
  })
})

describe("redis cache", () => {
  it.effect("fails to start with a clear error when Redis is unreachable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Cache.layerRedis({ url: Redacted.make("redis://127.0.0.1:1/0"), keyPrefix: "x" })))
      expect(error._tag).toBe("CacheError")
      expect(error.operation).toBe("connect")
    }).pipe(Effect.scoped))
})
