/**
 * A real clamd (Debian's clamav-daemon) for tests: its own config, on a free 127.0.0.1 port, with
 * a signature database written here (the EICAR test signature; no download). Fails — never skips —
 * when clamd is not installed (`.ci/setup.d/40-clamav.sh` installs it).
 */
import * as NodeFs from "node:fs"
import * as NodeNet from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { freePort, spawn, stop, type Spawned } from "../../runtime/testing/process.ts"
import { eicar } from "./files.ts"

/** A running clamd. */
export interface TestClamd {
  readonly port: number
  readonly stop: () => Promise<void>
}

const binary = ["/usr/sbin/clamd", "/usr/bin/clamd"].find((p) => NodeFs.existsSync(p))

const answersPing = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = NodeNet.createConnection({ host: "127.0.0.1", port })
    let reply = ""
    socket.on("data", (d) => (reply += d.toString()))
    socket.on("connect", () => socket.write("zPING\0"))
    socket.on("end", () => resolve(reply.startsWith("PONG")))
    socket.on("error", () => resolve(false))
    setTimeout(() => {
      socket.destroy()
      resolve(false)
    }, 1000)
  })

/** Start clamd with the EICAR signature; resolves once it answers PING. */
export const startClamd = async (): Promise<TestClamd> => {
  if (!binary) throw new Error("clamd is not installed (Debian package clamav-daemon; see .ci/setup.d/40-clamav.sh)")
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-clamd-"))
  const db = NodePath.join(dir, "db")
  NodeFs.mkdirSync(db)
  // a body signature (.ndb: name:target:offset:hex) matching the EICAR test string anywhere
  NodeFs.writeFileSync(NodePath.join(db, "troupe-test.ndb"), `Troupe.Test.EICAR:0:*:${Buffer.from(eicar.slice(0, 40)).toString("hex")}\n`)
  const port = await freePort()
  const config = NodePath.join(dir, "clamd.conf")
  NodeFs.writeFileSync(config, [
    "Foreground yes",
    `TCPSocket ${port}`,
    "TCPAddr 127.0.0.1",
    `DatabaseDirectory ${db}`,
    `PidFile ${NodePath.join(dir, "clamd.pid")}`,
    "LogFile /dev/null",
    "LogSyslog no",
    "StreamMaxLength 200M",
    "MaxThreads 2",
    "Bytecode no",
    ...(process.getuid?.() === 0 ? ["User root"] : [])
  ].join("\n") + "\n")
  const proc: Spawned = spawn(binary, ["--config-file", config], {})
  const deadline = Date.now() + 60_000
  while (!(await answersPing(port))) {
    if (Date.now() > deadline) {
      await stop(proc, "SIGKILL")
      throw new Error(`clamd did not answer on ${port}: ${proc.stderr().slice(-2000)} ${proc.stdout().slice(-2000)}`)
    }
    const exited = await Promise.race([proc.exited, new Promise((r) => setTimeout(() => r(undefined), 200))])
    if (exited !== undefined) throw new Error(`clamd exited (${String(exited)}): ${proc.stderr().slice(-2000)} ${proc.stdout().slice(-2000)}`)
  }
  let stopped = false
  return {
    port,
    stop: async () => {
      if (stopped) return
      stopped = true
      await stop(proc, "SIGTERM", 5000)
      NodeFs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
