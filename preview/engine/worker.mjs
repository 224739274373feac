// Worker thread entry: Node 20 cannot load TypeScript by itself, so register tsx's loader first
// (Deno, and Node with native type stripping, import the module directly).
const nativeTs = typeof globalThis.Deno !== "undefined" || process.features?.typescript
if (!nativeTs) {
  const { register } = await import("tsx/esm/api")
  register()
}
await import("./worker.ts")
