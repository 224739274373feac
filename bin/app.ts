/**
 * The composition root: what each folder contributes to the process roles. This is the only
 * module that sees every folder; the runtime stays independent of them.
 */
import * as Layer from "effect/Layer"
import * as Entities from "../entities/index.ts"
import * as PreviewCli from "../preview/Cli.ts"
import * as PreviewServer from "../preview/Server.ts"
import type * as Roles from "../runtime/Roles.ts"
import * as SkillKv from "../skills/host/KvStore.ts"
import * as SkillCli from "../skills/sdk/Cli.ts"
import pkg from "../package.json" with { type: "json" }

/** Troupe as the roles see it. */
export const app: Roles.App = {
  version: pkg.version,
  migrations: [...Entities.migrations, ...SkillKv.migrations],
  entities: Entities.layer,
  routes: Layer.empty,
  startRoutes: PreviewServer.layerEmbedded
}

/** Extra CLI commands contributed by the folders (preview, skill, admin …). */
export const commands = [PreviewCli.command, SkillCli.command] as const
