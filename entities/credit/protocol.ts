/**
 * The Credit entity's protocol: one entity per credit account (usually one per user). Commands
 * are persisted and de-duplicated by their idempotency key (`Reserve` by its handler alone, so a
 * refusal does not use up its key); reads are volatile.
 *
 * Amounts are whole credits. A hold (`Reserve`) moves credits from `available` to `reserved`;
 * `Settle` charges the actual cost (at most the hold) and returns the rest; `Release` returns
 * the whole hold. Every movement is a balanced pair of ledger entries with a unique key, so
 * replaying any command changes nothing.
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as Rpc from "@effect/rpc/Rpc"
import * as PrimaryKey from "effect/PrimaryKey"
import * as Schema from "effect/Schema"
import * as EntityGuard from "../../runtime/EntityGuard.ts"
import * as Ids from "../../runtime/Ids.ts"
import * as Storable from "../../runtime/Storable.ts"

/** An idempotency key: the same key always means the same operation. */
export const IdempotencyKey = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(200),
  Schema.pattern(/^[\w:./@-]+$/)
)

/** A whole number of credits. */
export const Amount = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0), Schema.lessThanOrEqualTo(1_000_000_000_000))

/** A strictly positive number of credits. */
export const PositiveAmount = Amount.pipe(Schema.greaterThan(0))

/** A spend scope's id (an API key's: `api_key:<keyId>`). */
export const SpendScopeId = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(120))

/**
 * A spending scope with a cap (an API key's spend cap): a hold is refused when the scope's
 * charges plus open holds would exceed `cap`.
 */
export class SpendScope extends Schema.Class<SpendScope>("troupe/Credit/SpendScope")({
  id: SpendScopeId,
  cap: Amount
}) {}

/** A skill as the ledger names it: `<app>.<skill>`. */
export const SkillName = Schema.String.pipe(Schema.minLength(3), Schema.maxLength(130))

/**
 * What a hold pays for, written on each of its ledger rows (reserve, settle, release, expire): a
 * reason a user reads, the skill it ran and the API key that spent, when there is one.
 */
export class Purpose extends Schema.Class<Purpose>("troupe/Credit/Purpose")({
  reason: Storable.Text(200).pipe(Schema.minLength(1)),
  skill: Schema.optional(SkillName),
  apiKeyId: Schema.optional(Ids.Id)
}) {
  /** A skill call (`skill weather.forecast`), through REST, MCP or a mate's turn. */
  static skill(skill: string, apiKeyId: string | undefined): Purpose {
    return new Purpose({ reason: `skill ${skill}`, skill, ...(apiKeyId ? { apiKeyId } : {}) })
  }
  /** A mate's reply in a chat (`turn in chat <chat id>`). */
  static turn(chatId: string, apiKeyId: string | undefined): Purpose {
    return new Purpose({ reason: `turn in chat ${chatId}`, ...(apiKeyId ? { apiKeyId } : {}) })
  }
  /** A completion of the OpenAI-compatible API (`model <name>`: the model the caller asked for). */
  static model(model: string, apiKeyId: string | undefined): Purpose {
    return new Purpose({ reason: `model ${model}`, ...(apiKeyId ? { apiKeyId } : {}) })
  }
}

/** The state of a hold. */
export const HoldStatus = Schema.Literal("held", "settled", "released", "expired")
export type HoldStatus = typeof HoldStatus.Type

/** A hold as the account sees it. */
export class Hold extends Schema.Class<Hold>("troupe/Credit/Hold")({
  key: Schema.String,
  amount: Amount,
  status: HoldStatus,
  charged: Amount,
  expiresAt: Schema.DateFromNumber
}) {}

/** Balances: `available` can be spent, `reserved` is held for running work. */
export class Balance extends Schema.Class<Balance>("troupe/Credit/Balance")({
  available: Schema.Int,
  reserved: Amount,
  overdraftLimit: Amount
}) {}

/** One ledger entry (one leg of a balanced transaction). */
export class LedgerEntry extends Schema.Class<LedgerEntry>("troupe/Credit/LedgerEntry")({
  id: Schema.Number,
  key: Schema.String,
  kind: Schema.Literal("grant", "reserve", "settle", "release", "expire", "adjust", "reverse"),
  bucket: Schema.Literal("available", "reserved"),
  amount: Schema.Int,
  /** What the row is for: a grant's or reversal's reason, a hold's `Purpose.reason`. */
  reason: Schema.NullOr(Schema.String),
  /** The skill a hold paid for (`<app>.<skill>`). */
  skill: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  /** The API key that spent. */
  apiKeyId: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  createdAt: Schema.DateFromNumber
}) {}

/** Not enough credits for the hold (or the scope's cap would be exceeded). */
export class InsufficientCredits extends Schema.TaggedError<InsufficientCredits>()("InsufficientCredits", {
  available: Schema.Int,
  requested: Amount,
  scope: Schema.optional(Schema.String)
}) {}

/** The named hold does not exist. */
export class HoldNotFound extends Schema.TaggedError<HoldNotFound>()("HoldNotFound", {
  key: Schema.String
}) {}

/** The hold was already released or expired, so it can no longer be settled. */
export class HoldNotActive extends Schema.TaggedError<HoldNotActive>()("HoldNotActive", {
  key: Schema.String,
  status: HoldStatus
}) {}

/** The key was already used for a different operation. */
export class KeyConflict extends Schema.TaggedError<KeyConflict>()("KeyConflict", {
  key: Schema.String,
  message: Schema.String
}) {}

/**
 * Hold `amount` credits under `key` (for `purpose`: what its ledger rows say). Unlike the other
 * commands it has no primary key for the cluster's message storage, which would answer a repeated
 * key with the first reply: a refusal (`InsufficientCredits`) must not be remembered under the
 * key, or a call retried with its key after the user bought credits would be refused again. The
 * handler is idempotent by the hold's key itself: a repeated Reserve of a held key returns that
 * hold and reserves nothing more.
 */
export class Reserve extends Schema.Class<Reserve>("troupe/Credit/Reserve")({
  key: IdempotencyKey,
  amount: PositiveAmount,
  scope: Schema.optional(SpendScope),
  purpose: Schema.optional(Purpose)
}) {}

/** Charge `actual` (at most the hold) for the hold `key`; the rest returns to `available`. */
export class Settle extends Schema.Class<Settle>("troupe/Credit/Settle")({
  key: IdempotencyKey,
  actual: Amount
}) {
  [PrimaryKey.symbol]() {
    return this.key
  }
}

/** Return the whole hold `key` to `available`. */
export class Release extends Schema.Class<Release>("troupe/Credit/Release")({
  key: IdempotencyKey
}) {
  [PrimaryKey.symbol]() {
    return this.key
  }
}

/** Add credits (purchases, gifts, admin grants). */
export class Grant extends Schema.Class<Grant>("troupe/Credit/Grant")({
  key: IdempotencyKey,
  amount: PositiveAmount,
  reason: Storable.Text(200)
}) {
  [PrimaryKey.symbol]() {
    return this.key
  }
}

/**
 * Take back `amount` granted credits (a refunded purchase). Unlike a hold it may take `available`
 * below zero — below the overdraft limit too: the account then cannot reserve until topped up.
 */
export class Reverse extends Schema.Class<Reverse>("troupe/Credit/Reverse")({
  key: IdempotencyKey,
  amount: PositiveAmount,
  reason: Storable.Text(200)
}) {
  [PrimaryKey.symbol]() {
    return this.key
  }
}

/** Allow `available` to go down to `-limit`. */
export class SetOverdraft extends Schema.Class<SetOverdraft>("troupe/Credit/SetOverdraft")({
  key: IdempotencyKey,
  limit: Amount
}) {
  [PrimaryKey.symbol]() {
    return this.key
  }
}

/** Release every hold whose time is up (sent by the expiry sweeper). */
export class ExpireHolds extends Schema.Class<ExpireHolds>("troupe/Credit/ExpireHolds")({
  key: IdempotencyKey
}) {
  [PrimaryKey.symbol]() {
    return this.key
  }
}

/** What a settle did. */
export class Settlement extends Schema.Class<Settlement>("troupe/Credit/Settlement")({
  key: Schema.String,
  held: Amount,
  charged: Amount,
  returned: Amount,
  capped: Schema.Boolean
}) {}

/** A page of the ledger, newest first. */
export class LedgerPage extends Schema.Class<LedgerPage>("troupe/Credit/LedgerPage")({
  entries: Schema.Array(LedgerEntry),
  next: Schema.NullOr(Schema.Number)
}) {}

/** The Credit entity. */
export const Credit = EntityGuard.guard(Entity.make("Credit", [
  Rpc.make("Reserve", { payload: Reserve, success: Hold, error: Schema.Union(InsufficientCredits, KeyConflict) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("Settle", { payload: Settle, success: Settlement, error: Schema.Union(HoldNotFound, HoldNotActive) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("Release", { payload: Release, success: Schema.NullOr(Hold) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("Grant", { payload: Grant, success: Balance, error: KeyConflict })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("Reverse", { payload: Reverse, success: Balance })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("SetOverdraft", { payload: SetOverdraft, success: Balance })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("ExpireHolds", { payload: ExpireHolds, success: Schema.Number })
    .annotate(ClusterSchema.Persisted, true),
  // Reserve, Settle and Release without the cluster's message storage, for a caller that is
  // durable itself — a chat turn, whose journal survives a crash and which the turn sweeper wakes
  // again until it ends (`RunTurn` itself is volatile) — and retries until answered. Same handlers, same idempotency keys: a replay changes nothing. Saves the three
  // storage round trips a persisted message costs (store, deliver, reply).
  Rpc.make("ReserveVolatile", { payload: Reserve, success: Hold, error: Schema.Union(InsufficientCredits, KeyConflict) }),
  Rpc.make("SettleVolatile", { payload: Settle, success: Settlement, error: Schema.Union(HoldNotFound, HoldNotActive) }),
  Rpc.make("ReleaseVolatile", { payload: Release, success: Schema.NullOr(Hold) }),
  Rpc.make("Balance", { success: Balance }),
  // What each spend scope (an API key's cap) has used: credits charged plus credits held now.
  Rpc.make("ScopeUsage", {
    payload: { scopes: Schema.Array(SpendScopeId).pipe(Schema.maxItems(200)) },
    success: Schema.Record({ key: Schema.String, value: Amount })
  }),
  Rpc.make("Ledger", {
    payload: { before: Schema.optional(Schema.Number), limit: Schema.Int.pipe(Schema.between(1, 500)) },
    success: LedgerPage
  }),
  Rpc.make("GetHold", { payload: { key: Schema.String }, success: Schema.NullOr(Hold) })
]))
