/**
 * Spawning `troupe` processes in tests: free ports, waiting for health, collecting JSON logs.
 */
import * as NodeChild from "node:child_process"
import * as NodeNet from "node:net"
import * as NodePath from "node:path"

/** The repository root. */
export const root = NodePath.resolve(import.meta.dirname, "..", "..")

/** Listen on `port` (0: any) of 127.0.0.1 and close again: the port it got, or undefined if taken. */
const probe = (port: number): Promise<number | undefined> =>
  new Promise((resolve) => {
    const server = NodeNet.createServer()
    server.unref()
    server.on("error", () => resolve(undefined))
    server.listen(port, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address ? address.port : undefined))
    })
  })

/**
 * A free TCP port on 127.0.0.1, for a process started next. Chosen at random below Linux's
 * ephemeral range (32768–60999): a port the kernel hands out for `listen(0)` may be taken as the
 * source port of any outgoing connection before the process binds it (a CI run failed with
 * `EADDRINUSE` so); below the range only another test's choice can collide.
 */
export const freePort = async (): Promise<number> => {
  for (let i = 0; i < 50; i++) {
    const port = await probe(20_000 + Math.floor(Math.random() * 12_000))
    if (port !== undefined) return port
  }
  const fallback = await probe(0)
  if (fallback === undefined) throw new Error("no free port")
  return fallback
}

/** A running child process with its output. */
export interface Spawned {
  readonly child: NodeChild.ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** The JSON log records printed so far. */
  readonly logs: () => ReadonlyArray<Record<string, unknown>>
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>
}

/** Children still running; killed when this process exits, so a failed test leaves no orphan behind. */
const children = new Set<NodeChild.ChildProcess>()
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL")
})

/** Spawn `command args` with `env` added to a clean copy of this process's environment. */
export const spawn = (command: string, args: ReadonlyArray<string>, env: Record<string, string | undefined>): Spawned => {
  const base = { ...process.env }
  // a test must not inherit the cluster's own HOST/PORT variables or the outer test's configuration
  for (const k of ["HOST", "PORT", "DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_BUCKET", "TROUPE_PORT", "TROUPE_DATA_DIR", "TROUPE_ADMIN_PORT", "TROUPE_METRICS_TOKEN"]) delete base[k]
  const child = NodeChild.spawn(command, args, {
    cwd: root,
    // the admin listener takes any free port unless the test gives one (processes run side by side)
    env: { ...base, TROUPE_ADMIN_PORT: "0", PREVIEW_ADMIN_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  let err = ""
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()))
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()))
  children.add(child)
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => {
      children.delete(child)
      resolve(code ?? signal ?? -1)
    })
  )
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    logs: () =>
      out.split("\n").flatMap((line) => {
        if (!line.startsWith("{")) return []
        try {
          return [JSON.parse(line) as Record<string, unknown>]
        } catch {
          return []
        }
      }),
    exited
  }
}

/** Spawn the `troupe` CLI under Node. */
export const spawnTroupe = (args: ReadonlyArray<string>, env: Record<string, string | undefined>): Spawned =>
  spawn(process.execPath, [NodePath.join(root, "bin", "troupe.mjs"), ...args], env)

/** Poll `url` until it answers `status` (default 200); throws with the process output after `timeoutMs`. */
export const waitFor = async (url: string, options: { readonly timeoutMs?: number; readonly status?: number; readonly proc?: Spawned } = {}): Promise<Response> => {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000)
  let last = "no answer"
  while (Date.now() < deadline) {
    if (options.proc && options.proc.child.exitCode !== null) {
      throw new Error(`process exited (${options.proc.child.exitCode}) before ${url} was ready:\n${options.proc.stdout()}\n${options.proc.stderr()}`)
    }
    try {
      const response = await fetch(url)
      if (response.status === (options.status ?? 200)) return response
      last = `${response.status} ${await response.text()}`
    } catch (e) {
      last = (e as Error).message
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`${url} not ready: ${last}${options.proc ? `\n${options.proc.stdout()}\n${options.proc.stderr()}` : ""}`)
}

/** Send a signal and wait for the exit (SIGKILL after `graceMs`). */
export const stop = async (proc: Spawned, signal: NodeJS.Signals = "SIGTERM", graceMs = 15_000): Promise<number | string> => {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.exited
  proc.child.kill(signal)
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), graceMs)
  const code = await proc.exited
  clearTimeout(timer)
  return code
}
