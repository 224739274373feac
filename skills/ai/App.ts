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
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { type TurnEmission, TurnFailed, type TurnInput, TurnRunner } from "../../entities/chat/turn.ts"
import { Credit, Release, Reserve, Settle, SpendScope } from "../../entities/credit/protocol.ts"
import { User } from "../../entities/user/protocol.ts"
import { retryTransient } from "../../runtime/Cluster.ts"
import * as ReadyNotes from "../../runtime/ReadyNotes.ts"
import * as SkillsConfig from "../Config.ts"
import { WebSettings, defaultSettings as defaultWebSettings } from "../firstparty/Web.ts"
import type { Skills } from "../Skills.ts"
import * as Completions from "./Completions.ts"
import * as Llm from "./Llm.ts"
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
 * Holds of skill calls on the turn's credit account: reserve, run, settle what the call cost — or
 * release when it failed or was cancelled (the release runs whatever happens). Volatile calls: the
 * turn is durable itself and the key is the call's, so a replay holds and charges once.
 */
const holdsOf = (accounts: Effect.Effect.Success<typeof Credit.client>): TurnSkills.Holds => ({
  withHold: (turn, key, amount, work) => {
    const account = accounts(turn.accountId)
    return Effect.acquireUseRelease(
      retryTransient(account.ReserveVolatile(new Reserve({ key, amount, ...(turn.scope ? { scope: new SpendScope(turn.scope) } : {}) }))).pipe(
        Effect.catchAll((e) =>
          Effect.fail<TurnSkills.HoldRefusal>(
            e._tag === "InsufficientCredits"
              ? { code: e.scope ? "spend_cap_exceeded" : "insufficient_credits", message: `the call needs ${e.requested} credits; ${e.available} available${e.scope ? " under the spend cap" : ""}` }
              : e._tag === "KeyConflict"
              ? { code: "credit_conflict", message: "the call's hold conflicts with an earlier one" }
              : { code: "unavailable", message: "the credit account is busy or restarting" }
          )
        )
      ),
      () => work,
      (held, exit) =>
        Effect.asVoid<unknown, unknown, never>(
          Exit.isSuccess(exit)
            ? retryTransient(account.SettleVolatile(new Settle({ key, actual: Math.min(exit.value.credits, held.amount) })))
            : retryTransient(account.ReleaseVolatile(new Release({ key })))
        ).pipe(
          Effect.catchAllCause((cause) => Effect.logError("Could not close a skill call's hold (it expires on its own)", cause).pipe(Effect.annotateLogs({ hold: key })))
        )
    ).pipe(Effect.map((r) => r.value))
  }
})

/** The turn runner over the mate runner: the chat's emissions, its failure type. */
export const turnRunnerOf = (runner: Effect.Effect.Success<typeof Mate.make>) =>
  TurnRunner.of({
    // a turn holds at least one credit (the chat's hold needs an amount); it settles what was used
    estimate: (input) => Effect.map(runner.estimate(toTurn(input)), (credits) => Math.max(1, credits)),
    run: (input: TurnInput, emit: (emission: TurnEmission) => void) =>
      runner.run(toTurn(input), (event) => {
        // confirmation events reach the journal once the chat knows them
        if (event.kind !== "confirmation_required" && event.kind !== "confirmation_resolved") emit(event)
      }).pipe(
        Effect.asVoid,
        Effect.catchAll((e) =>
          Effect.zipRight(
            Effect.sync(() => emit({ kind: "cost", credits: e.credits })),
            Effect.fail(new TurnFailed({ code: e.code, message: e.message }))
          )
        )
      )
  })

const toTurn = (input: TurnInput): Mate.MateTurn => ({
  chatId: input.chatId,
  turnId: input.turnId,
  ownerId: input.ownerId,
  accountId: input.accountId,
  holdKey: `chat:${input.chatId}:${input.turnId}`,
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

/** The mate runner and what it uses: mate lookup, prices, skills with per-call holds, confirmations. */
export const layerMateRunner: Layer.Layer<Mate.MateRunner, ConfigError.ConfigError, Sharding.Sharding | SqlClient.SqlClient | Skills | Llm.Llm> = Layer.unwrapEffect(
  Effect.map(Credit.client, (accounts) =>
    Mate.layerRunner.pipe(
      Layer.provide(Layer.mergeAll(
        layerMateDirectory,
        Mate.layerConfirmations,
        Prices.layerFromEnv,
        TurnSkills.layer(holdsOf(accounts)).pipe(Layer.provide(Layer.mergeAll(TextModel.layer, layerWebSettings)))
      ))
    ))
)

/**
 * What the `ai` app adds to a process that hosts entities: the chat's turn runner (the mates that
 * think), the `Completion` entity of the OpenAI-compatible API, the health publisher and the
 * ready line's note.
 */
export const layerEntities = <E, R>(entities: (turns: Layer.Layer<TurnRunner>) => Layer.Layer<never, E, R>) =>
  Layer.unwrapEffect(
    Effect.map(Mate.MateRunner, (runner) =>
      Layer.mergeAll(
        entities(Layer.succeed(TurnRunner, turnRunnerOf(runner))),
        Completions.layer,
        Status.layerPublisher,
        // the ready line says which provider and model answer
        Layer.effectDiscard(Effect.flatMap(Llm.Llm, (llm) => ReadyNotes.add(llm.summary)))
      ))
  ).pipe(Layer.provideMerge(layerMateRunner))
