#!/usr/bin/env node
// Builds the web app (web/ → web/build) with Vite + SvelteKit. Runs from `npm install`
// (postinstall) and before `npm start` (prestart); skips the build when web/build is current
// (a digest of web/'s sources, config and the installed toolchain's versions matches the last
// build). `--force` always builds. Without the toolchain (`npm ci --omit=dev`) it says so and
// leaves the server to answer `/` with a page explaining how to build.
import { createHash } from "node:crypto"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const web = join(root, "web")
const stampFile = join(root, "node_modules", ".cache", "troupe", "web-build.sha256")
const force = process.argv.includes("--force")

/** The folder of an installed package, as Node resolves it from web/ (web/node_modules, then the root's). */
const packageDir = (name) => [join(web, "node_modules", name), join(root, "node_modules", name)].find((d) => existsSync(join(d, "package.json")))
if (!packageDir("vite") || !packageDir("@sveltejs/kit")) {
  process.stderr.write("troupe: the web app's build tools are not installed (npm install without --omit=dev builds it); / will say so\n")
  process.exit(0)
}
const vite = join(packageDir("vite"), "bin", "vite.js")

const digest = createHash("sha256")
const add = (path) => {
  const stat = statSync(path)
  if (stat.isDirectory()) {
    for (const name of readdirSync(path).sort()) add(join(path, name))
    return
  }
  digest.update(relative(web, path)).update("\0").update(readFileSync(path)).update("\0")
}
for (const p of ["src", "static", "svelte.config.js", "vite.config.ts", "package.json", "tsconfig.json"]) {
  if (existsSync(join(web, p))) add(join(web, p))
}
for (const dep of ["vite", "@sveltejs/kit", "svelte", "@sveltejs/vite-plugin-svelte", "@sveltejs/adapter-static"]) {
  digest.update(dep + "@" + JSON.parse(readFileSync(join(packageDir(dep), "package.json"), "utf8")).version + "\0")
}
const stamp = digest.digest("hex")

if (!force && existsSync(join(web, "build", "index.html")) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) process.exit(0)

process.stdout.write("troupe: building the web app (web/ → web/build)…\n")
const started = Date.now()
const result = spawnSync(process.execPath, [vite, "build", "--logLevel", "warn"], { cwd: web, stdio: "inherit", env: { ...process.env, NODE_ENV: "production" } })
if (result.status !== 0) {
  process.stderr.write(`troupe: the web app failed to build (exit ${result.status ?? result.signal})\n`)
  process.exit(1)
}
mkdirSync(dirname(stampFile), { recursive: true })
writeFileSync(stampFile, stamp)
process.stdout.write(`troupe: web app built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
