/**
 * Portability to ARM servers, checked here on x64: every native addon in the production
 * dependency tree must ship a `linux-arm64` build (a platform package it names as an optional
 * dependency, napi-rs style, or a `prebuilds/linux-arm64` folder). Compiling from source in the
 * image is not an option (no compiler in `node:20-slim`). Dev-only packages (sharp, the
 * benchmark's anchor; deno) are left out. And the image builds for both platforms.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { describe, expect, it } from "vitest"
import { root } from "../runtime/testing/process.ts"

interface LockEntry {
  readonly dev?: boolean
  readonly optional?: boolean
  readonly cpu?: ReadonlyArray<string>
  readonly os?: ReadonlyArray<string>
}

interface Manifest {
  readonly name?: string
  readonly gypfile?: boolean
  readonly napi?: unknown
  readonly binary?: unknown
  readonly optionalDependencies?: Record<string, string>
  readonly dependencies?: Record<string, string>
}

const lock = JSON.parse(NodeFs.readFileSync(NodePath.join(root, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> }

const hasNodeFiles = (dir: string, depth = 3): boolean => {
  if (depth < 0 || !NodeFs.existsSync(dir)) return false
  for (const entry of NodeFs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith(".node")) return true
    if (entry.isDirectory() && entry.name !== "node_modules" && hasNodeFiles(NodePath.join(dir, entry.name), depth - 1)) return true
  }
  return false
}

const addonLoaders = ["node-gyp-build", "node-gyp-build-optional-packages", "prebuild-install", "@mapbox/node-pre-gyp", "bindings", "node-addon-api"]

/** A native addon of the production tree: how it is built and whether linux-arm64 is covered. */
interface Addon {
  readonly path: string
  readonly name: string
  readonly how: ReadonlyArray<string>
  readonly arm64: ReadonlyArray<string>
}

const productionAddons = (): ReadonlyArray<Addon> => {
  const addons: Array<Addon> = []
  for (const [at, entry] of Object.entries(lock.packages)) {
    if (at === "" || entry.dev) continue
    // the platform packages are the builds themselves, not addons to check
    if (entry.cpu !== undefined || entry.os !== undefined) continue
    const dir = NodePath.join(root, at)
    const manifestPath = NodePath.join(dir, "package.json")
    if (!NodeFs.existsSync(manifestPath)) continue
    const manifest = JSON.parse(NodeFs.readFileSync(manifestPath, "utf8")) as Manifest
    const optional = Object.keys(manifest.optionalDependencies ?? {})
    const platformPackages = optional.filter((n) => /(linux|darwin|win32|freebsd|android)-(x64|arm64|ia32|arm)/.test(n))
    const how: Array<string> = []
    if (manifest.gypfile === true || NodeFs.existsSync(NodePath.join(dir, "binding.gyp"))) how.push("binding.gyp")
    if (manifest.napi !== undefined) how.push("napi")
    if (manifest.binary !== undefined) how.push("node-pre-gyp")
    if (NodeFs.existsSync(NodePath.join(dir, "prebuilds"))) how.push("prebuilds")
    if (platformPackages.length > 0) how.push("platform packages")
    if (hasNodeFiles(dir)) how.push(".node files")
    if (Object.keys(manifest.dependencies ?? {}).some((d) => addonLoaders.includes(d))) how.push("addon loader")
    if (how.length === 0) continue
    const arm64 = [
      ...platformPackages.filter((n) => /linux-arm64/.test(n)),
      ...(NodeFs.existsSync(NodePath.join(dir, "prebuilds", "linux-arm64")) ? ["prebuilds/linux-arm64"] : [])
    ]
    addons.push({ path: at, name: manifest.name ?? at, how, arm64 })
  }
  return addons
}

describe("ARM portability", () => {
  it("every native addon in the production tree ships a linux-arm64 build", () => {
    const addons = productionAddons()
    process.stdout.write(`\n[arm64] native addons in production dependencies:\n${addons.map((a) => `  ${a.name} (${a.how.join(", ")}): ${a.arm64.join(", ") || "NO linux-arm64 build"}`).join("\n")}\n`)
    // the ones we know are there (argon2 for passwords, esbuild under tsx): the scan sees them
    expect(addons.map((a) => a.name)).toEqual(expect.arrayContaining(["@node-rs/argon2", "esbuild"]))
    for (const addon of addons) expect(addon.arm64, `${addon.name} (${addon.path}) has no linux-arm64 build`).not.toEqual([])
  })

  it("keeps sharp out of production (a dev-only benchmark anchor; the media services use WASM codecs)", () => {
    expect(lock.packages["node_modules/sharp"]?.dev).toBe(true)
    const pkg = JSON.parse(NodeFs.readFileSync(NodePath.join(root, "package.json"), "utf8")) as { dependencies: Record<string, string> }
    expect(Object.keys(pkg.dependencies)).not.toContain("sharp")
  })

  it("builds the image from node:20-slim for amd64 and arm64, with every platform's optional binaries in the lock", () => {
    const dockerfile = NodeFs.readFileSync(NodePath.join(root, "Dockerfile"), "utf8")
    const from = /^FROM\s+(\S+)/m.exec(dockerfile)?.[1]
    // a multi-arch base, not pinned to one platform (buildx picks the variant)
    expect(from).toMatch(/^node:20(\.\d+)*-(bookworm-)?slim$/)
    expect(dockerfile).not.toMatch(/--platform=linux\/amd64/)
    // the lock made here lacks other platforms' optional binaries: add them before `npm ci`, so an
    // arm64 build installs argon2's and esbuild's arm64 packages
    const stubs = dockerfile.indexOf("lockfile-stubs.mjs")
    const install = dockerfile.indexOf("npm ci")
    expect(stubs).toBeGreaterThan(0)
    expect(stubs).toBeLessThan(install)
    expect(dockerfile).toMatch(/docker buildx build --platform linux\/amd64,linux\/arm64/)
  })
})
