/**
 * Scale-out and rolling restarts under chat load, short (the long run is `npm run bench:scale`,
 * figures in bench/RESULTS.md): a gateway and 2 runners on Postgres, chats posting steadily and
 * following their events over SSE; a third runner joins, one runner is restarted with SIGTERM
 * (it hands its shards over before exiting), another is killed with SIGKILL. No accepted post is
 * lost, no turn runs twice to completion, every credit hold is settled or released once, the
 * ledger balances, every turn ends and its chat hears of it. The worst wait of a chat for its next
 * event is printed; the 10 s target is asserted by the long run (`npm run bench:scale` exits
 * non-zero above it). Here the bound is looser: this test shares two cores with the rest of the
 * suite, and what it guards is the stall (a chat that never hears of its turn again).
 * How long each SIGTERM stop took is printed (bin/cluster.test.ts asserts that a stop does not
 * wait for chats' open event streams).
 */
import { describe, expect, it } from "vitest"
import { runScale } from "./testing/scale.ts"

describe("runners scaled and restarted under chat load", () => {
  it("lose nothing, run nothing twice and never leave a chat waiting 10 s", async () => {
    const result = await runScale({
      runners: 2,
      chats: 6,
      postEveryMs: 200,
      settleMs: 2_000,
      steps: [{ _tag: "add" }, { _tag: "restart", runner: 0 }, { _tag: "kill", runner: 1 }],
      // the processes' logs, to read after a failure
      ...(process.env.SCALE_LOG_DIR ? { logDir: process.env.SCALE_LOG_DIR } : {}),
      log: (line) => process.stdout.write(line + "\n")
    })
    process.stdout.write(
      `\n[scale] posts=${result.posts} done=${result.turns.done} failed=${result.turns.failed} restarted=${result.restarted} ` +
        `worst_gap_ms=${result.worstGapMs} p99_gap_ms=${result.p99GapMs} steps=${JSON.stringify(result.steps)}\n`
    )
    expect(result.problems).toEqual([])
    expect(result.posts).toBeGreaterThan(20)
    expect(result.turns.running).toBe(0)
    expect(result.worstGapMs).toBeLessThan(45_000)
  }, 600_000)
})
