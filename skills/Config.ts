/**
 * The skill host's configuration, read at a role's entry point (never below it):
 *
 * - `TROUPE_SKILLS_ALLOWED_PRIVATE_HOSTS`: comma-separated `host:port` a plugin may reach although
 *   the address is private (the operator allowlist; empty by default: nothing private is reachable);
 * - `TROUPE_SKILLS_POOL_SIZE`: instances per plugin (default: the number of cores);
 * - `TROUPE_SKILLS_MAX_INSTANCES`: soft cap over all plugins (default 16 × the pool size);
 * - `TROUPE_SKILLS_IDLE_TIMEOUT`: idle instances are closed after this (default 60 seconds).
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { HostOptions } from "./host/Host.ts"

const hostPort = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/

/** The host options from the environment. */
export const fromEnv: Config.Config<HostOptions> = Config.all({
  allowedPrivateHosts: Config.string("TROUPE_SKILLS_ALLOWED_PRIVATE_HOSTS").pipe(
    Config.withDefault(""),
    Config.map((s) => s.split(",").map((h) => h.trim()).filter((h) => h.length > 0)),
    Config.validate({ message: "must be a comma-separated list of host:port", validation: (hosts) => hosts.every((h) => hostPort.test(h)) })
  ),
  poolSize: Config.option(Config.integer("TROUPE_SKILLS_POOL_SIZE").pipe(
    Config.validate({ message: "must be between 1 and 256", validation: (n) => n >= 1 && n <= 256 })
  )),
  maxInstances: Config.option(Config.integer("TROUPE_SKILLS_MAX_INSTANCES").pipe(
    Config.validate({ message: "must be between 1 and 4096", validation: (n) => n >= 1 && n <= 4096 })
  )),
  idleTimeout: Config.duration("TROUPE_SKILLS_IDLE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(60)))
}).pipe(
  Config.map((c): HostOptions => ({
    allowedPrivateHosts: c.allowedPrivateHosts,
    ...(Option.isSome(c.poolSize) ? { poolSize: c.poolSize.value } : {}),
    ...(Option.isSome(c.maxInstances) ? { maxInstances: c.maxInstances.value } : {}),
    idleTimeoutMs: Duration.toMillis(c.idleTimeout)
  }))
)
