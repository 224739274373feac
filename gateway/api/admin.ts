/** `/v1/admin/*`: invites, users and credit grants (admin sessions only). */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import * as Storable from "../../runtime/Storable.ts"
import { PlainText } from "../../entities/user/protocol.ts"
import { Authentication } from "../Auth.ts"
import { BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { Balance, Id, Paging } from "./common.ts"

export const Invite = Schema.Struct({
  id: Schema.String,
  uses: Schema.Number,
  used: Schema.Number,
  expires_at: Schema.NullOr(Schema.Date),
  gift_credits: Schema.Number,
  created_at: Schema.Date
}).annotations({ identifier: "Invite" })

export const AdminHealth = Schema.Struct({
  status: Schema.Literal("healthy", "unhealthy"),
  version: Schema.String,
  uptime_seconds: Schema.Number,
  failed: Schema.Array(Schema.String),
  checks: Schema.Record({
    key: Schema.String,
    value: Schema.Struct({
      status: Schema.Literal("healthy", "unhealthy"),
      latency_ms: Schema.Number,
      error: Schema.optional(Schema.String),
      details: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
    })
  })
}).annotations({ identifier: "AdminHealth" })

export class AdminGroup extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.post("createInvite", "/v1/admin/invites")
      .setPayload(Schema.Struct({
        uses: Schema.Int.pipe(Schema.between(1, 10_000)),
        expires_at: Schema.optional(Storable.DateTime),
        gift_credits: Schema.optional(Schema.Int.pipe(Schema.between(0, 1_000_000_000)))
      }))
      .addSuccess(Schema.extend(Invite, Schema.Struct({ code: Schema.String })).annotations({ identifier: "NewInvite", description: "`code` is shown only once" }), { status: 201 })
  )
  .add(HttpApiEndpoint.get("invites", "/v1/admin/invites").addSuccess(Schema.Struct({ invites: Schema.Array(Invite) })))
  .add(
    HttpApiEndpoint.get("users", "/v1/admin/users").setUrlParams(Paging).addSuccess(Schema.Struct({
      users: Schema.Array(Schema.Struct({ id: Schema.String, email: Schema.String, username: Schema.String, role: Schema.Literal("user", "admin"), email_verified: Schema.Boolean, created_at: Schema.Date })),
      next_before: Schema.NullOr(Schema.Number)
    }))
  )
  .add(
    HttpApiEndpoint.post("grant", "/v1/admin/credits/grant")
      .setPayload(Schema.Struct({
        user_id: Id,
        amount: Schema.Int.pipe(Schema.between(1, 1_000_000_000)),
        reason: PlainText(200).pipe(Schema.minLength(1)),
        idempotency_key: Schema.optional(Schema.String.pipe(Schema.pattern(/^[\w:.@-]{1,100}$/)))
      }))
      .addSuccess(Schema.extend(Balance, Schema.Struct({ user_id: Schema.String })))
      .addError(NotFound)
      .annotate(OpenApi.Description, "Grant credits. With `idempotency_key`, retries grant once.")
  )
  .add(
    HttpApiEndpoint.get("health", "/v1/admin/health")
      .addSuccess(AdminHealth)
      .annotate(OpenApi.Description, "The health of this server's parts (database, cache, blob store, cluster …) with latencies and details, as `/health/detailed` on the admin port shows them.")
  )
  .add(
    HttpApiEndpoint.get("cluster", "/v1/admin/cluster")
      .addSuccess(Schema.Struct({
        at: Schema.String,
        shards_per_group: Schema.Number,
        runners: Schema.Array(Schema.Struct({
          address: Schema.String,
          healthy: Schema.Boolean,
          drained: Schema.Boolean,
          last_heartbeat: Schema.NullOr(Schema.String),
          heartbeat_age_ms: Schema.NullOr(Schema.Number),
          version: Schema.NullOr(Schema.String),
          started_at: Schema.NullOr(Schema.String),
          shards: Schema.Record({ key: Schema.String, value: Schema.Number }),
          entities: Schema.Record({ key: Schema.String, value: Schema.Number })
        })),
        unassigned: Schema.Record({ key: Schema.String, value: Schema.Number })
      }).annotations({ identifier: "Cluster" }))
      .annotate(OpenApi.Description, "The cluster's runners: address, health, last heartbeat, shards held per group and active entities per type (as `troupe admin shards`).")
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(TooManyRequests)
  .addError(Unavailable)
{}
