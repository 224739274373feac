/**
 * What the uploads service asks of whoever hosts it (the gateway): who is calling, and how to tell
 * a chat that one of its attachments is ready or was rejected. The service never imports the
 * gateway or the entities; the composition root provides these.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** The caller of a request, and what it may do with files. */
export interface Caller {
  readonly userId: string
  /** May upload and attach (a session, or an API key with scope `chats`). */
  readonly mayWrite: boolean
  /** May read its files (a session, or an API key with scope `chats` or `read`). */
  readonly mayRead: boolean
}

/** Why a request is not let in (status, machine-readable code, message, extra headers). */
export interface Refused {
  readonly status: number
  readonly code: string
  readonly message: string
  readonly headers?: Record<string, string>
}

/** Authenticates the requests of the uploads routes. */
export class Authenticator extends Context.Tag("troupe/uploads/Authenticator")<Authenticator, {
  readonly authenticate: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<Caller, Refused>
}>() {}

/** An attachment's news for a chat's journal. */
export type AttachmentNews =
  | { readonly kind: "attachment_ready"; readonly uploadId: string; readonly name: string; readonly contentType: string }
  | { readonly kind: "attachment_rejected"; readonly uploadId: string; readonly name: string; readonly code: string; readonly message: string }

/** Tells a chat about its attachments (best effort: a failure is logged, never fails the upload). */
export class ChatNotifier extends Context.Tag("troupe/uploads/ChatNotifier")<ChatNotifier, {
  readonly notify: (chatId: string, ownerId: string, news: AttachmentNews) => Effect.Effect<void>
}>() {}
