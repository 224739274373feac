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
  }
]

export interface AccountRow {
  readonly available: number
  readonly reserved: number
  readonly overdraftLimit: number
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

    /** Lock the account row for this transaction (creating it), and read it. */
    const lockAccount = (defaultOverdraft: number): Effect.Effect<AccountRow, SqlError> =>
      Effect.zipRight(
        sql`INSERT INTO credit_accounts (account_id, overdraft_limit) VALUES (${accountId}, ${defaultOverdraft})
            ON CONFLICT (account_id) DO NOTHING`,
        Effect.map(
          sql<{ available: string; reserved: string; overdraft_limit: string }>`
            SELECT available, reserved, overdraft_limit FROM credit_accounts WHERE account_id = ${accountId} FOR UPDATE`,
          (rows) => ({ available: Number(rows[0]!.available), reserved: Number(rows[0]!.reserved), overdraftLimit: Number(rows[0]!.overdraft_limit) })
        )
      )

    const saveAccount = (row: AccountRow) =>
      sql`UPDATE credit_accounts SET available = ${row.available}, reserved = ${row.reserved},
            overdraft_limit = ${row.overdraftLimit}, updated_at = now()
          WHERE account_id = ${accountId}`

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

    const insertHold = (h: { key: string; amount: number; scopeId: string | null; expiresAt: Date }) =>
      sql`INSERT INTO credit_holds (account_id, hold_key, amount, status, scope_id, expires_at)
          VALUES (${accountId}, ${h.key}, ${h.amount}, 'held', ${h.scopeId}, ${h.expiresAt})`

    const closeHold = (key: string, status: HoldStatus, charged: number) =>
      sql`UPDATE credit_holds SET status = ${status}, charged = ${charged}, closed_at = now()
          WHERE account_id = ${accountId} AND hold_key = ${key}`

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

    /** Whether a transaction with this key was already written for this account. */
    const hasTransaction = (txnKey: string): Effect.Effect<boolean, SqlError> =>
      Effect.map(
        sql<{ n: string }>`SELECT count(*) AS n FROM credit_ledger WHERE txn_key = ${txnKey} AND account_id = ${accountId}`,
        (rows) => Number(rows[0]!.n) > 0
      )

    /** Write a balanced transaction; zero legs are left out. */
    const post = (txnKey: string, kind: string, legs: ReadonlyArray<Leg>, reason: string | null = null) => {
      const sum = legs.reduce((n, l) => n + l.amount, 0)
      if (sum !== 0) return Effect.dieMessage(`unbalanced credit transaction ${txnKey}: legs sum to ${sum}`)
      const rows = legs.filter((l) => l.amount !== 0).map((l) => ({
        txn_key: txnKey,
        account_id: l.account,
        bucket: l.bucket,
        kind,
        amount: l.amount,
        reason
      }))
      return rows.length === 0 ? Effect.void : Effect.asVoid(sql`INSERT INTO credit_ledger ${sql.insert(rows)}`)
    }

    const ledger = (options: { readonly before: number | undefined; readonly limit: number }) =>
      sql<{ id: string; txn_key: string; kind: string; bucket: "available" | "reserved"; amount: string; reason: string | null; created_at: Date }>`
        SELECT id, txn_key, kind, bucket, amount, reason, created_at FROM credit_ledger
        WHERE account_id = ${accountId} ${options.before === undefined ? sql`` : sql`AND id < ${options.before}`}
        ORDER BY id DESC LIMIT ${options.limit + 1}`

    return { account, lockAccount, saveAccount, hold, insertHold, closeHold, dueHolds, scopeUsage, hasTransaction, post, ledger, sql }
  })

/** Accounts with holds whose time is up (for the expiry sweeper). */
export const accountsWithDueHolds = (now: Date, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ account_id: string }>`
        SELECT DISTINCT account_id FROM credit_holds WHERE status = 'held' AND expires_at <= ${now} LIMIT ${limit}`,
      (rows) => rows.map((r) => r.account_id)
    ))
