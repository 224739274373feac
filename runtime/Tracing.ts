/**
 * Traces: OpenTelemetry through `@effect/opentelemetry`'s OTLP exporter (OTLP/HTTP, JSON), set up
 * from the standard OpenTelemetry variables, so a chat turn is one trace from the HTTP request
 * through the gateway, the cluster call, the entity and what the turn calls. The cluster carries
 * the trace context in its messages (an envelope's trace and span ids), so spans on the runner
 * join the gateway's trace.
 *
 * - nothing is exported unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set;
 *   `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` turn it off;
 * - `service.name` is `OTEL_SERVICE_NAME`, else `troupe-<role>`; `OTEL_RESOURCE_ATTRIBUTES` and
 *   `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`) are honoured.
 */
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/** Where and as whom spans are exported. */
export interface TracingSettings {
  /** The OTLP/HTTP traces URL; none: tracing off. */
  readonly tracesUrl: Option.Option<string>
  readonly serviceName: string
  readonly headers: Record<string, string>
  readonly resourceAttributes: Record<string, string>
  readonly protocol: "http/json" | "http/protobuf"
}

/** The variables read (documented in the README). */
export const variables: ReadonlyArray<string> = [
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_EXPORTER_OTLP_PROTOCOL",
  "OTEL_SERVICE_NAME",
  "OTEL_RESOURCE_ATTRIBUTES",
  "OTEL_TRACES_EXPORTER",
  "OTEL_SDK_DISABLED"
]

/** `k=v,k2=v2` (values URL-encoded, as the OpenTelemetry spec says). */
const keyValues = (name: string) =>
  Config.string(name).pipe(
    Config.withDefault(""),
    Config.mapOrFail((raw) => {
      const out: Record<string, string> = {}
      for (const part of raw.split(",").map((p) => p.trim()).filter((p) => p.length > 0)) {
        const eq = part.indexOf("=")
        if (eq <= 0) return Either.left(ConfigError.InvalidData([name], "must be a list of key=value pairs separated by commas"))
        try {
          out[part.slice(0, eq).trim()] = decodeURIComponent(part.slice(eq + 1).trim())
        } catch {
          return Either.left(ConfigError.InvalidData([name], "has a value that is not URL-encoded"))
        }
      }
      return Either.right(out)
    })
  )

const url = (name: string) =>
  Config.option(Config.string(name).pipe(
    Config.mapOrFail((u) => (/^https?:\/\/[^\s]+$/.test(u) ? Either.right(u) : Either.left(ConfigError.InvalidData([name], "must be an http(s) URL"))))
  ))

/** The tracing settings of a role, from the standard OpenTelemetry variables. */
export const fromEnv = (role: string): Config.Config<TracingSettings> =>
  Config.all({
    endpoint: url("OTEL_EXPORTER_OTLP_ENDPOINT"),
    tracesEndpoint: url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    protocol: Config.literal("http/json", "http/protobuf", "grpc")("OTEL_EXPORTER_OTLP_PROTOCOL").pipe(Config.withDefault("http/json" as const)),
    exporter: Config.string("OTEL_TRACES_EXPORTER").pipe(Config.withDefault("otlp")),
    disabled: Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
    serviceName: Config.option(Config.nonEmptyString("OTEL_SERVICE_NAME")),
    headers: keyValues("OTEL_EXPORTER_OTLP_HEADERS"),
    resourceAttributes: keyValues("OTEL_RESOURCE_ATTRIBUTES")
  }).pipe(
    Config.mapOrFail((c) => {
      if (c.protocol === "grpc") return Either.left(ConfigError.InvalidData(["OTEL_EXPORTER_OTLP_PROTOCOL"], "grpc is not supported: use http/json or http/protobuf (port 4318)"))
      const off = c.disabled || c.exporter.split(",").map((e) => e.trim()).includes("none")
      const tracesUrl = off
        ? Option.none<string>()
        : Option.orElse(c.tracesEndpoint, () => Option.map(c.endpoint, (e) => `${e.replace(/\/+$/, "")}/v1/traces`))
      return Either.right({
        tracesUrl,
        serviceName: Option.getOrElse(c.serviceName, () => c.resourceAttributes["service.name"] ?? `troupe-${role}`),
        headers: c.headers,
        resourceAttributes: c.resourceAttributes,
        protocol: c.protocol
      })
    })
  )

/** Export spans as configured (nothing when no endpoint is set). */
export const layer = (settings: TracingSettings, version: string): Layer.Layer<never> =>
  Option.match(settings.tracesUrl, {
    onNone: () => Layer.empty,
    onSome: (tracesUrl) =>
      OtlpTracer.layer({
        url: tracesUrl,
        resource: { serviceName: settings.serviceName, serviceVersion: version, attributes: settings.resourceAttributes },
        headers: settings.headers,
        exportInterval: "1 second"
      }).pipe(
        Layer.provide(settings.protocol === "http/protobuf" ? OtlpSerialization.layerProtobuf : OtlpSerialization.layerJson),
        Layer.provide(NodeHttpClient.layerUndici)
      )
  })
