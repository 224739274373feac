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

/** One thing that moved credits: a grant, or a hold (a reply or a skill call) with how it ended. */
export interface Operation {
  key: string
  /** The newest entry's time. */
  at: string
  what: string
  /** A chat the operation belongs to. */
  chatId: string | null
  status: "granted" | "held" | "charged" | "released" | "expired" | "other"
  held: number
  charged: number
  /** The net change to what is available. */
  change: number
}

const txn = /^(\w+):([^:]+):(.+)$/

/** Ledger entries (newest first) folded into operations (newest first): a hold's legs become one row. */
export const operations = (entries: ReadonlyArray<LedgerEntry>): Operation[] => {
  const groups = new Map<string, LedgerEntry[]>()
  for (const e of entries) {
    const m = txn.exec(e.key)
    const key = m ? `${m[1] === "grant" ? "grant:" : ""}${m[3]}` : e.key
    const list = groups.get(key)
    if (list) list.push(e)
    else groups.set(key, [e])
  }
  const out: Operation[] = []
  for (const [key, list] of groups) {
    const change = list.filter((e) => e.bucket === "available").reduce((a, e) => a + e.amount, 0)
    const kinds = new Set(list.map((e) => e.kind))
    const held = list.filter((e) => e.kind === "reserve" && e.bucket === "reserved").reduce((a, e) => a + e.amount, 0)
    const at = list.map((e) => e.created_at).sort().at(-1)!
    if (kinds.has("grant")) {
      const reason = list.find((e) => e.reason)?.reason
      out.push({ key, at, what: reason === "signup" ? "Welcome credits" : reason === "invite" ? "Invite gift" : reason ? `Granted: ${reason}` : "Credits granted", chatId: null, status: "granted", held: 0, charged: 0, change })
      continue
    }
    const chat = /^chat:([^:]+):/.exec(key)
    const skill = list.find((e) => e.skill)?.skill
    const what = skill ? `Skill ${skill}` : chat ? "Reply in a chat" : key.startsWith("skill:") ? "Skill call" : describeEntry(list[0]!)
    const status = kinds.has("settle") ? "charged" : kinds.has("release") ? "released" : kinds.has("expire") ? "expired" : kinds.has("reserve") ? "held" : "other"
    out.push({ key, at, what, chatId: chat ? chat[1]! : null, status, held, charged: status === "charged" ? -change : 0, change })
  }
  return out.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
}
