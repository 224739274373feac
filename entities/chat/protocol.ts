/**
 * The Chat entity's protocol: one entity per chat. Commands that must not be lost are persisted
 * and de-duplicated by a primary key; reads are volatile.
 *
 * Messages that carry chat content (`Create` with a title, `Post` with the user's text) or a
 * secret (`Share`'s reply) are deliberately volatile: a persisted message is written to the
 * cluster's message table in the clear. They lose nothing: the entity stores the content
 * encrypted and commits before it answers, and a caller that got no answer retries with the
 * same `clientMessageId`, which the entity de-duplicates itself.
 *
 * Every event of a chat goes into its journal with a gap-free sequence number: a reader resumes
 * from any sequence number, from any node, with `Events {afterSeq}`.
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as Rpc from "@effect/rpc/Rpc"
import * as PrimaryKey from "effect/PrimaryKey"
import * as Schema from "effect/Schema"
import { Id } from "../../runtime/Ids.ts"
import { SpendScope } from "../credit/protocol.ts"
import * as EntityGuard from "../../runtime/EntityGuard.ts"
import * as Storable from "../../runtime/Storable.ts"


/** A client's id for a message it sends: retries with the same id create one message. */
export const ClientMessageId = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128), Schema.pattern(/^[\w.:-]+$/))

/** What a user writes. */
export const MessageText = Storable.Text(32_000).pipe(Schema.minLength(1))

/** A chat title. */
export const Title = Storable.Text(200)

/** How a turn ended (or that it is still running). */
export const TurnStatus = Schema.Literal("running", "done", "failed", "cancelled")
export type TurnStatus = typeof TurnStatus.Type

const base = { seq: Schema.Number, turnId: Schema.NullOr(Schema.String), at: Schema.DateFromNumber }

/** The events of a chat's journal. */
export const ChatEvent = Schema.Union(
  Schema.Struct({ ...base, kind: Schema.Literal("message_stored"), messageId: Schema.String, role: Schema.Literal("user", "mate"), authorId: Schema.String, text: Schema.String }),
  Schema.Struct({ ...base, kind: Schema.Literal("turn_started"), mateId: Schema.String, reserved: Schema.Number }),
  Schema.Struct({ ...base, kind: Schema.Literal("delta"), text: Schema.String }),
  Schema.Struct({ ...base, kind: Schema.Literal("skill_call"), callId: Schema.String, app: Schema.String, skill: Schema.String, input: Schema.Unknown }),
  Schema.Struct({ ...base, kind: Schema.Literal("skill_result"), callId: Schema.String, ok: Schema.Boolean, output: Schema.Unknown, error: Schema.NullOr(Schema.String) }),
  Schema.Struct({ ...base, kind: Schema.Literal("confirmation_required"), callId: Schema.String, app: Schema.String, skill: Schema.String, input: Schema.Unknown, timeoutMs: Schema.Number }),
  Schema.Struct({ ...base, kind: Schema.Literal("confirmation_resolved"), callId: Schema.String, approved: Schema.Boolean, reason: Schema.Literal("approved", "declined", "timeout") }),
  Schema.Struct({ ...base, kind: Schema.Literal("charge"), amount: Schema.Number, held: Schema.Number }),
  Schema.Struct({ ...base, kind: Schema.Literal("done"), messageId: Schema.String }),
  Schema.Struct({ ...base, kind: Schema.Literal("cancelled"), messageId: Schema.NullOr(Schema.String) }),
  Schema.Struct({ ...base, kind: Schema.Literal("error"), code: Schema.String, message: Schema.String }),
  Schema.Struct({ ...base, kind: Schema.Literal("restarted"), attempt: Schema.Number }),
  Schema.Struct({ ...base, kind: Schema.Literal("message_deleted"), messageId: Schema.String }),
  Schema.Struct({ ...base, kind: Schema.Literal("attachment_ready"), uploadId: Schema.String, name: Schema.String, contentType: Schema.String }),
  Schema.Struct({ ...base, kind: Schema.Literal("attachment_rejected"), uploadId: Schema.String, name: Schema.String, code: Schema.String, message: Schema.String })
)
export type ChatEvent = typeof ChatEvent.Type

/** The body of an event without its journal fields (what a turn emits). */
export type EventBody = ChatEvent extends infer E ? E extends ChatEvent ? Omit<E, "seq" | "turnId" | "at"> : never : never

/** A chat as listed. */
export class ChatSummary extends Schema.Class<ChatSummary>("troupe/Chat/Summary")({
  chatId: Schema.String,
  ownerId: Schema.String,
  mateId: Schema.String,
  title: Schema.String,
  createdAt: Schema.DateFromNumber,
  updatedAt: Schema.DateFromNumber,
  lastSeq: Schema.Number,
  runningTurn: Schema.NullOr(Schema.String)
}) {}

/** A message of the history. */
export class ChatMessage extends Schema.Class<ChatMessage>("troupe/Chat/Message")({
  messageId: Schema.String,
  role: Schema.Literal("user", "mate"),
  authorId: Schema.String,
  text: Schema.String,
  turnId: Schema.String,
  status: TurnStatus,
  createdAt: Schema.DateFromNumber
}) {}

/** A page of history, oldest first within the page; `before` fetches older messages. */
export class HistoryPage extends Schema.Class<HistoryPage>("troupe/Chat/HistoryPage")({
  messages: Schema.Array(ChatMessage),
  before: Schema.NullOr(Schema.Number)
}) {}

/** What `Post` returns: the turn it started and the sequence number of the stored message. */
export class Posted extends Schema.Class<Posted>("troupe/Chat/Posted")({
  messageId: Schema.String,
  turnId: Schema.String,
  seq: Schema.Number,
  duplicate: Schema.Boolean
}) {}

/** A share: open `/s/{token}#{key}`; the server never keeps the key. */
export class ShareCreated extends Schema.Class<ShareCreated>("troupe/Chat/ShareCreated")({
  token: Schema.String,
  key: Schema.String
}) {}

/** An encrypted snapshot of a shared chat (decrypt it with the key from the link's fragment). */
export class SharedSnapshot extends Schema.Class<SharedSnapshot>("troupe/Chat/SharedSnapshot")({
  ciphertext: Schema.String,
  createdAt: Schema.DateFromNumber
}) {}

/** The chat does not exist or was deleted. */
export class ChatNotFound extends Schema.TaggedError<ChatNotFound>()("ChatNotFound", { chatId: Schema.String }) {}

/** Only the chat's owner may do this. */
export class NotChatOwner extends Schema.TaggedError<NotChatOwner>()("NotChatOwner", { chatId: Schema.String }) {}

/** The chat already exists (with another owner or mate). */
export class ChatExists extends Schema.TaggedError<ChatExists>()("ChatExists", { chatId: Schema.String }) {}

/** A turn is still running: wait for it or cancel it. */
export class TurnInProgress extends Schema.TaggedError<TurnInProgress>()("TurnInProgress", { turnId: Schema.String }) {}

/** No running turn of the chat waits for the user's answer to this call (answered, timed out, or unknown). */
export class ConfirmationNotFound extends Schema.TaggedError<ConfirmationNotFound>()("ConfirmationNotFound", { callId: Schema.String }) {}

/** Approve or decline a `write` skill call the running turn waits for (`confirmation_required`). */
export class Confirm extends Schema.Class<Confirm>("troupe/Chat/Confirm")({
  callId: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  approve: Schema.Boolean,
  byUserId: Id
}) {}

/** No such turn. */
export class TurnNotFound extends Schema.TaggedError<TurnNotFound>()("TurnNotFound", { turnId: Schema.String }) {}

/** No such message. */
export class MessageNotFound extends Schema.TaggedError<MessageNotFound>()("MessageNotFound", { messageId: Schema.String }) {}

/** No such share (or it was revoked with its chat). */
export class ShareNotFound extends Schema.TaggedError<ShareNotFound>()("ShareNotFound", {}) {}

/** Create the chat (idempotent for the same owner and mate). */
export class Create extends Schema.Class<Create>("troupe/Chat/Create")({
  ownerId: Id,
  mateId: Id,
  title: Schema.optional(Title)
}) {}

/** Post a user message and start the mate's turn. */
export class Post extends Schema.Class<Post>("troupe/Chat/Post")({
  clientMessageId: ClientMessageId,
  authorId: Id,
  text: MessageText,
  mateId: Schema.optional(Id),
  /** The credit account charged for the turn (default: the author). */
  accountId: Schema.optional(Id),
  /** A spend cap the turn's hold must respect (an API key's). */
  scope: Schema.optional(SpendScope),
  /** The API key that posts (named on the turn's ledger rows and its skill calls'). */
  apiKeyId: Schema.optional(Id)
}) {}

/**
 * Run a turn (sent by the chat to itself after `Post`). Not persisted: a turn whose runner dies is
 * found by the turn sweeper (a turn stays `running` in the journal) and run again by the chat.
 */
export class RunTurn extends Schema.Class<RunTurn>("troupe/Chat/RunTurn")({ turnId: Id }) {
  [PrimaryKey.symbol]() {
    return `turn:${this.turnId}`
  }
}

/** Cancel a running turn: its hold is released and a `cancelled` event recorded. */
export class Cancel extends Schema.Class<Cancel>("troupe/Chat/Cancel")({ turnId: Id, byUserId: Id }) {
  [PrimaryKey.symbol]() {
    return `cancel:${this.turnId}:${this.byUserId}`
  }
}

/** Delete one message's content. */
export class DeleteMessage extends Schema.Class<DeleteMessage>("troupe/Chat/DeleteMessage")({ messageId: Id, byUserId: Id }) {
  [PrimaryKey.symbol]() {
    return `delete-message:${this.messageId}:${this.byUserId}`
  }
}

/** Give the chat another title (volatile: the title is content, stored only encrypted). */
export class Rename extends Schema.Class<Rename>("troupe/Chat/Rename")({ title: Title, byUserId: Id }) {}

/** Delete the chat: its data key is destroyed, so everything it held becomes unreadable. */
export class Delete extends Schema.Class<Delete>("troupe/Chat/Delete")({ byUserId: Id }) {
  [PrimaryKey.symbol]() {
    // the primary key holds every field: a repeated send with other data must not get this one's answer
    return `delete:${this.byUserId}`
  }
}

/**
 * An upload named for the chat (or attached to one of its messages) is ready or was rejected:
 * journaled as `attachment_ready` / `attachment_rejected`. Volatile (it carries the file's name).
 */
export class AttachmentNews extends Schema.Class<AttachmentNews>("troupe/Chat/AttachmentNews")({
  byUserId: Id,
  uploadId: Id,
  status: Schema.Literal("ready", "rejected"),
  name: Storable.Text(255),
  contentType: Schema.String.pipe(Schema.maxLength(255)),
  code: Schema.optional(Schema.String.pipe(Schema.maxLength(64))),
  message: Schema.optional(Storable.Text(1000))
}) {}

/** The Chat entity. */
export const Chat = EntityGuard.guard(Entity.make("Chat", [
  Rpc.make("Create", { payload: Create, success: ChatSummary, error: ChatExists }),
  Rpc.make("Post", { payload: Post, success: Posted, error: Schema.Union(ChatNotFound, NotChatOwner, TurnInProgress) }),
  Rpc.make("RunTurn", { payload: RunTurn }),
  /** Run the chat's `running` turns that nothing runs (after a runner died); a no-op otherwise. */
  Rpc.make("Wake"),
  // volatile: the answer goes to the turn running in memory; a lost one times out like no answer
  Rpc.make("Confirm", { payload: Confirm, error: Schema.Union(ChatNotFound, NotChatOwner, ConfirmationNotFound) }),
  Rpc.make("Cancel", { payload: Cancel, success: TurnStatus, error: Schema.Union(ChatNotFound, NotChatOwner, TurnNotFound) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("DeleteMessage", { payload: DeleteMessage, error: Schema.Union(ChatNotFound, NotChatOwner, MessageNotFound) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("Delete", { payload: Delete, error: NotChatOwner }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("Rename", { payload: Rename, success: ChatSummary, error: Schema.Union(ChatNotFound, NotChatOwner) }),
  Rpc.make("Share", { payload: { byUserId: Id }, success: ShareCreated, error: Schema.Union(ChatNotFound, NotChatOwner) }),
  Rpc.make("Summary", { success: ChatSummary, error: ChatNotFound }),
  Rpc.make("Attachment", { payload: AttachmentNews, error: Schema.Union(ChatNotFound, NotChatOwner) }),
  Rpc.make("History", {
    payload: { before: Schema.optional(Schema.Number), limit: Schema.Int.pipe(Schema.between(1, 200)) },
    success: HistoryPage,
    error: ChatNotFound
  }),
  Rpc.make("Events", { payload: { afterSeq: Schema.Int.pipe(Schema.greaterThanOrEqualTo(0)) }, success: ChatEvent, error: ChatNotFound, stream: true }),
  Rpc.make("ReadShare", { payload: { shareId: Schema.String }, success: SharedSnapshot, error: ShareNotFound })
]))
