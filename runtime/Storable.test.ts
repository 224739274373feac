/**
 * Property: whatever the storable schemas accept, real Postgres stores (text, jsonb, timestamptz),
 * and what they refuse is what Postgres would refuse — over full-Unicode strings (lone surrogates
 * and NUL included) and dates across JavaScript's whole range (issue 15, finding 1a).
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import Pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Storable from "./Storable.ts"
import { createTestDatabase } from "./testing/services.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
let client: Pg.Client
beforeAll(async () => {
  db = await createTestDatabase("storable")
  client = new Pg.Client({ connectionString: db.url })
  await client.connect()
  await client.query("CREATE TABLE t (s TEXT, j JSONB, d TIMESTAMPTZ)")
})
afterAll(async () => {
  await client?.end()
  await db?.drop()
})

/** Strings of any UTF-16 code units (lone surrogates, NUL) or of any code points (astral planes). */
const anyString = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.constantFrom("\ud800", "a\udfffb", "\udbff\udfff", "\u0000", "é", "")
)

const stores = async (query: string, value: unknown): Promise<boolean> => {
  try {
    await client.query("SAVEPOINT p")
    await client.query(query, [value])
    await client.query("RELEASE SAVEPOINT p")
    return true
  } catch {
    await client.query("ROLLBACK TO SAVEPOINT p")
    return false
  }
}

describe("storable values", () => {
  beforeAll(() => client.query("BEGIN"))
  afterAll(() => client.query("ROLLBACK"))

  it("text and JSON: accepted exactly when Postgres stores them unchanged", async () => {
    const text = Schema.decodeUnknownEither(Storable.Text(100))
    const json = Schema.decodeUnknownEither(Storable.JsonObject(10_000))
    await fc.assert(
      fc.asyncProperty(anyString, anyString, async (s, key) => {
        const accepted = Either.isRight(text(s))
        // jsonb refuses what text refuses (a lone surrogate's escape, \u0000)
        expect(await stores("INSERT INTO t (j) VALUES ($1::jsonb)", JSON.stringify({ [key]: s }))).toBe(accepted && Storable.isStorableText(key))
        expect(Either.isRight(json({ [key]: s }))).toBe(accepted && Storable.isStorableText(key))
        if (accepted) {
          // a text column keeps it exactly
          const { rows } = await client.query<{ s: string }>("SELECT $1::text AS s", [s])
          expect(rows[0]!.s).toBe(s)
        } else {
          expect(s.includes("\u0000") || /[\uD800-\uDFFF]/u.test(s)).toBe(true)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("times: accepted exactly when within years 1-9999, and those Postgres stores", async () => {
    const time = Schema.decodeUnknownEither(Storable.DateTime)
    const fromNumber = Schema.decodeUnknownEither(Storable.DateTimeFromNumber)
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.date({ noInvalidDate: true }), fc.constantFrom(new Date(8.64e15), new Date(-8.64e15), new Date(Storable.latestTime), new Date(Storable.earliestTime))), async (d) => {
        const accepted = Either.isRight(time(d.toISOString()))
        expect(accepted).toBe(d.getTime() >= Storable.earliestTime && d.getTime() <= Storable.latestTime)
        expect(Either.isRight(fromNumber(d.getTime()))).toBe(accepted)
        if (accepted) expect(await stores("INSERT INTO t (d) VALUES ($1)", d)).toBe(true)
      }),
      { numRuns: 500 }
    )
    // what the probe sent (JavaScript's last day; the embedded database refused it)
    expect(Either.isLeft(time("+275760-09-13T00:00:00.000Z"))).toBe(true)
    expect(await stores("INSERT INTO t (d) VALUES ($1)", new Date(-8.64e15))).toBe(false)
  })

  it("JSON documents: finite numbers, bounded depth", () => {
    expect(Storable.jsonProblem({ a: [1, 2, { b: "c" }] })).toBeUndefined()
    expect(Storable.jsonProblem({ a: Number.POSITIVE_INFINITY })).toMatch(/finite/)
    let deep: unknown = 1
    for (let i = 0; i < 40; i++) deep = [deep]
    expect(Storable.jsonProblem({ a: deep })).toMatch(/deeper/)
    expect(Storable.jsonProblem({ "k\ud800": 1 })).toMatch(/keys/)
  })
})
