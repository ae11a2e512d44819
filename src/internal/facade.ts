/**
 * The Promise facade over one `ManagedRuntime` of the trainer layer: async methods that
 * resolve with the service's result or reject with the SDK's own error instance (never a
 * `FiberFailure` wrapper).
 */
import { Cause, type Context, Duration, Effect, Exit, Fiber, type Layer, ManagedRuntime } from "effect"
import type {
  CallbackCompletionReport,
  CallbackMetrics,
  CallbackFailureReport,
  CallbackProgressReport,
  CallbackStartedReport,
  CallbackValidationReport
} from "../Callback.js"
import type { ConversionReport, ConvertOptions } from "../Converter.js"
import type { ConfigError } from "../Errors.js"
import type { JobContextShape } from "../JobContext.js"
import type { LogBufferEntryOptions, LogBufferLevel } from "../LogBuffer.js"
import type { TrainerDatasetOptions, TrainerSdk, TrainerSdkService, TrainerServices } from "../TrainerSdk.js"
import { outcomeSideWork as sideWork } from "./bestEffort.js"

/** The trainer SDK for Promise-based code (`await TrainerSdk.create()`). */
export interface TrainerClient {
  /** The job context read from the environment. */
  readonly context: JobContextShape
  /** The job's working directory. */
  readonly workDir: string
  readonly reportStarted: (report?: CallbackStartedReport) => Promise<void>
  /** Queues progress and returns at once (see `Callback.reportProgress`). */
  readonly reportProgress: (report: CallbackProgressReport) => Promise<void>
  readonly reportValidation: (report: CallbackValidationReport) => Promise<void>
  readonly reportCompleted: (report: CallbackCompletionReport) => Promise<void>
  readonly reportFailed: (report: CallbackFailureReport) => Promise<void>
  /** Returns the `s3://` URI of the uploaded checkpoint. */
  readonly uploadCheckpoint: (localPath: string, checkpointType: string, metrics?: CallbackMetrics) => Promise<string>
  /** Returns the local dataset directory (`destDir/dataset`). */
  readonly downloadDatasetWithCache: (options?: TrainerDatasetOptions) => Promise<string>
  readonly convertDataset: (options: ConvertOptions) => Promise<ConversionReport>
  readonly log: (level: LogBufferLevel, message: string, options?: LogBufferEntryOptions) => Promise<void>
  /** Flushes progress and logs, ends ClearML, releases everything. Call it once, at the end. */
  readonly close: () => Promise<void>
}

/**
 * On SIGTERM/SIGINT (Kubernetes stopping the pod), as `runTrainer` does (after the in-flight
 * operations were interrupted, see `makeTrainerClient`): a job whose outcome
 * was already reported keeps it (exit 0 after a completion, 1 after a failure); otherwise
 * the logs are flushed, the job reported failed (its start first if that never arrived) and
 * ClearML stopped. Returns the exit code: 1, or 2 when the failure report was not delivered.
 */
const stopOnSignal = (sdk: TrainerSdkService, signal: NodeJS.Signals): Effect.Effect<0 | 1 | 2> =>
  Effect.gen(function*() {
    const state = yield* sdk.callback.lifecycle
    if (state.outcome !== undefined) return state.outcome === "completed" ? 0 : 1
    const message = `Interrupted (the job was stopped by ${signal})`
    yield* sdk.logs.error(`Trainer stopped: [ResourceError] ${message}`, { source: "error" })
    yield* sideWork(sdk.logs.flush)
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

/** Builds the runtime (rejecting with e.g. `ConfigError` when the environment is invalid) and the client over it. */
export const makeTrainerClient = async (
  sdkTag: Context.Tag<TrainerSdk, TrainerSdkService>,
  layer: Layer.Layer<TrainerServices, ConfigError>,
  options: { readonly handleSignals: boolean }
): Promise<TrainerClient> => {
  const runtime = ManagedRuntime.make(layer)
  // The operations in flight, so that a signal interrupts them as `runTrainer` interrupts its
  // program: their finalizers run (temp files, locks, multipart uploads) before the exit.
  const inFlight = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  // Set by the first SIGTERM/SIGINT; the handlers stay installed while stopping, so a
  // repeated signal cannot kill the process in the middle of the failure report.
  let stopping = false
  /** What every call returns once a signal is being handled: the process exits before it settles. */
  const never = () => new Promise<never>(() => {})
  const run = async <A, E>(f: (sdk: TrainerSdkService) => Effect.Effect<A, E>): Promise<A> => {
    // Started after the signal (e.g. by a timer of the caller's): nothing more reaches the
    // backend after the failure report.
    if (stopping) return never()
    const fiber = runtime.runFork(Effect.flatMap(sdkTag, f))
    inFlight.add(fiber)
    const exit = await new Promise<Exit.Exit<A, E | ConfigError>>((resolve) => fiber.addObserver(resolve))
    inFlight.delete(fiber)
    if (Exit.isSuccess(exit)) return exit.value
    // Interrupted by the signal: the process is about to exit with the job's outcome; the
    // caller's code does not resume (a rejection it does not handle would crash the process
    // before the failure report).
    if (stopping && Cause.isInterruptedOnly(exit.cause)) return never()
    throw Cause.squash(exit.cause)
  }
  let sdk: TrainerSdkService
  try {
    sdk = await run(Effect.succeed)
  } catch (error) {
    await runtime.dispose()
    throw error
  }
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    const interruptInFlight = Effect.timeout(Fiber.interruptAll([...inFlight]), inFlightBudget).pipe(Effect.ignore)
    void runtime.runPromise(Effect.zipRight(interruptInFlight, stopOnSignal(sdk, signal))).then(
      async (code) => {
        await runtime.dispose()
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
  return {
    context: sdk.context,
    workDir: sdk.workDir,
    reportStarted: (report) => run((s) => s.reportStarted(report)),
    reportProgress: (report) => run((s) => s.reportProgress(report)),
    reportValidation: (report) => run((s) => s.reportValidation(report)),
    reportCompleted: (report) => run((s) => s.reportCompleted(report)),
    reportFailed: (report) => run((s) => s.reportFailed(report)),
    uploadCheckpoint: (localPath, checkpointType, metrics) =>
      run((s) => s.uploadCheckpoint(localPath, checkpointType, metrics)),
    downloadDatasetWithCache: (options) => run((s) => s.downloadDatasetWithCache(options)),
    convertDataset: (options) => run((s) => s.convertDataset(options)),
    log: (level, message, options) => run((s) => s.log(level, message, options)),
    close: () => {
      // While a signal is handled the runtime is disposed by the handler, after the report.
      if (stopping) return never()
      removeSignalHandlers()
      return runtime.dispose()
    }
  }
}
