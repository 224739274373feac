/**
 * A mail the server could not send is never lost without a word: it lands in the outbox and the
 * log names its file (not its content), whether no SMTP server is configured or the configured
 * one cannot be reached.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as Mailer from "./Mailer.ts"
import { freePort } from "./testing/process.ts"

interface Record {
  readonly level: string
  readonly message: string
  readonly annotations: { readonly [key: string]: unknown }
}

const capture = () => {
  const records: Array<Record> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    records.push({
      level: logLevel.label,
      message: (Array.isArray(message) ? message : [message]).join(" "),
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  })
  return { records, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const mail = { to: "ada@example.com", subject: "Your Troupe verification code: 123456", text: "Your verification code is 123456." }

describe("Mailer", () => {
  it.effect("without SMTP, writes the mail to the outbox and logs the file's path, not the code", () =>
    Effect.gen(function*() {
      const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-mail-"))
      const log = capture()
      yield* Effect.flatMap(Mailer.Mailer, (m) => m.send(mail)).pipe(
        Effect.provide(Mailer.layer({ smtpUrl: Option.none(), from: "Troupe <no-reply@localhost>", outboxDir: Mailer.outboxDir(dataDir) })),
        Effect.provide(log.layer)
      )
      const files = NodeFs.readdirSync(Mailer.outboxDir(dataDir))
      expect(files).toHaveLength(1)
      const file = NodePath.join(Mailer.outboxDir(dataDir), files[0]!)
      expect(NodeFs.readFileSync(file, "utf8")).toContain("123456")
      expect(NodeFs.statSync(file).mode & 0o777).toBe(0o600)
      const record = log.records.find((r) => r.message.startsWith("Mail not sent"))
      expect(record).toMatchObject({ level: "WARN", annotations: { file, to: "ada@example.com" } })
      expect(JSON.stringify(log.records)).not.toContain("123456")
      NodeFs.rmSync(dataDir, { recursive: true, force: true })
    }))

  it.live("when the SMTP server cannot be reached, falls back to the outbox and logs an error naming the file", () =>
    Effect.gen(function*() {
      const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-mail-"))
      const port = yield* Effect.promise(freePort)
      const log = capture()
      const settings = { smtpUrl: Option.some(Redacted.make(`smtp://127.0.0.1:${port}`)), from: "Troupe <no-reply@localhost>", outboxDir: Mailer.outboxDir(dataDir) }
      yield* Effect.flatMap(Mailer.Mailer, (m) => m.send(mail)).pipe(
        Effect.provide(Mailer.layer(settings)),
        Effect.provide(log.layer)
      )
      const files = NodeFs.readdirSync(Mailer.outboxDir(dataDir))
      expect(files).toHaveLength(1)
      const record = log.records.find((r) => r.message.startsWith("Could not send a mail over SMTP"))
      expect(record).toMatchObject({ level: "ERROR", annotations: { file: NodePath.join(Mailer.outboxDir(dataDir), files[0]!), to: "ada@example.com" } })
      expect(String(record!.annotations.error)).toMatch(/SMTP: .*ECONNREFUSED/)
      NodeFs.rmSync(dataDir, { recursive: true, force: true })
    }))
})
