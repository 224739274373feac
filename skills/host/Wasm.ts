/**
 * Reading and rewriting WebAssembly binaries before they are compiled: the imports (with their
 * function signatures), the exports and the memories of a module, and a rewrite that caps every
 * memory the module defines (its `maximum` is what the engine enforces on `memory.grow`, so
 * this is the real memory limit; the Extism SDK's own `maxPages` only counts its buffers).
 */

/** A value type as written in signatures (`ref` covers every reference type). */
export type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref" | "ref"

/** A function signature. */
export interface FuncType {
  readonly params: ReadonlyArray<ValType>
  readonly results: ReadonlyArray<ValType>
}

/** What an import or export is. */
export type ExternKind = "function" | "table" | "memory" | "global" | "tag"

/** One import; `type` is known for functions when the type section could be read. */
export interface Import {
  readonly module: string
  readonly name: string
  readonly kind: ExternKind
  readonly type?: FuncType | undefined
}

/** One export. */
export interface Export {
  readonly name: string
  readonly kind: ExternKind
}

/** The limits of one memory, in 64 KiB pages. */
export interface MemoryLimits {
  readonly min: number
  readonly max: number | undefined
  readonly shared: boolean
  readonly memory64: boolean
  readonly imported: boolean
}

/** What admission needs to know about a module. */
export interface ModuleInfo {
  readonly imports: ReadonlyArray<Import>
  readonly exports: ReadonlyArray<Export>
  readonly memories: ReadonlyArray<MemoryLimits>
  readonly hasStartFunction: boolean
}

/** The bytes are not a WebAssembly module we can read. */
export class WasmFormatError extends Error {
  readonly _tag = "WasmFormatError"
}

/** The size of a WebAssembly page. */
export const PAGE_BYTES = 65536

const KINDS: ReadonlyArray<ExternKind> = ["function", "table", "memory", "global", "tag"]
const decoder = new TextDecoder("utf-8", { fatal: true })

class Reader {
  pos: number
  constructor(readonly bytes: Uint8Array, start = 0, readonly end = bytes.length) {
    this.pos = start
  }
  get done() {
    return this.pos >= this.end
  }
  byte(): number {
    if (this.pos >= this.end) throw new WasmFormatError("unexpected end of module")
    return this.bytes[this.pos++]!
  }
  u32(): number {
    let result = 0
    let shift = 0
    for (let i = 0; i < 5; i++) {
      const b = this.byte()
      result += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) return result
      shift += 7
    }
    throw new WasmFormatError("malformed LEB128 integer")
  }
  /** An unsigned LEB128 up to 64 bits, as a number (memory64 limits only). */
  u64(): number {
    let result = 0
    let shift = 0
    for (let i = 0; i < 10; i++) {
      const b = this.byte()
      result += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) return result
      shift += 7
    }
    throw new WasmFormatError("malformed LEB128 integer")
  }
  /** A signed LEB128 (heap types); only skipped. */
  s33(): void {
    for (let i = 0; i < 5; i++) {
      if ((this.byte() & 0x80) === 0) return
    }
    throw new WasmFormatError("malformed LEB128 integer")
  }
  name(): string {
    const length = this.u32()
    if (this.pos + length > this.end) throw new WasmFormatError("name runs past the end of its section")
    const text = decoder.decode(this.bytes.subarray(this.pos, this.pos + length))
    this.pos += length
    return text
  }
  skip(n: number) {
    if (this.pos + n > this.end) throw new WasmFormatError("section runs past the end of the module")
    this.pos += n
  }
}

/** Thrown while reading a type we do not model (GC proposal types); signatures become unknown. */
class UnknownType extends Error {}

const valType = (r: Reader): ValType => {
  const b = r.byte()
  switch (b) {
    case 0x7f:
      return "i32"
    case 0x7e:
      return "i64"
    case 0x7d:
      return "f32"
    case 0x7c:
      return "f64"
    case 0x7b:
      return "v128"
    case 0x70:
      return "funcref"
    case 0x6f:
      return "externref"
    case 0x63:
    case 0x64:
      r.s33()
      return "ref"
    default:
      if (b >= 0x69 && b <= 0x74) return "ref"
      throw new UnknownType()
  }
}

interface Limits {
  readonly flags: number
  readonly min: number
  readonly max: number | undefined
}

const limits = (r: Reader): Limits => {
  const flags = r.byte()
  if (flags > 0x07) throw new WasmFormatError(`unknown limits flags 0x${flags.toString(16)}`)
  const is64 = (flags & 0x04) !== 0
  const min = is64 ? r.u64() : r.u32()
  const max = (flags & 0x01) !== 0 ? (is64 ? r.u64() : r.u32()) : undefined
  return { flags, min, max }
}

const memoryOf = (l: Limits, imported: boolean): MemoryLimits => ({
  min: l.min,
  max: l.max,
  shared: (l.flags & 0x02) !== 0,
  memory64: (l.flags & 0x04) !== 0,
  imported
})

interface Section {
  readonly id: number
  /** Offset of the section id byte. */
  readonly start: number
  readonly contentStart: number
  readonly end: number
}

const sections = (bytes: Uint8Array): ReadonlyArray<Section> => {
  if (bytes.length < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new WasmFormatError("not a WebAssembly module (bad magic number)")
  }
  if (bytes[4] !== 0x01 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new WasmFormatError("not a WebAssembly core module version 1 (components are not supported)")
  }
  const r = new Reader(bytes, 8)
  const out: Array<Section> = []
  while (!r.done) {
    const start = r.pos
    const id = r.byte()
    const size = r.u32()
    const contentStart = r.pos
    r.skip(size)
    out.push({ id, start, contentStart, end: r.pos })
  }
  return out
}

const readTypes = (r: Reader): ReadonlyArray<FuncType> | undefined => {
  const count = r.u32()
  const types: Array<FuncType> = []
  try {
    for (let i = 0; i < count; i++) {
      const form = r.byte()
      if (form !== 0x60) throw new UnknownType()
      const params: Array<ValType> = []
      const np = r.u32()
      for (let j = 0; j < np; j++) params.push(valType(r))
      const results: Array<ValType> = []
      const nr = r.u32()
      for (let j = 0; j < nr; j++) results.push(valType(r))
      types.push({ params, results })
    }
  } catch (e) {
    if (e instanceof UnknownType) return undefined
    throw e
  }
  return types
}

/** Read the imports, exports and memories of a module (throws `WasmFormatError`). */
export const inspect = (bytes: Uint8Array): ModuleInfo => {
  let types: ReadonlyArray<FuncType> | undefined = []
  const imports: Array<Import> = []
  const exports: Array<Export> = []
  const memories: Array<MemoryLimits> = []
  let hasStartFunction = false
  for (const s of sections(bytes)) {
    const r = new Reader(bytes, s.contentStart, s.end)
    switch (s.id) {
      case 1:
        types = readTypes(r)
        break
      case 2: {
        const count = r.u32()
        for (let i = 0; i < count; i++) {
          const module = r.name()
          const name = r.name()
          const kind = r.byte()
          switch (kind) {
            case 0x00: {
              const index = r.u32()
              imports.push({ module, name, kind: "function", type: types?.[index] })
              break
            }
            case 0x01: {
              try {
                valType(r)
              } catch (e) {
                if (e instanceof UnknownType) throw new WasmFormatError(`import ${module}::${name}: unknown table type`)
                throw e
              }
              limits(r)
              imports.push({ module, name, kind: "table" })
              break
            }
            case 0x02:
              memories.push(memoryOf(limits(r), true))
              imports.push({ module, name, kind: "memory" })
              break
            case 0x03:
              try {
                valType(r)
              } catch (e) {
                if (e instanceof UnknownType) throw new WasmFormatError(`import ${module}::${name}: unknown global type`)
                throw e
              }
              r.byte()
              imports.push({ module, name, kind: "global" })
              break
            case 0x04:
              r.byte()
              r.u32()
              imports.push({ module, name, kind: "tag" })
              break
            default:
              throw new WasmFormatError(`import ${module}::${name}: unknown import kind ${kind}`)
          }
        }
        break
      }
      case 5: {
        const count = r.u32()
        for (let i = 0; i < count; i++) memories.push(memoryOf(limits(r), false))
        break
      }
      case 7: {
        const count = r.u32()
        for (let i = 0; i < count; i++) {
          const name = r.name()
          const kind = r.byte()
          r.u32()
          const k = KINDS[kind]
          if (!k) throw new WasmFormatError(`export ${name}: unknown export kind ${kind}`)
          exports.push({ name, kind: k })
        }
        break
      }
      case 8:
        hasStartFunction = true
        break
    }
  }
  return { imports, exports, memories, hasStartFunction }
}

const leb = (n: number): Array<number> => {
  const out: Array<number> = []
  let v = n
  do {
    let b = v % 128
    v = Math.floor(v / 128)
    if (v > 0) b |= 0x80
    out.push(b)
  } while (v > 0)
  return out
}

/**
 * Give every memory the module defines a maximum of at most `maxPages` pages (adding one when it
 * has none). Fails when a memory needs more than `maxPages` to start, or is 64-bit or shared
 * (which this host does not run). Imported memories are left alone (admission refuses them).
 */
export const capMemory = (bytes: Uint8Array, maxPages: number): Uint8Array => {
  const all = sections(bytes)
  const memorySection = all.find((s) => s.id === 5)
  if (!memorySection) return bytes
  const r = new Reader(bytes, memorySection.contentStart, memorySection.end)
  const count = r.u32()
  const content: Array<number> = [...leb(count)]
  for (let i = 0; i < count; i++) {
    const l = limits(r)
    if ((l.flags & 0x04) !== 0) throw new WasmFormatError("64-bit memories are not supported")
    if ((l.flags & 0x02) !== 0) throw new WasmFormatError("shared memories are not supported")
    if (l.min > maxPages) {
      throw new MemoryTooSmall(l.min, maxPages)
    }
    const max = l.max === undefined ? maxPages : Math.min(l.max, maxPages)
    content.push(0x01, ...leb(l.min), ...leb(max))
  }
  const header = [0x05, ...leb(content.length)]
  const out = new Uint8Array(bytes.length - (memorySection.end - memorySection.start) + header.length + content.length)
  out.set(bytes.subarray(0, memorySection.start), 0)
  let offset = memorySection.start
  out.set(header, offset)
  offset += header.length
  out.set(content, offset)
  offset += content.length
  out.set(bytes.subarray(memorySection.end), offset)
  return out
}

/** A module's initial memory is larger than the cap. */
export class MemoryTooSmall extends Error {
  readonly _tag = "MemoryTooSmall"
  constructor(readonly neededPages: number, readonly capPages: number) {
    super(
      `the module needs ${neededPages} pages (${formatBytes(neededPages * PAGE_BYTES)}) of memory to start; the limit is ${capPages} pages (${
        formatBytes(capPages * PAGE_BYTES)
      })`
    )
  }
}

/** `1.5 MiB`, `64 KiB`, `12 B`. */
export const formatBytes = (n: number): string => {
  if (n >= 1024 * 1024) return `${Math.round((n / (1024 * 1024)) * 10) / 10} MiB`
  if (n >= 1024) return `${Math.round((n / 1024) * 10) / 10} KiB`
  return `${n} B`
}

/** `(i64, i64) -> i64`. */
export const formatType = (t: FuncType): string => `(${t.params.join(", ")}) -> ${t.results.length === 0 ? "()" : t.results.join(", ")}`
