/**
 * The user directory: what is known across users, for callers that have to find a user before
 * they can ask that user's entity (login, signup, verification), and the admin's lists and
 * invites. Reads only, apart from creating invites (which the registering user's entity redeems).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { Role } from "./protocol.ts"

/** The directory's database did not answer. */
export class DirectoryUnavailable extends Schema.TaggedError<DirectoryUnavailable>()("DirectoryUnavailable", {
  message: Schema.String
}) {}

/** A user as an admin lists them. */
export interface UserListing {
  readonly userId: string
  readonly email: string
  readonly username: string
  readonly role: Role
  readonly emailVerified: boolean
  readonly createdAt: Date
}

/** An invite as an admin lists it (never its code). */
export interface InviteListing {
  readonly inviteId: string
  readonly kind: "standard" | "initial_admin"
  readonly uses: number
  readonly used: number
  readonly expiresAt: Date | null
  readonly giftCredits: number
  readonly createdAt: Date
}

/** A new invite: its code is stored as a digest only. */
export interface NewInvite {
  readonly inviteId: string
  readonly codeHash: string
  readonly kind: "standard" | "initial_admin"
  readonly uses: number
  readonly expiresAt: Date | null
  readonly giftCredits: number
  readonly createdBy: string | null
}

/** The directory. */
export class UserDirectory extends Context.Tag("troupe/entities/user/UserDirectory")<UserDirectory, {
  /** The live account with this email or username (case-insensitive). */
  readonly findUserId: (login: string) => Effect.Effect<string | undefined, DirectoryUnavailable>
  /** The live account an identity at an OpenID Connect provider is linked to. */
  readonly findIdentity: (provider: string, subject: string) => Effect.Effect<string | undefined, DirectoryUnavailable>
  /** The live account a passkey (WebAuthn credential id) belongs to. */
  readonly findPasskeyOwner: (credentialId: string) => Effect.Effect<string | undefined, DirectoryUnavailable>
  /**
   * Whether an invite (by its code's digest) can still be redeemed: signup checks it before it
   * says whether an address is taken, so a bad invite learns nothing about accounts.
   */
  readonly inviteState: (codeHash: string) => Effect.Effect<"ok" | "unknown" | "expired" | "used_up", DirectoryUnavailable>
  /** Which of email and username a live account has already. */
  readonly taken: (email: string, username: string) => Effect.Effect<"email" | "username" | undefined, DirectoryUnavailable>
  /** Live users, newest first; `next` (a time in ms) fetches older ones. */
  readonly users: (options: { readonly before?: number | undefined; readonly limit: number }) => Effect.Effect<
    { readonly users: ReadonlyArray<UserListing>; readonly next: number | null },
    DirectoryUnavailable
  >
  /** Whether a live admin exists. */
  readonly hasAdmin: Effect.Effect<boolean, DirectoryUnavailable>
  /** The initial admin invite's id, while it exists unused. */
  readonly pendingInitialAdminInvite: Effect.Effect<string | undefined, DirectoryUnavailable>
  /** Create an invite; an `initial_admin` one only if none exists (returns whether it was created). */
  readonly createInvite: (invite: NewInvite) => Effect.Effect<boolean, DirectoryUnavailable>
  /** The newest invites. */
  readonly invites: (limit: number) => Effect.Effect<ReadonlyArray<InviteListing>, DirectoryUnavailable>
  /**
   * Sessions revoked after `since` (logout, logout everywhere, refresh-token reuse, account
   * deletion, expiry): what a gateway must refuse access tokens of, read again when it starts.
   */
  readonly revokedSessions: (since: Date) => Effect.Effect<ReadonlyArray<{ readonly familyId: string; readonly revokedAt: Date }>, DirectoryUnavailable>
}>() {}

const unavailable = (e: { readonly message: string }) => new DirectoryUnavailable({ message: e.message })

/** The directory on the runtime's database. */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const run = <A, E extends { readonly message: string }>(effect: Effect.Effect<A, E>) => Effect.mapError(effect, unavailable)
  return UserDirectory.of({
    findUserId: (login) =>
      run(Effect.map(
        sql<{ user_id: string }>`SELECT user_id FROM users WHERE deleted_at IS NULL
          AND (lower(email) = lower(${login}) OR lower(username) = lower(${login})) LIMIT 1`,
        (rows) => rows[0]?.user_id
      )),
    findIdentity: (provider, subject) =>
      run(Effect.map(
        sql<{ user_id: string }>`SELECT i.user_id FROM user_identities i JOIN users u ON u.user_id = i.user_id
          WHERE i.provider = ${provider} AND i.subject = ${subject} AND u.deleted_at IS NULL`,
        (rows) => rows[0]?.user_id
      )),
    findPasskeyOwner: (credentialId) =>
      run(Effect.map(
        sql<{ user_id: string }>`SELECT p.user_id FROM user_passkeys p JOIN users u ON u.user_id = p.user_id
          WHERE p.credential_id = ${credentialId} AND u.deleted_at IS NULL`,
        (rows) => rows[0]?.user_id
      )),
    inviteState: (codeHash) =>
      run(Effect.map(
        sql<{ uses: number; used: number; expires_at: Date | null }>`SELECT uses, used, expires_at FROM user_invites WHERE code_hash = ${codeHash}`,
        (rows) => {
          const invite = rows[0]
          if (!invite) return "unknown" as const
          if (invite.expires_at && new Date(invite.expires_at).getTime() <= Date.now()) return "expired" as const
          return invite.used >= invite.uses ? "used_up" as const : "ok" as const
        }
      )),
    taken: (email, username) =>
      run(Effect.map(
        sql<{ email_taken: boolean | null; username_taken: boolean | null }>`
          SELECT bool_or(lower(email) = lower(${email})) AS email_taken, bool_or(lower(username) = lower(${username})) AS username_taken
          FROM users WHERE deleted_at IS NULL AND (lower(email) = lower(${email}) OR lower(username) = lower(${username}))`,
        (rows) => (rows[0]?.email_taken ? "email" as const : rows[0]?.username_taken ? "username" as const : undefined)
      )),
    users: ({ before, limit }) =>
      run(Effect.map(
        sql<{ user_id: string; email: string; username: string; role: Role; email_verified_at: Date | null; created_at: Date }>`
          SELECT user_id, email, username, role, email_verified_at, created_at FROM users
          WHERE deleted_at IS NULL ${before !== undefined ? sql`AND created_at < ${new Date(before)}` : sql``}
          ORDER BY created_at DESC LIMIT ${limit + 1}`,
        (rows) => {
          const page = rows.slice(0, limit).map((u): UserListing => ({
            userId: u.user_id,
            email: u.email,
            username: u.username,
            role: u.role,
            emailVerified: u.email_verified_at !== null,
            createdAt: new Date(u.created_at)
          }))
          return { users: page, next: rows.length > limit ? page[page.length - 1]!.createdAt.getTime() : null }
        }
      )),
    hasAdmin: run(Effect.map(sql`SELECT 1 FROM users WHERE role = 'admin' AND deleted_at IS NULL LIMIT 1`, (rows) => rows.length > 0)),
    pendingInitialAdminInvite: run(Effect.map(
      sql<{ invite_id: string }>`SELECT invite_id FROM user_invites WHERE kind = 'initial_admin' AND used < uses`,
      (rows) => rows[0]?.invite_id
    )),
    createInvite: (invite) =>
      run(Effect.map(
        sql`INSERT INTO user_invites (invite_id, code_hash, kind, uses, expires_at, gift_credits, created_by)
            VALUES (${invite.inviteId}, ${invite.codeHash}, ${invite.kind}, ${invite.uses}, ${invite.expiresAt}, ${invite.giftCredits}, ${invite.createdBy})
            ON CONFLICT DO NOTHING RETURNING invite_id`,
        (rows) => rows.length > 0
      )),
    invites: (limit) =>
      run(Effect.map(
        sql<{ invite_id: string; kind: "standard" | "initial_admin"; uses: number; used: number; expires_at: Date | null; gift_credits: string | number; created_at: Date }>`
          SELECT invite_id, kind, uses, used, expires_at, gift_credits, created_at FROM user_invites ORDER BY created_at DESC LIMIT ${limit}`,
        (rows) =>
          rows.map((r): InviteListing => ({
            inviteId: r.invite_id,
            kind: r.kind,
            uses: r.uses,
            used: r.used,
            expiresAt: r.expires_at ? new Date(r.expires_at) : null,
            giftCredits: Number(r.gift_credits),
            createdAt: new Date(r.created_at)
          }))
      )),
    revokedSessions: (since) =>
      run(Effect.map(
        sql<{ family_id: string; revoked_at: Date }>`
          SELECT family_id, revoked_at FROM user_sessions WHERE revoked_at IS NOT NULL AND revoked_at > ${since} LIMIT 100000`,
        (rows) => rows.map((r) => ({ familyId: r.family_id, revokedAt: new Date(r.revoked_at) }))
      ))
  })
})

/** The directory on the runtime's database (the `users`, `user_invites` and `user_sessions` tables of `repo.ts`). */
export const layer: Layer.Layer<UserDirectory, never, SqlClient.SqlClient> = Layer.effect(UserDirectory, make)
