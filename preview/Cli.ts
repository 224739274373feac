/**
 * `troupe preview`: run the preview server on its own (`PREVIEW_PORT`, default 8080), and
 * `troupe preview check-url <url> [--resolve name=addr[,addr]]`: print `ALLOW` or `BLOCK <reason>`
 * from the same checks the fetcher applies (exit code 0 for ALLOW, 1 for BLOCK).
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Cli from "../runtime/Cli.ts"
import * as TroupeConfig from "../runtime/Config.ts"
import * as SafeFetch from "../runtime/SafeFetch.ts"
import * as Telemetry from "../runtime/Telemetry.ts"
import * as PreviewConfig from "./Config.ts"
import * as Server from "./Server.ts"

/** `name=addr[,addr]` options → a resolver override table. */
export const parseResolve = (entries: ReadonlyArray<string>): Effect.Effect<Record<string, ReadonlyArray<string>>, Cli.StartupError> =>
  Effect.suspend(() => {
    const table: Record<string, Array<string>> = {}
    for (const entry of entries) {
      const eq = entry.indexOf("=")
      const name = entry.slice(0, eq).trim().toLowerCase()
      const addresses = entry.slice(eq + 1).split(",").map((a) => a.trim().replace(/^\[(.*)\]$/, "$1")).filter((a) => a.length > 0)
      if (eq <= 0 || addresses.length === 0) return Effect.fail(new Cli.StartupError(`--resolve ${entry}: expected name=addr[,addr]`))
      table[name] = [...(table[name] ?? []), ...addresses]
    }
    return Effect.succeed(table)
  })

const checkUrl = Command.make(
  "check-url",
  {
    url: Args.text({ name: "url" }).pipe(Args.withDescription("The URL to check")),
    resolve: Options.text("resolve").pipe(
      Options.withDescription("Answer DNS for a name with these addresses instead of asking the resolver (name=addr[,addr]); repeatable"),
      Options.repeated
    )
  },
  ({ resolve, url }) =>
    Effect.gen(function*() {
      const config = yield* Cli.loadConfig(PreviewConfig.fromEnv)
      const table = yield* parseResolve(resolve)
      const verdict = yield* SafeFetch.checkUrl(url, { allowedPrivateHosts: config.allowedPrivateHosts, resolve: table })
      if (verdict.allow) return yield* Cli.say("ALLOW")
      yield* Cli.say(`BLOCK ${verdict.reason}`)
      yield* Effect.sync(() => {
        process.exitCode = 1
      })
    })
).pipe(
  Command.withDescription(
    "Tell whether the preview service would fetch a URL: prints ALLOW (exit 0) or BLOCK <reason> (exit 1). Applies PREVIEW_ALLOWED_PRIVATE_HOSTS; redirects are not followed."
  )
)

/** The `preview` command. */
/** The settings `troupe preview --help` lists (defaults and details: preview/README.md). */
const settings = [
  "Settings (environment; defaults and details in preview/README.md):",
  "  PREVIEW_PORT, PREVIEW_HOST                      listen address (8080, 0.0.0.0)",
  "  PREVIEW_API_KEY, PREVIEW_SIGNING_KEY            who may call: keys, or signed URLs",
  "  PREVIEW_ANONYMOUS                               true: anyone may call",
  "  PREVIEW_VALIDATE_REFERER, PREVIEW_ALLOWED_REFERERS, PREVIEW_CORS_ORIGINS",
  "  PREVIEW_RATE_LIMIT, PREVIEW_TRUST_PROXY         per client IP (300/min); X-Forwarded-For",
  "  PREVIEW_ALLOWED_PRIVATE_HOSTS                   host:port origins that may be private",
  "  PREVIEW_IMAGE_ENGINE                            vips (default) or jsquash",
  "  PREVIEW_WORKERS, PREVIEW_WORKER_TIMEOUT_MS, PREVIEW_WORKER_MAX_MEMORY, PREVIEW_WORKER_MAX_JOBS, PREVIEW_MAX_QUEUE",
  "  PREVIEW_WORKERS_IDLE_STOP_MS                    workers start with the first image, stop when idle this long (60000; 0 keeps them)",
  "  PREVIEW_MAX_IMAGE_BYTES, PREVIEW_MAX_PIXELS, PREVIEW_MAX_FRAMES, PREVIEW_MAX_HTML_BYTES, PREVIEW_FETCH_TIMEOUT_MS",
  "  PREVIEW_DEFAULT_MAX_WIDTH, PREVIEW_DEFAULT_MAX_HEIGHT, PREVIEW_DEFAULT_QUALITY",
  "  PREVIEW_CACHE_DIR, PREVIEW_MEMORY_CACHE_SIZE",
  "  PREVIEW_IMAGE_CACHE_SIZE/_TTL, PREVIEW_FAVICON_CACHE_SIZE/_TTL, PREVIEW_METADATA_CACHE_SIZE/_TTL"
].join("\n")

const preview = Command.make("preview", {}, () =>
  Effect.gen(function*() {
    const troupe = yield* Cli.loadConfig(TroupeConfig.fromEnv)
    const config = yield* Cli.loadConfig(PreviewConfig.fromEnv)
    const version = "0.1.0"
    const logging = Telemetry.layerLogging({ service: "preview", level: troupe.log.level, format: troupe.log.format })
    yield* Effect.scoped(
      Layer.build(Server.layerStandalone(config, { version, admin: troupe.http.admin })).pipe(
        Effect.zipRight(
          Effect.logInfo(`Preview server ready on ${config.http.host}:${config.http.port}`).pipe(
            Effect.annotateLogs({ engine: config.engine, workers: config.pool.workers, cache_dir: config.cache.dir })
          )
        ),
        Effect.zipRight(Effect.never)
      )
    ).pipe(Effect.provide(logging))
  })
).pipe(
  Command.withDescription(
    "Run the preview service alone (image proxy, favicons, URL metadata) on PREVIEW_PORT (default 8080) with /health; /health/detailed and /metrics are on the admin listener (TROUPE_ADMIN_HOST:TROUPE_ADMIN_PORT, 127.0.0.1:9464). Needs PREVIEW_API_KEY, PREVIEW_SIGNING_KEY or PREVIEW_ANONYMOUS=true.\n\n" +
      settings
  ),
  Command.withSubcommands([checkUrl])
)

/** The `preview` command as `Cli.main` takes extra commands (its handler's input type erased). */
export const command = preview as unknown as Command.Command<string, never, unknown, unknown>
