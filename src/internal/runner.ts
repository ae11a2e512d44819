/**
 * The core of `runTrainer`: build the SDK layer, run the program, and whatever happened
 * (success, failure, interruption by a signal) settle the job's outcome with the backend
 * before the layer closes (which ends ClearML by the same outcome and drains the report
 * outbox), all within the shutdown budget.
 */
import type { HttpClient } from "@effect/platform"
import { Cause, type Config, ConfigProvider, Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { Callback, type CallbackOperation, type CallbackStartedReport } from "../Callback.js"
import { ClearML } from "../ClearML.js"
import { classifyCause, type ConfigError, describeCause, type ErrorType } from "../Errors.js"
import { JobContext, type JobVariables, makeJobContext } from "../JobContext.js"
import {
  callbackMaxRetriesConfig,
  callbackRetryDelayConfig,
  callbackShutdownBudgetConfig,
  callbackUrlConfig,
  jobIdentityConfig,
  taskTypeConfig
} from "./envSections.js"
import { ReportOutbox } from "../Outbox.js"
import { outcomeSideWork as sideWork } from "./bestEffort.js"
import type { TrainerOutcome, TrainerRunOptions } from "../Runner.js"
import { TrainerSdk, type TrainerServices } from "../TrainerSdk.js"
import { completionWithUploads } from "./checkpointUploads.js"
import { deliveryReportsOnStderr } from "./shutdown.js"

const outcome = (
  status: TrainerOutcome["status"],
  delivered: boolean,
  failure?: { readonly errorType: ErrorType; readonly message: string }
): TrainerOutcome => ({
  exitCode: !delivered ? 2 : status === "completed" ? 0 : 1,
  status,
  errorType: failure?.errorType,
  message: failure?.message,
  delivered
})

/** The start report the runner sends (or fills in): the options' operation (else the job's kind) and planned epochs. */
const startOf = (options: TrainerRunOptions, kind: CallbackOperation): CallbackStartedReport => ({
  operation: options.operation ?? kind,
  ...(options.totalEpochs === undefined ? {} : { totalEpochs: options.totalEpochs })
})

/** The runner's own start report, before the program runs; the ClearML task is marked started in the background. */
const startReport = (options: TrainerRunOptions, scope: Scope.Scope) =>
  options.reportStarted === false ? Effect.void : Effect.gen(function*() {
    const callback = yield* Callback
    const clearml = yield* ClearML
    const ctx = yield* JobContext
    yield* callback.reportStarted(startOf(options, ctx.kind))
    yield* Effect.forkIn(clearml.started, scope)
  })

/**
 * Settles the outcome with the services of the built layer, within the shutdown budget
 * (which starts here, or at the signal that stopped the program). An outcome the program
 * already reported is kept, whatever happens after it: the runner only waits for its
 * delivery (a self-reported failure never turns into a completion). Otherwise it fills in
 * the start report when the program never sent it, and reports a failure (classified, with
 * the pretty cause as the traceback) or, for training that succeeded, a completion. The
 * outbox delivers everything queued before the outcome first (progress, logs); ClearML is
 * ended after, for a bounded time.
 */
const settle = <A, E>(exit: Exit.Exit<A, E>, options: TrainerRunOptions) =>
  Effect.gen(function*() {
    const sdk = yield* Effect.serviceOption(TrainerSdk)
    const callback = yield* Callback
    const clearml = yield* ClearML
    const ctx = yield* JobContext
    const outbox = yield* ReportOutbox
    yield* outbox.beginShutdown
    const state = yield* callback.lifecycle

    /** The start report the backend expects before an outcome (queued; fails only for an invalid report). */
    const ensureStarted = state.started ? Effect.void : callback.reportStarted(startOf(options, ctx.kind)).pipe(
      Effect.catchAll((error) => Effect.logWarning("Start report not queued", error.message))
    )
    /** The outcome the program reported itself: kept, and waited for. */
    const reported = (status: TrainerOutcome["status"], failure?: { readonly errorType: ErrorType; readonly message: string }) =>
      Effect.map(callback.awaitOutcome, (delivered) => outcome(status, delivered, failure))

    return yield* Exit.matchEffect(exit, {
      onSuccess: () => {
        if (state.outcome !== undefined) return reported(state.outcome)
        const operation = state.started ? state.operation : options.operation ?? ctx.kind
        if (operation !== "training") {
          // Only training has a default outcome (a completion without metrics); an inference,
          // export or evaluation without its results would leave the job running forever.
          const failure = {
            errorType: "UnknownError" as const,
            message: `The ${operation} program ended without reporting its results`
          }
          return Effect.gen(function*() {
            yield* Effect.logError(`${failure.message}; reporting the job failed`)
            yield* ensureStarted
            return yield* callback.reportFailed(failure).pipe(
              Effect.as(outcome("failed", true, failure)),
              Effect.catchAll((error) =>
                Effect.as(Effect.logError("Failure report not delivered", error.message), outcome("failed", false, failure))
              ),
              Effect.zipLeft(sideWork(clearml.failed(`[${failure.errorType}] ${failure.message}`)))
            )
          })
        }
        return Effect.gen(function*() {
          yield* ensureStarted
          // What hooks queued and the background checkpoint uploads go out first; the completion carries them.
          const completion = Option.isSome(sdk)
            ? completionWithUploads({ finalMetrics: {} }, yield* sdk.value.awaitCheckpointUploads)
            : { finalMetrics: {} }
          return yield* callback.reportCompleted(completion).pipe(
            Effect.as(outcome("completed", true)),
            Effect.catchAll((error) =>
              Effect.as(Effect.logError("Completion report not delivered", error.message), outcome("completed", false))
            )
          )
        })
      },
      onFailure: (cause) =>
        Effect.gen(function*() {
          const stopped = Cause.isInterruptedOnly(cause)
          const failure = { errorType: classifyCause(cause), message: describeCause(cause) }
          const status = stopped ? "stopped" as const : "failed" as const
          const line = `[${failure.errorType}] ${failure.message}`
          if (state.outcome === "completed") {
            yield* Effect.logWarning(`The program ${status === "stopped" ? "was stopped" : "failed"} after reporting completion; the job stays completed: ${line}`)
            return yield* reported("completed")
          }
          yield* Effect.logError(`Trainer ${status}: ${line}`, cause).pipe(
            Effect.annotateLogs({ event_type: "error", error_type: failure.errorType })
          )
          const endClearML = sideWork(stopped ? clearml.stopped(line) : clearml.failed(line))
          if (state.outcome === "failed") {
            yield* Effect.logWarning("The program failed after reporting its failure; no second outcome is sent")
            return yield* Effect.zipLeft(reported(status, failure), endClearML)
          }
          yield* ensureStarted
          if (Option.isSome(sdk)) yield* sideWork(sdk.value.awaitCheckpointUploads)
          const result = yield* callback.reportFailed({ ...failure, traceback: Cause.pretty(cause) }).pipe(
            Effect.as(outcome(status, true, failure)),
            Effect.catchAll((error) =>
              Effect.as(Effect.logError("Failure report not delivered", error.message), outcome(status, false, failure))
            )
          )
          return yield* Effect.as(endClearML, result)
        })
    })
  })

/**
 * A delivery setting for the setup failure report, by its own rule; when the variable is
 * invalid (it may be what broke the setup) its default, i.e. the same rule over an empty
 * environment.
 */
const settingOrDefault = <A>(config: Config.Config<A>): Effect.Effect<A> =>
  Effect.orElse(config, () => Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map()))).pipe(Effect.orDie)

/** Where a job's kind-specific variables could not be read: the setup failure report needs only the kind and id. */
const unreadUri = { uri: "", bucket: "", key: "" }

/** The job of a setup failure report: its kind and id by the job context's rule, the kind's other variables left unread. */
const jobForSetupFailure = Effect.map(Effect.option(jobIdentityConfig), Option.map(({ jobId: id, kind }): JobVariables => {
  const trainingJobId = Option.none<number>()
  return kind === "training"
    ? { kind, jobId: id, datasetS3Uri: Option.none() }
    : kind === "inference"
    ? { kind, inferenceJobId: id, checkpointS3Uri: unreadUri, imagesS3Uri: unreadUri, trainingJobId }
    : kind === "export"
    ? { kind, exportJobId: id, trainingJobId: 0, checkpointS3Uri: unreadUri, exportFormat: "" }
    : { kind, testRunId: id, checkpointS3Uri: unreadUri, datasetS3Uri: unreadUri, trainingJobId }
}))

/**
 * A layer that could not be built (the environment is invalid): report the failure with
 * just `CALLBACK_URL` and the job id variable of its kind when those are valid, so the
 * platform hears of it. Every setting is read through the job context's own `Config`
 * definitions; an invalid retry, backoff or budget setting falls back to its default.
 */
export const settleSetupFailure = (
  cause: Cause.Cause<unknown>,
  options: TrainerRunOptions
): Effect.Effect<TrainerOutcome, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const failure = { errorType: classifyCause(cause), message: describeCause(cause) }
    yield* Effect.logError(`Trainer setup failed: [${failure.errorType}] ${failure.message}`)
    const callbackUrl = yield* Effect.option(callbackUrlConfig)
    const job = yield* jobForSetupFailure
    if (Option.isNone(callbackUrl) || Option.isNone(job)) return outcome("failed", false, failure)
    const context = makeJobContext({
      callbackUrl: callbackUrl.value,
      job: job.value,
      taskType: yield* settingOrDefault(taskTypeConfig),
      callbackMaxRetries: yield* settingOrDefault(callbackMaxRetriesConfig),
      callbackRetryDelay: yield* settingOrDefault(callbackRetryDelayConfig),
      callbackShutdownBudget: yield* settingOrDefault(callbackShutdownBudgetConfig)
    })
    return yield* Effect.gen(function*() {
      const callback = yield* Callback
      yield* Effect.flatMap(ReportOutbox, (outbox) => outbox.beginShutdown)
      yield* callback.reportStarted({ operation: options.operation ?? job.value.kind }).pipe(Effect.ignore)
      return yield* callback.reportFailed({ ...failure, traceback: Cause.pretty(cause) })
    }).pipe(
      Effect.as(outcome("failed", true, failure)),
      Effect.catchAllCause((reportCause) =>
        Effect.as(
          Effect.logError("Failure report not delivered", Cause.pretty(reportCause).split("\n")[0]),
          outcome("failed", false, failure)
        )
      ),
      Effect.provide(Callback.layerConfig(context).pipe(Layer.provideMerge(ReportOutbox.layerConfig(context))))
    )
  })

/**
 * Runs `effect` interruptibly in a child fiber and waits for it: the reporting keeps working
 * timeouts and background fibers of its own, while the interruption that stopped the
 * program (a signal) cannot cut it short.
 */
const shielded = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.fork(Effect.interruptible(effect)), Fiber.join)

/**
 * Runs `program` over `layer`, settles the outcome (see `settle`) even when the program is
 * interrupted, then closes the layer with the program's exit (so ClearML and the log
 * shipper see the same outcome); what the outbox could not deliver by then is said on
 * stderr. Never fails; the returned outcome carries the exit code.
 */
export const runTrainerWith = <A, E>(
  layer: Layer.Layer<TrainerServices, ConfigError>,
  program: Effect.Effect<A, E, TrainerServices>,
  options: TrainerRunOptions = {}
): Effect.Effect<TrainerOutcome, never, HttpClient.HttpClient> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const built = yield* Effect.exit(restore(Layer.buildWithScope(Layer.provideMerge(layer, deliveryReportsOnStderr), scope)))
      let result: TrainerOutcome
      if (Exit.isFailure(built)) {
        yield* Scope.close(scope, built)
        result = yield* shielded(Effect.provide(settleSetupFailure(built.cause, options), deliveryReportsOnStderr))
      } else {
        const exit = yield* Effect.exit(
          restore(Effect.provide(Effect.zipRight(startReport(options, scope), program), built.value))
        )
        result = yield* shielded(Effect.provide(settle(exit, options), built.value))
        // Shielded too: the finalizers' own deadlines must not be cut short by the signal's interruption.
        yield* shielded(Scope.close(scope, exit))
      }
      options.onOutcome?.(result)
      return result
    })
  )
