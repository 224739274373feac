import { describe, expect, it } from "vitest"
import * as Wasm from "./Wasm.ts"

const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]
const module = (...sections: Array<Array<number>>) => new Uint8Array([...header, ...sections.flat()])
const memory = (min: number, max?: number) =>
  max === undefined ? [0x05, 0x03, 0x01, 0x00, min] : [0x05, 0x04, 0x01, 0x01, min, max]
// type () -> (i32); import "extism:host/user" "kv" : type 0; export "run" = func 0 (the import)
const types = [0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f]
const imports = (() => {
  const name = (s: string) => [s.length, ...new TextEncoder().encode(s)]
  const body = [0x01, ...name("extism:host/user"), ...name("kv"), 0x00, 0x00]
  return [0x02, body.length, ...body]
})()
const exports = [0x07, 0x07, 0x01, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x00]

describe("WebAssembly inspection and memory capping", () => {
  it("reads imports with their signatures, exports and memories", () => {
    const info = Wasm.inspect(module(types, imports, memory(2), exports))
    expect(info.imports).toEqual([{ module: "extism:host/user", name: "kv", kind: "function", type: { params: [], results: ["i32"] } }])
    expect(info.exports).toEqual([{ name: "run", kind: "function" }])
    expect(info.memories).toEqual([{ min: 2, max: undefined, shared: false, memory64: false, imported: false }])
  })

  it("adds a maximum to a memory without one, and lowers a larger one", () => {
    const capped = Wasm.capMemory(module(types, imports, memory(2), exports), 16)
    expect(Wasm.inspect(capped).memories[0]).toMatchObject({ min: 2, max: 16 })
    expect(new WebAssembly.Module(capped as Uint8Array<ArrayBuffer>)).toBeInstanceOf(WebAssembly.Module)
    expect(Wasm.inspect(Wasm.capMemory(module(memory(2, 100)), 16)).memories[0]).toMatchObject({ max: 16 })
    expect(Wasm.inspect(Wasm.capMemory(module(memory(2, 8)), 16)).memories[0]).toMatchObject({ max: 8 })
  })

  it("makes the engine enforce the cap on memory.grow", async () => {
    // (memory (export "m") 1) (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
    const bytes = module(
      [0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f],
      [0x03, 0x02, 0x01, 0x00],
      memory(1),
      [0x07, 0x0c, 0x02, 0x01, 0x6d, 0x02, 0x00, 0x04, 0x67, 0x72, 0x6f, 0x77, 0x00, 0x00],
      [0x0a, 0x08, 0x01, 0x06, 0x00, 0x20, 0x00, 0x40, 0x00, 0x0b]
    )
    const { instance } = await WebAssembly.instantiate(Wasm.capMemory(bytes, 4) as Uint8Array<ArrayBuffer>)
    const grow = instance.exports["grow"] as (pages: number) => number
    expect(grow(3)).toBe(1)
    expect(grow(1)).toBe(-1)
    expect((instance.exports["m"] as WebAssembly.Memory).buffer.byteLength).toBe(4 * 65536)
  })

  it("refuses a memory that starts above the cap, and what is not a core module", () => {
    expect(() => Wasm.capMemory(module(memory(20)), 16)).toThrow(Wasm.MemoryTooSmall)
    expect(() => Wasm.inspect(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))).toThrow(/bad magic number/)
    expect(() => Wasm.inspect(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]))).toThrow(/components are not supported/)
  })
})
