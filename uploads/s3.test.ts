/**
 * Uploads on S3 (a real S3-compatible server, s3rver): files stored encrypted in the bucket, read
 * back byte for byte with ranges; a public image answered with a 302 to a presigned S3 URL; a
 * refused file leaves no object; deleting the chat removes its objects.
 */
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import S3rver from "s3rver"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { onboard } from "../gateway/testing/flows.ts"
import { initialInvite, request, startServer, type TestServer } from "../gateway/testing/server.ts"
import { settled, uploadMultipart } from "./testing/client.ts"
import * as Files from "./testing/files.ts"

const tmp = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-up-s3-"))
const bucket = "troupe-uploads"
let s3: S3rver
let s3Port = 0
let server: TestServer
let token: string
let client: S3Client

const objects = async () => {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }))
  return (listed.Contents ?? []).map((o) => o.Key!).filter((k) => k.startsWith("uploads/") || k.startsWith("public/"))
}

beforeAll(async () => {
  s3 = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: NodePath.join(tmp, "s3rver") })
  s3Port = (await s3.run()).port
  server = await startServer({
    env: { S3_ENDPOINT: `http://127.0.0.1:${s3Port}`, S3_BUCKET: bucket, S3_ACCESS_KEY_ID: "S3RVER", S3_SECRET_ACCESS_KEY: "S3RVER" },
    uploads: {}
  })
  client = new S3Client({ endpoint: `http://127.0.0.1:${s3Port}`, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } })
  token = (await onboard(server, "s3user", initialInvite(server.dataDir))).access
}, 120_000)

afterAll(async () => {
  client?.destroy()
  await server?.close()
  await s3?.close()
  NodeFs.rmSync(tmp, { recursive: true, force: true })
})

describe("uploads on S3", () => {
  it("a refused file leaves no object; a JPEG is stored encrypted and read back byte for byte, with ranges", async () => {
    const svg = await uploadMultipart(server, token, new TextEncoder().encode("<svg xmlns='http://www.w3.org/2000/svg'/>"), "x.svg", "image/svg+xml")
    expect(svg.body.error.code).toBe("svg_refused")
    expect(await objects()).toEqual([])

    const jpeg = await Files.jpegWithGps()
    const r = await uploadMultipart(server, token, jpeg, "photo.jpg", "image/jpeg")
    expect(r.status).toBe(202)
    const done = await settled(server, token, r.body.id)
    expect(done.status, JSON.stringify(done)).toBe("ready")
    expect((await objects()).sort()).toEqual([`uploads/${r.body.id}/file`, `uploads/${r.body.id}/preview`])
    // what the bucket holds is ciphertext, not the photo
    const held = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: `uploads/${r.body.id}/file` }))).Body!.transformToByteArray())
    expect(held.byteLength).toBeGreaterThan(jpeg.byteLength)
    expect(held.includes(Buffer.from(jpeg.subarray(0, 32)))).toBe(false)

    const back = await fetch(`${server.url}/v1/files/${r.body.id}`, { headers: { authorization: `Bearer ${token}` } })
    expect(Buffer.from(await back.arrayBuffer()).equals(Buffer.from(jpeg))).toBe(true)
    const part = await fetch(`${server.url}/v1/files/${r.body.id}`, { headers: { authorization: `Bearer ${token}`, range: "bytes=100-199" } })
    expect(part.status).toBe(206)
    expect(Buffer.from(await part.arrayBuffer()).equals(Buffer.from(jpeg.subarray(100, 200)))).toBe(true)
    const preview = await fetch(`${server.url}/v1/files/${r.body.id}/preview`, { headers: { authorization: `Bearer ${token}` } })
    expect(preview.headers.get("content-type")).toBe("image/webp")
  })

  it("a public image: 302 to a presigned S3 URL anyone can fetch", async () => {
    const png = await Files.png()
    const r = await uploadMultipart(server, token, png, "avatar.png", "image/png", { public: "true" })
    expect(r.status).toBe(202)
    await settled(server, token, r.body.id)
    const redirect = await fetch(`${server.url}/v1/files/${r.body.id}`, { redirect: "manual" })
    expect(redirect.status).toBe(302)
    const location = redirect.headers.get("location")!
    expect(location).toContain(`127.0.0.1:${s3Port}`)
    expect(location).toContain("X-Amz-Signature=")
    expect(location).toMatch(/X-Amz-Expires=300\b/)
    const fetched = await fetch(location)
    expect(fetched.status).toBe(200)
    expect(Buffer.from(await fetched.arrayBuffer()).equals(Buffer.from(png))).toBe(true)
  })

  it("deleting the chat removes its files' objects", async () => {
    const chat = await request(server, "POST", "/v1/chats", { token, body: {} })
    const r = await uploadMultipart(server, token, new TextEncoder().encode("chat notes"), "n.txt", "text/plain", { chat_id: chat.body.id })
    await settled(server, token, r.body.id)
    expect((await objects()).some((k) => k.includes(r.body.id))).toBe(true)
    expect((await request(server, "DELETE", `/v1/chats/${chat.body.id}`, { token })).status).toBe(204)
    expect((await objects()).some((k) => k.includes(r.body.id))).toBe(false)
  })
})
