/**
 * A real OCI registry for tests: Debian's `docker-registry` (the CNCF distribution registry),
 * started on a free 127.0.0.1 port with its own config and storage in a temp dir, optionally
 * behind htpasswd basic authentication. A missing binary fails the test (never a skip).
 */
import bcrypt from "bcryptjs"
import * as NodeChild from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { freePort } from "../../../runtime/testing/process.ts"

/** A running registry. */
export interface TestRegistry {
  readonly url: string
  readonly dir: string
  readonly stop: () => Promise<void>
}

const binary = process.env.TROUPE_TEST_REGISTRY_BIN ?? "/usr/bin/docker-registry"

/** Start a registry; with `basicAuth`, it answers 401 without those credentials. */
export const startRegistry = async (options: { readonly basicAuth?: { readonly username: string; readonly password: string } } = {}): Promise<TestRegistry> => {
  if (!NodeFs.existsSync(binary)) {
    throw new Error(`${binary} is required for this test (apt-get install -y docker-registry; CI installs it in .ci/setup.d/50-registry.sh)`)
  }
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-registry-"))
  const port = await freePort()
  const auth = options.basicAuth
    ? (() => {
      NodeFs.writeFileSync(NodePath.join(dir, "htpasswd"), `${options.basicAuth.username}:${bcrypt.hashSync(options.basicAuth.password, 5)}\n`)
      return `auth:\n  htpasswd:\n    realm: troupe-test\n    path: ${NodePath.join(dir, "htpasswd")}\n`
    })()
    : ""
  NodeFs.writeFileSync(
    NodePath.join(dir, "config.yml"),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${NodePath.join(dir, "data")}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`
  )
  const child = NodeChild.spawn(binary, ["serve", NodePath.join(dir, "config.yml")], { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()))
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr.slice(-500)}`)
    const ok = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200 || r.status === 401, () => false)
    if (ok) break
    if (Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`docker-registry did not answer within 10 s: ${stderr.slice(-500)}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url,
    dir,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM")
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
      if (child.exitCode === null) child.kill("SIGKILL")
      NodeFs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
