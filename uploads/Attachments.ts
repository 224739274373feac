/**
 * What a mate's turn gets of a message's attachments, on the runner that runs the turn: the
 * text kept (encrypted) for text files and PDFs, read with the runner's key ring. Provided to the
 * entities as the chat's `ChatAttachments`.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ChatAttachments } from "../entities/chat/turn.ts"
import { KeyRing } from "../runtime/KeyRing.ts"
import * as Repo from "./Repo.ts"

/** `ChatAttachments` over the uploads tables. */
export const layer: Layer.Layer<ChatAttachments, never, SqlClient.SqlClient | KeyRing> = Layer.effect(
  ChatAttachments,
  Effect.gen(function*() {
    const repo = yield* Repo.make
    const keyRing = yield* KeyRing
    return ChatAttachments.of({
      ofMessage: (chatId, messageId) =>
        repo.ofMessage(chatId, messageId).pipe(
          Effect.flatMap((rows) =>
            Effect.forEach(rows, (row) =>
              Effect.map(
                row.textSealed === null
                  ? Effect.succeed(null)
                  : keyRing.decryptText(row.textSealed, `upload-text:${row.uploadId}`).pipe(Effect.orElseSucceed(() => null)),
                (text) => ({ name: row.name, contentType: row.mime, text })
              ))
          ),
          Effect.catchAllCause((cause) => Effect.as(Effect.logWarning("attachments unreadable; the turn goes on without them", cause), []))
        )
    })
  })
)
