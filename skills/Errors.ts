/**
 * The errors of the skills folder. Each carries a machine-readable `code` (what the gateway puts
 * in `{"error":{"code",…}}`) and the HTTP status it suggests; `describe` turns any of them into that
 * body. Invocation errors are the five codes of the public API plus the two not-found ones.
 */
import * as Schema from "effect/Schema"

/** One problem with a field, by its dotted path (`skills.0.pricing.model`). */
export const FieldIssue = Schema.Struct({ path: Schema.String, message: Schema.String })
export type FieldIssue = typeof FieldIssue.Type

/** The plugin ran past its wall-clock limit (or waited too long for a free instance). */
export class SkillTimeout extends Schema.TaggedError<SkillTimeout>()("SkillTimeout", {
  skill: Schema.String,
  timeoutMs: Schema.Number,
  message: Schema.String
}) {
  get code(): "skill_timeout" {
    return "skill_timeout"
  }
  get status(): number {
    return 504
  }
}

/** The plugin hit its memory limit (linear memory or the host's buffers for it). */
export class SkillMemoryExceeded extends Schema.TaggedError<SkillMemoryExceeded>()("SkillMemoryExceeded", {
  skill: Schema.String,
  limitBytes: Schema.Number,
  message: Schema.String
}) {
  get code(): "skill_memory_exceeded" {
    return "skill_memory_exceeded"
  }
  get status(): number {
    return 502
  }
}

/** The plugin tried to reach a host it was not granted, or a private/loopback address. */
export class SkillEgressDenied extends Schema.TaggedError<SkillEgressDenied>()("SkillEgressDenied", {
  skill: Schema.String,
  url: Schema.String,
  reason: Schema.String,
  message: Schema.String
}) {
  get code(): "skill_egress_denied" {
    return "skill_egress_denied"
  }
  get status(): number {
    return 502
  }
}

/** Why a skill failed. */
export const FailureReason = Schema.Literal(
  /** A WebAssembly trap (unreachable, out-of-bounds access, stack overflow …). */
  "trap",
  /** The plugin reported an error itself (Extism `error_set`). */
  "plugin_error",
  /** The output was larger than the skill's `maxOutputBytes`. */
  "output_too_large",
  /** The output was not JSON matching the skill's output schema. */
  "invalid_output",
  /** The plugin's worker died or could not start. */
  "crashed",
  /** A first-party skill failed. */
  "internal"
)
export type FailureReason = typeof FailureReason.Type

/** The skill failed for a reason other than time, memory or egress. */
export class SkillFailed extends Schema.TaggedError<SkillFailed>()("SkillFailed", {
  skill: Schema.String,
  reason: FailureReason,
  message: Schema.String
}) {
  get code(): "skill_failed" {
    return "skill_failed"
  }
  get status(): number {
    return 502
  }
}

/** The input does not match the skill's input schema (or is too large); nothing was run or charged. */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  skill: Schema.String,
  message: Schema.String,
  issues: Schema.Array(FieldIssue)
}) {
  get code(): "invalid_input" {
    return "invalid_input"
  }
  get status(): number {
    return 400
  }
}

/** No app with this id is registered. */
export class AppNotFound extends Schema.TaggedError<AppNotFound>()("AppNotFound", {
  app: Schema.String,
  message: Schema.String
}) {
  get code(): "app_not_found" {
    return "app_not_found"
  }
  get status(): number {
    return 404
  }
}

/** The app exists but has no skill with this name. */
export class SkillNotFound extends Schema.TaggedError<SkillNotFound>()("SkillNotFound", {
  app: Schema.String,
  skill: Schema.String,
  message: Schema.String
}) {
  get code(): "skill_not_found" {
    return "skill_not_found"
  }
  get status(): number {
    return 404
  }
}

/** A manifest does not follow the schema; each issue names its field. */
export class ManifestError extends Schema.TaggedError<ManifestError>()("ManifestError", {
  issues: Schema.Array(FieldIssue),
  message: Schema.String
}) {
  get code(): "invalid_manifest" {
    return "invalid_manifest"
  }
  get status(): number {
    return 422
  }
}

/** A plugin was refused before loading (imports, exports, ABI, memory). */
export class AdmissionError extends Schema.TaggedError<AdmissionError>()("AdmissionError", {
  problems: Schema.Array(Schema.String),
  message: Schema.String
}) {
  get code(): "admission_rejected" {
    return "admission_rejected"
  }
  get status(): number {
    return 422
  }
}

/**
 * An installed app's artifact could not be pulled or verified on this runner (the registry is
 * down, the publisher's key is no longer trusted, the bytes do not match their digest): nothing ran.
 */
export class SkillUnavailable extends Schema.TaggedError<SkillUnavailable>()("SkillUnavailable", {
  skill: Schema.String,
  /** The store's code: `registry_unavailable`, `publisher_untrusted`, `digest_mismatch` … */
  reason: Schema.String,
  message: Schema.String
}) {
  get code(): "skill_unavailable" {
    return "skill_unavailable"
  }
  get status(): number {
    return 503
  }
}

/** What running a plugin can fail with. */
export type RunError = SkillTimeout | SkillMemoryExceeded | SkillEgressDenied | SkillFailed | InvalidInput | SkillUnavailable

/** What invoking a skill can fail with. */
export type InvokeError = RunError | AppNotFound | SkillNotFound

/** Every error of this folder. */
export type SkillsError = InvokeError | ManifestError | AdmissionError

/** The `{status, code, message, details}` an HTTP layer answers with. */
export const describe = (e: SkillsError): { readonly status: number; readonly code: string; readonly message: string; readonly details?: unknown } => {
  switch (e._tag) {
    case "InvalidInput":
      return { status: e.status, code: e.code, message: e.message, details: { skill: e.skill, issues: e.issues } }
    case "ManifestError":
      return { status: e.status, code: e.code, message: e.message, details: { issues: e.issues } }
    case "AdmissionError":
      return { status: e.status, code: e.code, message: e.message, details: { problems: e.problems } }
    case "SkillEgressDenied":
      return { status: e.status, code: e.code, message: e.message, details: { skill: e.skill, url: e.url, reason: e.reason } }
    case "SkillFailed":
      return { status: e.status, code: e.code, message: e.message, details: { skill: e.skill, reason: e.reason } }
    case "SkillTimeout":
      return { status: e.status, code: e.code, message: e.message, details: { skill: e.skill, timeout_ms: e.timeoutMs } }
    case "SkillMemoryExceeded":
      return { status: e.status, code: e.code, message: e.message, details: { skill: e.skill, limit_bytes: e.limitBytes } }
    case "SkillUnavailable":
      return { status: e.status, code: e.code, message: e.message, details: { skill: e.skill, reason: e.reason } }
    case "AppNotFound":
      return { status: e.status, code: e.code, message: e.message, details: { app: e.app } }
    case "SkillNotFound":
      return { status: e.status, code: e.code, message: e.message, details: { app: e.app, skill: e.skill } }
  }
}
