// Troupe skill SDK for AssemblyScript, on top of @extism/as-pdk.
//
// Skills read JSON input and write JSON output. This module adds what the PDK lacks or gets wrong:
// UTF-8 output (the PDK's outputString cuts non-ASCII text short), a small JSON reader and
// writer, errors the host shows to the caller, and Troupe's host functions (kv, secrets, HTTP).
import { Config, Host } from "@extism/as-pdk"

@external("extism:host/env", "error_set")
declare function extism_error_set(offset: u64): void
@external("extism:host/env", "alloc")
declare function extism_alloc(length: u64): u64
@external("extism:host/env", "store_u8")
declare function extism_store_u8(offset: u64, value: u8): void
@external("extism:host/env", "load_u8")
declare function extism_load_u8(offset: u64): u8
@external("extism:host/env", "length")
declare function extism_length(offset: u64): u64
@external("extism:host/env", "log_error")
declare function extism_log_error(offset: u64): void
@external("extism:host/env", "log_info")
declare function extism_log_info(offset: u64): void
@external("extism:host/env", "http_request")
declare function extism_http_request(request: u64, body: u64): u64
@external("extism:host/env", "http_status_code")
declare function extism_http_status_code(): i32
@external("extism:host/user", "kv_get")
declare function troupe_kv_get(key: u64): u64
@external("extism:host/user", "kv_set")
declare function troupe_kv_set(key: u64, value: u64): u64
@external("extism:host/user", "secret_get")
declare function troupe_secret_get(name: u64): u64

// ---------------------------------------------------------------------------------------------
// Memory blocks shared with the host

function storeBytes(bytes: Uint8Array): u64 {
  const offset = extism_alloc(<u64>bytes.length)
  for (let i = 0; i < bytes.length; i++) extism_store_u8(offset + <u64>i, bytes[i])
  return offset
}

function storeString(text: string): u64 {
  return storeBytes(Uint8Array.wrap(String.UTF8.encode(text)))
}

function loadBytes(offset: u64): Uint8Array {
  const length = <i32>extism_length(offset)
  const bytes = new Uint8Array(length)
  for (let i = 0; i < length; i++) bytes[i] = extism_load_u8(offset + <u64>i)
  return bytes
}

function loadString(offset: u64): string {
  return String.UTF8.decode(loadBytes(offset).buffer)
}

// ---------------------------------------------------------------------------------------------
// Input, output, errors, logs

/** The input as text (UTF-8). */
export function inputText(): string {
  return Host.inputString()
}

/** The input parsed as JSON (null when it is not JSON). */
export function inputJson(): JsonValue | null {
  return Json.parse(Host.inputString())
}

/** Set the output to this text, as UTF-8 bytes. */
export function outputText(text: string): void {
  Host.output(Uint8Array.wrap(String.UTF8.encode(text)))
}

/** Set the output to a JSON value. */
export function outputJson(value: JsonValue): void {
  outputText(value.toString())
}

/** Report an error to the caller; return its result from your export: `return fail("...")`. */
export function fail(message: string): i32 {
  extism_error_set(storeString(message))
  return 1
}

/** Log a line (it appears in the host's logs with the skill's name). */
export function log(message: string): void {
  extism_log_info(storeString(message))
}

/** Use with `asc --use abort=assembly/troupe/abort`: logs the message, then traps. */
export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  const text = "abort: " + (message === null ? "" : message) + " at " + (fileName === null ? "?" : fileName) + ":" + line.toString() + ":" + column.toString()
  extism_log_error(storeString(text))
  unreachable()
}

/** A config value of this install (null when unset). */
export function config(key: string): string | null {
  return Config.get(key)
}

// ---------------------------------------------------------------------------------------------
// Host functions (declare them in the manifest's permissions.hostFunctions)

/** The key-value store of this install and user. */
export class Kv {
  /** The value of `key`, or null. Needs "kv_get". */
  static get(key: string): string | null {
    const offset = troupe_kv_get(storeString(key))
    return offset == 0 ? null : loadString(offset)
  }
  /** Set `key`; 0 on success, 1 key too long, 2 value too large, 3 store full, 4 store unavailable. Needs "kv_set". */
  static set(key: string, value: string): i32 {
    return <i32>troupe_kv_set(storeString(key), storeString(value))
  }
  /** Delete `key`. Needs "kv_set". */
  static remove(key: string): i32 {
    return <i32>troupe_kv_set(storeString(key), 0)
  }
}

/** A secret of this install (config keys declared `secret: true`), or null. Needs "secret_get". */
export function secret(name: string): string | null {
  const offset = troupe_secret_get(storeString(name))
  return offset == 0 ? null : loadString(offset)
}

/** An HTTP response. */
export class HttpResponse {
  constructor(public status: i32, public body: string) {}
}

/** A request to a host in the manifest's permissions.allowedHosts (others get status 403). */
export function http(method: string, url: string, body: string | null = null): HttpResponse {
  const request = new JsonObject()
  request.set("method", JsonValue.string(method))
  request.set("url", JsonValue.string(url))
  const bodyOffset: u64 = body === null ? 0 : storeString(body)
  const offset = extism_http_request(storeString(request.toString()), bodyOffset)
  const status = extism_http_status_code()
  return new HttpResponse(status, offset == 0 ? "" : loadString(offset))
}

// ---------------------------------------------------------------------------------------------
// JSON

export enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object
}

/** A JSON value. */
export class JsonValue {
  kind: JsonKind = JsonKind.Null
  bool: bool = false
  num: f64 = 0
  str: string = ""
  items: Array<JsonValue> = []
  keys: Array<string> = []

  static nul(): JsonValue {
    return new JsonValue()
  }
  static boolean(b: bool): JsonValue {
    const v = new JsonValue()
    v.kind = JsonKind.Bool
    v.bool = b
    return v
  }
  static number(n: f64): JsonValue {
    const v = new JsonValue()
    v.kind = JsonKind.Number
    v.num = n
    return v
  }
  static string(s: string): JsonValue {
    const v = new JsonValue()
    v.kind = JsonKind.String
    v.str = s
    return v
  }
  static array(items: Array<JsonValue>): JsonValue {
    const v = new JsonValue()
    v.kind = JsonKind.Array
    v.items = items
    return v
  }

  isString(): bool {
    return this.kind == JsonKind.String
  }
  isNumber(): bool {
    return this.kind == JsonKind.Number
  }
  isObject(): bool {
    return this.kind == JsonKind.Object
  }

  /** The member `key` of an object (null when absent or not an object). */
  get(key: string): JsonValue | null {
    if (this.kind != JsonKind.Object) return null
    for (let i = this.keys.length - 1; i >= 0; i--) if (this.keys[i] == key) return this.items[i]
    return null
  }

  /** A string member, or null. */
  getString(key: string): string | null {
    const v = this.get(key)
    return v !== null && v.kind == JsonKind.String ? v.str : null
  }

  toString(): string {
    switch (this.kind) {
      case JsonKind.Null:
        return "null"
      case JsonKind.Bool:
        return this.bool ? "true" : "false"
      case JsonKind.Number: {
        if (!isFinite(this.num)) return "null"
        if (this.num == Math.floor(this.num) && Math.abs(this.num) < 9007199254740992) return (<i64>this.num).toString()
        return this.num.toString()
      }
      case JsonKind.String:
        return Json.quote(this.str)
      case JsonKind.Array: {
        const parts = new Array<string>()
        for (let i = 0; i < this.items.length; i++) parts.push(this.items[i].toString())
        return "[" + parts.join(",") + "]"
      }
      default: {
        const parts = new Array<string>()
        for (let i = 0; i < this.keys.length; i++) parts.push(Json.quote(this.keys[i]) + ":" + this.items[i].toString())
        return "{" + parts.join(",") + "}"
      }
    }
  }
}

/** A JSON object being built. */
export class JsonObject extends JsonValue {
  constructor() {
    super()
    this.kind = JsonKind.Object
  }
  set(key: string, value: JsonValue): JsonObject {
    this.keys.push(key)
    this.items.push(value)
    return this
  }
}

class Parser {
  pos: i32 = 0
  ok: bool = true
  constructor(public s: string) {}

  ws(): void {
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos)
      if (c == 32 || c == 9 || c == 10 || c == 13) this.pos++
      else break
    }
  }

  value(depth: i32): JsonValue {
    this.ws()
    if (depth > 64 || this.pos >= this.s.length) {
      this.ok = false
      return JsonValue.nul()
    }
    const c = this.s.charCodeAt(this.pos)
    if (c == 123) return this.object(depth)
    if (c == 91) return this.array(depth)
    if (c == 34) return JsonValue.string(this.string())
    if (this.s.startsWith("true", this.pos)) {
      this.pos += 4
      return JsonValue.boolean(true)
    }
    if (this.s.startsWith("false", this.pos)) {
      this.pos += 5
      return JsonValue.boolean(false)
    }
    if (this.s.startsWith("null", this.pos)) {
      this.pos += 4
      return JsonValue.nul()
    }
    return this.number()
  }

  object(depth: i32): JsonValue {
    const o = new JsonObject()
    this.pos++
    this.ws()
    if (this.pos < this.s.length && this.s.charCodeAt(this.pos) == 125) {
      this.pos++
      return o
    }
    while (this.ok) {
      this.ws()
      if (this.pos >= this.s.length || this.s.charCodeAt(this.pos) != 34) {
        this.ok = false
        break
      }
      const key = this.string()
      this.ws()
      if (this.pos >= this.s.length || this.s.charCodeAt(this.pos) != 58) {
        this.ok = false
        break
      }
      this.pos++
      o.set(key, this.value(depth + 1))
      this.ws()
      if (this.pos < this.s.length && this.s.charCodeAt(this.pos) == 44) {
        this.pos++
        continue
      }
      if (this.pos < this.s.length && this.s.charCodeAt(this.pos) == 125) {
        this.pos++
        break
      }
      this.ok = false
    }
    return o
  }

  array(depth: i32): JsonValue {
    const items = new Array<JsonValue>()
    this.pos++
    this.ws()
    if (this.pos < this.s.length && this.s.charCodeAt(this.pos) == 93) {
      this.pos++
      return JsonValue.array(items)
    }
    while (this.ok) {
      items.push(this.value(depth + 1))
      this.ws()
      if (this.pos < this.s.length && this.s.charCodeAt(this.pos) == 44) {
        this.pos++
        continue
      }
      if (this.pos < this.s.length && this.s.charCodeAt(this.pos) == 93) {
        this.pos++
        break
      }
      this.ok = false
    }
    return JsonValue.array(items)
  }

  string(): string {
    this.pos++
    let out = ""
    let start = this.pos
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos)
      if (c == 34) {
        out += this.s.substring(start, this.pos)
        this.pos++
        return out
      }
      if (c == 92) {
        out += this.s.substring(start, this.pos)
        this.pos++
        if (this.pos >= this.s.length) break
        const e = this.s.charCodeAt(this.pos)
        if (e == 110) out += "\n"
        else if (e == 116) out += "\t"
        else if (e == 114) out += "\r"
        else if (e == 98) out += "\b"
        else if (e == 102) out += "\f"
        else if (e == 117) {
          const hex = this.s.substring(this.pos + 1, this.pos + 5)
          out += String.fromCharCode(<i32>parseInt(hex, 16))
          this.pos += 4
        } else out += String.fromCharCode(e)
        this.pos++
        start = this.pos
        continue
      }
      this.pos++
    }
    this.ok = false
    return out
  }

  number(): JsonValue {
    const start = this.pos
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos)
      if ((c >= 48 && c <= 57) || c == 45 || c == 43 || c == 46 || c == 101 || c == 69) this.pos++
      else break
    }
    if (this.pos == start) {
      this.ok = false
      return JsonValue.nul()
    }
    return JsonValue.number(parseFloat(this.s.substring(start, this.pos)))
  }
}

export class Json {
  /** Parse JSON text; null when it is not valid JSON. */
  static parse(text: string): JsonValue | null {
    const p = new Parser(text)
    const v = p.value(0)
    p.ws()
    if (!p.ok || p.pos != text.length) return null
    return v
  }

  /** A JSON string literal. */
  static quote(s: string): string {
    let out = "\""
    let start = 0
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (c == 34 || c == 92 || c < 32) {
        out += s.substring(start, i)
        if (c == 34) out += "\\\""
        else if (c == 92) out += "\\\\"
        else if (c == 10) out += "\\n"
        else if (c == 13) out += "\\r"
        else if (c == 9) out += "\\t"
        else out += "\\u" + c.toString(16).padStart(4, "0")
        start = i + 1
      }
    }
    return out + s.substring(start) + "\""
  }
}
