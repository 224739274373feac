/** The signed-in user's chats and mates, shared by the chat list and the chat pages. */
import { get, query } from "./api.ts"
import type { Chat, Mate } from "./types.ts"

export const chatList = $state<{ chats: Chat[]; nextBefore: number | null; loaded: boolean; error: string | null }>({
  chats: [],
  nextBefore: null,
  loaded: false,
  error: null
})

/** Read the first page of chats again. */
export const reloadChats = async (): Promise<void> => {
  try {
    const page = await get<{ chats: Chat[]; next_before: number | null }>(`/v1/chats${query({ limit: 50 })}`)
    chatList.chats = page.chats
    chatList.nextBefore = page.next_before
    chatList.error = null
  } catch (e) {
    chatList.error = e instanceof Error ? e.message : "Could not load your chats."
  } finally {
    chatList.loaded = true
  }
}

/** Read the next (older) page. */
export const moreChats = async (): Promise<void> => {
  if (chatList.nextBefore === null) return
  const page = await get<{ chats: Chat[]; next_before: number | null }>(`/v1/chats${query({ limit: 50, before: chatList.nextBefore })}`)
  const known = new Set(chatList.chats.map((c) => c.id))
  chatList.chats.push(...page.chats.filter((c) => !known.has(c.id)))
  chatList.nextBefore = page.next_before
}

/** Put a chat's newest summary in the list (first when new). */
export const upsertChat = (chat: Chat) => {
  const i = chatList.chats.findIndex((c) => c.id === chat.id)
  if (i === -1) chatList.chats.unshift(chat)
  else chatList.chats[i] = chat
}

export const removeChat = (id: string) => {
  chatList.chats = chatList.chats.filter((c) => c.id !== id)
}

let mates: Promise<Mate[]> | undefined

/** The user's mates (cached until `refresh`). */
export const loadMates = (refresh = false): Promise<Mate[]> => {
  if (refresh || !mates) {
    mates = get<{ mates: Mate[] }>("/v1/mates").then((r) => r.mates)
    mates.catch(() => (mates = undefined))
  }
  return mates
}
