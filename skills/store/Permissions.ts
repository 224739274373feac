/**
 * What an upgrade changes in what an app may do and cost, field by field. An upgrade whose
 * manifest asks for more — new allowed hosts, WASI, new host functions, more memory or time, new
 * `write` skills (or a read skill turned write), higher prices — `escalates`: it waits for an
 * admin's approval while the installed version keeps serving. Other changes are listed too.
 */
import type * as Manifest from "../manifest/Manifest.ts"

/** One changed field. */
export interface Change {
  /** A dotted path: `permissions.allowedHosts`, `skills.search.limits.timeoutMs`, `skills.search.pricing`. */
  readonly field: string
  readonly from: unknown
  readonly to: unknown
  /** Whether this asks for more than the installed version had (needs approval). */
  readonly escalates: boolean
  readonly description: string
}

/** The diff of an upgrade. */
export interface Diff {
  readonly from: string
  readonly to: string
  readonly changes: ReadonlyArray<Change>
  readonly escalates: boolean
}

const pricingRates = (p: Manifest.Pricing): Record<string, number> => {
  switch (p.model) {
    case "fixed":
      return { credits: p.credits }
    case "per_unit":
      return { creditsPerUnit: p.creditsPerUnit, maxUnits: p.maxUnits ?? 1_000_000 }
    case "per_second":
      return { creditsPerSecond: p.creditsPerSecond, minimumCredits: p.minimumCredits ?? 0 }
    case "tokens":
      return { creditsPer1kInput: p.creditsPer1kInput, creditsPer1kOutput: p.creditsPer1kOutput, maxOutputTokens: p.maxOutputTokens ?? 0 }
  }
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)

const limitsOf = (m: Manifest.AppManifest, s: Manifest.SkillSpec): Manifest.Limits => ({
  memoryMb: s.limits?.memoryMb ?? m.limits.memoryMb,
  timeoutMs: s.limits?.timeoutMs ?? m.limits.timeoutMs,
  maxInputBytes: s.limits?.maxInputBytes ?? m.limits.maxInputBytes,
  maxOutputBytes: s.limits?.maxOutputBytes ?? m.limits.maxOutputBytes
})

/** The changes from the installed manifest `from` to the manifest `to` of an upgrade. */
export const diff = (from: Manifest.AppManifest, to: Manifest.AppManifest): Diff => {
  const changes: Array<Change> = []
  const add = (field: string, before: unknown, after: unknown, escalates: boolean, description: string) =>
    changes.push({ field, from: before, to: after, escalates, description })

  const newHosts = to.permissions.allowedHosts.filter((h) => !from.permissions.allowedHosts.includes(h))
  const goneHosts = from.permissions.allowedHosts.filter((h) => !to.permissions.allowedHosts.includes(h))
  if (newHosts.length > 0 || goneHosts.length > 0) {
    add(
      "permissions.allowedHosts",
      from.permissions.allowedHosts,
      to.permissions.allowedHosts,
      newHosts.length > 0,
      [newHosts.length > 0 ? `may also reach ${newHosts.join(", ")}` : "", goneHosts.length > 0 ? `no longer reaches ${goneHosts.join(", ")}` : ""]
        .filter((s) => s).join("; ")
    )
  }
  if (from.permissions.wasi !== to.permissions.wasi) {
    add("permissions.wasi", from.permissions.wasi, to.permissions.wasi, to.permissions.wasi, to.permissions.wasi ? "imports WASI" : "no longer imports WASI")
  }
  const newFunctions = to.permissions.hostFunctions.filter((f) => !from.permissions.hostFunctions.includes(f))
  if (!same([...from.permissions.hostFunctions].sort(), [...to.permissions.hostFunctions].sort())) {
    add(
      "permissions.hostFunctions",
      from.permissions.hostFunctions,
      to.permissions.hostFunctions,
      newFunctions.length > 0,
      newFunctions.length > 0 ? `calls host functions ${newFunctions.join(", ")}` : "calls fewer host functions"
    )
  }

  const before = new Map(from.skills.map((s) => [s.name, s]))
  for (const skill of to.skills) {
    const old = before.get(skill.name)
    const path = `skills.${skill.name}`
    if (!old) {
      add(path, null, { sideEffects: skill.sideEffects, pricing: skill.pricing }, skill.sideEffects === "write", `new ${skill.sideEffects} skill ${skill.name}`)
      continue
    }
    if (old.sideEffects !== skill.sideEffects) {
      add(`${path}.sideEffects`, old.sideEffects, skill.sideEffects, skill.sideEffects === "write", skill.sideEffects === "write" ? `${skill.name} now writes` : `${skill.name} now only reads`)
    }
    if (!same(old.pricing, skill.pricing)) {
      const a = pricingRates(old.pricing)
      const b = pricingRates(skill.pricing)
      const higher = old.pricing.model !== skill.pricing.model || Object.keys(b).some((k) => (b[k] ?? 0) > (a[k] ?? 0))
      add(
        `${path}.pricing`,
        old.pricing,
        skill.pricing,
        higher,
        old.pricing.model !== skill.pricing.model ? `${skill.name} is priced ${skill.pricing.model} instead of ${old.pricing.model}` : `${skill.name} costs ${higher ? "more" : "less"}`
      )
    }
    const la = limitsOf(from, old)
    const lb = limitsOf(to, skill)
    for (const key of ["memoryMb", "timeoutMs", "maxInputBytes", "maxOutputBytes"] as const) {
      if (la[key] !== lb[key]) {
        const escalates = (key === "memoryMb" || key === "timeoutMs") && lb[key] > la[key]
        add(`${path}.limits.${key}`, la[key], lb[key], escalates, `${skill.name}: ${key} ${la[key]} → ${lb[key]}`)
      }
    }
    if (!same(old.input, skill.input)) add(`${path}.input`, old.input, skill.input, false, `${skill.name} takes a different input`)
    if (!same(old.output, skill.output)) add(`${path}.output`, old.output, skill.output, false, `${skill.name} returns a different output`)
  }
  for (const old of from.skills) {
    if (!to.skills.some((s) => s.name === old.name)) add(`skills.${old.name}`, { sideEffects: old.sideEffects }, null, false, `skill ${old.name} is removed`)
  }

  const keys = new Map(from.config.map((c) => [c.key, c]))
  for (const c of to.config) {
    const old = keys.get(c.key)
    if (!old) add(`config.${c.key}`, null, c, false, `new ${c.secret ? "secret " : ""}config key ${c.key}${c.required ? " (required)" : ""}`)
    else if (!same(old, c)) add(`config.${c.key}`, old, c, false, `config key ${c.key} changed`)
  }
  for (const c of from.config) if (!to.config.some((n) => n.key === c.key)) add(`config.${c.key}`, c, null, false, `config key ${c.key} is removed`)

  return { from: from.version, to: to.version, changes, escalates: changes.some((c) => c.escalates) }
}
