/**
 * A chat as the page shows it: the stored messages (from `GET /v1/chats/{id}`) merged with the
 * journal events that follow (from the event stream). Pure functions over plain data, so the
 * rules are tested without a browser (`timeline.test.ts`):
 *
 * - a message is shown once, whether it came from history, from the post's answer or from a
 *   `message_stored` event;
 * - a turn's reply grows with its `delta`s until the mate's stored message replaces it (the
 *   stored text wins; deltas of a turn whose reply is stored are ignored, so replaying the
 *   journal never doubles text); `restarted` starts the reply again;
 * - skill calls, results, confirmations and kinds this app does not know are kept on their turn.
 */
import type { ChatEvent, Message, TurnStatus } from "./types.ts"

export interface SkillCallView {
  callId: string
  app: string
  skill: string
  input: unknown
  result: { ok: boolean; output: unknown; error: string | null } | undefined
}

export interface ConfirmationView {
  /** The event's fields as sent (the id to answer, the skill, what it would do). */
  event: ChatEvent
  answered: "approved" | "denied" | "expired" | undefined
}

export interface TurnView {
  turnId: string
  status: TurnStatus
  text: string
  /** The mate's stored reply (its id), once stored. */
  messageId: string | null
  /** The text is the stored reply (deltas no longer change it). */
  stored: boolean
  calls: SkillCallView[]
  confirmations: ConfirmationView[]
  /** Events of kinds this app does not know yet, shown as they are. */
  other: ChatEvent[]
  charged: number | null
  error: { code: string; message: string } | null
  attempt: number
}

export type Item =
  | { type: "user"; id: string; text: string; turnId: string; createdAt: string; pending?: boolean; files?: string[] }
  | { type: "turn"; turn: TurnView }

export interface Timeline {
  items: Item[]
  /** The last journal sequence number applied. */
  lastSeq: number
  /**
   * Replaying the journal for a turn that is running: up to `until` (what the history already
   * shows), only that turn's events count.
   */
  replay?: { until: number; turnId: string }
}

const newTurn = (turnId: string, status: TurnStatus = "running"): TurnView => ({
  turnId,
  status,
  text: "",
  messageId: null,
  stored: false,
  calls: [],
  confirmations: [],
  other: [],
  charged: null,
  error: null,
  attempt: 1
})

/** The timeline of a chat's stored messages (oldest first), read after `lastSeq`. */
export const fromHistory = (messages: ReadonlyArray<Message>, lastSeq: number): Timeline => {
  const t: Timeline = { items: [], lastSeq }
  for (const m of messages) {
    if (m.role === "user") {
      t.items.push({ type: "user", id: m.id, text: m.text, turnId: m.turn_id, createdAt: m.created_at })
    } else {
      const turn = turnOf(t, m.turn_id)
      turn.text = m.text
      turn.messageId = m.id
      turn.stored = true
      turn.status = m.status
    }
  }
  // a turn without a stored reply yet: running (the stream fills it), or ended without one
  for (const m of messages) {
    if (m.role === "user" && !findTurn(t, m.turn_id)) {
      const turn = turnOf(t, m.turn_id)
      turn.status = m.status
    }
  }
  return t
}

const findTurn = (t: Timeline, turnId: string): TurnView | undefined => {
  for (const item of t.items) if (item.type === "turn" && item.turn.turnId === turnId) return item.turn
  return undefined
}

/** The turn's view, created after its user message (or at the end) if new. */
const turnOf = (t: Timeline, turnId: string): TurnView => {
  const found = findTurn(t, turnId)
  if (found) return found
  const turn = newTurn(turnId)
  let at = -1
  t.items.forEach((item, i) => {
    if (item.type === "user" && item.turnId === turnId) at = i
  })
  if (at === -1) t.items.push({ type: "turn", turn })
  else t.items.splice(at + 1, 0, { type: "turn", turn })
  return turn
}

const hasMessage = (t: Timeline, id: string) =>
  t.items.some((item) => (item.type === "user" ? item.id === id : item.turn.messageId === id))

const str = (v: unknown): string => (typeof v === "string" ? v : "")

/** Show a message the user just posted (before its event arrives). */
export const addPosted = (t: Timeline, posted: { message_id: string; turn_id: string }, text: string, files: string[] = []): void => {
  if (hasMessage(t, posted.message_id)) {
    // the event stream was first: keep what only the page knows (the names of the files sent)
    for (const item of t.items) if (item.type === "user" && item.id === posted.message_id && files.length > 0) item.files = files
    return
  }
  t.items.push({ type: "user", id: posted.message_id, text, turnId: posted.turn_id, createdAt: new Date().toISOString(), ...(files.length > 0 ? { files } : {}) })
  turnOf(t, posted.turn_id)
}

/** Apply one journal event (events at or before `lastSeq` are ignored). */
export const apply = (t: Timeline, e: ChatEvent): void => {
  if (e.seq <= t.lastSeq) return
  t.lastSeq = e.seq
  if (t.replay && e.seq <= t.replay.until && e.turn_id !== t.replay.turnId) return
  switch (e.kind) {
    case "message_stored": {
      const id = str(e.message_id)
      if (e.role === "user") {
        if (hasMessage(t, id)) return
        t.items.push({ type: "user", id, text: str(e.text), turnId: e.turn_id, createdAt: e.at })
        return
      }
      const turn = turnOf(t, e.turn_id)
      turn.text = str(e.text)
      turn.messageId = id
      turn.stored = true
      return
    }
    case "turn_started": {
      const turn = turnOf(t, e.turn_id)
      if (!turn.stored) turn.status = "running"
      return
    }
    case "restarted": {
      const turn = turnOf(t, e.turn_id)
      if (turn.stored) return
      turn.text = ""
      turn.calls = []
      turn.attempt = typeof e.attempt === "number" ? e.attempt : turn.attempt + 1
      turn.status = "running"
      return
    }
    case "delta": {
      const turn = turnOf(t, e.turn_id)
      if (!turn.stored) turn.text += str(e.text)
      return
    }
    case "skill_call": {
      const turn = turnOf(t, e.turn_id)
      const callId = str(e.call_id)
      if (turn.calls.some((c) => c.callId === callId)) return
      turn.calls.push({ callId, app: str(e.app), skill: str(e.skill), input: e.input, result: undefined })
      return
    }
    case "skill_result": {
      const turn = turnOf(t, e.turn_id)
      const call = turn.calls.find((c) => c.callId === str(e.call_id))
      const result = { ok: e.ok === true, output: e.output, error: typeof e.error === "string" ? e.error : null }
      if (call) call.result = result
      else turn.calls.push({ callId: str(e.call_id), app: "", skill: "", input: undefined, result })
      return
    }
    case "confirmation_required": {
      turnOf(t, e.turn_id).confirmations.push({ event: e, answered: undefined })
      return
    }
    case "confirmation_resolved": {
      const confirmation = turnOf(t, e.turn_id).confirmations.find((c) => c.event.call_id === e.call_id)
      if (confirmation) confirmation.answered = e.approved === true ? "approved" : e.reason === "timeout" ? "expired" : "denied"
      return
    }
    case "charge": {
      const turn = turnOf(t, e.turn_id)
      turn.charged = typeof e.amount === "number" ? e.amount : turn.charged
      return
    }
    case "done":
      turnOf(t, e.turn_id).status = "done"
      return
    case "cancelled":
      turnOf(t, e.turn_id).status = "cancelled"
      return
    case "error": {
      const turn = turnOf(t, e.turn_id)
      turn.status = "failed"
      turn.error = { code: str(e.code), message: str(e.message) }
      return
    }
    case "message_deleted": {
      const id = str(e.message_id)
      t.items = t.items.filter((item) => !(item.type === "user" && item.id === id))
      for (const item of t.items) {
        if (item.type === "turn" && item.turn.messageId === id) {
          item.turn.text = ""
          item.turn.messageId = null
          item.turn.stored = true
        }
      }
      t.items = t.items.filter((item) => !(item.type === "turn" && item.turn.stored && item.turn.messageId === null && item.turn.text === "" && item.turn.calls.length === 0 && item.turn.status !== "running"))
      return
    }
    default: {
      if (e.turn_id) turnOf(t, e.turn_id).other.push(e)
    }
  }
}

/** The running turn, if any. */
export const runningTurn = (t: Timeline): TurnView | undefined => {
  for (const item of t.items) if (item.type === "turn" && item.turn.status === "running") return item.turn
  return undefined
}
