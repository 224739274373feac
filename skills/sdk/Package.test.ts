/**
 * A project made by `troupe skill new` works from its own folder outside this repository, as on a
 * fresh machine: the real binary creates it in a temporary folder, `npm install` installs the
 * vendored `troupe-skill` tarball (and the compiler from the npm registry), `npm test` builds and
 * passes its tests, `npm run build` reuses the module and `npx troupe skill run` answers — with no
 * `troupe` on the PATH and nothing resolved from this repository.
 */
import * as NodeChild from "node:child_process"
import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, expect, it } from "vitest"

const ROOT = NodePath.resolve(import.meta.dirname, "../..")
let work: string | undefined

afterAll(async () => {
  if (work) await NodeFs.rm(work, { recursive: true, force: true })
})

/** The PATH without any `node_modules/.bin` (the test runner adds this repository's). */
const path = (process.env.PATH ?? "").split(NodePath.delimiter).filter((p) => !p.includes("node_modules")).join(NodePath.delimiter)

const sh = (cwd: string, command: string, args: Array<string>) => {
  const env: Record<string, string> = { PATH: path, HOME: process.env.HOME ?? NodeOs.homedir(), npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" }
  const r = NodeChild.spawnSync(command, args, { cwd, env, encoding: "utf8", timeout: 240_000 })
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

it("troupe skill new → npm install → npm test → npm run build, outside the repository", async () => {
  work = await NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "troupe-skill-project-"))
  expect(NodePath.relative(ROOT, work).startsWith("..")).toBe(true)
  const created = sh(work, process.execPath, [NodePath.join(ROOT, "bin/troupe.mjs"), "skill", "new", "greet"])
  expect(created.status, created.out).toBe(0)
  expect(created.out).toContain("cd greet && npm install")
  const dir = NodePath.join(work, "greet")
  const pkg = JSON.parse(await NodeFs.readFile(NodePath.join(dir, "package.json"), "utf8"))
  expect(pkg.devDependencies["troupe-skill"]).toMatch(/^file:vendor\/troupe-skill-[\d.]+\.tgz$/)
  expect(sh(dir, "troupe", ["--version"]).status).not.toBe(0)

  const installed = sh(dir, "npm", ["install"])
  expect(installed.status, installed.out).toBe(0)
  const real = await NodeFs.realpath(NodePath.join(dir, "node_modules", "troupe-skill"))
  expect(real.startsWith(dir)).toBe(true)

  const tested = sh(dir, "npm", ["test"])
  expect(tested.status, tested.out).toBe(0)
  expect(tested.out).toContain("2 passed, 0 failed")
  const built = sh(dir, "npm", ["run", "build"])
  expect(built.status, built.out).toBe(0)
  expect(built.out).toMatch(/Up to date build\/greet\.wasm .* manifest ok: greet 0\.1\.0/)
  const ran = sh(dir, "npx", ["troupe", "skill", "run", ".", "hello", "{\"name\":\"Zoë\"}"])
  expect(ran.status, ran.out).toBe(0)
  expect(ran.out).toContain("{\"greeting\":\"Hello, Zoë!\"}")

  // an edit is compiled again; a failing test fails npm test
  const source = NodePath.join(dir, "assembly", "index.ts")
  await NodeFs.writeFile(source, (await NodeFs.readFile(source, "utf8")).replace("Hello, ", "Hi, "))
  const failing = sh(dir, "npm", ["test"])
  expect(failing.status).not.toBe(0)
  expect(failing.out).toContain("1 passed, 1 failed")
}, 600_000)
