/**
 * The app store: the catalog (`/v1/store/apps`), publishing (authors with the `publisher` role,
 * API keys with scope `publish`), and the admin's side (`/v1/admin/publishers`, `/v1/admin/apps`):
 * trusted publisher keys, installs, upgrades held for approval with their permission diff,
 * per-install config and secrets (never returned: shown as set or unset).
 *
 * Blobs are uploaded raw (`PUT /v1/store/uploads/{app}/{digest}`, `application/octet-stream`),
 * outside this JSON API; `POST /v1/store/apps` then publishes the manifest that names them.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { PlainText } from "../../entities/user/protocol.ts"
import * as Manifest from "../../skills/manifest/Manifest.ts"
import * as Oci from "../../skills/store/Oci.ts"
import * as Signing from "../../skills/store/Signing.ts"
import { SkillDescription } from "../../skills/Skills.ts"
import { Authentication } from "../Auth.ts"
import { ApiFailure, BadRequest, Conflict, ErrorBody, Forbidden, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { Id } from "./common.ts"

const AppPath = Schema.Struct({ app: Manifest.AppId })
const VersionText = Schema.String.pipe(Schema.pattern(/^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]{1,100})?$/, { message: () => "must be a semantic version such as 1.2.3" }))

/** A refused artifact (422): `artifact_unsigned`, `signature_invalid`, `publisher_untrusted`, `digest_mismatch`, `invalid_artifact`, `admission_rejected`. */
const Unprocessable = Schema.transform(
  ErrorBody,
  Schema.declare((u): u is ApiFailure => u instanceof ApiFailure && u.status === 422, { identifier: "UnprocessableFailure" }),
  {
    strict: true,
    decode: (body) => new ApiFailure({ status: 422, ...body.error }),
    encode: (f) => ({ error: f.details === undefined ? { code: f.code, message: f.message } : { code: f.code, message: f.message, details: f.details } })
  }
).annotations({ ...HttpApiSchema.annotations({ status: 422 }), identifier: "Unprocessable", description: "The artifact was refused: `artifact_unsigned`, `signature_invalid`, `publisher_untrusted`, `digest_mismatch`, `invalid_artifact`, `admission_rejected`" })

/** A publisher key as admins see it. */
export const Publisher = Schema.Struct({
  public_key: Schema.String,
  name: Schema.String,
  added_by: Schema.String,
  created_at: Schema.Date
}).annotations({ identifier: "Publisher" })

/** An app in the catalog listing. */
export const StoreAppSummary = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  description: Schema.String,
  publisher: Schema.String,
  categories: Schema.Array(Schema.String),
  latest_version: Schema.String,
  installed_version: Schema.NullOr(Schema.String),
  updated_at: Schema.Date
}).annotations({ identifier: "StoreAppSummary" })

/** One published version with what it asks for. */
export const StoreVersion = Schema.Struct({
  version: Schema.String,
  digest: Schema.String,
  size: Schema.Number,
  published_at: Schema.Date,
  signature: Schema.NullOr(Schema.Struct({ public_key: Schema.String, trusted: Schema.Boolean, publisher: Schema.NullOr(Schema.String) })),
  permissions: Schema.Struct({ allowed_hosts: Schema.Array(Schema.String), wasi: Schema.Boolean, host_functions: Schema.Array(Schema.String) }),
  limits: Schema.Struct({ memory_mb: Schema.Number, timeout_ms: Schema.Number }),
  config: Schema.Array(Schema.Struct({ key: Schema.String, description: Schema.optional(Schema.String), secret: Schema.Boolean, required: Schema.Boolean })),
  skills: Schema.Array(SkillDescription)
}).annotations({ identifier: "StoreVersion" })

/** An install as admins see it. */
export const Install = Schema.Struct({
  app: Schema.String,
  version: Schema.String,
  digest: Schema.String,
  config: Schema.Record({ key: Schema.String, value: Schema.Literal("set", "unset") }),
  pending_upgrade: Schema.NullOr(Schema.Struct({ version: Schema.String, digest: Schema.String, requested_by: Schema.String, requested_at: Schema.Date })),
  installed_by: Schema.String,
  installed_at: Schema.Date,
  updated_at: Schema.Date
}).annotations({ identifier: "Install" })

/** The field-by-field diff of an upgrade. */
export const UpgradeDiff = Schema.Struct({
  app: Schema.String,
  from: Schema.String,
  to: Schema.String,
  escalates: Schema.Boolean,
  status: Schema.Literal("pending", "not_requested", "applied"),
  changes: Schema.Array(Schema.Struct({ field: Schema.String, from: Schema.Unknown, to: Schema.Unknown, escalates: Schema.Boolean, description: Schema.String }))
}).annotations({ identifier: "UpgradeDiff" })

const Values = Schema.Record({ key: Schema.String.pipe(Schema.maxLength(64)), value: Schema.NullOr(PlainText(8192)) })

export class StoreGroup extends HttpApiGroup.make("store")
  .add(
    HttpApiEndpoint.get("list", "/v1/store/apps")
      .setUrlParams(Schema.Struct({
        q: Schema.optional(PlainText(200)),
        category: Schema.optional(Manifest.Category),
        limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 100))),
        offset: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 1_000_000)))
      }))
      .addSuccess(Schema.Struct({ apps: Schema.Array(StoreAppSummary), total: Schema.Number, next_offset: Schema.NullOr(Schema.Number) }))
      .annotate(OpenApi.Description, "The catalog: `q` searches names, descriptions and skills; `category` filters; paged with `limit` and `offset`.")
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/store/apps/:app").setPath(AppPath)
      .addSuccess(Schema.Struct({
        id: Schema.String,
        name: Schema.String,
        description: Schema.String,
        publisher: Schema.String,
        categories: Schema.Array(Schema.String),
        latest_version: Schema.String,
        installed: Schema.NullOr(Schema.Struct({ version: Schema.String, digest: Schema.String })),
        versions: Schema.Array(StoreVersion)
      }))
      .annotate(OpenApi.Description, "An app with every version: digest, signature and whether its key is trusted, skills with schemas and prices, permissions and limits.")
  )
  .add(
    HttpApiEndpoint.post("publish", "/v1/store/apps")
      .setPayload(Schema.Struct({
        app: Manifest.AppId,
        /** The OCI image manifest, base64 of its exact bytes (its sha256 is the version's digest). */
        manifest: Schema.String.pipe(Schema.maxLength(1024 * 1024)),
        signature: Schema.NullOr(Schema.Struct({ public_key: Signing.PublicKey, signature: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9+/]{86}==$/)) }))
      }))
      .addSuccess(Schema.Struct({ app: Schema.String, version: Schema.String, digest: Schema.String, size: Schema.Number }), { status: 201 })
      .addError(Conflict)
      .addError(Unprocessable)
      .annotate(
        OpenApi.Description,
        "Publish a version: upload its blobs first (`PUT /v1/store/uploads/{app}/{digest}`), then send the OCI manifest (base64) and the Ed25519 signature of its digest. Needs the `publisher` role (or admin); API keys need scope `publish`."
      )
  )
  .add(
    HttpApiEndpoint.post("trust", "/v1/admin/publishers")
      .setPayload(Schema.Struct({ public_key: Signing.PublicKey, name: PlainText(120).pipe(Schema.minLength(1)) }))
      .addSuccess(Publisher, { status: 201 })
      .annotate(OpenApi.Description, "Trust a publisher key (`ed25519:<base64>`, as `troupe skill keygen` prints it): what it signs may be installed.")
  )
  .add(HttpApiEndpoint.get("publishers", "/v1/admin/publishers").addSuccess(Schema.Struct({ publishers: Schema.Array(Publisher) })))
  .add(
    HttpApiEndpoint.del("untrust", "/v1/admin/publishers").setUrlParams(Schema.Struct({ public_key: Signing.PublicKey }))
      .addSuccess(HttpApiSchema.Empty(204))
      .annotate(OpenApi.Description, "Stop trusting a key: installed apps it signed stop loading (every process checks again).")
  )
  .add(
    HttpApiEndpoint.put("grantPublisher", "/v1/admin/users/:id/publisher").setPath(Schema.Struct({ id: Id }))
      .addSuccess(Schema.Struct({ user_id: Schema.String, publisher: Schema.Boolean }))
      .annotate(OpenApi.Description, "Give a user the `publisher` role: they may publish apps (the first publisher of an app id owns it).")
  )
  .add(HttpApiEndpoint.del("revokePublisher", "/v1/admin/users/:id/publisher").setPath(Schema.Struct({ id: Id })).addSuccess(Schema.Struct({ user_id: Schema.String, publisher: Schema.Boolean })))
  .add(HttpApiEndpoint.get("installs", "/v1/admin/apps").addSuccess(Schema.Struct({ installs: Schema.Array(Install) })))
  .add(
    HttpApiEndpoint.post("install", "/v1/admin/apps/:app/install").setPath(AppPath)
      .setPayload(Schema.Struct({ version: VersionText }))
      .addSuccess(Install, { status: 201 })
      .addError(Conflict)
      .addError(Unprocessable)
      .annotate(OpenApi.Description, "Install a version: pulled by digest and verified (signature by a trusted key, digests, admission) first. Callable through every gateway within seconds.")
  )
  .add(
    HttpApiEndpoint.post("upgrade", "/v1/admin/apps/:app/upgrade").setPath(AppPath)
      .setPayload(Schema.Struct({ version: VersionText }))
      .addSuccess(Schema.Struct({ status: Schema.Literal("upgraded", "pending"), install: Install, diff: UpgradeDiff }))
      .addError(Conflict)
      .addError(Unprocessable)
      .annotate(OpenApi.Description, "Upgrade (or roll back). A version that asks for more (hosts, WASI, host functions, memory, time, write skills, prices) waits as pending until approved; the installed version keeps serving.")
  )
  .add(
    HttpApiEndpoint.get("upgradeDiff", "/v1/admin/apps/:app/upgrade/:version").setPath(Schema.Struct({ app: Manifest.AppId, version: VersionText }))
      .addSuccess(UpgradeDiff)
      .annotate(OpenApi.Description, "What upgrading to `version` changes, field by field, and whether it waits for approval.")
  )
  .add(
    HttpApiEndpoint.post("approve", "/v1/admin/apps/:app/upgrade/:version/approve").setPath(Schema.Struct({ app: Manifest.AppId, version: VersionText }))
      .addSuccess(Install)
      .addError(Unprocessable)
  )
  .add(HttpApiEndpoint.post("uninstall", "/v1/admin/apps/:app/uninstall").setPath(AppPath).addSuccess(HttpApiSchema.Empty(204)))
  .add(
    HttpApiEndpoint.put("configure", "/v1/admin/apps/:app/config").setPath(AppPath)
      .setPayload(Schema.Struct({ config: Schema.optional(Values), secrets: Schema.optional(Values) }))
      .addSuccess(Install)
      .annotate(OpenApi.Description, "Set config keys and secrets (`null` unsets one). Encrypted at rest; never returned: the install shows which keys are set.")
  )
  .add(
    HttpApiEndpoint.post("sync", "/v1/admin/store/sync")
      .addSuccess(Schema.Struct({ indexed: Schema.Number }))
      .annotate(OpenApi.Description, "Index versions pushed straight to the registry (`troupe skill publish --registry`).")
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(PayloadTooLarge)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}

/** The digest path segment of a blob upload. */
export const BlobDigest = Oci.Digest
