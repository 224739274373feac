/**
 * JSON Schema (draft 2020-12 subset that Ajv's default draft-07 build understands, plus formats)
 * for skill inputs and outputs: compiled once per schema, errors reported with field paths.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv"
import addFormatsModule from "ajv-formats"
import type { FieldIssue } from "../Errors.ts"

const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default

const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: true })
addFormats(ajv)

const compiled = new WeakMap<object, ValidateFunction>()

const compile = (schema: object): ValidateFunction => {
  let validate = compiled.get(schema)
  if (!validate) {
    validate = ajv.compile(schema)
    compiled.set(schema, validate)
  }
  return validate
}

/** Why `schema` is not a usable JSON Schema, or `undefined` when it is. */
export const check = (schema: object): string | undefined => {
  try {
    compile(schema)
    return undefined
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}

const issueOf = (e: ErrorObject): FieldIssue => {
  const base = e.instancePath.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
  const missing = e.keyword === "required" ? (e.params as { missingProperty?: string }).missingProperty : undefined
  const extra = e.keyword === "additionalProperties" ? (e.params as { additionalProperty?: string }).additionalProperty : undefined
  const path = [...base, ...(missing ? [missing] : []), ...(extra ? [extra] : [])]
  const message = missing ? "is required" : extra ? "is not allowed" : (e.message ?? "is invalid")
  return { path: path.length === 0 ? "(root)" : path.join("."), message }
}

/** Check a value against a schema: the problems, with their paths (empty when valid). */
export const validate = (schema: object, value: unknown): ReadonlyArray<FieldIssue> => {
  const fn = compile(schema)
  if (fn(value)) return []
  return (fn.errors ?? []).map(issueOf)
}

/** `path: message; …` for a few issues. */
export const summarize = (issues: ReadonlyArray<FieldIssue>): string =>
  issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`).join("; ") + (issues.length > 5 ? ` (and ${issues.length - 5} more)` : "")
