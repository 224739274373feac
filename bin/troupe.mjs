#!/usr/bin/env node
// Runs the TypeScript entry point on Node through tsx's loader (Deno runs bin/main.ts directly).
import { register } from "tsx/esm/api"

register()
await import("./main.ts")
