/**
 * The `ai` app as a process assembles it: the chat's `TurnRunner` answered by the mates that think,
 * with the providers, prices, mate lookup, skills (with the model behind `text.*` and the
 * operator's fetch settings behind `web.read`), credit holds for skill calls, confirmations and
 * the health publisher, all read from the environment where the process starts.
 */
import type * as Sharding from "@effect/cluster/Sharding"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type TurnEmission, TurnFailed, type TurnInput, TurnRunner } from "../../entities/chat/turn.ts"
import { releaseHold, withHold } from "../../entities/credit/hold.ts"
import { Credit, type InsufficientCredits, Purpose, SpendScope } from "../../entities/credit/protocol.ts"
import { User } from "../../entities/user/protocol.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import * as Metrics from "../../runtime/Metrics.ts"
import * as ReadyNotes from "../../runtime/ReadyNotes.ts"
import * as SkillsConfig from "../Config.ts"
import { WebSettings, defaultSettings as defaultWebSettings } from "../firstparty/Web.ts"
import type { Skills } from "../Skills.ts"
import * as Completions from "./Completions.ts"
import * as Llm from "./Llm.ts"
import * as Loop from "./Loop.ts"
import * as Mate from "./Mate.ts"
import * as Prices from "./Prices.ts"
import * as Settings from "./Settings.ts"
import * as Status from "./Status.ts"
import * as TextModel from "./TextModel.ts"
import * as TurnSkills from "./TurnSkills.ts"

/** Mates from the user entity. */
export const layerMateDirectory: Layer.Layer<Mate.MateDirectory, never, Sharding.Sharding> = Layer.effect(
  Mate.MateDirectory,
  Effect.map(User.client, (users) => ({
    get: (ownerId, mateId) =>
      retryTransient(users(ownerId).GetMate({ mateId })).pipe(
        Effect.map((m) => ({ name: m.name, systemPrompt: m.systemPrompt, model: m.model, allowedSkills: m.allowedSkills })),
        Effect.catchAll((e) => Effect.fail(new Mate.MateUnavailable({ message: `the chat's mate is gone (${e._tag})` }))),
        Effect.catchAllDefect((d) => Effect.fail(new Mate.MateUnavailable({ message: `the mate could not be read: ${String(d)}` })))
      )
  }))
)

/**
 * Holds of skill calls through the credit hold saga (`withHold`, durable: a turn is durable itself;
 * a call stopped with its runner keeps its hold until the turn's next attempt closes it).
 */
const holdsOf = (accounts: Effect.Effect.Success<typeof Credit.client>): TurnSkills.Holds => ({
  withHold: (turn, key, skill, amount, work) =>
    withHold(accounts(turn.accountId), {
      key,
      amount,
      durable: true,
      purpose: Purpose.skill(skill, turn.apiKeyId ?? Metrics.apiKeyOfScope(turn.scope?.id)),
      ...(turn.scope ? { scope: new SpendScope(turn.scope) } : {})
    }, (hold) =>
      Effect.map(work, (r) => ({ value: r.value, price: Math.min(r.credits, hold.amount) }))).pipe(
        Effect.map((charged) => charged.value),
        Effect.mapError((e) => (e instanceof Loop.ToolError ? e : refusalOf(e)))
      ),
  status: (turn, key) =>
    retryTransient(accounts(turn.accountId).GetHold({ key })).pipe(
      Effect.map((hold) => (hold === null ? "absent" as const : hold.status === "held" ? "open" as const : "closed" as const)),
      // unreachable now: leave it (it expires on its own)
      Effect.catchAllCause(() => Effect.succeed("closed" as const))
    ),
  release: (turn, key) => releaseHold(accounts(turn.accountId), { key, durable: true })
})

/** A hold the credit account refused or could not make: the call does not run. */
const refusalOf = (e: { readonly _tag: string } | InsufficientCredits): Loop.ToolError => {
  switch (e._tag) {
    case "InsufficientCredits": {
      const i = e as InsufficientCredits
      return new Loop.ToolError({
        code: i.scope ? "spend_cap_exceeded" : "insufficient_credits",
        message: `the call needs ${i.requested} credits; ${i.available} available${i.scope ? " under the spend cap" : ""}`
      })
    }
    case "HoldClosed":
      return new Loop.ToolError({ code: "hold_closed", message: "the call's hold was closed before it ran" })
    case "HoldExceeded":
    case "KeyConflict":
      return new Loop.ToolError({ code: "credit_conflict", message: "the call's hold conflicts with an earlier one" })
    default:
      return new Loop.ToolError({ code: "unavailable", message: "the credit account is busy or restarting" })
  }
}

/** The turn runner over the mate runner: the chat's emissions, its failure type. */
export const turnRunnerOf = (runner: Mate.Runner, confirmations: Mate.Confirmations["Type"]) =>
  TurnRunner.of({
    // a turn holds at least one credit (the chat's hold needs an amount); it settles what was used
    estimate: (input) => Effect.map(runner.estimate(toTurn(input)), (credits) => Math.max(1, credits)),
    run: (input: TurnInput, emit: (emission: TurnEmission) => void) =>
      runner.run(toTurn(input), emit).pipe(
        Effect.asVoid,
        Effect.catchAll((e) =>
          Effect.zipRight(
            Effect.sync(() => emit({ kind: "cost", credits: e.credits })),
            Effect.fail(new TurnFailed({ code: e.code, message: e.message }))
          )
        )
      ),
    confirm: confirmations.resolve,
    // as many messages as a model's context could take; the runner fits them to its model
    historyWindow: 200
  })

const toTurn = (input: TurnInput): Mate.MateTurn => ({
  chatId: input.chatId,
  turnId: input.turnId,
  ownerId: input.ownerId,
  accountId: input.accountId,
  holdKey: `chat:${input.chatId}:${input.turnId}`,
  ...(input.scope ? { scope: { id: input.scope.id, cap: input.scope.cap } } : {}),
  ...(input.apiKeyId !== undefined ? { apiKeyId: input.apiKeyId } : {}),
  ...(input.attempt !== undefined ? { attempt: input.attempt } : {}),
  ...(input.budget !== undefined ? { budget: input.budget } : {}),
  mateId: input.mateId,
  text: input.text,
  history: input.history
})

/** The LLM settings of this process and its providers (probing Ollama when none is configured). */
export const layerLlm: Layer.Layer<Llm.Llm, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(Settings.fromEnv, (settings) => Llm.layer(settings, { probe: true }))
).pipe(Layer.provide(NodeHttpClient.layerUndici))

/** `web.read`'s settings: the operator's private-host allowlist of the skill host. */
export const layerWebSettings: Layer.Layer<WebSettings, ConfigError.ConfigError> = Layer.effect(
  WebSettings,
  Effect.map(SkillsConfig.fromEnv, (host) => ({ ...defaultWebSettings, allowedPrivateHosts: host.allowedPrivateHosts ?? [] }))
)

/**
 * What first-party skills look for where skills run (a turn's calls, `SkillCall`): the model for
 * `text.*` when a provider is configured, the operator's allowlist for `web.read`.
 */
export const layerFirstPartyServices: Layer.Layer<WebSettings, ConfigError.ConfigError, Llm.Llm> = Layer.merge(TextModel.layer, layerWebSettings)

/** The mate runner and what it uses: mate lookup, prices, skills with per-call holds, confirmations. */
export const layerMateRunner: Layer.Layer<Mate.MateRunner | Mate.Confirmations, ConfigError.ConfigError, Sharding.Sharding | SqlClient.SqlClient | Skills | Llm.Llm> = Layer.unwrapEffect(
  Effect.map(Credit.client, (accounts) =>
    Mate.layerRunner.pipe(
      Layer.provide(Layer.mergeAll(
        layerMateDirectory,
        Prices.layerFromEnv,
        TurnSkills.layer(holdsOf(accounts)).pipe(Layer.provide(layerFirstPartyServices))
      )),
      Layer.provideMerge(Mate.layerConfirmations)
    ))
)

/**
 * What the `ai` app adds to a process that hosts entities: the chat's turn runner (the mates that
 * think), the `Completion` entity of the OpenAI-compatible API, the health publisher and the
 * ready line's note.
 */
export const layerEntities = <E, R>(entities: (turns: Layer.Layer<TurnRunner>) => Layer.Layer<never, E, R>) =>
  Layer.unwrapEffect(
    Effect.map(Effect.all([Mate.MateRunner, Mate.Confirmations]), ([runner, confirmations]) =>
      Layer.mergeAll(
        entities(Layer.succeed(TurnRunner, turnRunnerOf(runner, confirmations))),
        Completions.layer,
        Status.layerPublisher,
        // the ready line says which provider and model answer
        Layer.effectDiscard(Effect.flatMap(Llm.Llm, (llm) => ReadyNotes.add(llm.summary)))
      ))
  ).pipe(Layer.provideMerge(layerMateRunner))
