/** The identity tests' mail reader: the mails of the server's outbox (parsed, oldest first), waited for when sent in the background. */
import { simpleParser } from "mailparser"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { outboxDir } from "../Mailer.ts"

/** A mail of the outbox. */
export interface OutboxMail {
  readonly to: string
  readonly subject: string
  readonly text: string
}

/** Every mail of the outbox to `email`, oldest first. */
export const mailsTo = async (dataDir: string, email: string): Promise<ReadonlyArray<OutboxMail>> => {
  const dir = outboxDir(dataDir)
  const files = NodeFs.existsSync(dir) ? NodeFs.readdirSync(dir).sort() : []
  const out: Array<OutboxMail> = []
  for (const f of files) {
    const parsed = await simpleParser(NodeFs.readFileSync(NodePath.join(dir, f)))
    const to = Array.isArray(parsed.to) ? parsed.to.map((a) => a.text).join(",") : parsed.to?.text ?? ""
    if (to.toLowerCase().includes(email.toLowerCase())) out.push({ to, subject: parsed.subject ?? "", text: parsed.text ?? "" })
  }
  return out
}

/** Wait until `email` has received `count` mails (at most 10 s); all of them. */
export const waitForMails = async (dataDir: string, email: string, count: number): Promise<ReadonlyArray<OutboxMail>> => {
  const deadline = Date.now() + 10_000
  for (;;) {
    const mails = await mailsTo(dataDir, email)
    if (mails.length >= count || Date.now() > deadline) return mails
    await new Promise((r) => setTimeout(r, 50))
  }
}
