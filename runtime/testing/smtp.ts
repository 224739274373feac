/**
 * A local SMTP server for tests (the `smtp-server` package): accepts every mail on 127.0.0.1 and
 * keeps it parsed (`mailparser`), attachments included.
 */
import { type ParsedMail, simpleParser } from "mailparser"
import type { AddressInfo } from "node:net"
import { SMTPServer } from "smtp-server"

/** A running mail catcher. */
export interface MailCatcher {
  /** `smtp://127.0.0.1:<port>` for `SMTP_URL`. */
  readonly url: string
  readonly mails: Array<ParsedMail>
  /** Wait until a mail matching `predicate` arrived (fails after `timeoutMs`). */
  readonly waitFor: (predicate: (mail: ParsedMail) => boolean, timeoutMs?: number) => Promise<ParsedMail>
  readonly close: () => Promise<void>
}

/** Start a mail catcher on a free port. */
export const startMailCatcher = async (): Promise<MailCatcher> => {
  const mails: Array<ParsedMail> = []
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    onData(stream, _session, callback) {
      simpleParser(stream).then(
        (mail) => {
          mails.push(mail)
          callback()
        },
        (e: Error) => callback(e)
      )
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.server.address() as AddressInfo).port
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    waitFor: async (predicate, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs
      while (Date.now() < deadline) {
        const found = mails.find(predicate)
        if (found) return found
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error(`no matching mail within ${timeoutMs} ms (got ${mails.length}: ${mails.map((m) => m.subject).join("; ")})`)
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
