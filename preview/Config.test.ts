import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import { formatError } from "../runtime/Config.ts"
import * as PreviewConfig from "./Config.ts"

const load = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(PreviewConfig.fromEnv, ConfigProvider.fromMap(new Map(Object.entries(env))))))

describe("PreviewConfig.fromEnv", () => {
  it("has the documented defaults", () => {
    const c = load({})
    expect(Either.isRight(c)).toBe(true)
    if (Either.isLeft(c)) return
    expect(c.right.http.port).toBe(8080)
    expect(c.right.engine).toBe("vips")
    expect(c.right.pool.workers).toBeGreaterThanOrEqual(1)
    expect(c.right.limits).toMatchObject({ maxImageBytes: 10 * 1024 * 1024, maxPixels: 50_000_000 })
    expect(c.right.cache.image).toEqual({ maxBytes: 10 * 1024 ** 3, ttlMs: 7 * 86_400_000 })
    expect(c.right.cache.favicon).toEqual({ maxBytes: 1024 ** 3, ttlMs: 7 * 86_400_000 })
    expect(c.right.cache.metadata).toEqual({ maxBytes: 500 * 1024 ** 2, ttlMs: 86_400_000 })
    expect(c.right.cache.dir).toMatch(/\.troupe\/preview-cache$/)
    expect(c.right.allowedPrivateHosts).toEqual([])
    expect(Option.isNone(c.right.security.signingKey)).toBe(true)
  })

  it("reads the PREVIEW_* variables", () => {
    const c = load({
      PREVIEW_PORT: "9090",
      PREVIEW_WORKERS: "3",
      PREVIEW_IMAGE_ENGINE: "jsquash",
      PREVIEW_MAX_IMAGE_BYTES: "5MB",
      PREVIEW_IMAGE_CACHE_SIZE: "2GB",
      PREVIEW_IMAGE_CACHE_TTL: "3600",
      PREVIEW_METADATA_CACHE_TTL: "2 hours",
      PREVIEW_CACHE_DIR: "/tmp/x",
      PREVIEW_API_KEY: "a, b",
      PREVIEW_CORS_ORIGINS: "https://a.example,https://b.example",
      PREVIEW_VALIDATE_REFERER: "true",
      PREVIEW_ALLOWED_REFERERS: "https://a.example",
      PREVIEW_SIGNING_KEY: "s",
      PREVIEW_ALLOWED_PRIVATE_HOSTS: "origin.internal:8080, [::1]:9000",
      PREVIEW_RATE_LIMIT: "0"
    })
    if (Either.isLeft(c)) throw new Error(formatError(c.left))
    expect(c.right).toMatchObject({ http: { port: 9090 }, engine: "jsquash", pool: { workers: 3 }, limits: { maxImageBytes: 5 * 1024 * 1024 } })
    expect(c.right.cache).toMatchObject({ dir: "/tmp/x", image: { maxBytes: 2 * 1024 ** 3, ttlMs: 3_600_000 }, metadata: { ttlMs: 7_200_000 } })
    expect(c.right.security.apiKeys.map(Redacted.value)).toEqual(["a", "b"])
    expect(c.right.security.corsOrigins).toEqual(["https://a.example", "https://b.example"])
    expect(c.right.security.rateLimitPerMinute).toBe(0)
    expect(c.right.allowedPrivateHosts).toEqual(["origin.internal:8080", "[::1]:9000"])
  })

  it.each([
    [{ PREVIEW_IMAGE_ENGINE: "imagemagick" }, "PREVIEW_IMAGE_ENGINE"],
    [{ PREVIEW_ALLOWED_PRIVATE_HOSTS: "10.0.0.5" }, "PREVIEW_ALLOWED_PRIVATE_HOSTS"],
    [{ PREVIEW_IMAGE_CACHE_SIZE: "lots" }, "PREVIEW_IMAGE_CACHE_SIZE"],
    [{ PREVIEW_PORT: "70000" }, "PREVIEW_PORT"],
    [{ PREVIEW_VALIDATE_REFERER: "true" }, "PREVIEW_ALLOWED_REFERERS"]
  ])("names the wrong variable: %j", (env, name) => {
    const c = load(env)
    expect(Either.isLeft(c)).toBe(true)
    if (Either.isLeft(c)) expect(formatError(c.left)).toContain(name)
  })

  it("parses sizes", () => {
    expect(PreviewConfig.parseBytes("500MB")).toBe(500 * 1024 ** 2)
    expect(PreviewConfig.parseBytes("1.5 GB")).toBe(1.5 * 1024 ** 3)
    expect(PreviewConfig.parseBytes("1048576")).toBe(1048576)
    expect(PreviewConfig.parseBytes("ten")).toBeUndefined()
  })
})
