/**
 * Background work that gives way to interactive work on the same event loop.
 *
 * A chat's turn (the mate's output journaled batch by batch, credit holds, the reply) is long
 * and asynchronous; a request (a post, a page, a stream's next frame) is short and someone is
 * waiting for it. On Effect's default scheduler both kinds of fibers resume in the order their
 * I/O completed, so at load a post waits behind whole bursts of turn steps. Fibers run with
 * `inBackground` resume on a scheduler of their own instead: its queue is drained from the event
 * loop's check phase (`setImmediate`), after the I/O that was ready, in slices of at most
 * `sliceMs`; a background fiber that is still running when its slice is over yields. So the loop
 * polls for I/O at least every slice, whatever the background is doing, and background work still
 * gets a slice on every turn of the loop (it is throttled, never starved).
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Scheduler from "effect/Scheduler"
import { setImmediate } from "node:timers"

/** Fiber steps between two looks at the clock in a slice (reading it costs more than a step). */
const stepsBetweenClockReads = 32

/** A FIFO scheduler drained in time slices from the check phase of the event loop. */
export class SlicedScheduler implements Scheduler.Scheduler {
  #tasks: Array<Scheduler.Task> = []
  #head = 0
  #pending = false
  /** When the running slice ends (0: no slice running, so a fiber running outside one yields). */
  #sliceEnd = 0
  /** Slices run so far, and the time spent in them (ms): how much background work this process does. */
  slices = 0
  busyMs = 0

  constructor(
    /** How long one slice may run, in ms. */
    readonly sliceMs: number = 2,
    /** A fiber yields after this many steps even inside its slice (as on the default scheduler). */
    readonly maxOpsBeforeYield: number = 2048
  ) {}

  /** Tasks waiting for a slice. */
  get queued(): number {
    return this.#tasks.length - this.#head
  }

  scheduleTask(task: Scheduler.Task, _priority: number): void {
    this.#tasks.push(task)
    this.#schedule()
  }

  shouldYield(fiber: Fiber.RuntimeFiber<unknown, unknown>): number | false {
    const steps = fiber.currentOpCount
    if (steps > this.maxOpsBeforeYield) return 0
    return steps % stepsBetweenClockReads === 0 && performance.now() >= this.#sliceEnd ? 0 : false
  }

  #schedule() {
    if (this.#pending) return
    this.#pending = true
    setImmediate(this.#drain)
  }

  readonly #drain = () => {
    this.#pending = false
    const start = performance.now()
    const end = start + this.sliceMs
    this.#sliceEnd = end
    try {
      while (this.#head < this.#tasks.length) {
        const task = this.#tasks[this.#head]!
        this.#tasks[this.#head++] = undefined as unknown as Scheduler.Task
        task()
        if (performance.now() >= end) break
      }
    } finally {
      this.#sliceEnd = 0
      this.slices++
      this.busyMs += performance.now() - start
      if (this.#head === this.#tasks.length) {
        this.#tasks = []
        this.#head = 0
      } else if (this.#head > 1024 && this.#head * 2 > this.#tasks.length) {
        this.#tasks = this.#tasks.slice(this.#head)
        this.#head = 0
      }
      if (this.queued > 0) this.#schedule()
    }
  }
}

/** The process's background scheduler. */
export const background: SlicedScheduler = new SlicedScheduler()

/**
 * Run an effect (and the fibers it forks) as background work: it resumes after the interactive
 * work that was ready, in slices (see the module's comment).
 */
export const inBackground = <A, E, R>(effect: Effect.Effect<A, E, R>, scheduler: Scheduler.Scheduler = background): Effect.Effect<A, E, R> =>
  Effect.withScheduler(effect, scheduler)

/**
 * Interactive work first, background work after: the fibers of an effect run with this scheduler
 * resume as interactive work (Effect's default scheduler) until `demote` is called, then on
 * `later` (the background). A chat turn starts this way: its start (the hold, the history, the
 * model request) and its first output are what someone waits for; once that is out, the rest of
 * the turn streams as background work and gives way to other turns' starts.
 */
export class Phased implements Scheduler.Scheduler {
  #interactive = true

  constructor(
    readonly later: Scheduler.Scheduler = background,
    readonly first: Scheduler.Scheduler = Scheduler.defaultScheduler
  ) {}

  /** Whether the fibers still run as interactive work. */
  get interactive(): boolean {
    return this.#interactive
  }

  /** From now on, the fibers resume as background work. */
  demote(): void {
    this.#interactive = false
  }

  scheduleTask(task: Scheduler.Task, priority: number, fiber?: Fiber.RuntimeFiber<unknown, unknown>): void {
    if (this.#interactive) this.first.scheduleTask(task, priority, fiber)
    else this.later.scheduleTask(task, priority, fiber)
  }

  shouldYield(fiber: Fiber.RuntimeFiber<unknown, unknown>): number | false {
    return this.#interactive ? this.first.shouldYield(fiber) : this.later.shouldYield(fiber)
  }
}
