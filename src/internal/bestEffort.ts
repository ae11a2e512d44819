/**
 * Best-effort side work with a deadline: flushing logs or ending the ClearML task must never
 * hold up what comes next (the job's outcome report, the process exit) for long.
 */
import { type Duration, Effect } from "effect"

/**
 * Runs `effect` for at most `timeout`, ignoring its outcome. It is made interruptible
 * first, so the deadline holds even inside a finalizer (finalizers are uninterruptible, and
 * a plain `Effect.timeout` there would wait for the work to finish).
 */
export const bestEffortWithin = (timeout: Duration.DurationInput) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<void, never, R> =>
  effect.pipe(Effect.interruptible, Effect.timeout(timeout), Effect.ignore)

/**
 * A log flush or ClearML update made just before or after the job's outcome report: at most
 * 10 s, so it never holds the report up.
 */
export const outcomeSideWork = bestEffortWithin("10 seconds")
