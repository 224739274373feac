/**
 * No Docker engine runs here, so the stack is checked by reading it: the services exist, each
 * has a healthcheck, only the gateway is published, runners can be scaled, and every variable
 * the containers get is one the configuration reads.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"
import * as GatewayConfig from "../gateway/Config.ts"
import * as TroupeConfig from "../runtime/Config.ts"
import * as Tracing from "../runtime/Tracing.ts"
import { root } from "../runtime/testing/process.ts"

interface Service {
  readonly image?: string
  readonly build?: unknown
  readonly command?: ReadonlyArray<string>
  readonly environment?: Record<string, string>
  readonly ports?: ReadonlyArray<string>
  readonly healthcheck?: { readonly test: ReadonlyArray<string> }
  readonly container_name?: string
  readonly depends_on?: Record<string, { readonly condition: string }>
}

const compose = parse(NodeFs.readFileSync(NodePath.join(root, "docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, Service>
}
const services = compose.services

describe("docker-compose.yml", () => {
  it("runs Postgres, Redis, MinIO, runners and the gateway from one troupe image", () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(["postgres", "redis", "minio", "runner", "gateway"]))
    const troupe = Object.entries(services).filter(([, s]) => s.image === "troupe:latest")
    expect(troupe.map(([name]) => name).sort()).toEqual(["gateway", "migrate", "runner"])
    expect(services.runner!.command).toEqual(["runner"])
    expect(services.gateway!.command).toEqual(["gateway"])
  })

  it("gives every long-running service a healthcheck", () => {
    // one-shot jobs, and observability images that ship no shell nor HTTP client to probe with
    // (nothing waits on their health: see deploy/compose.test.ts)
    const exempt = ["migrate", "loki", "alloy", "tempo", "otel-collector"]
    for (const [name, service] of Object.entries(services)) {
      if (exempt.includes(name)) continue
      expect(service.healthcheck?.test.length, name).toBeGreaterThan(0)
    }
  })

  it("publishes only the gateway, and Grafana on loopback", () => {
    const published = Object.entries(services).filter(([, s]) => (s.ports ?? []).length > 0).map(([name]) => name)
    expect(published).toEqual(["gateway", "grafana"])
    expect(services.grafana!.ports!.every((p) => p.startsWith("127.0.0.1:"))).toBe(true)
  })

  it("lets runners scale: no fixed name or host port, each advertises its own address", () => {
    const runner = services.runner!
    expect(runner.container_name).toBeUndefined()
    expect(runner.ports).toBeUndefined()
    expect(runner.environment!.TROUPE_RUNNER_HOST).toBe("auto")
    expect(TroupeConfig.resolveRunnerHost("auto")).toMatch(/^\d+\.\d+\.\d+\.\d+$|^[\w.-]+$/)
  })

  it("uses only variables the configuration reads, pointing at the stack's services", () => {
    for (const name of ["runner", "gateway", "migrate"]) {
      const env = services[name]!.environment!
      for (const key of Object.keys(env)) expect([...TroupeConfig.variables, ...GatewayConfig.variables, ...Tracing.variables], `${name}: ${key}`).toContain(key)
      // every process shares the secrets that must be the same everywhere
      expect(env.TROUPE_MASTER_KEY).toMatch(/^\$\{TROUPE_MASTER_KEY:\?/)
      expect(env.TROUPE_JWT_SECRET).toMatch(/^\$\{TROUPE_JWT_SECRET:\?/)
      expect(env.DATABASE_URL).toMatch(/^postgres:\/\/[^@]+@postgres:5432\//)
      expect(env.REDIS_URL).toMatch(/^redis:\/\/redis:6379/)
      expect(env.S3_ENDPOINT).toBe("http://minio:9000")
      expect(env.S3_BUCKET).toBeTruthy()
    }
  })

  it("starts runners after migrations and the gateway after a healthy runner", () => {
    expect(services.runner!.depends_on!.migrate!.condition).toBe("service_completed_successfully")
    expect(services.gateway!.depends_on!.runner!.condition).toBe("service_healthy")
  })

  it("has a Dockerfile whose entry point is the troupe CLI", () => {
    const dockerfile = NodeFs.readFileSync(NodePath.join(root, "Dockerfile"), "utf8")
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", ("--[a-z-]+=\d+", )*"bin\/troupe\.mjs"\]$/m)
    expect(dockerfile).toMatch(/^HEALTHCHECK /m)
    // backups run pg_dump, which must be at least the server's major version
    const client = Number(/postgresql-client-(\d+)/.exec(dockerfile)?.[1])
    const server = Number(/^postgres:(\d+)/.exec(services.postgres!.image!)?.[1])
    expect(client).toBeGreaterThanOrEqual(server)
  })
})
