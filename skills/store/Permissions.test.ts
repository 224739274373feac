/**
 * An upgrade's permission diff: what asks for more waits for approval, what asks for less or the
 * same does not.
 */
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as Manifest from "../manifest/Manifest.ts"
import * as Permissions from "./Permissions.ts"

const base = {
  id: "weather",
  name: "Weather",
  version: "1.0.0",
  description: "Forecasts",
  publisher: "Ada",
  abi: "extism-v1",
  permissions: { allowedHosts: ["api.weather.example"], wasi: false, hostFunctions: ["kv_get"] },
  limits: { memoryMb: 16, timeoutMs: 2000 },
  skills: [
    {
      name: "forecast",
      description: "A forecast",
      input: { type: "object" },
      output: { type: "object" },
      pricing: { model: "fixed", credits: 2 },
      sideEffects: "read"
    }
  ]
}

const decode = (patch: (m: typeof base) => unknown): Manifest.AppManifest => {
  const copy = structuredClone(base)
  const decoded = Manifest.decode(patch(copy) ?? copy)
  if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
  return decoded.right
}

const v1 = decode(() => undefined)

describe("permission diff", () => {
  it("a version that changes nothing it may do does not escalate", () => {
    const d = Permissions.diff(v1, decode((m) => ({ ...m, version: "1.0.1", description: "Better forecasts" })))
    expect(d).toEqual({ from: "1.0.0", to: "1.0.1", changes: [], escalates: false })
  })

  it("a new allowed host escalates and is shown with both lists", () => {
    const d = Permissions.diff(v1, decode((m) => ({ ...m, version: "1.1.0", permissions: { ...m.permissions, allowedHosts: ["api.weather.example", "tiles.example.org"] } })))
    expect(d.escalates).toBe(true)
    expect(d.changes).toEqual([{
      field: "permissions.allowedHosts",
      from: ["api.weather.example"],
      to: ["api.weather.example", "tiles.example.org"],
      escalates: true,
      description: "may also reach tiles.example.org"
    }])
  })

  it("WASI, new host functions, more memory or time, write skills and higher prices escalate", () => {
    const d = Permissions.diff(v1, decode((m) => ({
      ...m,
      version: "2.0.0",
      permissions: { allowedHosts: ["api.weather.example"], wasi: true, hostFunctions: ["kv_get", "kv_set"] },
      limits: { memoryMb: 64, timeoutMs: 10_000 },
      skills: [
        { ...m.skills[0]!, pricing: { model: "fixed", credits: 3 } },
        { ...m.skills[0]!, name: "alert", sideEffects: "write" }
      ]
    })))
    const escalating = d.changes.filter((c) => c.escalates).map((c) => c.field).sort()
    expect(escalating).toEqual([
      "permissions.hostFunctions",
      "permissions.wasi",
      "skills.alert",
      "skills.forecast.limits.memoryMb",
      "skills.forecast.limits.timeoutMs",
      "skills.forecast.pricing"
    ])
  })

  it("asking for less is listed without escalating", () => {
    const d = Permissions.diff(v1, decode((m) => ({
      ...m,
      version: "1.2.0",
      permissions: { allowedHosts: [], wasi: false, hostFunctions: [] },
      limits: { memoryMb: 8, timeoutMs: 1000 },
      skills: [{ ...m.skills[0]!, pricing: { model: "fixed", credits: 1 } }, { ...m.skills[0]!, name: "today" }]
    })))
    expect(d.escalates).toBe(false)
    expect(d.changes.map((c) => c.field).sort()).toEqual([
      "permissions.allowedHosts",
      "permissions.hostFunctions",
      "skills.forecast.limits.memoryMb",
      "skills.forecast.limits.timeoutMs",
      "skills.forecast.pricing",
      "skills.today"
    ])
  })

  it("a read skill turned write, or a changed pricing model, escalates", () => {
    const write = Permissions.diff(v1, decode((m) => ({ ...m, version: "1.3.0", skills: [{ ...m.skills[0]!, sideEffects: "write" }] })))
    expect(write.changes).toMatchObject([{ field: "skills.forecast.sideEffects", from: "read", to: "write", escalates: true }])
    const model = Permissions.diff(v1, decode((m) => ({ ...m, version: "1.4.0", skills: [{ ...m.skills[0]!, pricing: { model: "per_second", creditsPerSecond: 0.1 } }] })))
    expect(model.escalates).toBe(true)
  })
})
