/**
 * The User entity's SQL: accounts, mates, API keys, sessions and refresh tokens, backup codes,
 * the user's chat index, and invites.
 *
 * Each user's rows are written only by that user's entity. Two tables are shared: the unique
 * email/username indexes arbitrate between users registering at once, and invites are created
 * by an admin (or at first run) and redeemed inside the registering user's transaction with an
 * atomic conditional update (`directory.ts` holds the lookups across users and creates invites).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Migration } from "../../runtime/Migrations.ts"
import type { Role } from "./protocol.ts"

export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026112140,
    name: "user",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`
        CREATE TABLE IF NOT EXISTS users (
          user_id TEXT PRIMARY KEY,
          email TEXT NOT NULL,
          username TEXT NOT NULL,
          display_name TEXT NOT NULL DEFAULT '',
          password_hash TEXT NOT NULL,
          role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
          settings JSONB NOT NULL DEFAULT '{}'::jsonb,
          email_verified_at TIMESTAMPTZ,
          email_code_hash TEXT,
          email_code_expires_at TIMESTAMPTZ,
          email_code_attempts INT NOT NULL DEFAULT 0,
          totp_secret BYTEA,
          totp_pending BYTEA,
          totp_last_step BIGINT NOT NULL DEFAULT 0,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          deleted_at TIMESTAMPTZ
        );
        CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (lower(email)) WHERE deleted_at IS NULL;
        CREATE UNIQUE INDEX IF NOT EXISTS users_username ON users (lower(username)) WHERE deleted_at IS NULL;
        CREATE INDEX IF NOT EXISTS users_admins ON users (role) WHERE role = 'admin' AND deleted_at IS NULL;
        CREATE TABLE IF NOT EXISTS user_backup_codes (
          user_id TEXT NOT NULL,
          code_hash TEXT NOT NULL,
          used_at TIMESTAMPTZ,
          PRIMARY KEY (user_id, code_hash)
        );
        CREATE TABLE IF NOT EXISTS user_mates (
          user_id TEXT NOT NULL,
          mate_id TEXT NOT NULL,
          name TEXT NOT NULL,
          system_prompt TEXT NOT NULL,
          model TEXT NOT NULL,
          allowed_skills JSONB NOT NULL DEFAULT '[]'::jsonb,
          is_default BOOLEAN NOT NULL DEFAULT FALSE,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          deleted_at TIMESTAMPTZ,
          PRIMARY KEY (user_id, mate_id)
        );
        CREATE TABLE IF NOT EXISTS user_api_keys (
          user_id TEXT NOT NULL,
          key_id TEXT NOT NULL,
          name TEXT NOT NULL,
          secret_hash TEXT NOT NULL,
          scopes JSONB NOT NULL,
          expires_at TIMESTAMPTZ,
          spend_cap BIGINT,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          revoked_at TIMESTAMPTZ,
          PRIMARY KEY (user_id, key_id)
        );
        CREATE TABLE IF NOT EXISTS user_sessions (
          user_id TEXT NOT NULL,
          family_id TEXT NOT NULL,
          user_agent TEXT NOT NULL DEFAULT '',
          ip TEXT NOT NULL DEFAULT '',
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          last_used_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          revoked_at TIMESTAMPTZ,
          revoked_reason TEXT,
          PRIMARY KEY (user_id, family_id)
        );
        CREATE TABLE IF NOT EXISTS user_refresh_tokens (
          token_hash TEXT PRIMARY KEY,
          user_id TEXT NOT NULL,
          family_id TEXT NOT NULL,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          used_at TIMESTAMPTZ
        );
        CREATE INDEX IF NOT EXISTS user_refresh_tokens_family ON user_refresh_tokens (user_id, family_id);
        CREATE TABLE IF NOT EXISTS user_chats (
          user_id TEXT NOT NULL,
          chat_id TEXT NOT NULL,
          seq BIGSERIAL,
          mate_id TEXT NOT NULL,
          title TEXT NOT NULL DEFAULT '',
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          removed_at TIMESTAMPTZ,
          PRIMARY KEY (user_id, chat_id)
        );
        CREATE INDEX IF NOT EXISTS user_chats_list ON user_chats (user_id, seq DESC) WHERE removed_at IS NULL;
        CREATE TABLE IF NOT EXISTS user_invites (
          invite_id TEXT PRIMARY KEY,
          code_hash TEXT NOT NULL UNIQUE,
          kind TEXT NOT NULL CHECK (kind IN ('standard', 'initial_admin')),
          uses INT NOT NULL CHECK (uses > 0),
          used INT NOT NULL DEFAULT 0,
          expires_at TIMESTAMPTZ,
          gift_credits BIGINT NOT NULL DEFAULT 0,
          created_by TEXT,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          CHECK (used <= uses)
        );
        CREATE UNIQUE INDEX IF NOT EXISTS user_invites_initial_admin ON user_invites (kind) WHERE kind = 'initial_admin';
        CREATE TABLE IF NOT EXISTS user_invite_redemptions (
          invite_id TEXT NOT NULL,
          user_id TEXT NOT NULL,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          PRIMARY KEY (invite_id, user_id)
        );
      `)
  },
  {
    // gateways read the recently revoked sessions when they start (durable logout)
    id: 2026120720,
    name: "user_sessions_revoked_index",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`CREATE INDEX IF NOT EXISTS user_sessions_revoked_at ON user_sessions (revoked_at) WHERE revoked_at IS NOT NULL`)
  },
  {
    // password reset links (single use, stored as digests) and the e-mail change waiting for its code
    id: 2026120790,
    name: "user_password_reset_email_change",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`
        CREATE TABLE IF NOT EXISTS user_reset_tokens (
          token_hash TEXT PRIMARY KEY,
          user_id TEXT NOT NULL,
          expires_at TIMESTAMPTZ NOT NULL,
          used_at TIMESTAMPTZ,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS user_reset_tokens_user ON user_reset_tokens (user_id);
        ALTER TABLE users ADD COLUMN IF NOT EXISTS pending_email TEXT;
        ALTER TABLE users ADD COLUMN IF NOT EXISTS pending_email_code_hash TEXT;
        ALTER TABLE users ADD COLUMN IF NOT EXISTS pending_email_expires_at TIMESTAMPTZ;
        ALTER TABLE users ADD COLUMN IF NOT EXISTS pending_email_attempts INT NOT NULL DEFAULT 0;
      `)
  },
  {
    // mates' system prompts sealed with the user's data key (the User entity seals the plaintext
    // ones of existing rows when it starts; layerPromptSealer wakes every user that has some);
    // chat titles live only in the chat, encrypted with its key: the user's index forgets its copy,
    // and the cluster's processed messages that carried titles or prompts in the clear go
    id: 2026120721,
    name: "user_plaintext_sealed",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql.unsafe(`
        ALTER TABLE user_mates ADD COLUMN IF NOT EXISTS system_prompt_sealed BYTEA;
        CREATE INDEX IF NOT EXISTS user_mates_plaintext ON user_mates (user_id) WHERE system_prompt <> '';
        UPDATE user_chats SET title = '' WHERE title <> '';
        DO $$ BEGIN
          IF to_regclass('cluster_messages') IS NOT NULL AND to_regclass('cluster_replies') IS NOT NULL THEN
            DELETE FROM cluster_replies WHERE request_id IN (SELECT request_id FROM cluster_messages
              WHERE entity_type = 'User' AND tag IN ('AddChat', 'CreateMate', 'UpdateMate') AND processed = TRUE);
            DELETE FROM cluster_messages WHERE entity_type = 'User' AND tag IN ('AddChat', 'CreateMate', 'UpdateMate') AND processed = TRUE;
          END IF;
        END $$;
      `))
  },
  {
    // passkeys (WebAuthn credentials): the credential id is unique across users (login finds its owner by it)
    id: 2026120791,
    name: "user_passkeys",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`
        CREATE TABLE IF NOT EXISTS user_passkeys (
          credential_id TEXT PRIMARY KEY,
          user_id TEXT NOT NULL,
          public_key BYTEA NOT NULL,
          counter BIGINT NOT NULL DEFAULT 0,
          transports JSONB NOT NULL DEFAULT '[]'::jsonb,
          name TEXT NOT NULL DEFAULT '',
          device_type TEXT NOT NULL,
          backed_up BOOLEAN NOT NULL DEFAULT FALSE,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          last_used_at TIMESTAMPTZ
        );
        CREATE INDEX IF NOT EXISTS user_passkeys_user ON user_passkeys (user_id);
      `)
  },
  {
    // accounts at OpenID Connect providers (single sign-on), by provider and subject
    id: 2026120792,
    name: "user_identities",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`
        CREATE TABLE IF NOT EXISTS user_identities (
          provider TEXT NOT NULL,
          subject TEXT NOT NULL,
          user_id TEXT NOT NULL,
          email TEXT NOT NULL DEFAULT '',
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          last_login_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          PRIMARY KEY (provider, subject)
        );
        CREATE INDEX IF NOT EXISTS user_identities_user ON user_identities (user_id);
      `)
  }
]

export interface PasskeyRow {
  readonly credential_id: string
  readonly public_key: Uint8Array
  readonly counter: string | number
  readonly transports: ReadonlyArray<string> | string
  readonly name: string
  readonly device_type: string
  readonly backed_up: boolean
  readonly created_at: Date
  readonly last_used_at: Date | null
}

export interface UserRow {
  readonly user_id: string
  readonly email: string
  readonly username: string
  readonly display_name: string
  readonly password_hash: string
  readonly role: Role
  readonly settings: Record<string, unknown> | string
  readonly email_verified_at: Date | null
  readonly email_code_hash: string | null
  readonly email_code_expires_at: Date | null
  readonly email_code_attempts: number
  readonly totp_secret: Uint8Array | null
  readonly totp_pending: Uint8Array | null
  readonly totp_last_step: string | number
  readonly pending_email: string | null
  readonly pending_email_code_hash: string | null
  readonly pending_email_expires_at: Date | null
  readonly pending_email_attempts: number
  readonly created_at: Date
  readonly deleted_at: Date | null
}

export interface MateRow {
  readonly mate_id: string
  readonly name: string
  /** Empty once sealed (rows written before the prompts were encrypted: until the entity seals them). */
  readonly system_prompt: string
  /** The prompt, encrypted with the user's data key (`KeyRing`), bound to the mate. */
  readonly system_prompt_sealed: Uint8Array | null
  readonly model: string
  readonly allowed_skills: ReadonlyArray<string> | string
  readonly is_default: boolean
  readonly created_at: Date
  readonly updated_at: Date
}

export interface ApiKeyRow {
  readonly key_id: string
  readonly name: string
  readonly secret_hash: string
  readonly scopes: ReadonlyArray<string> | string
  readonly expires_at: Date | null
  readonly spend_cap: string | number | null
  readonly created_at: Date
  readonly revoked_at: Date | null
}

export interface InviteRow {
  readonly invite_id: string
  readonly kind: "standard" | "initial_admin"
  readonly uses: number
  readonly used: number
  readonly expires_at: Date | null
  readonly gift_credits: string | number
}

/** JSON columns come back parsed from pg and PGlite; be lenient if a driver returns text. */
export const json = <A>(value: A | string): A => (typeof value === "string" ? JSON.parse(value) as A : value)

/** Bytes from either driver. */
export const bytes = (value: Uint8Array): Uint8Array => (value instanceof Uint8Array ? new Uint8Array(value) : new Uint8Array(value as ArrayLike<number>))

/** The repository of one user. */
export const make = (userId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const user: Effect.Effect<UserRow | undefined, SqlError> = Effect.map(
      sql<UserRow>`SELECT * FROM users WHERE user_id = ${userId}`,
      (rows) => rows[0]
    )

    const insertUser = (u: { email: string; username: string; passwordHash: string; role: Role; emailCodeHash: string; emailCodeExpiresAt: Date }) =>
      sql`INSERT INTO users (user_id, email, username, display_name, password_hash, role, email_code_hash, email_code_expires_at)
          VALUES (${userId}, ${u.email}, ${u.username}, ${u.username}, ${u.passwordHash}, ${u.role}, ${u.emailCodeHash}, ${u.emailCodeExpiresAt})`

    /** Which of email/username another live account already has. */
    const taken = (email: string, username: string) =>
      Effect.map(
        sql<{ email_taken: boolean; username_taken: boolean }>`
          SELECT bool_or(lower(email) = lower(${email})) AS email_taken, bool_or(lower(username) = lower(${username})) AS username_taken
          FROM users WHERE deleted_at IS NULL AND user_id <> ${userId}
            AND (lower(email) = lower(${email}) OR lower(username) = lower(${username}))`,
        (rows) => (rows[0]?.email_taken ? "email" as const : rows[0]?.username_taken ? "username" as const : undefined)
      )

    const inviteByHash = (codeHash: string) =>
      Effect.map(sql<InviteRow>`SELECT invite_id, kind, uses, used, expires_at, gift_credits FROM user_invites WHERE code_hash = ${codeHash} FOR UPDATE`, (rows) => rows[0])

    /** Redeem an invite for this user (idempotent); false when it is used up. */
    const redeem = (inviteId: string) =>
      Effect.gen(function*() {
        const already = yield* sql`SELECT 1 FROM user_invite_redemptions WHERE invite_id = ${inviteId} AND user_id = ${userId}`
        if (already.length > 0) return true
        const updated = yield* sql`UPDATE user_invites SET used = used + 1 WHERE invite_id = ${inviteId} AND used < uses RETURNING invite_id`
        if (updated.length === 0) return false
        yield* sql`INSERT INTO user_invite_redemptions (invite_id, user_id) VALUES (${inviteId}, ${userId})`
        return true
      })

    const redemption = Effect.map(
      sql<{ invite_id: string; kind: "standard" | "initial_admin"; gift_credits: string | number }>`
        SELECT i.invite_id, i.kind, i.gift_credits FROM user_invite_redemptions r JOIN user_invites i ON i.invite_id = r.invite_id
        WHERE r.user_id = ${userId} LIMIT 1`,
      (rows) => rows[0]
    )

    const mates: Effect.Effect<ReadonlyArray<MateRow>, SqlError> = sql<MateRow>`
      SELECT mate_id, name, system_prompt, system_prompt_sealed, model, allowed_skills, is_default, created_at, updated_at
      FROM user_mates WHERE user_id = ${userId} AND deleted_at IS NULL ORDER BY is_default DESC, created_at`

    const upsertMate = (m: { mateId: string; name: string; sealedPrompt: Uint8Array; model: string; allowedSkills: ReadonlyArray<string>; isDefault: boolean }) =>
      sql`INSERT INTO user_mates (user_id, mate_id, name, system_prompt, system_prompt_sealed, model, allowed_skills, is_default)
          VALUES (${userId}, ${m.mateId}, ${m.name}, '', ${m.sealedPrompt}, ${m.model}, ${JSON.stringify(m.allowedSkills)}::jsonb, ${m.isDefault})
          ON CONFLICT (user_id, mate_id) DO UPDATE SET name = EXCLUDED.name, system_prompt = '', system_prompt_sealed = EXCLUDED.system_prompt_sealed,
            model = EXCLUDED.model, allowed_skills = EXCLUDED.allowed_skills, updated_at = now()
          WHERE user_mates.deleted_at IS NULL`

    /** Prompts still in the clear (rows from before they were sealed), deleted mates' included. */
    const plaintextPrompts = sql<{ mate_id: string; system_prompt: string }>`
      SELECT mate_id, system_prompt FROM user_mates WHERE user_id = ${userId} AND system_prompt <> ''`

    const sealPrompt = (mateId: string, plaintext: string, sealed: Uint8Array) =>
      sql`UPDATE user_mates SET system_prompt = '', system_prompt_sealed = ${sealed}
          WHERE user_id = ${userId} AND mate_id = ${mateId} AND system_prompt = ${plaintext}`

    const deleteMate = (mateId: string) =>
      sql`UPDATE user_mates SET deleted_at = now() WHERE user_id = ${userId} AND mate_id = ${mateId} AND deleted_at IS NULL`

    const apiKeys = sql<ApiKeyRow>`
      SELECT key_id, name, secret_hash, scopes, expires_at, spend_cap, created_at, revoked_at
      FROM user_api_keys WHERE user_id = ${userId} ORDER BY created_at`

    const insertApiKey = (k: { keyId: string; name: string; secretHash: string; scopes: ReadonlyArray<string>; expiresAt: Date | null; spendCap: number | null }) =>
      sql`INSERT INTO user_api_keys (user_id, key_id, name, secret_hash, scopes, expires_at, spend_cap)
          VALUES (${userId}, ${k.keyId}, ${k.name}, ${k.secretHash}, ${JSON.stringify(k.scopes)}::jsonb, ${k.expiresAt}, ${k.spendCap})
          ON CONFLICT (user_id, key_id) DO NOTHING`

    const revokeApiKey = (keyId: string) =>
      sql`UPDATE user_api_keys SET revoked_at = now() WHERE user_id = ${userId} AND key_id = ${keyId} AND revoked_at IS NULL`

    const insertSession = (s: { familyId: string; tokenHash: string; userAgent: string; ip: string }) =>
      Effect.zipRight(
        sql`INSERT INTO user_sessions (user_id, family_id, user_agent, ip) VALUES (${userId}, ${s.familyId}, ${s.userAgent}, ${s.ip})
            ON CONFLICT (user_id, family_id) DO NOTHING`,
        sql`INSERT INTO user_refresh_tokens (token_hash, user_id, family_id) VALUES (${s.tokenHash}, ${userId}, ${s.familyId})
            ON CONFLICT (token_hash) DO NOTHING`
      )

    const session = (familyId: string) =>
      Effect.map(
        sql<{ family_id: string; revoked_at: Date | null; created_at: Date }>`
          SELECT family_id, revoked_at, created_at FROM user_sessions WHERE user_id = ${userId} AND family_id = ${familyId}`,
        (rows) => rows[0]
      )

    const refreshToken = (tokenHash: string) =>
      Effect.map(
        sql<{ family_id: string; used_at: Date | null }>`
          SELECT family_id, used_at FROM user_refresh_tokens WHERE token_hash = ${tokenHash} AND user_id = ${userId}`,
        (rows) => rows[0]
      )

    const rotate = (familyId: string, tokenHash: string, nextTokenHash: string) =>
      sql.withTransaction(
        Effect.gen(function*() {
          const used = yield* sql`UPDATE user_refresh_tokens SET used_at = now() WHERE token_hash = ${tokenHash} AND used_at IS NULL RETURNING token_hash`
          if (used.length === 0) return false
          yield* sql`INSERT INTO user_refresh_tokens (token_hash, user_id, family_id) VALUES (${nextTokenHash}, ${userId}, ${familyId})`
          yield* sql`UPDATE user_sessions SET last_used_at = now() WHERE user_id = ${userId} AND family_id = ${familyId}`
          return true
        })
      )

    const revokeSession = (familyId: string, reason: string) =>
      sql`UPDATE user_sessions SET revoked_at = now(), revoked_reason = ${reason}
          WHERE user_id = ${userId} AND family_id = ${familyId} AND revoked_at IS NULL`

    const revokeAllSessions = (reason: string) =>
      Effect.map(
        sql<{ family_id: string }>`UPDATE user_sessions SET revoked_at = now(), revoked_reason = ${reason}
            WHERE user_id = ${userId} AND revoked_at IS NULL RETURNING family_id`,
        (rows) => rows.map((r) => r.family_id)
      )

    const sessions = sql<{ family_id: string; created_at: Date; last_used_at: Date; user_agent: string; ip: string }>`
      SELECT family_id, created_at, last_used_at, user_agent, ip FROM user_sessions
      WHERE user_id = ${userId} AND revoked_at IS NULL ORDER BY last_used_at DESC LIMIT 100`

    const chats = (before: number | undefined, limit: number) =>
      sql<{ chat_id: string; mate_id: string; title: string; created_at: Date; seq: string | number }>`
        SELECT chat_id, mate_id, title, created_at, seq FROM user_chats
        WHERE user_id = ${userId} AND removed_at IS NULL ${before === undefined ? sql`` : sql`AND seq < ${before}`}
        ORDER BY seq DESC LIMIT ${limit + 1}`

    const allChatIds = Effect.map(
      sql<{ chat_id: string }>`SELECT chat_id FROM user_chats WHERE user_id = ${userId} AND removed_at IS NULL`,
      (rows) => rows.map((r) => r.chat_id)
    )

    const hasChat = (chatId: string) =>
      Effect.map(sql`SELECT 1 FROM user_chats WHERE user_id = ${userId} AND chat_id = ${chatId} AND removed_at IS NULL`, (rows) => rows.length > 0)

    /** Index a chat (its title stays in the chat, encrypted). */
    const addChat = (c: { chatId: string; mateId: string }) =>
      sql`INSERT INTO user_chats (user_id, chat_id, mate_id) VALUES (${userId}, ${c.chatId}, ${c.mateId})
          ON CONFLICT (user_id, chat_id) DO NOTHING`

    const removeChat = (chatId: string) =>
      sql`UPDATE user_chats SET removed_at = now() WHERE user_id = ${userId} AND chat_id = ${chatId} AND removed_at IS NULL`

    const backupCodes = Effect.map(
      sql<{ code_hash: string }>`SELECT code_hash FROM user_backup_codes WHERE user_id = ${userId} AND used_at IS NULL`,
      (rows) => rows.map((r) => r.code_hash)
    )

    const useBackupCode = (codeHash: string) =>
      Effect.map(
        sql`UPDATE user_backup_codes SET used_at = now() WHERE user_id = ${userId} AND code_hash = ${codeHash} AND used_at IS NULL RETURNING code_hash`,
        (rows) => rows.length > 0
      )

    const replaceBackupCodes = (hashes: ReadonlyArray<string>) =>
      Effect.zipRight(
        sql`DELETE FROM user_backup_codes WHERE user_id = ${userId}`,
        Effect.forEach(hashes, (h) => sql`INSERT INTO user_backup_codes (user_id, code_hash) VALUES (${userId}, ${h})`, { discard: true })
      )

    /** Store a password reset link's digest. */
    const insertResetToken = (tokenHash: string, expiresAt: Date) =>
      sql`INSERT INTO user_reset_tokens (token_hash, user_id, expires_at) VALUES (${tokenHash}, ${userId}, ${expiresAt})
          ON CONFLICT (token_hash) DO NOTHING`

    const resetToken = (tokenHash: string) =>
      Effect.map(
        sql<{ expires_at: Date; used_at: Date | null }>`SELECT expires_at, used_at FROM user_reset_tokens WHERE token_hash = ${tokenHash} AND user_id = ${userId}`,
        (rows) => rows[0]
      )

    /** Spend a reset link (false if it was spent already); every other open link of the user is spent with it. */
    const useResetToken = (tokenHash: string) =>
      Effect.gen(function*() {
        const used = yield* sql`UPDATE user_reset_tokens SET used_at = now() WHERE token_hash = ${tokenHash} AND user_id = ${userId} AND used_at IS NULL RETURNING token_hash`
        if (used.length === 0) return false
        yield* sql`UPDATE user_reset_tokens SET used_at = now() WHERE user_id = ${userId} AND used_at IS NULL`
        return true
      })

    const passkeys = sql<PasskeyRow>`SELECT * FROM user_passkeys WHERE user_id = ${userId} ORDER BY created_at`

    /** Store a passkey; false when the credential is registered already (to anyone). */
    const insertPasskey = (p: { credentialId: string; publicKey: Uint8Array; counter: number; transports: ReadonlyArray<string>; name: string; deviceType: string; backedUp: boolean }) =>
      Effect.map(
        sql`INSERT INTO user_passkeys (credential_id, user_id, public_key, counter, transports, name, device_type, backed_up)
            VALUES (${p.credentialId}, ${userId}, ${p.publicKey}, ${p.counter}, ${JSON.stringify(p.transports)}::jsonb, ${p.name}, ${p.deviceType}, ${p.backedUp})
            ON CONFLICT (credential_id) DO NOTHING RETURNING credential_id`,
        (rows) => rows.length > 0
      )

    /** Move a passkey's counter forward (only forward: a concurrent older value never wins). */
    const usePasskey = (credentialId: string, counter: number) =>
      sql`UPDATE user_passkeys SET counter = GREATEST(counter, ${counter}), last_used_at = now() WHERE user_id = ${userId} AND credential_id = ${credentialId}`

    const deletePasskey = (credentialId: string) =>
      Effect.map(sql`DELETE FROM user_passkeys WHERE user_id = ${userId} AND credential_id = ${credentialId} RETURNING credential_id`, (rows) => rows.length > 0)

    /** Link an identity at a provider to this user (or note its login); false when it belongs to another user. */
    const linkIdentity = (provider: string, subject: string, email: string) =>
      Effect.map(
        sql<{ user_id: string }>`INSERT INTO user_identities (provider, subject, user_id, email) VALUES (${provider}, ${subject}, ${userId}, ${email})
            ON CONFLICT (provider, subject) DO UPDATE SET last_login_at = now(), email = EXCLUDED.email
            WHERE user_identities.user_id = ${userId} RETURNING user_id`,
        (rows) => rows.length > 0
      )

    const update = (fields: Record<string, unknown>) => sql`UPDATE users SET ${sql.update(fields)} WHERE user_id = ${userId}`

    /** The email address is verified: the code is spent. */
    const markEmailVerified = sql`UPDATE users SET email_verified_at = now(), email_code_hash = NULL, email_code_expires_at = NULL WHERE user_id = ${userId}`

    /** Wipe personal data of a deleted account (the row stays, so the id is never reused). */
    const wipe = sql.withTransaction(
      Effect.gen(function*() {
        yield* sql`UPDATE users SET deleted_at = COALESCE(deleted_at, now()), email = ${`deleted-${userId}`}, username = ${`deleted-${userId}`},
                   display_name = '', password_hash = '', settings = '{}'::jsonb, email_code_hash = NULL,
                   totp_secret = NULL, totp_pending = NULL WHERE user_id = ${userId}`
        yield* sql`UPDATE user_api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE user_id = ${userId}`
        yield* sql`DELETE FROM user_backup_codes WHERE user_id = ${userId}`
        yield* sql`DELETE FROM user_refresh_tokens WHERE user_id = ${userId}`
        yield* sql`DELETE FROM user_reset_tokens WHERE user_id = ${userId}`
        yield* sql`DELETE FROM user_passkeys WHERE user_id = ${userId}`
        yield* sql`DELETE FROM user_identities WHERE user_id = ${userId}`
        yield* sql`UPDATE users SET pending_email = NULL, pending_email_code_hash = NULL WHERE user_id = ${userId}`
        yield* sql`UPDATE user_mates SET deleted_at = COALESCE(deleted_at, now()), system_prompt = '', system_prompt_sealed = NULL WHERE user_id = ${userId}`
      })
    )

    return {
      sql, user, insertUser, taken, inviteByHash, redeem, redemption, mates, upsertMate, plaintextPrompts, sealPrompt, deleteMate, apiKeys, insertApiKey,
      revokeApiKey, insertSession, session, refreshToken, rotate, revokeSession, revokeAllSessions, sessions, chats, allChatIds,
      hasChat, addChat, removeChat, backupCodes, useBackupCode, replaceBackupCodes, update, markEmailVerified, wipe,
      insertResetToken, resetToken, useResetToken, passkeys, insertPasskey, usePasskey, deletePasskey, linkIdentity
    }
  })
