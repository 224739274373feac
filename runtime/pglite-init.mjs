// Initialises an embedded database's empty data dir and exits (runtime/PgliteClient.ts runs it as
// a short-lived child process on a fresh start, so the memory initdb or unpacking the template
// takes is given back with the process). Plain JavaScript: it runs without tsx.
//   node runtime/pglite-init.mjs <dataDir> <template.tar.gz or ""> <startParams as JSON>
import { PGlite } from "@electric-sql/pglite"
import { readFileSync } from "node:fs"

const [dataDir, template, params] = process.argv.slice(2)
const startParams = JSON.parse(params)
const db = await PGlite.create(dataDir, { startParams, ...(template ? { loadDataDir: new Blob([readFileSync(template)]) } : {}) })
await db.close()
