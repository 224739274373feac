/**
 * The admission check: before a plugin is compiled for running, its imports must all be things
 * this host provides (the Extism kernel, WASI when enabled, the host functions granted to it,
 * linked modules), its exports must include what the manifest declares, and it must use the
 * current Extism ABI as a library ("reactor"), not a WASI command. The Extism SDK kills the whole
 * process when an import is missing in worker mode, so this check is what keeps the runner alive.
 */
import * as Manifest from "../manifest/Manifest.ts"
import type { HostFunctionName } from "../manifest/Manifest.ts"
import { capMemory, type FuncType, formatType, inspect, type ModuleInfo } from "./Wasm.ts"

/** The Extism kernel namespace. */
export const EXTISM_ENV = "extism:host/env"
/** Where user host functions live by Extism convention (ours included). */
export const EXTISM_USER = "extism:host/user"
/** WASI preview 1. */
export const WASI_P1 = "wasi_snapshot_preview1"

/** The kernel functions @extism/extism 2.0.0-rc13 provides. */
export const KERNEL_FUNCTIONS: ReadonlySet<string> = new Set([
  "alloc",
  "free",
  "load_u8",
  "load_u64",
  "store_u8",
  "store_u64",
  "input_offset",
  "input_length",
  "input_load_u8",
  "input_load_u64",
  "output_set",
  "error_set",
  "error_get",
  "config_get",
  "var_get",
  "var_set",
  "http_request",
  "http_status_code",
  "http_headers",
  "length",
  "length_unsafe",
  "log_warn",
  "log_info",
  "log_debug",
  "log_error",
  "log_trace",
  "get_log_level"
])

/** WASI preview 1 functions (what Node's `WASI` provides). */
export const WASI_FUNCTIONS: ReadonlySet<string> = new Set([
  "args_get",
  "args_sizes_get",
  "environ_get",
  "environ_sizes_get",
  "clock_res_get",
  "clock_time_get",
  "fd_advise",
  "fd_allocate",
  "fd_close",
  "fd_datasync",
  "fd_fdstat_get",
  "fd_fdstat_set_flags",
  "fd_fdstat_set_rights",
  "fd_filestat_get",
  "fd_filestat_set_size",
  "fd_filestat_set_times",
  "fd_pread",
  "fd_prestat_get",
  "fd_prestat_dir_name",
  "fd_pwrite",
  "fd_read",
  "fd_readdir",
  "fd_renumber",
  "fd_seek",
  "fd_sync",
  "fd_tell",
  "fd_write",
  "path_create_directory",
  "path_filestat_get",
  "path_filestat_set_times",
  "path_link",
  "path_open",
  "path_readlink",
  "path_remove_directory",
  "path_rename",
  "path_symlink",
  "path_unlink_file",
  "poll_oneoff",
  "proc_exit",
  "proc_raise",
  "sched_yield",
  "random_get",
  "sock_accept",
  "sock_recv",
  "sock_send",
  "sock_shutdown"
])

/** The signatures of our host functions (in `extism:host/user`). */
export const HOST_FUNCTION_TYPES: Readonly<Record<HostFunctionName, FuncType>> = {
  kv_get: { params: ["i64"], results: ["i64"] },
  kv_set: { params: ["i64", "i64"], results: ["i64"] },
  secret_get: { params: ["i64"], results: ["i64"] }
}

/** What the plugin is checked against. */
export interface AdmissionRequest {
  /** The modules; the one named `main` is called, the others are linked by name. */
  readonly modules: ReadonlyArray<{ readonly name: string; readonly info: ModuleInfo }>
  readonly wasi: boolean
  /** Our host functions granted to the plugin. */
  readonly granted: ReadonlyArray<HostFunctionName>
  /** Extra host functions the embedder provides, by namespace. */
  readonly custom: Readonly<Record<string, ReadonlyArray<string>>>
  /** Exports the manifest declares (all must be functions of `main`). */
  readonly exports: ReadonlyArray<string>
}

const sameType = (a: FuncType, b: FuncType) =>
  a.params.length === b.params.length && a.results.length === b.results.length &&
  a.params.every((p, i) => p === b.params[i]) && a.results.every((r, i) => r === b.results[i])

const list = (xs: ReadonlyArray<string>, max = 8) => xs.slice(0, max).join(", ") + (xs.length > max ? ` (and ${xs.length - max} more)` : "")

/** The problems that keep the plugin out (empty: admitted). */
export const check = (request: AdmissionRequest): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const names = new Set(request.modules.map((m) => m.name))
  const main = request.modules.find((m) => m.name === "main")
  if (!main) return ["no module is named \"main\""]
  const several = request.modules.length > 1
  for (const { name, info } of request.modules) {
    const where = several ? `module "${name}" ` : ""
    const legacy = info.imports.filter((i) => i.module === "env" && i.name.startsWith("extism_"))
    if (legacy.length > 0) {
      problems.push(
        `${where}uses the pre-1.0 Extism ABI (imports ${list(legacy.map((i) => `env::${i.name}`), 3)}): rebuild it with a current Extism PDK, whose imports come from "${EXTISM_ENV}"`
      )
      continue
    }
    const wasi = info.imports.filter((i) => i.module === WASI_P1)
    if (wasi.length > 0 && !request.wasi) {
      problems.push(
        `${where}imports WASI (${list(wasi.map((i) => i.name), 3)}) but WASI is not enabled for it (set permissions.wasi, or --wasi)`
      )
    }
    const missing: Array<string> = []
    const notGranted: Array<string> = []
    for (const imp of info.imports) {
      const id = `${imp.module}::${imp.name}`
      if (imp.module === WASI_P1) {
        if (request.wasi && (imp.kind !== "function" || !WASI_FUNCTIONS.has(imp.name))) missing.push(id)
        continue
      }
      if (imp.kind !== "function") {
        if (names.has(imp.module) && imp.module !== name) continue
        missing.push(`${id} (a ${imp.kind})`)
        continue
      }
      if (imp.module === EXTISM_ENV) {
        if (!KERNEL_FUNCTIONS.has(imp.name)) missing.push(id)
        continue
      }
      const custom = request.custom[imp.module]
      if (custom?.includes(imp.name)) continue
      if (imp.module === EXTISM_USER && imp.name in HOST_FUNCTION_TYPES) {
        const fn = imp.name as HostFunctionName
        if (!request.granted.includes(fn)) {
          notGranted.push(id)
          continue
        }
        const expected = HOST_FUNCTION_TYPES[fn]
        if (imp.type && !sameType(imp.type, expected)) {
          problems.push(`${where}imports ${id} with type ${formatType(imp.type)}; the host provides ${formatType(expected)}`)
        }
        continue
      }
      const linked = request.modules.find((m) => m.name === imp.module && m.name !== name)
      if (linked) {
        if (!linked.info.exports.some((e) => e.name === imp.name && e.kind === "function")) {
          problems.push(`${where}imports ${id} but module "${imp.module}" does not export a function named "${imp.name}"`)
        }
        continue
      }
      missing.push(id)
    }
    if (missing.length > 0) problems.push(`${where}imports host functions this host does not provide: ${list(missing)}`)
    if (notGranted.length > 0) {
      problems.push(`${where}imports host functions its manifest does not grant: ${list(notGranted)} (add them to permissions.hostFunctions)`)
    }
    for (const m of info.memories) {
      if (m.memory64) problems.push(`${where}has a 64-bit memory, which this host does not run`)
      else if (m.shared) problems.push(`${where}has a shared memory, which this host does not run`)
    }
  }
  const functions = new Set(main.info.exports.filter((e) => e.kind === "function").map((e) => e.name))
  const entryPoints = new Set(["_start", "_initialize", "hs_init", "hs_exit"])
  const callable = [...functions].filter((f) => !entryPoints.has(f) && !f.startsWith("asyncify_"))
  if (functions.has("_start") && !functions.has("_initialize") && callable.length === 0) {
    problems.push(
      "is a WASI command module (its only entry point is _start, which runs a whole program): an Extism plugin exports the functions the host calls; build it as a library/reactor (e.g. with an Extism PDK)"
    )
  } else {
    const declaredEntry = request.exports.filter((e) => entryPoints.has(e))
    if (declaredEntry.length > 0) problems.push(`cannot call ${list(declaredEntry)}: these are WASI entry points, not plugin functions`)
    const absent = request.exports.filter((e) => !entryPoints.has(e) && !functions.has(e))
    if (absent.length > 0) {
      const other = main.info.exports.filter((e) => absent.includes(e.name))
      problems.push(
        `does not export the function${absent.length > 1 ? "s" : ""} ${list(absent)}${other.length > 0 ? ` (${other.map((o) => `${o.name} is a ${o.kind}`).join(", ")})` : ""}; it exports ${
          callable.length > 0 ? list(callable) : "no callable function"
        }`
      )
    }
  }
  return problems
}

/**
 * The problems of an app's modules against its manifest, without compiling anything: what the
 * host's `load` will check again (imports, exports, ABI, memory). Used before publishing and
 * installing, so a bad module is refused with a message rather than at its first call.
 */
export const checkApp = (
  manifest: Manifest.AppManifest,
  modules: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>
): ReadonlyArray<string> => {
  const infos: Array<{ readonly name: string; readonly info: ModuleInfo }> = []
  const problems: Array<string> = []
  for (const m of modules) {
    try {
      infos.push({ name: m.name, info: inspect(m.bytes) })
    } catch (e) {
      problems.push(`${modules.length > 1 ? `module "${m.name}": ` : ""}${(e as Error).message}`)
    }
  }
  if (problems.length > 0) return problems
  problems.push(...check({
    modules: infos,
    wasi: manifest.permissions.wasi,
    granted: manifest.permissions.hostFunctions,
    custom: {},
    exports: manifest.skills.map(Manifest.exportOf)
  }))
  const pages = Math.min(...manifest.skills.map((s) => Manifest.limitsOf(manifest, s).memoryMb)) * 16
  for (const m of modules) {
    try {
      capMemory(m.bytes, pages)
    } catch (e) {
      problems.push((e as Error).message)
    }
  }
  return problems
}
