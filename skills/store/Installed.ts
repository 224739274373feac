/**
 * Installed apps in a process's skills registry. Every process that has a `Skills` service (the
 * runners, `start`) polls the install generation (`TROUPE_STORE_POLL_INTERVAL`, 1 s) and brings
 * its registry in line: a new install appears in `GET /v1/apps` at once (its manifest is in the
 * database), an uninstalled one disappears, so new calls stop everywhere within a poll.
 *
 * The artifact itself is pulled on the first call of one of its skills, by the install's digest,
 * verified (signature → digests → admission) and cached: the bytes on disk, the compiled module in
 * memory. A failed pull fails that call (`skill_unavailable`) and is tried again on the next one.
 * A trust change makes every process verify again before the next call.
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { KeyRing } from "../../runtime/KeyRing.ts"
import { type RunError, SkillFailed, SkillUnavailable } from "../Errors.ts"
import * as Host from "../host/Host.ts"
import * as Skill from "../Skill.ts"
import { Skills } from "../Skills.ts"
import type * as Catalog from "./Catalog.ts"
import { StoreConfig } from "./Config.ts"
import * as Installs from "./Installs.ts"
import { Store } from "./Store.ts"

/** The installed apps of this process. */
export class InstalledApps extends Context.Tag("troupe/skills/store/InstalledApps")<InstalledApps, {
  /** Bring the registry in line with the database now (the poll does it every interval). */
  readonly refresh: Effect.Effect<void>
  /** The app ids registered from installs, with their pinned digests. */
  readonly current: Effect.Effect<ReadonlyMap<string, string>>
}>() {}

/** Keep the skills registry in line with the installs. */
export const make = Effect.gen(function*() {
  const skills = yield* Skills
  const store = yield* Store
  const settings = yield* StoreConfig
  const hostContext = yield* Effect.context<Host.SkillHost>()
  const keys = yield* Effect.serviceOption(KeyRing)

  /** Registered installs: app id → the install (digest, manifest, config). */
  const registered = new Map<string, Catalog.Install>()
  /** Verified and admitted artifacts by digest (cleared when trust changes). */
  let loaded = new Map<string, Deferred.Deferred<Skill.App, RunError>>()
  let seen = -1
  let trustedKeys = ""

  const load = (install: Catalog.Install, skill: string): Effect.Effect<Skill.App, RunError> =>
    Effect.suspend(() => {
      const existing = loaded.get(install.digest)
      if (existing) return Deferred.await(existing)
      const table = loaded
      return Effect.gen(function*() {
        const deferred = yield* Deferred.make<Skill.App, RunError>()
        table.set(install.digest, deferred)
        const exit = yield* Effect.exit(
          store.pull(install.appId, install.digest).pipe(
            Effect.flatMap((verified) => Skill.wasm(verified.manifest, verified.modules)),
            Effect.provide(hostContext),
            Effect.mapError((e): RunError =>
              e._tag === "AdmissionError"
                ? new SkillFailed({ skill, reason: "crashed", message: `the installed artifact was refused: ${e.message}` })
                : new SkillUnavailable({ skill, reason: e.code, message: `${install.appId} ${install.version} cannot be loaded here: ${e.message}` })
            ),
            Effect.tap((app) => Effect.logInfo("Installed app loaded").pipe(Effect.annotateLogs({ app: app.manifest.id, digest: install.digest })))
          )
        )
        // a failure is not kept: the next call tries again
        if (Exit.isFailure(exit) && table.get(install.digest) === deferred) table.delete(install.digest)
        yield* Deferred.done(deferred, exit)
        return yield* exit
      })
    })

  /** The registry's entry for an install: its manifest now, its bytes on the first call. */
  const appOf = (install: Catalog.Install): Skill.App => {
    const skillsOf = new Map<string, Skill.Skill>()
    for (const spec of install.manifest.skills) {
      const id = `${install.appId}.${spec.name}`
      skillsOf.set(spec.name, {
        spec,
        run: (input, context) =>
          Effect.flatMap(load(install, id), (app) => {
            const skill = app.skills.get(spec.name)
            return skill
              ? skill.run(input, context)
              : Effect.fail(new SkillFailed({ skill: id, reason: "crashed", message: `the installed artifact has no skill ${spec.name}` }))
          })
      })
    }
    return {
      manifest: install.manifest,
      kind: "wasm",
      skills: skillsOf,
      settings: Option.match(keys, {
        onNone: () => Effect.succeed({ config: {}, secrets: {} }),
        onSome: (ring) =>
          Effect.mapError(
            Installs.resolveConfig(ring, install),
            (e) => new SkillUnavailable({ skill: install.appId, reason: e.code, message: `the config of ${install.appId} cannot be read: ${e.message}` })
          )
      })
    }
  }

  const sync = Effect.gen(function*() {
    const generation = yield* store.catalog.generation
    if (generation === seen) return
    const installs = yield* store.catalog.installs
    const policy = yield* store.trustPolicy
    const trust = JSON.stringify([...policy.trusted].sort())
    if (trust !== trustedKeys) {
      // what was verified against other keys is verified again before its next call
      loaded = new Map()
      trustedKeys = trust
    }
    const next = new Map(installs.map((i) => [i.appId, i]))
    for (const [appId] of registered) {
      if (!next.has(appId)) {
        yield* skills.unregister(appId)
        registered.delete(appId)
        yield* Effect.logInfo("Installed app removed").pipe(Effect.annotateLogs({ app: appId }))
      }
    }
    for (const install of installs) {
      const before = registered.get(install.appId)
      if (before && before.digest === install.digest && before.updatedAt.getTime() === install.updatedAt.getTime()) continue
      yield* skills.register(appOf(install))
      registered.set(install.appId, install)
    }
    seen = generation
  }).pipe(
    Effect.catchAll((e) => Effect.logWarning("Could not read the installed apps; trying again").pipe(Effect.annotateLogs({ error: e.message }))),
    Effect.withSpan("store.installed.sync")
  )

  const lock = yield* Effect.makeSemaphore(1)
  const refresh = lock.withPermits(1)(sync)
  yield* refresh
  yield* Effect.forkScoped(Effect.repeat(refresh, Schedule.spaced(settings.pollIntervalMs)))
  return InstalledApps.of({
    refresh,
    current: Effect.sync(() => new Map([...registered].map(([id, i]) => [id, i.digest])))
  })
})

/** The installed apps kept in the registry in context. */
export const layer: Layer.Layer<InstalledApps, never, Skills | Host.SkillHost | Store | StoreConfig> = Layer.scoped(InstalledApps, make)
