#!/usr/bin/env node
// postinstall: initialise an empty embedded database once and keep it as a template, so the
// first `npm start` copies it instead of running initdb (saves ~5 s). Never fails the install.
import { mkdirSync, existsSync, readFileSync, writeFileSync, renameSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
try {
  const { PGlite } = await import("@electric-sql/pglite")
  const pkg = JSON.parse(readFileSync(join(root, "node_modules", "@electric-sql", "pglite", "package.json"), "utf8"))
  const target = join(root, "node_modules", ".cache", "troupe", `pglite-${pkg.version}.tar.gz`)
  if (!existsSync(target)) {
    const db = await PGlite.create()
    const dump = await db.dumpDataDir("gzip")
    await db.close()
    mkdirSync(dirname(target), { recursive: true })
    writeFileSync(`${target}.tmp`, new Uint8Array(await dump.arrayBuffer()))
    renameSync(`${target}.tmp`, target)
  }
} catch (error) {
  process.stderr.write(`troupe: skipped the embedded database template (${error?.message ?? error}); the first start will initialise it\n`)
}
