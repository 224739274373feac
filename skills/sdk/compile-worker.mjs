// Runs the AssemblyScript compiler in a worker thread on plain Node: loading `asc` through the
// TypeScript loader the CLI runs under takes ~20 s; here it takes ~2 s. Posts {ok, stderr}.
import { parentPort, workerData } from "node:worker_threads"

const { default: asc } = await import("assemblyscript/asc")
const stdout = asc.createMemoryStream()
const stderr = asc.createMemoryStream()
const result = await asc.main(workerData.args, { stdout, stderr })
parentPort.postMessage({ ok: !result.error, error: result.error ? String(result.error.message) : "", stderr: stderr.toString() })
