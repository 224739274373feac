/**
 * The gateway's mail (verification codes): the runtime's mailer (`runtime/Mailer.ts`) with the
 * gateway's settings — over SMTP when `SMTP_URL` is set, otherwise `.eml` files in
 * `<data dir>/outbox/`.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as RuntimeMailer from "../runtime/Mailer.ts"
import { GatewayConfig } from "./Config.ts"

export { MailError, Mailer, outboxDir } from "../runtime/Mailer.ts"
export type { Mail } from "../runtime/Mailer.ts"

/** SMTP or the outbox, by the gateway's configuration. */
export const layer: Layer.Layer<RuntimeMailer.Mailer, never, GatewayConfig> = Layer.effect(
  RuntimeMailer.Mailer,
  Effect.map(GatewayConfig, (config) =>
    RuntimeMailer.make({ smtpUrl: config.smtpUrl, from: config.mailFrom, outboxDir: RuntimeMailer.outboxDir(config.dataDir) }))
)
