/**
 * The gateway's settings: read with `Config` when the gateway's layer is built (at the role's
 * entry point) and handed to the handlers as the `GatewayConfig` service.
 *
 * The JWT signing key comes from `TROUPE_JWT_SECRET`; on the embedded default (no
 * `DATABASE_URL`) it is generated once into `<data dir>/jwt.key` (mode 0600). With Postgres it
 * is required, because every gateway must verify every other gateway's tokens.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import type { TroupeConfigShape } from "../runtime/Config.ts"

/** Who may sign up. */
export type SignupPolicy =
  | { readonly _tag: "InviteOnly" }
  | { readonly _tag: "Open" }
  /** Open to these email domains; others need an invite. */
  | { readonly _tag: "Domains"; readonly domains: ReadonlyArray<string> }

/** A rate limit: `points` requests per `duration`. */
export interface Limit {
  readonly points: number
  readonly duration: Duration.Duration
}

export interface GatewaySettings {
  /** HMAC key for access tokens (HS256), at least 32 bytes. */
  readonly jwtSecret: Redacted.Redacted<Uint8Array>
  readonly accessTokenTtl: Duration.Duration
  readonly signup: SignupPolicy
  /** Credits every new account is granted. */
  readonly startingCredits: number
  /** Origins allowed by CORS (exact `scheme://host[:port]`); empty: no cross-origin access. */
  readonly corsOrigins: ReadonlyArray<string>
  /** Cookies get `Secure` (on when the public URL is https). */
  readonly secureCookies: boolean
  /** Trust `X-Forwarded-For` for the client address (behind a reverse proxy). */
  readonly trustProxy: boolean
  readonly rateLimits: {
    /** Every request, per client address. */
    readonly perIp: Limit
    /** Every authenticated request, per user. */
    readonly perUser: Limit
    /** `/v1/auth/*`, per client address. */
    readonly auth: Limit
    /** Login attempts per account and client address (brute force); a success refunds its attempt. */
    readonly loginFailures: Limit
    /**
     * Login attempts per account from anywhere (slower; default 30 per hour). Past it, only a
     * correct password with a second factor gets in, so a lockout from other addresses does not
     * keep the owner out.
     */
    readonly loginAccountFailures?: Limit | undefined
    /** E-mail verification attempts per address, across codes (default 10 per hour). */
    readonly emailCodeAttempts?: Limit | undefined
    /** Mails sent to one address on request (password reset links, verification codes resent), per purpose; default 5 an hour. */
    readonly mailPerAddress?: Limit
  }
  readonly maxBodyBytes: number
  /** Prefix of the rate limiters' keys (in Redis). */
  readonly rateLimitPrefix: string
  /** SSE comment heartbeat interval. */
  readonly heartbeat: Duration.Duration
  /** `smtp://user:pass@host:port` (or smtps://); none: mail goes to `<data dir>/outbox/`. */
  readonly smtpUrl: Option.Option<Redacted.Redacted>
  readonly mailFrom: string
  readonly publicUrl: Option.Option<string>
  readonly dataDir: string
  /** Issuer shown in authenticator apps. */
  readonly issuer: string
  /** OpenID Connect providers for single sign-on (`TROUPE_OIDC_PROVIDERS`). */
  readonly oidcProviders?: ReadonlyArray<OidcProvider> | undefined
  /** Single sign-on is the only way in: passwords, passkeys, signup and password reset are refused (`TROUPE_SSO_ONLY`). */
  readonly ssoOnly?: boolean | undefined
}

/** An OpenID Connect provider Troupe signs users in with. */
export interface OidcProvider {
  /** In the callback path: `/v1/auth/oidc/<id>/callback`. */
  readonly id: string
  /** Shown on the login page. */
  readonly name: string
  readonly issuer: string
  readonly clientId: string
  readonly clientSecret: Redacted.Redacted
  readonly scopes: ReadonlyArray<string>
  /** A claim (string or list of strings) whose values make an admin; none: roles are not managed by the provider. */
  readonly roleClaim: string | undefined
  readonly adminValues: ReadonlyArray<string>
  /** E-mail domains allowed in; empty: any. */
  readonly allowedDomains: ReadonlyArray<string>
}

const OidcProviderJson = Schema.Struct({
  id: Schema.String.pipe(Schema.pattern(/^[a-z0-9][a-z0-9_-]{0,31}$/)),
  name: Schema.optional(Schema.String.pipe(Schema.maxLength(80))),
  issuer: Schema.String.pipe(Schema.pattern(/^https?:\/\/\S+$/)),
  client_id: Schema.String.pipe(Schema.minLength(1)),
  client_secret: Schema.String.pipe(Schema.minLength(1)),
  scopes: Schema.optional(Schema.Array(Schema.String.pipe(Schema.pattern(/^[\x21-\x7e]+$/)))),
  role_claim: Schema.optional(Schema.String),
  admin_values: Schema.optional(Schema.Array(Schema.String)),
  allowed_domains: Schema.optional(Schema.Array(Schema.String.pipe(Schema.pattern(/^[a-z0-9.-]+\.[a-z]{2,}$/i))))
})

/** Parse `TROUPE_OIDC_PROVIDERS` (a JSON array); a message when it is wrong. */
export const parseOidcProviders = (value: string): Either.Either<ReadonlyArray<OidcProvider>, string> => {
  const decoded = Schema.decodeUnknownEither(Schema.parseJson(Schema.Array(OidcProviderJson)))(value.trim() === "" ? "[]" : value)
  if (Either.isLeft(decoded)) return Either.left(`must be a JSON array of {id, issuer, client_id, client_secret, scopes?, role_claim?, admin_values?, allowed_domains?}: ${decoded.left.message.split("\n")[0]}`)
  const ids = decoded.right.map((p) => p.id)
  if (new Set(ids).size !== ids.length) return Either.left("provider ids must be unique")
  return Either.right(decoded.right.map((p): OidcProvider => ({
    id: p.id,
    name: p.name ?? p.id,
    issuer: p.issuer,
    clientId: p.client_id,
    clientSecret: Redacted.make(p.client_secret),
    scopes: p.scopes && p.scopes.length > 0 ? (p.scopes.includes("openid") ? p.scopes : ["openid", ...p.scopes]) : ["openid", "email", "profile"],
    roleClaim: p.role_claim,
    adminValues: p.admin_values ?? [],
    allowedDomains: (p.allowed_domains ?? []).map((d) => d.toLowerCase())
  })))
}

/** The gateway settings service. */
export class GatewayConfig extends Context.Tag("troupe/gateway/GatewayConfig")<GatewayConfig, GatewaySettings>() {}

const check = <A>(name: string, message: string, ok: (a: A) => boolean) => (config: Config.Config<A>) =>
  Config.mapOrFail(config, (a) => (ok(a) ? Either.right(a) : Either.left(ConfigError.InvalidData([name], message))))

/** Defaults of the limits that settings may leave out. */
export const defaultLimits = {
  loginAccountFailures: { points: 30, duration: Duration.hours(1) },
  emailCodeAttempts: { points: 10, duration: Duration.hours(1) }
} satisfies Record<string, Limit>

const limit = (name: string, points: number, duration: Duration.DurationInput): Config.Config<Limit> =>
  Config.string(name).pipe(
    Config.withDefault(`${points}/${Duration.toSeconds(Duration.decode(duration))}s`),
    Config.mapOrFail((value) => {
      const m = /^(\d+)\s*\/\s*(\d+)\s*(s|m|h)$/.exec(value.trim())
      if (!m || Number(m[1]) < 1) return Either.left(ConfigError.InvalidData([name], "must look like 100/60s, 10/15m or 1000/1h"))
      const seconds = Number(m[2]) * (m[3] === "h" ? 3600 : m[3] === "m" ? 60 : 1)
      return seconds >= 1 ? Either.right({ points: Number(m[1]), duration: Duration.seconds(seconds) }) : Either.left(ConfigError.InvalidData([name], "duration must be at least 1 second"))
    })
  )

const signup: Config.Config<SignupPolicy> = Config.string("TROUPE_SIGNUP").pipe(
  Config.withDefault("invite_only"),
  Config.mapOrFail((value): Either.Either<SignupPolicy, ConfigError.ConfigError> => {
    const v = value.trim()
    if (v === "invite_only") return Either.right({ _tag: "InviteOnly" })
    if (v === "open") return Either.right({ _tag: "Open" })
    if (v.startsWith("domains:")) {
      const domains = v.slice("domains:".length).split(",").map((d) => d.trim().toLowerCase()).filter((d) => d.length > 0)
      if (domains.length > 0 && domains.every((d) => /^[a-z0-9.-]+\.[a-z]{2,}$/.test(d))) return Either.right({ _tag: "Domains", domains })
    }
    return Either.left(ConfigError.InvalidData(["TROUPE_SIGNUP"], "must be invite_only, open, or domains:example.com,example.org"))
  })
)

const origins = Config.string("TROUPE_CORS_ORIGINS").pipe(
  Config.withDefault(""),
  Config.mapOrFail((value) => {
    const list = value.split(",").map((o) => o.trim()).filter((o) => o.length > 0)
    for (const o of list) {
      let ok = false
      try {
        const u = new URL(o)
        ok = (u.protocol === "http:" || u.protocol === "https:") && u.origin === o
      } catch {
        ok = false
      }
      if (!ok) return Either.left(ConfigError.InvalidData(["TROUPE_CORS_ORIGINS"], `must be a comma-separated list of origins like https://app.example.com (got ${o})`))
    }
    return Either.right(list)
  })
)

/** Decode a JWT secret: base64 of at least 32 bytes. */
export const decodeJwtSecret = (value: string): Uint8Array | undefined => {
  const raw = Buffer.from(value.trim(), "base64")
  return raw.byteLength >= 32 ? new Uint8Array(raw) : undefined
}

/** Everything but the JWT key, from the environment. */
const settings = (troupe: TroupeConfigShape) =>
  Config.all({
    jwtSecret: Config.option(Config.redacted("TROUPE_JWT_SECRET").pipe(
      Config.mapOrFail((r) => {
        const raw = decodeJwtSecret(Redacted.value(r))
        return raw ? Either.right(raw) : Either.left(ConfigError.InvalidData(["TROUPE_JWT_SECRET"], "must be at least 32 bytes encoded in base64 (openssl rand -base64 32)"))
      })
    )),
    accessTokenTtl: Config.duration("TROUPE_ACCESS_TOKEN_TTL").pipe(
      Config.withDefault(Duration.minutes(15)),
      check("TROUPE_ACCESS_TOKEN_TTL", "must be between 1 minute and 1 day", (d: Duration.Duration) => Duration.between(d, { minimum: Duration.minutes(1), maximum: Duration.days(1) }))
    ),
    signup,
    startingCredits: Config.integer("TROUPE_SIGNUP_CREDITS").pipe(Config.withDefault(100), check("TROUPE_SIGNUP_CREDITS", "must be 0 or more", (n: number) => n >= 0)),
    corsOrigins: origins,
    secureCookies: Config.option(Config.boolean("TROUPE_SECURE_COOKIES")),
    trustProxy: Config.boolean("TROUPE_TRUST_PROXY").pipe(Config.withDefault(false)),
    rateLimits: Config.all({
      perIp: limit("TROUPE_RATE_LIMIT_IP", 1200, "60 seconds"),
      perUser: limit("TROUPE_RATE_LIMIT_USER", 600, "60 seconds"),
      auth: limit("TROUPE_RATE_LIMIT_AUTH", 30, "60 seconds"),
      loginFailures: limit("TROUPE_RATE_LIMIT_LOGIN_FAILURES", 10, "15 minutes"),
      loginAccountFailures: limit("TROUPE_RATE_LIMIT_LOGIN_ACCOUNT", defaultLimits.loginAccountFailures.points, defaultLimits.loginAccountFailures.duration),
      emailCodeAttempts: limit("TROUPE_RATE_LIMIT_EMAIL_CODES", defaultLimits.emailCodeAttempts.points, defaultLimits.emailCodeAttempts.duration),
      mailPerAddress: limit("TROUPE_RATE_LIMIT_MAIL", 5, "1 hour")
    }),
    maxBodyBytes: Config.integer("TROUPE_MAX_BODY_BYTES").pipe(
      Config.withDefault(256 * 1024),
      check("TROUPE_MAX_BODY_BYTES", "must be between 1024 and 1048576", (n: number) => n >= 1024 && n <= 1024 * 1024)
    ),
    rateLimitPrefix: Config.string("REDIS_KEY_PREFIX").pipe(Config.withDefault("troupe:"), Config.map((p) => `${p}rl:`)),
    heartbeat: Config.duration("TROUPE_SSE_HEARTBEAT").pipe(Config.withDefault(Duration.seconds(15))),
    smtpUrl: Config.option(Config.redacted("SMTP_URL").pipe(
      Config.mapOrFail((r) => {
        try {
          const u = new URL(Redacted.value(r))
          if (u.protocol === "smtp:" || u.protocol === "smtps:") return Either.right(r)
        } catch {
          // fall through
        }
        return Either.left(ConfigError.InvalidData(["SMTP_URL"], "must be a URL like smtp://user:pass@host:587 or smtps://user:pass@host:465"))
      })
    )),
    mailFrom: Config.string("TROUPE_MAIL_FROM").pipe(Config.withDefault("Troupe <no-reply@localhost>")),
    issuer: Config.string("TROUPE_TOTP_ISSUER").pipe(Config.withDefault("Troupe")),
    oidcProviders: Config.redacted("TROUPE_OIDC_PROVIDERS").pipe(
      Config.withDefault(Redacted.make("[]")),
      Config.mapOrFail((r) => Either.mapLeft(parseOidcProviders(Redacted.value(r)), (m) => ConfigError.InvalidData(["TROUPE_OIDC_PROVIDERS"], m)))
    ),
    ssoOnly: Config.boolean("TROUPE_SSO_ONLY").pipe(Config.withDefault(false))
  }).pipe(
    Config.mapOrFail((s) => {
      if (Option.isNone(s.jwtSecret) && troupe.database._tag === "Postgres") {
        return Either.left(ConfigError.MissingData(["TROUPE_JWT_SECRET"], "is required when DATABASE_URL is set (every gateway must share it)"))
      }
      return Either.right(s)
    })
  )

/** Check the gateway's settings without touching anything (the key file is read or made later). */
export const validate = (troupe: TroupeConfigShape): Effect.Effect<void, ConfigError.ConfigError> => Effect.asVoid(settings(troupe))

/** The JWT key file of the embedded default: created once with mode 0600, then reused. */
export const loadOrCreateJwtKey = (path: string): Uint8Array => {
  try {
    const raw = decodeJwtSecret(NodeFs.readFileSync(path, "utf8"))
    if (raw) return raw
    throw new Error(`${path}: not a base64 key of at least 32 bytes`)
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOENT") throw e
  }
  NodeFs.mkdirSync(NodePath.dirname(path), { recursive: true, mode: 0o700 })
  const raw = NodeCrypto.randomBytes(32)
  try {
    NodeFs.writeFileSync(path, raw.toString("base64") + "\n", { mode: 0o600, flag: "wx" })
    return new Uint8Array(raw)
  } catch (e) {
    if ((e as { code?: string }).code === "EEXIST") return decodeJwtSecret(NodeFs.readFileSync(path, "utf8"))!
    throw e
  }
}

/** The gateway settings from the environment, given the runtime's configuration. */
export const fromEnv = (troupe: TroupeConfigShape): Effect.Effect<GatewaySettings, ConfigError.ConfigError | Error> =>
  Effect.gen(function*() {
    const s = yield* settings(troupe)
    const jwtSecret = Option.isSome(s.jwtSecret)
      ? s.jwtSecret.value
      : yield* Effect.try(() => loadOrCreateJwtKey(NodePath.join(troupe.dataDir, "jwt.key")))
    const publicUrl = troupe.http.publicUrl
    return {
      ...s,
      jwtSecret: Redacted.make(jwtSecret),
      secureCookies: Option.getOrElse(s.secureCookies, () => Option.exists(publicUrl, (u) => u.startsWith("https:"))),
      publicUrl,
      dataDir: troupe.dataDir
    }
  })

/** Settings for tests and tools: sensible defaults with overrides. */
export const make = (overrides: Partial<GatewaySettings> & { readonly dataDir: string }): GatewaySettings => ({
  jwtSecret: Redacted.make(new Uint8Array(NodeCrypto.randomBytes(32))),
  accessTokenTtl: Duration.minutes(15),
  signup: { _tag: "InviteOnly" },
  startingCredits: 100,
  corsOrigins: [],
  secureCookies: false,
  trustProxy: false,
  rateLimits: {
    perIp: { points: 100_000, duration: Duration.seconds(60) },
    perUser: { points: 100_000, duration: Duration.seconds(60) },
    auth: { points: 10_000, duration: Duration.seconds(60) },
    loginFailures: { points: 10, duration: Duration.minutes(15) }
  },
  maxBodyBytes: 256 * 1024,
  rateLimitPrefix: `troupe-test-${NodeCrypto.randomBytes(4).toString("hex")}:rl:`,
  heartbeat: Duration.seconds(15),
  smtpUrl: Option.none(),
  mailFrom: "Troupe <no-reply@localhost>",
  publicUrl: Option.none(),
  issuer: "Troupe",
  ...overrides
})

/** Every environment variable the gateway reads. */
export const variables: ReadonlyArray<string> = [
  "TROUPE_JWT_SECRET", "TROUPE_ACCESS_TOKEN_TTL", "TROUPE_SIGNUP", "TROUPE_SIGNUP_CREDITS", "TROUPE_CORS_ORIGINS",
  "TROUPE_SECURE_COOKIES", "TROUPE_TRUST_PROXY", "TROUPE_RATE_LIMIT_IP", "TROUPE_RATE_LIMIT_USER", "TROUPE_RATE_LIMIT_AUTH",
  "TROUPE_RATE_LIMIT_LOGIN_FAILURES", "TROUPE_RATE_LIMIT_MAIL", "TROUPE_MAX_BODY_BYTES", "TROUPE_SSE_HEARTBEAT", "SMTP_URL", "TROUPE_MAIL_FROM", "TROUPE_TOTP_ISSUER",
  "TROUPE_OIDC_PROVIDERS", "TROUPE_SSO_ONLY"
]
