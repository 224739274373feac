/** The chat page's merge of stored history and journal events: nothing twice, nothing lost. */
import { describe, expect, it } from "vitest"
import { addPosted, apply, fromHistory, runningTurn, type Timeline } from "./timeline.ts"
import type { ChatEvent, Message } from "./types.ts"

const at = "2026-12-07T00:00:00.000Z"
const msg = (id: string, role: "user" | "mate", text: string, turn: string, status: Message["status"] = "done"): Message => ({
  id, role, author_id: role === "user" ? "u1" : "m1", text, turn_id: turn, status, created_at: at
})
const ev = (seq: number, turn_id: string, kind: string, fields: Record<string, unknown> = {}): ChatEvent => ({ seq, turn_id, at, kind, ...fields })

/** A turn's journal: the user's message, the turn, deltas, the stored reply, done. */
const journal = (start: number, turn: string, userId: string, mateId: string, words: string[]): ChatEvent[] => {
  let seq = start
  return [
    ev(seq++, turn, "message_stored", { message_id: userId, role: "user", author_id: "u1", text: "hi" }),
    ev(seq++, turn, "turn_started", { mate_id: "m1", reserved: 2 }),
    ...words.map((w) => ev(seq++, turn, "delta", { text: w })),
    ev(seq++, turn, "message_stored", { message_id: mateId, role: "mate", author_id: "m1", text: words.join("") }),
    ev(seq++, turn, "charge", { amount: 1, held: 2 }),
    ev(seq++, turn, "done", { message_id: mateId })
  ]
}

const texts = (t: Timeline) => t.items.map((i) => (i.type === "user" ? `user:${i.text}` : `mate:${i.turn.text}:${i.turn.status}`))

describe("chat timeline", () => {
  it("streams a reply from its deltas and settles on the stored text", () => {
    const t = fromHistory([], 0)
    const events = journal(1, "t1", "a", "b", ["You ", "said: ", "hi"])
    for (const e of events.slice(0, 4)) apply(t, e)
    expect(texts(t)).toEqual(["user:hi", "mate:You said: :running"])
    expect(runningTurn(t)?.turnId).toBe("t1")
    for (const e of events.slice(4)) apply(t, e)
    expect(texts(t)).toEqual(["user:hi", "mate:You said: hi:done"])
    expect(runningTurn(t)).toBeUndefined()
  })

  it("applies each event once, however often the stream delivers it", () => {
    const t = fromHistory([], 0)
    const events = journal(1, "t1", "a", "b", ["one ", "two"])
    for (const e of [...events.slice(0, 4), ...events.slice(2, 4), ...events]) apply(t, e)
    expect(texts(t)).toEqual(["user:hi", "mate:one two:done"])
  })

  it("shows a posted message once: from the post's answer, then from its event", () => {
    const t = fromHistory([], 0)
    addPosted(t, { message_id: "a", turn_id: "t1" }, "hi")
    for (const e of journal(1, "t1", "a", "b", ["ok"])) apply(t, e)
    expect(texts(t)).toEqual(["user:hi", "mate:ok:done"])
  })

  it("keeps the names of the files sent when the message's event arrives before the post's answer", () => {
    const t = fromHistory([], 0)
    const events = journal(1, "t1", "a", "b", ["ok"])
    apply(t, events[0]!)
    addPosted(t, { message_id: "a", turn_id: "t1" }, "hi", ["notes.txt"])
    for (const e of events) apply(t, e)
    expect(texts(t)).toEqual(["user:hi", "mate:ok:done"])
    expect(t.items[0]!.type === "user" && t.items[0]!.files).toEqual(["notes.txt"])
  })

  it("after a reload mid-reply, replays only the running turn's events and doubles nothing", () => {
    // the journal: a finished turn (seq 1-6), then a running one (7-10 so far)
    const first = journal(1, "t1", "a", "b", ["old ", "reply"])
    const second = journal(7, "t2", "c", "d", ["new ", "reply ", "here"])
    // what the page read: history with both user messages, the first reply, last_seq 10
    const history = [msg("a", "user", "hi", "t1"), msg("b", "mate", "old reply", "t1"), msg("c", "user", "hi", "t2", "running")]
    const t = fromHistory(history, 0)
    t.replay = { until: 10, turnId: "t2" }
    for (const e of [...first, ...second]) apply(t, e)
    expect(texts(t)).toEqual(["user:hi", "mate:old reply:done", "user:hi", "mate:new reply here:done"])
  })

  it("resuming after the last seen event continues the reply without a gap", () => {
    const events = journal(1, "t1", "a", "b", ["a ", "b ", "c"])
    const live = fromHistory([], 0)
    for (const e of events.slice(0, 4)) apply(live, e)
    // the connection dropped; the stream resumes after live.lastSeq
    for (const e of events.filter((e) => e.seq > live.lastSeq)) apply(live, e)
    expect(texts(live)).toEqual(["user:hi", "mate:a b c:done"])
  })

  it("keeps skill calls, results and confirmations on their turn; shows unknown kinds as they are", () => {
    const t = fromHistory([], 0)
    apply(t, ev(1, "t1", "message_stored", { message_id: "a", role: "user", text: "weather?" }))
    apply(t, ev(2, "t1", "turn_started"))
    apply(t, ev(3, "t1", "skill_call", { call_id: "k1", app: "web", skill: "search", input: { q: "weather" } }))
    apply(t, ev(4, "t1", "confirmation_required", { call_id: "k2", app: "mail", skill: "send", input: { to: "x" }, timeout_ms: 60_000 }))
    apply(t, ev(5, "t1", "skill_result", { call_id: "k1", ok: true, output: { temp: 21 }, error: null }))
    apply(t, ev(6, "t1", "mystery_kind", { note: "new" }))
    const turn = runningTurn(t)!
    expect(turn.calls).toEqual([{ callId: "k1", app: "web", skill: "search", input: { q: "weather" }, result: { ok: true, output: { temp: 21 }, error: null } }])
    expect(turn.confirmations.map((c) => [c.event.call_id, c.answered])).toEqual([["k2", undefined]])
    apply(t, ev(7, "t1", "confirmation_resolved", { call_id: "k2", approved: false, reason: "declined" }))
    expect(turn.confirmations[0]!.answered).toBe("denied")
    expect(turn.other.map((e) => e.kind)).toEqual(["mystery_kind"])
  })

  it("ends a turn as cancelled or failed, restarts it from scratch, and removes deleted messages", () => {
    const t = fromHistory([], 0)
    apply(t, ev(1, "t1", "message_stored", { message_id: "a", role: "user", text: "hi" }))
    apply(t, ev(2, "t1", "turn_started"))
    apply(t, ev(3, "t1", "delta", { text: "partial" }))
    apply(t, ev(4, "t1", "restarted", { attempt: 2 }))
    expect(runningTurn(t)).toMatchObject({ text: "", attempt: 2 })
    apply(t, ev(5, "t1", "delta", { text: "again" }))
    apply(t, ev(6, "t1", "cancelled", { message_id: null }))
    expect(texts(t)).toEqual(["user:hi", "mate:again:cancelled"])
    apply(t, ev(7, "t2", "message_stored", { message_id: "c", role: "user", text: "fail" }))
    apply(t, ev(8, "t2", "error", { code: "mate_failed", message: "The echo mate was asked to fail" }))
    expect(t.items.at(-1)).toMatchObject({ type: "turn", turn: { status: "failed", error: { code: "mate_failed" } } })
    apply(t, ev(9, "t2", "message_deleted", { message_id: "c" }))
    expect(t.items.some((i) => i.type === "user" && i.id === "c")).toBe(false)
  })
})
