/**
 * `troupe --help` read through a pipe (as `troupe --help | less` or a CI log shows it): no colour
 * codes and no padding far beyond a terminal's width; `troupe preview --help` lists every
 * `PREVIEW_*` variable the preview service reads.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { describe, expect, it } from "vitest"
import { root, spawnTroupe } from "../runtime/testing/process.ts"

const help = async (args: ReadonlyArray<string>) => {
  const proc = spawnTroupe(args, { NO_COLOR: undefined })
  expect(await proc.exited).toBe(0)
  return proc.stdout()
}

describe("troupe --help through a pipe", () => {
  it("has no colour codes and no wide padding", async () => {
    const text = await help(["--help"])
    expect(text).toContain("COMMANDS")
    expect(text).not.toContain("\x1b[")
    // a command and its description are two spaces apart, not aligned 150 columns out
    expect(text).toMatch(/^ {2}- start {2}Run everything in one process/m)
    expect(text.split("\n").filter((l) => /\S {40,}\S/.test(l))).toEqual([])
  }, 60_000)

  it("troupe preview --help lists every PREVIEW_* variable", async () => {
    const text = await help(["preview", "--help"])
    const read = new Set(NodeFs.readFileSync(NodePath.join(root, "preview", "Config.ts"), "utf8").match(/"PREVIEW_[A-Z_]+"/g)!.map((v) => v.slice(1, -1)))
    expect(read.size).toBeGreaterThan(20)
    const listed = (name: string) => text.includes(name) || text.includes(`${name.replace(/_TTL$/, "_SIZE")}/_TTL`)
    expect([...read].filter((v) => !listed(v))).toEqual([])
  }, 60_000)
})
