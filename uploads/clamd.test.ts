/**
 * The malware scan against a real clamd (Debian's clamav-daemon, started here with a signature
 * database this test writes): the EICAR test file is refused with `malware_detected` and nothing
 * is stored; a clean file passes; with `TROUPE_UPLOADS_SCAN=required` and clamd down, an upload
 * answers 503 `scanner_unavailable`.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "../runtime/testing/services.ts"
import { onboard } from "../gateway/testing/flows.ts"
import { initialInvite, startServer, type TestServer } from "../gateway/testing/server.ts"
import * as Clamd from "./Clamd.ts"
import { startClamd, type TestClamd } from "./testing/clamd.ts"
import { eicar } from "./testing/files.ts"
import { settled, uploadMultipart } from "./testing/client.ts"

let clamd: TestClamd
let server: TestServer
let token: string
let db: { url: string; drop: () => Promise<void> }

const stored = (s: TestServer) => {
  const dir = NodePath.join(s.dataDir, "blobs", "data")
  return NodeFs.existsSync(dir) ? NodeFs.readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith("file")) : []
}

beforeAll(async () => {
  clamd = await startClamd()
  db = await createTestDatabase("clam")
  server = await startServer({ databaseUrl: db.url, uploads: { CLAMD_HOST: "127.0.0.1", CLAMD_PORT: String(clamd.port), TROUPE_UPLOADS_SCAN: "required" } })
  token = (await onboard(server, "scanned", initialInvite(server.dataDir))).access
}, 120_000)

afterAll(async () => {
  await server?.close()
  await clamd?.stop()
  await db?.drop()
})

describe("clamd INSTREAM", () => {
  it("the client finds EICAR in a file and passes a clean one", async () => {
    const dir = NodeFs.mkdtempSync(NodePath.join(server.dataDir, "scan-"))
    NodeFs.writeFileSync(NodePath.join(dir, "eicar.txt"), eicar)
    NodeFs.writeFileSync(NodePath.join(dir, "clean.txt"), "nothing to see here\n".repeat(10_000))
    const address = { _tag: "Tcp" as const, host: "127.0.0.1", port: clamd.port }
    expect(await Effect.runPromise(Clamd.scanFile(address, NodePath.join(dir, "eicar.txt"), 10_000))).toEqual({ clean: false, signature: "Troupe.Test.EICAR.UNOFFICIAL" })
    expect(await Effect.runPromise(Clamd.scanFile(address, NodePath.join(dir, "clean.txt"), 10_000))).toEqual({ clean: true })
  })

  it("an upload carrying EICAR: 422 malware_detected, nothing stored; a clean one is scanned and kept", async () => {
    const bad = await uploadMultipart(server, token, new TextEncoder().encode(eicar), "readme.txt", "text/plain")
    expect(bad.status, JSON.stringify(bad.body)).toBe(422)
    expect(bad.body.error.code).toBe("malware_detected")
    expect(stored(server)).toEqual([])
    const good = await uploadMultipart(server, token, new TextEncoder().encode("a harmless note"), "note.txt", "text/plain")
    expect(good.status).toBe(202)
    expect((await settled(server, token, good.body.id)).status).toBe("ready")
    expect(stored(server).length).toBe(1)
  })

  it("scan required and clamd down: 503 scanner_unavailable with Retry-After, nothing stored", async () => {
    await clamd.stop()
    const refused = await uploadMultipart(server, token, new TextEncoder().encode("hello while clamd is down"), "a.txt", "text/plain")
    expect(refused.status).toBe(503)
    expect(refused.body.error.code).toBe("scanner_unavailable")
    expect(refused.headers.get("retry-after")).not.toBeNull()
    expect(stored(server).length).toBe(1)
  })
})
