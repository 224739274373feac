/**
 * The composition root: what each folder contributes to the process roles. This is the only
 * module that sees every folder; the runtime stays independent of them.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Entities from "../entities/index.ts"
import * as GatewayConfig from "../gateway/Config.ts"
import * as Gateway from "../gateway/Server.ts"
import * as PreviewCli from "../preview/Cli.ts"
import * as PreviewConfig from "../preview/Config.ts"
import * as PreviewServer from "../preview/Server.ts"
import type * as Roles from "../runtime/Roles.ts"
import * as SkillHost from "../skills/host/Host.ts"
import * as SkillKv from "../skills/host/KvStore.ts"
import * as AiPrices from "../skills/ai/Prices.ts"
import * as SkillCli from "../skills/sdk/Cli.ts"
import * as Skills from "../skills/Skills.ts"
import * as AppStore from "../skills/store/index.ts"
import pkg from "../package.json" with { type: "json" }

/** Troupe as the roles see it. */
export const app: Roles.App = {
  version: pkg.version,
  migrations: [...Entities.migrations, ...SkillKv.migrations, ...AiPrices.migrations, ...AppStore.migrations],
  entities: Layer.merge(Entities.layer, AppStore.entities),
  // the public API; skills run in the serving process (first-party apps, installed apps, KV in SQL)
  routes: Gateway.layer.pipe(
    Layer.provide(AppStore.layerServing),
    Layer.provide(Skills.layer().pipe(Layer.provideMerge(SkillHost.layer()), Layer.provide(SkillKv.layerSql())))
  ),
  startRoutes: PreviewServer.layerEmbedded,
  // what the routes read: the gateway's settings (start, gateway) and the embedded preview's (start)
  checkConfig: (role, config) =>
    role === "runner"
      ? Effect.void
      : Effect.zipRight(GatewayConfig.validate(config), role === "start" ? Effect.asVoid(PreviewConfig.fromEnv) : Effect.void)
}

/** Extra CLI commands contributed by the folders (preview, skill, admin …). */
export const commands = [PreviewCli.command, SkillCli.command] as const
