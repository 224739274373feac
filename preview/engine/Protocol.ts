/** Messages between the pool and its workers. */
import type { EngineFailureCode, Limits, TransformParams, TransformResult } from "./Engine.ts"

/** Pool → worker: transform one image (the input buffer is transferred). */
export interface WorkerRequest {
  readonly id: number
  readonly input: ArrayBuffer
  readonly params: TransformParams
  readonly limits: Limits
}

/** Worker → pool. `memory` is the WebAssembly memory the worker holds, in bytes. */
export type WorkerReply =
  | { readonly type: "ready"; readonly memory: number }
  | { readonly type: "failed"; readonly message: string }
  | { readonly type: "done"; readonly id: number; readonly ok: true; readonly result: TransformResult; readonly memory: number }
  | {
    readonly type: "done"
    readonly id: number
    readonly ok: false
    readonly error: { readonly code: EngineFailureCode; readonly message: string }
    readonly recycle: boolean
    readonly memory: number
  }
