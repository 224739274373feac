/**
 * The uploads service through the real `troupe start` role (gateway, entities, uploads routes) on
 * real Postgres, with the filesystem blob store: harmful files refused with their codes and nothing
 * stored, images/PDF/text processed to `ready` with previews (no GPS left), downloads byte for byte
 * with ranges, 404 for others, quota and size limits, attachments read by the mate, shredding.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import sharp from "sharp"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "../runtime/testing/services.ts"
import { onboard, readEvents } from "../gateway/testing/flows.ts"
import { initialInvite, request, startServer, type TestServer } from "../gateway/testing/server.ts"
import * as Client from "./testing/client.ts"
import { settled, uploadMultipart } from "./testing/client.ts"
import * as Files from "./testing/files.ts"

let server: TestServer
let db: { url: string; drop: () => Promise<void> }
let client: pg.Client
let alice: { access: string; userId: string }
let bob: { access: string; userId: string }

const uploadRaw = (token: string, bytes: Uint8Array, name: string, type: string) => Client.uploadRaw(server, token, bytes, name, type)

const blobFiles = () => {
  const dir = NodePath.join(server.dataDir, "blobs", "data")
  if (!NodeFs.existsSync(dir)) return []
  return NodeFs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => NodePath.join(e.parentPath, e.name))
}

const rows = async () => (await client.query("SELECT upload_id, status FROM uploads")).rows

beforeAll(async () => {
  db = await createTestDatabase("up")
  server = await startServer({ databaseUrl: db.url, settings: { signup: { _tag: "Open" } }, uploads: { UPLOADS_MAX_FILE_SIZE: "8MB", UPLOADS_USER_QUOTA: "12MB", UPLOADS_MAX_PDF_PAGES: "3", UPLOADS_MAX_PIXELS: "40000000" } })
  client = new pg.Client({ connectionString: db.url })
  await client.connect()
  alice = await onboard(server, "alice", initialInvite(server.dataDir))
  bob = await onboard(server, "bob")
}, 120_000)

afterAll(async () => {
  await client?.end()
  await server?.close()
  await db?.drop()
})

describe("harmful files are refused with their own code, and nothing is stored", () => {
  const cases: ReadonlyArray<readonly [string, () => Promise<{ bytes: Uint8Array; name: string; type: string }>, number, string]> = [
    ["SVG", async () => ({ bytes: new TextEncoder().encode('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'), name: "x.svg", type: "image/svg+xml" }), 415, "svg_refused"],
    ["a gzip archive", async () => ({ bytes: new Uint8Array((await import("node:zlib")).gzipSync(Buffer.from("hello archive"))), name: "a.gz", type: "application/gzip" }), 415, "archive_refused"],
    ["an ELF executable", async () => ({ bytes: new Uint8Array(NodeFs.readFileSync("/bin/true")), name: "true", type: "application/octet-stream" }), 415, "executable_refused"],
    ["a PNG declared as JPEG", async () => ({ bytes: await Files.png(), name: "photo.jpg", type: "image/jpeg" }), 415, "type_mismatch"],
    ["a PDF named .png", async () => ({ bytes: await Files.pdf("hi"), name: "picture.png", type: "application/octet-stream" }), 415, "type_mismatch"],
    ["a pixel bomb (50000×50000 in the header)", async () => ({ bytes: Files.pngBomb(50_000, 50_000), name: "bomb.png", type: "image/png" }), 422, "image_too_large"],
    ["an encrypted PDF", async () => ({ bytes: await Files.pdfEncrypted(), name: "locked.pdf", type: "application/pdf" }), 422, "pdf_encrypted"],
    ["a PDF with JavaScript", async () => ({ bytes: await Files.pdfWithJavaScript(), name: "js.pdf", type: "application/pdf" }), 422, "pdf_javascript"],
    ["a PDF with a launch action", async () => ({ bytes: await Files.pdfWithLaunch(), name: "launch.pdf", type: "application/pdf" }), 422, "pdf_launch_action"],
    ["a PDF with too many pages", async () => ({ bytes: await Files.pdf("long", 4), name: "long.pdf", type: "application/pdf" }), 422, "pdf_too_many_pages"],
    ["random bytes", async () => ({ bytes: new Uint8Array(Buffer.from([0, 1, 2, 3, 255, 254, 0, 0, 9])), name: "blob.bin", type: "application/octet-stream" }), 415, "unsupported_type"]
  ]
  for (const [what, make, status, code] of cases) {
    it(`${what}: ${status} ${code}`, async () => {
      const file = await make()
      const r = await uploadMultipart(server, alice.access, file.bytes, file.name, file.type)
      expect(r.status, JSON.stringify(r.body)).toBe(status)
      expect(r.body.error.code).toBe(code)
      expect(await rows()).toEqual([])
      expect(blobFiles()).toEqual([])
      expect(NodeFs.readdirSync(NodePath.join(server.dataDir, "uploads-tmp"))).toEqual([])
    })
  }

  it("a file over the size limit: 413 file_too_large, nothing kept (multipart and raw)", async () => {
    const big = new Uint8Array(9 * 1024 * 1024).fill(65)
    const r = await uploadMultipart(server, alice.access, big, "big.txt", "text/plain")
    expect(r.status).toBe(413)
    expect(r.body.error.code).toBe("file_too_large")
    const raw = await uploadRaw(alice.access, big, "big.txt", "text/plain")
    expect(raw.status).toBe(413)
    expect(await rows()).toEqual([])
    expect(NodeFs.readdirSync(NodePath.join(server.dataDir, "uploads-tmp"))).toEqual([])
  })

  it("no credentials: 401; an API key without the chats scope: 403", async () => {
    const r = await fetch(`${server.url}/v1/uploads`, { method: "POST", headers: { "content-type": "text/plain" }, body: "hi" })
    expect(r.status).toBe(401)
    const key = await request(server, "POST", "/v1/api_keys", { token: alice.access, body: { name: "reader", scopes: ["read"] } })
    expect(key.status, JSON.stringify(key.body)).toBe(201)
    const refused = await uploadRaw(key.body.key, new TextEncoder().encode("hi"), "a.txt", "text/plain")
    expect(refused.status).toBe(403)
    expect(refused.body.error.code).toBe("insufficient_scope")
  })
})

describe("files go processing → ready, and come back to their owner only", () => {
  it("a JPEG with EXIF GPS: ready, a WebP preview upright and without GPS, the original byte for byte", async () => {
    const jpeg = await Files.jpegWithGps()
    expect(Files.hasGpsIfd((await sharp(jpeg).metadata()).exif)).toBe(true)
    const r = await uploadMultipart(server, alice.access, jpeg, "paris.jpg", "image/jpeg")
    expect(r.status, JSON.stringify(r.body)).toBe(202)
    expect(r.body.status).toBe("processing")
    const done = await settled(server, alice.access, r.body.id)
    expect(done).toMatchObject({ status: "ready", content_type: "image/jpeg", size: jpeg.byteLength, preview: true, width: 300, height: 200 })

    const preview = await fetch(`${server.url}/v1/files/${r.body.id}/preview`, { headers: { authorization: `Bearer ${alice.access}` } })
    expect(preview.status).toBe(200)
    expect(preview.headers.get("content-type")).toBe("image/webp")
    const previewBytes = Buffer.from(await preview.arrayBuffer())
    const meta = await sharp(previewBytes).metadata()
    expect(meta.format).toBe("webp")
    // orientation applied: the 300×200 stored image is seen 200×300
    expect([meta.width, meta.height]).toEqual([200, 300])
    expect(meta.exif).toBeUndefined()
    expect(previewBytes.includes(Buffer.from("GPS"))).toBe(false)
    expect(previewBytes.includes(Buffer.from("TroupeCam"))).toBe(false)

    const original = await fetch(`${server.url}/v1/files/${r.body.id}`, { headers: { authorization: `Bearer ${alice.access}` } })
    expect(original.status).toBe(200)
    expect(original.headers.get("x-content-type-options")).toBe("nosniff")
    expect(original.headers.get("content-security-policy")).toContain("sandbox")
    expect(original.headers.get("content-disposition")).toMatch(/^inline/)
    expect(Buffer.from(await original.arrayBuffer()).equals(Buffer.from(jpeg))).toBe(true)

    // stored encrypted: the blob is not the file
    const stored = blobFiles().filter((f) => f.includes(r.body.id))
    expect(stored.length).toBe(2)
    for (const f of stored) expect(NodeFs.readFileSync(f).includes(Buffer.from(jpeg.subarray(0, 64)))).toBe(false)

    // another user: 404 for everything
    for (const path of [`/v1/uploads/${r.body.id}`, `/v1/files/${r.body.id}`, `/v1/files/${r.body.id}/preview`]) {
      expect((await fetch(server.url + path, { headers: { authorization: `Bearer ${bob.access}` } })).status).toBe(404)
    }
    // the same bytes again: the same upload (de-duplicated per user)
    const again = await uploadMultipart(server, alice.access, jpeg, "again.jpg", "image/jpeg")
    expect(again.status).toBe(200)
    expect(again.body).toMatchObject({ id: r.body.id, status: "ready", duplicate: true })
    // ...but not across users
    const bobs = await uploadMultipart(server, bob.access, jpeg, "paris.jpg", "image/jpeg")
    expect(bobs.status).toBe(202)
    expect(bobs.body.id).not.toBe(r.body.id)
  })

  it("a PNG: ready with a preview", async () => {
    const r = await uploadRaw(alice.access, await Files.png(), "dot.png", "image/png")
    expect(r.status).toBe(202)
    const done = await settled(server, alice.access, r.body.id)
    expect(done).toMatchObject({ status: "ready", content_type: "image/png", preview: true })
    const preview = await fetch(`${server.url}/v1/files/${r.body.id}/preview`, { headers: { authorization: `Bearer ${alice.access}` } })
    expect((await sharp(Buffer.from(await preview.arrayBuffer())).metadata()).width).toBe(64)
  })

  it("a PDF: ready, page 1 rendered as a WebP preview, served inline", async () => {
    const r = await uploadMultipart(server, alice.access, await Files.pdf("Quarterly figures: 42 widgets", 2), "report.pdf", "application/pdf")
    expect(r.status, JSON.stringify(r.body)).toBe(202)
    const done = await settled(server, alice.access, r.body.id)
    expect(done).toMatchObject({ status: "ready", content_type: "application/pdf", preview: true, pages: 2 })
    const preview = await fetch(`${server.url}/v1/files/${r.body.id}/preview`, { headers: { authorization: `Bearer ${alice.access}` } })
    const meta = await sharp(Buffer.from(await preview.arrayBuffer())).metadata()
    expect(meta.format).toBe("webp")
    expect(Math.max(meta.width!, meta.height!)).toBeLessThanOrEqual(1024)
    expect(meta.width! / meta.height!).toBeCloseTo(400 / 300, 1)
    const file = await fetch(`${server.url}/v1/files/${r.body.id}`, { headers: { authorization: `Bearer ${alice.access}` } })
    expect(file.headers.get("content-disposition")).toMatch(/^inline/)
  })

  it("a text file: ready, downloaded as an attachment, with ranges", async () => {
    const text = "hello from a text file\n".repeat(5000)
    const r = await uploadMultipart(server, alice.access, new TextEncoder().encode(text), "notes.txt", "text/plain")
    expect(r.status).toBe(202)
    expect(await settled(server, alice.access, r.body.id)).toMatchObject({ status: "ready", content_type: "text/plain", preview: false })
    const whole = await fetch(`${server.url}/v1/files/${r.body.id}`, { headers: { authorization: `Bearer ${alice.access}` } })
    expect(whole.headers.get("content-disposition")).toBe(`attachment; filename="notes.txt"; filename*=UTF-8''notes.txt`)
    expect(await whole.text()).toBe(text)
    // a range across the 64 KiB chunk boundary, and a suffix range
    const part = await fetch(`${server.url}/v1/files/${r.body.id}`, { headers: { authorization: `Bearer ${alice.access}`, range: "bytes=65530-65545" } })
    expect(part.status).toBe(206)
    expect(part.headers.get("content-range")).toBe(`bytes 65530-65545/${text.length}`)
    expect(await part.text()).toBe(text.slice(65530, 65546))
    const tail = await fetch(`${server.url}/v1/files/${r.body.id}`, { headers: { authorization: `Bearer ${alice.access}`, range: "bytes=-10" } })
    expect(await tail.text()).toBe(text.slice(-10))
    const beyond = await fetch(`${server.url}/v1/files/${r.body.id}`, { headers: { authorization: `Bearer ${alice.access}`, range: `bytes=${text.length}-` } })
    expect(beyond.status).toBe(416)
  })

  it("the quota: a file that would go over it is refused with 413 quota_exceeded", async () => {
    const used = Number((await client.query("SELECT COALESCE(SUM(size),0) AS s FROM uploads WHERE owner_id = $1 AND status IN ('processing','ready')", [alice.userId])).rows[0].s)
    let left = 12 * 1024 * 1024 - used - 1000
    for (let n = 0; left > 0; n++) {
      const size = Math.min(7 * 1024 * 1024, left)
      const filled = await uploadRaw(alice.access, new Uint8Array(size).fill(97 + n), `fill${n}.txt`, "text/plain")
      expect(filled.status, JSON.stringify(filled.body)).toBe(202)
      left -= size
    }
    const first = { body: { id: (await client.query("SELECT upload_id FROM uploads WHERE name = 'fill0.txt'")).rows[0].upload_id } }
    const over = await uploadRaw(alice.access, new Uint8Array(4000).fill(67), "over.txt", "text/plain")
    expect(over.status).toBe(413)
    expect(over.body.error.code).toBe("quota_exceeded")
    // deleting a file frees its space
    expect((await request(server, "DELETE", `/v1/uploads/${first.body.id}`, { token: alice.access })).status).toBe(204)
    expect((await uploadRaw(alice.access, new Uint8Array(4000).fill(67), "over.txt", "text/plain")).status).toBe(202)
  })
})

describe("in chats", () => {
  it("a message with attachments: the chat hears attachment_ready, the mate gets the text; deleting the chat shreds the files", async () => {
    const chat = await request(server, "POST", "/v1/chats", { token: alice.access, body: { title: "files" } })
    expect(chat.status).toBe(201)
    const chatId = chat.body.id as string
    const note = await uploadMultipart(server, alice.access, new TextEncoder().encode("The launch code is PURPLE-WALRUS."), "secret.md", "text/markdown", { chat_id: chatId })
    const report = await uploadMultipart(server, alice.access, await Files.pdf("Revenue grew by 17 percent"), "q3.pdf", "application/pdf", { chat_id: chatId })
    expect(note.status).toBe(202)
    await settled(server, alice.access, note.body.id)
    await settled(server, alice.access, report.body.id)
    const { events } = await readEvents(server, `/v1/chats/${chatId}/events`, alice.access, (es) => es.filter((e) => e.event === "attachment_ready").length >= 2)
    expect(events.filter((e) => e.event === "attachment_ready").map((e) => e.data.upload_id).sort()).toEqual([note.body.id, report.body.id].sort())

    // someone else cannot attach alice's files, nor alice someone else's
    const foreign = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token: alice.access, body: { client_message_id: "m0", text: "x", attachments: ["fnotmine000000000000"] } })
    expect(foreign.status).toBe(404)
    expect(foreign.body.error.code).toBe("upload_not_found")

    const posted = await request(server, "POST", `/v1/chats/${chatId}/messages`, { token: alice.access, body: { client_message_id: "m1", text: "What do these say?", attachments: [note.body.id, report.body.id] } })
    expect(posted.status, JSON.stringify(posted.body)).toBe(202)
    const turn = await readEvents(server, `/v1/chats/${chatId}/events`, alice.access, (es) => es.some((e) => e.event === "done" || e.event === "error"))
    const said = turn.events.filter((e) => e.event === "delta").map((e) => e.data.text).join("")
    expect(said).toContain("PURPLE-WALRUS")
    expect(said).toContain("Revenue grew by 17 percent")

    expect((await request(server, "DELETE", `/v1/chats/${chatId}`, { token: alice.access })).status).toBe(204)
    for (const id of [note.body.id, report.body.id]) {
      expect((await request(server, "GET", `/v1/uploads/${id}`, { token: alice.access })).status).toBe(404)
      const row = (await client.query("SELECT status, wrapped_key, text_sealed FROM uploads WHERE upload_id = $1", [id])).rows[0]
      expect(row).toEqual({ status: "deleted", wrapped_key: null, text_sealed: null })
      expect(blobFiles().filter((f) => f.includes(id))).toEqual([])
    }
  })

  it("a public image answers anyone with a redirect to a signed URL, which expires", async () => {
    const r = await uploadMultipart(server, alice.access, await Files.png(), "avatar.png", "image/png", { public: "true" })
    expect(r.status).toBe(202)
    expect((await settled(server, alice.access, r.body.id)).public).toBe(true)
    const redirect = await fetch(`${server.url}/v1/files/${r.body.id}`, { redirect: "manual" })
    expect(redirect.status).toBe(302)
    const location = redirect.headers.get("location")!
    expect(location).toMatch(/\/v1\/files\/.+\/public\?expires=\d+&sig=/)
    const served = await fetch(location)
    expect(served.status).toBe(200)
    expect(served.headers.get("content-type")).toBe("image/png")
    expect(Buffer.from(await served.arrayBuffer()).equals(Buffer.from(await Files.png()))).toBe(true)
    expect((await fetch(location.replace(/sig=[^&]+/, "sig=forged"))).status).toBe(404)
    // only images may be public
    const text = await uploadMultipart(server, alice.access, new TextEncoder().encode("not a picture"), "a.txt", "text/plain", { public: "true" })
    expect(text.status).toBe(400)
    expect(text.body.error.code).toBe("public_images_only")
  })

  it("deleting the account destroys its uploads key: every file unreadable and its blobs gone", async () => {
    const carol = await onboard(server, "carol")
    const r = await uploadRaw(carol.access, new TextEncoder().encode("carol's diary"), "diary.txt", "text/plain")
    await settled(server, carol.access, r.body.id)
    expect(blobFiles().some((f) => f.includes(r.body.id))).toBe(true)
    expect((await request(server, "DELETE", "/v1/me", { token: carol.access })).status).toBe(204)
    const keys = await client.query("SELECT 1 FROM troupe_data_keys WHERE key_id = $1", [`uploads:${carol.userId}`])
    expect(keys.rowCount).toBe(0)
    expect(blobFiles().filter((f) => f.includes(r.body.id))).toEqual([])
  })
})
