/**
 * The app store's errors. Each carries its machine-readable `code` and the HTTP status it suggests;
 * `describe` turns any of them into `{status, code, message, details}`. A refused artifact says
 * why with its own code: `artifact_unsigned`, `signature_invalid`, `publisher_untrusted`,
 * `digest_mismatch`, `invalid_artifact`, `artifact_too_large`.
 */
import * as Schema from "effect/Schema"

/** The artifact store (registry or blob store) cannot be reached or answered with a server error. */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>()("StoreUnavailable", {
  store: Schema.String,
  message: Schema.String
}) {
  get code(): "registry_unavailable" {
    return "registry_unavailable"
  }
  get status(): number {
    return 503
  }
}

/** The registry refused a request (authentication, permissions, an unexpected answer). */
export class StoreRefused extends Schema.TaggedError<StoreRefused>()("StoreRefused", {
  store: Schema.String,
  httpStatus: Schema.Number,
  message: Schema.String
}) {
  get code(): "registry_refused" {
    return "registry_refused"
  }
  get status(): number {
    return 502
  }
}

/** No manifest or blob under this reference. */
export class ArtifactNotFound extends Schema.TaggedError<ArtifactNotFound>()("ArtifactNotFound", {
  repository: Schema.String,
  reference: Schema.String,
  message: Schema.String
}) {
  get code(): "artifact_not_found" {
    return "artifact_not_found"
  }
  get status(): number {
    return 404
  }
}

/** Why an artifact was refused. */
export const RejectReason = Schema.Literal(
  "unsigned",
  "bad_signature",
  "untrusted_publisher",
  "digest_mismatch",
  "invalid_artifact",
  "too_large"
)
export type RejectReason = typeof RejectReason.Type

const rejectCodes = {
  unsigned: "artifact_unsigned",
  bad_signature: "signature_invalid",
  untrusted_publisher: "publisher_untrusted",
  digest_mismatch: "digest_mismatch",
  invalid_artifact: "invalid_artifact",
  too_large: "artifact_too_large"
} as const satisfies Record<RejectReason, string>

/** An artifact that must not run: unsigned, badly signed, by an untrusted key, tampered or malformed. */
export class ArtifactRejected extends Schema.TaggedError<ArtifactRejected>()("ArtifactRejected", {
  reason: RejectReason,
  digest: Schema.String,
  message: Schema.String,
  publicKey: Schema.optional(Schema.String)
}) {
  get code(): (typeof rejectCodes)[RejectReason] {
    return rejectCodes[this.reason]
  }
  get status(): number {
    return this.reason === "too_large" ? 413 : 422
  }
}

/** A catalog lookup found nothing. */
export class CatalogNotFound extends Schema.TaggedError<CatalogNotFound>()("CatalogNotFound", {
  what: Schema.Literal("app", "version", "install", "upgrade", "publisher"),
  app: Schema.String,
  version: Schema.optional(Schema.String),
  message: Schema.String
}) {
  get code(): string {
    switch (this.what) {
      case "app":
        return "app_not_found"
      case "version":
        return "version_not_found"
      case "install":
        return "app_not_installed"
      case "upgrade":
        return "upgrade_not_found"
      case "publisher":
        return "publisher_not_found"
    }
  }
  get status(): number {
    return 404
  }
}

/** The request conflicts with the catalog's state. */
export class CatalogConflict extends Schema.TaggedError<CatalogConflict>()("CatalogConflict", {
  reason: Schema.Literal("version_exists", "app_owned", "already_installed", "not_newer", "upgrade_pending"),
  app: Schema.String,
  message: Schema.String
}) {
  get code(): string {
    return this.reason
  }
  get status(): number {
    return this.reason === "app_owned" ? 403 : 409
  }
}

/** Every error of the store. */
export type StoreError = StoreUnavailable | StoreRefused | ArtifactNotFound | ArtifactRejected | CatalogNotFound | CatalogConflict | InvalidConfig

/** What an artifact store's operations fail with. */
export type TransportError = StoreUnavailable | StoreRefused

/** The `{status, code, message, details}` an HTTP layer answers with. */
export const describe = (e: StoreError): { readonly status: number; readonly code: string; readonly message: string; readonly details?: unknown } => {
  switch (e._tag) {
    case "StoreUnavailable":
      return { status: e.status, code: e.code, message: e.message, details: { store: e.store } }
    case "StoreRefused":
      return { status: e.status, code: e.code, message: e.message, details: { store: e.store, registry_status: e.httpStatus } }
    case "ArtifactNotFound":
      return { status: e.status, code: e.code, message: e.message, details: { repository: e.repository, reference: e.reference } }
    case "ArtifactRejected":
      return {
        status: e.status,
        code: e.code,
        message: e.message,
        details: { digest: e.digest, reason: e.reason, ...(e.publicKey !== undefined ? { public_key: e.publicKey } : {}) }
      }
    case "CatalogNotFound":
      return { status: e.status, code: e.code, message: e.message, details: { app: e.app, ...(e.version !== undefined ? { version: e.version } : {}) } }
    case "CatalogConflict":
      return { status: e.status, code: e.code, message: e.message, details: { app: e.app } }
    case "InvalidConfig":
      return { status: e.status, code: e.code, message: e.message, details: { app: e.app, issues: e.issues } }
  }
}

/** An install's config or secrets were refused (unknown key, a secret given as config …). */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  app: Schema.String,
  issues: Schema.Array(Schema.Struct({ path: Schema.String, message: Schema.String })),
  message: Schema.String
}) {
  get code(): "invalid_config" {
    return "invalid_config"
  }
  get status(): number {
    return 400
  }
}
