/**
 * The app manifest: what an app author publishes next to their WASM module (and what first-party
 * apps declare in code). An app groups skills; each skill names the export it runs, tells the LLM
 * what it does, declares its input and output JSON Schemas, its price and whether it writes
 * anything. Permissions (egress, WASI, host functions), limits and config keys are per app.
 *
 * `decode` validates an unknown value and reports every problem with its field path.
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import picomatch from "picomatch"
import * as semver from "semver"
import { type FieldIssue, ManifestError } from "../Errors.ts"
import * as JsonSchema from "./JsonSchema.ts"

/** An app id: lower case, digits and dashes, e.g. `web`, `text`, `weather-pro`. */
export const AppId = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9-]{0,62}[a-z0-9]$|^[a-z]$/, {
    message: () => "must be 1-64 characters of a-z, 0-9 and '-', starting with a letter"
  })
)

/** A skill name within its app, e.g. `summarize`, `search_news`. */
export const SkillName = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9_]{0,63}$/, { message: () => "must be 1-64 characters of a-z, 0-9 and '_', starting with a letter" })
)

/** A WebAssembly export name the host may call. */
export const ExportName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, { message: () => "must be an identifier (letters, digits, '_')" }),
  Schema.filter((s) => s !== "_start" && s !== "_initialize" && s !== "hs_init", {
    message: () => "must not be a WASI entry point (_start, _initialize, hs_init)"
  })
)

const SemVer = Schema.String.pipe(
  Schema.filter((s) => semver.valid(s) !== null, { message: () => "must be a semantic version such as 1.2.3" })
)

const Text = (max: number) => Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }), Schema.maxLength(max))

const Credits = Schema.Number.pipe(
  Schema.filter((n) => Number.isFinite(n) && n >= 0, { message: () => "must be a finite number ≥ 0" })
)

const PositiveInt = (max: number) =>
  Schema.Number.pipe(Schema.int(), Schema.filter((n) => n >= 1 && n <= max, { message: () => `must be an integer from 1 to ${max}` }))

/** A host glob such as `api.example.com`, `*.example.com` or `*`. */
export const HostGlob = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9*?.\-[\]{},]+$/, { message: () => "must be a host name or a glob over host names (no scheme, port or path)" }),
  Schema.filter((glob) => {
    try {
      picomatch.makeRe(glob)
      return true
    } catch {
      return false
    }
  }, { message: () => "is not a valid glob" })
)

/** A flat price per call. */
export const FixedPricing = Schema.Struct({
  model: Schema.Literal("fixed"),
  credits: Credits
})

/**
 * A price per unit; the number of units is read from the input before the call: `unitsFrom` is
 * a dotted path to a number or an array (its length), e.g. `urls` or `options.count`.
 */
export const PerUnitPricing = Schema.Struct({
  model: Schema.Literal("per_unit"),
  unit: Text(40),
  creditsPerUnit: Credits,
  unitsFrom: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/, { message: () => "must be a dotted path into the input" })),
  maxUnits: Schema.optional(PositiveInt(1_000_000))
})

/** A price per second of wall-clock time (reserved for the whole timeout, charged for what was used). */
export const PerSecondPricing = Schema.Struct({
  model: Schema.Literal("per_second"),
  creditsPerSecond: Credits,
  minimumCredits: Schema.optional(Credits)
})

/** A price per 1000 tokens of input and output text (about 4 bytes of UTF-8 per token). */
export const TokensPricing = Schema.Struct({
  model: Schema.Literal("tokens"),
  creditsPer1kInput: Credits,
  creditsPer1kOutput: Credits,
  maxOutputTokens: Schema.optional(PositiveInt(10_000_000))
})

/** How a skill is priced. */
export const Pricing = Schema.Union(FixedPricing, PerUnitPricing, PerSecondPricing, TokensPricing)
export type Pricing = typeof Pricing.Type

/** A JSON Schema object (checked by compiling it). */
export const JsonSchemaObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** The per-app (or per-skill) limits. */
export const Limits = Schema.Struct({
  /** Cap on the plugin's linear memory and on the host's buffers for it. */
  memoryMb: Schema.optionalWith(PositiveInt(4096), { default: () => 32 }),
  timeoutMs: Schema.optionalWith(
    Schema.Number.pipe(Schema.int(), Schema.filter((n) => n >= 10 && n <= 300_000, { message: () => "must be an integer from 10 to 300000" })),
    { default: () => 5_000 }
  ),
  maxInputBytes: Schema.optionalWith(PositiveInt(64 * 1024 * 1024), { default: () => 1024 * 1024 }),
  maxOutputBytes: Schema.optionalWith(PositiveInt(64 * 1024 * 1024), { default: () => 1024 * 1024 })
})
export type Limits = typeof Limits.Type

/** A skill's own limits: any field overrides the app's. */
export const SkillLimits = Schema.Struct({
  memoryMb: Schema.optional(PositiveInt(4096)),
  timeoutMs: Schema.optional(
    Schema.Number.pipe(Schema.int(), Schema.filter((n) => n >= 10 && n <= 300_000, { message: () => "must be an integer from 10 to 300000" }))
  ),
  maxInputBytes: Schema.optional(PositiveInt(64 * 1024 * 1024)),
  maxOutputBytes: Schema.optional(PositiveInt(64 * 1024 * 1024))
})

/** One skill of an app. */
export const SkillSpec = Schema.Struct({
  name: SkillName,
  /** The export the host calls; defaults to `name`. */
  export: Schema.optional(ExportName),
  /** What the skill does, written for the LLM that decides to call it. */
  description: Text(2000),
  input: JsonSchemaObject,
  output: JsonSchemaObject,
  pricing: Pricing,
  /** `write` skills change something outside the chat: the user confirms each call. */
  sideEffects: Schema.Literal("read", "write"),
  limits: Schema.optional(SkillLimits)
})
export type SkillSpec = typeof SkillSpec.Type

/** Host functions a plugin may be granted (beyond the Extism kernel, which every plugin has). */
export const HostFunctionName = Schema.Literal("kv_get", "kv_set", "secret_get")
export type HostFunctionName = typeof HostFunctionName.Type

/** What the plugin may do beyond computing. */
export const Permissions = Schema.Struct({
  /** Hosts (globs) the plugin may reach over HTTP(S). Private and loopback addresses never. */
  allowedHosts: Schema.optionalWith(Schema.Array(HostGlob), { default: () => [] }),
  /** Whether the module may import WASI preview 1 (stdout/stderr are discarded). */
  wasi: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Host functions the plugin imports from `extism:host/user`. */
  hostFunctions: Schema.optionalWith(Schema.Array(HostFunctionName), { default: () => [] })
})
export type Permissions = typeof Permissions.Type

/** A config key an install sets; `secret` ones are read with `secret_get`, never through config. */
export const ConfigKey = Schema.Struct({
  key: Schema.String.pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, { message: () => "must be 1-64 characters of letters, digits, '_', '.', '-'" })),
  description: Schema.optional(Text(500)),
  secret: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  required: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  default: Schema.optional(Schema.String)
})
export type ConfigKey = typeof ConfigKey.Type

/** A store category, e.g. `productivity`, `weather`. */
export const Category = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9-]{0,31}$/, { message: () => "must be 1-32 characters of a-z, 0-9 and '-', starting with a letter" })
)

/** The manifest of an app. */
export const AppManifest = Schema.Struct({
  id: AppId,
  name: Text(80),
  version: SemVer,
  description: Text(2000),
  publisher: Text(120),
  /** Where the app store lists it (at most 5). */
  categories: Schema.optionalWith(Schema.Array(Category).pipe(Schema.maxItems(5)), { default: () => [] }),
  /** `extism-v1` for WASM apps; `builtin` only for first-party apps shipped in code. */
  abi: Schema.Literal("extism-v1", "builtin"),
  permissions: Schema.optionalWith(Permissions, { default: () => ({ allowedHosts: [], wasi: false, hostFunctions: [] }) }),
  limits: Schema.optionalWith(Limits, {
    default: () => ({ memoryMb: 32, timeoutMs: 5_000, maxInputBytes: 1024 * 1024, maxOutputBytes: 1024 * 1024 })
  }),
  config: Schema.optionalWith(Schema.Array(ConfigKey), { default: () => [] }),
  skills: Schema.NonEmptyArray(SkillSpec)
})
export type AppManifest = typeof AppManifest.Type
/** A manifest as written in JSON (defaults not yet applied). */
export type AppManifestInput = typeof AppManifest.Encoded

const decodeSchema = Schema.decodeUnknownEither(AppManifest, { errors: "all", onExcessProperty: "error" })

const pathOf = (path: ReadonlyArray<PropertyKey>): string => path.length === 0 ? "(root)" : path.map(String).join(".")

const schemaIssues = (error: ParseResult.ParseError): Array<FieldIssue> => {
  const raw = ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => ({ path: pathOf(i.path), message: i.message }))
  // An optional field that failed also reports "Expected undefined" at its own path: drop that
  // when a more precise issue exists at or below it.
  const precise = raw.filter((i) =>
    !(i.message.startsWith("Expected undefined") &&
      raw.some((o) => o !== i && !o.message.startsWith("Expected undefined") && (o.path === i.path || o.path.startsWith(i.path + "."))))
  )
  // A union of literals reports one issue per member: merge them.
  const merged: Array<FieldIssue> = []
  for (const issue of precise) {
    const m = /^Expected (.+), actual (.+)$/.exec(issue.message)
    const previous = merged.find((o) => o.path === issue.path)
    const pm = previous ? /^Expected (.+), actual (.+)$/.exec(previous.message) : null
    if (previous && m && pm && pm[2] === m[2]) {
      merged[merged.indexOf(previous)] = { path: issue.path, message: `Expected ${pm[1]} | ${m[1]}, actual ${m[2]}` }
    } else merged.push(issue)
  }
  return merged
}

/** The export a skill runs. */
export const exportOf = (skill: SkillSpec): string => skill.export ?? skill.name

/** The limits that apply to one skill (the app's, overridden by the skill's). */
export const limitsOf = (app: AppManifest, skill: SkillSpec): Limits => ({
  memoryMb: skill.limits?.memoryMb ?? app.limits.memoryMb,
  timeoutMs: skill.limits?.timeoutMs ?? app.limits.timeoutMs,
  maxInputBytes: skill.limits?.maxInputBytes ?? app.limits.maxInputBytes,
  maxOutputBytes: skill.limits?.maxOutputBytes ?? app.limits.maxOutputBytes
})

const crossChecks = (m: AppManifest): Array<FieldIssue> => {
  const issues: Array<FieldIssue> = []
  const names = new Map<string, number>()
  m.skills.forEach((s, i) => {
    const seen = names.get(s.name)
    if (seen !== undefined) issues.push({ path: `skills.${i}.name`, message: `duplicates skills.${seen}.name "${s.name}"` })
    else names.set(s.name, i)
    for (const side of ["input", "output"] as const) {
      const problem = JsonSchema.check(s[side])
      if (problem !== undefined) issues.push({ path: `skills.${i}.${side}`, message: `is not a valid JSON Schema: ${problem}` })
    }
    if (s.pricing.model === "per_unit" && s.input["type"] !== undefined && s.input["type"] !== "object") {
      issues.push({ path: `skills.${i}.pricing.unitsFrom`, message: "needs an object input schema to read units from" })
    }
  })
  const keys = new Map<string, number>()
  m.config.forEach((c, i) => {
    const seen = keys.get(c.key)
    if (seen !== undefined) issues.push({ path: `config.${i}.key`, message: `duplicates config.${seen}.key "${c.key}"` })
    else keys.set(c.key, i)
    if (c.secret && c.default !== undefined) issues.push({ path: `config.${i}.default`, message: "a secret must not have a default" })
  })
  if (m.config.some((c) => c.secret) && !m.permissions.hostFunctions.includes("secret_get") && m.abi === "extism-v1") {
    issues.push({ path: "permissions.hostFunctions", message: "must include \"secret_get\" when a config key is secret" })
  }
  return issues
}

/** Validate a manifest; every problem is reported with its field path. */
export const decode = (input: unknown): Either.Either<AppManifest, ManifestError> => {
  const decoded = decodeSchema(input)
  const issues = Either.isLeft(decoded) ? schemaIssues(decoded.left) : crossChecks(decoded.right)
  if (issues.length === 0 && Either.isRight(decoded)) return Either.right(decoded.right)
  const shown = issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`).join("; ")
  return Either.left(
    new ManifestError({
      issues,
      message: `invalid manifest: ${shown}${issues.length > 5 ? ` (and ${issues.length - 5} more)` : ""}`
    })
  )
}

/** Parse and validate a manifest from JSON text. */
export const decodeJson = (text: string): Either.Either<AppManifest, ManifestError> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (e) {
    return Either.left(
      new ManifestError({
        issues: [{ path: "(root)", message: `is not JSON: ${(e as Error).message}` }],
        message: `invalid manifest: (root): is not JSON: ${(e as Error).message}`
      })
    )
  }
  return decode(parsed)
}

/** Write a manifest back as plain JSON. */
export const encode = (m: AppManifest): AppManifestInput => Schema.encodeSync(AppManifest)(m)
