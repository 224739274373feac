// Loaded (with --import) into every Extism plugin worker before the SDK's worker script.
//
// 1. A plugin that fails while it is being instantiated (a trapping start function, `_initialize`
//    or `hs_init`) makes the SDK's worker reject a promise nobody handles; Node then emits
//    `error` on the Worker object in the main thread, where the SDK has no listener, and the whole
//    process dies. Here such failures are caught, written to the shared status buffer, announced,
//    and the worker exits alone.
// 2. The host asks for the size of the plugin's memories after a trap, to tell a plugin that ran
//    into its memory cap from one that trapped for another reason.
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import { isMainThread, parentPort, workerData } from "node:worker_threads"

const troupe = workerData && typeof workerData === "object" ? workerData.troupe : undefined

if (!isMainThread && parentPort && troupe && troupe.status instanceof SharedArrayBuffer) {
  // 3. Plugins run at a lower CPU priority than the thread serving requests, so a plugin burning
  //    CPU on every core does not starve the event loop (Linux: a thread's nice value is set
  //    through its thread id, found in /proc/thread-self). Best effort elsewhere.
  if (typeof troupe.nice === "number") {
    try {
      const tid = Number(NodeFs.readlinkSync("/proc/thread-self").split("/").pop())
      if (Number.isInteger(tid) && tid > 0) NodeOs.setPriority(tid, troupe.nice)
    } catch {
      // not Linux, or not allowed: plugins keep the default priority
    }
  }

  const status = new Int32Array(troupe.status, 0, 2)
  const text = new Uint8Array(troupe.status, 8)
  const memories = []

  const original = WebAssembly.instantiate
  WebAssembly.instantiate = async function instantiate(...args) {
    const result = await original.apply(this, args)
    const instance = result instanceof WebAssembly.Instance ? result : result.instance
    for (const value of Object.values(instance.exports)) {
      if (value instanceof WebAssembly.Memory) memories.push(value)
    }
    return result
  }

  // Memory queries come on a port of their own (handed over once, then this listener is removed),
  // so the SDK's messages are not dispatched twice. (A port cannot travel in workerData: the SDK
  // re-posts its worker options and a transferred port there crashes Node.)
  const receivePort = (message) => {
    if (!message || message.type !== "troupe:port" || !message.port) return
    parentPort.off("message", receivePort)
    const port = message.port
    port.on("message", (query) => {
      if (query && query.type === "troupe:memory") {
        port.postMessage({ type: "troupe:memory", id: query.id, bytes: memories.map((m) => m.buffer.byteLength) })
      }
    })
    port.unref()
  }
  parentPort.on("message", receivePort)

  let failed = false
  const fatal = (error) => {
    if (failed) return
    failed = true
    let message
    try {
      message = error && typeof error === "object" && "message" in error ? String(error.message) : String(error)
    } catch {
      message = "unknown error"
    }
    const bytes = new TextEncoder().encode(message).subarray(0, text.length)
    text.set(bytes)
    Atomics.store(status, 1, bytes.length)
    Atomics.store(status, 0, 1)
    try {
      parentPort.postMessage({ type: "troupe:fatal" })
    } finally {
      setTimeout(() => process.exit(1), 20)
    }
  }
  process.on("uncaughtException", fatal)
  process.on("unhandledRejection", fatal)
}
