/**
 * Memory a long-running process gives back once it has started. Starting allocates much that is
 * dead as soon as the role is ready (the embedded database's unpacked template and WASM bytes,
 * module sources being compiled …); on an idle server nothing allocates afterwards, so V8 has no
 * reason to collect and that garbage stays resident. One full collection shortly after the role
 * is ready frees it (~80 MB of idle RSS on `troupe start`'s first run, bench/RESULTS.md).
 */
import * as Effect from "effect/Effect"
import * as NodeV8 from "node:v8"
import * as NodeVm from "node:vm"

/** Run one full garbage collection now; a no-op where V8 flags cannot be set (e.g. Deno). */
export const collect: Effect.Effect<void> = Effect.suspend(() => {
  const started = performance.now()
  try {
    NodeV8.setFlagsFromString("--expose-gc")
    const gc: unknown = NodeVm.runInNewContext("typeof gc === 'function' ? gc : undefined")
    if (typeof gc !== "function") return Effect.void
    gc()
  } catch {
    // no V8 flags here: the collection happens whenever the runtime decides
    return Effect.void
  }
  return Effect.logDebug("full garbage collection after start").pipe(
    Effect.annotateLogs({ duration_ms: Math.round(performance.now() - started), rss_mb: Math.round(process.memoryUsage.rss() / 1048576) })
  )
})

/** After `delay` (startup's last steps done), one full collection, in the background. */
export const collectAfterStart = (delay: `${number} seconds`): Effect.Effect<void> =>
  Effect.forkDaemon(Effect.delay(collect, delay)).pipe(Effect.asVoid)
