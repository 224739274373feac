// Example skill app "notes": per-user storage through the host's kv_get/kv_set, and a per-install
// secret (secret_get) used to seal each note so a tampered store is detected.
import { config, fail, inputJson, JsonObject, JsonValue, Kv, outputJson, secret } from "../../../sdk/assembly/troupe"

/** FNV-1a over the secret and the text: a seal, not cryptography (this is an example). */
function seal(key: string, text: string): string {
  const bytes = Uint8Array.wrap(String.UTF8.encode(key + "\u0000" + text))
  let h: u32 = 2166136261
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]
    h *= 16777619
  }
  return h.toString(16)
}

function storageKey(key: string): string {
  const prefix = config("prefix")
  return (prefix === null ? "" : prefix) + key
}

/** Skill `remember` (a write): store a note under a key for the calling user. */
export function remember(): i32 {
  const input = inputJson()
  if (input === null) return fail("the input is not JSON")
  const key = input.getString("key")
  const text = input.getString("text")
  if (key === null || text === null) return fail("key and text are required")
  const vault = secret("vault_key")
  if (vault === null) return fail("the install has no vault_key secret")
  const status = Kv.set(storageKey(key), seal(vault, text) + ":" + text)
  if (status == 2) return fail("the note is too large for the store")
  if (status == 3) return fail("your notes are full")
  if (status != 0) return fail("the store is unavailable (" + status.toString() + ")")
  outputJson(new JsonObject().set("saved", JsonValue.boolean(true)).set("key", JsonValue.string(key)))
  return 0
}

/** Skill `recall`: the note stored under a key, or null; `verified` says the seal matches. */
export function recall(): i32 {
  const input = inputJson()
  if (input === null) return fail("the input is not JSON")
  const key = input.getString("key")
  if (key === null) return fail("key is required")
  const vault = secret("vault_key")
  if (vault === null) return fail("the install has no vault_key secret")
  const stored = Kv.get(storageKey(key))
  const out = new JsonObject().set("key", JsonValue.string(key))
  if (stored === null) {
    out.set("text", JsonValue.nul()).set("verified", JsonValue.boolean(false))
  } else {
    const colon = stored.indexOf(":")
    const text = colon < 0 ? "" : stored.substring(colon + 1)
    const verified = colon >= 0 && stored.substring(0, colon) == seal(vault, text)
    out.set("text", JsonValue.string(text)).set("verified", JsonValue.boolean(verified))
  }
  outputJson(out)
  return 0
}

/** Skill `forget` (a write): delete a note. */
export function forget(): i32 {
  const input = inputJson()
  if (input === null) return fail("the input is not JSON")
  const key = input.getString("key")
  if (key === null) return fail("key is required")
  if (Kv.remove(storageKey(key)) != 0) return fail("the store is unavailable")
  outputJson(new JsonObject().set("deleted", JsonValue.boolean(true)))
  return 0
}
