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
import * as UploadsAttachments from "../uploads/Attachments.ts"
import * as UploadsCli from "../uploads/Cli.ts"
import * as UploadsConfig from "../uploads/Config.ts"
import * as UploadsServer from "../uploads/Server.ts"
import * as UploadsRepo from "../uploads/Repo.ts"
import * as Mailer from "../runtime/Mailer.ts"
import type * as Roles from "../runtime/Roles.ts"
import * as SkillKv from "../skills/host/KvStore.ts"
import * as Ai from "../skills/ai/App.ts"
import * as AiPrices from "../skills/ai/Prices.ts"
import * as AiSettings from "../skills/ai/Settings.ts"
import * as SkillCalls from "../skills/Calls.ts"
import * as SkillsConfig from "../skills/Config.ts"
import * as SkillCli from "../skills/sdk/Cli.ts"
import * as StoreCli from "../skills/store/Cli.ts"
import * as Skills from "../skills/Skills.ts"
import * as AppStore from "../skills/store/index.ts"
import pkg from "../package.json" with { type: "json" }

/**
 * The skills registry (first-party apps, the installed apps of the app store, KV in SQL) and the
 * skill host with the operator's `TROUPE_SKILLS_*` settings; one instance per process (layers are
 * shared by reference). Runners run the calls (`SkillCall`, chat turns); a gateway keeps the
 * registry to list apps and never loads a plugin (installed artifacts are pulled on a first call).
 */
const skills = AppStore.layerServing.pipe(
  Layer.provideMerge(Layer.unwrapEffect(Effect.map(SkillsConfig.fromEnv, (options) => Skills.layerSql(options))))
)

/**
 * The uploads service, once per process: its routes and the gateway's handlers (deleting a chat
 * or an account shreds its files) share it.
 */
const uploads = UploadsServer.layerEmbedded.pipe(Layer.provide(Gateway.layerUploadsAccess))

/** The uploads routes with the gateway's sessions, API keys and chats. */
const uploadsRoutes = UploadsServer.layerRoutes.pipe(Layer.provide(Gateway.layerUploadsAccess))

/** The gateway with the uploads routes beside it (`start`, `gateway`); the uploads' mounts are made first. */
const routes = Gateway.layer.pipe(Layer.provide(skills), Layer.provide(uploadsRoutes), Layer.provide(uploads))

/** Troupe as the roles see it. */
export const app: Roles.App = {
  version: pkg.version,
  migrations: [...Entities.migrations, ...SkillKv.migrations, ...AiPrices.migrations, ...AppStore.migrations, ...UploadsRepo.migrations],
  // chats' turns answered by the mates that think (the `ai` app), with the providers this process is given;
  // the AppInstall entity (installs are written where the master key is); the SkillCall entity (REST
  // skill invocations run where the skill host is); a turn reads the text of its message's attachments
  entities: Layer.mergeAll(
    Ai.layerEntities(Entities.layerWith),
    SkillCalls.layer.pipe(Layer.provide(Ai.layerFirstPartyServices)),
    AppStore.entities
  ).pipe(Layer.provide(Layer.merge(skills, Ai.layerLlm)), Layer.provide(UploadsAttachments.layer)),
  // the public API: the registry for listings and the store; invocations are sent to SkillCall; the uploads routes
  routes,
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
      role === "runner" ? Effect.void : UploadsConfig.fromEnv,
      SkillsConfig.fromEnv,
      role === "gateway" ? AiSettings.defaultPriceFromEnv : AiSettings.fromEnv
    ], { discard: true })
}

/** Extra CLI commands contributed by the folders (preview, skill, admin …). */
export const commands = [
  PreviewCli.command,
  SkillCli.command,
  StoreCli.command,
  // the uploads routes alone, on their own port
  UploadsCli.make(app, uploadsRoutes.pipe(Layer.provide(uploads))) as unknown as typeof PreviewCli.command
] as const

/** Extra `troupe admin …` subcommands (`admin apps`). */
export const adminCommands = [StoreCli.adminCommand] as const
