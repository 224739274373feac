#!/usr/bin/env node
/**
 * The layer check (`npm test` runs it first): a module may import only from its own folder's layer
 * or below. Layers, lowest first:
 *
 *   runtime  ←  entities  ←  skills, gateway, preview  ←  bin
 *
 * and among the third floor: gateway may import skills and preview; skills and preview import
 * neither gateway nor each other. Tests and `testing/` harnesses follow the same rule, except that
 * a test may use the harnesses of any folder (`<folder>/testing/`) to start what it is about.
 * `bench/` and `deploy/` sit beside `bin`. Prints each offending import and exits 1.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

const root = NodePath.resolve(import.meta.dirname, "..")
const folders = ["runtime", "entities", "skills", "gateway", "preview", "uploads", "bin", "bench", "deploy"]
const level = { runtime: 0, entities: 1, skills: 2, gateway: 2, preview: 2, uploads: 2, bin: 3, bench: 3, deploy: 3 }
/** Same-floor imports that are allowed (importer → imported). */
const sideways = new Set(["gateway→skills", "gateway→preview", "gateway→uploads", "uploads→preview", "bench→bin", "deploy→bin"])
/** Folders that speak to contracts (services, entity clients), never to a repository's SQL. */
const noRepositories = new Set(["gateway"])

const files = (dir) =>
  NodeFs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name === "node_modules" || e.name === "fixtures" || e.name.startsWith(".")) return []
    const path = NodePath.join(dir, e.name)
    // AssemblyScript (the skill SDK and the examples) is not part of the layers
    if (e.isDirectory()) return path.startsWith(NodePath.join(root, "skills")) && e.name === "assembly" ? [] : files(path)
    return /\.(m?[jt]s)$/.test(e.name) && !e.name.endsWith(".d.ts") ? [path] : []
  })

const specifiers = (text) => {
  const out = []
  for (const m of text.matchAll(/(?:^|[\s;])(?:import|export)\s[^"'`;]*?from\s*["']([^"']+)["']|(?:^|[\s;(])import\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm)) {
    out.push(m[1] ?? m[2] ?? m[3])
  }
  return out
}

const problems = []
let checked = 0
for (const folder of folders) {
  const dir = NodePath.join(root, folder)
  if (!NodeFs.existsSync(dir)) continue
  for (const file of files(dir)) {
    checked++
    const isTest = /\.test\.[mc]?[jt]s$/.test(file) || file.includes(`${NodePath.sep}testing${NodePath.sep}`)
    for (const spec of specifiers(NodeFs.readFileSync(file, "utf8"))) {
      if (!spec.startsWith(".")) continue
      const target = NodePath.relative(root, NodePath.resolve(NodePath.dirname(file), spec))
      const to = target.split(NodePath.sep)[0]
      if (!(to in level) || to === folder) continue
      if (isTest && target.split(NodePath.sep).includes("testing")) continue
      const ok = level[to] < level[folder] || sideways.has(`${folder}→${to}`)
      if (!ok) problems.push(`${NodePath.relative(root, file)} imports ${spec} (${folder} may not import ${to})`)
      else if (!isTest && noRepositories.has(folder) && /^repo\.[mc]?[jt]s$/i.test(NodePath.basename(target))) {
        problems.push(`${NodePath.relative(root, file)} imports ${spec} (${folder} calls services and entities, not a repository)`)
      }
    }
  }
}
if (problems.length > 0) {
  process.stderr.write(`layer check: ${problems.length} import(s) point up or sideways (see CONTRIBUTING.md):\n${problems.map((p) => `  ${p}\n`).join("")}`)
  process.exit(1)
}
process.stdout.write(`layer check: ${checked} files, imports point down\n`)
