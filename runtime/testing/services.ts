/**
 * Real external services for integration tests: Postgres and Redis on this machine (CI points
 * `TEST_DATABASE_URL` / `TEST_REDIS_URL` at them). A missing service fails the test; it is
 * never skipped. Each test file gets its own database, dropped afterwards.
 */
import * as NodeCrypto from "node:crypto"
import Pg from "pg"

/** The server tests create their databases on. */
export const adminDatabaseUrl = (): string => process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

/** The Redis tests use. */
export const redisUrl = (): string => process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379/15"

/** A fresh, empty database; call `drop` when done. */
export const createTestDatabase = async (label = "t"): Promise<{ readonly url: string; readonly name: string; readonly drop: () => Promise<void> }> => {
  const admin = adminDatabaseUrl()
  const name = `troupe_${label.replace(/[^a-z0-9_]/gi, "").toLowerCase().slice(0, 20)}_${NodeCrypto.randomBytes(5).toString("hex")}`
  const client = new Pg.Client({ connectionString: admin, connectionTimeoutMillis: 5_000 })
  try {
    await client.connect()
  } catch (e) {
    throw new Error(`Postgres is required for this test and is not reachable at ${admin}: ${(e as Error).message}`)
  }
  await client.query(`CREATE DATABASE ${name}`)
  await client.end()
  const url = new URL(admin)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const c = new Pg.Client({ connectionString: admin })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await c.end()
    }
  }
}
