import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as NodePath from "node:path"
import * as TroupeConfig from "./Config.ts"

const load = (env: Record<string, string>) =>
  Effect.runSync(
    Effect.either(Effect.withConfigProvider(TroupeConfig.fromEnv, ConfigProvider.fromMap(new Map(Object.entries(env)))))
  )

const errorLine = (env: Record<string, string>) => {
  const result = load(env)
  if (Either.isRight(result)) throw new Error("expected a configuration error")
  return TroupeConfig.formatError(result.left)
}

describe("configuration", () => {
  it("defaults to the embedded parts in ./.troupe on port 8080", () => {
    const config = Either.getOrThrow(load({}))
    expect(config.http.port).toBe(8080)
    expect(config.dataDir).toBe(NodePath.resolve(".troupe"))
    expect(config.database).toEqual({ _tag: "Embedded", dataDir: NodePath.resolve(".troupe/pg") })
    expect(config.cache._tag).toBe("Memory")
    expect(config.blobStore).toEqual({ _tag: "Filesystem", root: NodePath.resolve(".troupe/blobs") })
  })

  it("defaults the public URL to http://localhost:<port> (passkeys and SSO work on a plain start); TROUPE_PUBLIC_URL wins", () => {
    const publicUrl = (env: Record<string, string>) => Option.getOrThrow(Either.getOrThrow(load(env)).http.publicUrl)
    expect(publicUrl({})).toBe("http://localhost:8080")
    expect(publicUrl({ TROUPE_PORT: "9090" })).toBe("http://localhost:9090")
    expect(publicUrl({ TROUPE_HOST: "127.0.0.1", TROUPE_PORT: "9090" })).toBe("http://localhost:9090")
    expect(publicUrl({ TROUPE_HOST: "::" })).toBe("http://localhost:8080")
    // listening on one other address: that address
    expect(publicUrl({ TROUPE_HOST: "10.0.0.7" })).toBe("http://10.0.0.7:8080")
    expect(publicUrl({ TROUPE_HOST: "fd00::7" })).toBe("http://[fd00::7]:8080")
    expect(publicUrl({ TROUPE_PUBLIC_URL: "https://chat.example.com", TROUPE_PORT: "9090" })).toBe("https://chat.example.com")
    expect(errorLine({ TROUPE_PUBLIC_URL: "chat.example.com" })).toMatch(/^TROUPE_PUBLIC_URL: must be an http/)
  })

  it("uses Postgres, Redis and S3 when their variables are set", () => {
    const config = Either.getOrThrow(load({
      DATABASE_URL: "postgres://u:p@db:5432/troupe",
      REDIS_URL: "redis://cache:6379",
      S3_ENDPOINT: "http://minio:9000",
      S3_BUCKET: "troupe",
      S3_ACCESS_KEY_ID: "k",
      S3_SECRET_ACCESS_KEY: "s",
      TROUPE_DATA_DIR: "/var/lib/troupe"
    }))
    expect(config.database._tag).toBe("Postgres")
    expect(config.cache._tag).toBe("Redis")
    expect(config.blobStore._tag).toBe("S3")
    expect(config.dataDir).toBe("/var/lib/troupe")
  })

  it("fails over a dead runner's shards within 8 s by default", () => {
    const { cluster } = Either.getOrThrow(load({}))
    // a dead runner's lock is free after expiration; survivors look every refresh interval
    const worst = Duration.toMillis(cluster.shardLockExpiration) + Duration.toMillis(cluster.refreshAssignmentsInterval) +
      Duration.toMillis(cluster.shardLockRefreshInterval)
    expect(worst).toBeLessThanOrEqual(8_000)
    expect(cluster.advisoryLocks).toBe(false)
  })

  it.each([
    [{ TROUPE_PORT: "abc" }, /^TROUPE_PORT: /],
    [{ TROUPE_PORT: "70000" }, /^TROUPE_PORT: must be a port number/],
    [{ DATABASE_URL: "mysql://x" }, /^DATABASE_URL: must be a URL starting with postgres:\/\//],
    [{ REDIS_URL: "not a url" }, /^REDIS_URL: must be a URL/],
    [{ S3_ENDPOINT: "http://minio:9000" }, /^S3_BUCKET: is required when S3_ENDPOINT/],
    [{ S3_BUCKET: "b", S3_ACCESS_KEY_ID: "k" }, /^S3_SECRET_ACCESS_KEY: /],
    [{ S3_BUCKET: "b", S3_ENDPOINT: "ftp://x" }, /^S3_ENDPOINT: must be an http/],
    [{ TROUPE_SHARD_LOCK_EXPIRATION: "soon" }, /^TROUPE_SHARD_LOCK_EXPIRATION: /],
    [{ TROUPE_SHARD_LOCK_REFRESH: "10 seconds" }, /^TROUPE_SHARD_LOCK_REFRESH: must be shorter/],
    [{ TROUPE_LOG_LEVEL: "loud" }, /^TROUPE_LOG_LEVEL: /],
    [{ TROUPE_CLUSTER_RETENTION: "5 seconds" }, /^TROUPE_CLUSTER_RETENTION: must be at least 1 minute/]
  ])("names the variable in one line for %j", (env, expected) => {
    const line = errorLine(env)
    expect(line).toMatch(expected)
    expect(line).not.toContain("\n")
  })
})
