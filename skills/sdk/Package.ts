/**
 * The `troupe-skill` package: Troupe's tools for skill authors (`troupe skill …`) as one plain
 * JavaScript file with its workers, the project template and the AssemblyScript SDK, packed by `npm pack` into a tarball
 * that `troupe skill new` puts in the new project (`vendor/troupe-skill-<version>.tgz`) and that the
 * project's `package.json` names (`"troupe-skill": "file:vendor/…"`). The project so needs neither
 * this repository nor a published package: `npm install` installs the tools (and their three
 * dependencies from the npm registry), `npm test` runs `troupe skill test .` with them.
 *
 * From this repository the package is bundled with esbuild into a temporary folder and packed;
 * from the package itself (a project creating another) it packs its own folder again.
 */
import { execFile } from "node:child_process"
import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

/** Set (by the bundler) when this code runs from the `troupe-skill` package. */
declare const TROUPE_SKILL_PACKAGE: { readonly version: string } | undefined

/** The tools' own package, when running from it. */
const packaged = typeof TROUPE_SKILL_PACKAGE === "undefined" ? undefined : TROUPE_SKILL_PACKAGE

/** The dependencies the bundle leaves out (workers and the compiler load them by name). */
const external = ["@extism/extism", "@extism/as-pdk", "assemblyscript"] as const

const here = NodePath.dirname(fileURLToPath(import.meta.url))

const run = promisify(execFile)

/** The package's folder: the one holding this bundle, or one built from this repository's sources. */
const stage = async (): Promise<{ readonly dir: string; readonly version: string; readonly temporary: boolean }> => {
  if (packaged) return { dir: NodePath.dirname(here), version: packaged.version, temporary: false }
  const root = NodePath.resolve(here, "..", "..")
  const rootPkg = JSON.parse(await NodeFs.readFile(NodePath.join(root, "package.json"), "utf8")) as {
    readonly version: string
    readonly license?: string
    readonly engines?: Record<string, string>
    readonly dependencies: Record<string, string>
  }
  const dir = await NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "troupe-skill-"))
  const dist = NodePath.join(dir, "dist")
  // esbuild ships a native binary per platform: loaded only here, when a project is created
  const esbuild = await import("esbuild")
  await esbuild.build({
    entryPoints: [NodePath.join(here, "main.ts")],
    outfile: NodePath.join(dist, "troupe.mjs"),
    bundle: true,
    minify: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: [...external, ...external.map((e) => `${e}/*`)],
    define: { TROUPE_SKILL_PACKAGE: JSON.stringify({ version: rootPkg.version }) },
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __troupeRequire } from 'node:module'; const require = __troupeRequire(import.meta.url);" },
    logLevel: "error"
  })
  await NodeFs.copyFile(NodePath.join(here, "compile-worker.mjs"), NodePath.join(dist, "compile-worker.mjs"))
  await NodeFs.copyFile(NodePath.join(here, "..", "host", "worker-preload.mjs"), NodePath.join(dist, "worker-preload.mjs"))
  await NodeFs.cp(NodePath.join(here, "..", "examples", "template"), NodePath.join(dir, "examples", "template"), { recursive: true })
  // the SDK's one source, where the template imports it from and `skill new` copies it from
  await NodeFs.mkdir(NodePath.join(dir, "sdk", "assembly"), { recursive: true })
  await NodeFs.copyFile(NodePath.join(here, "assembly", "troupe.ts"), NodePath.join(dir, "sdk", "assembly", "troupe.ts"))
  const pkg = {
    name: "troupe-skill",
    version: rootPkg.version,
    description: "Troupe's tools for skill authors: troupe skill new|build|test|run|keygen|publish",
    type: "module",
    license: rootPkg.license ?? "MIT",
    engines: rootPkg.engines ?? { node: ">=20" },
    bin: { troupe: "dist/troupe.mjs" },
    files: ["dist", "examples", "sdk"],
    dependencies: Object.fromEntries(external.map((name) => [name, rootPkg.dependencies[name]!]))
  }
  await NodeFs.writeFile(NodePath.join(dir, "package.json"), JSON.stringify(pkg, null, 2) + "\n")
  return { dir, version: rootPkg.version, temporary: true }
}

/** Pack the `troupe-skill` package into `destination`; returns the tarball's file name. */
export const pack = async (destination: string): Promise<string> => {
  const staged = await stage()
  try {
    await NodeFs.mkdir(destination, { recursive: true })
    const { stdout } = await run(process.platform === "win32" ? "npm.cmd" : "npm", ["pack", "--silent", "--pack-destination", destination], {
      cwd: staged.dir,
      env: { ...process.env, npm_config_loglevel: "error" }
    })
    const file = stdout.trim().split("\n").pop()!.trim()
    return NodePath.basename(file)
  } finally {
    if (staged.temporary) await NodeFs.rm(staged.dir, { recursive: true, force: true })
  }
}
