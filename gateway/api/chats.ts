/** `/v1/chats/*` and `/v1/shares/*`: chats, posting, the event stream, cancelling, sharing. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { PlainText } from "../../entities/user/protocol.ts"
import { Authentication } from "../Auth.ts"
import { BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PaymentRequired, TooManyRequests, Unauthorized, Unavailable } from "../Errors.ts"
import { Before, Id, Paging } from "./common.ts"

export const Chat = Schema.Struct({
  id: Schema.String,
  mate_id: Schema.String,
  title: Schema.String,
  created_at: Schema.Date,
  updated_at: Schema.Date,
  last_seq: Schema.Number,
  running_turn: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Chat" })

export const Message = Schema.Struct({
  id: Schema.String,
  role: Schema.Literal("user", "mate"),
  author_id: Schema.String,
  text: Schema.String,
  turn_id: Schema.String,
  status: Schema.Literal("running", "done", "failed", "cancelled"),
  created_at: Schema.Date
}).annotations({ identifier: "Message" })

const ChatPath = Schema.Struct({ id: Id })

export class ChatsGroup extends HttpApiGroup.make("chats")
  .add(
    HttpApiEndpoint.post("create", "/v1/chats")
      .setPayload(Schema.Struct({ mate_id: Schema.optional(Id), title: Schema.optional(PlainText(200)) }))
      .addSuccess(Chat, { status: 201 })
  )
  .add(HttpApiEndpoint.get("list", "/v1/chats").setUrlParams(Paging).addSuccess(Schema.Struct({ chats: Schema.Array(Chat), next_before: Schema.NullOr(Schema.Number) })))
  .add(
    HttpApiEndpoint.get("get", "/v1/chats/:id").setPath(ChatPath).setUrlParams(Paging)
      .addSuccess(Schema.Struct({ chat: Chat, messages: Schema.Array(Message), next_before: Schema.NullOr(Schema.Number) }))
  )
  .add(
    HttpApiEndpoint.post("post", "/v1/chats/:id/messages").setPath(ChatPath)
      .setPayload(Schema.Struct({
        client_message_id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128), Schema.pattern(/^[\w.:-]+$/, { message: () => "must be 1-128 of letters, digits, _ . : -" })),
        text: PlainText(32_000).pipe(Schema.minLength(1)),
        /** Uploads (`POST /v1/uploads`) to attach; the mate's turn gets the text of text files and PDFs. */
        attachments: Schema.optional(Schema.Array(Id).pipe(Schema.maxItems(10)))
      }))
      .addSuccess(Schema.Struct({ message_id: Schema.String, turn_id: Schema.String, seq: Schema.Number, duplicate: Schema.Boolean }), { status: 202 })
      .addError(Conflict)
      .addError(PaymentRequired)
      .annotate(OpenApi.Description, "Post a message and start the mate's turn. Idempotent by client_message_id. Follow the turn on /events.")
  )
  .add(
    HttpApiEndpoint.get("events", "/v1/chats/:id/events").setPath(ChatPath)
      .setUrlParams(Schema.Struct({ after: Schema.optional(Before) }))
      .addSuccess(HttpApiSchema.Text({ contentType: "text/event-stream" }))
      .annotate(OpenApi.Description, "Server-Sent Events: every journal event after `after` (or the Last-Event-ID header), then live ones. Each event has `id: <seq>` and `event: <kind>`; comment lines are heartbeats.")
  )
  .add(
    HttpApiEndpoint.post("cancel", "/v1/chats/:id/cancel").setPath(ChatPath)
      .setPayload(Schema.NullOr(Schema.Struct({ turn_id: Schema.optional(Id) })))
      .addSuccess(Schema.Struct({ turn_id: Schema.String, status: Schema.Literal("running", "done", "failed", "cancelled") }))
      .addError(Conflict)
  )
  .add(
    HttpApiEndpoint.post("confirm", "/v1/chats/:id/confirm").setPath(ChatPath)
      .setPayload(Schema.Struct({ call_id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)), approve: Schema.Boolean }))
      .addSuccess(Schema.Struct({ call_id: Schema.String, approved: Schema.Boolean }))
      .annotate(OpenApi.Description, "Approve or decline a `write` skill call the running turn waits for (its `confirmation_required` event). 404 `confirmation_not_found` when nothing waits for that call (answered, timed out, or the turn ended).")
  )
  .add(
    HttpApiEndpoint.del("deleteMessage", "/v1/chats/:id/messages/:message_id")
      .setPath(Schema.Struct({ id: Id, message_id: Id }))
      .addSuccess(HttpApiSchema.Empty(204))
  )
  .add(
    HttpApiEndpoint.patch("rename", "/v1/chats/:id").setPath(ChatPath)
      .setPayload(Schema.Struct({ title: PlainText(200) }))
      .addSuccess(Chat)
      .annotate(OpenApi.Description, "Rename the chat (an empty title makes it untitled).")
  )
  .add(HttpApiEndpoint.del("delete", "/v1/chats/:id").setPath(ChatPath).addSuccess(HttpApiSchema.Empty(204)))
  .add(
    HttpApiEndpoint.post("share", "/v1/chats/:id/share").setPath(ChatPath)
      .addSuccess(Schema.Struct({ token: Schema.String, key: Schema.String, url: Schema.String }), { status: 201 })
      .annotate(OpenApi.Description, "A read-only share link `/s/{token}#{key}`: the key stays in the URL fragment and never reaches the server.")
  )
  .middleware(Authentication)
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(TooManyRequests)
  .addError(PayloadTooLarge)
  .addError(Unavailable)
{}

export class SharesGroup extends HttpApiGroup.make("shares")
  .add(
    HttpApiEndpoint.get("get", "/v1/shares/:token")
      .setPath(Schema.Struct({ token: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$/)) }))
      .addSuccess(Schema.Struct({ ciphertext: Schema.String, created_at: Schema.Date }))
      .annotate(OpenApi.Description, "The encrypted snapshot of a shared chat (no authentication): decrypt it with the key from the link's fragment.")
  )
  .addError(BadRequest)
  .addError(NotFound)
  .addError(TooManyRequests)
{}
