import { sveltekit } from "@sveltejs/kit/vite"
import { defineConfig } from "vite"

export default defineConfig({
  plugins: [sveltekit()],
  build: { target: "es2022", reportCompressedSize: false },
  // `npm run dev -w web` proxies the API to a local `troupe start`
  server: {
    port: 18301,
    proxy: Object.fromEntries(["/v1", "/health", "/metrics", "/docs"].map((p) => [p, process.env.TROUPE_URL ?? "http://127.0.0.1:18300"]))
  }
})
