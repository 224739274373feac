/**
 * Skill calls on runners: the `SkillCall` entity runs a REST invocation
 * (`POST /v1/apps/{app}/skills/{skill}`) where the skill host is, so the gateway stays light: it
 * checks who may call and sends one message. An app has `FANOUT` entities (`<app>/<n>`, n < 16)
 * and each call goes to one of them at random, so the cluster spreads an app's calls over the
 * shards of those ids and thus over the runners: a hot app is not bounded by one runner. Calls
 * are independent (nothing orders one after another), so nothing is lost by spreading them; each
 * runner that gets one loads the app once (pulled by digest and cached) and keeps its plugin
 * instances warm. A chat turn's skill calls run in the turn engine, which is on a runner already.
 *
 * On the runner a call is priced (`Skills.estimate`), held on the caller's credit account under
 * the API key's spend cap (`withHold`), run, and settled at the actual price; the hold is released
 * when the skill fails. Messages are volatile: a call is never re-run by the cluster (the skill may
 * have side effects), a lost reply answers 503 and the hold is released or expires.
 */
import * as Entity from "@effect/cluster/Entity"
import type * as Sharding from "@effect/cluster/Sharding"
import { AlreadyProcessingMessage, MailboxFull, PersistenceError } from "@effect/cluster/ClusterError"
import * as Rpc from "@effect/rpc/Rpc"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { HoldClosed, HoldExceeded, withHold } from "../entities/credit/hold.ts"
import { Credit, InsufficientCredits, KeyConflict, Purpose, SpendScope } from "../entities/credit/protocol.ts"
import { HandlerFailed } from "../runtime/EntityGuard.ts"
import * as Ids from "../runtime/Ids.ts"
import { AppNotFound, InvalidInput, SkillEgressDenied, SkillFailed, SkillMemoryExceeded, SkillNotFound, SkillTimeout, SkillUnavailable } from "./Errors.ts"
import { TextGenerator } from "./firstparty/Text.ts"
import { WebSettings } from "./firstparty/Web.ts"
import { Skills } from "./Skills.ts"

/** One invocation: the skill of the entity's app, the input, who pays and under which cap. */
export class Invoke extends Schema.Class<Invoke>("troupe/SkillCall/Invoke")({
  skill: Schema.String,
  input: Schema.Unknown,
  userId: Ids.Id,
  /** The API key's spend cap the hold counts against (none for a session). */
  scope: Schema.optional(SpendScope),
  /** The API key that calls (named in the hold's ledger key). */
  apiKeyId: Schema.optional(Ids.Id)
}) {}

/** What a call returned and charged. */
export const Invoked = Schema.Struct({ result: Schema.Unknown, credits_charged: Schema.Number })

/**
 * Everything a call can fail with: the skill's errors, the credit hold's, and the credit entity
 * busy or unreachable (the gateway answers those 503).
 */
export const InvokeFailure = Schema.Union(
  AppNotFound,
  SkillNotFound,
  InvalidInput,
  SkillTimeout,
  SkillMemoryExceeded,
  SkillEgressDenied,
  SkillFailed,
  SkillUnavailable,
  InsufficientCredits,
  KeyConflict,
  HoldClosed,
  HoldExceeded,
  HandlerFailed,
  PersistenceError,
  MailboxFull,
  AlreadyProcessingMessage
)
export type InvokeFailure = typeof InvokeFailure.Type

/** The entity: `FANOUT` per app id (`<app>/<n>`). */
export const SkillCall = Entity.make("SkillCall", [
  Rpc.make("Invoke", { payload: Invoke, success: Invoked, error: InvokeFailure })
])

/**
 * How many `SkillCall` entities an app's calls are spread over. More than the runners a cluster
 * has, so that (shards being spread evenly) every runner gets a share of a busy app's calls.
 */
export const FANOUT = 16

/** The entity a call of `app` goes to: one of the app's `FANOUT` ids, `slot` (default: at random). */
export const entityIdOf = (app: string, slot: number = Math.floor(Math.random() * FANOUT)): string => `${app}/${slot}`

/** The app of a `SkillCall` entity id (`<app>/<n>`; a bare app id, as sent before the fan-out, is the app). */
export const appOfEntityId = (entityId: string): string => {
  const slash = entityId.lastIndexOf("/")
  return slash < 0 ? entityId : entityId.slice(0, slash)
}

/**
 * The ledger key of a call's hold: it names the skill and who called (`skill:<app>.<skill>:<api key
 * id or "session">:<random>`), so `GET /v1/credits/ledger` says what each charge was for.
 */
export const holdKey = (app: string, skill: string, apiKeyId: string | undefined): string =>
  `skill:${app}.${skill}:${apiKeyId ?? "session"}:${Ids.make("s", 16)}`

/**
 * The entity's behaviour over this process's skills registry. First-party skills find the
 * services they look for when this process has them (the model for `text.*`, the operator's
 * private-host allowlist for `web.read`).
 */
export const layer: Layer.Layer<never, never, Sharding.Sharding | Skills> = SkillCall.toLayer(
  Effect.gen(function*() {
    const skills = yield* Skills
    const accounts = yield* Credit.client
    const text = yield* Effect.serviceOption(TextGenerator)
    const web = yield* Effect.serviceOption(WebSettings)
    const withServices = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => {
      let out = effect
      if (Option.isSome(text)) out = Effect.provideService(out, TextGenerator, text.value)
      if (Option.isSome(web)) out = Effect.provideService(out, WebSettings, web.value)
      return out
    }
    const app = appOfEntityId((yield* Entity.CurrentAddress).entityId)
    return {
      Invoke: ({ payload }) =>
        Effect.gen(function*() {
          const estimate = yield* skills.estimate({ app, skill: payload.skill, input: payload.input })
          const invoked = yield* withHold(
            accounts(payload.userId),
            {
              key: holdKey(app, payload.skill, payload.apiKeyId),
              amount: estimate.credits,
              scope: payload.scope,
              purpose: Purpose.skill(`${app}.${payload.skill}`, payload.apiKeyId)
            },
            () =>
              Effect.map(
                withServices(skills.invoke({ app, skill: payload.skill, input: payload.input, userId: payload.userId, calledBy: { apiKeyId: payload.apiKeyId } })),
                (out) => ({ value: out.result, price: out.credits })
              )
          )
          return { result: invoked.value, credits_charged: invoked.charged }
        })
    }
  }),
  // calls of one entity run side by side; the host's pool bounds them
  { concurrency: "unbounded", maxIdleTime: "5 minutes" }
)
