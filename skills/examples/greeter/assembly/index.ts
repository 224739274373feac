// Example skill app "greeter": config, UTF-8 text in and out, per-unit pricing.
import { config, fail, inputJson, JsonKind, JsonObject, JsonValue, outputJson } from "../../../sdk/assembly/troupe"

/** Skill `greet`: "<greeting>, <name>!" with the install's configured greeting. */
export function greet(): i32 {
  const input = inputJson()
  if (input === null) return fail("the input is not JSON")
  const name = input.getString("name")
  if (name === null) return fail("name is required")
  const greeting = config("greeting")
  const text = (greeting === null ? "Hello" : greeting) + ", " + name + "!"
  outputJson(new JsonObject().set("greeting", JsonValue.string(text)))
  return 0
}

function isSpace(c: i32): bool {
  return c == 32 || c == 9 || c == 10 || c == 13 || c == 0xa0 || c == 0x3000
}

/** Skill `stats`: characters (code points), words and UTF-8 bytes of each text. */
export function stats(): i32 {
  const input = inputJson()
  if (input === null) return fail("the input is not JSON")
  const texts = input.get("texts")
  if (texts === null || texts.kind != JsonKind.Array) return fail("texts must be an array")
  const results = new Array<JsonValue>()
  for (let t = 0; t < texts.items.length; t++) {
    const item = texts.items[t]
    if (!item.isString()) return fail("texts must contain strings")
    const s = item.str
    let characters = 0
    let words = 0
    let inWord = false
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) i++
      characters++
      if (isSpace(c)) inWord = false
      else if (!inWord) {
        inWord = true
        words++
      }
    }
    results.push(
      new JsonObject()
        .set("characters", JsonValue.number(<f64>characters))
        .set("words", JsonValue.number(<f64>words))
        .set("bytes", JsonValue.number(<f64>String.UTF8.byteLength(s)))
    )
  }
  outputJson(new JsonObject().set("results", JsonValue.array(results)))
  return 0
}
