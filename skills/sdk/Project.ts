/**
 * Skill projects for app authors: an AssemblyScript plugin (`assembly/index.ts`, built with
 * @extism/as-pdk and Troupe's SDK `assembly/troupe.ts`), its `manifest.json` and its `tests.json`.
 * `scaffold` creates one from the template (`skills/examples/template`) and writes the SDK into it
 * from its one source (`skills/sdk/assembly/troupe.ts`, which the examples in this repository
 * import by path), `build` compiles it with `asc` and checks the module against the manifest,
 * `runTests` runs its tests through the same registry and host as production.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"
import { readFileSync } from "node:fs"
import * as NodeFs from "node:fs/promises"
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import { AdmissionError, describe as describeError, ManifestError } from "../Errors.ts"
import * as Admission from "../host/Admission.ts"
import type * as Host from "../host/Host.ts"
import * as Manifest from "../manifest/Manifest.ts"
import * as Skills from "../Skills.ts"
import * as Package from "./Package.ts"

/** A project could not be read, scaffolded or compiled. */
export class ProjectError extends Schema.TaggedError<ProjectError>()("ProjectError", {
  dir: Schema.String,
  message: Schema.String,
  /** `build_failed` (asc, tests.json), `not_found` (no such file or project), `invalid_project`. */
  kind: Schema.optionalWith(Schema.Literal("build_failed", "not_found", "invalid_project"), { default: () => "build_failed" as const })
}) {
  get code(): string {
    return this.kind
  }
}

/** A project on disk. */
export interface Project {
  readonly dir: string
  readonly manifest: Manifest.AppManifest
  /** `assembly/index.ts`. */
  readonly entry: string
  /** `build/<id>.wasm`. */
  readonly wasmPath: string
}

/** The template `scaffold` copies. */
export const TEMPLATE_DIR = fileURLToPath(new URL("../examples/template/", import.meta.url))
const TEMPLATE_FILES = ["manifest.json", "tests.json", "package.json", "README.md", "assembly/index.ts"]

/**
 * Troupe's AssemblyScript SDK, its one source: a new project gets a copy (`assembly/troupe.ts`);
 * the examples here import it by path (from the `troupe-skill` package, its `sdk/` folder).
 */
export const SDK_SOURCE = fileURLToPath(new URL("../sdk/assembly/troupe.ts", import.meta.url))
/** Where a project keeps its copy of the SDK, and how its sources import it. */
const SDK_COPY = "assembly/troupe.ts"
/** How the template imports the SDK here (`skills/examples/template/assembly/index.ts`), and in a new project. */
const SDK_IMPORT = { template: "\"../../../sdk/assembly/troupe\"", project: "\"./troupe\"" } as const
/** Written from here rather than copied: package managers drop `.gitignore` files from packages. */
const GITIGNORE = "build/\nnode_modules/\n"

const fail = (dir: string, message: string) => new ProjectError({ dir, message })

const exists = (path: string) => NodeFs.stat(path).then(() => true, () => false)

/** Read a project's manifest. */
export const read = (dir: string): Effect.Effect<Project, ProjectError | ManifestError> =>
  Effect.gen(function*() {
    const root = NodePath.resolve(dir)
    const text = yield* Effect.tryPromise({
      try: () => NodeFs.readFile(NodePath.join(root, "manifest.json"), "utf8"),
      catch: () =>
        new ProjectError({ dir: root, kind: "not_found", message: `no manifest.json in ${root} (create a project with \`troupe skill new <dir>\`)` })
    })
    const manifest = yield* Either.match(Manifest.decodeJson(text), {
      onLeft: (e) => Effect.fail(new ManifestError({ issues: e.issues, message: `manifest.json: ${e.message}` })),
      onRight: Effect.succeed
    })
    if (manifest.abi !== "extism-v1") {
      return yield* Effect.fail(new ManifestError({ issues: [{ path: "abi", message: "must be \"extism-v1\"" }], message: "manifest.json: abi: must be \"extism-v1\"" }))
    }
    return { dir: root, manifest, entry: "assembly/index.ts", wasmPath: NodePath.join(root, "build", `${manifest.id}.wasm`) }
  })

/** Create a project in `dir` (which must be empty or absent); returns the files written. */
export const scaffold = (dir: string, options: { readonly id?: string } = {}): Effect.Effect<ReadonlyArray<string>, ProjectError> =>
  Effect.tryPromise({
    try: async () => {
      const root = NodePath.resolve(dir)
      if (await exists(root)) {
        const entries = await NodeFs.readdir(root)
        if (entries.length > 0) throw new ProjectError({ dir: root, kind: "invalid_project", message: `${root} is not empty` })
      }
      const base = NodePath.basename(root).toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^[^a-z]+/, "").replace(/-+$/, "")
      const id = options.id ?? (base.length > 0 ? base.slice(0, 64) : "hello")
      if (Either.isLeft(Schema.decodeUnknownEither(Manifest.AppId)(id))) {
        throw new ProjectError({ dir: root, kind: "invalid_project", message: `"${id}" is not a valid app id (a-z, 0-9, '-'); pass one with --id` })
      }
      const written: Array<string> = []
      // the tools themselves, so the project needs neither this repository nor a published package
      const tools = await Package.pack(NodePath.join(root, "vendor"))
      written.push(`vendor/${tools}`)
      for (const file of TEMPLATE_FILES) {
        let content = await NodeFs.readFile(NodePath.join(TEMPLATE_DIR, file), "utf8")
        if (file === "manifest.json") {
          const manifest = JSON.parse(content) as Record<string, unknown>
          manifest["id"] = id
          manifest["name"] = id.split("-").map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(" ")
          content = JSON.stringify(manifest, null, 2) + "\n"
        }
        if (file === "assembly/index.ts") content = content.replaceAll(SDK_IMPORT.template, SDK_IMPORT.project)
        if (file === "package.json") {
          const pkg = JSON.parse(content) as Record<string, unknown>
          pkg["name"] = `${id}-skill`
          pkg["devDependencies"] = { ...(pkg["devDependencies"] as Record<string, string>), "troupe-skill": `file:vendor/${tools}` }
          content = JSON.stringify(pkg, null, 2) + "\n"
        }
        const target = NodePath.join(root, file)
        await NodeFs.mkdir(NodePath.dirname(target), { recursive: true })
        await NodeFs.writeFile(target, content)
        written.push(file)
      }
      await NodeFs.copyFile(SDK_SOURCE, NodePath.join(root, SDK_COPY))
      written.push(SDK_COPY)
      await NodeFs.writeFile(NodePath.join(root, ".gitignore"), GITIGNORE)
      written.push(".gitignore")
      return written
    },
    catch: (e) => e instanceof ProjectError ? e : fail(dir, `cannot create the project: ${(e as Error).message}`)
  })

/** Where `@extism/as-pdk` is installed, so projects outside this repository resolve it. */
const packagePath = (): string => {
  const require = createRequire(import.meta.url)
  const pdk = require.resolve("@extism/as-pdk/package.json")
  return NodePath.dirname(NodePath.dirname(NodePath.dirname(pdk)))
}

let compiling: Promise<unknown> = Promise.resolve()

/**
 * The SDK a project compiles with: its own copy (`assembly/troupe.ts`), else the one source (an
 * example in this repository, which imports it by path).
 */
const sdkOf = async (dir: string): Promise<string> => {
  const copy = NodePath.join(NodePath.resolve(dir), SDK_COPY)
  return (await exists(copy)) ? copy : SDK_SOURCE
}

/**
 * Compile an AssemblyScript entry (relative to `dir`) to `outFile` with @extism/as-pdk resolvable
 * and Troupe's SDK abort handler (the project's `assembly/troupe.ts`, else the SDK's one source).
 * One compilation at a time.
 */
export const compileSource = (
  dir: string,
  entry: string,
  outFile: string,
  options: { readonly optimize?: "debug" | "release" } = {}
): Effect.Effect<Uint8Array, ProjectError> =>
  Effect.tryPromise({
    try: () => {
      const job = compiling.then(async () => {
        const target = NodePath.resolve(dir, outFile)
        await NodeFs.mkdir(NodePath.dirname(target), { recursive: true })
        // asc names a module by its path from the base folder, without the extension
        const sdk = NodePath.relative(NodePath.resolve(dir), await sdkOf(dir)).split(NodePath.sep).join("/").replace(/\.ts$/, "")
        const args = [
          entry,
          "--outFile",
          NodePath.relative(dir, target),
          "--use",
          `abort=${sdk}/abort`,
          "--runtime",
          "incremental",
          ...(options.optimize === "debug" ? ["-O0", "--debug"] : ["-O3"]),
          "--path",
          packagePath(),
          "--baseDir",
          dir
        ]
        // the compiler runs in a plain-Node worker: through the CLI's TypeScript loader it loads 10× slower
        const result = await new Promise<{ ok: boolean; error: string; stderr: string }>((resolve, reject) => {
          const worker = new Worker(new URL("./compile-worker.mjs", import.meta.url), { workerData: { args }, execArgv: [] })
          worker.once("message", resolve)
          worker.once("error", reject)
          worker.once("exit", (code) => reject(new Error(`the compiler exited (${code})`)))
        })
        if (!result.ok) {
          const diagnostics = result.stderr.trim()
          throw fail(dir, `asc could not compile ${entry}: ${diagnostics.length > 0 ? diagnostics : result.error}`)
        }
        return new Uint8Array(await NodeFs.readFile(target))
      })
      compiling = job.catch(() => undefined)
      return job
    },
    catch: (e) => e instanceof ProjectError ? e : fail(dir, `asc failed: ${(e as Error).message}`)
  })

/** Compile the project's AssemblyScript to `build/<id>.wasm`. */
export const compile = (
  project: Project,
  options: { readonly optimize?: "debug" | "release" } = {}
): Effect.Effect<Uint8Array, ProjectError> => compileSource(project.dir, project.entry, project.wasmPath, options)

/** Check a module against its manifest without running it (what `load` will check again). */
export const check = (manifest: Manifest.AppManifest, bytes: Uint8Array): Either.Either<void, AdmissionError> => {
  const problems = Admission.checkApp(manifest, [{ name: "main", bytes }])
  return problems.length > 0 ? Either.left(new AdmissionError({ problems, message: `${manifest.id}: ${problems.join("; ")}` })) : Either.right(undefined)
}

/** A built project. */
export interface Built {
  readonly project: Project
  readonly bytes: Uint8Array
  readonly durationMs: number
  /** The module of an earlier build was reused (nothing changed). */
  readonly reused: boolean
}

/** The files under `dir` (recursively), sorted, skipping `node_modules` and `build`. */
const sourceFiles = async (root: string, dir: string): Promise<Array<string>> => {
  const entries = await NodeFs.readdir(NodePath.join(root, dir), { withFileTypes: true }).catch(() => [])
  const files: Array<string> = []
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = NodePath.join(dir, e.name)
    if (e.isDirectory()) files.push(...(await sourceFiles(root, rel)))
    else if (e.isFile()) files.push(rel)
  }
  return files
}

/** A digest of what a build depends on: the sources, the manifest, the mode and the compilers' versions. */
const inputsDigest = async (project: Project, optimize: string): Promise<string> => {
  const hash = NodeCrypto.createHash("sha256")
  const require = createRequire(import.meta.url)
  const versionOf = (pkg: string) => {
    try {
      return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), "utf8")) as { version?: string }).version ?? "?"
    } catch {
      return "?"
    }
  }
  hash.update(`${optimize}\0${versionOf("assemblyscript")}\0${versionOf("@extism/as-pdk")}\0`)
  for (const file of ["manifest.json", ...(await sourceFiles(project.dir, "assembly"))]) {
    hash.update(`${file}\0`)
    hash.update(await NodeFs.readFile(NodePath.join(project.dir, file)))
    hash.update("\0")
  }
  // an example here compiles with the SDK's one source
  const sdk = await sdkOf(project.dir)
  if (sdk === SDK_SOURCE) hash.update(await NodeFs.readFile(sdk))
  return hash.digest("hex")
}

/** Where a build records the digest of its inputs, beside the module. */
const stampPath = (project: Project) => `${project.wasmPath}.inputs`

/**
 * Compile a project and check the module against its manifest. The module is reused when
 * nothing it depends on changed since it was built (`build/<id>.wasm.inputs` holds the digest of
 * the sources, the manifest, the mode and the compilers' versions); `force` compiles anyway.
 */
export const build = (
  dir: string,
  options: { readonly optimize?: "debug" | "release"; readonly force?: boolean } = {}
): Effect.Effect<Built, ProjectError | ManifestError | AdmissionError> =>
  Effect.gen(function*() {
    const started = performance.now()
    const project = yield* read(dir)
    const digest = yield* Effect.promise(() => inputsDigest(project, options.optimize ?? "release"))
    const cached = options.force ? undefined : yield* Effect.promise(async () => {
      const stamp = await NodeFs.readFile(stampPath(project), "utf8").catch(() => "")
      return stamp.trim() === digest ? await NodeFs.readFile(project.wasmPath).then((b) => new Uint8Array(b), () => undefined) : undefined
    })
    const bytes = cached ?? (yield* compile(project, options))
    yield* Either.match(check(project.manifest, bytes), { onLeft: Effect.fail, onRight: () => Effect.void })
    if (!cached) yield* Effect.promise(() => NodeFs.writeFile(stampPath(project), digest + "\n").catch(() => undefined))
    return { project, bytes, durationMs: performance.now() - started, reused: cached !== undefined }
  })

/** One case of `tests.json`. */
export const TestCase = Schema.Struct({
  name: Schema.String,
  skill: Schema.String,
  input: Schema.Unknown,
  user: Schema.optional(Schema.String),
  install: Schema.optional(Schema.String),
  config: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  secrets: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  expect: Schema.Struct({
    output: Schema.optional(Schema.Unknown),
    error: Schema.optional(Schema.String),
    errorContains: Schema.optional(Schema.String),
    credits: Schema.optional(Schema.Number)
  })
})
export type TestCase = typeof TestCase.Type

/** The outcome of one case. */
export interface TestResult {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
  readonly durationMs: number
}

const sameJson = (a: unknown, b: unknown): boolean => {
  const canon = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canon)
      : v !== null && typeof v === "object"
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => x.localeCompare(y)).map(([k, x]) => [k, canon(x)]))
      : v
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b))
}

/** Read `tests.json` (an absent file means no tests). */
export const readTests = (project: Project): Effect.Effect<ReadonlyArray<TestCase>, ProjectError> =>
  Effect.gen(function*() {
    const path = NodePath.join(project.dir, "tests.json")
    if (!(yield* Effect.promise(() => exists(path)))) return []
    const text = yield* Effect.tryPromise({ try: () => NodeFs.readFile(path, "utf8"), catch: () => fail(project.dir, "cannot read tests.json") })
    const parsed = yield* Effect.try({ try: () => JSON.parse(text) as unknown, catch: (e) => fail(project.dir, `tests.json is not JSON: ${(e as Error).message}`) })
    return yield* Schema.decodeUnknown(Schema.Array(TestCase))(parsed).pipe(
      Effect.mapError((e) => fail(project.dir, `tests.json: ${e.message}`))
    )
  })

/** Run test cases against a built project, through the registry and host in context. */
export const runTests = (
  built: Built,
  cases: ReadonlyArray<TestCase>
): Effect.Effect<ReadonlyArray<TestResult>, ManifestError | AdmissionError, Host.SkillHost> =>
  Effect.gen(function*() {
    const skills = yield* Skills.make([])
    const app = yield* skills.registerWasm(Manifest.encode(built.project.manifest), [{ name: "main", bytes: built.bytes }])
    const results: Array<TestResult> = []
    for (const c of cases) {
      const started = performance.now()
      const outcome = yield* Effect.either(skills.invoke({
        app: app.id,
        skill: c.skill,
        input: c.input,
        userId: c.user ?? "test-user",
        installId: c.install ?? "test-install",
        config: c.config ?? {},
        secrets: c.secrets ?? {}
      }))
      const durationMs = performance.now() - started
      const problems: Array<string> = []
      if (Either.isRight(outcome)) {
        const r = outcome.right
        if (c.expect.error !== undefined || c.expect.errorContains !== undefined) {
          problems.push(`expected error ${c.expect.error ?? c.expect.errorContains}, got output ${JSON.stringify(r.result)}`)
        }
        if (c.expect.output !== undefined && !sameJson(r.result, c.expect.output)) {
          problems.push(`expected output ${JSON.stringify(c.expect.output)}, got ${JSON.stringify(r.result)}`)
        }
        if (c.expect.credits !== undefined && r.credits !== c.expect.credits) problems.push(`expected ${c.expect.credits} credits, charged ${r.credits}`)
      } else {
        const e = describeError(outcome.left)
        if (c.expect.error === undefined && c.expect.errorContains === undefined) problems.push(`failed with ${e.code}: ${e.message}`)
        if (c.expect.error !== undefined && e.code !== c.expect.error) problems.push(`expected error ${c.expect.error}, got ${e.code}: ${e.message}`)
        if (c.expect.errorContains !== undefined && !e.message.includes(c.expect.errorContains)) {
          problems.push(`expected an error containing ${JSON.stringify(c.expect.errorContains)}, got ${e.code}: ${e.message}`)
        }
      }
      results.push({ name: c.name, ok: problems.length === 0, detail: problems.join("; "), durationMs })
    }
    return results
  })
