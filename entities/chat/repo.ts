/**
 * The Chat entity's SQL. Bodies (titles, messages, events, share snapshots) are stored only as
 * ciphertext; ids, kinds, sequence numbers and timestamps are in the clear.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import type { Migration } from "../../runtime/Migrations.ts"
import type { TurnStatus } from "./protocol.ts"

export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026112120,
    name: "chat",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`
        CREATE TABLE IF NOT EXISTS chats (
          chat_id TEXT PRIMARY KEY,
          owner_id TEXT NOT NULL,
          mate_id TEXT NOT NULL,
          title BYTEA,
          last_seq BIGINT NOT NULL DEFAULT 0,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          deleted_at TIMESTAMPTZ
        );
        CREATE INDEX IF NOT EXISTS chats_owner ON chats (owner_id, updated_at DESC) WHERE deleted_at IS NULL;
        CREATE TABLE IF NOT EXISTS chat_messages (
          chat_id TEXT NOT NULL,
          message_id TEXT NOT NULL,
          client_message_id TEXT,
          role TEXT NOT NULL CHECK (role IN ('user', 'mate')),
          author_id TEXT NOT NULL,
          turn_id TEXT NOT NULL,
          seq BIGINT NOT NULL,
          body BYTEA,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          deleted_at TIMESTAMPTZ,
          PRIMARY KEY (chat_id, message_id),
          UNIQUE (chat_id, client_message_id)
        );
        CREATE INDEX IF NOT EXISTS chat_messages_seq ON chat_messages (chat_id, seq);
        CREATE TABLE IF NOT EXISTS chat_events (
          chat_id TEXT NOT NULL,
          seq BIGINT NOT NULL,
          turn_id TEXT,
          kind TEXT NOT NULL,
          body BYTEA NOT NULL,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          PRIMARY KEY (chat_id, seq)
        );
        CREATE TABLE IF NOT EXISTS chat_turns (
          chat_id TEXT NOT NULL,
          turn_id TEXT NOT NULL,
          message_id TEXT NOT NULL,
          mate_id TEXT NOT NULL,
          account_id TEXT NOT NULL,
          scope_id TEXT,
          scope_cap BIGINT,
          status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'cancelled')),
          attempts INTEGER NOT NULL DEFAULT 0,
          hold_key TEXT NOT NULL,
          reserved BIGINT,
          charged BIGINT,
          reply_message_id TEXT,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          finished_at TIMESTAMPTZ,
          PRIMARY KEY (chat_id, turn_id)
        );
        CREATE INDEX IF NOT EXISTS chat_turns_running ON chat_turns (chat_id) WHERE status = 'running';
        CREATE TABLE IF NOT EXISTS chat_shares (
          chat_id TEXT NOT NULL,
          share_id TEXT NOT NULL,
          snapshot BYTEA NOT NULL,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          PRIMARY KEY (chat_id, share_id)
        );
      `)
  },
  {
    // a running turn that is silent (a slow model, a skill, a user's confirmation) says it is alive
    id: 2026120761,
    name: "chat_turn_heartbeat",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`ALTER TABLE chat_turns ADD COLUMN IF NOT EXISTS heartbeat_at TIMESTAMPTZ`)
  },
  {
    // the API key that posted a turn, named on its credit ledger rows
    id: 2026120731,
    name: "chat_turn_api_key",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`ALTER TABLE chat_turns ADD COLUMN IF NOT EXISTS api_key_id TEXT`)
  }
]

export interface ChatRow {
  readonly ownerId: string
  readonly mateId: string
  readonly title: Uint8Array | null
  readonly lastSeq: number
  readonly createdAt: Date
  readonly updatedAt: Date
  readonly deleted: boolean
}

export interface TurnRow {
  readonly turnId: string
  readonly messageId: string
  readonly mateId: string
  readonly accountId: string
  readonly scopeId: string | null
  readonly scopeCap: number | null
  /** The API key that posted the turn, if one did. */
  readonly apiKeyId: string | null
  readonly status: TurnStatus
  readonly attempts: number
  readonly holdKey: string
  readonly reserved: number | null
  readonly charged: number | null
}

export interface MessageRow {
  readonly messageId: string
  readonly clientMessageId: string | null
  readonly role: "user" | "mate"
  readonly authorId: string
  readonly turnId: string
  readonly seq: number
  readonly body: Uint8Array | null
  readonly createdAt: Date
  readonly deleted: boolean
}

export interface EventRow {
  readonly seq: number
  readonly turnId: string | null
  readonly kind: string
  readonly body: Uint8Array
  readonly createdAt: Date
}

const bytes = (value: unknown): Uint8Array => (value instanceof Uint8Array ? value : new Uint8Array(Buffer.from(value as ArrayBuffer)))
const maybeBytes = (value: unknown): Uint8Array | null => (value === null || value === undefined ? null : bytes(value))

type RawTurn = {
  turn_id: string; message_id: string; mate_id: string; account_id: string; scope_id: string | null; scope_cap: string | null
  api_key_id: string | null; status: TurnStatus; attempts: number; hold_key: string; reserved: string | null; charged: string | null
}
const toTurn = (r: RawTurn): TurnRow => ({
  turnId: r.turn_id,
  messageId: r.message_id,
  mateId: r.mate_id,
  accountId: r.account_id,
  scopeId: r.scope_id,
  scopeCap: r.scope_cap === null ? null : Number(r.scope_cap),
  apiKeyId: r.api_key_id,
  status: r.status,
  attempts: Number(r.attempts),
  holdKey: r.hold_key,
  reserved: r.reserved === null ? null : Number(r.reserved),
  charged: r.charged === null ? null : Number(r.charged)
})

type RawMessage = {
  message_id: string; client_message_id: string | null; role: "user" | "mate"; author_id: string; turn_id: string
  seq: string; body: unknown; created_at: Date; deleted_at: Date | null
}
const toMessage = (r: RawMessage): MessageRow => ({
  messageId: r.message_id,
  clientMessageId: r.client_message_id,
  role: r.role,
  authorId: r.author_id,
  turnId: r.turn_id,
  seq: Number(r.seq),
  body: maybeBytes(r.body),
  createdAt: new Date(r.created_at),
  deleted: r.deleted_at !== null
})

/** A write that rides along with a journal write, in the same statement. */
export type JournalExtra =
  | { readonly _tag: "InsertMessage"; readonly messageId: string; readonly clientMessageId: string | null; readonly role: "user" | "mate"; readonly authorId: string; readonly turnId: string; readonly seq: number; readonly body: Uint8Array }
  | { readonly _tag: "UpsertReply"; readonly messageId: string; readonly authorId: string; readonly turnId: string; readonly seq: number; readonly body: Uint8Array }
  | { readonly _tag: "InsertTurn"; readonly turn: { turnId: string; messageId: string; mateId: string; accountId: string; scopeId: string | null; scopeCap: number | null; apiKeyId: string | null; holdKey: string } }
  | { readonly _tag: "SetTitle"; readonly title: Uint8Array }
  | { readonly _tag: "StartAttempt"; readonly turnId: string; readonly reserved: number }
  | { readonly _tag: "DeleteMessageBody"; readonly messageId: string }

/** What a journal write did. */
export interface JournalResult {
  /** The sequence number moved (and everything else was written). */
  readonly written: boolean
  /** With `finish`: the turn was still running (and is now ended). */
  readonly finished: boolean
  /** The sequence number was still at `from` (false: a second writer moved it; nothing was written). */
  readonly current: boolean
}

/** The repository of one chat. */
export const make = (chatId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const chat: Effect.Effect<ChatRow | undefined, SqlError> = Effect.map(
      sql<{ owner_id: string; mate_id: string; title: unknown; last_seq: string; created_at: Date; updated_at: Date; deleted_at: Date | null }>`
        SELECT owner_id, mate_id, title, last_seq, created_at, updated_at, deleted_at FROM chats WHERE chat_id = ${chatId}`,
      (rows) =>
        rows[0] && {
          ownerId: rows[0].owner_id,
          mateId: rows[0].mate_id,
          title: maybeBytes(rows[0].title),
          lastSeq: Number(rows[0].last_seq),
          createdAt: new Date(rows[0].created_at),
          updatedAt: new Date(rows[0].updated_at),
          deleted: rows[0].deleted_at !== null
        }
    )

    const insertChat = (c: { ownerId: string; mateId: string; title: Uint8Array | null }) =>
      sql`INSERT INTO chats (chat_id, owner_id, mate_id, title) VALUES (${chatId}, ${c.ownerId}, ${c.mateId}, ${c.title})
          ON CONFLICT (chat_id) DO NOTHING`

    /**
     * One journal write as one statement (atomic without a transaction): the chat's sequence
     * number moves from `from` to `from + events.length`, the events are inserted, and the
     * extras written — all only if the number was still at `from` (and, with `finish`, only if
     * the turn was still running). A unique violation (a repeated client message id) aborts
     * the whole statement.
     */
    const writeJournal = (options: {
      readonly from: number
      readonly events: ReadonlyArray<{ seq: number; turnId: string | null; kind: string; body: Uint8Array }>
      readonly extras: ReadonlyArray<JournalExtra>
      readonly finish?: { readonly turnId: string; readonly status: TurnStatus; readonly charged: number | null; readonly replyMessageId: string | null }
    }): Effect.Effect<JournalResult, SqlError> => {
      const to = options.from + options.events.length
      // the chat's row, locked, if its number is still at `from`: every write below depends on it
      // (data-modifying CTEs all run, so ending the turn must wait for this check, not for `adv`;
      // and `adv` reads it too, so it is read before `adv` changes the row it locks)
      const ctes: Array<Statement.Fragment> = [
        sql`cur AS (SELECT 1 FROM chats WHERE chat_id = ${chatId} AND last_seq = ${options.from}::bigint FOR UPDATE)`
      ]
      if (options.finish) {
        const f = options.finish
        ctes.push(sql`fin AS (UPDATE chat_turns SET status = ${f.status}, charged = ${f.charged}::bigint, reply_message_id = ${f.replyMessageId}::text, finished_at = now()
          WHERE chat_id = ${chatId} AND turn_id = ${f.turnId} AND status = 'running' AND EXISTS (SELECT 1 FROM cur) RETURNING 1)`)
      }
      ctes.push(sql`adv AS (UPDATE chats SET last_seq = ${to}::bigint, updated_at = now()
        WHERE chat_id = ${chatId} AND EXISTS (SELECT 1 FROM cur) ${options.finish ? sql`AND EXISTS (SELECT 1 FROM fin)` : sql``} RETURNING 1)`)
      const guard = sql`WHERE EXISTS (SELECT 1 FROM adv)`
      if (options.events.length > 0) {
        const values = options.events.map((e) => sql`(${e.seq}::bigint, ${e.turnId}::text, ${e.kind}::text, ${e.body}::bytea)`)
        ctes.push(sql`ev AS (INSERT INTO chat_events (chat_id, seq, turn_id, kind, body)
          SELECT ${chatId}, v.seq, v.turn_id, v.kind, v.body FROM (VALUES ${sql.csv(values)}) AS v(seq, turn_id, kind, body) ${guard})`)
      }
      options.extras.forEach((x, i) => {
        const name = sql.literal(`x${i}`)
        switch (x._tag) {
          case "InsertMessage":
            ctes.push(sql`${name} AS (INSERT INTO chat_messages (chat_id, message_id, client_message_id, role, author_id, turn_id, seq, body)
              SELECT ${chatId}, ${x.messageId}, ${x.clientMessageId}::text, ${x.role}, ${x.authorId}, ${x.turnId}, ${x.seq}::bigint, ${x.body}::bytea ${guard})`)
            break
          case "UpsertReply":
            ctes.push(sql`${name} AS (INSERT INTO chat_messages (chat_id, message_id, client_message_id, role, author_id, turn_id, seq, body)
              SELECT ${chatId}, ${x.messageId}, NULL, 'mate', ${x.authorId}, ${x.turnId}, ${x.seq}::bigint, ${x.body}::bytea ${guard}
              ON CONFLICT (chat_id, message_id) DO UPDATE SET body = EXCLUDED.body, seq = EXCLUDED.seq)`)
            break
          case "InsertTurn": {
            const t = x.turn
            ctes.push(sql`${name} AS (INSERT INTO chat_turns (chat_id, turn_id, message_id, mate_id, account_id, scope_id, scope_cap, api_key_id, status, hold_key)
              SELECT ${chatId}, ${t.turnId}, ${t.messageId}, ${t.mateId}, ${t.accountId}, ${t.scopeId}::text, ${t.scopeCap}::bigint, ${t.apiKeyId}::text, 'running', ${t.holdKey} ${guard})`)
            break
          }
          case "SetTitle":
            ctes.push(sql`${name} AS (UPDATE chats SET title = ${x.title}::bytea WHERE chat_id = ${chatId} AND EXISTS (SELECT 1 FROM adv))`)
            break
          case "StartAttempt":
            ctes.push(sql`${name} AS (UPDATE chat_turns SET attempts = attempts + 1, reserved = COALESCE(reserved, ${x.reserved}::bigint)
              WHERE chat_id = ${chatId} AND turn_id = ${x.turnId} AND EXISTS (SELECT 1 FROM adv))`)
            break
          case "DeleteMessageBody":
            ctes.push(sql`${name} AS (UPDATE chat_messages SET body = NULL, deleted_at = now()
              WHERE chat_id = ${chatId} AND message_id = ${x.messageId} AND EXISTS (SELECT 1 FROM adv))`)
            break
        }
      })
      return Effect.map(
        sql<{ written: boolean; finished: boolean; current: boolean }>`WITH ${sql.csv(ctes)}
          SELECT EXISTS (SELECT 1 FROM adv) AS written, ${options.finish ? sql`EXISTS (SELECT 1 FROM fin)` : sql`TRUE`} AS finished,
            EXISTS (SELECT 1 FROM cur) AS current`,
        (rows) => ({ written: rows[0]?.written === true, finished: rows[0]?.finished === true, current: rows[0]?.current === true })
      )
    }

    const events = (afterSeq: number, limit: number): Effect.Effect<ReadonlyArray<EventRow>, SqlError> =>
      Effect.map(
        sql<{ seq: string; turn_id: string | null; kind: string; body: unknown; created_at: Date }>`
          SELECT seq, turn_id, kind, body, created_at FROM chat_events
          WHERE chat_id = ${chatId} AND seq > ${afterSeq} ORDER BY seq LIMIT ${limit}`,
        (rows) => rows.map((r) => ({ seq: Number(r.seq), turnId: r.turn_id, kind: r.kind, body: bytes(r.body), createdAt: new Date(r.created_at) }))
      )

    const messageByClientId = (clientMessageId: string): Effect.Effect<MessageRow | undefined, SqlError> =>
      Effect.map(
        sql<RawMessage>`SELECT message_id, client_message_id, role, author_id, turn_id, seq, body, created_at, deleted_at
                        FROM chat_messages WHERE chat_id = ${chatId} AND client_message_id = ${clientMessageId}`,
        (rows) => (rows[0] ? toMessage(rows[0]) : undefined)
      )

    const message = (messageId: string): Effect.Effect<MessageRow | undefined, SqlError> =>
      Effect.map(
        sql<RawMessage>`SELECT message_id, client_message_id, role, author_id, turn_id, seq, body, created_at, deleted_at
                        FROM chat_messages WHERE chat_id = ${chatId} AND message_id = ${messageId}`,
        (rows) => (rows[0] ? toMessage(rows[0]) : undefined)
      )

    /** Messages before sequence number `before` (all when undefined), newest `limit`, returned oldest first. */
    const history = (before: number | undefined, limit: number): Effect.Effect<ReadonlyArray<MessageRow>, SqlError> =>
      Effect.map(
        sql<RawMessage>`SELECT message_id, client_message_id, role, author_id, turn_id, seq, body, created_at, deleted_at
                        FROM chat_messages WHERE chat_id = ${chatId} AND deleted_at IS NULL
                        ${before === undefined ? sql`` : sql`AND seq < ${before}`}
                        ORDER BY seq DESC LIMIT ${limit}`,
        (rows) => rows.map(toMessage).reverse()
      )

    /** A turn's message and up to `window` messages before it, oldest first (deleted ones left out). */
    const turnContext = (messageId: string, window: number): Effect.Effect<ReadonlyArray<MessageRow>, SqlError> =>
      Effect.map(
        sql<RawMessage>`SELECT message_id, client_message_id, role, author_id, turn_id, seq, body, created_at, deleted_at
                        FROM chat_messages WHERE chat_id = ${chatId} AND deleted_at IS NULL
                        AND seq <= (SELECT seq FROM chat_messages WHERE chat_id = ${chatId} AND message_id = ${messageId})
                        ORDER BY seq DESC LIMIT ${window + 1}`,
        (rows) => rows.map(toMessage).reverse()
      )

    const turn = (turnId: string): Effect.Effect<TurnRow | undefined, SqlError> =>
      Effect.map(
        sql<RawTurn>`SELECT turn_id, message_id, mate_id, account_id, scope_id, scope_cap, api_key_id, status, attempts, hold_key, reserved, charged
                     FROM chat_turns WHERE chat_id = ${chatId} AND turn_id = ${turnId}`,
        (rows) => (rows[0] ? toTurn(rows[0]) : undefined)
      )

    const runningTurns: Effect.Effect<ReadonlyArray<TurnRow>, SqlError> = Effect.map(
      sql<RawTurn>`SELECT turn_id, message_id, mate_id, account_id, scope_id, scope_cap, api_key_id, status, attempts, hold_key, reserved, charged
                   FROM chat_turns WHERE chat_id = ${chatId} AND status = 'running' ORDER BY created_at`,
      (rows) => rows.map(toTurn)
    )

    /** End a running turn; `false` if it had already ended. */
    const finishTurn = (turnId: string, status: TurnStatus, charged: number | null, replyMessageId: string | null): Effect.Effect<boolean, SqlError> =>
      Effect.map(
        sql`UPDATE chat_turns SET status = ${status}, charged = ${charged}, reply_message_id = ${replyMessageId}, finished_at = now()
            WHERE chat_id = ${chatId} AND turn_id = ${turnId} AND status = 'running' RETURNING turn_id`,
        (rows) => rows.length === 1
      )

    /** A running turn is alive (the turn sweeper leaves it alone for its grace). */
    const heartbeat = (turnId: string): Effect.Effect<void, SqlError> =>
      Effect.asVoid(sql`UPDATE chat_turns SET heartbeat_at = now() WHERE chat_id = ${chatId} AND turn_id = ${turnId} AND status = 'running'`)

    const markDeleted = sql`UPDATE chats SET deleted_at = now(), title = NULL WHERE chat_id = ${chatId}`

    const setTitle = (title: Uint8Array) =>
      Effect.asVoid(sql`UPDATE chats SET title = ${title}::bytea, updated_at = now() WHERE chat_id = ${chatId} AND deleted_at IS NULL`)

    const insertShare = (shareId: string, snapshot: Uint8Array) =>
      sql`INSERT INTO chat_shares (chat_id, share_id, snapshot) VALUES (${chatId}, ${shareId}, ${snapshot})`

    const share = (shareId: string): Effect.Effect<{ snapshot: Uint8Array; createdAt: Date } | undefined, SqlError> =>
      Effect.map(
        sql<{ snapshot: unknown; created_at: Date }>`SELECT snapshot, created_at FROM chat_shares WHERE chat_id = ${chatId} AND share_id = ${shareId}`,
        (rows) => (rows[0] ? { snapshot: bytes(rows[0].snapshot), createdAt: new Date(rows[0].created_at) } : undefined)
      )

    const deleteShares = sql`DELETE FROM chat_shares WHERE chat_id = ${chatId}`

    return {
      sql,
      chat,
      insertChat,
      writeJournal,
      turnContext,
      events,
      messageByClientId,
      message,
      history,
      turn,
      runningTurns,
      finishTurn,
      heartbeat,
      markDeleted,
      setTitle,
      insertShare,
      share,
      deleteShares
    }
  })

/**
 * Chats with a `running` turn, no journal write and no heartbeat for `quietForMs` (the database's
 * clock; for the turn sweeper): a turn that is producing output moves its chat's `updated_at` at
 * every write, a silent one writes heartbeats, so only stalled or orphaned turns are returned.
 */
export const chatsWithStalledTurns = (quietForMs: number, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ chat_id: string }>`
        SELECT DISTINCT t.chat_id FROM chat_turns t JOIN chats c ON c.chat_id = t.chat_id
        WHERE t.status = 'running' AND c.updated_at <= now() - ${quietForMs}::int * interval '1 millisecond'
          AND (t.heartbeat_at IS NULL OR t.heartbeat_at <= now() - ${quietForMs}::int * interval '1 millisecond')
          AND c.deleted_at IS NULL LIMIT ${limit}`,
      (rows) => rows.map((r) => r.chat_id)
    ))

/** Chats of an owner, most recently active first (for listing; ids only — titles come from each chat). */
export const chatsOf = (ownerId: string, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ chat_id: string }>`SELECT chat_id FROM chats WHERE owner_id = ${ownerId} AND deleted_at IS NULL ORDER BY updated_at DESC LIMIT ${limit}`,
      (rows) => rows.map((r) => r.chat_id)
    ))
