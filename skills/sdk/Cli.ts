/**
 * `troupe skill …`: the app author's commands.
 *
 * - `skill new <dir> [--id id]` scaffolds an AssemblyScript skill (@extism/as-pdk + Troupe's SDK);
 * - `skill build [dir] [--debug]` compiles it and checks the module against its manifest;
 * - `skill test [dir] [--debug]` builds it and runs `tests.json` through the registry and host;
 * - `skill run <file.wasm|dir> <export> [input] [--config k=v]… [--allow-host h]… [--wasi]
 *   [--timeout-ms n] [--memory-mb n] [--allow-private-host host:port]…` runs one export in the
 *   same host as production (same limits, same typed errors) and prints its output.
 *
 * Failures print `troupe: <code>: <message>` on stderr and exit with status 1.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { Buffer } from "node:buffer"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import * as Telemetry from "../../runtime/Telemetry.ts"
import { describe as describeError, type SkillsError } from "../Errors.ts"
import * as Host from "../host/Host.ts"
import * as KvStore from "../host/KvStore.ts"
import * as Wasm from "../host/Wasm.ts"
import * as Manifest from "../manifest/Manifest.ts"
import * as ArtifactStore from "../store/ArtifactStore.ts"
import * as Client from "../store/Client.ts"
import * as Oci from "../store/Oci.ts"
import * as Publish from "../store/Publish.ts"
import * as Signing from "../store/Signing.ts"
import * as Project from "./Project.ts"

const out = (line: string) => Effect.sync(() => void process.stdout.write(line + "\n"))
const err = (line: string) => Effect.sync(() => void process.stderr.write(line + "\n"))

/** Plugin logs and host warnings go to stderr, so stdout carries only results. */
const logging = Telemetry.layerLogging({
  service: "skill",
  level: LogLevel.Info,
  format: "pretty",
  write: (line) => void process.stderr.write(line + "\n")
})

type CommandError = SkillsError | Project.ProjectError

/** Print a typed error and set the exit status. */
const report = (e: CommandError) => {
  if (e._tag === "ProjectError") return Effect.zipRight(err(`troupe: ${e.code}: ${e.message}`), Effect.sync(() => void (process.exitCode = 1)))
  const d = describeError(e)
  return Effect.zipRight(err(`troupe: ${d.code}: ${d.message}`), Effect.sync(() => void (process.exitCode = 1)))
}

const hostLayer = (options: Host.HostOptions = {}) => Host.layer(options).pipe(Layer.provide(KvStore.layerMemory()))

const dirArg = Args.text({ name: "dir" }).pipe(Args.withDefault("."), Args.withDescription("The skill project (default: the current directory)"))
const debugOption = Options.boolean("debug").pipe(Options.withDescription("Build without optimisation (faster to compile)"))

const newCommand = Command.make(
  "new",
  {
    dir: Args.text({ name: "dir" }).pipe(Args.withDescription("Where to create the project (must be empty or absent)")),
    id: Options.text("id").pipe(Options.optional, Options.withDescription("The app id (default: from the directory name)"))
  },
  ({ dir, id }) =>
    Project.scaffold(dir, Option.isSome(id) ? { id: id.value } : {}).pipe(
      Effect.flatMap((files) =>
        Effect.forEach([
          `Created a skill project in ${NodePath.resolve(dir)}:`,
          ...files.map((f) => `  ${f}`),
          "",
          "Next:",
          `  cd ${dir} && npm install   # Troupe's skill tools (vendor/troupe-skill-*.tgz) and the compiler`,
          "  npm test                   # troupe skill test . (builds, then runs tests.json)",
          `  npx troupe skill run . hello '{"name":"world"}'`
        ], out)
      ),
      Effect.catchAll(report)
    )
).pipe(Command.withDescription("Create an AssemblyScript skill project (@extism/as-pdk, manifest, tests)."))

const forceOption = Options.boolean("force").pipe(Options.withDescription("Compile even if nothing changed since the last build"))

const buildCommand = Command.make("build", { dir: dirArg, debug: debugOption, force: forceOption }, ({ debug, dir, force }) =>
  Project.build(dir, { optimize: debug ? "debug" : "release", force }).pipe(
    Effect.flatMap((b) =>
      out(
        `${b.reused ? "Up to date" : "Built"} ${NodePath.relative(process.cwd(), b.project.wasmPath) || b.project.wasmPath} (${Wasm.formatBytes(b.bytes.byteLength)}) in ${
          (b.durationMs / 1000).toFixed(1)
        } s; manifest ok: ${b.project.manifest.id} ${b.project.manifest.version}, skills ${b.project.manifest.skills.map((s) => s.name).join(", ")}`
      )
    ),
    Effect.catchAll(report)
  )).pipe(Command.withDescription("Compile the project with asc and check the module against manifest.json."))

const testCommand = Command.make("test", { dir: dirArg, debug: debugOption }, ({ debug, dir }) =>
  Effect.gen(function*() {
    const built = yield* Project.build(dir, { optimize: debug ? "debug" : "release" })
    const cases = yield* Project.readTests(built.project)
    if (cases.length === 0) {
      yield* out("No tests (add them to tests.json).")
      return
    }
    const results = yield* Effect.scoped(Project.runTests(built, cases).pipe(Effect.provide(hostLayer())))
    for (const r of results) {
      yield* out(`${r.ok ? "✓" : "✗"} ${r.name} (${r.durationMs.toFixed(1)} ms)${r.ok ? "" : `\n    ${r.detail}`}`)
    }
    const failed = results.filter((r) => !r.ok).length
    yield* out(`${results.length - failed} passed, ${failed} failed`)
    if (failed > 0) process.exitCode = 1
  }).pipe(Effect.catchAll(report), Effect.provide(logging))).pipe(
    Command.withDescription("Build the project and run tests.json in Troupe's skill host.")
  )

const readInput = (given: Option.Option<string>): Effect.Effect<string> =>
  Option.match(given, {
    onNone: () => Effect.succeed(""),
    onSome: (text) =>
      text !== "-"
        ? Effect.succeed(text)
        : Effect.promise(async () => {
          const chunks: Array<Uint8Array> = []
          for await (const chunk of process.stdin) chunks.push(chunk as Uint8Array)
          return Buffer.concat(chunks).toString("utf8")
        })
  })

const runCommand = Command.make(
  "run",
  {
    target: Args.text({ name: "file.wasm|dir" }).pipe(Args.withDescription("A compiled plugin, or a skill project (built first)")),
    exportName: Args.text({ name: "export" }).pipe(Args.withDescription("The function to call (for a project: a skill name or export)")),
    input: Args.text({ name: "input" }).pipe(Args.optional, Args.withDescription("The input (`-` reads stdin; default empty)")),
    config: Options.keyValueMap("config").pipe(Options.optional, Options.withDescription("Config (and secrets) for the plugin, k=v; repeatable")),
    allowHost: Options.text("allow-host").pipe(Options.repeated, Options.withDescription("A host (glob) the plugin may reach; repeatable")),
    wasi: Options.boolean("wasi").pipe(Options.withDescription("Enable WASI preview 1 (stdout/stderr go to this terminal)")),
    timeoutMs: Options.integer("timeout-ms").pipe(Options.optional, Options.withDescription("Wall-clock limit (default 5000, or the manifest's)")),
    memoryMb: Options.integer("memory-mb").pipe(Options.optional, Options.withDescription("Memory limit in MiB (default 32, or the manifest's)")),
    allowPrivateHost: Options.text("allow-private-host").pipe(
      Options.repeated,
      Options.withDescription("host:port of a private server (e.g. your mock) the plugin may reach; repeatable")
    )
  },
  (args) =>
    Effect.gen(function*() {
      const config = Option.match(args.config, { onNone: () => ({}), onSome: (m) => Object.fromEntries(HashMap.toEntries(m)) })
      const input = yield* readInput(args.input)
      const stat = yield* Effect.tryPromise({
        try: () => NodeFs.stat(args.target),
        catch: () => new Project.ProjectError({ dir: args.target, kind: "not_found", message: `${args.target} does not exist` })
      })
      let spec: Host.PluginSpec
      let exportName = args.exportName
      if (stat.isDirectory()) {
        // the same build as `skill test` and `skill build`, so an unchanged project is not compiled again
        const built = yield* Project.build(args.target, { optimize: "release" })
        const manifest = built.project.manifest
        const skill = manifest.skills.find((s) => s.name === args.exportName || Manifest.exportOf(s) === args.exportName)
        if (skill) exportName = Manifest.exportOf(skill)
        const limits = skill ? Manifest.limitsOf(manifest, skill) : manifest.limits
        const secretKeys = manifest.config.filter((c) => c.secret).map((c) => c.key)
        spec = {
          name: manifest.id,
          modules: [{ name: "main", bytes: built.bytes }],
          wasi: manifest.permissions.wasi || args.wasi,
          wasiOutput: true,
          allowedHosts: [...manifest.permissions.allowedHosts, ...args.allowHost],
          config: Object.fromEntries(Object.entries(config).filter(([k]) => !secretKeys.includes(k))),
          hostFunctions: manifest.permissions.hostFunctions,
          secretKeys,
          exports: [exportName],
          limits: {
            memoryBytes: Option.getOrElse(args.memoryMb, () => limits.memoryMb) * 1024 * 1024,
            timeoutMs: Option.getOrElse(args.timeoutMs, () => limits.timeoutMs),
            maxInputBytes: limits.maxInputBytes,
            maxOutputBytes: limits.maxOutputBytes
          }
        }
      } else {
        const bytes = yield* Effect.tryPromise({
          try: () => NodeFs.readFile(args.target),
          catch: () => new Project.ProjectError({ dir: args.target, kind: "not_found", message: `cannot read ${args.target}` })
        })
        spec = {
          name: NodePath.basename(args.target),
          modules: [{ name: "main", bytes: new Uint8Array(bytes) }],
          wasi: args.wasi,
          wasiOutput: true,
          allowedHosts: args.allowHost,
          config,
          hostFunctions: ["kv_get", "kv_set", "secret_get"],
          secretKeys: Object.keys(config),
          exports: [exportName],
          limits: {
            ...(Option.isSome(args.memoryMb) ? { memoryBytes: args.memoryMb.value * 1024 * 1024 } : {}),
            ...(Option.isSome(args.timeoutMs) ? { timeoutMs: args.timeoutMs.value } : {})
          }
        }
      }
      const result = yield* Effect.scoped(
        Effect.gen(function*() {
          const host = yield* Host.SkillHost
          const plugin = yield* host.load(spec)
          return yield* host.call(plugin, exportName, input, { secrets: config })
        }).pipe(Effect.provide(hostLayer({ allowedPrivateHosts: args.allowPrivateHost })))
      )
      if (result.output !== null) {
        const output = result.output
        yield* Effect.sync(() => void process.stdout.write(new TextDecoder().decode(output) + "\n"))
      }
    }).pipe(Effect.catchAll(report), Effect.provide(logging))
).pipe(Command.withDescription("Run one export of a plugin in Troupe's host, with its limits and typed errors."))

const keygenCommand = Command.make(
  "keygen",
  { outFile: Options.text("out").pipe(Options.withDefault("troupe-publisher.key"), Options.withDescription("Where to write the private key (mode 0600)")) },
  ({ outFile }) =>
    Effect.gen(function*() {
      const exists = yield* Effect.promise(() => NodeFs.stat(outFile).then(() => true, () => false))
      if (exists) return yield* err(`troupe: key_exists: ${outFile} exists; pass another --out`).pipe(Effect.zipRight(Effect.sync(() => void (process.exitCode = 1))))
      const keys = Signing.generate()
      yield* Effect.promise(() => NodeFs.writeFile(outFile, keys.privateKeyPem, { mode: 0o600 }))
      yield* out(`Wrote the private key to ${outFile} (keep it secret). An admin trusts this public key with POST /v1/admin/publishers:`)
      yield* out(keys.publicKey)
    })
).pipe(Command.withDescription("Create an Ed25519 publisher key pair; prints the public key (ed25519:<base64>) as the last line."))

const publishCommand = Command.make(
  "publish",
  {
    dir: dirArg,
    server: Options.text("server").pipe(Options.optional, Options.withDescription("The Troupe server (its store API; API key in TROUPE_API_KEY, scope publish)")),
    registry: Options.text("registry").pipe(Options.optional, Options.withDescription("Push to this OCI registry instead (TROUPE_REGISTRY_USERNAME/PASSWORD or TROUPE_REGISTRY_TOKEN)")),
    namespace: Options.text("namespace").pipe(Options.withDefault("troupe"), Options.withDescription("The registry namespace (--registry)")),
    key: Options.text("key").pipe(Options.optional, Options.withDescription("The publisher's private key (default troupe-publisher.key if it exists)"))
  },
  (args) =>
    Effect.gen(function*() {
      const built = yield* Project.build(args.dir, { optimize: "release" })
      const manifest = Manifest.encode(built.project.manifest)
      const keyPath = Option.getOrElse(args.key, () => "troupe-publisher.key")
      const pem = yield* Effect.promise(() => NodeFs.readFile(keyPath, "utf8").catch(() => undefined))
      if (pem === undefined && Option.isSome(args.key)) {
        return yield* Effect.fail(new Project.ProjectError({ dir: args.dir, kind: "not_found", message: `cannot read the key ${keyPath}` }))
      }
      const privateKey = pem === undefined ? undefined : yield* Either.match(Signing.readPrivateKey(pem), {
        onLeft: (why) => Effect.fail(new Project.ProjectError({ dir: args.dir, kind: "invalid_project", message: `${keyPath}: ${why}` })),
        onRight: Effect.succeed
      })
      if (!privateKey) yield* err("troupe: warning: no publisher key (troupe skill keygen): publishing unsigned")
      const modules = [{ name: "main", bytes: built.bytes }]
      const bar = (sent: number, total: number) => {
        const width = 30
        const done = total === 0 ? width : Math.round((sent / total) * width)
        process.stderr.write(`\r[${"#".repeat(done)}${" ".repeat(width - done)}] ${Wasm.formatBytes(sent)} / ${Wasm.formatBytes(total)}`)
        if (sent >= total) process.stderr.write("\n")
      }
      if (Option.isSome(args.registry)) {
        const store = ArtifactStore.makeRegistry({
          url: args.registry.value,
          ...(process.env.TROUPE_REGISTRY_USERNAME ? { username: process.env.TROUPE_REGISTRY_USERNAME } : {}),
          ...(process.env.TROUPE_REGISTRY_PASSWORD ? { password: Redacted.make(process.env.TROUPE_REGISTRY_PASSWORD) } : {}),
          ...(process.env.TROUPE_REGISTRY_TOKEN ? { token: Redacted.make(process.env.TROUPE_REGISTRY_TOKEN) } : {})
        })
        const artifact = Oci.build(manifest, modules)
        const signature = privateKey ? Publish.sign(privateKey, manifest.id, artifact.digest) : undefined
        const repository = Publish.repositoryOf(args.namespace, manifest.id)
        yield* Publish.pushSigned(store, repository, manifest.version, artifact, signature, bar).pipe(
          Effect.mapError((e) => new Project.ProjectError({ dir: args.dir, kind: "build_failed", message: `${e.code}: ${e.message}` }))
        )
        yield* out(`Published ${manifest.id} ${manifest.version} to ${args.registry.value}/${repository} (${artifact.digest}${signature ? `, signed by ${signature.publicKey}` : ", unsigned"})`)
        return
      }
      if (Option.isNone(args.server)) return yield* Effect.fail(new Project.ProjectError({ dir: args.dir, kind: "invalid_project", message: "pass --server <url> (or --registry <url>)" }))
      const token = process.env.TROUPE_API_KEY
      if (!token) return yield* Effect.fail(new Project.ProjectError({ dir: args.dir, kind: "invalid_project", message: "set TROUPE_API_KEY to an API key with scope publish" }))
      const published = yield* Client.publish({ url: args.server.value, token }, { manifest, modules, ...(privateKey ? { privateKey } : {}), progress: bar }).pipe(
        Effect.mapError((e) => new Project.ProjectError({ dir: args.dir, kind: "build_failed", message: `${e.code}: ${e.message}` }))
      )
      yield* out(`Published ${published.app} ${published.version} (${published.digest})`)
    }).pipe(Effect.catchAll(report), Effect.provide(logging))
).pipe(Command.withDescription("Build, sign and publish the project through a Troupe server (--server) or straight to an OCI registry (--registry)."))

/** `troupe skill …` with its precise type (for running it on its own, e.g. in tests). */
export const skill = Command.make("skill").pipe(
  Command.withDescription("Write, build, test, run, sign and publish skills (Extism WASM plugins)."),
  Command.withSubcommands([newCommand, buildCommand, testCommand, runCommand, keygenCommand, publishCommand])
)

/** `troupe skill …`. */
export const command = skill as unknown as Command.Command<string, never, unknown, unknown>
