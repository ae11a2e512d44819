/**
 * Reporting from synchronous code (a training framework's epoch-end hook): each call puts
 * its report on an ordered queue and returns at once; one fiber sends them in order. This
 * is the SDK's one synchronous enqueue point, so a durable outbox can take it over whole.
 */
import { Cause, Deferred, Effect, Exit, Queue, Runtime, type Scope } from "effect"
import { describeCause } from "../Errors.js"

/** The queue of reports made from synchronous code. */
export interface HookQueue {
  /** Queues `report` (never blocks, never throws); its failure is logged as a warning. */
  readonly push: (what: string, report: Effect.Effect<void, unknown>) => void
  /** Waits until everything queued before this call has been sent (or has failed). */
  readonly drain: Effect.Effect<void>
}

/** Builds the queue; its fiber lives in the surrounding scope. */
export const makeHookQueue: Effect.Effect<HookQueue, never, Scope.Scope> = Effect.gen(function*() {
  const queue = yield* Queue.unbounded<Effect.Effect<void>>()
  yield* Effect.forkScoped(Effect.forever(Effect.flatten(Queue.take(queue))))
  return {
    push: (what, report) => {
      queue.unsafeOffer(
        Effect.catchAllCause(report, (cause) => Effect.logWarning(`${what} from a synchronous hook not sent: ${describeCause(cause)}`))
      )
    },
    drain: Effect.gen(function*() {
      const done = yield* Deferred.make<void>()
      yield* Queue.offer(queue, Deferred.succeed(done, undefined))
      yield* Deferred.await(done)
    })
  }
})

/**
 * Runs `effect` on `runtime` for Promise code (a program edge): resolves with its value or
 * rejects with the SDK's own error instance (never a `FiberFailure` wrapper).
 */
export const promiseOf = <A, E, R>(runtime: Runtime.Runtime<R>, effect: Effect.Effect<A, E, R>): Promise<A> =>
  Runtime.runPromiseExit(runtime)(effect).then((exit) =>
    Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause))
  )
