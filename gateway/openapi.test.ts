/**
 * The OpenAPI document as a client developer uses it: `GET /v1/openapi.json` passes a real
 * OpenAPI validator (@apidevtools/swagger-parser), every operation has a summary, the preview
 * routes are described, and openapi-typescript generates a typed client that compiles under
 * `strict` and names the routes.
 */
import SwaggerParser from "@apidevtools/swagger-parser"
import openapiTS, { astToString } from "openapi-typescript"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import ts from "typescript"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { request, startServer, type TestServer } from "./testing/server.ts"

let server: TestServer
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let doc: any
const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-openapi-"))

beforeAll(async () => {
  server = await startServer({})
  const served = await request(server, "GET", "/v1/openapi.json")
  expect(served.status).toBe(200)
  doc = served.body
}, 120_000)
afterAll(async () => {
  await server?.close()
  NodeFs.rmSync(dir, { recursive: true, force: true })
})

const operations = () =>
  Object.entries(doc.paths as Record<string, Record<string, { operationId?: string; summary?: string }>>).flatMap(([path, item]) =>
    Object.entries(item).filter(([, op]) => typeof op === "object" && op.operationId).map(([method, op]) => ({ path, method, ...op }))
  )

describe("GET /v1/openapi.json", () => {
  it("is a valid OpenAPI document (every $ref resolves)", async () => {
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toBeTruthy()
    expect(doc.components.schemas.ErrorBody).toMatchObject({ type: "object", required: ["error"] })
  })

  it("has a summary on every operation and describes the preview routes", () => {
    const ops = operations()
    expect(ops.length).toBeGreaterThan(70)
    expect(ops.filter((o) => !o.summary).map((o) => `${o.method.toUpperCase()} ${o.path}`)).toEqual([])
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/v1/image", "/api/v1/favicon", "/api/v1/metadata"]))
  })

  it("generates a typed client that compiles", async () => {
    const code = astToString(await openapiTS(structuredClone(doc)))
    expect(code).toContain("\"/v1/apps/{app}/skills/{skill}\"")
    const file = NodePath.join(dir, "troupe-api.ts")
    const usage = NodePath.join(dir, "usage.ts")
    NodeFs.writeFileSync(file, code)
    // a client developer's use of the generated types: a wrong field is a compile error
    NodeFs.writeFileSync(usage, [
      "import type { paths } from \"./troupe-api\"",
      "type Invoke = paths[\"/v1/apps/{app}/skills/{skill}\"][\"post\"]",
      "export const ok: Invoke[\"responses\"][\"200\"][\"content\"][\"application/json\"] = { result: 1, credits_charged: 2 }",
      "// @ts-expect-error credits_charged is a number",
      "export const bad: Invoke[\"responses\"][\"200\"][\"content\"][\"application/json\"] = { result: 1, credits_charged: \"2\" }",
      ""
    ].join("\n"))
    const program = ts.createProgram([file, usage], { strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, types: [] })
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    expect(diagnostics).toEqual([])
  }, 60_000)
})
