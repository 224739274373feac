import * as Entity from "@effect/cluster/Entity"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as OTPAuth from "otpauth"
import { createTestDatabase } from "../../runtime/testing/services.ts"
import { Chat } from "../chat/protocol.ts"
import * as CreditBehaviour from "../credit/behaviour.ts"
import { Credit } from "../credit/protocol.ts"
import * as CreditRepo from "../credit/repo.ts"
import { layerCluster } from "../testing/cluster.ts"
import * as Behaviour from "./behaviour.ts"
import { AddChat, CreateApiKey, CreateMate, DeleteAccount, DeleteMate, Register, RevokeApiKey, UpdateMate, User } from "./protocol.ts"
import * as Ids from "../../runtime/Ids.ts"
import * as Directory from "./directory.ts"
import { UserDirectory } from "./directory.ts"
import * as Passwords from "./passwords.ts"
import * as Repo from "./repo.ts"
import * as Secrets from "./secrets.ts"

let db: Awaited<ReturnType<typeof createTestDatabase>>
beforeAll(async () => {
  db = await createTestDatabase("user")
})
afterAll(() => db.drop())

/** A Chat stand-in that records the deletions an account deletion asks for. */
const deletedChats: Array<string> = []
const stubChat = Chat.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const unused = () => Effect.die("unused in this test")
    return Chat.of({
      Create: unused,
      Post: unused,
      RunTurn: unused,
      Wake: unused,
      Attachment: unused,
      Confirm: unused,
      Cancel: unused,
      DeleteMessage: unused,
      Rename: unused,
      Delete: () => Effect.sync(() => void deletedChats.push(address.entityId)),
      Share: unused,
      Summary: unused,
      History: unused,
      Events: () => Stream.die("unused"),
      ReadShare: unused
    })
  })
)

const cluster = () =>
  Directory.layer.pipe(Layer.provideMerge(layerCluster({
    url: db.url,
    migrations: [...CreditRepo.migrations, ...Repo.migrations],
    entities: Layer.mergeAll(
      Behaviour.layer,
      stubChat,
      Layer.provide(CreditBehaviour.layer, Layer.succeed(CreditBehaviour.CreditConfig, CreditBehaviour.defaults))
    )
  })))

const passwordHash = Passwords.hash

const register = (userId: string, email: string, username: string, extra: Partial<{ inviteCodeHash: string; startingCredits: number }> = {}) =>
  Effect.gen(function*() {
    const client = (yield* User.client)(userId)
    return yield* client.Register(
      new Register({
        email,
        username,
        passwordHash: yield* passwordHash("correct horse"),
        emailCodeHash: Secrets.emailCodeDigest(userId, "123456"),
        emailCodeExpiresAt: new Date(Date.now() + 600_000),
        startingCredits: extra.startingCredits ?? 0,
        ...(extra.inviteCodeHash ? { inviteCodeHash: extra.inviteCodeHash } : {})
      })
    )
  })

const session = () => {
  const familyId = Ids.make("f")
  const token = Secrets.randomSecret()
  return { familyId, token, origin: { familyId, tokenHash: Secrets.digest(token), userAgent: "test", ip: "127.0.0.1" } }
}

describe("User entity", () => {
  it.live("registers idempotently, grants signup and invite credits, and refuses a taken email or username", () =>
    Effect.gen(function*() {
      const code = "invite-code-1"
      yield* (yield* UserDirectory).createInvite({ inviteId: "i1", codeHash: Secrets.digest(code), kind: "initial_admin", uses: 1, expiresAt: null, giftCredits: 7, createdBy: null })
      const first = yield* register("u1", "Ada@example.com", "ada", { inviteCodeHash: Secrets.digest(code), startingCredits: 100 })
      expect(first.profile).toMatchObject({ userId: "u1", email: "Ada@example.com", role: "admin", emailVerified: false, totpEnabled: false })
      expect(first.inviteKind).toBe("initial_admin")
      expect(first.credits).toBe(107)
      // a replay of the same persisted command changes nothing and grants nothing twice
      const again = yield* register("u1", "Ada@example.com", "ada", { inviteCodeHash: Secrets.digest(code), startingCredits: 100 })
      expect(again.credits).toBe(107)
      expect(yield* (yield* Credit.client)("u1").Balance()).toMatchObject({ available: 107 })

      expect(yield* Effect.flip(register("u2", "ada@EXAMPLE.com", "other"))).toMatchObject({ _tag: "UserExists", field: "email" })
      expect(yield* Effect.flip(register("u3", "b@example.com", "ADA"))).toMatchObject({ _tag: "UserExists", field: "username" })
      // the invite was for one use
      expect(yield* Effect.flip(register("u4", "c@example.com", "cee", { inviteCodeHash: Secrets.digest(code) }))).toMatchObject({ _tag: "InviteInvalid", reason: "used_up" })
      expect(yield* Effect.flip(register("u5", "c@example.com", "cee", { inviteCodeHash: Secrets.digest("nope") }))).toMatchObject({ _tag: "InviteInvalid", reason: "unknown" })
      expect(yield* (yield* UserDirectory).findUserId("ADA")).toBe("u1")
      expect(yield* (yield* UserDirectory).findUserId("ada@example.com")).toBe("u1")
      expect(yield* (yield* UserDirectory).findUserId("u4")).toBeUndefined()
      expect(yield* (yield* UserDirectory).hasAdmin).toBe(true)
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("verifies email with a bounded number of attempts, then logs in with the password and TOTP or a backup code once", () =>
    Effect.gen(function*() {
      yield* register("v1", "v1@example.com", "vee")
      const user = (yield* User.client)("v1")
      const s1 = session()
      expect(yield* Effect.flip(user.Login({ password: "correct horse", session: s1.origin }))).toMatchObject({ _tag: "EmailNotVerified" })
      expect(yield* Effect.flip(user.VerifyEmail({ code: "000000" }))).toMatchObject({ _tag: "InvalidCode", reason: "wrong" })
      expect(yield* user.VerifyEmail({ code: "123456" })).toMatchObject({ emailVerified: true })
      expect(yield* Effect.flip(user.Login({ password: "wrong", session: s1.origin }))).toMatchObject({ _tag: "InvalidCredentials" })
      expect(yield* user.Login({ password: "correct horse", session: s1.origin })).toMatchObject({ userId: "v1", role: "user", familyId: s1.familyId })

      const setup = yield* user.BeginTotp({ issuer: "Troupe" })
      expect(setup.uri).toMatch(/^otpauth:\/\/totp\//)
      const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(setup.secret) })
      expect(yield* Effect.flip(user.ConfirmTotp({ code: "000000" === totp.generate() ? "111111" : "000000" }))).toMatchObject({ _tag: "InvalidTotp" })
      const codes = yield* user.ConfirmTotp({ code: totp.generate() })
      expect(codes).toHaveLength(10)
      expect(new Set(codes).size).toBe(10)
      // the secret is stored encrypted
      const sql = yield* SqlClient.SqlClient
      const [stored] = yield* sql<{ totp_secret: Uint8Array }>`SELECT totp_secret FROM users WHERE user_id = 'v1'`
      expect(Buffer.from(stored!.totp_secret).includes(Buffer.from(setup.secret))).toBe(false)

      expect(yield* Effect.flip(user.Login({ password: "correct horse", session: session().origin }))).toMatchObject({ _tag: "TotpRequired" })
      // the confirming code was used: the same time step is refused
      expect(yield* Effect.flip(user.Login({ password: "correct horse", totpCode: totp.generate(), session: session().origin }))).toMatchObject({ _tag: "InvalidTotp" })
      expect(yield* user.Login({ password: "correct horse", totpCode: codes[0]!.toUpperCase(), session: session().origin })).toMatchObject({ userId: "v1" })
      expect(yield* Effect.flip(user.Login({ password: "correct horse", totpCode: codes[0]!, session: session().origin }))).toMatchObject({ _tag: "InvalidTotp" })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("rotates refresh tokens and revokes the whole family when a used token comes back", () =>
    Effect.gen(function*() {
      yield* register("r1", "r1@example.com", "arr")
      const user = (yield* User.client)("r1")
      yield* user.VerifyEmail({ code: "123456" })
      const s = session()
      yield* user.Login({ password: "correct horse", session: s.origin })
      const t1 = Secrets.digest(s.token)
      const t2 = Secrets.digest("second")
      const t3 = Secrets.digest("third")
      expect(yield* user.Refresh({ familyId: s.familyId, tokenHash: t1, nextTokenHash: t2 })).toMatchObject({ familyId: s.familyId })
      expect(yield* user.Refresh({ familyId: s.familyId, tokenHash: t2, nextTokenHash: t3 })).toMatchObject({ familyId: s.familyId })
      // t1 again: reuse, the family is revoked, so even the current token t3 stops working
      expect(yield* Effect.flip(user.Refresh({ familyId: s.familyId, tokenHash: t1, nextTokenHash: Secrets.digest("x") }))).toMatchObject({ reuse: true })
      expect(yield* Effect.flip(user.Refresh({ familyId: s.familyId, tokenHash: t3, nextTokenHash: Secrets.digest("y") }))).toMatchObject({ reuse: false })
      expect(yield* user.SessionActive({ familyId: s.familyId })).toBe(false)
      expect(yield* Effect.flip(user.Refresh({ familyId: s.familyId, tokenHash: Secrets.digest("forged"), nextTokenHash: Secrets.digest("z") }))).toMatchObject({ reuse: false })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("stores API keys hashed, verifies scopes, expiry and revocation; manages mates with a default one", () =>
    Effect.gen(function*() {
      yield* register("k1", "k1@example.com", "kay")
      const user = (yield* User.client)("k1")
      const secret = Secrets.randomSecret()
      const info = yield* user.CreateApiKey(new CreateApiKey({ keyId: "key1", name: "ci", scopes: ["chats", "skills:text"], spendCap: 50, secretHash: Secrets.digest(secret) }))
      expect(info).toMatchObject({ keyId: "key1", scopes: ["chats", "skills:text"], spendCap: 50 })
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ secret_hash: string }>`SELECT secret_hash FROM user_api_keys WHERE key_id = 'key1'`
      expect(rows[0]!.secret_hash).not.toContain(secret)
      expect(yield* user.VerifyApiKey({ keyId: "key1", secretHash: Secrets.digest(secret) })).toMatchObject({ userId: "k1", scopes: ["chats", "skills:text"], spendCap: 50 })
      expect(yield* Effect.flip(user.VerifyApiKey({ keyId: "key1", secretHash: Secrets.digest("wrong") }))).toMatchObject({ reason: "unknown" })
      yield* user.CreateApiKey(new CreateApiKey({ keyId: "key2", name: "old", scopes: ["read"], expiresAt: new Date(Date.now() - 1000), secretHash: Secrets.digest("s2") }))
      expect(yield* Effect.flip(user.VerifyApiKey({ keyId: "key2", secretHash: Secrets.digest("s2") }))).toMatchObject({ reason: "expired" })
      yield* user.RevokeApiKey(new RevokeApiKey({ keyId: "key1" }))
      expect(yield* Effect.flip(user.VerifyApiKey({ keyId: "key1", secretHash: Secrets.digest(secret) }))).toMatchObject({ reason: "revoked" })
      expect((yield* user.ApiKeys()).map((k) => k.keyId)).toEqual(["key2"])

      expect((yield* user.Mates()).map((m) => m.mateId)).toEqual(["default"])
      yield* user.CreateMate(new CreateMate({ mateId: "m1", name: "Researcher", systemPrompt: "Dig.", model: "gpt", allowedSkills: ["text.summarize"] }))
      expect(yield* user.UpdateMate(new UpdateMate({ key: "u1", mateId: "m1", name: "Analyst" }))).toMatchObject({ name: "Analyst", systemPrompt: "Dig.", allowedSkills: ["text.summarize"] })
      expect(yield* Effect.flip(user.DeleteMate(new DeleteMate({ mateId: "default" })))).toMatchObject({ _tag: "DefaultMate" })
      yield* user.DeleteMate(new DeleteMate({ mateId: "m1" }))
      expect(yield* Effect.flip(user.GetMate({ mateId: "m1" }))).toMatchObject({ _tag: "MateNotFound" })
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })

  it.live("deletes an account: its chats are deleted through Chat, sessions and keys revoked, personal data and the data key gone", () =>
    Effect.gen(function*() {
      yield* register("d1", "d1@example.com", "dee")
      const user = (yield* User.client)("d1")
      yield* user.VerifyEmail({ code: "123456" })
      const s = session()
      yield* user.Login({ password: "correct horse", session: s.origin })
      yield* user.BeginTotp({ issuer: "Troupe" })
      yield* user.AddChat(new AddChat({ chatId: "c1", mateId: "default" }))
      yield* user.AddChat(new AddChat({ chatId: "c2", mateId: "default" }))
      expect((yield* user.Chats({ limit: 10 })).chats.map((c) => c.chatId)).toEqual(["c2", "c1"])
      yield* user.CreateApiKey(new CreateApiKey({ keyId: "dk", name: "k", scopes: ["read"], secretHash: Secrets.digest("dk") }))

      const revoked = yield* user.DeleteAccount(new DeleteAccount({}))
      expect(revoked).toEqual([s.familyId])
      expect(deletedChats.sort()).toEqual(["c1", "c2"])
      expect(yield* Effect.flip(user.Profile())).toMatchObject({ _tag: "UserNotFound" })
      expect(yield* Effect.flip(user.VerifyApiKey({ keyId: "dk", secretHash: Secrets.digest("dk") }))).toMatchObject({ _tag: "ApiKeyInvalid" })
      expect(yield* Effect.flip(user.Login({ password: "correct horse", session: session().origin }))).toMatchObject({ _tag: "InvalidCredentials" })
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ email: string; password_hash: string }>`SELECT email, password_hash FROM users WHERE user_id = 'd1'`
      expect(row).toEqual({ email: "deleted-d1", password_hash: "" })
      expect(yield* sql`SELECT 1 FROM troupe_data_keys WHERE key_id = 'user:d1'`).toHaveLength(0)
      // nor do the cluster's tables keep the registration (email, password hash) or anything else it sent
      const leftovers = yield* sql<{ n: string }>`
        SELECT (SELECT count(*) FROM cluster_messages WHERE payload LIKE '%d1@example.com%' OR (entity_id = 'd1' AND payload LIKE '%argon2id%'))
             + (SELECT count(*) FROM cluster_replies WHERE payload LIKE '%d1@example.com%') AS n`
      expect(Number(leftovers[0]!.n)).toBe(0)
      // the email is free again
      expect(yield* (yield* UserDirectory).findUserId("d1@example.com")).toBeUndefined()
      expect((yield* register("d2", "d1@example.com", "dee")).profile.userId).toBe("d2")
    }).pipe(Effect.provide(cluster())), { timeout: 60_000 })
})
