import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["runtime/**/*.test.ts", "entities/**/*.test.ts", "skills/**/*.test.ts", "gateway/**/*.test.ts", "preview/**/*.test.ts", "uploads/**/*.test.ts", "bin/**/*.test.ts", "deploy/**/*.test.ts", "web/src/**/*.test.ts", "web/tests/**/*.test.ts", "*.test.ts"],
    exclude: ["**/node_modules/**", "skills/examples/**/assembly/**", "skills/sdk/assembly/**"],
    pool: "forks",
    poolOptions: { forks: { singleFork: false, maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    reporters: process.env.CI ? ["verbose"] : ["default"]
  }
})
