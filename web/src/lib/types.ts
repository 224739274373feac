/** The shapes of the HTTP API (docs/api.md, `/v1/openapi.json`) as the app reads them. */

export type Role = "user" | "admin"

export interface Me {
  id: string
  email: string
  username: string
  display_name: string
  role: Role
  email_verified: boolean
  totp_enabled: boolean
  settings: Record<string, unknown>
  created_at: string
}

export interface SessionInfo {
  id: string
  created_at: string
  last_used_at: string
  user_agent: string
  ip: string
  current: boolean
}

export interface ApiKey {
  id: string
  name: string
  scopes: string[]
  expires_at: string | null
  spend_cap: number | null
  created_at: string
}

export type TurnStatus = "running" | "done" | "failed" | "cancelled"

export interface Chat {
  id: string
  mate_id: string
  title: string
  created_at: string
  updated_at: string
  last_seq: number
  running_turn: string | null
}

export interface Message {
  id: string
  role: "user" | "mate"
  author_id: string
  text: string
  turn_id: string
  status: TurnStatus
  created_at: string
  /** The journal sequence number of the message (servers that send it). */
  seq?: number
}

export interface Mate {
  id: string
  name: string
  system_prompt: string
  model: string
  allowed_skills: string[]
  is_default: boolean
  created_at: string
  updated_at: string
}

export interface Skill {
  id: string
  name: string
  description: string
  input: Record<string, unknown>
  output: Record<string, unknown>
  price: string
  side_effects: "read" | "write"
  requires_confirmation: boolean
  timeout_ms: number
}

export interface App {
  id: string
  name: string
  version: string
  description: string
  publisher: string
  kind: string
  skills: Skill[]
}

export interface Balance {
  available: number
  reserved: number
}

export interface LedgerEntry {
  id: number
  key: string
  kind: string
  bucket: "available" | "reserved"
  amount: number
  reason: string | null
  created_at: string
}

export interface Invite {
  id: string
  uses: number
  used: number
  expires_at: string | null
  gift_credits: number
  created_at: string
}

export interface AdminUser {
  id: string
  email: string
  username: string
  role: Role
  email_verified: boolean
  created_at: string
}

/** One journal event of a chat, as the event stream sends it (snake_case). Unknown kinds pass through. */
export interface ChatEvent {
  seq: number
  turn_id: string
  at: string
  kind: string
  [field: string]: unknown
}

/** What the server tells a page before anyone signs in (`GET /v1/setup`, when the server has it). */
export interface ServerSetup {
  signup: "invite_only" | "open" | "domains"
  needs_admin: boolean
  initial_invite_file: string | null
  mail: "smtp" | "outbox"
  outbox_dir: string | null
}
