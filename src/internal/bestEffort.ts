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

/** The deadline of a log flush or ClearML update made just before or after the job's outcome report. */
export const outcomeSideWorkTimeout = "10 seconds"
