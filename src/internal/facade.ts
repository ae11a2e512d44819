/**
 * The Promise facade over one `ManagedRuntime` of the trainer layer: async methods that
 * resolve with the service's result or reject with the SDK's own error instance (never a
 * `FiberFailure` wrapper).
 */
import { Cause, Context, Duration, Effect, Exit, Fiber, Layer, ManagedRuntime, Option, Runtime } from "effect"
import type { ConfigError } from "../Errors.js"
import type { TrainerClient } from "../TrainerClient.js"
import { TrainerSdk, type TrainerHooks, type TrainerSdkService, type TrainerServices } from "../TrainerSdk.js"
import { outcomeSideWork as sideWork } from "./bestEffort.js"
import { promiseOf } from "./hookQueue.js"
import { deliveryReportsOnStderr, handleShutdownSignal } from "./shutdown.js"

/** How a client runs an operation: resolves with its value or rejects with the SDK's own error. */
export type ClientRun = <A, E>(effect: Effect.Effect<A, E, TrainerServices>) => Promise<A>

/**
 * The client over a running `runtime` of the trainer layer; `close` releases it, `run`
 * runs each operation (default: straight on the runtime).
 */
export const makeClientOver = (
  runtime: Runtime.Runtime<TrainerServices>,
  sdk: TrainerSdkService,
  close: () => Promise<void>,
  run: ClientRun = (effect) => promiseOf(runtime, effect)
): TrainerClient => {
  return {
    context: sdk.context,
    workDir: sdk.workDir,
    reportStarted: (report) => run(sdk.reportStarted(report)),
    reportProgress: (report) => run(sdk.reportProgress(report)),
    reportValidation: (report) => run(sdk.reportValidation(report)),
    reportCompleted: (report) => run(sdk.reportCompleted(report)),
    reportFailed: (report) => run(sdk.reportFailed(report)),
    reportInferenceCompleted: (report) => run(sdk.reportInferenceCompleted(report)),
    reportExportCompleted: (report) => run(sdk.reportExportCompleted(report)),
    reportEvaluationResults: (report) => run(sdk.reportEvaluationResults(report)),
    uploadCheckpoint: (localPath, checkpointType, metrics, options) =>
      run(sdk.uploadCheckpoint(localPath, checkpointType, metrics, options)),
    enqueueCheckpoint: (localPath, checkpointType, options) =>
      run(Effect.map(sdk.enqueueCheckpoint(localPath, checkpointType, options), (handle) => ({
        checkpointType: handle.checkpointType,
        epoch: handle.epoch,
        status: () => Runtime.runSync(runtime)(handle.status),
        result: () => run(handle.result)
      }))),
    awaitCheckpointUploads: () => run(sdk.awaitCheckpointUploads),
    resume: () => run(Effect.map(sdk.resume, Option.getOrUndefined)),
    uploadFile: (localPath, key, options) => run(sdk.uploadFile(localPath, key, options)),
    downloadDataset: (datasetId, destDir, options) => run(sdk.downloadDataset(datasetId, destDir, options)),
    downloadCheckpoint: (uri, localPath) => run(sdk.downloadCheckpoint(uri, localPath)),
    downloadDatasetWithCache: (options) => run(sdk.downloadDatasetWithCache(options)),
    convertDataset: (options) => run(sdk.convertDataset(options)),
    log: (level, message, options) => run(sdk.log(level, message, options)),
    flushLogs: () => run(sdk.flushLogs),
    hooks: sdk.hooks,
    services: sdk,
    service: <I, S>(tag: Context.Tag<I, S>): S =>
      Option.getOrThrowWith(
        Context.getOption(runtime.context as Context.Context<unknown>, tag as Context.Tag<unknown, S>),
        () => new Error(`The trainer layer has no ${tag.key} service`)
      ),
    runEffect: run,
    close
  }
}

/**
 * On SIGTERM/SIGINT (Kubernetes stopping the pod), as `runTrainer` does (after the in-flight
 * operations were interrupted, see `makeTrainerClient`), within the shutdown
 * budget counted from the signal: a job whose outcome was already reported keeps it (exit 0
 * after a completion, 1 after a failure, once delivered); otherwise the job is reported
 * failed (its start first if it never was) after everything queued before, and ClearML
 * stopped. Returns the exit code: 1, or 2 when the outcome was not delivered in time.
 */
const stopOnSignal = (sdk: TrainerSdkService, signal: NodeJS.Signals): Effect.Effect<0 | 1 | 2> =>
  Effect.gen(function*() {
    const state = yield* sdk.callback.lifecycle
    if (state.outcome !== undefined) {
      const delivered = yield* sdk.callback.awaitOutcome
      return !delivered ? 2 : state.outcome === "completed" ? 0 : 1
    }
    const message = `Interrupted (the job was stopped by ${signal})`
    yield* sdk.logs.error(`Trainer stopped: [ResourceError] ${message}`, { source: "error" })
    if (!state.started) yield* Effect.ignore(sdk.callback.reportStarted({ operation: state.operation }))
    const delivered = yield* sdk.callback.reportFailed({ errorType: "ResourceError", message }).pipe(
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    )
    yield* sideWork(sdk.clearml.stopped(`[ResourceError] ${message}`))
    return delivered ? 1 : 2
  })

/**
 * How long a signal waits for the in-flight operations to wind down (temp files removed,
 * locks released, a multipart upload aborted) before the failure is reported anyway.
 */
const inFlightBudget = Duration.seconds(10)

/**
 * Builds the runtime (rejecting with e.g. `ConfigError` when the environment is invalid,
 * after `reportSetupFailure` told the backend when it can) and the client over it.
 */
export const makeTrainerClient = async (
  layer: Layer.Layer<TrainerServices, ConfigError>,
  options: {
    readonly handleSignals: boolean
    readonly reportSetupFailure: (cause: Cause.Cause<unknown>) => Promise<void>
  }
): Promise<TrainerClient> => {
  // The outbox's closing reports go to stderr too: this is the program's edge.
  const managed = ManagedRuntime.make(Layer.provideMerge(layer, deliveryReportsOnStderr))
  const built = await managed.runtimeEffect.pipe(
    Effect.flatMap((runtime) => Effect.map(Effect.provide(TrainerSdk, runtime), (sdk) => ({ runtime, sdk }))),
    Effect.exit,
    Effect.runPromise
  )
  if (Exit.isFailure(built)) {
    await managed.dispose()
    await options.reportSetupFailure(built.cause)
    throw Cause.squash(built.cause)
  }
  const { runtime, sdk } = built.value
  // The operations in flight, so that a signal interrupts them as `runTrainer` interrupts its
  // program: their finalizers run (temp files, locks, multipart uploads) before the exit.
  const inFlight = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  // Set by the first SIGTERM/SIGINT; the handlers stay installed while stopping, so a
  // repeated signal cannot kill the process in the middle of the failure report.
  let stopping = false
  /** What every call returns once a signal is being handled: the process exits before it settles. */
  const never = () => new Promise<never>(() => {})
  const run: ClientRun = async <A, E>(effect: Effect.Effect<A, E, TrainerServices>): Promise<A> => {
    // Started after the signal (e.g. by a timer of the caller's): nothing more reaches the
    // backend after the failure report.
    if (stopping) return never()
    const fiber = Runtime.runFork(runtime)(effect)
    inFlight.add(fiber)
    const exit = await new Promise<Exit.Exit<A, E>>((resolve) => fiber.addObserver(resolve))
    inFlight.delete(fiber)
    if (Exit.isSuccess(exit)) return exit.value
    // Interrupted by the signal: the process is about to exit with the job's outcome; the
    // caller's code does not resume (a rejection it does not handle would crash the process
    // before the failure report).
    if (stopping && Cause.isInterruptedOnly(exit.cause)) return never()
    throw Cause.squash(exit.cause)
  }
  // The exit code a repeated signal (or the last-resort exit after the budget) uses.
  let exitCode: 0 | 1 | 2 = 2
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    handleShutdownSignal(signal, () => exitCode)
    const interruptInFlight = Effect.timeout(Fiber.interruptAll([...inFlight]), inFlightBudget).pipe(Effect.ignore)
    void managed.runPromise(Effect.zipRight(interruptInFlight, stopOnSignal(sdk, signal))).then(
      async (code) => {
        exitCode = code
        await managed.dispose()
        process.exit(code)
      },
      () => process.exit(2)
    )
  }
  const removeSignalHandlers = () => {
    process.off("SIGTERM", onSignal)
    process.off("SIGINT", onSignal)
  }
  if (options.handleSignals) {
    process.on("SIGTERM", onSignal)
    process.on("SIGINT", onSignal)
  }
  const client = makeClientOver(runtime, sdk, () => {
    // While a signal is handled the runtime is disposed by the handler, after the report.
    if (stopping) return never()
    removeSignalHandlers()
    return managed.dispose()
  }, run)
  // Synchronous hooks after a signal queue nothing: no report may follow the failure report.
  const hooks: TrainerHooks = {
    reportProgress: (report) => stopping ? undefined : sdk.hooks.reportProgress(report),
    reportValidation: (report) => stopping ? undefined : sdk.hooks.reportValidation(report),
    log: (level, message, logOptions) => stopping ? undefined : sdk.hooks.log(level, message, logOptions),
    enqueueCheckpoint: (localPath, checkpointType, enqueueOptions) =>
      sdk.hooks.enqueueCheckpoint(localPath, checkpointType, enqueueOptions)
  }
  return { ...client, hooks }
}
