import { runScale } from "../bin/testing/scale.ts"
const result = await runScale({ runners: 2, chats: 20, postEveryMs: 100, settleMs: 3000,
  steps: [{ _tag: "restart", runner: 0 }, { _tag: "restart", runner: 1 }, { _tag: "restart", runner: 0 }, { _tag: "restart", runner: 1 }],
  log: (line) => process.stdout.write(line + "\n"), logDir: process.env.DBG_DIR,
  env: { TROUPE_ENTITY_TERMINATION_TIMEOUT: "20 seconds" } })
process.stdout.write(JSON.stringify(result.steps.map((s) => s.stoppedMs)) + " worst " + result.worstGapMs + " problems " + result.problems.length + "\n")
