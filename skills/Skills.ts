/**
 * The skills service: one registry of apps (first-party and WASM) and one invocation path.
 *
 * For the gateway (`POST /v1/apps/{app}/skills/{skill}`, `GET /v1/apps`, `GET /v1/apps/{app}`):
 *
 * 1. `estimate({ app, skill, input })` validates the input and returns the credits to reserve;
 * 2. `invoke({ app, skill, input, userId, installId?, config?, secrets? })` runs the skill and
 *    returns `{ result, credits, estimate, usage }`: settle `credits` (never above the estimate);
 *    on failure release the reservation (nothing was charged);
 * 3. `list` / `get(app)` describe apps and skills (schemas, prices) as plain JSON-ready data whose
 *    Effect Schemas are `AppDescription` / `SkillDescription`.
 *
 * Errors: `InvalidInput` (invalid_input, 400), `AppNotFound` / `SkillNotFound` (404),
 * `SkillTimeout` (skill_timeout, 504), `SkillMemoryExceeded` (skill_memory_exceeded, 502),
 * `SkillEgressDenied` (skill_egress_denied, 502), `SkillFailed` (skill_failed, 502);
 * `Errors.describe(e)` gives the status, code, message and details.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { AppNotFound, describe as describeError, InvalidInput, ManifestError, SkillFailed, SkillNotFound, SkillTimeout } from "./Errors.ts"
import type { AdmissionError, InvokeError } from "./Errors.ts"
import * as FirstParty from "./firstparty/apps.ts"
import * as Host from "./host/Host.ts"
import * as KvStore from "./host/KvStore.ts"
import * as JsonSchema from "./manifest/JsonSchema.ts"
import * as Manifest from "./manifest/Manifest.ts"
import * as Pricing from "./Pricing.ts"
import * as Skill from "./Skill.ts"
import * as Metrics from "../runtime/Metrics.ts"

/** A skill as listed to clients and to the LLM. */
export const SkillDescription = Schema.Struct({
  /** `app.skill`, e.g. `text.summarize`. */
  id: Schema.String,
  name: Schema.String,
  description: Schema.String,
  input: Manifest.JsonSchemaObject,
  output: Manifest.JsonSchemaObject,
  pricing: Manifest.Pricing,
  /** `2 credits per call`. */
  price: Schema.String,
  side_effects: Schema.Literal("read", "write"),
  /** Write skills need the user's confirmation in chat. */
  requires_confirmation: Schema.Boolean,
  timeout_ms: Schema.Number
})
export type SkillDescription = typeof SkillDescription.Type

/** An app as listed to clients. */
export const AppDescription = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  version: Schema.String,
  description: Schema.String,
  publisher: Schema.String,
  kind: Schema.Literal("wasm", "builtin"),
  config: Schema.Array(Schema.Struct({
    key: Schema.String,
    description: Schema.optional(Schema.String),
    secret: Schema.Boolean,
    required: Schema.Boolean
  })),
  skills: Schema.Array(SkillDescription)
})
export type AppDescription = typeof AppDescription.Type

/** A call. */
export interface InvokeRequest {
  readonly app: string
  readonly skill: string
  readonly input: unknown
  readonly userId: string
  /** The app install (KV scope, config); default `default`. */
  readonly installId?: string
  /** The install's config (non-secret keys; manifest defaults fill the rest). */
  readonly config?: Readonly<Record<string, string>>
  /** The install's secrets (keys declared `secret: true`). */
  readonly secrets?: Readonly<Record<string, string>>
  /** Who called, for the call's log line (ids only: chat, turn, API key, call). */
  readonly calledBy?: Metrics.SkillCallIds
}

/** What a call cost and used. */
export interface InvokeResult {
  readonly result: unknown
  /** Credits to settle (whole, never above `estimate`). */
  readonly credits: number
  /** What `estimate` returned for this input. */
  readonly estimate: number
  readonly usage: Pricing.Usage
}

/** The price before a call. */
export interface Estimate {
  readonly app: string
  readonly skill: string
  /** Credits to reserve. */
  readonly credits: number
  readonly pricing: Manifest.Pricing
  /** per_unit: the units the input asks for. */
  readonly units?: number
  readonly sideEffects: "read" | "write"
}

/** The service. */
export class Skills extends Context.Tag("troupe/skills/Skills")<Skills, {
  readonly list: Effect.Effect<ReadonlyArray<AppDescription>>
  readonly get: (app: string) => Effect.Effect<AppDescription, AppNotFound>
  readonly describeSkill: (app: string, skill: string) => Effect.Effect<SkillDescription, AppNotFound | SkillNotFound>
  readonly estimate: (request: { readonly app: string; readonly skill: string; readonly input: unknown }) => Effect.Effect<Estimate, AppNotFound | SkillNotFound | InvalidInput>
  readonly invoke: (request: InvokeRequest) => Effect.Effect<InvokeResult, InvokeError>
  /** Add (or replace) an app. */
  readonly register: (app: Skill.App) => Effect.Effect<AppDescription>
  /** Validate a manifest, admit its WASM module into the host, and add the app. */
  readonly registerWasm: (
    manifest: unknown,
    modules: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>
  ) => Effect.Effect<AppDescription, ManifestError | AdmissionError>
  readonly unregister: (app: string) => Effect.Effect<void>
}>() {}

/** Describe an app for listings. */
export const describeApp = (app: Skill.App): AppDescription => ({
  id: app.manifest.id,
  name: app.manifest.name,
  version: app.manifest.version,
  description: app.manifest.description,
  publisher: app.manifest.publisher,
  kind: app.kind,
  config: app.manifest.config.map((c) => ({
    key: c.key,
    ...(c.description !== undefined ? { description: c.description } : {}),
    secret: c.secret,
    required: c.required
  })),
  skills: app.manifest.skills.map((s) => describeSkill(app.manifest, s))
})

/** Describe one skill of an app for listings (and the store's catalog). */
export const describeSkill = (m: Manifest.AppManifest, s: Manifest.SkillSpec): SkillDescription => ({
  id: `${m.id}.${s.name}`,
  name: s.name,
  description: s.description,
  input: s.input,
  output: s.output,
  pricing: s.pricing,
  price: Pricing.describe(s.pricing),
  side_effects: s.sideEffects,
  requires_confirmation: s.sideEffects === "write",
  timeout_ms: Manifest.limitsOf(m, s).timeoutMs
})

const encoder = new TextEncoder()

const jsonBytes = (value: unknown): number => {
  try {
    return encoder.encode(JSON.stringify(value) ?? "null").byteLength
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

/** Build the service over the given apps. */
export const make = (apps: ReadonlyArray<Skill.App> = []) =>
  Effect.gen(function*() {
    const registry = yield* Ref.make(new Map(apps.map((a) => [a.manifest.id, a] as const)))
    const context = yield* Effect.context<Host.SkillHost>()

    const find = (appId: string, skillName: string): Effect.Effect<{ readonly app: Skill.App; readonly skill: Skill.Skill }, AppNotFound | SkillNotFound> =>
      Effect.flatMap(Ref.get(registry), (map): Effect.Effect<{ readonly app: Skill.App; readonly skill: Skill.Skill }, AppNotFound | SkillNotFound> => {
        const app = map.get(appId)
        if (!app) return Effect.fail(new AppNotFound({ app: appId, message: `no app "${appId}"` }))
        const skill = app.skills.get(skillName)
        if (!skill) {
          return Effect.fail(
            new SkillNotFound({ app: appId, skill: skillName, message: `app "${appId}" has no skill "${skillName}" (it has ${[...app.skills.keys()].join(", ")})` })
          )
        }
        return Effect.succeed({ app, skill })
      })

    /** Validate the input and price it. */
    const check = (app: Skill.App, skill: Skill.Skill, input: unknown) => {
      const id = `${app.manifest.id}.${skill.spec.name}`
      const limits = Manifest.limitsOf(app.manifest, skill.spec)
      const inputBytes = jsonBytes(input)
      if (inputBytes > limits.maxInputBytes) {
        return Effect.fail(
          new InvalidInput({
            skill: id,
            message: `the input is ${Number.isFinite(inputBytes) ? `${inputBytes} bytes` : "not serialisable"}; ${id} accepts at most ${limits.maxInputBytes}`,
            issues: [{ path: "(root)", message: `is larger than ${limits.maxInputBytes} bytes` }]
          })
        )
      }
      const issues = JsonSchema.validate(skill.spec.input, input)
      if (issues.length > 0) {
        return Effect.fail(new InvalidInput({ skill: id, message: `invalid input for ${id}: ${JsonSchema.summarize(issues)}`, issues }))
      }
      const units = Pricing.unitsOf(skill.spec.pricing, input)
      if (Either.isLeft(units)) {
        return Effect.fail(new InvalidInput({ skill: id, message: `invalid input for ${id}: ${units.left}`, issues: [{ path: skill.spec.pricing.model === "per_unit" ? skill.spec.pricing.unitsFrom : "(root)", message: units.left }] }))
      }
      const credits = Pricing.estimate(skill.spec.pricing, { inputBytes, units: units.right, limits })
      return Effect.succeed({ id, limits, inputBytes, units: units.right, credits })
    }

    const invoke = (request: InvokeRequest): Effect.Effect<InvokeResult, InvokeError> => {
      // counted once the skill is known (an unknown app's name is caller input, never a label)
      let known = false
      const began = performance.now()
      return Effect.gen(function*() {
        const { app, skill } = yield* find(request.app, request.skill)
        known = true
        const priced = yield* check(app, skill, request.input)
        const given = app.settings ? yield* app.settings : { config: request.config ?? {}, secrets: request.secrets ?? {} }
        const { config, secrets } = yield* Skill.resolveConfig(app.manifest, priced.id, given.config, given.secrets)
        const started = performance.now()
        const running = skill.run(request.input, {
          app: app.manifest.id,
          skill: skill.spec.name,
          userId: request.userId,
          installId: request.installId ?? "default",
          config,
          secrets
        })
        // WASM skills are timed by the host (which terminates the worker); first-party ones here.
        const output = yield* (app.kind === "builtin"
          ? Effect.timeoutFail(running, {
            duration: priced.limits.timeoutMs,
            onTimeout: () =>
              new SkillTimeout({ skill: priced.id, timeoutMs: priced.limits.timeoutMs, message: `${priced.id} did not finish within ${priced.limits.timeoutMs} ms (timeout)` })
          })
          : running)
        const durationMs = output.usage?.durationMs ?? performance.now() - started
        const outputBytes = jsonBytes(output.result)
        if (outputBytes > priced.limits.maxOutputBytes) {
          return yield* Effect.fail(
            new SkillFailed({ skill: priced.id, reason: "output_too_large", message: `${priced.id} produced ${outputBytes} bytes of output; the limit is ${priced.limits.maxOutputBytes}` })
          )
        }
        const outputIssues = JsonSchema.validate(skill.spec.output, output.result)
        if (outputIssues.length > 0) {
          return yield* Effect.fail(
            new SkillFailed({ skill: priced.id, reason: "invalid_output", message: `${priced.id} returned output that does not match its schema: ${JsonSchema.summarize(outputIssues)}` })
          )
        }
        const usage: Pricing.Usage = {
          durationMs,
          inputBytes: priced.inputBytes,
          outputBytes,
          ...(skill.spec.pricing.model === "per_unit" ? { units: priced.units } : {}),
          ...(output.usage?.inputTokens !== undefined ? { inputTokens: output.usage.inputTokens } : {}),
          ...(output.usage?.outputTokens !== undefined ? { outputTokens: output.usage.outputTokens } : {})
        }
        const credits = Pricing.price(skill.spec.pricing, usage, priced.limits)
        return { result: output.result, credits, estimate: priced.credits, usage }
      }).pipe(
        Effect.onExit((exit) => {
          if (!known) return Effect.void
          const seconds = (performance.now() - began) / 1000
          const ids = { userId: request.userId, ...request.calledBy }
          if (exit._tag === "Success") {
            return Effect.zipRight(
              Metrics.skillCalled({ app: request.app, skill: request.skill, seconds, credits: exit.value.credits }, ids),
              Metrics.creditsChargedFor("skill", exit.value.credits)
            )
          }
          const failure = Cause.failureOption(exit.cause)
          const code = Option.isSome(failure) ? describeError(failure.value).code : Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "internal_error"
          return Metrics.skillCalled({ app: request.app, skill: request.skill, seconds, code }, ids)
        }),
        Effect.withSpan("skills.invoke", { attributes: { app: request.app, skill: request.skill } })
      )
    }

    return Skills.of({
      list: Effect.map(Ref.get(registry), (map) => [...map.values()].map(describeApp)),
      get: (appId) =>
        Effect.flatMap(Ref.get(registry), (map) => {
          const app = map.get(appId)
          return app ? Effect.succeed(describeApp(app)) : Effect.fail(new AppNotFound({ app: appId, message: `no app "${appId}"` }))
        }),
      describeSkill: (appId, skillName) => Effect.map(find(appId, skillName), ({ app, skill }) => describeSkill(app.manifest, skill.spec)),
      estimate: (request) =>
        Effect.flatMap(find(request.app, request.skill), ({ app, skill }) =>
          Effect.map(check(app, skill, request.input), (priced) => ({
            app: app.manifest.id,
            skill: skill.spec.name,
            credits: priced.credits,
            pricing: skill.spec.pricing,
            ...(skill.spec.pricing.model === "per_unit" ? { units: priced.units } : {}),
            sideEffects: skill.spec.sideEffects
          }))),
      invoke,
      register: (app) => Effect.as(Ref.update(registry, (map) => new Map(map).set(app.manifest.id, app)), describeApp(app)),
      registerWasm: (input, modules) =>
        Effect.gen(function*() {
          const manifest = yield* Either.match(Manifest.decode(input), { onLeft: Effect.fail, onRight: Effect.succeed })
          if (manifest.abi !== "extism-v1") {
            return yield* Effect.fail(
              new ManifestError({
                issues: [{ path: "abi", message: "must be \"extism-v1\" for a WASM app" }],
                message: "invalid manifest: abi: must be \"extism-v1\" for a WASM app"
              })
            )
          }
          const app = yield* Skill.wasm(manifest, modules).pipe(Effect.provide(context))
          yield* Ref.update(registry, (map) => new Map(map).set(app.manifest.id, app))
          return describeApp(app)
        }),
      unregister: (appId) => Ref.update(registry, (map) => {
        const next = new Map(map)
        next.delete(appId)
        return next
      })
    })
  })

/** The service over the given apps (the first-party ones by default). */
export const layer = (apps: ReadonlyArray<Skill.App> = FirstParty.apps): Layer.Layer<Skills, never, Host.SkillHost> =>
  Layer.effect(Skills, make(apps))

/**
 * Everything a runner or gateway needs: the service (first-party apps), the host (`options`,
 * e.g. from `Config.fromEnv`) and the KV store in the runtime's database (run
 * `KvStore.migrations` first; `bin/app.ts` does).
 */
export const layerSql = (
  options: Host.HostOptions = {},
  apps: ReadonlyArray<Skill.App> = FirstParty.apps
): Layer.Layer<Skills | Host.SkillHost, never, SqlClient.SqlClient> =>
  layer(apps).pipe(Layer.provideMerge(Host.layer(options)), Layer.provide(KvStore.layerSql()))
