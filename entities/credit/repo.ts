/**
 * The Credit entity's SQL: account balances (materialised), holds, and the double-entry ledger.
 * Every transaction writes balanced legs (they sum to zero across accounts); the ledger's
 * `(txn_key, account_id, bucket)` is unique, so a replayed transaction cannot be written twice.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Migration } from "../../runtime/Migrations.ts"
import type { HoldStatus } from "./protocol.ts"

/** The system account that issues granted credits and receives charges. */
export const systemAccount = "system"

export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026112110,
    name: "credit",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`
        CREATE TABLE IF NOT EXISTS credit_accounts (
          account_id TEXT PRIMARY KEY,
          available BIGINT NOT NULL DEFAULT 0,
          reserved BIGINT NOT NULL DEFAULT 0,
          overdraft_limit BIGINT NOT NULL DEFAULT 0,
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          CHECK (reserved >= 0),
          CHECK (available >= -overdraft_limit)
        );
        CREATE TABLE IF NOT EXISTS credit_holds (
          account_id TEXT NOT NULL,
          hold_key TEXT NOT NULL,
          amount BIGINT NOT NULL CHECK (amount > 0),
          charged BIGINT NOT NULL DEFAULT 0,
          status TEXT NOT NULL CHECK (status IN ('held', 'settled', 'released', 'expired')),
          scope_id TEXT,
          expires_at TIMESTAMPTZ NOT NULL,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          closed_at TIMESTAMPTZ,
          PRIMARY KEY (account_id, hold_key)
        );
        CREATE INDEX IF NOT EXISTS credit_holds_open ON credit_holds (expires_at) WHERE status = 'held';
        CREATE INDEX IF NOT EXISTS credit_holds_scope ON credit_holds (account_id, scope_id) WHERE scope_id IS NOT NULL;
        CREATE TABLE IF NOT EXISTS credit_ledger (
          id BIGSERIAL PRIMARY KEY,
          txn_key TEXT NOT NULL,
          account_id TEXT NOT NULL,
          bucket TEXT NOT NULL CHECK (bucket IN ('available', 'reserved', 'issued', 'revenue')),
          kind TEXT NOT NULL,
          amount BIGINT NOT NULL,
          reason TEXT,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          UNIQUE (txn_key, account_id, bucket)
        );
        CREATE INDEX IF NOT EXISTS credit_ledger_account ON credit_ledger (account_id, id DESC);
      `)
  },
  {
    // reversals (a refunded purchase) may take `available` below the overdraft floor; holds
    // still never do (the reserve statement checks the floor itself)
    id: 2026120751,
    name: "credit_reversals",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`ALTER TABLE credit_accounts DROP CONSTRAINT IF EXISTS credit_accounts_check`)
  },
  {
    // what a hold pays for, on the hold and on each of its ledger rows: a reason, the skill, the
    // API key. Rows written before say what their key does (skill calls name the skill and the key).
    id: 2026120730,
    name: "credit_purpose",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`
        ALTER TABLE credit_holds ADD COLUMN IF NOT EXISTS reason TEXT, ADD COLUMN IF NOT EXISTS skill TEXT, ADD COLUMN IF NOT EXISTS api_key_id TEXT;
        ALTER TABLE credit_ledger ADD COLUMN IF NOT EXISTS skill TEXT, ADD COLUMN IF NOT EXISTS api_key_id TEXT;
        UPDATE credit_ledger SET
          skill = substring(txn_key from '^[a-z]+:[^:]+:skill:([^:]+):'),
          api_key_id = NULLIF(substring(txn_key from '^[a-z]+:[^:]+:skill:[^:]+:([^:]+):'), 'session'),
          reason = 'skill ' || substring(txn_key from '^[a-z]+:[^:]+:skill:([^:]+):')
        WHERE reason IS NULL AND txn_key ~ '^[a-z]+:[^:]+:skill:[^:]+:[^:]+:';
        UPDATE credit_ledger SET reason = 'turn in chat ' || substring(txn_key from '^[a-z]+:[^:]+:chat:([^:]+):[^:]+$')
        WHERE reason IS NULL AND txn_key ~ '^[a-z]+:[^:]+:chat:[^:]+:[^:]+$';
        UPDATE credit_ledger SET reason = 'skill in chat ' || substring(txn_key from '^[a-z]+:[^:]+:chat:([^:]+):')
        WHERE reason IS NULL AND txn_key ~ '^[a-z]+:[^:]+:chat:[^:]+:[^:]+:[^:]+$';
        UPDATE credit_ledger SET reason = 'completion' WHERE reason IS NULL AND txn_key ~ '^[a-z]+:[^:]+:completion:';
      `)
  }
]

export interface AccountRow {
  readonly available: number
  readonly reserved: number
  readonly overdraftLimit: number
}

/** What a hold pays for, as its ledger rows say it. */
export interface PurposeRow {
  readonly reason: string | null
  readonly skill: string | null
  readonly apiKeyId: string | null
}

export interface HoldRow {
  readonly key: string
  readonly amount: number
  readonly charged: number
  readonly status: HoldStatus
  readonly scopeId: string | null
  readonly expiresAt: Date
}

export interface Leg {
  readonly account: string
  readonly bucket: "available" | "reserved" | "issued" | "revenue"
  readonly amount: number
}

/** The repository for one account. */
export const make = (accountId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const account: Effect.Effect<AccountRow, SqlError> = Effect.map(
      sql<{ available: string; reserved: string; overdraft_limit: string }>`
        SELECT available, reserved, overdraft_limit FROM credit_accounts WHERE account_id = ${accountId}`,
      (rows) =>
        rows[0]
          ? { available: Number(rows[0].available), reserved: Number(rows[0].reserved), overdraftLimit: Number(rows[0].overdraft_limit) }
          : { available: 0, reserved: 0, overdraftLimit: 0 }
    )

    /** Create the account row if missing (once per entity start, not per command). */
    const ensureAccount = (defaultOverdraft: number) =>
      sql`INSERT INTO credit_accounts (account_id, overdraft_limit) VALUES (${accountId}, ${defaultOverdraft})
          ON CONFLICT (account_id) DO NOTHING`

    const setOverdraft = (limit: number): Effect.Effect<AccountRow, SqlError> =>
      Effect.map(
        sql<{ available: string; reserved: string; overdraft_limit: string }>`
          UPDATE credit_accounts SET overdraft_limit = ${limit}, updated_at = now() WHERE account_id = ${accountId}
          RETURNING available, reserved, overdraft_limit`,
        (rows) => ({ available: Number(rows[0]!.available), reserved: Number(rows[0]!.reserved), overdraftLimit: Number(rows[0]!.overdraft_limit) })
      )

    const toHold = (r: { hold_key: string; amount: string; charged: string; status: HoldStatus; scope_id: string | null; expires_at: Date }): HoldRow => ({
      key: r.hold_key,
      amount: Number(r.amount),
      charged: Number(r.charged),
      status: r.status,
      scopeId: r.scope_id,
      expiresAt: new Date(r.expires_at)
    })

    const hold = (key: string): Effect.Effect<HoldRow | undefined, SqlError> =>
      Effect.map(
        sql<{ hold_key: string; amount: string; charged: string; status: HoldStatus; scope_id: string | null; expires_at: Date }>`
          SELECT hold_key, amount, charged, status, scope_id, expires_at FROM credit_holds
          WHERE account_id = ${accountId} AND hold_key = ${key}`,
        (rows) => (rows[0] ? toHold(rows[0]) : undefined)
      )

    const account3 = (r: { available: string; reserved: string; overdraft_limit: string }): AccountRow => ({
      available: Number(r.available),
      reserved: Number(r.reserved),
      overdraftLimit: Number(r.overdraft_limit)
    })

    /**
     * Reserve in one statement: the balance moves (never below the overdraft floor), the hold
     * and the two ledger legs are written — all or nothing. `undefined` when nothing was written
     * because the hold already exists or credits are short (the caller looks which).
     */
    const reserve = (
      h: { key: string; amount: number; scopeId: string | null; expiresAt: Date; txnKey: string; purpose: PurposeRow }
    ): Effect.Effect<AccountRow | undefined, SqlError> =>
      Effect.map(
        sql<{ available: string; reserved: string; overdraft_limit: string }>`
          WITH acct AS (
            UPDATE credit_accounts SET available = available - ${h.amount}::bigint, reserved = reserved + ${h.amount}::bigint, updated_at = now()
            WHERE account_id = ${accountId} AND available - ${h.amount}::bigint >= -overdraft_limit
              AND NOT EXISTS (SELECT 1 FROM credit_holds WHERE account_id = ${accountId} AND hold_key = ${h.key})
            RETURNING available, reserved, overdraft_limit),
          hold AS (
            INSERT INTO credit_holds (account_id, hold_key, amount, status, scope_id, expires_at, reason, skill, api_key_id)
            SELECT ${accountId}, ${h.key}, ${h.amount}::bigint, 'held', ${h.scopeId}::text, ${h.expiresAt}::timestamptz,
              ${h.purpose.reason}::text, ${h.purpose.skill}::text, ${h.purpose.apiKeyId}::text FROM acct),
          legs AS (
            INSERT INTO credit_ledger (txn_key, account_id, bucket, kind, amount, reason, skill, api_key_id)
            SELECT ${h.txnKey}, ${accountId}, v.bucket, 'reserve', v.amount, ${h.purpose.reason}::text, ${h.purpose.skill}::text, ${h.purpose.apiKeyId}::text FROM acct,
              (VALUES ('available'::text, ${-h.amount}::bigint), ('reserved'::text, ${h.amount}::bigint)) AS v(bucket, amount))
          SELECT available, reserved, overdraft_limit FROM acct`,
        (rows) => (rows[0] ? account3(rows[0]) : undefined)
      )

    /**
     * Close a held hold in one statement: settle (charge at most the hold, return the rest) or
     * release/expire (return all), with its ledger legs. `undefined` when the hold was not held.
     */
    const close = (h: { key: string; status: "settled" | "released" | "expired"; actual: number; txnKey: string; kind: string }): Effect.Effect<
      { readonly amount: number; readonly charged: number; readonly expiresAt: Date; readonly account: AccountRow } | undefined,
      SqlError
    > =>
      Effect.map(
        sql<{ amount: string; charged: string; expires_at: Date; available: string; reserved: string; overdraft_limit: string }>`
          WITH hold AS (
            UPDATE credit_holds SET status = ${h.status}, charged = LEAST(${h.actual}::bigint, amount), closed_at = now()
            WHERE account_id = ${accountId} AND hold_key = ${h.key} AND status = 'held'
            RETURNING amount, charged, expires_at, reason, skill, api_key_id),
          acct AS (
            UPDATE credit_accounts SET reserved = reserved - hold.amount, available = available + (hold.amount - hold.charged), updated_at = now()
            FROM hold WHERE account_id = ${accountId}
            RETURNING available, reserved, overdraft_limit),
          legs AS (
            INSERT INTO credit_ledger (txn_key, account_id, bucket, kind, amount, reason, skill, api_key_id)
            SELECT ${h.txnKey}, v.account_id, v.bucket, ${h.kind}, v.amount, hold.reason, hold.skill, hold.api_key_id FROM hold,
              LATERAL (VALUES (${accountId}::text, 'reserved'::text, -hold.amount),
                              (${systemAccount}::text, 'revenue'::text, hold.charged),
                              (${accountId}::text, 'available'::text, hold.amount - hold.charged)) AS v(account_id, bucket, amount)
            WHERE v.amount <> 0)
          SELECT hold.amount, hold.charged, hold.expires_at, acct.available, acct.reserved, acct.overdraft_limit FROM hold, acct`,
        (rows) => rows[0] && { amount: Number(rows[0].amount), charged: Number(rows[0].charged), expiresAt: new Date(rows[0].expires_at), account: account3(rows[0]) }
      )

    /** Grant in one statement; `undefined` when this grant was already written (same key). */
    const grant = (g: { amount: number; txnKey: string; reason: string }): Effect.Effect<AccountRow | undefined, SqlError> =>
      Effect.map(
        sql<{ available: string; reserved: string; overdraft_limit: string }>`
          WITH legs AS (
            INSERT INTO credit_ledger (txn_key, account_id, bucket, kind, amount, reason)
            VALUES (${g.txnKey}, ${systemAccount}, 'issued', 'grant', ${-g.amount}::bigint, ${g.reason}),
                   (${g.txnKey}, ${accountId}, 'available', 'grant', ${g.amount}::bigint, ${g.reason})
            ON CONFLICT (txn_key, account_id, bucket) DO NOTHING RETURNING account_id),
          acct AS (
            UPDATE credit_accounts SET available = available + ${g.amount}::bigint, updated_at = now()
            WHERE account_id = ${accountId} AND EXISTS (SELECT 1 FROM legs WHERE legs.account_id = ${accountId})
            RETURNING available, reserved, overdraft_limit)
          SELECT available, reserved, overdraft_limit FROM acct`,
        (rows) => (rows[0] ? account3(rows[0]) : undefined)
      )

    /** Reverse a grant in one statement (may go below zero); `undefined` when already written (same key). */
    const reverse = (r: { amount: number; txnKey: string; reason: string }): Effect.Effect<AccountRow | undefined, SqlError> =>
      Effect.map(
        sql<{ available: string; reserved: string; overdraft_limit: string }>`
          WITH legs AS (
            INSERT INTO credit_ledger (txn_key, account_id, bucket, kind, amount, reason)
            VALUES (${r.txnKey}, ${systemAccount}, 'issued', 'reverse', ${r.amount}::bigint, ${r.reason}),
                   (${r.txnKey}, ${accountId}, 'available', 'reverse', ${-r.amount}::bigint, ${r.reason})
            ON CONFLICT (txn_key, account_id, bucket) DO NOTHING RETURNING account_id),
          acct AS (
            UPDATE credit_accounts SET available = available - ${r.amount}::bigint, updated_at = now()
            WHERE account_id = ${accountId} AND EXISTS (SELECT 1 FROM legs WHERE legs.account_id = ${accountId})
            RETURNING available, reserved, overdraft_limit)
          SELECT available, reserved, overdraft_limit FROM acct`,
        (rows) => (rows[0] ? account3(rows[0]) : undefined)
      )

    /** The earliest expiry of an open hold (to know when expiry must be checked at all). */
    const nextExpiry: Effect.Effect<number | undefined, SqlError> = Effect.map(
      sql<{ next: Date | null }>`SELECT min(expires_at) AS next FROM credit_holds WHERE account_id = ${accountId} AND status = 'held'`,
      (rows) => (rows[0]?.next ? new Date(rows[0].next).getTime() : undefined)
    )

    const dueHolds = (now: Date): Effect.Effect<ReadonlyArray<HoldRow>, SqlError> =>
      Effect.map(
        sql<{ hold_key: string; amount: string; charged: string; status: HoldStatus; scope_id: string | null; expires_at: Date }>`
          SELECT hold_key, amount, charged, status, scope_id, expires_at FROM credit_holds
          WHERE account_id = ${accountId} AND status = 'held' AND expires_at <= ${now}
          ORDER BY expires_at FOR UPDATE`,
        (rows) => rows.map(toHold)
      )

    /** Credits a scope has used: charges plus open holds. */
    const scopeUsage = (scopeId: string): Effect.Effect<number, SqlError> =>
      Effect.map(
        sql<{ used: string | null }>`
          SELECT COALESCE(SUM(CASE status WHEN 'held' THEN amount WHEN 'settled' THEN charged ELSE 0 END), 0) AS used
          FROM credit_holds WHERE account_id = ${accountId} AND scope_id = ${scopeId}`,
        (rows) => Number(rows[0]?.used ?? 0)
      )

    const ledger = (options: { readonly before: number | undefined; readonly limit: number }) =>
      sql<{
        id: string
        txn_key: string
        kind: string
        bucket: "available" | "reserved"
        amount: string
        reason: string | null
        skill: string | null
        api_key_id: string | null
        created_at: Date
      }>`
        SELECT id, txn_key, kind, bucket, amount, reason, skill, api_key_id, created_at FROM credit_ledger
        WHERE account_id = ${accountId} ${options.before === undefined ? sql`` : sql`AND id < ${options.before}`}
        ORDER BY id DESC LIMIT ${options.limit + 1}`

    return { account, ensureAccount, setOverdraft, hold, reserve, close, grant, reverse, nextExpiry, dueHolds, scopeUsage, ledger, sql }
  })

/** Accounts with holds whose time is up (for the expiry sweeper). */
/** Holds open across every account, and the credits they reserve (the dashboard's "credit holds open"). */
export const openHolds = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ n: string; amount: string }>`SELECT count(*) AS n, COALESCE(SUM(amount), 0) AS amount FROM credit_holds WHERE status = 'held'`,
    (rows) => ({ holds: Number(rows[0]?.n ?? 0), credits: Number(rows[0]?.amount ?? 0) })
  ))

export const accountsWithDueHolds = (now: Date, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ account_id: string }>`
        SELECT DISTINCT account_id FROM credit_holds WHERE status = 'held' AND expires_at <= ${now} LIMIT ${limit}`,
      (rows) => rows.map((r) => r.account_id)
    ))
