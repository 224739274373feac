/**
 * The admin routes of the LLM room over real HTTP on the embedded default: the model price table
 * (set, list, back to the default; names with `:` and `/`; bad rates refused) and the admin-only
 * policy (users and API keys are refused).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { onboard } from "./testing/flows.ts"
import { initialInvite, request, startServer } from "./testing/server.ts"
import type { TestServer } from "./testing/server.ts"

let server: TestServer
let admin: string
let user: string
beforeAll(async () => {
  server = await startServer({ settings: { signup: { _tag: "Open" } } })
  admin = (await onboard(server, "root", initialInvite(server.dataDir))).access
  user = (await onboard(server, "someone")).access
}, 120_000)
afterAll(async () => {
  await server?.close()
})

describe("LLM admin routes", () => {
  it("sets, lists and removes model prices", async () => {
    const empty = await request(server, "GET", "/v1/admin/models/prices", { token: admin })
    expect(empty.status).toBe(200)
    expect(empty.body).toEqual({ default: { input: 1, output: 2 }, prices: [] })

    const set = await request(server, "PUT", "/v1/admin/models/llama3.2:3b/price", { token: admin, body: { input: 0.5, output: 1.5 } })
    expect(set.status, JSON.stringify(set.body)).toBe(200)
    expect(set.body).toMatchObject({ model: "llama3.2:3b", input: 0.5, output: 1.5 })
    const slashed = await request(server, "PUT", `/v1/admin/models/${encodeURIComponent("meta-llama/llama-3.1-8b")}/price`, { token: admin, body: { input: 2, output: 4 } })
    expect(slashed.status, JSON.stringify(slashed.body)).toBe(200)
    expect(slashed.body.model).toBe("meta-llama/llama-3.1-8b")
    const again = await request(server, "PUT", "/v1/admin/models/llama3.2:3b/price", { token: admin, body: { input: 0.25, output: 1 } })
    expect(again.body).toMatchObject({ input: 0.25, output: 1 })

    const listed = await request(server, "GET", "/v1/admin/models/prices", { token: admin })
    expect(listed.body.prices.map((p: { model: string; input: number }) => [p.model, p.input])).toEqual([["llama3.2:3b", 0.25], ["meta-llama/llama-3.1-8b", 2]])

    expect((await request(server, "DELETE", "/v1/admin/models/llama3.2:3b/price", { token: admin })).status).toBe(204)
    const gone = await request(server, "DELETE", "/v1/admin/models/llama3.2:3b/price", { token: admin })
    expect(gone.status).toBe(404)
    expect(gone.body.error.code).toBe("price_not_found")
  })

  it("refuses bad rates with the field named", async () => {
    const negative = await request(server, "PUT", "/v1/admin/models/m/price", { token: admin, body: { input: -1, output: 1 } })
    expect(negative.status).toBe(400)
    expect(negative.body.error.details.issues[0].path).toBe("input")
    expect((await request(server, "PUT", "/v1/admin/models/m/price", { token: admin, body: { input: 1 } })).status).toBe(400)
  })

  it("is for admins only", async () => {
    const refused = await request(server, "PUT", "/v1/admin/models/m/price", { token: user, body: { input: 1, output: 1 } })
    expect(refused.status).toBe(403)
    expect(refused.body.error.code).toBe("admin_only")
    expect((await request(server, "GET", "/v1/admin/providers", { token: user })).status).toBe(403)
    const providers = await request(server, "GET", "/v1/admin/providers", { token: admin })
    expect(providers.status).toBe(200)
    expect(providers.body.providers).toEqual([])
  })
})
