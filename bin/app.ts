/**
 * The composition root: what each folder contributes to the process roles. This is the only
 * module that sees every folder; the runtime stays independent of them.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Entities from "../entities/index.ts"
import * as PaymentConfig from "../entities/payment/config.ts"
import * as GatewayConfig from "../gateway/Config.ts"
import * as Gateway from "../gateway/Server.ts"
import * as PreviewCli from "../preview/Cli.ts"
import * as PreviewConfig from "../preview/Config.ts"
import * as PreviewServer from "../preview/Server.ts"
import * as Mailer from "../runtime/Mailer.ts"
import type * as Roles from "../runtime/Roles.ts"
import * as SkillHost from "../skills/host/Host.ts"
import * as SkillKv from "../skills/host/KvStore.ts"
import * as Ai from "../skills/ai/App.ts"
import * as AiPrices from "../skills/ai/Prices.ts"
import * as AiSettings from "../skills/ai/Settings.ts"
import * as SkillCli from "../skills/sdk/Cli.ts"
import * as StoreCli from "../skills/store/Cli.ts"
import * as Skills from "../skills/Skills.ts"
import * as AppStore from "../skills/store/index.ts"
import pkg from "../package.json" with { type: "json" }

/**
 * The skills registry (first-party apps, the installed apps of the app store, KV in SQL); one
 * instance per process (layers are shared by reference).
 */
const skills = AppStore.layerServing.pipe(
  Layer.provideMerge(Skills.layer().pipe(Layer.provideMerge(SkillHost.layer()), Layer.provide(SkillKv.layerSql())))
)

/** Troupe as the roles see it. */
export const app: Roles.App = {
  version: pkg.version,
  migrations: [...Entities.migrations, ...SkillKv.migrations, ...AiPrices.migrations, ...AppStore.migrations],
  // chats' turns answered by the mates that think (the `ai` app), with the providers this process is given;
  // the AppInstall entity (installs are written where the master key is)
  entities: Layer.merge(Ai.layerEntities(Entities.layerWith).pipe(Layer.provide(Layer.merge(skills, Ai.layerLlm))), AppStore.entities),
  // the public API; skills run in the serving process (first-party apps, installed apps, KV in SQL)
  routes: Gateway.layer.pipe(Layer.provide(skills)),
  // the preview beside the gateway: the web app's sessions may use it
  startRoutes: PreviewServer.layerEmbedded.pipe(Layer.provide(Gateway.layerPreviewSessions)),
  // the folders' settings: the gateway's (start, gateway), the embedded preview's (start), the LLM's (start, runner)
  checkConfig: (role, config) =>
    Effect.all([
      // every role takes part in payments (runners run the workflow, gateways verify webhooks)
      PaymentConfig.config,
      Mailer.config,
      role === "runner" ? Effect.void : GatewayConfig.validate(config),
      role === "start" ? PreviewConfig.fromEnv : Effect.void,
      role === "gateway" ? AiSettings.defaultPriceFromEnv : AiSettings.fromEnv
    ], { discard: true })
}

/** Extra CLI commands contributed by the folders (preview, skill, admin …). */
export const commands = [PreviewCli.command, SkillCli.command, StoreCli.command] as const

/** Extra `troupe admin …` subcommands (`admin apps`). */
export const adminCommands = [StoreCli.adminCommand] as const
