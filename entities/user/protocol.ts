/**
 * The User entity's protocol: one entity per user (the entity id is the user id). It owns the
 * account: profile and settings, mates, API keys (stored hashed), the TOTP secret (encrypted
 * with the key ring), sessions (refresh-token families) and the index of the user's chats.
 *
 * Commands that must not be lost are persisted with a primary key. Secrets never travel in a
 * persisted message or reply (both are stored by the cluster): the caller generates tokens and
 * passes only their hashes, and the commands whose reply carries a secret (`BeginTotp`,
 * `ConfirmTotp`) or that only authenticate (`Login`, `Refresh`, `VerifyApiKey`, `VerifyEmail`)
 * are volatile — a lost one is simply retried by the client.
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as Rpc from "@effect/rpc/Rpc"
import * as PrimaryKey from "effect/PrimaryKey"
import * as Schema from "effect/Schema"
import { Id } from "../../runtime/Ids.ts"
import * as EntityGuard from "../../runtime/EntityGuard.ts"
import * as Storable from "../../runtime/Storable.ts"
import * as Secrets from "./secrets.ts"


/** A lowercase hex SHA-256 digest (how tokens and codes are stored). */
export const Digest = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))

/** What a user may do beyond their own account. */
export const Role = Schema.Literal("user", "admin")
export type Role = typeof Role.Type

/** An app named in a scope or a mate's allowed skills. */
const appRef = "[a-z0-9][a-z0-9_.-]{0,63}"

/** An API key's scope: `chats`, `skills`, `skills:<app>`, `read`, `publish` or `apps:admin` (an admin's app store administration). */
export const Scope = Schema.String.pipe(
  Schema.pattern(new RegExp(`^(chats|skills|read|publish|apps:admin|skills:${appRef})$`), {
    message: () => "must be one of chats, skills, skills:<app>, read, publish, apps:admin"
  })
)

/** Text storage accepts (no NUL, no unpaired surrogate), at most `max` long. */
export const PlainText = Storable.Text

/** An email address (loosely checked: the verification mail proves it). */
export const Email = Schema.String.pipe(
  Schema.maxLength(254),
  Schema.pattern(/^[^\s@\u0000-\u001f\u007f]+@[^\s@\u0000-\u001f\u007f]+\.[^\s@\u0000-\u001f\u007f]+$/, { message: () => "must be an email address" })
)

/** A username: 3–32 letters, digits, `_`, `.` or `-`, starting with a letter or digit. */
export const Username = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$/, {
    message: () => "must be 3-32 characters: letters, digits, _ . -, starting with a letter or digit"
  })
)

/** The skills a mate may call: `app` or `app.*` (all of an app's skills) or `app.skill`; at most 100. */
export const AllowedSkills = Schema.Array(Schema.String.pipe(
  Schema.pattern(new RegExp(`^${appRef}(\\.[A-Za-z0-9_-]{1,64}|\\.\\*)?$`), { message: () => "must be an app id, app.*, or app.skill" })
)).pipe(Schema.maxItems(100))

/** Free-form user settings (a small JSON object). */
export const Settings = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** Settings as a user sends them: at most 16 KB of JSON that jsonb accepts. */
export const SettingsInput = Storable.JsonObject(16_384)

/** The user as they see themselves. */
export class Profile extends Schema.Class<Profile>("troupe/User/Profile")({
  userId: Schema.String,
  email: Schema.String,
  username: Schema.String,
  displayName: Schema.String,
  role: Role,
  emailVerified: Schema.Boolean,
  totpEnabled: Schema.Boolean,
  settings: Settings,
  createdAt: Schema.DateFromNumber
}) {}

/** A mate: an AI team-mate the user chats with. */
export class Mate extends Schema.Class<Mate>("troupe/User/Mate")({
  mateId: Schema.String,
  name: Schema.String,
  systemPrompt: Schema.String,
  model: Schema.String,
  allowedSkills: Schema.Array(Schema.String),
  isDefault: Schema.Boolean,
  createdAt: Schema.DateFromNumber,
  updatedAt: Schema.DateFromNumber
}) {}

/** The id of the mate every user has. */
export const defaultMateId = "default"

/** An API key as listed (never its secret). */
export class ApiKeyInfo extends Schema.Class<ApiKeyInfo>("troupe/User/ApiKeyInfo")({
  keyId: Schema.String,
  name: Schema.String,
  scopes: Schema.Array(Schema.String),
  expiresAt: Schema.NullOr(Schema.DateFromNumber),
  spendCap: Schema.NullOr(Schema.Number),
  createdAt: Schema.DateFromNumber
}) {}

/** Who a verified API key acts for, and within which limits. */
export class ApiKeyGrant extends Schema.Class<ApiKeyGrant>("troupe/User/ApiKeyGrant")({
  userId: Schema.String,
  role: Role,
  keyId: Schema.String,
  scopes: Schema.Array(Schema.String),
  spendCap: Schema.NullOr(Schema.Number),
  expiresAt: Schema.NullOr(Schema.DateFromNumber)
}) {}

/** A successful login or refresh: the session (refresh-token family) it belongs to. */
export class Authenticated extends Schema.Class<Authenticated>("troupe/User/Authenticated")({
  userId: Schema.String,
  role: Role,
  familyId: Schema.String
}) {}

/** A session as listed. */
export class SessionInfo extends Schema.Class<SessionInfo>("troupe/User/SessionInfo")({
  familyId: Schema.String,
  createdAt: Schema.DateFromNumber,
  lastUsedAt: Schema.DateFromNumber,
  userAgent: Schema.String,
  ip: Schema.String
}) {}

/** A chat of the user's index, newest first. */
export class ChatRef extends Schema.Class<ChatRef>("troupe/User/ChatRef")({
  chatId: Schema.String,
  mateId: Schema.String,
  title: Schema.String,
  createdAt: Schema.DateFromNumber
}) {}

/** A page of the user's chats; `before` fetches older ones. */
export class ChatPage extends Schema.Class<ChatPage>("troupe/User/ChatPage")({
  chats: Schema.Array(ChatRef),
  before: Schema.NullOr(Schema.Number)
}) {}

/** A TOTP secret being set up: shown once to the user. */
export class TotpSetup extends Schema.Class<TotpSetup>("troupe/User/TotpSetup")({
  secret: Schema.String,
  uri: Schema.String
}) {}

/** What registering did. */
export class Registered extends Schema.Class<Registered>("troupe/User/Registered")({
  profile: Profile,
  /** The kind of invite used, if any (`initial_admin` makes the first admin). */
  inviteKind: Schema.NullOr(Schema.Literal("standard", "initial_admin")),
  credits: Schema.Number
}) {}

// ---------------------------------------------------------------------------------------------
// Errors

/** No such user (or the account was deleted). */
export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", { userId: Schema.String }) {}

/** The email or username is taken. */
export class UserExists extends Schema.TaggedError<UserExists>()("UserExists", { field: Schema.Literal("email", "username") }) {}

/** The invite code is unknown, used up or expired. */
export class InviteInvalid extends Schema.TaggedError<InviteInvalid>()("InviteInvalid", {
  reason: Schema.Literal("unknown", "used_up", "expired")
}) {}

/** Wrong password (or no such account). */
export class InvalidCredentials extends Schema.TaggedError<InvalidCredentials>()("InvalidCredentials", {}) {}

/** The email address has not been verified yet. */
export class EmailNotVerified extends Schema.TaggedError<EmailNotVerified>()("EmailNotVerified", {}) {}

/** 2FA is on: the login needs a TOTP or backup code. */
export class TotpRequired extends Schema.TaggedError<TotpRequired>()("TotpRequired", {}) {}

/** The TOTP or backup code is wrong (or was already used). */
export class InvalidTotp extends Schema.TaggedError<InvalidTotp>()("InvalidTotp", {}) {}

/** 2FA is already enabled, or there is no setup to confirm. */
export class TotpState extends Schema.TaggedError<TotpState>()("TotpState", {
  reason: Schema.Literal("already_enabled", "not_started")
}) {}

/** The email verification code is wrong, expired or was tried too often. */
export class InvalidCode extends Schema.TaggedError<InvalidCode>()("InvalidCode", {
  reason: Schema.Literal("wrong", "expired", "too_many_attempts", "none")
}) {}

/** The refresh token is unknown, revoked or expired; `reuse` when an already-used token came back (its family is revoked). */
export class InvalidRefreshToken extends Schema.TaggedError<InvalidRefreshToken>()("InvalidRefreshToken", {
  reuse: Schema.Boolean
}) {}

/** The API key is unknown, revoked, expired or wrong. */
export class ApiKeyInvalid extends Schema.TaggedError<ApiKeyInvalid>()("ApiKeyInvalid", {
  reason: Schema.Literal("unknown", "revoked", "expired")
}) {}

/** No such API key. */
export class ApiKeyNotFound extends Schema.TaggedError<ApiKeyNotFound>()("ApiKeyNotFound", { keyId: Schema.String }) {}

/** No such mate. */
export class MateNotFound extends Schema.TaggedError<MateNotFound>()("MateNotFound", { mateId: Schema.String }) {}

/** The default mate cannot be deleted. */
export class DefaultMate extends Schema.TaggedError<DefaultMate>()("DefaultMate", {}) {}

/** A per-user limit (mates, API keys) was reached. */
export class LimitReached extends Schema.TaggedError<LimitReached>()("LimitReached", {
  what: Schema.String,
  limit: Schema.Number
}) {}

/** The identity at this provider is linked to another account. */
export class IdentityTaken extends Schema.TaggedError<IdentityTaken>()("IdentityTaken", {}) {}

/** The password reset link is unknown, was used already, or expired. */
export class ResetTokenInvalid extends Schema.TaggedError<ResetTokenInvalid>()("ResetTokenInvalid", {
  reason: Schema.Literal("unknown", "used", "expired")
}) {}

/** An e-mail change took effect: the account now, and the address it had before (to be told). */
export class EmailChanged extends Schema.Class<EmailChanged>("troupe/User/EmailChanged")({
  profile: Profile,
  previousEmail: Schema.String
}) {}

/** Base64url text of at most `max` characters (WebAuthn's binary fields as JSON carries them). */
const Base64Url = (max: number) => Schema.String.pipe(Schema.maxLength(max), Schema.pattern(/^[A-Za-z0-9_-]*$/, { message: () => "must be base64url" }))

/** A WebAuthn credential id (at most 1023 bytes). */
export const CredentialId = Base64Url(1366).pipe(Schema.minLength(1))

/** How an authenticator can be reached. */
export const Transport = Schema.Literal("ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb")

/** What `navigator.credentials.get()` returned, as JSON (`PublicKeyCredential.toJSON()`). */
export const AssertionJson = Schema.Struct({
  id: CredentialId,
  rawId: CredentialId,
  type: Schema.Literal("public-key"),
  response: Schema.Struct({
    clientDataJSON: Base64Url(8192),
    authenticatorData: Base64Url(8192),
    signature: Base64Url(2048),
    userHandle: Schema.optional(Base64Url(128))
  }),
  clientExtensionResults: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  authenticatorAttachment: Schema.optional(Schema.Literal("platform", "cross-platform"))
}).annotations({ identifier: "PasskeyAssertion" })
export type AssertionJson = typeof AssertionJson.Type

/** What `navigator.credentials.create()` returned, as JSON. */
export const AttestationJson = Schema.Struct({
  id: CredentialId,
  rawId: CredentialId,
  type: Schema.Literal("public-key"),
  response: Schema.Struct({
    clientDataJSON: Base64Url(8192),
    attestationObject: Base64Url(65_536),
    transports: Schema.optional(Schema.Array(Transport).pipe(Schema.maxItems(10))),
    authenticatorData: Schema.optional(Base64Url(65_536)),
    publicKey: Schema.optional(Base64Url(8192)),
    publicKeyAlgorithm: Schema.optional(Schema.Int)
  }),
  clientExtensionResults: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  authenticatorAttachment: Schema.optional(Schema.Literal("platform", "cross-platform"))
}).annotations({ identifier: "PasskeyAttestation" })
export type AttestationJson = typeof AttestationJson.Type

/** What an assertion must match: the challenge handed out, the origin and relying party id of `TROUPE_PUBLIC_URL`. */
export const Expected = Schema.Struct({ challenge: Schema.String, origin: Schema.String, rpId: Schema.String })

/** A passkey as listed. */
export class PasskeyInfo extends Schema.Class<PasskeyInfo>("troupe/User/PasskeyInfo")({
  credentialId: Schema.String,
  name: Schema.String,
  deviceType: Schema.String,
  backedUp: Schema.Boolean,
  transports: Schema.Array(Schema.String),
  createdAt: Schema.DateFromNumber,
  lastUsedAt: Schema.NullOr(Schema.DateFromNumber)
}) {}

/** A passkey assertion was refused: why. */
export class PasskeyRefused extends Schema.TaggedError<PasskeyRefused>()("PasskeyRefused", {
  reason: Schema.Literal("unknown_credential", "wrong_origin", "wrong_challenge", "cloned", "invalid")
}) {}

/** This passkey is registered already. */
export class PasskeyExists extends Schema.TaggedError<PasskeyExists>()("PasskeyExists", {}) {}

/** No such passkey on this account. */
export class PasskeyNotFound extends Schema.TaggedError<PasskeyNotFound>()("PasskeyNotFound", {}) {}

// ---------------------------------------------------------------------------------------------
// Commands (persisted)

/** Create the account (idempotent: a replay returns the account it created). */
export class Register extends Schema.Class<Register>("troupe/User/Register")({
  email: Email,
  username: Username,
  /** An argon2id hash (computed by the caller). */
  passwordHash: Schema.String.pipe(Schema.startsWith("$argon2id$")),
  inviteCodeHash: Schema.optional(Digest),
  emailCodeHash: Digest,
  emailCodeExpiresAt: Storable.DateTimeFromNumber,
  /**
   * When the invite is the initial admin invite, the email counts as verified without a code:
   * the invite, read from the server's own log or data dir, already proves the operator (the
   * gateway asks for this when it cannot mail codes).
   */
  initialInviteVerifiesEmail: Schema.optional(Schema.Boolean),
  /** The account is made at a first single sign-on whose provider says the e-mail is verified. */
  emailVerifiedBySso: Schema.optional(Schema.Boolean),
  /** Credits granted at signup (key `signup:<userId>`). */
  startingCredits: Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))
}) {
  [PrimaryKey.symbol]() {
    return "register"
  }
}

/** Replace the email verification code (resend). */
export class SetEmailCode extends Schema.Class<SetEmailCode>("troupe/User/SetEmailCode")({
  codeHash: Digest,
  expiresAt: Storable.DateTimeFromNumber
}) {
  [PrimaryKey.symbol]() {
    return `email-code:${this.codeHash}`
  }
}

/** Store a password reset link's digest (the link itself is mailed by the caller). */
export class SetResetToken extends Schema.Class<SetResetToken>("troupe/User/SetResetToken")({
  tokenHash: Digest,
  expiresAt: Storable.DateTimeFromNumber
}) {
  [PrimaryKey.symbol]() {
    return `reset-token:${this.tokenHash}`
  }
}

/** Register a passkey whose attestation the caller verified (the public key is not a secret). */
export class AddPasskey extends Schema.Class<AddPasskey>("troupe/User/AddPasskey")({
  credentialId: CredentialId,
  /** The COSE public key, base64url. */
  publicKey: Base64Url(8192).pipe(Schema.minLength(1)),
  counter: Schema.Int.pipe(Schema.between(0, 4_294_967_295)),
  transports: Schema.Array(Transport).pipe(Schema.maxItems(10)),
  name: PlainText(80),
  deviceType: Schema.Literal("singleDevice", "multiDevice"),
  backedUp: Schema.Boolean
}) {
  [PrimaryKey.symbol]() {
    return `passkey:${Secrets.digest(this.credentialId)}`
  }
}

/** Remove a passkey. */
export class RemovePasskey extends Schema.Class<RemovePasskey>("troupe/User/RemovePasskey")({ key: Id, credentialId: CredentialId }) {
  [PrimaryKey.symbol]() {
    return `passkey-remove:${this.key}`
  }
}

/** Change the display name and/or settings. */
export class UpdateProfile extends Schema.Class<UpdateProfile>("troupe/User/UpdateProfile")({
  key: Id,
  displayName: Schema.optional(PlainText(80)),
  settings: Schema.optional(SettingsInput)
}) {
  [PrimaryKey.symbol]() {
    return `profile:${this.key}`
  }
}

const MateFields = {
  name: PlainText(80).pipe(Schema.minLength(1)),
  systemPrompt: PlainText(20_000),
  model: PlainText(100).pipe(Schema.minLength(1)),
  allowedSkills: AllowedSkills
}

/** Create a mate. */
export class CreateMate extends Schema.Class<CreateMate>("troupe/User/CreateMate")({ mateId: Id, ...MateFields }) {
  [PrimaryKey.symbol]() {
    return `mate:${this.mateId}`
  }
}

/** Change some of a mate's fields. */
export class UpdateMate extends Schema.Class<UpdateMate>("troupe/User/UpdateMate")({
  key: Id,
  mateId: Id,
  name: Schema.optional(MateFields.name),
  systemPrompt: Schema.optional(MateFields.systemPrompt),
  model: Schema.optional(MateFields.model),
  allowedSkills: Schema.optional(MateFields.allowedSkills)
}) {
  [PrimaryKey.symbol]() {
    return `mate-update:${this.key}`
  }
}

/** Delete a mate (not the default one). */
export class DeleteMate extends Schema.Class<DeleteMate>("troupe/User/DeleteMate")({ mateId: Id }) {
  [PrimaryKey.symbol]() {
    return `mate-delete:${this.mateId}`
  }
}

/** Add an API key; the caller generated the secret and passes its hash. */
export class CreateApiKey extends Schema.Class<CreateApiKey>("troupe/User/CreateApiKey")({
  keyId: Id,
  name: PlainText(80).pipe(Schema.minLength(1)),
  scopes: Schema.Array(Scope).pipe(Schema.minItems(1), Schema.maxItems(20)),
  expiresAt: Schema.optional(Storable.DateTimeFromNumber),
  spendCap: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(0), Schema.lessThanOrEqualTo(1_000_000_000_000))),
  secretHash: Digest
}) {
  [PrimaryKey.symbol]() {
    return `api-key:${this.keyId}`
  }
}

/** Revoke an API key. */
export class RevokeApiKey extends Schema.Class<RevokeApiKey>("troupe/User/RevokeApiKey")({ keyId: Id }) {
  [PrimaryKey.symbol]() {
    return `api-key-revoke:${this.keyId}`
  }
}

/** Revoke one session (logout). */
export class RevokeSession extends Schema.Class<RevokeSession>("troupe/User/RevokeSession")({ familyId: Id }) {
  [PrimaryKey.symbol]() {
    return `session-revoke:${this.familyId}`
  }
}

/** Revoke every session (logout everywhere); returns the revoked family ids. */
export class RevokeAllSessions extends Schema.Class<RevokeAllSessions>("troupe/User/RevokeAllSessions")({ key: Id }) {
  [PrimaryKey.symbol]() {
    return `sessions-revoke:${this.key}`
  }
}

/** Add a chat to the user's index (its title stays in the chat, encrypted: this message is persisted in the clear). */
export class AddChat extends Schema.Class<AddChat>("troupe/User/AddChat")({
  chatId: Id,
  mateId: Id
}) {
  [PrimaryKey.symbol]() {
    return `chat:${this.chatId}`
  }
}

/** Remove a chat from the user's index. */
export class RemoveChat extends Schema.Class<RemoveChat>("troupe/User/RemoveChat")({ chatId: Id }) {
  [PrimaryKey.symbol]() {
    return `chat-remove:${this.chatId}`
  }
}

/**
 * Delete the account: every chat is deleted (crypto-shredded by its Chat entity), sessions and
 * API keys are revoked, personal data is wiped and the user's data key destroyed. Returns the
 * revoked session family ids.
 */
export class DeleteAccount extends Schema.Class<DeleteAccount>("troupe/User/DeleteAccount")({}) {
  [PrimaryKey.symbol]() {
    return "delete-account"
  }
}

// ---------------------------------------------------------------------------------------------
// Volatile messages

/** Where a new session comes from (shown in the sessions list). */
export const SessionOrigin = Schema.Struct({
  familyId: Id,
  /** The first refresh token's hash. */
  tokenHash: Digest,
  userAgent: Storable.Text(300),
  ip: Storable.Text(64)
})

/** The User entity. */
export const User = EntityGuard.guard(Entity.make("User", [
  Rpc.make("Register", { payload: Register, success: Registered, error: Schema.Union(UserExists, InviteInvalid) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("SetEmailCode", { payload: SetEmailCode, error: UserNotFound }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("SetResetToken", { payload: SetResetToken, error: UserNotFound }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("AddPasskey", { payload: AddPasskey, success: PasskeyInfo, error: Schema.Union(UserNotFound, LimitReached, PasskeyExists) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("RemovePasskey", { payload: RemovePasskey, error: Schema.Union(UserNotFound, PasskeyNotFound) }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("UpdateProfile", { payload: UpdateProfile, success: Profile, error: UserNotFound }).annotate(ClusterSchema.Persisted, true),
  // volatile: they carry a system prompt, and a persisted message (and its reply) is stored in the
  // clear; both are idempotent (by mate id), and the gateway retries them
  Rpc.make("CreateMate", { payload: CreateMate, success: Mate, error: Schema.Union(UserNotFound, LimitReached) }),
  Rpc.make("UpdateMate", { payload: UpdateMate, success: Mate, error: Schema.Union(UserNotFound, MateNotFound) }),
  Rpc.make("DeleteMate", { payload: DeleteMate, error: Schema.Union(UserNotFound, MateNotFound, DefaultMate) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("CreateApiKey", { payload: CreateApiKey, success: ApiKeyInfo, error: Schema.Union(UserNotFound, LimitReached) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("RevokeApiKey", { payload: RevokeApiKey, error: Schema.Union(UserNotFound, ApiKeyNotFound) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("RevokeSession", { payload: RevokeSession }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("RevokeAllSessions", { payload: RevokeAllSessions, success: Schema.Array(Schema.String) })
    .annotate(ClusterSchema.Persisted, true),
  Rpc.make("AddChat", { payload: AddChat, error: UserNotFound }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("RemoveChat", { payload: RemoveChat }).annotate(ClusterSchema.Persisted, true),
  Rpc.make("DeleteAccount", { payload: DeleteAccount, success: Schema.Array(Schema.String) }).annotate(ClusterSchema.Persisted, true),

  Rpc.make("Profile", { success: Profile, error: UserNotFound }),
  Rpc.make("VerifyEmail", { payload: { code: Schema.String }, success: Profile, error: Schema.Union(UserNotFound, InvalidCode) }),
  Rpc.make("Login", {
    payload: {
      password: Schema.String,
      totpCode: Schema.optional(Schema.String),
      /** A passkey assertion as the second factor (instead of a TOTP code). */
      passkey: Schema.optional(Schema.Struct({ assertion: AssertionJson, expected: Expected })),
      session: SessionOrigin,
      /** The account is locked out from elsewhere: only a correct password with a second factor gets in. */
      secondFactorRequired: Schema.optional(Schema.Boolean)
    },
    success: Authenticated,
    error: Schema.Union(InvalidCredentials, EmailNotVerified, TotpRequired, InvalidTotp, PasskeyRefused)
  }),
  /** Sign in with a passkey alone (a discoverable credential with user verification). */
  Rpc.make("PasskeyLogin", {
    payload: { assertion: AssertionJson, expected: Expected, session: SessionOrigin },
    success: Authenticated,
    error: Schema.Union(PasskeyRefused, EmailNotVerified)
  }),
  Rpc.make("Passkeys", { success: Schema.Array(PasskeyInfo) }),
  /**
   * Sign in through an OpenID Connect provider: links the identity (provider, subject) to this
   * account (the gateway decided it may: first login, or the provider verified the e-mail), applies
   * the provider's role if it manages roles, and opens a session.
   */
  Rpc.make("SsoLogin", {
    payload: {
      provider: Schema.String,
      subject: Schema.String.pipe(Schema.maxLength(255)),
      email: Schema.String,
      emailVerified: Schema.Boolean,
      role: Schema.optional(Role),
      session: SessionOrigin
    },
    success: Authenticated,
    error: Schema.Union(UserNotFound, IdentityTaken)
  }),
  // volatile: a link is good once, so a replayed message must be refused like a replayed link
  Rpc.make("ResetPassword", {
    payload: { tokenHash: Digest, passwordHash: Schema.String.pipe(Schema.startsWith("$argon2id$")) },
    success: Schema.Array(Schema.String),
    error: ResetTokenInvalid
  }),
  Rpc.make("BeginEmailChange", {
    payload: { email: Email, password: Schema.String, codeHash: Digest, expiresAt: Storable.DateTimeFromNumber },
    error: Schema.Union(UserNotFound, InvalidCredentials, UserExists)
  }),
  Rpc.make("ConfirmEmailChange", {
    payload: { code: Schema.String },
    success: EmailChanged,
    error: Schema.Union(UserNotFound, InvalidCode, UserExists)
  }),
  Rpc.make("Refresh", {
    payload: { familyId: Id, tokenHash: Digest, nextTokenHash: Digest },
    success: Authenticated,
    error: InvalidRefreshToken
  }),
  Rpc.make("SessionActive", { payload: { familyId: Id }, success: Schema.Boolean }),
  Rpc.make("Sessions", { success: Schema.Array(SessionInfo) }),
  Rpc.make("BeginTotp", { payload: { issuer: Schema.String }, success: TotpSetup, error: Schema.Union(UserNotFound, TotpState) }),
  Rpc.make("ConfirmTotp", {
    payload: { code: Schema.String },
    success: Schema.Array(Schema.String),
    error: Schema.Union(UserNotFound, TotpState, InvalidTotp)
  }),
  Rpc.make("VerifyApiKey", { payload: { keyId: Id, secretHash: Digest }, success: ApiKeyGrant, error: ApiKeyInvalid }),
  Rpc.make("ApiKeys", { success: Schema.Array(ApiKeyInfo) }),
  Rpc.make("Mates", { success: Schema.Array(Mate), error: UserNotFound }),
  Rpc.make("GetMate", { payload: { mateId: Id }, success: Mate, error: Schema.Union(UserNotFound, MateNotFound) }),
  Rpc.make("Chats", {
    payload: { before: Schema.optional(Schema.Number), limit: Schema.Int.pipe(Schema.between(1, 200)) },
    success: ChatPage
  }),
  Rpc.make("HasChat", { payload: { chatId: Id }, success: Schema.Boolean })
]))
