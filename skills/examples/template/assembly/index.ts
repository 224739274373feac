// Your skill. Each export named in manifest.json is a skill: it reads JSON input and writes JSON
// output with the helpers of ./troupe (a copy of Troupe's AssemblyScript SDK).
import { fail, inputJson, JsonObject, JsonValue, outputJson } from "../../../sdk/assembly/troupe"

/** Skill `hello`: greets someone by name. */
export function hello(): i32 {
  const input = inputJson()
  if (input === null) return fail("the input is not JSON")
  const name = input.getString("name")
  if (name === null) return fail("name is required")
  outputJson(new JsonObject().set("greeting", JsonValue.string("Hello, " + name + "!")))
  return 0
}
