/**
 * Outgoing mail (verification codes, invoices). Over SMTP when `SMTP_URL` is set; otherwise each
 * mail is written as an `.eml` file to `<data dir>/outbox/` (mode 0600), where an operator or a
 * test reads it; the log names each such file (also when SMTP fails and the outbox takes the mail). Messages are built by nodemailer either way. The gateway and the runners
 * (invoices) use the same service.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import Nodemailer from "nodemailer"
import { TroupeConfig } from "./Config.ts"

/** A mail could not be sent or written. */
export class MailError extends Schema.TaggedError<MailError>()("MailError", { message: Schema.String }) {}

/** A file attached to a mail. */
export interface Attachment {
  readonly filename: string
  readonly content: Uint8Array
  readonly contentType: string
}

export interface Mail {
  readonly to: string
  readonly subject: string
  readonly text: string
  readonly attachments?: ReadonlyArray<Attachment>
}

/** The mailer service. */
export class Mailer extends Context.Tag("troupe/runtime/Mailer")<Mailer, {
  readonly kind: "smtp" | "outbox"
  readonly send: (mail: Mail) => Effect.Effect<void, MailError>
}>() {}

/** How mail leaves. */
export interface MailerSettings {
  /** `smtp://user:pass@host:port` (or smtps://); none: mail goes to `outboxDir`. */
  readonly smtpUrl: Option.Option<Redacted.Redacted>
  readonly from: string
  readonly outboxDir: string
}

/** The outbox folder of a data dir. */
export const outboxDir = (dataDir: string) => NodePath.join(dataDir, "outbox")

const message = (from: string, mail: Mail) => ({
  from,
  to: mail.to,
  subject: mail.subject,
  text: mail.text,
  attachments: (mail.attachments ?? []).map((a) => ({ filename: a.filename, content: Buffer.from(a.content), contentType: a.contentType }))
})

/**
 * SMTP or the outbox, by the settings. A mail that is not delivered over SMTP — no `SMTP_URL`,
 * or the SMTP server refused it — is written to the outbox, and the log says so with the file's
 * path (never its content: it may hold a code), so an operator knows where to find it.
 */
export const make = (settings: MailerSettings): Context.Tag.Service<Mailer> => {
  const composer = Nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" })
  /** Write the mail as an `.eml` file (mode 0600); its path. */
  const writeOutbox = (mail: Mail) =>
    Effect.tryPromise({
      try: async () => {
        const info = await composer.sendMail(message(settings.from, mail))
        await NodeFs.mkdir(settings.outboxDir, { recursive: true, mode: 0o700 })
        const name = `${new Date().toISOString().replace(/[:.]/g, "-")}-${NodeCrypto.randomBytes(4).toString("hex")}.eml`
        const path = NodePath.join(settings.outboxDir, name)
        await NodeFs.writeFile(path, info.message as Buffer, { mode: 0o600 })
        return path
      },
      catch: (e) => new MailError({ message: `outbox: ${(e as Error).message}` })
    })
  if (Option.isSome(settings.smtpUrl)) {
    const transport = Nodemailer.createTransport(Redacted.value(settings.smtpUrl.value))
    return {
      kind: "smtp",
      send: (mail) =>
        Effect.tryPromise({
          try: () => transport.sendMail(message(settings.from, mail)),
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
    }
  }
  return {
    kind: "outbox",
    send: (mail) =>
      Effect.flatMap(writeOutbox(mail), (file) =>
        Effect.logWarning("Mail not sent (no SMTP_URL is set): it was written to the outbox").pipe(Effect.annotateLogs({ file, to: mail.to })))
  }
}

/** The mailer of the given settings. */
export const layer = (settings: MailerSettings): Layer.Layer<Mailer> => Layer.sync(Mailer, () => make(settings))

/** `SMTP_URL` (validated) and `TROUPE_MAIL_FROM`. */
export const config = Config.all({
  smtpUrl: Config.option(Config.redacted("SMTP_URL").pipe(
    Config.mapOrFail((r) => {
      try {
        const u = new URL(Redacted.value(r))
        if (u.protocol === "smtp:" || u.protocol === "smtps:") return Either.right(r)
      } catch {
        // fall through
      }
      return Either.left(ConfigError.InvalidData(["SMTP_URL"], "must be a URL like smtp://user:pass@host:587 or smtps://user:pass@host:465"))
    })
  )),
  from: Config.string("TROUPE_MAIL_FROM").pipe(Config.withDefault("Troupe <no-reply@localhost>"))
})

/** The mailer from the environment, its outbox in the role's data dir. */
export const layerFromEnv: Layer.Layer<Mailer, ConfigError.ConfigError, TroupeConfig> = Layer.effect(
  Mailer,
  Effect.gen(function*() {
    const troupe = yield* TroupeConfig
    const settings = yield* config
    return make({ ...settings, outboxDir: outboxDir(troupe.dataDir) })
  })
)
