/**
 * The compose stack's observability, checked without Docker (none runs here): every service's
 * image is pinned, every `depends_on`, port, volume and mounted config file exists; Prometheus
 * scrapes every role's admin listener, finding runners and gateways by DNS (so `--scale` needs no
 * change); the collector, Loki, Alloy, Tempo and Grafana point at each other on ports they listen
 * on; and every metric a dashboard panel reads is one a real server exports — the test starts one
 * (`troupe start` in-process), makes a turn, scrapes `/metrics` and compares names and labels.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse } from "yaml"
import { onboard, readEvents } from "../gateway/testing/flows.ts"
import { request, startServer, type TestServer } from "../gateway/testing/server.ts"
import { root } from "../runtime/testing/process.ts"

interface Service {
  readonly image?: string
  readonly build?: unknown
  readonly command?: ReadonlyArray<string>
  readonly entrypoint?: ReadonlyArray<string>
  readonly environment?: Record<string, string>
  readonly ports?: ReadonlyArray<string>
  readonly volumes?: ReadonlyArray<string>
  readonly healthcheck?: { readonly test: ReadonlyArray<string> }
  readonly restart?: string
  readonly container_name?: string
  readonly depends_on?: Record<string, { readonly condition: string }>
}

const read = (path: string) => NodeFs.readFileSync(NodePath.join(root, path), "utf8")
const yamlFile = <A>(path: string): A => parse(read(path)) as A
const compose = parse(read("docker-compose.yml"), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> }
const services = compose.services
const troupeRoles = ["gateway", "runner", "migrate"]

/** A service's bind mounts: host path (relative to the repository) → container path. */
const binds = (name: string) =>
  (services[name]!.volumes ?? []).map((v) => v.split(":")).filter(([source]) => source!.startsWith(".") || source!.startsWith("/"))
    .map(([source, target]) => ({ source: source!, target: target! }))
/** The repository file mounted at `target` (or under a mounted folder) in a service. */
const mountedFile = (name: string, target: string): string => {
  const bind = binds(name).find((b) => target === b.target || target.startsWith(`${b.target}/`))
  if (!bind) throw new Error(`${name}: nothing mounted at ${target}`)
  return NodePath.join(bind.source, target.slice(bind.target.length))
}
/** The value of `--flag=value` or `-flag=value` in a command. */
const flag = (command: ReadonlyArray<string> | undefined, name: string) =>
  command?.map((a) => new RegExp(`^--?${name}=(.*)$`).exec(a)?.[1]).find((v) => v !== undefined)
/** `host:port` of a URL or endpoint. */
const hostPort = (endpoint: string) => {
  const m = /^(?:[a-z]+:\/\/)?([^:/]+):(\d+)/.exec(endpoint)
  if (!m) throw new Error(`no host:port in ${endpoint}`)
  return { host: m[1]!, port: Number(m[2]) }
}

// each observability service's own configuration, read from the file its container is given
const prometheus = yamlFile<{ scrape_configs: Array<{ job_name: string; dns_sd_configs?: Array<{ names: Array<string>; type: string; port: number }>; static_configs?: Array<{ targets: Array<string> }> }> }>(
  mountedFile("prometheus", flag(services.prometheus!.command, "config.file")!)
)
const loki = yamlFile<{ server: { http_listen_port: number } }>(mountedFile("loki", flag(services.loki!.command, "config.file")!))
const tempo = yamlFile<{ server: { http_listen_port: number }; distributor: { receivers: { otlp: { protocols: Record<string, { endpoint: string }> } } } }>(
  mountedFile("tempo", flag(services.tempo!.command, "config.file")!)
)
type Pipeline = { receivers: Array<string>; processors?: Array<string>; exporters: Array<string> }
const collector = yamlFile<{
  receivers: { otlp: { protocols: Record<string, { endpoint: string }> } }
  processors: Record<string, unknown>
  exporters: Record<string, { endpoint?: string }>
  extensions: Record<string, { endpoint?: string }>
  service: { extensions: Array<string>; pipelines: Record<string, Pipeline>; telemetry: { metrics: { readers: Array<{ pull: { exporter: { prometheus: { port: number } } } }> } } }
}>(mountedFile("otel-collector", flag(services["otel-collector"]!.command, "config")!))
const provisioning = "/etc/grafana/provisioning"
const datasources = yamlFile<{ datasources: Array<{ uid: string; type: string; url: string; jsonData?: Record<string, unknown> }> }>(
  mountedFile("grafana", `${provisioning}/datasources/datasources.yaml`)
).datasources
const dashboardProviders = yamlFile<{ providers: Array<{ options: { path: string } }> }>(mountedFile("grafana", `${provisioning}/dashboards/dashboards.yaml`)).providers

/** Which ports a service listens on, from its own configuration (the stack's services) or its env (Troupe's roles). */
const listens = (name: string): ReadonlyArray<number> => {
  switch (name) {
    case "prometheus":
      return [9090]
    case "loki":
      return [loki.server.http_listen_port]
    case "tempo":
      return [tempo.server.http_listen_port, ...Object.values(tempo.distributor.receivers.otlp.protocols).map((p) => hostPort(p.endpoint).port)]
    case "otel-collector":
      return [
        ...Object.values(collector.receivers.otlp.protocols).map((p) => hostPort(p.endpoint).port),
        ...collector.service.telemetry.metrics.readers.map((r) => r.pull.exporter.prometheus.port),
        ...collector.service.extensions.map((e) => hostPort(collector.extensions[e]!.endpoint!).port)
      ]
    case "grafana":
      return [3000]
    default: {
      const env = services[name]?.environment ?? {}
      return [Number(env.TROUPE_PORT), Number(env.TROUPE_ADMIN_PORT)].filter((n) => n > 0)
    }
  }
}
const expectReaches = (from: string, endpoint: string) => {
  const { host, port } = hostPort(endpoint)
  expect(Object.keys(services), `${from} → ${endpoint}`).toContain(host)
  expect(listens(host), `${from} → ${endpoint}: ${host} does not listen on ${port}`).toContain(port)
}

describe("docker-compose.yml: the stack and its observability", () => {
  it("pins every image, and every depends_on, port and volume refers to something that exists", () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.image, name).toBeTruthy()
      if (service.image === "troupe:latest") continue // built here (`build: .` on migrate)
      expect(service.image, `${name}: pin a version`).toMatch(/^[\w./-]+:(?!latest$)[\w.-]+$/)
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(Object.keys(services), `${name} depends on ${dependency}`).toContain(dependency)
        expect(["service_started", "service_healthy", "service_completed_successfully"]).toContain(condition)
        if (condition === "service_healthy") expect(services[dependency]!.healthcheck, `${name} waits for ${dependency}'s health`).toBeDefined()
        if (condition === "service_completed_successfully") expect(services[dependency]!.restart, `${dependency} must run once`).toBe("no")
      }
      for (const port of service.ports ?? []) expect(port, name).toMatch(/^("?)(127\.0\.0\.1:)?(\$\{[A-Z_]+:-\d+\}|\d+):\d+\1$/)
      for (const volume of service.volumes ?? []) {
        const [source, target, mode] = volume.split(":")
        expect(target, `${name}: ${volume}`).toMatch(/^\//)
        if (source!.startsWith("./")) {
          expect(NodeFs.existsSync(NodePath.join(root, source!)), `${name}: ${source} is missing`).toBe(true)
          expect(mode, `${name}: mount configuration read-only`).toBe("ro")
        } else if (source!.startsWith("/")) {
          expect(source, `${name}: the only host path mounted is the Docker socket`).toBe("/var/run/docker.sock")
          expect(mode).toBe("ro")
        } else {
          expect(Object.keys(compose.volumes), `${name}: volume ${source}`).toContain(source)
        }
      }
    }
    // the observability services are there, and every declared volume is used
    expect(Object.keys(services)).toEqual(expect.arrayContaining(["prometheus", "grafana", "loki", "alloy", "otel-collector", "tempo"]))
    const used = new Set(Object.values(services).flatMap((s) => (s.volumes ?? []).map((v) => v.split(":")[0])))
    for (const volume of Object.keys(compose.volumes)) expect(used, volume).toContain(volume)
  })

  it("Troupe's roles serve /metrics to the stack and export traces to the collector", () => {
    for (const role of troupeRoles) {
      const env = services[role]!.environment!
      expect(env.TROUPE_ADMIN_HOST, role).toBe("0.0.0.0")
      expect(services[role]!.ports?.some((p) => p.endsWith(`:${env.TROUPE_ADMIN_PORT}`)) ?? false, `${role}: the admin listener is never published`).toBe(false)
      expectReaches(role, env.OTEL_EXPORTER_OTLP_ENDPOINT!)
      // OTLP/HTTP: the collector's http receiver
      expect(hostPort(env.OTEL_EXPORTER_OTLP_ENDPOINT!).port).toBe(hostPort(collector.receivers.otlp.protocols.http!.endpoint).port)
    }
  })

  it("Prometheus scrapes every runner and gateway by DNS (scaling needs no change) and the collector", () => {
    const jobs = new Map(prometheus.scrape_configs.map((j) => [j.job_name, j]))
    for (const [job, service] of [["troupe-runner", "runner"], ["troupe-gateway", "gateway"]] as const) {
      const dns = jobs.get(job)?.dns_sd_configs
      expect(dns, job).toHaveLength(1)
      expect(dns![0]!.names).toEqual([service])
      expect(dns![0]!.type).toBe("A")
      expect(dns![0]!.port).toBe(Number(services[service]!.environment!.TROUPE_ADMIN_PORT))
      expect(services[service]!.container_name).toBeUndefined()
    }
    for (const job of prometheus.scrape_configs) {
      for (const dns of job.dns_sd_configs ?? []) for (const name of dns.names) expectReaches(job.job_name, `${name}:${dns.port}`)
      for (const target of (job.static_configs ?? []).flatMap((s) => s.targets)) {
        if (target.startsWith("localhost:")) expect(job.job_name).toBe("prometheus")
        else expectReaches(job.job_name, target)
      }
    }
  })

  it("the collector forwards traces to Tempo; Alloy ships the containers' logs to Loki", () => {
    for (const [name, pipeline] of Object.entries(collector.service.pipelines)) {
      for (const r of pipeline.receivers) expect(Object.keys(collector.receivers), `${name} receiver ${r}`).toContain(r)
      for (const p of pipeline.processors ?? []) expect(Object.keys(collector.processors), `${name} processor ${p}`).toContain(p)
      for (const e of pipeline.exporters) expect(Object.keys(collector.exporters), `${name} exporter ${e}`).toContain(e)
    }
    const traces = collector.service.pipelines.traces!
    expect(traces.receivers).toContain("otlp")
    for (const e of traces.exporters) expectReaches("otel-collector", collector.exporters[e]!.endpoint!)
    expect(traces.exporters.map((e) => hostPort(collector.exporters[e]!.endpoint!).host)).toContain("tempo")

    const alloy = read(mountedFile("alloy", services.alloy!.command!.at(-1)!))
    const pushes = [...alloy.matchAll(/url\s*=\s*"([^"]+)"/g)].map((m) => m[1]!)
    expect(pushes).toHaveLength(1)
    expect(pushes[0]).toMatch(/\/loki\/api\/v1\/push$/)
    expectReaches("alloy", pushes[0]!)
    // it reads the Docker socket it is given, and parses the roles' JSON lines
    const socket = [...alloy.matchAll(/host\s*=\s*"unix:\/\/([^"]+)"/g)].map((m) => m[1]!)
    expect(socket.length).toBeGreaterThan(0)
    for (const path of socket) expect(services.alloy!.volumes).toContain(`${path}:${path}:ro`)
    const selector = /selector\s*=\s*"\{service=~\\"([^\\]+)\\"\}"/.exec(alloy)
    expect(selector?.[1]?.split("|").sort()).toEqual([...troupeRoles].sort())
    expect(alloy).toMatch(/stage\.json/)
  })

  it("Grafana is provisioned with Prometheus, Loki and Tempo, and loads the dashboards it is given", () => {
    expect(datasources.map((d) => d.type).sort()).toEqual(["loki", "prometheus", "tempo"])
    for (const d of datasources) expectReaches(`grafana datasource ${d.uid}`, d.url)
    const uids = new Set(datasources.map((d) => d.uid))
    // the links between them name provisioned sources
    for (const d of datasources) {
      for (const ref of JSON.stringify(d.jsonData ?? {}).matchAll(/"datasourceUid":"([^"]+)"/g)) expect(uids, `${d.uid} links to ${ref[1]}`).toContain(ref[1])
    }
    for (const provider of dashboardProviders) {
      const dir = mountedFile("grafana", provider.options.path)
      const files = NodeFs.readdirSync(NodePath.join(root, dir)).filter((f) => f.endsWith(".json"))
      expect(files.length).toBeGreaterThan(0)
      for (const file of files) {
        const dashboard = JSON.parse(read(NodePath.join(dir, file))) as Dashboard
        for (const panel of dashboard.panels.filter((p) => p.type !== "row")) {
          expect(uids, `${file}: ${panel.title}`).toContain(panel.datasource.uid)
          for (const t of panel.targets) expect(uids, `${file}: ${panel.title}`).toContain(t.datasource.uid)
        }
      }
    }
    // the admin password comes from the environment, and Grafana is published on loopback only
    expect(services.grafana!.environment!.GF_SECURITY_ADMIN_PASSWORD).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?/)
    expect(services.grafana!.ports).toEqual(["127.0.0.1:${GRAFANA_PUBLISHED_PORT:-3000}:3000"])
    expect(mountedFile("grafana", services.grafana!.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!)).toBe("deploy/compose/grafana/dashboards/troupe.json")
  })
})

interface Dashboard {
  readonly panels: ReadonlyArray<{
    readonly type: string
    readonly title: string
    readonly datasource: { readonly uid: string }
    readonly targets: ReadonlyArray<{ readonly expr: string; readonly datasource: { readonly uid: string } }>
  }>
}
const dashboard = JSON.parse(read("deploy/compose/grafana/dashboards/troupe.json")) as Dashboard

/** What a PromQL expression reads: metric names, and the labels it matches or groups on per metric. */
const promqlReads = (expr: string) => {
  const labels = new Set<string>()
  let text = expr.replace(/\[[^\]]*\]/g, " ")
  // grouping clauses name labels
  text = text.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_, __, list: string) => {
    for (const l of list.split(",").map((s) => s.trim()).filter(Boolean)) labels.add(l)
    return " "
  })
  // label matchers
  const matched: Array<{ metric: string; labels: Array<string> }> = []
  text = text.replace(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g, (_, metric: string, body: string) => {
    matched.push({ metric, labels: [...body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)].map((m) => m[1]!) })
    return ` ${metric} `
  })
  text = text.replace(/"(?:[^"\\]|\\.)*"/g, " ")
  const keywords = new Set(["and", "or", "unless", "bool", "offset"])
  const metrics = [...text.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)]
    .filter((m) => m[2] === undefined && !keywords.has(m[1]!))
    .map((m) => m[1]!)
  return { metrics, matchers: matched, groupLabels: [...labels] }
}

describe("the dashboard reads only what the code exports", () => {
  let server: TestServer
  let exposition = ""
  beforeAll(async () => {
    server = await startServer({ settings: { signup: { _tag: "Open" }, startingCredits: 1000 } })
    // traffic: a user, a chat, a turn to its end, a skill call that works and one that fails, a 404
    const user = await onboard(server, "dash-ada")
    const chat = await request(server, "POST", "/v1/chats", { token: user.access, body: { title: "dashboard" } })
    expect(chat.status).toBe(201)
    const posted = await request(server, "POST", `/v1/chats/${chat.body.id}/messages`, { token: user.access, body: { client_message_id: "d1", text: "hello" } })
    expect(posted.status).toBe(202)
    await readEvents(server, `/v1/chats/${chat.body.id}/events`, user.access, (es) => es.some((e) => e.data.turn_id === posted.body.turn_id && e.event === "done"))
    const ok = await request(server, "POST", "/v1/apps/math/skills/calculate", { token: user.access, body: { input: { expression: "6*7" } } })
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
    const failed = await request(server, "POST", "/v1/apps/math/skills/calculate", { token: user.access, body: { input: { expression: "1/0" } } })
    expect(failed.status).toBeGreaterThanOrEqual(400)
    expect((await request(server, "GET", "/v1/chats/chat_nope", { token: user.access })).status).toBe(404)
    const scraped = await fetch(`${server.adminUrl}/metrics`)
    expect(scraped.status).toBe(200)
    exposition = await scraped.text()
  }, 180_000)
  afterAll(async () => {
    await server?.close()
  })

  /** Families the server exports (`# TYPE name type`) and the label names seen on each. */
  const exported = () => {
    const types = new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]))
    const labelsOf = new Map<string, Set<string>>()
    for (const m of exposition.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} /gm)) {
      const set = labelsOf.get(m[1]!) ?? new Set()
      for (const l of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) set.add(l[1]!)
      labelsOf.set(m[1]!, set)
    }
    /** The family a sample name belongs to (a histogram's `_bucket`, `_sum`, `_count`). */
    const family = (name: string) => {
      if (types.has(name)) return name
      const m = /^(.*)_(bucket|sum|count)$/.exec(name)
      return m && ["histogram", "summary"].includes(types.get(m[1]!) ?? "") && (m[2] !== "bucket" || types.get(m[1]!) === "histogram") ? m[1]! : undefined
    }
    return { types, labelsOf, family }
  }

  it("has the panels an operator asks for", () => {
    const titles = dashboard.panels.map((p) => p.title)
    for (
      const want of [
        "Requests per route",
        "Errors per route (5xx and 4xx)",
        "Turn latency",
        "First-token latency",
        "Turns running",
        "Credit holds open",
        "Skill calls by app and skill",
        "Skill failures by code",
        "Event-loop delay",
        "Runners",
        "Shards per runner"
      ]
    ) expect(titles).toContain(want)
  })

  it("every metric a panel reads is exported by a running server, with the labels the panel uses", () => {
    const { family, labelsOf, types } = exported()
    expect(types.size).toBeGreaterThan(20)
    // Prometheus adds these to every series it scrapes
    const scrapeLabels = new Set(["job", "instance"])
    let checked = 0
    for (const panel of dashboard.panels.filter((p) => p.type !== "row")) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0)
      for (const target of panel.targets) {
        const reads = promqlReads(target.expr)
        expect(reads.metrics.length, `${panel.title}: ${target.expr}`).toBeGreaterThan(0)
        for (const metric of reads.metrics) {
          const name = family(metric)
          expect(name, `${panel.title}: ${metric} is not exported (${target.expr})`).toBeDefined()
          checked++
          // a label the panel groups on or matches must be one the series carries (once it has any)
          const known = labelsOf.get(metric) ?? labelsOf.get(name!)
          if (!known) continue
          const allowed = new Set([...known, ...scrapeLabels, ...(metric.endsWith("_bucket") ? ["le"] : [])])
          for (const m of reads.matchers.filter((m) => m.metric === metric)) for (const l of m.labels) expect(allowed, `${panel.title}: ${metric}{${l}}`).toContain(l)
          for (const l of reads.groupLabels) if (reads.metrics.length === 1) expect(allowed, `${panel.title}: by (${l}) on ${metric}`).toContain(l)
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(25)
  })

  it("the series the dashboard's new panels need are there after traffic", () => {
    const { types } = exported()
    expect(types.get("troupe_cluster_shards")).toBe("gauge")
    expect(exposition).toMatch(/^troupe_cluster_shards\{group="default"\} [1-9]\d*$/m)
    expect(types.get("troupe_credit_holds_open")).toBe("gauge")
    expect(exposition).toMatch(/^troupe_credit_holds_open \d+$/m)
    expect(exposition).toMatch(/^nodejs_eventloop_delay_seconds\{quantile="0\.99"\} [\d.e+-]+$/m)
    expect(exposition).toMatch(/^troupe_http_requests_total\{[^}]*route="\/v1\/chats\/:id\/messages"[^}]*\} [1-9]/m)
    expect(types.get("troupe_turn_duration_seconds")).toBe("histogram")
  })

  it("the name check has teeth: an unknown metric or label is refused", () => {
    const { family, labelsOf } = exported()
    expect(family("troupe_turns_runing")).toBeUndefined()
    expect(family("troupe_turns_running_bucket")).toBeUndefined()
    expect(family("troupe_turn_duration_seconds_bucket")).toBe("troupe_turn_duration_seconds")
    expect(promqlReads("sum by (route) (rate(troupe_http_requests_total{status=~\"5..\"}[5m]))")).toEqual({
      metrics: ["troupe_http_requests_total"],
      matchers: [{ metric: "troupe_http_requests_total", labels: ["status"] }],
      groupLabels: ["route"]
    })
    expect(labelsOf.get("troupe_http_requests_total")?.has("path")).toBe(false)
  })
})
