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

/** A passkey of the account (`GET /v1/me/passkeys`). */
export interface Passkey {
  id: string
  name: string
  device_type: string
  backed_up: boolean
  transports: string[]
  created_at: string
  last_used_at: string | null
}

/** The single sign-on providers (`GET /v1/auth/oidc/providers`). */
export interface SsoProviders {
  providers: Array<{ id: string; name: string; start_url: string }>
  sso_only: boolean
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
  /** What the row is for: a grant's reason, or what a hold paid for (`skill weather.forecast`, `turn in chat …`). */
  reason: string | null
  /** The skill a hold paid for (`<app>.<skill>`). */
  skill?: string | null
  /** The API key that spent. */
  api_key_id?: string | null
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

/** An app of the store catalog (`GET /v1/store/apps`). */
export interface StoreApp {
  id: string
  name: string
  description: string
  publisher: string
  categories: string[]
  latest_version: string
  installed_version: string | null
  updated_at: string
}

/** One published version of a store app (`GET /v1/store/apps/{app}`). */
export interface StoreVersion {
  version: string
  digest: string
  size: number
  published_at: string
  signature: { public_key: string; trusted: boolean; publisher: string | null } | null
  permissions: { allowed_hosts: string[]; wasi: boolean; host_functions: string[] }
  limits: { memory_mb: number; timeout_ms: number }
  config: Array<{ key: string; description?: string; secret: boolean; required: boolean }>
  skills: Skill[]
}

export interface StoreAppDetail {
  id: string
  name: string
  description: string
  publisher: string
  categories: string[]
  latest_version: string
  installed: { version: string; digest: string } | null
  versions: StoreVersion[]
}

/** An install as admins see it (`GET /v1/admin/apps`). */
export interface Install {
  app: string
  version: string
  digest: string
  config: Record<string, "set" | "unset">
  pending_upgrade: { version: string; digest: string; requested_by: string; requested_at: string } | null
  installed_by: string
  installed_at: string
  updated_at: string
}

/** What an upgrade changes, field by field (`GET /v1/admin/apps/{app}/upgrade/{version}`). */
export interface UpgradeDiff {
  app: string
  from: string
  to: string
  escalates: boolean
  status: "pending" | "not_requested" | "applied"
  changes: Array<{ field: string; from: unknown; to: unknown; escalates: boolean; description: string }>
}
