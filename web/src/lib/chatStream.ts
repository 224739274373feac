/**
 * Following a chat's event stream (`GET /v1/chats/{id}/events`, Server-Sent Events) with resume:
 * every (re)connection asks for the events after the last sequence number seen, so a dropped
 * connection continues without a gap, and an event seen twice (a server that replays) is passed
 * on once. Read with `fetch` and `eventsource-parser` rather than `EventSource`, so every event
 * kind arrives (also kinds this app does not know yet), an expired session is refreshed instead
 * of failing the stream, and a silent connection (no heartbeat for 45 s) is replaced.
 */
import { createParser } from "eventsource-parser"
import { refreshSession } from "./api.ts"
import type { ChatEvent } from "./types.ts"

export type StreamState = "connecting" | "live" | "reconnecting" | "signed_out" | "gone"

export interface Follow {
  close: () => void
}

const idleMs = 45_000

/** Follow `chatId` after `after`; `onEvent` gets each event once, in order. */
export const followChat = (
  chatId: string,
  after: number,
  handlers: { onEvent: (event: ChatEvent) => void; onState: (state: StreamState, detail?: string) => void }
): Follow => {
  let last = after
  let closed = false
  let controller: AbortController | undefined
  let retryMs = 250

  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

  const run = async () => {
    let first = true
    while (!closed) {
      handlers.onState(first ? "connecting" : "reconnecting")
      first = false
      controller = new AbortController()
      let idle: ReturnType<typeof setTimeout> | undefined
      const touch = () => {
        clearTimeout(idle)
        idle = setTimeout(() => controller?.abort(), idleMs)
      }
      let received = false
      try {
        touch()
        const res = await fetch(`/v1/chats/${encodeURIComponent(chatId)}/events?after=${last}`, {
          headers: { accept: "text/event-stream" },
          credentials: "same-origin",
          cache: "no-store",
          signal: controller.signal
        })
        if (res.status === 401) {
          clearTimeout(idle)
          if (await refreshSession()) continue
          handlers.onState("signed_out")
          return
        }
        if (res.status === 404) {
          clearTimeout(idle)
          handlers.onState("gone", "This chat does not exist or was deleted.")
          return
        }
        if (!res.ok || !res.body) throw new Error(`status ${res.status}`)
        handlers.onState("live")
        let ended = false
        const parser = createParser({
          onEvent: (message) => {
            let data: unknown
            try {
              data = JSON.parse(message.data)
            } catch {
              return
            }
            const event = data as ChatEvent
            if (typeof event.seq !== "number") {
              // the stream's own end: the chat was deleted
              if (message.event === "error") {
                ended = true
                handlers.onState("gone", typeof (data as { message?: unknown }).message === "string" ? (data as { message: string }).message : undefined)
              }
              return
            }
            if (event.seq <= last) return
            last = event.seq
            received = true
            handlers.onEvent(event)
          }
        })
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
        while (!closed && !ended) {
          const { done, value } = await reader.read()
          if (done) break
          touch()
          parser.feed(value)
        }
        clearTimeout(idle)
        if (ended) {
          controller.abort()
          return
        }
      } catch {
        clearTimeout(idle)
        if (closed) return
      }
      if (received) retryMs = 250
      await sleep(retryMs)
      retryMs = Math.min(retryMs * 2, 5000)
    }
  }
  void run()
  return {
    close: () => {
      closed = true
      controller?.abort()
    }
  }
}
