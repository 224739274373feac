/**
 * Backups as an operator takes them: data made through the gateway on Postgres (users, chats with
 * turns, credits spent) and blobs in the store; `troupe admin backup --to <dir>` (encrypted, with a
 * manifest of checksums); a restore refused while the database holds data; the database and blob
 * store wiped; `troupe admin restore --from <dir>`; the server started again reads every chat and
 * the ledger balances. A damaged backup is refused by its checksum, a wrong key by the manifest.
 * The embedded database's path (PGlite's dump) is checked in-process. The same round trip with the
 * blob store and the backups on S3 (s3rver): `--to s3://bucket/prefix`, `--from s3://…`.
 */
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3"
import { PGlite } from "@electric-sql/pglite"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import Pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { onboard, readEvents } from "../gateway/testing/flows.ts"
import { request, startServer } from "../gateway/testing/server.ts"
import * as Backup from "../runtime/Backup.ts"
import * as BlobStore from "../runtime/BlobStore.ts"
import { spawnTroupe } from "../runtime/testing/process.ts"
import { startS3 } from "../runtime/testing/s3.ts"
import { createTestDatabase } from "../runtime/testing/services.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
const dirs: Array<string> = []
const tempDir = (label: string) => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), `troupe-${label}-`))
  dirs.push(dir)
  return dir
}
const backupKey = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString("base64")

beforeAll(async () => {
  db = await createTestDatabase("backup")
}, 60_000)
afterAll(async () => {
  await db?.drop()
  for (const dir of dirs) NodeFs.rmSync(dir, { recursive: true, force: true })
})

const query = async <A>(sql: string): Promise<Array<A>> => {
  const client = new Pg.Client({ connectionString: db.url })
  await client.connect()
  try {
    return (await client.query(sql)).rows as Array<A>
  } finally {
    await client.end()
  }
}

const admin = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const proc = spawnTroupe(["admin", ...args], { TROUPE_LOG_LEVEL: "error", ...env })
  const code = await proc.exited
  return { code, stdout: proc.stdout(), stderr: proc.stderr() }
}

describe("backup and restore", () => {
  it("backs up, refuses a database with data, restores after a wipe: chats readable, ledger balanced; a damaged backup is refused", async () => {
    const masterKey = globalThis.crypto.getRandomValues(new Uint8Array(32))
    const dataDir = tempDir("backup-data")
    const target = tempDir("backup-target")
    // data made
    const server = await startServer({ databaseUrl: db.url, dataDir, masterKey, settings: { signup: { _tag: "Open" }, startingCredits: 1000 } })
    const users: Array<{ name: string; chats: Array<{ id: string; texts: Array<string> }>; credits: unknown }> = []
    try {
      for (const name of ["bk-ada", "bk-bob"]) {
        const user = await onboard(server, name)
        const chats: Array<{ id: string; texts: Array<string> }> = []
        for (let c = 0; c < 2; c++) {
          const chat = await request(server, "POST", "/v1/chats", { token: user.access, body: { title: `${name} ${c}` } })
          expect(chat.status).toBe(201)
          const posted = await request(server, "POST", `/v1/chats/${chat.body.id}/messages`, { token: user.access, body: { client_message_id: `m${c}`, text: `note ${name} ${c}` } })
          expect(posted.status).toBe(202)
          await readEvents(server, `/v1/chats/${chat.body.id}/events`, user.access, (es) =>
            es.some((e) => e.data.turn_id === posted.body.turn_id && ["done", "error", "cancelled"].includes(e.event)))
          const got = await request(server, "GET", `/v1/chats/${chat.body.id}`, { token: user.access })
          chats.push({ id: chat.body.id, texts: (got.body.messages as Array<{ text: string }>).map((m) => m.text) })
        }
        users.push({ name, chats, credits: (await request(server, "GET", "/v1/credits", { token: user.access })).body })
      }
    } finally {
      await server.close()
    }
    const blobs = BlobStore.makeFilesystem(NodePath.join(dataDir, "blobs"))
    const blobBytes = new Uint8Array(300_000).map((_, i) => (i * 7) % 256)
    await Effect.runPromise(Effect.all([blobs.put("uploads/a/one.bin", blobBytes, { contentType: "application/x-test" }), blobs.put("exports/two.txt", new TextEncoder().encode("two"))]))
    const env = { DATABASE_URL: db.url, TROUPE_DATA_DIR: dataDir, TROUPE_BACKUP_KEY: backupKey }

    // backup
    const taken = await admin(["backup", "--to", target], env)
    expect(taken.code, taken.stderr).toBe(0)
    expect(taken.stdout).toMatch(/Backup troupe-\d{8}T\d{6}Z written/)
    expect(taken.stderr).toMatch(/blobs\s+\[#+\] 100% 2\/2/)
    const [id] = NodeFs.readdirSync(target)
    const manifest = JSON.parse(NodeFs.readFileSync(NodePath.join(target, id!, "manifest.json"), "utf8")) as Backup.Manifest
    expect(manifest).toMatchObject({ format: "troupe-backup/1", database: { kind: "postgres" }, blobs: 2 })
    expect(manifest.files.map((f) => f.name).sort()).toEqual(["blobs.enc", "database.enc"])
    // encrypted: no message text, no blob bytes in the clear
    for (const f of manifest.files) {
      const bytes = NodeFs.readFileSync(NodePath.join(target, id!, f.name))
      expect(bytes.subarray(0, 5).toString()).toBe("TRBK1")
      expect(bytes.includes(Buffer.from("credit_ledger"))).toBe(false)
      expect(bytes.includes(Buffer.from("exports/two.txt"))).toBe(false)
    }

    // a restore into a database that holds data is refused
    const refused = await admin(["restore", "--from", target], env)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/database is not empty.*--force/)

    // wipe, restore (the newest backup under the directory), read it all back
    await query("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    NodeFs.rmSync(NodePath.join(dataDir, "blobs"), { recursive: true, force: true })
    const restored = await admin(["restore", "--from", target], env)
    expect(restored.code, restored.stderr).toBe(0)
    expect(restored.stdout).toMatch(new RegExp(`Restored backup ${id}`))
    const back = await startServer({ databaseUrl: db.url, dataDir, masterKey, settings: { signup: { _tag: "Open" }, startingCredits: 1000 } })
    try {
      for (const user of users) {
        const login = await request(back, "POST", "/v1/auth/login", { body: { login: user.name, password: "a long password 1" } })
        expect(login.status).toBe(200)
        const token = login.body.access_token as string
        const list = await request(back, "GET", "/v1/chats", { token })
        expect((list.body.chats as Array<{ id: string }>).map((c) => c.id).sort()).toEqual(user.chats.map((c) => c.id).sort())
        for (const chat of user.chats) {
          const got = await request(back, "GET", `/v1/chats/${chat.id}`, { token })
          expect(got.status).toBe(200)
          expect((got.body.messages as Array<{ text: string }>).map((m) => m.text)).toEqual(chat.texts)
        }
        expect((await request(back, "GET", "/v1/credits", { token })).body).toEqual(user.credits)
      }
    } finally {
      await back.close()
    }
    const [ledger] = await query<{ total: string }>("SELECT COALESCE(SUM(amount), 0) AS total FROM credit_ledger")
    expect(Number(ledger!.total)).toBe(0)
    expect(await query(`SELECT a.account_id FROM credit_accounts a LEFT JOIN (SELECT account_id, SUM(amount) FILTER (WHERE bucket = 'available') AS available FROM credit_ledger GROUP BY account_id) l
      ON l.account_id = a.account_id WHERE a.available <> COALESCE(l.available, 0)`)).toEqual([])
    const restoredBlob = await Effect.runPromise(blobs.get("uploads/a/one.bin"))
    expect(Option.isSome(restoredBlob) && Buffer.from(restoredBlob.value).equals(Buffer.from(blobBytes))).toBe(true)
    expect(Option.map(await Effect.runPromise(blobs.head("uploads/a/one.bin")), (i) => i.contentType)).toEqual(Option.some("application/x-test"))

    // a damaged backup is refused by its checksum, before anything is touched
    const damaged = NodePath.join(target, id!, "database.enc")
    const bytes = NodeFs.readFileSync(damaged)
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff
    NodeFs.writeFileSync(damaged, bytes)
    const corrupt = await admin(["restore", "--force", "--from", NodePath.join(target, id!)], env)
    expect(corrupt.code).toBe(1)
    expect(corrupt.stderr).toMatch(/database\.enc fails its checksum/)
    // the wrong key: the manifest does not verify
    const wrongKey = await admin(["restore", "--force", "--from", target], { ...env, TROUPE_BACKUP_KEY: Buffer.alloc(32, 1).toString("base64") })
    expect(wrongKey.code).toBe(1)
    expect(wrongKey.stderr).toMatch(/manifest does not verify/)
    // the database still reads as restored
    expect(Number((await query<{ n: string }>("SELECT count(*) AS n FROM chat_turns"))[0]!.n)).toBeGreaterThanOrEqual(4)
  }, 300_000)

  it("backs up and restores the embedded database (PGlite's dump), with retention", async () => {
    const dataDir = tempDir("backup-embedded")
    const target = tempDir("backup-embedded-target")
    const dbDir = NodePath.join(dataDir, "db")
    const first = await PGlite.create(dbDir)
    await first.exec("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'kept'), (2, 'also kept')")
    await first.close()
    const settings: Backup.Settings = {
      database: { _tag: "Embedded", dataDir: dbDir },
      blobStore: { _tag: "Filesystem", root: NodePath.join(dataDir, "blobs") },
      key: Buffer.from(backupKey, "base64"),
      version: "test"
    }
    const location = Backup.parseLocation(target)
    const manifest = await Effect.runPromise(Backup.backup(settings, location))
    expect(manifest.database.kind).toBe("embedded")
    const refused = await Effect.runPromise(Effect.flip(Backup.restore(settings, location, { force: false })))
    expect(refused.message).toMatch(/database is not empty/)
    NodeFs.rmSync(dbDir, { recursive: true, force: true })
    await Effect.runPromise(Backup.restore(settings, location, { force: false }))
    const back = await PGlite.create(dbDir)
    expect((await back.query<{ body: string }>("SELECT body FROM notes ORDER BY id")).rows.map((r) => r.body)).toEqual(["kept", "also kept"])
    await back.close()
    // retention keeps the newest
    await new Promise((r) => setTimeout(r, 1100))
    await Effect.runPromise(Backup.backup(settings, location))
    expect(await Effect.runPromise(Backup.list(location, settings.blobStore))).toHaveLength(2)
    const pruned = await Effect.runPromise(Backup.prune(location, settings.blobStore, 1))
    expect(pruned).toEqual([manifest.id])
    expect(await Effect.runPromise(Backup.list(location, settings.blobStore))).toHaveLength(1)
  }, 120_000)

  it("backs up to s3://bucket/prefix and restores from it, blobs on S3 too; a damaged object is refused by its checksum", async () => {
    const s3 = await startS3()
    const s3db = await createTestDatabase("backup_s3")
    try {
      const masterKey = globalThis.crypto.getRandomValues(new Uint8Array(32))
      const blobBucket = "troupe-blobs"
      const s3env = s3.env(blobBucket)
      await s3.client.send(new CreateBucketCommand({ Bucket: "troupe-backups" }))
      const sql = async <A>(text: string): Promise<Array<A>> => {
        const client = new Pg.Client({ connectionString: s3db.url })
        await client.connect()
        try {
          return (await client.query(text)).rows as Array<A>
        } finally {
          await client.end()
        }
      }
      const blobKeys = async () => ((await s3.client.send(new ListObjectsV2Command({ Bucket: blobBucket }))).Contents ?? []).map((o) => o.Key!).sort()
      // data: a chat with a turn on Postgres, an object in the S3 blob store
      const server = await startServer({ databaseUrl: s3db.url, masterKey, env: s3env, settings: { signup: { _tag: "Open" }, startingCredits: 1000 } })
      let chatId = ""
      let texts: Array<string> = []
      let credits: unknown
      try {
        const user = await onboard(server, "s3-ada")
        const chat = await request(server, "POST", "/v1/chats", { token: user.access, body: { title: "on s3" } })
        chatId = chat.body.id as string
        const posted = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token: user.access, body: { client_message_id: "s1", text: "kept on s3" } })
        expect(posted.status).toBe(202)
        await readEvents(server, `/v1/chats/${chatId}/events`, user.access, (es) => es.some((e) => e.data.turn_id === posted.body.turn_id && e.event === "done"))
        texts = ((await request(server, "GET", `/v1/chats/${chatId}`, { token: user.access })).body.messages as Array<{ text: string }>).map((m) => m.text)
        credits = (await request(server, "GET", "/v1/credits", { token: user.access })).body
      } finally {
        await server.close()
      }
      expect(texts).toContain("kept on s3")
      const blobBytes = new Uint8Array(100_000).map((_, i) => (i * 13) % 256)
      await s3.client.send(new PutObjectCommand({ Bucket: blobBucket, Key: "exports/s3.bin", Body: blobBytes, ContentType: "application/x-test" }))
      const blobsBefore = await blobKeys()
      const env = { DATABASE_URL: s3db.url, TROUPE_DATA_DIR: tempDir("backup-s3-data"), TROUPE_BACKUP_KEY: backupKey, ...s3env }

      const taken = await admin(["backup", "--to", "s3://troupe-backups/nightly"], env)
      expect(taken.code, taken.stderr).toBe(0)
      const id = /Backup (troupe-\d{8}T\d{6}Z) written/.exec(taken.stdout)?.[1]
      expect(id, taken.stdout).toBeDefined()
      const stored = ((await s3.client.send(new ListObjectsV2Command({ Bucket: "troupe-backups", Prefix: "nightly/" }))).Contents ?? []).map((o) => o.Key!).sort()
      expect(stored).toEqual([`nightly/${id}/blobs.enc`, `nightly/${id}/database.enc`, `nightly/${id}/manifest.json`])

      // wipe the database and the blob store, restore the newest backup under the prefix
      await sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
      for (const key of blobsBefore) await s3.client.send(new DeleteObjectCommand({ Bucket: blobBucket, Key: key }))
      expect(await blobKeys()).toEqual([])
      const restored = await admin(["restore", "--from", "s3://troupe-backups/nightly"], env)
      expect(restored.code, restored.stderr).toBe(0)
      expect(restored.stdout).toMatch(new RegExp(`Restored backup ${id}`))
      expect(await blobKeys()).toEqual(blobsBefore)
      const blob = await s3.client.send(new GetObjectCommand({ Bucket: blobBucket, Key: "exports/s3.bin" }))
      expect(Buffer.from(await blob.Body!.transformToByteArray()).equals(Buffer.from(blobBytes))).toBe(true)
      const back = await startServer({ databaseUrl: s3db.url, masterKey, env: s3env, settings: { signup: { _tag: "Open" }, startingCredits: 1000 } })
      try {
        const login = await request(back, "POST", "/v1/auth/login", { body: { login: "s3-ada", password: "a long password 1" } })
        expect(login.status).toBe(200)
        const token = login.body.access_token as string
        const got = await request(back, "GET", `/v1/chats/${chatId}`, { token })
        expect(got.status).toBe(200)
        expect((got.body.messages as Array<{ text: string }>).map((m) => m.text)).toEqual(texts)
        expect((await request(back, "GET", "/v1/credits", { token })).body).toEqual(credits)
      } finally {
        await back.close()
      }
      const [ledger] = await sql<{ total: string }>("SELECT COALESCE(SUM(amount), 0) AS total FROM credit_ledger")
      expect(Number(ledger!.total)).toBe(0)

      // one byte changed in the stored object: refused by its checksum, nothing touched
      const key = `nightly/${id}/database.enc`
      const bytes = Buffer.from(await (await s3.client.send(new GetObjectCommand({ Bucket: "troupe-backups", Key: key }))).Body!.transformToByteArray())
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01
      await s3.client.send(new PutObjectCommand({ Bucket: "troupe-backups", Key: key, Body: bytes }))
      const corrupt = await admin(["restore", "--force", "--from", `s3://troupe-backups/nightly/${id}`], env)
      expect(corrupt.code).toBe(1)
      expect(corrupt.stderr).toMatch(/database\.enc fails its checksum/)
      expect(Number((await sql<{ n: string }>("SELECT count(*) AS n FROM chat_turns"))[0]!.n)).toBeGreaterThanOrEqual(1)

      // backups kept in the blob store's own bucket are not backed up again by the next one
      for (let i = 0; i < 2; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 1100))
        const again = await admin(["backup", "--to", `s3://${blobBucket}/backups`], env)
        expect(again.code, again.stderr).toBe(0)
      }
      const manifests = (await blobKeys()).filter((k) => k.endsWith("/manifest.json"))
      expect(manifests).toHaveLength(2)
      const second = JSON.parse(await (await s3.client.send(new GetObjectCommand({ Bucket: blobBucket, Key: manifests[1]! }))).Body!.transformToString()) as Backup.Manifest
      expect(second.blobs).toBe(blobsBefore.length)
    } finally {
      await s3db.drop()
      await s3.close()
    }
  }, 400_000)
})
