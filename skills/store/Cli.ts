/**
 * The app store from the command line, through a server's HTTP API with the API key in
 * `TROUPE_API_KEY`:
 *
 * - `troupe store ls [--query text] --server <url>` and `troupe store show <app> --server <url>`
 *   browse the catalog (any key);
 * - `troupe admin apps ls|trust|install|upgrade|approve|uninstall … --server <url>` administer installs
 *   (an admin's key with scope `apps:admin`, or an admin's access token).
 *
 * `--server` falls back to `TROUPE_SERVER`. Failures print `troupe: <code>: <message>` (the
 * server's error code) on stderr and exit with status 1; `--json` prints the server's answer.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Client from "./Client.ts"

const out = (line: string) => Effect.sync(() => void process.stdout.write(line + "\n"))

const serverOption = Options.text("server").pipe(
  Options.withFallbackConfig(Config.string("TROUPE_SERVER")),
  Options.withDescription("The Troupe server's URL (default: TROUPE_SERVER); the API key is read from TROUPE_API_KEY")
)
const jsonOption = Options.boolean("json").pipe(Options.withDescription("Print the server's JSON answer"))
const appArg = Args.text({ name: "app" }).pipe(Args.withDescription("The app's id (its manifest's id)"))
const versionArg = Args.text({ name: "version" }).pipe(Args.withDescription("The version, as published"))

/** Send a request as `TROUPE_API_KEY` and print its answer; failures print one line and exit 1. */
const call = <A>(
  server: string,
  method: string,
  path: string,
  body: unknown,
  print: (answer: A) => ReadonlyArray<string>,
  json: boolean
) =>
  Effect.gen(function*() {
    const token = process.env.TROUPE_API_KEY
    if (!token) return yield* Effect.fail(new Client.ClientError({ status: 0, code: "no_api_key", message: "set TROUPE_API_KEY to an API key (or an access token)" }))
    const answer = yield* Client.send<A>({ url: server, token }, method, path, body)
    yield* Effect.forEach(json ? [JSON.stringify(answer ?? null, null, 2)] : print(answer), out)
  }).pipe(
    Effect.catchAll((e) =>
      Effect.sync(() => {
        process.stderr.write(`troupe: ${e.code}: ${e.message}\n`)
        process.exitCode = 1
      })
    )
  )

const enc = encodeURIComponent

interface AppSummary {
  readonly id: string
  readonly name: string
  readonly latest_version: string
  readonly installed_version: string | null
  readonly description?: string
}

interface VersionView {
  readonly version: string
  readonly digest: string
  readonly signature: { readonly public_key: string; readonly trusted: boolean } | null
  readonly skills: ReadonlyArray<{ readonly id: string; readonly description?: string; readonly price?: string }>
}

interface InstallView {
  readonly app: string
  readonly version: string
  readonly digest: string
  readonly pending_upgrade: { readonly version: string } | null
}

interface DiffView {
  readonly from: string
  readonly to: string
  readonly escalates: boolean
  readonly changes: ReadonlyArray<{ readonly field: string; readonly from: unknown; readonly to: unknown; readonly escalates: boolean }>
}

const diffLines = (diff: DiffView) => diff.changes.map((c) => `  ${c.escalates ? "+" : " "} ${c.field}: ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)}`)

const ls = Command.make("ls", {
  server: serverOption,
  json: jsonOption,
  query: Options.text("query").pipe(Options.optional, Options.withDescription("Text to search in names, descriptions and skills"))
}, ({ json, query, server }) =>
  call<{ readonly apps: ReadonlyArray<AppSummary>; readonly total: number }>(
    server,
    "GET",
    `/v1/store/apps?limit=100${query._tag === "Some" ? `&q=${enc(query.value)}` : ""}`,
    undefined,
    (a) =>
      a.apps.length === 0
        ? ["No apps."]
        : [
          ...a.apps.map((app) =>
            `${app.id.padEnd(24)} ${app.latest_version.padEnd(10)} ${app.installed_version === null ? "-".padEnd(10) : `installed ${app.installed_version}`.padEnd(10)} ${app.name}`
          ),
          `${a.total} app(s)`
        ],
    json
  )).pipe(Command.withDescription("List the apps in the server's store: id, latest version, installed version, name."))

const show = Command.make("show", { app: appArg, server: serverOption, json: jsonOption }, ({ app, json, server }) =>
  call<{ readonly id: string; readonly name: string; readonly description?: string; readonly installed_version?: string | null; readonly versions: ReadonlyArray<VersionView> }>(
    server,
    "GET",
    `/v1/store/apps/${enc(app)}`,
    undefined,
    (a) => [
      `${a.name} (${a.id})${a.installed_version ? `, installed: ${a.installed_version}` : ""}`,
      ...(a.description ? [a.description] : []),
      ...a.versions.flatMap((v) => [
        `${v.version}  ${v.digest}  ${v.signature === null ? "unsigned" : `signed by ${v.signature.public_key}${v.signature.trusted ? " (trusted)" : " (not trusted)"}`}`,
        ...v.skills.map((s) => `  ${s.id}${s.price ? ` — ${s.price}` : ""}${s.description ? `: ${s.description}` : ""}`)
      ])
    ],
    json
  )).pipe(Command.withDescription("Show an app: its versions (digest, signature), skills and prices."))

/** `troupe store …`. */
export const store = Command.make("store").pipe(
  Command.withDescription("Browse a Troupe server's app store (API key in TROUPE_API_KEY)."),
  Command.withSubcommands([ls, show])
)

const installLine = (i: InstallView) => `${i.app} ${i.version} installed (${i.digest})${i.pending_upgrade ? `; upgrade to ${i.pending_upgrade.version} waits for approval` : ""}`

const installs = Command.make("ls", { server: serverOption, json: jsonOption }, ({ json, server }) =>
  call<{ readonly installs: ReadonlyArray<InstallView> }>(server, "GET", "/v1/admin/apps", undefined, (a) =>
    a.installs.length === 0 ? ["No apps installed."] : a.installs.map(installLine), json)).pipe(
    Command.withDescription("List the installed apps and pending upgrades.")
  )

const install = Command.make("install", { app: appArg, version: versionArg, server: serverOption, json: jsonOption }, ({ app, json, server, version }) =>
  call<InstallView>(server, "POST", `/v1/admin/apps/${enc(app)}/install`, { version }, (i) => [installLine(i)], json)).pipe(
    Command.withDescription("Install a version (pulled by digest and verified first).")
  )

const upgrade = Command.make("upgrade", { app: appArg, version: versionArg, server: serverOption, json: jsonOption }, ({ app, json, server, version }) =>
  call<{ readonly status: "upgraded" | "pending"; readonly install: InstallView; readonly diff: DiffView }>(
    server,
    "POST",
    `/v1/admin/apps/${enc(app)}/upgrade`,
    { version },
    (u) =>
      u.status === "pending"
        ? [`${app} ${version} asks for more than ${u.diff.from}; it waits for approval (troupe admin apps approve ${app} ${version}):`, ...diffLines(u.diff)]
        : [`${app} upgraded to ${u.install.version} (${u.install.digest})`, ...diffLines(u.diff)],
    json
  )).pipe(Command.withDescription("Upgrade to a version; one that asks for more permissions waits for approval, with its diff."))

const approve = Command.make("approve", { app: appArg, version: versionArg, server: serverOption, json: jsonOption }, ({ app, json, server, version }) =>
  call<InstallView>(server, "POST", `/v1/admin/apps/${enc(app)}/upgrade/${enc(version)}/approve`, undefined, (i) => [`Approved: ${installLine(i)}`], json)).pipe(
    Command.withDescription("Approve a pending upgrade.")
  )

const uninstall = Command.make("uninstall", { app: appArg, server: serverOption, json: jsonOption }, ({ app, json, server }) =>
  call<unknown>(server, "POST", `/v1/admin/apps/${enc(app)}/uninstall`, undefined, () => [`${app} uninstalled: new calls stop on every process within a poll.`], json)).pipe(
    Command.withDescription("Uninstall an app.")
  )

const trust = Command.make("trust", {
  publicKey: Args.text({ name: "public-key" }).pipe(Args.withDescription("ed25519:<base64>, the last line `troupe skill keygen` printed")),
  name: Options.text("name").pipe(Options.withDescription("Who the key belongs to")),
  server: serverOption,
  json: jsonOption
}, ({ json, name, publicKey, server }) =>
  call<unknown>(server, "POST", "/v1/admin/publishers", { public_key: publicKey, name }, () => [`Trusted ${publicKey} (${name}): versions it signs can be installed.`], json)).pipe(
    Command.withDescription("Trust a publisher's key (POST /v1/admin/publishers).")
  )

/** `troupe admin apps …`. */
export const adminApps = Command.make("apps").pipe(
  Command.withDescription("Install, upgrade, approve and uninstall apps on a server (an admin's API key with scope apps:admin in TROUPE_API_KEY)."),
  Command.withSubcommands([installs, trust, install, upgrade, approve, uninstall])
)

/** `troupe store …` as the CLI adds it. */
export const command = store as unknown as Command.Command<string, never, unknown, unknown>
/** `troupe admin apps …` as the CLI adds it under `admin`. */
export const adminCommand = adminApps as unknown as Command.Command<string, never, unknown, unknown>
