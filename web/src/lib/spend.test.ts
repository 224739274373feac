/** The credits page's reading of the double-entry ledger: operations and spend per day. */
import { describe, expect, it } from "vitest"
import { operations, spendPerDay } from "./spend.ts"
import type { LedgerEntry } from "./types.ts"

let id = 0
const entry = (key: string, kind: string, bucket: "available" | "reserved", amount: number, created_at: string, reason: string | null = null): LedgerEntry =>
  ({ id: ++id, key, kind, bucket, amount, reason, created_at })

// newest first, as GET /v1/credits/ledger answers
const ledger: LedgerEntry[] = [
  entry("reserve:u1:skill:s9", "reserve", "reserved", 4, "2026-12-07T12:00:05Z"),
  entry("reserve:u1:skill:s9", "reserve", "available", -4, "2026-12-07T12:00:05Z"),
  entry("release:u1:chat:c1:t2", "release", "available", 3, "2026-12-07T11:00:09Z"),
  entry("release:u1:chat:c1:t2", "release", "reserved", -3, "2026-12-07T11:00:09Z"),
  entry("reserve:u1:chat:c1:t2", "reserve", "reserved", 3, "2026-12-07T11:00:01Z"),
  entry("reserve:u1:chat:c1:t2", "reserve", "available", -3, "2026-12-07T11:00:01Z"),
  entry("settle:u1:chat:c1:t1", "settle", "available", 1, "2026-12-06T10:00:09Z"),
  entry("settle:u1:chat:c1:t1", "settle", "reserved", -3, "2026-12-06T10:00:09Z"),
  entry("reserve:u1:chat:c1:t1", "reserve", "reserved", 3, "2026-12-06T10:00:01Z"),
  entry("reserve:u1:chat:c1:t1", "reserve", "available", -3, "2026-12-06T10:00:01Z"),
  entry("grant:u1:signup:u1", "grant", "available", 100, "2026-12-06T09:00:00Z", "signup")
]

describe("credits ledger", () => {
  it("folds a hold's legs into one operation with what it charged", () => {
    expect(operations(ledger).map(({ what, status, held, charged, change, chatId }) => ({ what, status, held, charged, change, chatId }))).toEqual([
      { what: "Skill call", status: "held", held: 4, charged: 0, change: -4, chatId: null },
      { what: "Reply in a chat", status: "released", held: 3, charged: 0, change: 0, chatId: "c1" },
      { what: "Reply in a chat", status: "charged", held: 3, charged: 2, change: -2, chatId: "c1" },
      { what: "Welcome credits", status: "granted", held: 0, charged: 0, change: 100, chatId: null }
    ])
  })

  it("counts what was charged per day, zero on quiet days", () => {
    const days = spendPerDay(ledger, 3, new Date("2026-12-07T18:00:00"))
    expect(days.map((d) => d.spent)).toEqual([0, 2, 0])
    expect(days).toHaveLength(3)
  })

  it("names the skill a hold paid for, in a chat or not", () => {
    const named = (key: string, skill: string) => ({ ...entry(key, "reserve", "reserved", 2, "2026-12-07T13:00:00Z", `skill ${skill}`), skill, api_key_id: "k1" })
    expect(operations([named("reserve:u1:skill:web.read:k1:s1", "web.read"), named("reserve:u1:chat:c2:t1:a1c1", "math.calculate")]).map(({ what, chatId }) => ({ what, chatId }))).toEqual([
      { what: "Skill web.read", chatId: null },
      { what: "Skill math.calculate", chatId: "c2" }
    ])
  })
})
