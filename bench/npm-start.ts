/**
 * `troupe start` exactly as `npm start` runs it (package.json's `start` script): the environment
 * its script sets (`NAME=value` before `node`, e.g. GLIBC_TUNABLES) and node's flags. For the
 * benchmarks that measure the server's idle footprint (bench/idle.ts, bench/preview.ts).
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { root, spawn, type Spawned } from "../runtime/testing/process.ts"

const script = (JSON.parse(NodeFs.readFileSync(NodePath.join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts.start!.split(" ")
const nodeAt = script.indexOf("node")

/** The environment `npm start` sets. */
export const startEnv: Readonly<Record<string, string>> = Object.fromEntries(
  script.slice(0, nodeAt).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])
)

/** The node flags `npm start` passes. */
export const startNodeFlags: ReadonlyArray<string> = script.slice(nodeAt + 1, script.indexOf("bin/troupe.mjs"))

/** Spawn `troupe start` as `npm start` does (without its `prestart` web build), with `env` added. */
export const spawnStart = (
  env: Record<string, string | undefined>,
  options: { readonly nodeFlags?: ReadonlyArray<string>; readonly bareEnv?: boolean } = {}
): Spawned =>
  spawn(process.execPath, [...(options.nodeFlags ?? startNodeFlags), NodePath.join(root, "bin", "troupe.mjs"), "start"], {
    ...(options.bareEnv ? {} : startEnv),
    ...env
  })
