/** The uploads' SQL: one row per upload (metadata, wrapped key, status), the chats it is attached to. */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Migration } from "../runtime/Migrations.ts"

/** The uploads tables. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026120785,
    name: "uploads",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.all([
        sql`CREATE TABLE IF NOT EXISTS uploads (
          upload_id TEXT PRIMARY KEY,
          owner_id TEXT NOT NULL,
          status TEXT NOT NULL,
          name TEXT NOT NULL,
          mime TEXT NOT NULL,
          kind TEXT NOT NULL,
          size BIGINT NOT NULL,
          sha256 TEXT NOT NULL,
          public BOOLEAN NOT NULL DEFAULT false,
          wrapped_key BYTEA,
          has_preview BOOLEAN NOT NULL DEFAULT false,
          width INTEGER,
          height INTEGER,
          pages INTEGER,
          text_sealed BYTEA,
          code TEXT,
          reason TEXT,
          chat_id TEXT,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )`,
        sql`CREATE INDEX IF NOT EXISTS uploads_owner ON uploads (owner_id, status)`,
        sql`CREATE UNIQUE INDEX IF NOT EXISTS uploads_owner_sha ON uploads (owner_id, sha256, public) WHERE status IN ('processing', 'ready')`,
        sql`CREATE TABLE IF NOT EXISTS upload_attachments (
          upload_id TEXT NOT NULL,
          chat_id TEXT NOT NULL,
          client_message_id TEXT NOT NULL,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          PRIMARY KEY (upload_id, chat_id, client_message_id)
        )`,
        sql`CREATE INDEX IF NOT EXISTS upload_attachments_chat ON upload_attachments (chat_id, client_message_id)`,
        sql`CREATE TABLE IF NOT EXISTS upload_secrets (name TEXT PRIMARY KEY, secret BYTEA NOT NULL)`
      ], { discard: true }))
  }
]

/** Where an upload is. */
export type Status = "processing" | "ready" | "rejected" | "deleted"

/** An upload's row. */
export interface Row {
  readonly uploadId: string
  readonly ownerId: string
  readonly status: Status
  readonly name: string
  readonly mime: string
  readonly kind: string
  readonly size: number
  readonly sha256: string
  readonly public: boolean
  readonly wrappedKey: Uint8Array | null
  readonly hasPreview: boolean
  readonly width: number | null
  readonly height: number | null
  readonly pages: number | null
  readonly textSealed: Uint8Array | null
  readonly code: string | null
  readonly reason: string | null
  readonly chatId: string | null
  readonly createdAt: Date
  readonly updatedAt: Date
}

interface RawRow {
  readonly upload_id: string
  readonly owner_id: string
  readonly status: Status
  readonly name: string
  readonly mime: string
  readonly kind: string
  readonly size: string | number
  readonly sha256: string
  readonly public: boolean
  readonly wrapped_key: Uint8Array | null
  readonly has_preview: boolean
  readonly width: number | null
  readonly height: number | null
  readonly pages: number | null
  readonly text_sealed: Uint8Array | null
  readonly code: string | null
  readonly reason: string | null
  readonly chat_id: string | null
  readonly created_at: Date | string
  readonly updated_at: Date | string
}

const bytes = (value: unknown): Uint8Array | null =>
  value === null || value === undefined ? null : value instanceof Uint8Array ? value : new Uint8Array(Buffer.from(value as ArrayBuffer))

const toRow = (r: RawRow): Row => ({
  uploadId: r.upload_id,
  ownerId: r.owner_id,
  status: r.status,
  name: r.name,
  mime: r.mime,
  kind: r.kind,
  size: Number(r.size),
  sha256: r.sha256,
  public: r.public,
  wrappedKey: bytes(r.wrapped_key),
  hasPreview: r.has_preview,
  width: r.width,
  height: r.height,
  pages: r.pages,
  textSealed: bytes(r.text_sealed),
  code: r.code,
  reason: r.reason,
  chatId: r.chat_id,
  createdAt: new Date(r.created_at),
  updatedAt: new Date(r.updated_at)
})

/** What a new upload starts with. */
export interface NewUpload {
  readonly uploadId: string
  readonly ownerId: string
  readonly name: string
  readonly mime: string
  readonly kind: string
  readonly size: number
  readonly sha256: string
  readonly public: boolean
  readonly width: number | null
  readonly height: number | null
  readonly chatId: string | null
}

/** The repository over the SQL client. */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const one = (rows: ReadonlyArray<RawRow>) => (rows[0] ? toRow(rows[0]) : undefined)
  return {
    get: (uploadId: string): Effect.Effect<Row | undefined, SqlError> =>
      Effect.map(sql<RawRow>`SELECT * FROM uploads WHERE upload_id = ${uploadId}`, one),
    /** The live upload of `ownerId` with these bytes, if any. */
    duplicate: (ownerId: string, sha256: string, isPublic: boolean): Effect.Effect<Row | undefined, SqlError> =>
      Effect.map(sql<RawRow>`SELECT * FROM uploads WHERE owner_id = ${ownerId} AND sha256 = ${sha256} AND public = ${isPublic} AND status IN ('processing', 'ready')`, one),
    /** Bytes `ownerId` holds (processing and ready files). */
    used: (ownerId: string): Effect.Effect<number, SqlError> =>
      Effect.map(sql<{ used: string | number | null }>`SELECT COALESCE(SUM(size), 0) AS used FROM uploads WHERE owner_id = ${ownerId} AND status IN ('processing', 'ready')`, (rows) => Number(rows[0]?.used ?? 0)),
    /** Insert a processing upload; false when the same bytes are already there (a concurrent twin). */
    insert: (u: NewUpload): Effect.Effect<boolean, SqlError> =>
      Effect.map(
        sql`INSERT INTO uploads (upload_id, owner_id, status, name, mime, kind, size, sha256, public, width, height, chat_id)
            VALUES (${u.uploadId}, ${u.ownerId}, 'processing', ${u.name}, ${u.mime}, ${u.kind}, ${u.size}, ${u.sha256}, ${u.public}, ${u.width}, ${u.height}, ${u.chatId})
            ON CONFLICT DO NOTHING RETURNING upload_id`,
        (rows) => rows.length === 1
      ),
    remove: (uploadId: string) => sql`DELETE FROM uploads WHERE upload_id = ${uploadId}`.pipe(Effect.asVoid),
    ready: (uploadId: string, r: { wrappedKey: Uint8Array; hasPreview: boolean; width: number | null; height: number | null; pages: number | null; textSealed: Uint8Array | null }) =>
      sql`UPDATE uploads SET status = 'ready', wrapped_key = ${r.wrappedKey}, has_preview = ${r.hasPreview}, width = COALESCE(${r.width}, width),
          height = COALESCE(${r.height}, height), pages = ${r.pages}, text_sealed = ${r.textSealed}, updated_at = now()
          WHERE upload_id = ${uploadId} AND status = 'processing'`.pipe(Effect.asVoid),
    reject: (uploadId: string, code: string, reason: string) =>
      sql`UPDATE uploads SET status = 'rejected', code = ${code}, reason = ${reason}, wrapped_key = NULL, text_sealed = NULL, has_preview = false, updated_at = now()
          WHERE upload_id = ${uploadId} AND status = 'processing'`.pipe(Effect.asVoid),
    /** Forget the key and the text: what was stored can no longer be read. */
    shred: (uploadId: string) =>
      Effect.zipRight(
        sql`UPDATE uploads SET status = 'deleted', wrapped_key = NULL, text_sealed = NULL, has_preview = false, updated_at = now() WHERE upload_id = ${uploadId}`,
        sql`DELETE FROM upload_attachments WHERE upload_id = ${uploadId}`
      ).pipe(Effect.asVoid),
    attach: (uploadId: string, chatId: string, clientMessageId: string) =>
      sql`INSERT INTO upload_attachments (upload_id, chat_id, client_message_id) VALUES (${uploadId}, ${chatId}, ${clientMessageId})
          ON CONFLICT DO NOTHING`.pipe(Effect.asVoid),
    /** The chats an upload was named for or attached to. */
    chatsOf: (uploadId: string): Effect.Effect<ReadonlyArray<string>, SqlError> =>
      Effect.map(
        sql<{ chat_id: string }>`SELECT chat_id FROM uploads WHERE upload_id = ${uploadId} AND chat_id IS NOT NULL
                                 UNION SELECT chat_id FROM upload_attachments WHERE upload_id = ${uploadId}`,
        (rows) => rows.map((r) => r.chat_id)
      ),
    /** Uploads named for or attached to `chatId` and to no other chat. */
    onlyInChat: (chatId: string): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
      Effect.map(
        sql<RawRow>`SELECT u.* FROM uploads u
                    WHERE u.status <> 'deleted'
                      AND (u.chat_id = ${chatId} OR EXISTS (SELECT 1 FROM upload_attachments a WHERE a.upload_id = u.upload_id AND a.chat_id = ${chatId}))
                      AND NOT EXISTS (SELECT 1 FROM upload_attachments a WHERE a.upload_id = u.upload_id AND a.chat_id <> ${chatId})`,
        (rows) => rows.map(toRow)
      ),
    detachChat: (chatId: string) => sql`DELETE FROM upload_attachments WHERE chat_id = ${chatId}`.pipe(Effect.asVoid),
    ofOwner: (ownerId: string): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
      Effect.map(sql<RawRow>`SELECT * FROM uploads WHERE owner_id = ${ownerId} AND status <> 'deleted'`, (rows) => rows.map(toRow)),
    /** The uploads attached to a chat's message (by the message's id), oldest first. */
    ofMessage: (chatId: string, messageId: string): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
      Effect.map(
        sql<RawRow>`SELECT u.* FROM upload_attachments a
                    JOIN chat_messages m ON m.chat_id = a.chat_id AND m.client_message_id = a.client_message_id
                    JOIN uploads u ON u.upload_id = a.upload_id
                    WHERE a.chat_id = ${chatId} AND m.message_id = ${messageId} AND u.status = 'ready'
                    ORDER BY a.created_at, u.upload_id`,
        (rows) => rows.map(toRow)
      ),
    /** A secret shared by every process (created once). */
    secret: (name: string, fresh: Uint8Array): Effect.Effect<Uint8Array, SqlError> =>
      Effect.gen(function*() {
        yield* sql`INSERT INTO upload_secrets (name, secret) VALUES (${name}, ${fresh}) ON CONFLICT (name) DO NOTHING`
        const rows = yield* sql<{ secret: Uint8Array }>`SELECT secret FROM upload_secrets WHERE name = ${name}`
        return bytes(rows[0]!.secret)!
      }),
    /** A live process is still working on the upload: it is not stale. */
    touch: (uploadId: string) =>
      sql`UPDATE uploads SET updated_at = now() WHERE upload_id = ${uploadId} AND status = 'processing'`.pipe(Effect.asVoid),
    /**
     * Reject the uploads left `processing` by a process that stopped (untouched for
     * `olderThanSeconds`); the rows it changed (one statement: of processes sweeping at once, each
     * row goes to one).
     */
    rejectStale: (olderThanSeconds: number, code: string, reason: string): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
      Effect.map(
        sql<RawRow>`UPDATE uploads SET status = 'rejected', code = ${code}, reason = ${reason}, wrapped_key = NULL, text_sealed = NULL, has_preview = false, updated_at = now()
                    WHERE status = 'processing' AND updated_at < now() - make_interval(secs => ${olderThanSeconds})
                    RETURNING *`,
        (rows) => rows.map(toRow)
      )
  }
})

/** The repository's type. */
export type Repo = Effect.Effect.Success<typeof make>
