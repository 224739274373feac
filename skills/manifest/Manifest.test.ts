import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as Manifest from "./Manifest.ts"

const valid = {
  id: "weather",
  name: "Weather",
  version: "1.2.0",
  description: "Forecasts.",
  publisher: "Acme",
  abi: "extism-v1",
  permissions: { allowedHosts: ["api.weather.example", "*.tiles.example"], hostFunctions: ["kv_get", "kv_set", "secret_get"] },
  config: [{ key: "api_key", secret: true, required: true }, { key: "units", default: "metric" }],
  skills: [
    {
      name: "forecast",
      description: "The forecast for a city.",
      input: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      output: { type: "object" },
      pricing: { model: "fixed", credits: 2 },
      sideEffects: "read"
    }
  ]
}

const issuesOf = (input: unknown) =>
  Either.match(Manifest.decode(input), { onLeft: (e) => e.issues.map((i) => `${i.path}: ${i.message}`), onRight: () => [] })

describe("app manifest", () => {
  it("accepts a valid manifest and fills in defaults", () => {
    const m = Either.getOrThrow(Manifest.decode(valid))
    expect(m.limits).toEqual({ memoryMb: 32, timeoutMs: 5000, maxInputBytes: 1048576, maxOutputBytes: 1048576 })
    expect(m.permissions.wasi).toBe(false)
    expect(Manifest.exportOf(m.skills[0])).toBe("forecast")
    expect(m.config[1]).toMatchObject({ key: "units", secret: false, required: false, default: "metric" })
  })

  it("names the field of every problem", () => {
    const issues = issuesOf({
      ...valid,
      version: "one",
      extra: true,
      permissions: { allowedHosts: ["https://x.example/path"] },
      skills: [{ ...valid.skills[0], name: "Bad Name", pricing: { model: "per_unit", creditsPerUnit: -1 }, sideEffects: "maybe" }]
    })
    expect(issues).toEqual(expect.arrayContaining([
      "extra: is unexpected, expected: \"id\" | \"name\" | \"version\" | \"description\" | \"publisher\" | \"categories\" | \"abi\" | \"permissions\" | \"limits\" | \"config\" | \"skills\"",
      "version: must be a semantic version such as 1.2.3",
      "permissions.allowedHosts.0: must be a host name or a glob over host names (no scheme, port or path)",
      "skills.0.name: must be 1-64 characters of a-z, 0-9 and '_', starting with a letter",
      "skills.0.sideEffects: Expected \"read\" | \"write\", actual \"maybe\""
    ]))
    expect(issues.some((i) => i.startsWith("skills.0.pricing"))).toBe(true)
  })

  it("rejects invalid JSON Schemas, duplicate names and secrets without secret_get", () => {
    const issues = issuesOf({
      ...valid,
      permissions: { allowedHosts: [] },
      config: [{ key: "api_key", secret: true }, { key: "api_key" }],
      skills: [
        { ...valid.skills[0], input: { type: "nonsense" } },
        { ...valid.skills[0] }
      ]
    })
    expect(issues).toEqual(expect.arrayContaining([
      expect.stringMatching(/^skills\.0\.input: is not a valid JSON Schema/),
      "skills.1.name: duplicates skills.0.name \"forecast\"",
      "config.1.key: duplicates config.0.key \"api_key\"",
      "permissions.hostFunctions: must include \"secret_get\" when a config key is secret"
    ]))
  })

  it("refuses WASI entry points as skill exports", () => {
    expect(issuesOf({ ...valid, skills: [{ ...valid.skills[0], export: "_start" }] })).toEqual([
      "skills.0.export: must not be a WASI entry point (_start, _initialize, hs_init)"
    ])
  })

  it("reports JSON syntax errors", () => {
    expect(Either.isLeft(Manifest.decodeJson("{"))).toBe(true)
  })
})
