/**
 * The shared test data (third-party WASM plugins, images, pages) lives outside the repository:
 * `TROUPE_FIXTURES_DIR`, else `../shared/fixtures` beside the checkout, else `/work/shared/fixtures`.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

const root = NodePath.resolve(import.meta.dirname, "..", "..")

const candidates = [
  process.env.TROUPE_FIXTURES_DIR,
  NodePath.resolve(root, "..", "shared", "fixtures"),
  "/work/shared/fixtures"
].filter((p): p is string => typeof p === "string" && p.length > 0)

/** The fixtures folder; throws (so the test fails, never skips) when none is found. */
export const fixturesDir = (): string => {
  const found = candidates.find((p) => NodeFs.existsSync(NodePath.join(p, "extism")))
  if (!found) throw new Error(`test fixtures not found (looked in ${candidates.join(", ")}); set TROUPE_FIXTURES_DIR`)
  return found
}
