#!/usr/bin/env node
// Runs the TypeScript entry point on Node (Deno runs bin/main.ts directly).
//
// The long-running roles (`start`, `runner`, `gateway`, `uploads`, `preview`) run one ES module
// bundled from the sources by esbuild, rebuilt when a source file changed (~0.5 s) and kept in
// node_modules/.cache/troupe. tsx's loader, which the other commands use, compiles each module
// on a loader thread of its own whose heap (~100 MB) stays for the life of the process: as a
// bundle, `troupe start` idles ~125 MB lighter (bench/RESULTS.md, "Idle footprint").
// TROUPE_BUNDLE=0 runs every command through tsx; so does any failure to bundle.
import { createHash } from "node:crypto"
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { dirname, join, relative, sep } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, "..")
const servers = new Set(["start", "runner", "gateway", "uploads", "preview"])

/**
 * A bundled module's `import.meta.url`/`dirname`/`filename` would be the bundle's; each source
 * file gets its own instead (they locate workers, templates, the web build next to the source):
 * `define` turns them into names each such module declares on its first line.
 */
const importMeta = {
  "import.meta.url": "__troupeImportMetaUrl",
  "import.meta.dirname": "__troupeImportMetaDirname",
  "import.meta.filename": "__troupeImportMetaFilename"
}
const importMetaPlugin = {
  name: "troupe-import-meta",
  setup(build) {
    build.onLoad({ filter: /\.(ts|mts|js|mjs)$/ }, async (args) => {
      if (args.path.includes(`${sep}node_modules${sep}`)) return undefined
      const source = await readFile(args.path, "utf8")
      if (!source.includes("import.meta")) return undefined
      const declare = `const __troupeImportMetaUrl = ${JSON.stringify(pathToFileURL(args.path).href)}, ` +
        `__troupeImportMetaDirname = ${JSON.stringify(dirname(args.path))}, __troupeImportMetaFilename = ${JSON.stringify(args.path)};`
      const shebang = source.startsWith("#!") ? source.indexOf("\n") + 1 : 0
      return {
        contents: source.slice(0, shebang) + declare + source.slice(shebang),
        loader: /\.m?ts$/.test(args.path) ? "ts" : "js"
      }
    })
  }
}

/** A digest of the source files a bundle was built from (their names and contents: ~10 ms). */
const stamp = (files) => {
  const hash = createHash("sha256")
  for (const file of files) hash.update(relative(root, file)).update("\0").update(readFileSync(file)).update("\0")
  return hash.digest("hex")
}

/** The path of a bundle of bin/main.ts that is current with its sources, building it if needed. */
const bundle = async () => {
  const dir = join(root, "node_modules", ".cache", "troupe")
  // one bundle per checkout (worktrees may share node_modules)
  const name = `main-${createHash("sha256").update(root).digest("hex").slice(0, 12)}`
  const out = join(dir, `${name}.mjs`)
  const inputsFile = join(dir, `${name}.inputs.json`)
  try {
    const recorded = JSON.parse(readFileSync(inputsFile, "utf8"))
    if (recorded.version === 2 && stamp(recorded.files.map((f) => join(root, f))) === recorded.stamp) return out
  } catch {
    // no bundle yet, or a source changed or went away: build
  }
  const esbuild = await import("esbuild")
  const tmp = `${out}.${process.pid}.tmp.mjs`
  try {
    const result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: [join(here, "main.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      target: `node${process.versions.node}`,
      packages: "external",
      outfile: tmp,
      metafile: true,
      logLevel: "silent",
      define: importMeta,
      plugins: [importMetaPlugin]
    })
    const files = Object.keys(result.metafile.inputs).map((f) => join(root, f))
    mkdirSync(dir, { recursive: true })
    renameSync(tmp, out)
    const record = { version: 2, files: files.map((f) => relative(root, f)), stamp: stamp(files) }
    writeFileSync(`${inputsFile}.${process.pid}.tmp`, JSON.stringify(record))
    renameSync(`${inputsFile}.${process.pid}.tmp`, inputsFile)
    return out
  } finally {
    await esbuild.stop()
  }
}

const runBundled = servers.has(process.argv[2]) && process.env.TROUPE_BUNDLE !== "0"
let entry
if (runBundled) {
  try {
    entry = await bundle()
  } catch (error) {
    process.stderr.write(`troupe: running through tsx (could not bundle: ${error?.message ?? error})\n`)
  }
}
if (entry) {
  await import(pathToFileURL(entry).href)
} else {
  const { register } = await import("tsx/esm/api")
  register()
  await import("./main.ts")
}
