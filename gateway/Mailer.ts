/**
 * Outgoing mail (verification codes). Over SMTP when `SMTP_URL` is set; otherwise each mail is
 * written as an `.eml` file to `<data dir>/outbox/` (mode 0600), where an operator or a test
 * reads it. Messages are built by nodemailer either way.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import Nodemailer from "nodemailer"
import { GatewayConfig } from "./Config.ts"

/** A mail could not be sent or written. */
export class MailError extends Schema.TaggedError<MailError>()("MailError", { message: Schema.String }) {}

export interface Mail {
  readonly to: string
  readonly subject: string
  readonly text: string
}

/** The mailer service. */
export class Mailer extends Context.Tag("troupe/gateway/Mailer")<Mailer, {
  readonly kind: "smtp" | "outbox"
  readonly send: (mail: Mail) => Effect.Effect<void, MailError>
}>() {}

/** The outbox folder of a data dir. */
export const outboxDir = (dataDir: string) => NodePath.join(dataDir, "outbox")

/**
 * SMTP or the outbox, by configuration. A mail that is not delivered over SMTP — no `SMTP_URL`,
 * or the SMTP server refused it — is written to the outbox, and the log says so with the file's
 * path (never its content: it may hold a code), so an operator knows where to find it.
 */
export const layer: Layer.Layer<Mailer, never, GatewayConfig> = Layer.effect(
  Mailer,
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const dir = outboxDir(config.dataDir)
    const composer = Nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" })
    /** Write the mail as an `.eml` file (mode 0600); its path. */
    const writeOutbox = (mail: Mail) =>
      Effect.tryPromise({
        try: async () => {
          const info = await composer.sendMail({ from: config.mailFrom, to: mail.to, subject: mail.subject, text: mail.text })
          await NodeFs.mkdir(dir, { recursive: true, mode: 0o700 })
          const name = `${new Date().toISOString().replace(/[:.]/g, "-")}-${NodeCrypto.randomBytes(4).toString("hex")}.eml`
          const path = NodePath.join(dir, name)
          await NodeFs.writeFile(path, info.message as Buffer, { mode: 0o600 })
          return path
        },
        catch: (e) => new MailError({ message: `outbox: ${(e as Error).message}` })
      })
    if (Option.isSome(config.smtpUrl)) {
      const transport = Nodemailer.createTransport(Redacted.value(config.smtpUrl.value))
      return Mailer.of({
        kind: "smtp",
        send: (mail) =>
          Effect.tryPromise({
            try: () => transport.sendMail({ from: config.mailFrom, to: mail.to, subject: mail.subject, text: mail.text }),
            catch: (e) => new MailError({ message: `SMTP: ${(e as Error).message}` })
          }).pipe(
            Effect.asVoid,
            Effect.catchAll((smtp) =>
              Effect.flatMap(writeOutbox(mail), (file) =>
                Effect.logError("Could not send a mail over SMTP; it was written to the outbox instead").pipe(
                  Effect.annotateLogs({ file, to: mail.to, error: smtp.message })
                ))
            )
          )
      })
    }
    return Mailer.of({
      kind: "outbox",
      send: (mail) =>
        Effect.flatMap(writeOutbox(mail), (file) =>
          Effect.logWarning("Mail not sent (no SMTP_URL is set): it was written to the outbox").pipe(Effect.annotateLogs({ file, to: mail.to })))
    })
  })
)
