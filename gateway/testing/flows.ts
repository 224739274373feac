/** Flows over HTTP shared by the gateway's tests (and the benchmark's setup). */
import { expect } from "vitest"
import { sseFrames } from "./sse-frames.ts"
import { request, verificationCode } from "./server.ts"
import type { TestServer } from "./server.ts"

/** A decoded SSE event. */
export interface SseEvent {
  readonly id: number
  readonly event: string
  readonly data: any
}

/**
 * Sign up with `invite`, verify the email from the outbox (unless the server needs no code: the
 * initial admin invite without SMTP), log in: the session's tokens.
 */
export const onboard = async (s: Pick<TestServer, "url" | "dataDir">, name: string, invite?: string) => {
  const email = `${name}@example.com`
  const signup = await request(s, "POST", "/v1/auth/signup", { body: { email, username: name, password: "a long password 1", ...(invite ? { invite_code: invite } : {}) } })
  expect(signup.status, JSON.stringify(signup.body)).toBe(201)
  if (signup.body.email_verification === "sent") {
    const code = verificationCode(s.dataDir, email)
    expect((await request(s, "POST", "/v1/auth/verify_email", { body: { email, code } })).status).toBe(200)
  }
  const login = await request(s, "POST", "/v1/auth/login", { body: { login: name, password: "a long password 1" } })
  expect(login.status, JSON.stringify(login.body)).toBe(200)
  return { email, userId: signup.body.user_id as string, access: login.body.access_token as string, refresh: login.body.refresh_token as string }
}

/** Read SSE frames from `path` until `until` says stop; returns them. */
export const readEvents = async (
  s: TestServer,
  path: string,
  token: string,
  until: (events: ReadonlyArray<SseEvent>, comments: number) => boolean,
  headers: Record<string, string> = {}
) => {
  const controller = new AbortController()
  const res = await fetch(s.url + path, { headers: { authorization: `Bearer ${token}`, ...headers }, signal: controller.signal })
  expect(res.status).toBe(200)
  expect(res.headers.get("content-type")).toContain("text/event-stream")
  const events: Array<SseEvent> = []
  let comments = 0
  const deadline = Date.now() + 20_000
  if (!until(events, comments)) {
    for await (const frames of sseFrames(res.body!)) {
      for (const { comments: c, fields } of frames) {
        comments += c
        if (fields.data !== undefined) events.push({ id: Number(fields.id), event: fields.event ?? "message", data: JSON.parse(fields.data) })
      }
      if (until(events, comments) || Date.now() >= deadline) break
    }
  }
  controller.abort()
  return { events, comments }
}

/** The main path, lean: sign up (open signup), verify, log in, chat, stream the turn, cancel, delete. */
export const onboardAndChat = async (s: TestServer, name: string, invite?: string) => {
  const user = await onboard(s, name, invite)
  const token = user.access
  const chat = await request(s, "POST", "/v1/chats", { token, body: { title: "Hello" } })
  expect(chat.status).toBe(201)
  const chatId = chat.body.id as string
  const posted = await request(s, "POST", `/v1/chats/${chatId}/messages`, { token, body: { client_message_id: "c1", text: "hi" } })
  expect(posted.status).toBe(202)
  const { events } = await readEvents(s, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.event === "done" || e.event === "error"))
  expect(events.at(-1)!.event).toBe("done")
  const resumed = await readEvents(s, `/v1/chats/${chatId}/events`, token, (es) => es.some((e) => e.event === "done"), { "last-event-id": String(events[0]!.id) })
  expect(resumed.events.map((e) => e.id)).toEqual(events.slice(1).map((e) => e.id))
  const second = await request(s, "POST", `/v1/chats/${chatId}/messages`, { token, body: { client_message_id: "c2", text: "again" } })
  expect(second.status).toBe(202)
  const cancel = await request(s, "POST", `/v1/chats/${chatId}/cancel`, { token, body: { turn_id: second.body.turn_id } })
  expect(cancel.status).toBe(200)
  expect((await request(s, "DELETE", `/v1/chats/${chatId}`, { token })).status).toBe(204)
  expect((await request(s, "GET", `/v1/chats/${chatId}`, { token })).status).toBe(404)
  return user
}
