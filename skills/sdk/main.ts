/**
 * The entry point of the `troupe-skill` package (`skills/sdk/package`): the `troupe skill …`
 * commands (and `troupe store …`, `troupe admin apps …`) without the server's roles, so a skill project's `npm test` starts in a
 * fraction of the full CLI's time. Bundled to plain JavaScript by `skills/sdk/Package.ts`.
 */
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as StoreCli from "../store/Cli.ts"
import { skill } from "./Cli.ts"

declare const TROUPE_SKILL_PACKAGE: { readonly version: string } | undefined

const troupe = Command.make("troupe").pipe(
  Command.withDescription("Troupe's tools for skill authors (troupe skill …) and the app store's commands (troupe store …, troupe admin apps …)."),
  Command.withSubcommands([skill, StoreCli.store, Command.make("admin").pipe(Command.withSubcommands([StoreCli.adminApps]))])
)

const run = Command.run(troupe, { name: "troupe", version: typeof TROUPE_SKILL_PACKAGE === "undefined" ? "dev" : TROUPE_SKILL_PACKAGE.version })

NodeRuntime.runMain(
  run(process.argv).pipe(
    Effect.catchAll(() => Effect.sync(() => void (process.exitCode = 1))),
    Effect.provide(NodeContext.layer)
  ),
  { disableErrorReporting: true, disablePrettyLogger: true }
)
