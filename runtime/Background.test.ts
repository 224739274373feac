import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import { setImmediate } from "node:timers"
import { inBackground, SlicedScheduler } from "./Background.ts"

/** CPU-bound Effect work: `steps` fiber steps with no I/O in between. */
const burst = (steps: number) => Effect.forEach(Array.from({ length: steps }, (_, i) => i), (i) => Effect.sync(() => i * 2), { discard: true })

/** One trip through the event loop, as an I/O callback would make. */
const loopTrip = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** How many event-loop trips the caller completes while a burst forked (as given) runs. */
const tripsDuring = (fork: (effect: Effect.Effect<void>) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    let done = false
    const work = yield* Effect.fork(fork(Effect.zipRight(burst(300_000), Effect.sync(() => void (done = true)))))
    let trips = 0
    while (!done) {
      yield* loopTrip
      if (!done) trips++
    }
    yield* Fiber.join(work)
    return trips
  })

describe("background work", () => {
  it.live("lets the event loop serve requests while a long burst of background work runs", () =>
    Effect.gen(function*() {
      // on the default scheduler the burst holds the loop until it is done (control)
      expect(yield* tripsDuring((effect) => effect)).toBe(0)
      // as background work it runs in slices of 2 ms, and the loop goes round between them
      expect(yield* tripsDuring(inBackground)).toBeGreaterThan(3)
    }))

  it.live("runs the fibers a background effect forks in the background too, and finishes them all", () =>
    Effect.gen(function*() {
      const scheduler = new SlicedScheduler(1)
      const seen = yield* inBackground(
        Effect.forEach([1, 2, 3], (n) => Effect.zipRight(burst(20_000 * n), FiberRef.get(FiberRef.currentScheduler)), { concurrency: "unbounded" }),
        scheduler
      )
      expect(seen).toEqual([scheduler, scheduler, scheduler])
      expect(scheduler.queued).toBe(0)
      // what an operator sees of it (`troupe_background_*` on /metrics)
      expect(scheduler.slices).toBeGreaterThan(1)
      expect(scheduler.busyMs).toBeGreaterThan(0)
      expect(yield* FiberRef.get(FiberRef.currentScheduler)).not.toBe(scheduler)
    }))
})
