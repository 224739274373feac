/**
 * The LLM settings, read at a role's entry point with `Config` (never below it):
 *
 * - `TROUPE_LLM_PROVIDERS`: a JSON list of providers, each
 *   `{name, base_url, api_key_env?, models: [name | {name, family?, context_window?, max_output_tokens?}], priority?,
 *   first_token_timeout_ms?, idle_timeout_ms?, total_timeout_ms?, breaker?: {failures?, cooldown_ms?}}`.
 *   A lower `priority` is tried first (default 100; equal priorities keep the list's order). The
 *   key is read from the variable `api_key_env` names, so the JSON holds no secret.
 * - or the short form `TROUPE_LLM_BASE_URL` / `TROUPE_LLM_API_KEY` / `TROUPE_LLM_MODEL` (one
 *   provider named `default`; an API key alone means OpenAI), with `TROUPE_LLM_CONTEXT_WINDOW`;
 * - neither: `troupe start` probes Ollama at `TROUPE_LLM_OLLAMA_URL` (default
 *   `http://127.0.0.1:11434`; `off` disables the probe) once when it starts;
 * - `TROUPE_LLM_MAX_TOOL_ROUNDS` (default 5), `TROUPE_LLM_DEFAULT_PRICE` (`<input>/<output>` credits
 *   per 1,000 tokens, default `1/2`), `TROUPE_LLM_CONFIRM_TIMEOUT` (how long a `write` skill waits
 *   for the user, default 2 minutes). (A running turn's heartbeat is the chat's: `entities/chat/turns.ts`.)
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/** A model a provider serves. */
export interface ModelInfo {
  readonly name: string
  /** Models of one family are interchangeable for failover (default: the name). */
  readonly family: string
  /** Tokens the model reads and writes at most (prompt + answer). */
  readonly contextWindow: number
  /** Tokens an answer may have at most. */
  readonly maxOutputTokens: number
}

/** A circuit breaker's settings. */
export interface BreakerSettings {
  /** Consecutive failures or timeouts that open the breaker. */
  readonly failures: number
  /** How long an open breaker skips the provider before one trial request (half-open). */
  readonly cooldown: Duration.Duration
}

/** One OpenAI-compatible endpoint. */
export interface ProviderSettings {
  readonly name: string
  /** `…/v1`. */
  readonly baseUrl: string
  /** The variable the key was read from (shown to admins; the key never is). */
  readonly apiKeyEnv: string | null
  readonly apiKey: Option.Option<Redacted.Redacted>
  readonly models: ReadonlyArray<ModelInfo>
  readonly priority: number
  /** Until the first streamed part of an answer. */
  readonly firstTokenTimeout: Duration.Duration
  /** Between two streamed parts. */
  readonly idleTimeout: Duration.Duration
  /** For a whole answer. */
  readonly totalTimeout: Duration.Duration
  readonly breaker: BreakerSettings
}

/** Credits per 1,000 tokens. */
export interface Price {
  readonly input: number
  readonly output: number
}

/** Everything the `ai` app reads. */
export interface LlmSettings {
  readonly providers: ReadonlyArray<ProviderSettings>
  /** Where the providers came from. */
  readonly source: "providers" | "short" | "none"
  /** Ollama's URL to probe when nothing is configured (only `troupe start` probes). */
  readonly ollamaUrl: Option.Option<string>
  readonly maxToolRounds: number
  readonly defaultPrice: Price
  readonly confirmTimeout: Duration.Duration
}

export const defaultContextWindow = 8192
export const defaultMaxOutputTokens = 1024
export const defaultBreaker: BreakerSettings = { failures: 3, cooldown: Duration.seconds(30) }

/** A provider's timeouts when none are configured. */
export const defaultTimeouts = {
  firstToken: Duration.seconds(60),
  idle: Duration.seconds(60),
  total: Duration.minutes(10)
} as const

const Name = Schema.String.pipe(Schema.pattern(/^[a-z0-9][a-z0-9_.-]{0,63}$/, { message: () => "must be 1-64 lowercase letters, digits, _ . or -" }))
const Positive = Schema.Int.pipe(Schema.greaterThan(0))
const Url = Schema.String.pipe(Schema.filter((s) => {
  try {
    const u = new URL(s)
    return u.protocol === "http:" || u.protocol === "https:" ? true : "must be an http(s) URL"
  } catch {
    return "must be an http(s) URL"
  }
}))

const ModelEntry = Schema.Union(
  Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  Schema.Struct({
    name: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
    family: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))),
    context_window: Schema.optional(Positive),
    max_output_tokens: Schema.optional(Positive)
  })
)

/** One entry of `TROUPE_LLM_PROVIDERS`. */
export const ProviderEntry = Schema.Struct({
  name: Name,
  base_url: Url,
  api_key_env: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: () => "must be an environment variable name" }))),
  models: Schema.Array(ModelEntry).pipe(Schema.minItems(1)),
  priority: Schema.optional(Schema.Int),
  first_token_timeout_ms: Schema.optional(Positive),
  idle_timeout_ms: Schema.optional(Positive),
  total_timeout_ms: Schema.optional(Positive),
  breaker: Schema.optional(Schema.Struct({ failures: Schema.optional(Positive), cooldown_ms: Schema.optional(Positive) }))
})
export type ProviderEntry = typeof ProviderEntry.Type

const ProviderList = Schema.parseJson(Schema.Array(ProviderEntry).pipe(
  Schema.filter((list) => {
    const names = list.map((p) => p.name)
    const twice = names.find((n, i) => names.indexOf(n) !== i)
    return twice === undefined ? true : `provider name "${twice}" is used twice`
  })
))

const invalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

const modelOf = (entry: typeof ModelEntry.Type, contextWindow = defaultContextWindow): ModelInfo =>
  typeof entry === "string"
    ? { name: entry, family: entry, contextWindow, maxOutputTokens: Math.min(defaultMaxOutputTokens, Math.floor(contextWindow / 4)) }
    : {
      name: entry.name,
      family: entry.family ?? entry.name,
      contextWindow: entry.context_window ?? contextWindow,
      maxOutputTokens: entry.max_output_tokens ?? Math.min(defaultMaxOutputTokens, Math.floor((entry.context_window ?? contextWindow) / 4))
    }

/** A provider from a decoded entry and its key. */
export const providerOf = (entry: ProviderEntry, apiKey: Option.Option<Redacted.Redacted>, index = 0): ProviderSettings => ({
  name: entry.name,
  baseUrl: entry.base_url.replace(/\/+$/, ""),
  apiKeyEnv: entry.api_key_env ?? null,
  apiKey,
  models: entry.models.map((m) => modelOf(m)),
  priority: entry.priority ?? 100 + index,
  firstTokenTimeout: entry.first_token_timeout_ms ? Duration.millis(entry.first_token_timeout_ms) : defaultTimeouts.firstToken,
  idleTimeout: entry.idle_timeout_ms ? Duration.millis(entry.idle_timeout_ms) : defaultTimeouts.idle,
  totalTimeout: entry.total_timeout_ms ? Duration.millis(entry.total_timeout_ms) : defaultTimeouts.total,
  breaker: {
    failures: entry.breaker?.failures ?? defaultBreaker.failures,
    cooldown: entry.breaker?.cooldown_ms ? Duration.millis(entry.breaker.cooldown_ms) : defaultBreaker.cooldown
  }
})

const formatIssues = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message))
    .join("; ")

/** `<input>/<output>` credits per 1,000 tokens. */
export const parsePrice = (text: string): Either.Either<Price, string> => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)\s*$/.exec(text)
  if (!m) return Either.left("must be <input>/<output> credits per 1000 tokens, e.g. 1/2")
  return Either.right({ input: Number(m[1]), output: Number(m[2]) })
}

/** `TROUPE_LLM_DEFAULT_PRICE` alone (what a gateway needs: it reads no provider keys). */
export const defaultPriceFromEnv: Config.Config<Price> = Config.string("TROUPE_LLM_DEFAULT_PRICE").pipe(
  Config.withDefault("1/2"),
  Config.mapOrFail((s) => Either.mapLeft(parsePrice(s), (m) => invalid("TROUPE_LLM_DEFAULT_PRICE", m)))
)

const providersFromJson = Effect.gen(function*() {
  const raw = yield* Config.option(Config.string("TROUPE_LLM_PROVIDERS"))
  if (Option.isNone(raw) || raw.value.trim().length === 0) return Option.none<ReadonlyArray<ProviderSettings>>()
  const entries = yield* Schema.decodeUnknown(ProviderList)(raw.value).pipe(
    Effect.mapError((e) => invalid("TROUPE_LLM_PROVIDERS", formatIssues(e)))
  )
  const providers: Array<ProviderSettings> = []
  for (const [i, entry] of entries.entries()) {
    const key = entry.api_key_env
      ? Option.some(yield* Config.redacted(entry.api_key_env).pipe(
        Effect.mapError(() => invalid(entry.api_key_env!, `is required: provider "${entry.name}" of TROUPE_LLM_PROVIDERS reads its API key from it`))
      ))
      : Option.none<Redacted.Redacted>()
    providers.push(providerOf(entry, key, i))
  }
  return Option.some(providers)
})

const providerFromShortForm = Effect.gen(function*() {
  const baseUrl = yield* Config.option(Config.string("TROUPE_LLM_BASE_URL"))
  const apiKey = yield* Config.option(Config.redacted("TROUPE_LLM_API_KEY"))
  const model = yield* Config.option(Config.string("TROUPE_LLM_MODEL"))
  const contextWindow = yield* Config.option(Config.integer("TROUPE_LLM_CONTEXT_WINDOW"))
  if (Option.isNone(baseUrl) && Option.isNone(apiKey) && Option.isNone(model)) return Option.none<ProviderSettings>()
  const url = Option.getOrElse(baseUrl, () => "https://api.openai.com/v1")
  if (Option.isNone(model)) {
    return yield* Effect.fail(invalid("TROUPE_LLM_MODEL", "is required with TROUPE_LLM_BASE_URL or TROUPE_LLM_API_KEY (the model to use, e.g. gpt-4o-mini or llama3.2)"))
  }
  if (Option.isNone(baseUrl) && Option.isNone(apiKey)) {
    return yield* Effect.fail(invalid("TROUPE_LLM_BASE_URL", "is required with TROUPE_LLM_MODEL (e.g. http://127.0.0.1:11434/v1 for Ollama), or set TROUPE_LLM_API_KEY for OpenAI"))
  }
  const entry = yield* Schema.decodeUnknown(ProviderEntry)({
    name: "default",
    base_url: url,
    models: [{ name: model.value, ...(Option.isSome(contextWindow) ? { context_window: contextWindow.value } : {}) }]
  }).pipe(Effect.mapError((e) => invalid("TROUPE_LLM_BASE_URL", formatIssues(e))))
  return Option.some({ ...providerOf(entry, apiKey), apiKeyEnv: Option.isSome(apiKey) ? "TROUPE_LLM_API_KEY" : null })
})

/** The LLM settings from the environment. */
export const fromEnv: Effect.Effect<LlmSettings, ConfigError.ConfigError> = Effect.gen(function*() {
  const listed = yield* providersFromJson
  const short = Option.isNone(listed) ? yield* providerFromShortForm : Option.none<ProviderSettings>()
  const ollama = yield* Config.string("TROUPE_LLM_OLLAMA_URL").pipe(Config.withDefault("http://127.0.0.1:11434"))
  const maxToolRounds = yield* Config.integer("TROUPE_LLM_MAX_TOOL_ROUNDS").pipe(
    Config.withDefault(5),
    Config.mapOrFail((n) => (n >= 0 && n <= 50 ? Either.right(n) : Either.left(invalid("TROUPE_LLM_MAX_TOOL_ROUNDS", "must be between 0 and 50"))))
  )
  const defaultPrice = yield* defaultPriceFromEnv
  const confirmTimeout = yield* Config.duration("TROUPE_LLM_CONFIRM_TIMEOUT").pipe(Config.withDefault(Duration.minutes(2)))
  const providers = Option.isSome(listed) ? listed.value : Option.isSome(short) ? [short.value] : []
  return {
    providers,
    source: Option.isSome(listed) ? "providers" : Option.isSome(short) ? "short" : "none",
    ollamaUrl: providers.length === 0 && ollama !== "off" ? Option.some(ollama.replace(/\/+$/, "")) : Option.none(),
    maxToolRounds,
    defaultPrice,
    confirmTimeout
  }
})

/** Settings with the given providers and the defaults (tests, embedding). */
export const make = (overrides: Partial<LlmSettings> = {}): LlmSettings => ({
  providers: [],
  source: overrides.providers && overrides.providers.length > 0 ? "providers" : "none",
  ollamaUrl: Option.none(),
  maxToolRounds: 5,
  defaultPrice: { input: 1, output: 2 },
  confirmTimeout: Duration.minutes(2),
  ...overrides
})
