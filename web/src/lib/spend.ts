/** Credits spent per day, from ledger entries (a settle's legs on the user's account add up to minus what was charged). */
import type { LedgerEntry } from "./types.ts"

export interface DaySpend {
  /** YYYY-MM-DD in local time. */
  day: string
  spent: number
}

const localDay = (d: Date) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`

/** The last `days` days (oldest first, today last) with what was spent on each. */
export const spendPerDay = (entries: ReadonlyArray<LedgerEntry>, days: number, now: Date = new Date()): DaySpend[] => {
  const totals = new Map<string, number>()
  for (const e of entries) {
    if (e.kind !== "settle") continue
    const day = localDay(new Date(e.created_at))
    totals.set(day, (totals.get(day) ?? 0) - e.amount)
  }
  const out: DaySpend[] = []
  for (let i = days - 1; i >= 0; i--) {
    const d = new Date(now.getFullYear(), now.getMonth(), now.getDate() - i)
    const day = localDay(d)
    out.push({ day, spent: Math.max(0, totals.get(day) ?? 0) })
  }
  return out
}

/** What a ledger entry means, in words. */
export const describeEntry = (e: LedgerEntry): string => {
  switch (e.kind) {
    case "grant": return e.reason ? `Granted: ${e.reason}` : "Credits granted"
    case "reserve": return e.bucket === "reserved" ? "Held for a reply or skill" : "Moved to reserved"
    case "settle": return e.bucket === "reserved" ? "Charged (hold closed)" : "Unused part of a hold returned"
    case "release": return e.bucket === "reserved" ? "Hold released" : "Hold returned"
    case "expire": return "Expired hold returned"
    default: return e.reason ?? e.kind
  }
}
