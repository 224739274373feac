/**
 * The Kubernetes manifests, checked without a cluster: every object validates against the
 * Kubernetes OpenAPI schema (kubernetes-models' generated validators), the kustomization lists
 * every file, and the wiring holds — selectors match pod labels, probes and Services name ports
 * the containers declare, every Secret/ConfigMap key a pod reads exists, every variable is one
 * Troupe reads, runners advertise their pod IP, disruption budgets cover both Deployments.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { describe, expect, it } from "vitest"
import { parseAllDocuments, parse } from "yaml"
import * as GatewayConfig from "../gateway/Config.ts"
import * as TroupeConfig from "../runtime/Config.ts"
import { root } from "../runtime/testing/process.ts"

const dir = NodePath.join(root, "deploy", "k8s")

interface K8sObject {
  readonly apiVersion: string
  readonly kind: string
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string> }
  readonly spec?: any
  readonly data?: Record<string, string>
  readonly stringData?: Record<string, string>
}

const files = NodeFs.readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort()
const objects: Array<K8sObject & { readonly file: string }> = files.flatMap((file) =>
  parseAllDocuments(NodeFs.readFileSync(NodePath.join(dir, file), "utf8")).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`)
    return { ...(doc.toJS() as K8sObject), file }
  })
)
const find = (kind: string, name: string) => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name)
  if (!found) throw new Error(`no ${kind} ${name}`)
  return found
}

/** The generated validator for an apiVersion and kind (`apps/v1` Deployment → kubernetes-models/apps/v1/Deployment). */
const validatorFor = async (apiVersion: string, kind: string) => {
  const module = (await import(/* @vite-ignore */ `kubernetes-models/${apiVersion}/${kind}`)) as Record<string, new (data: unknown) => { validate: () => void }>
  const Model = module[kind]
  if (!Model) throw new Error(`no model for ${apiVersion} ${kind}`)
  return (data: unknown) => new Model(data).validate()
}

/** Variables Troupe reads (configuration modules), plus the admin listener's (Hardening, issue 15). */
const knownVariables = new Set([
  ...TroupeConfig.variables,
  ...GatewayConfig.variables,
  "TROUPE_ADMIN_HOST",
  "TROUPE_ADMIN_PORT",
  "TROUPE_METRICS_TOKEN",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "TROUPE_BACKUP_KEY",
  "TROUPE_BACKUP_SCHEDULE",
  "TROUPE_BACKUP_TO",
  "TROUPE_BACKUP_KEEP"
])

const podSpecs = () =>
  objects.filter((o) => o.kind === "Deployment" || o.kind === "Job").map((o) => ({ owner: o, template: o.spec.template }))

describe("deploy/k8s", () => {
  it("every object passes the Kubernetes schema", async () => {
    expect(objects.length).toBeGreaterThanOrEqual(10)
    for (const o of objects) {
      const validate = await validatorFor(o.apiVersion, o.kind)
      expect(() => validate(o), `${o.file}: ${o.kind} ${o.metadata.name}`).not.toThrow()
    }
    // the schema check has teeth: a misspelt field is refused
    const validate = await validatorFor("apps/v1", "Deployment")
    const broken = structuredClone(find("Deployment", "troupe-runner")) as any
    broken.spec.replicas = "three"
    expect(() => validate(broken)).toThrow()
  })

  it("the kustomization applies every file, in the troupe namespace", () => {
    const kustomization = parse(NodeFs.readFileSync(NodePath.join(dir, "kustomization.yaml"), "utf8")) as { namespace: string; resources: Array<string> }
    expect([...kustomization.resources].sort()).toEqual(files)
    for (const o of objects) if (o.kind !== "Namespace") expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(kustomization.namespace)
  })

  it("runs runners, gateways and migrations from the one image, with the roles' commands", () => {
    const role = (name: string) => find("Deployment", name).spec.template.spec.containers[0]
    expect(role("troupe-runner").args).toEqual(["runner"])
    expect(role("troupe-gateway").args).toEqual(["gateway"])
    expect(find("Job", "troupe-migrate").spec.template.spec.containers[0].args).toEqual(["migrate"])
  })

  it("wires selectors, ports, probes and keys consistently", () => {
    const secret = find("Secret", "troupe")
    const configMap = find("ConfigMap", "troupe")
    const secretKeys = new Set(Object.keys(secret.stringData ?? secret.data ?? {}))
    const configKeys = new Set(Object.keys(configMap.data ?? {}))
    for (const key of [...secretKeys, ...configKeys]) expect(knownVariables, key).toContain(key)
    for (const { owner, template } of podSpecs()) {
      const labels = template.metadata.labels as Record<string, string>
      if (owner.kind === "Deployment") {
        for (const [k, v] of Object.entries(owner.spec.selector.matchLabels as Record<string, string>)) expect(labels[k], owner.metadata.name).toBe(v)
      }
      for (const container of template.spec.containers as Array<any>) {
        const portNames = new Set((container.ports ?? []).map((p: { name: string }) => p.name))
        for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
          if (container[probe]) {
            expect(portNames, `${owner.metadata.name} ${probe}`).toContain(container[probe].httpGet.port)
            expect(container[probe].httpGet.path).toBe("/health")
          }
        }
        for (const from of container.envFrom ?? []) {
          if (from.secretRef) expect(from.secretRef.name).toBe("troupe")
          if (from.configMapRef) expect(from.configMapRef.name).toBe("troupe")
        }
        for (const env of container.env ?? []) expect(knownVariables, env.name).toContain(env.name)
      }
    }
    for (const service of objects.filter((o) => o.kind === "Service")) {
      const target = objects.find((o) => o.kind === "Deployment" &&
        Object.entries(service.spec.selector as Record<string, string>).every(([k, v]) => o.spec.template.metadata.labels[k] === v))
      expect(target, `Service ${service.metadata.name} selects a Deployment`).toBeDefined()
      const ports = new Set(target!.spec.template.spec.containers.flatMap((c: any) => (c.ports ?? []).map((p: { name: string }) => p.name)))
      for (const port of service.spec.ports) expect(ports, `Service ${service.metadata.name}`).toContain(port.targetPort)
    }
  })

  it("lets runners scale and roll: pod IP advertised, headless Service, surge before stop, a grace for the hand-over, disruption budgets", () => {
    const runner = find("Deployment", "troupe-runner")
    const container = runner.spec.template.spec.containers[0]
    const host = container.env.find((e: { name: string }) => e.name === "TROUPE_RUNNER_HOST")
    expect(host.valueFrom.fieldRef.fieldPath).toBe("status.podIP")
    expect(find("Service", "troupe-runner").spec.clusterIP).toBe("None")
    expect(runner.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 })
    expect(runner.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30)
    for (const name of ["troupe-runner", "troupe-gateway"]) {
      const pdb = find("PodDisruptionBudget", name)
      expect(pdb.spec.selector.matchLabels).toEqual(find("Deployment", name).spec.selector.matchLabels)
    }
  })
})
