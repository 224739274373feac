#!/usr/bin/env node
// This machine's npm registry mirror has no binaries for other platforms (e.g. @deno/darwin-arm64
// answers 404), so `npm install` leaves them out of package-lock.json, and then `npm ci` refuses
// the lock as out of sync. This adds an `optional` entry for every optional dependency missing
// from the lock: `npm ci` then tries it, gets a 404 and skips it, as it does for any optional
// package that cannot be installed. Idempotent; run before `npm ci` (.ci/run does).
import { readFileSync, writeFileSync } from "node:fs"

const path = new URL("../package-lock.json", import.meta.url)
const lock = JSON.parse(readFileSync(path, "utf8"))
const packages = lock.packages
let added = 0
for (const [at, entry] of Object.entries(packages)) {
  for (const [name, range] of Object.entries(entry.optionalDependencies ?? {})) {
    if (packages[`${at}/node_modules/${name}`] || packages[`node_modules/${name}`]) continue
    packages[`node_modules/${name}`] = { version: String(range).replace(/^[\^~=]/, ""), optional: true, ...(entry.dev ? { dev: true } : {}) }
    added++
  }
}
if (added > 0) writeFileSync(path, JSON.stringify(lock, null, 2) + "\n")
process.stdout.write(`lockfile-stubs: ${added} optional platform package(s) added\n`)
