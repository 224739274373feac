/**
 * The store's records in the runtime's database (Postgres, or the embedded PGlite):
 *
 * - `store_publishers`: the publisher keys admins trust;
 * - `store_apps` / `store_versions`: the catalog — every published version with its digest and
 *   app manifest (versions are immutable; an app id belongs to whoever published it first);
 * - `store_installs`: what this server runs, pinned to a digest, with its encrypted config and
 *   secrets and an upgrade that waits for approval;
 * - `store_generation`: a counter bumped by every install change, which every process polls to
 *   pick installs up within a second.
 *
 * SQL only: checks and encryption are the callers' (`Store.ts`, `Installs.ts`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Buffer } from "node:buffer"
import * as semver from "semver"
import type { Migration } from "../../runtime/Migrations.ts"
import * as Manifest from "../manifest/Manifest.ts"
import { CatalogConflict, CatalogNotFound } from "./Errors.ts"
import type * as Permissions from "./Permissions.ts"

/** A trusted publisher key. */
export interface Publisher {
  readonly publicKey: string
  readonly name: string
  readonly addedBy: string
  readonly createdAt: Date
}

/** A published version. */
export interface Version {
  readonly appId: string
  readonly version: string
  readonly digest: string
  readonly manifest: Manifest.AppManifest
  /** The key that signed it (null: unsigned). */
  readonly publicKey: string | null
  readonly size: number
  /** The user who published it through the API (null: pushed to the registry directly). */
  readonly publishedBy: string | null
  readonly createdAt: Date
}

/** An app in the catalog (its latest version's description). */
export interface App {
  readonly appId: string
  readonly name: string
  readonly description: string
  readonly publisher: string
  readonly categories: ReadonlyArray<string>
  readonly latestVersion: string
  readonly ownerId: string | null
  readonly updatedAt: Date
}

/** An upgrade waiting for an admin's approval. */
export interface Pending {
  readonly version: string
  readonly digest: string
  readonly manifest: Manifest.AppManifest
  readonly diff: Permissions.Diff
  readonly requestedBy: string
  readonly requestedAt: Date
}

/** An install: what this server runs for an app. */
export interface Install {
  readonly appId: string
  readonly version: string
  readonly digest: string
  readonly manifest: Manifest.AppManifest
  /** Non-secret config, encrypted (null: none set). */
  readonly config: Uint8Array | null
  readonly configKeys: ReadonlyArray<string>
  /** Secrets, encrypted (null: none set). */
  readonly secrets: Uint8Array | null
  readonly secretKeys: ReadonlyArray<string>
  readonly pending: Pending | null
  readonly installedBy: string
  readonly installedAt: Date
  readonly updatedAt: Date
}

/** A page of the catalog. */
export interface Page {
  readonly apps: ReadonlyArray<App>
  readonly total: number
}

/** The catalog's tables. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: 2026120770,
    name: "store_catalog",
    run: Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE IF NOT EXISTS store_publishers (
        public_key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        added_by TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`
      yield* sql`CREATE TABLE IF NOT EXISTS store_apps (
        app_id TEXT PRIMARY KEY,
        owner_id TEXT,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        publisher TEXT NOT NULL,
        categories JSONB NOT NULL DEFAULT '[]'::jsonb,
        latest_version TEXT NOT NULL,
        search TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`
      yield* sql`CREATE TABLE IF NOT EXISTS store_versions (
        app_id TEXT NOT NULL,
        version TEXT NOT NULL,
        digest TEXT NOT NULL,
        manifest JSONB NOT NULL,
        public_key TEXT,
        size BIGINT NOT NULL,
        published_by TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (app_id, version)
      )`
      yield* sql`CREATE TABLE IF NOT EXISTS store_installs (
        app_id TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        digest TEXT NOT NULL,
        manifest JSONB NOT NULL,
        config BYTEA,
        config_keys JSONB NOT NULL DEFAULT '[]'::jsonb,
        secrets BYTEA,
        secret_keys JSONB NOT NULL DEFAULT '[]'::jsonb,
        pending JSONB,
        installed_by TEXT NOT NULL,
        installed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`
      yield* sql`CREATE TABLE IF NOT EXISTS store_generation (id INT PRIMARY KEY, generation BIGINT NOT NULL)`
      yield* sql`INSERT INTO store_generation (id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`
    })
  },
  {
    id: 2026120771,
    name: "store_publisher_accounts",
    run: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`CREATE TABLE IF NOT EXISTS store_publisher_accounts (
        user_id TEXT PRIMARY KEY,
        granted_by TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`)
  }
]

const toBytes = (value: unknown): Uint8Array | null =>
  value === null || value === undefined ? null : value instanceof Uint8Array ? value : new Uint8Array(Buffer.from(value as ArrayBuffer))

const json = <A>(value: unknown): A => (typeof value === "string" ? JSON.parse(value) : value) as A

const toDate = (value: unknown): Date => (value instanceof Date ? value : new Date(String(value)))

/** Manifests were validated before they were written; decoding applies defaults. */
const manifestOf = (value: unknown): Manifest.AppManifest =>
  Either.getOrElse(Manifest.decode(json(value)), (e) => {
    throw new Error(`a stored manifest does not decode: ${e.message}`)
  })

/** The text the catalog search looks in. */
const searchText = (m: Manifest.AppManifest): string =>
  [m.id, m.name, m.description, m.publisher, ...m.categories, ...m.skills.flatMap((s) => [s.name, s.description])].join("\n").toLowerCase()

const likePattern = (q: string) => `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`

interface InstallRowRaw {
  app_id: string
  version: string
  digest: string
  manifest: unknown
  config: unknown
  config_keys: unknown
  secrets: unknown
  secret_keys: unknown
  pending: unknown
  installed_by: string
  installed_at: unknown
  updated_at: unknown
}

interface PendingJson {
  version: string
  digest: string
  manifest: unknown
  diff: Permissions.Diff
  requested_by: string
  requested_at: string
}

const installOf = (r: InstallRowRaw): Install => {
  const pending = r.pending === null || r.pending === undefined ? null : json<PendingJson>(r.pending)
  return {
    appId: r.app_id,
    version: r.version,
    digest: r.digest,
    manifest: manifestOf(r.manifest),
    config: toBytes(r.config),
    configKeys: json<Array<string>>(r.config_keys),
    secrets: toBytes(r.secrets),
    secretKeys: json<Array<string>>(r.secret_keys),
    pending: pending === null ? null : {
      version: pending.version,
      digest: pending.digest,
      manifest: manifestOf(pending.manifest),
      diff: pending.diff,
      requestedBy: pending.requested_by,
      requestedAt: new Date(pending.requested_at)
    },
    installedBy: r.installed_by,
    installedAt: toDate(r.installed_at),
    updatedAt: toDate(r.updated_at)
  }
}

interface VersionRowRaw {
  app_id: string
  version: string
  digest: string
  manifest: unknown
  public_key: string | null
  size: unknown
  published_by: string | null
  created_at: unknown
}

const versionOf = (r: VersionRowRaw): Version => ({
  appId: r.app_id,
  version: r.version,
  digest: r.digest,
  manifest: manifestOf(r.manifest),
  publicKey: r.public_key,
  size: Number(r.size),
  publishedBy: r.published_by,
  createdAt: toDate(r.created_at)
})

interface AppRowRaw {
  app_id: string
  owner_id: string | null
  name: string
  description: string
  publisher: string
  categories: unknown
  latest_version: string
  updated_at: unknown
}

const appOf = (r: AppRowRaw): App => ({
  appId: r.app_id,
  name: r.name,
  description: r.description,
  publisher: r.publisher,
  categories: json<Array<string>>(r.categories),
  latestVersion: r.latest_version,
  ownerId: r.owner_id,
  updatedAt: toDate(r.updated_at)
})

/** A new version to record. */
export interface NewVersion {
  readonly manifest: Manifest.AppManifest
  readonly digest: string
  readonly publicKey: string | null
  readonly size: number
  /** The publishing user (null: found in the registry). */
  readonly publishedBy: string | null
  /** Admins may publish versions of any app. */
  readonly isAdmin: boolean
}

/** The catalog service. */
export interface CatalogService {
  readonly trust: (publisher: { readonly publicKey: string; readonly name: string; readonly addedBy: string }) => Effect.Effect<Publisher, SqlError>
  readonly untrust: (publicKey: string) => Effect.Effect<void, SqlError | CatalogNotFound>
  readonly publishers: Effect.Effect<ReadonlyArray<Publisher>, SqlError>
  /** Whether a user has the `publisher` role (may publish apps). */
  readonly isPublisher: (userId: string) => Effect.Effect<boolean, SqlError>
  readonly setPublisher: (userId: string, publisher: boolean, by: string) => Effect.Effect<void, SqlError>
  /** Record a published version (and create or update its app). */
  readonly addVersion: (v: NewVersion) => Effect.Effect<Version, SqlError | CatalogConflict>
  readonly search: (query: { readonly q?: string; readonly category?: string; readonly limit: number; readonly offset: number }) => Effect.Effect<Page, SqlError>
  readonly app: (appId: string) => Effect.Effect<{ readonly app: App; readonly versions: ReadonlyArray<Version> }, SqlError | CatalogNotFound>
  readonly version: (appId: string, version: string) => Effect.Effect<Version, SqlError | CatalogNotFound>
  readonly hasVersion: (appId: string, version: string) => Effect.Effect<boolean, SqlError>
  readonly installs: Effect.Effect<ReadonlyArray<Install>, SqlError>
  readonly install: (appId: string) => Effect.Effect<Option.Option<Install>, SqlError>
  /** Bumped by every install change (and trust change). */
  readonly generation: Effect.Effect<number, SqlError>
  readonly putInstall: (install: {
    readonly appId: string
    readonly version: string
    readonly digest: string
    readonly manifest: Manifest.AppManifest
    readonly installedBy: string
  }) => Effect.Effect<void, SqlError>
  readonly setPending: (appId: string, pending: Pending | null) => Effect.Effect<void, SqlError>
  readonly setConfig: (appId: string, values: {
    readonly config: Uint8Array | null
    readonly configKeys: ReadonlyArray<string>
    readonly secrets: Uint8Array | null
    readonly secretKeys: ReadonlyArray<string>
  }) => Effect.Effect<void, SqlError>
  readonly deleteInstall: (appId: string) => Effect.Effect<boolean, SqlError>
}

/** The catalog tag. */
export class Catalog extends Context.Tag("troupe/skills/store/Catalog")<Catalog, CatalogService>() {}

/** The catalog over the runtime's SQL client (run `migrations` first). */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const bump = sql`UPDATE store_generation SET generation = generation + 1 WHERE id = 1`

  const versions = (appId: string) =>
    Effect.map(
      sql<VersionRowRaw>`SELECT * FROM store_versions WHERE app_id = ${appId}`,
      (rows) => rows.map(versionOf).sort((a, b) => semver.rcompare(a.version, b.version))
    )

  const service: CatalogService = {
    trust: ({ addedBy, name, publicKey }) =>
      sql.withTransaction(Effect.map(
        Effect.zipLeft(
          sql<{ public_key: string; name: string; added_by: string; created_at: unknown }>`
            INSERT INTO store_publishers (public_key, name, added_by) VALUES (${publicKey}, ${name}, ${addedBy})
            ON CONFLICT (public_key) DO UPDATE SET name = EXCLUDED.name
            RETURNING public_key, name, added_by, created_at`,
          bump
        ),
        (rows) => ({ publicKey: rows[0]!.public_key, name: rows[0]!.name, addedBy: rows[0]!.added_by, createdAt: toDate(rows[0]!.created_at) })
      )),
    untrust: (publicKey) =>
      // every process checks loaded artifacts again: what the key signed stops running
      sql.withTransaction(Effect.flatMap(sql`DELETE FROM store_publishers WHERE public_key = ${publicKey} RETURNING public_key`, (rows): Effect.Effect<void, SqlError | CatalogNotFound> =>
        rows.length === 0
          ? Effect.fail(new CatalogNotFound({ what: "publisher", app: "", message: `${publicKey} is not a trusted publisher key` }))
          : Effect.asVoid(bump))),
    publishers: Effect.map(
      sql<{ public_key: string; name: string; added_by: string; created_at: unknown }>`SELECT * FROM store_publishers ORDER BY created_at, public_key`,
      (rows) => rows.map((r) => ({ publicKey: r.public_key, name: r.name, addedBy: r.added_by, createdAt: toDate(r.created_at) }))
    ),
    isPublisher: (userId) => Effect.map(sql`SELECT 1 FROM store_publisher_accounts WHERE user_id = ${userId}`, (rows) => rows.length > 0),
    setPublisher: (userId, publisher, by) =>
      Effect.asVoid(
        publisher
          ? sql`INSERT INTO store_publisher_accounts (user_id, granted_by) VALUES (${userId}, ${by}) ON CONFLICT (user_id) DO NOTHING`
          : sql`DELETE FROM store_publisher_accounts WHERE user_id = ${userId}`
      ),
    addVersion: (v) =>
      sql.withTransaction(Effect.gen(function*() {
        const m = v.manifest
        const existing = yield* sql<{ owner_id: string | null; latest_version: string }>`
          SELECT owner_id, latest_version FROM store_apps WHERE app_id = ${m.id} FOR UPDATE`
        const app = existing[0]
        if (app && app.owner_id !== null && v.publishedBy !== null && app.owner_id !== v.publishedBy && !v.isAdmin) {
          return yield* new CatalogConflict({ reason: "app_owned", app: m.id, message: `the app id "${m.id}" belongs to another publisher` })
        }
        const inserted = yield* sql<VersionRowRaw>`
          INSERT INTO store_versions (app_id, version, digest, manifest, public_key, size, published_by)
          VALUES (${m.id}, ${m.version}, ${v.digest}, ${JSON.stringify(Manifest.encode(m))}::jsonb, ${v.publicKey}, ${v.size}, ${v.publishedBy})
          ON CONFLICT (app_id, version) DO NOTHING
          RETURNING *`
        if (inserted.length === 0) {
          return yield* new CatalogConflict({ reason: "version_exists", app: m.id, message: `${m.id} ${m.version} is already published; versions cannot change: publish a new version` })
        }
        const latest = !app || semver.gt(m.version, app.latest_version)
        if (!app) {
          yield* sql`INSERT INTO store_apps (app_id, owner_id, name, description, publisher, categories, latest_version, search)
            VALUES (${m.id}, ${v.publishedBy}, ${m.name}, ${m.description}, ${m.publisher}, ${JSON.stringify(m.categories)}::jsonb, ${m.version}, ${searchText(m)})`
        } else if (latest) {
          yield* sql`UPDATE store_apps SET name = ${m.name}, description = ${m.description}, publisher = ${m.publisher},
            categories = ${JSON.stringify(m.categories)}::jsonb, latest_version = ${m.version}, search = ${searchText(m)},
            owner_id = COALESCE(owner_id, ${v.publishedBy}), updated_at = now()
            WHERE app_id = ${m.id}`
        } else {
          yield* sql`UPDATE store_apps SET owner_id = COALESCE(owner_id, ${v.publishedBy}), updated_at = now() WHERE app_id = ${m.id}`
        }
        return versionOf(inserted[0]!)
      })),
    search: ({ category, limit, offset, q }) =>
      Effect.gen(function*() {
        const text = (q ?? "").trim()
        const where = sql.and([
          ...(text.length > 0 ? [sql`search LIKE ${likePattern(text)}`] : []),
          ...(category ? [sql`categories @> ${JSON.stringify([category])}::jsonb`] : [])
        ])
        const rows = yield* sql<AppRowRaw & { total: unknown }>`
          SELECT *, count(*) OVER () AS total FROM store_apps WHERE ${where}
          ORDER BY name, app_id LIMIT ${limit} OFFSET ${offset}`
        const total = rows.length > 0
          ? Number(rows[0]!.total)
          : Number((yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM store_apps WHERE ${where}`)[0]!.n)
        return { apps: rows.map(appOf), total }
      }),
    app: (appId) =>
      Effect.gen(function*() {
        const rows = yield* sql<AppRowRaw>`SELECT * FROM store_apps WHERE app_id = ${appId}`
        if (rows.length === 0) return yield* new CatalogNotFound({ what: "app", app: appId, message: `the store has no app "${appId}"` })
        return { app: appOf(rows[0]!), versions: yield* versions(appId) }
      }),
    version: (appId, version) =>
      Effect.flatMap(sql<VersionRowRaw>`SELECT * FROM store_versions WHERE app_id = ${appId} AND version = ${version}`, (rows) =>
        rows.length === 0
          ? Effect.fail(new CatalogNotFound({ what: "version", app: appId, version, message: `the store has no version ${version} of "${appId}"` }))
          : Effect.succeed(versionOf(rows[0]!))),
    hasVersion: (appId, version) =>
      Effect.map(sql`SELECT 1 FROM store_versions WHERE app_id = ${appId} AND version = ${version}`, (rows) => rows.length > 0),
    installs: Effect.map(sql<InstallRowRaw>`SELECT * FROM store_installs ORDER BY app_id`, (rows) => rows.map(installOf)),
    install: (appId) =>
      Effect.map(sql<InstallRowRaw>`SELECT * FROM store_installs WHERE app_id = ${appId}`, (rows) => Option.map(Option.fromNullable(rows[0]), installOf)),
    generation: Effect.map(sql<{ generation: unknown }>`SELECT generation FROM store_generation WHERE id = 1`, (rows) => Number(rows[0]?.generation ?? 0)),
    putInstall: (i) =>
      sql.withTransaction(Effect.zipRight(
        sql`INSERT INTO store_installs (app_id, version, digest, manifest, installed_by)
          VALUES (${i.appId}, ${i.version}, ${i.digest}, ${JSON.stringify(Manifest.encode(i.manifest))}::jsonb, ${i.installedBy})
          ON CONFLICT (app_id) DO UPDATE SET version = EXCLUDED.version, digest = EXCLUDED.digest, manifest = EXCLUDED.manifest,
            pending = NULL, updated_at = now()`,
        bump
      )),
    setPending: (appId, pending) =>
      sql.withTransaction(Effect.zipRight(
        sql`UPDATE store_installs SET pending = ${
          pending === null
            ? null
            : JSON.stringify({
              version: pending.version,
              digest: pending.digest,
              manifest: Manifest.encode(pending.manifest),
              diff: pending.diff,
              requested_by: pending.requestedBy,
              requested_at: pending.requestedAt.toISOString()
            } satisfies PendingJson)
        }::jsonb, updated_at = now() WHERE app_id = ${appId}`,
        bump
      )),
    setConfig: (appId, values) =>
      sql.withTransaction(Effect.zipRight(
        sql`UPDATE store_installs SET config = ${values.config}, config_keys = ${JSON.stringify(values.configKeys)}::jsonb,
          secrets = ${values.secrets}, secret_keys = ${JSON.stringify(values.secretKeys)}::jsonb, updated_at = now()
          WHERE app_id = ${appId}`,
        bump
      )),
    deleteInstall: (appId) =>
      sql.withTransaction(Effect.gen(function*() {
        const rows = yield* sql`DELETE FROM store_installs WHERE app_id = ${appId} RETURNING app_id`
        if (rows.length > 0) yield* bump
        return rows.length > 0
      }))
  }
  return service
})

/** The catalog in the runtime's database. */
export const layer: Layer.Layer<Catalog, never, SqlClient.SqlClient> = Layer.effect(Catalog, make)
