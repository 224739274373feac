/** Entry point of the `troupe` command (Node and Deno). */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cli from "../runtime/Cli.ts"
import { adminCommands, app, commands } from "./app.ts"

NodeRuntime.runMain(Cli.main(app, commands, process.argv, adminCommands), { disableErrorReporting: true, disablePrettyLogger: true })
