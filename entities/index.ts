/**
 * The entities a runner hosts and their migrations. Each entity reads its own settings with
 * `Config` when the runner starts.
 */
import * as Layer from "effect/Layer"
import * as Mailer from "../runtime/Mailer.ts"
import type { Migration } from "../runtime/Migrations.ts"
import * as ChatBehaviour from "./chat/behaviour.ts"
import * as ChatRepo from "./chat/repo.ts"
import * as Turn from "./chat/turn.ts"
import * as ChatTurns from "./chat/turns.ts"
import * as CreditBehaviour from "./credit/behaviour.ts"
import * as CreditRepo from "./credit/repo.ts"
import * as PaymentBehaviour from "./payment/behaviour.ts"
import * as PaymentConfig from "./payment/config.ts"
import * as PaymentRepo from "./payment/repo.ts"
import * as UserBehaviour from "./user/behaviour.ts"
import * as UserRepo from "./user/repo.ts"

/** Every entity table, in order. */
export const migrations: ReadonlyArray<Migration> = [...CreditRepo.migrations, ...ChatRepo.migrations, ...UserRepo.migrations, ...PaymentRepo.migrations]

/** Host every entity (and their singletons), chats' turns answered by `turns`. */
export const layerWith = <E, R>(turns: Layer.Layer<Turn.TurnRunner, E, R>) =>
  Layer.mergeAll(
    CreditBehaviour.layer,
    CreditBehaviour.layerExpirySweeper,
    CreditBehaviour.layerHoldGauges,
    ChatBehaviour.layer,
    ChatTurns.layerTurnSweeper(),
    UserBehaviour.layer,
    UserBehaviour.layerPromptSealer,
    // payments read their settings (provider, seller) and send invoices with the runtime's mailer
    Layer.mergeAll(PaymentBehaviour.layer, PaymentBehaviour.layerPoller).pipe(
      Layer.provide(PaymentConfig.layerProvider),
      Layer.provide(Mailer.layerFromEnv),
      Layer.provideMerge(PaymentConfig.layer)
    )
  ).pipe(
    Layer.provide(Layer.effect(CreditBehaviour.CreditConfig, CreditBehaviour.config)),
    Layer.provide(turns)
  )

/** Host every entity with the echo mate answering (tests; the app gives the `ai` app's runner). */
export const layer = layerWith(Turn.layerEcho())
