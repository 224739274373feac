/**
 * Scale-out and rolling restarts under chat load (the long run; `npm run bench:scale`): a gateway
 * and 2 runners on Postgres, 30 chats with a post every 100 ms, then a third runner is added,
 * each runner is restarted in turn with SIGTERM, and one is killed with SIGKILL. Prints the worst
 * wait of any chat for its next event and what the database says; ends with one line of JSON.
 *
 * `SCALE_CHATS`, `SCALE_POST_EVERY_MS`, `SCALE_SETTLE_MS` change the load.
 */
import { runScale, type Step } from "../bin/testing/scale.ts"

const chats = Number(process.env.SCALE_CHATS ?? 30)
const postEveryMs = Number(process.env.SCALE_POST_EVERY_MS ?? 100)
const settleMs = Number(process.env.SCALE_SETTLE_MS ?? 10_000)
const steps: ReadonlyArray<Step> = [
  { _tag: "add" },
  { _tag: "restart", runner: 0 },
  { _tag: "restart", runner: 1 },
  { _tag: "restart", runner: 2 },
  { _tag: "kill", runner: 0 }
]

const result = await runScale({ runners: 2, chats, postEveryMs, settleMs, steps, log: (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`),
  logDir: process.env.SCALE_LOG_DIR,
  env: process.env.SCALE_LOG_LEVEL ? { TROUPE_LOG_LEVEL: process.env.SCALE_LOG_LEVEL } : {} })
process.stdout.write(
  `\n[scale] posts=${result.posts} done=${result.turns.done} failed=${result.turns.failed} cancelled=${result.turns.cancelled} running=${result.turns.running} ` +
    `restarted=${result.restarted} post_retries=${result.postRetries}\n` +
    `[scale] worst gap ${result.worstGapMs} ms (chat ${result.worstGapChat}); p99 ${result.p99GapMs} ms; waits > 5 s: ${result.gapsOver5s}; > 10 s: ${result.gapsOver10s}\n` +
    result.steps.map((s) => `[scale]   ${s.step} at ${s.atMs} ms (${s.tookMs} ms)`).join("\n") + "\n" +
    (result.problems.length > 0 ? `[scale] PROBLEMS:\n${result.problems.slice(0, 50).map((p) => `  ${p}`).join("\n")}\n` : "[scale] no problems\n")
)
process.stdout.write(JSON.stringify({
  bench: "scale",
  chats,
  post_every_ms: postEveryMs,
  posts: result.posts,
  turns_done: result.turns.done,
  turns_failed: result.turns.failed,
  turns_restarted: result.restarted,
  worst_gap_ms: result.worstGapMs,
  p99_gap_ms: result.p99GapMs,
  gaps_over_5s: result.gapsOver5s,
  gaps_over_10s: result.gapsOver10s,
  post_retries: result.postRetries,
  problems: result.problems.length,
  duration_ms: result.durationMs
}) + "\n")
process.exit(result.problems.length > 0 || result.worstGapMs >= 10_000 ? 1 : 0)
