/**
 * The `Skill` contract every skill implements, WASM or first-party: an app manifest entry and a
 * `run` from validated JSON input to JSON output. The registry (`Skills.ts`) validates input and
 * output against the skill's schemas, enforces size and time limits, and prices the call, so
 * WASM and TypeScript skills have one invocation path and one pricing model.
 */
import * as Effect from "effect/Effect"
import { InvalidInput, SkillFailed } from "./Errors.ts"
import type { AdmissionError, RunError } from "./Errors.ts"
import * as Host from "./host/Host.ts"
import * as Manifest from "./manifest/Manifest.ts"
import type { AppManifest, SkillSpec } from "./manifest/Manifest.ts"

/** Who calls and with which install settings. */
export interface SkillContext {
  readonly app: string
  readonly skill: string
  readonly userId: string
  readonly installId: string
  /** Non-secret config of the install (manifest defaults applied). */
  readonly config: Readonly<Record<string, string>>
  /** Secret config of the install (keys declared `secret: true`). */
  readonly secrets: Readonly<Record<string, string>>
}

/**
 * What a skill returns: its JSON result and, when it knows them, exact token counts and its own
 * running time (WASM skills report the plugin's execution time, without queueing or cold start).
 */
export interface SkillOutput {
  readonly result: unknown
  readonly usage?: { readonly inputTokens?: number; readonly outputTokens?: number; readonly durationMs?: number }
}

/** One skill. */
export interface Skill {
  readonly spec: SkillSpec
  readonly run: (input: unknown, context: SkillContext) => Effect.Effect<SkillOutput, RunError>
}

/** An app: a manifest and its skills. */
export interface App {
  readonly manifest: AppManifest
  readonly kind: "wasm" | "builtin"
  readonly skills: ReadonlyMap<string, Skill>
  /** The config and secrets of the app's install (installed apps): used instead of the caller's. */
  readonly settings?: Effect.Effect<{ readonly config: Readonly<Record<string, string>>; readonly secrets: Readonly<Record<string, string>> }, RunError>
}

/** A first-party app from its manifest and a `run` per skill name. */
export const builtin = (
  manifest: AppManifest,
  runs: Readonly<Record<string, (input: unknown, context: SkillContext) => Effect.Effect<SkillOutput, RunError>>>
): App => {
  const skills = new Map<string, Skill>()
  for (const spec of manifest.skills) {
    const run = runs[spec.name]
    if (!run) throw new Error(`first-party app ${manifest.id}: no implementation for skill ${spec.name}`)
    skills.set(spec.name, { spec, run })
  }
  return { manifest, kind: "builtin", skills }
}

const decoder = new TextDecoder("utf-8", { fatal: true })
const encoder = new TextEncoder()

/** Turn plugin output bytes into the skill's JSON result. */
const decodeOutput = (skill: string, spec: SkillSpec, bytes: Uint8Array | null): Effect.Effect<unknown, SkillFailed> => {
  if (bytes === null || bytes.byteLength === 0) return Effect.succeed(null)
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    return Effect.fail(new SkillFailed({ skill, reason: "invalid_output", message: `${skill} returned bytes that are not UTF-8 text` }))
  }
  try {
    return Effect.succeed(JSON.parse(text))
  } catch {
    if (spec.output["type"] === "string") return Effect.succeed(text)
    return Effect.fail(
      new SkillFailed({ skill, reason: "invalid_output", message: `${skill} returned text that is not JSON: ${JSON.stringify(text.slice(0, 120))}` })
    )
  }
}

/**
 * A WASM app: the manifest's permissions and limits applied to its module. The plugin is admitted
 * now (so a bad module is refused at registration) and loaded again per distinct install config.
 */
export const wasm = (
  manifest: AppManifest,
  modules: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>,
  options: { readonly wasiOutput?: boolean } = {}
): Effect.Effect<App, AdmissionError, Host.SkillHost> =>
  Effect.gen(function*() {
    const host = yield* Host.SkillHost
    const secretKeys = manifest.config.filter((c) => c.secret).map((c) => c.key)
    const specFor = (skillSpec: SkillSpec, config: Readonly<Record<string, string>>): Host.PluginSpec => {
      const limits = Manifest.limitsOf(manifest, skillSpec)
      return {
        name: manifest.id,
        modules,
        wasi: manifest.permissions.wasi,
        wasiOutput: options.wasiOutput ?? false,
        allowedHosts: manifest.permissions.allowedHosts,
        config,
        hostFunctions: manifest.permissions.hostFunctions,
        secretKeys,
        exports: manifest.skills.map(Manifest.exportOf),
        limits: {
          memoryBytes: limits.memoryMb * 1024 * 1024,
          timeoutMs: limits.timeoutMs,
          maxInputBytes: limits.maxInputBytes,
          maxOutputBytes: limits.maxOutputBytes
        }
      }
    }
    for (const s of manifest.skills) yield* host.load(specFor(s, {}))
    const loaded = new Map<string, Host.LoadedPlugin>()
    const skills = new Map<string, Skill>()
    for (const spec of manifest.skills) {
      const qualified = `${manifest.id}.${spec.name}`
      const run = (input: unknown, context: SkillContext): Effect.Effect<SkillOutput, RunError> =>
        Effect.gen(function*() {
          const pluginSpec = specFor(spec, context.config)
          const key = JSON.stringify([spec.name, Object.entries(context.config).sort(([a], [b]) => a.localeCompare(b))])
          let plugin = loaded.get(key)
          if (!plugin) {
            plugin = yield* host.load(pluginSpec).pipe(
              Effect.mapError((e) => new SkillFailed({ skill: qualified, reason: "crashed", message: e.message }))
            )
            if (loaded.size > 256) loaded.clear()
            loaded.set(key, plugin)
          }
          const result = yield* host.call(plugin, Manifest.exportOf(spec), encoder.encode(JSON.stringify(input)), {
            skill: qualified,
            scope: { app: manifest.id, installId: context.installId, userId: context.userId },
            secrets: context.secrets
          })
          return { result: yield* decodeOutput(qualified, spec, result.output), usage: { durationMs: result.durationMs } }
        })
      skills.set(spec.name, { spec, run })
    }
    return { manifest, kind: "wasm", skills } satisfies App
  })

/** The config an install passes to a skill: defaults applied, secrets split off, required keys checked. */
export const resolveConfig = (
  manifest: AppManifest,
  skill: string,
  given: Readonly<Record<string, string>>,
  secrets: Readonly<Record<string, string>>
): Effect.Effect<{ readonly config: Record<string, string>; readonly secrets: Record<string, string> }, InvalidInput> => {
  const config: Record<string, string> = {}
  const secretValues: Record<string, string> = {}
  const missing: Array<string> = []
  for (const key of manifest.config) {
    const value = key.secret ? (secrets[key.key] ?? given[key.key]) : (given[key.key] ?? key.default)
    if (value === undefined) {
      if (key.required) missing.push(key.key)
      continue
    }
    if (key.secret) secretValues[key.key] = value
    else config[key.key] = value
  }
  if (missing.length > 0) {
    return Effect.fail(
      new InvalidInput({
        skill,
        message: `the install of ${manifest.id} does not set the required config key${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`,
        issues: missing.map((k) => ({ path: `config.${k}`, message: "is required by the app" }))
      })
    )
  }
  return Effect.succeed({ config, secrets: secretValues })
}
