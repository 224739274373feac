/**
 * The body of one pool worker: loads the configured engine and transforms one image at a time.
 * It reports the WebAssembly memory it holds after every job so the pool can recycle it (WASM
 * memory never shrinks).
 */
import { parentPort, workerData } from "node:worker_threads"
import { EngineFailure, type EngineName, type ImageEngine, transform } from "./Engine.ts"
import type { WorkerReply, WorkerRequest } from "./Protocol.ts"

/** Every WebAssembly.Memory this thread creates or instantiates, to measure what it holds. */
const memories = new Set<WebAssembly.Memory>()
const track = (exports: WebAssembly.Exports | undefined) => {
  if (!exports) return
  for (const value of Object.values(exports)) if (value instanceof WebAssembly.Memory) memories.add(value)
}
const OriginalMemory = WebAssembly.Memory
WebAssembly.Memory = new Proxy(OriginalMemory, {
  construct(target, args: [WebAssembly.MemoryDescriptor]) {
    const memory = new target(...args)
    memories.add(memory)
    return memory
  }
})
const originalInstantiate = WebAssembly.instantiate.bind(WebAssembly)
WebAssembly.instantiate = ((source: BufferSource | WebAssembly.Module, imports?: WebAssembly.Imports) =>
  originalInstantiate(source as BufferSource, imports).then((result: WebAssembly.WebAssemblyInstantiatedSource | WebAssembly.Instance) => {
    track(result instanceof WebAssembly.Instance ? result.exports : result.instance.exports)
    return result
  })) as typeof WebAssembly.instantiate
const OriginalInstance = WebAssembly.Instance
WebAssembly.Instance = new Proxy(OriginalInstance, {
  construct(target, args: [WebAssembly.Module, WebAssembly.Imports?]) {
    const instance = new target(...args)
    track(instance.exports)
    return instance
  }
})

const wasmBytes = () => {
  let total = 0
  for (const m of memories) total += m.buffer.byteLength
  return total
}

const port = parentPort
if (!port) throw new Error("worker.ts must run in a worker thread")
const { engine: engineName } = workerData as { engine: EngineName }

const load = async (): Promise<ImageEngine<unknown>> =>
  engineName === "jsquash"
    ? (await import("./JsquashEngine.ts")).make() as Promise<ImageEngine<unknown>>
    : (await import("./VipsEngine.ts")).make() as Promise<ImageEngine<unknown>>

const post = (reply: WorkerReply, transfer: Array<ArrayBuffer> = []) => port.postMessage(reply, transfer)

try {
  const engine = await load()
  port.on("message", (request: WorkerRequest) => {
    const input = new Uint8Array(request.input)
    transform(engine, input, request.params, request.limits).then(
      (result) => {
        const bytes = result.bytes.byteOffset === 0 && result.bytes.byteLength === result.bytes.buffer.byteLength
          ? result.bytes
          : result.bytes.slice()
        post({ type: "done", id: request.id, ok: true, result: { ...result, bytes }, memory: wasmBytes() }, [bytes.buffer as ArrayBuffer])
      },
      (e: unknown) => {
        const failure = e instanceof EngineFailure ? e : new EngineFailure("decode_failed", e instanceof Error ? e.message : String(e), true)
        post({ type: "done", id: request.id, ok: false, error: { code: failure.code, message: failure.message }, recycle: failure.recycle, memory: wasmBytes() })
      }
    )
  })
  post({ type: "ready", memory: wasmBytes() })
} catch (e) {
  post({ type: "failed", message: e instanceof Error ? e.message : String(e) })
}
