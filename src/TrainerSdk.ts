/**
 * The SDK as a trainer meets it: one layer with every service built from the environment,
 * an in-memory twin for unit tests, a process runner that always reports the outcome, and
 * a Promise facade for trainers that do not use Effect.
 *
 * @since 0.1.0
 */
import { FileSystem, HttpClient, Path } from "@effect/platform"
import { NodeContext, NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Context, Duration, Effect, Layer, type Scope } from "effect"
import * as os from "node:os"
import {
  Callback,
  type CallbackCompletionReport,
  type CallbackFailureReport,
  type CallbackMetrics,
  type CallbackProgressReport,
  type CallbackService,
  type CallbackStartedReport,
  CallbackTest,
  type CallbackValidationReport
} from "./Callback.js"
import { ClearML, type ClearMLService, ClearMLTest } from "./ClearML.js"
import {
  type ConversionReport,
  type ConvertOptions,
  Converter,
  type ConverterService,
  ConverterTest
} from "./Converter.js"
import { DatasetCache, type DatasetCacheService, type EnsureDatasetOptions } from "./DatasetCache.js"
import type { CacheError, CallbackError, CheckpointError, ConfigError, DatasetError, DownloadError, StorageError } from "./Errors.js"
import { outcomeSideWork as sideWork } from "./internal/bestEffort.js"
import { type TrainerClient, makeTrainerClient } from "./internal/facade.js"
import { runTrainerWith, type TrainerOutcome, type TrainerRunOptions } from "./internal/runner.js"
import { JobContext, type JobContextInput, type JobContextShape } from "./JobContext.js"
import { LogBuffer, type LogBufferEntryOptions, type LogBufferLevel, type LogBufferService, LogBufferTest } from "./LogBuffer.js"
import { MemoryStorage, Storage, type StorageService } from "./Storage.js"

export type { TrainerClient } from "./internal/facade.js"
export type { TrainerOutcome, TrainerRunOptions } from "./internal/runner.js"

/** Where `downloadDatasetWithCache` puts the job's view; every field defaults to the job context's. */
export interface TrainerDatasetOptions extends Partial<EnsureDatasetOptions> {}

/** The trainer-facing service: composite operations over the capability services. */
export interface TrainerSdkService {
  /** The job context (environment) of this process. */
  readonly context: JobContextShape
  /** The job's working directory (default `{tmpdir}/trainer-sdk/job-{JOB_ID}`). */
  readonly workDir: string
  readonly callback: CallbackService
  readonly storage: StorageService
  readonly cache: DatasetCacheService
  readonly converter: ConverterService
  readonly logs: LogBufferService
  readonly clearml: ClearMLService
  /** `Callback.reportStarted`; the ClearML task is marked started in the background (never waited for). */
  readonly reportStarted: (report?: CallbackStartedReport) => Effect.Effect<void, CallbackError>
  /**
   * Queues the epoch's progress (never waits on the network) and reports its numeric
   * metrics to ClearML at iteration `epoch`.
   */
  readonly reportProgress: (report: CallbackProgressReport) => Effect.Effect<void, CallbackError>
  /** Sends validation results; numeric metrics go to ClearML under the `val` series. */
  readonly reportValidation: (report: CallbackValidationReport) => Effect.Effect<void, CallbackError>
  /**
   * Flushes the buffered logs, then reports completion and ends the ClearML task as
   * completed (the flush and ClearML each get at most 10 s: they never hold up the report).
   */
  readonly reportCompleted: (report: CallbackCompletionReport) => Effect.Effect<void, CallbackError>
  /** Flushes the buffered logs, reports the failure, then ends the ClearML task as failed (bounded like `reportCompleted`). */
  readonly reportFailed: (report: CallbackFailureReport) => Effect.Effect<void, CallbackError>
  /**
   * Makes the job's dataset available through the node-wide cache and returns the view's
   * directory (`destDir/dataset`; `destDir` defaults to `workDir`).
   */
  readonly downloadDatasetWithCache: (
    options?: TrainerDatasetOptions
  ) => Effect.Effect<string, CacheError | StorageError | DownloadError | DatasetError>
  /** Converts a dataset in place (`Converter.convert`; the task type defaults to the job's). */
  readonly convertDataset: (options: ConvertOptions) => Effect.Effect<ConversionReport, DatasetError>
  /** Uploads a checkpoint (with metrics, a checkpoint log entry is shipped too); returns its `s3://` URI. */
  readonly uploadCheckpoint: (
    localPath: string,
    checkpointType: string,
    metrics?: CallbackMetrics
  ) => Effect.Effect<string, CheckpointError>
  /** One log entry to the backend (buffered) and a console line to ClearML. */
  readonly log: (level: LogBufferLevel, message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
}

/** Everything a trainer program may require from `TrainerSdk.layer` (the Node `HttpClient` included). */
export type TrainerServices =
  | TrainerSdk
  | JobContext
  | Callback
  | Storage
  | DatasetCache
  | Converter
  | LogBuffer
  | ClearML
  | FileSystem.FileSystem
  | Path.Path
  | HttpClient.HttpClient

/** `TrainerServices` plus the recorders of `TrainerSdk.layerTest`. */
export type TrainerTestServices =
  | TrainerServices
  | CallbackTest
  | MemoryStorage
  | LogBufferTest
  | ClearMLTest
  | ConverterTest

/** Options of `TrainerSdk.layerWith`. */
export interface TrainerSdkLayerOptions {
  /** The job's working directory (default `{tmpdir}/trainer-sdk/job-{JOB_ID}`). */
  readonly workDir?: string
}

/** Options of `TrainerSdk.layerTest`. */
export interface TrainerSdkTestOptions {
  /** Job context values (retry delay 0 unless given). */
  readonly job?: JobContextInput
  /** Cache directory (default: a temp directory removed with the layer). */
  readonly cacheDir?: string
  /** Working directory (default: a temp directory removed with the layer). */
  readonly workDir?: string
}

/** Options of `TrainerSdk.create` (the Promise facade). */
export interface TrainerSdkCreateOptions {
  /** The layer behind the facade (default `TrainerSdk.layer`). */
  readonly layer?: Layer.Layer<TrainerServices, ConfigError>
  /**
   * Whether SIGTERM and SIGINT end the job as `runTrainer` does (default `true`): the
   * operations in flight are interrupted (their temp files removed, cache locks released, a
   * multipart upload aborted on the server; their promises, and those of calls made from
   * then on, never settle), then, unless an outcome was already reported, the logs are
   * flushed, the job reported failed (`[ResourceError] Interrupted …`) and ClearML stopped,
   * then the process exits 1 (2 when the report could not be delivered; 0 when the job had
   * already reported its completion).
   * Repeated signals are ignored while this runs. `close()` removes the handlers.
   */
  readonly handleSignals?: boolean
}

/** Validation metrics under ClearML's `val` series (a key that names its own series keeps it). */
const validationSeries = (metrics: CallbackMetrics): CallbackMetrics => {
  const result: Record<string, number | null> = {}
  for (const [key, value] of Object.entries(metrics)) result[key.includes("/") ? key : `val/${key}`] = value
  return result
}

const clearmlLevel = { DEBUG: "debug", INFO: "info", WARNING: "warning", ERROR: "error" } as const

/** Builds the trainer service over the capability services in context. */
export const makeTrainerSdk = (
  options: { readonly workDir?: string } = {}
): Effect.Effect<
  TrainerSdkService,
  never,
  JobContext | Callback | Storage | DatasetCache | Converter | LogBuffer | ClearML | Path.Path | Scope.Scope
> =>
  Effect.gen(function*() {
    const context = yield* JobContext
    const callback = yield* Callback
    const storage = yield* Storage
    const cache = yield* DatasetCache
    const converter = yield* Converter
    const logs = yield* LogBuffer
    const clearml = yield* ClearML
    const path = yield* Path.Path
    const scope = yield* Effect.scope
    const workDir = path.resolve(options.workDir ?? path.join(os.tmpdir(), "trainer-sdk", `job-${context.jobId}`))

    return {
      context,
      workDir,
      callback,
      storage,
      cache,
      converter,
      logs,
      clearml,
      reportStarted: Effect.fn("TrainerSdk.reportStarted")(function*(report?: CallbackStartedReport) {
        yield* callback.reportStarted(report)
        yield* Effect.forkIn(clearml.started, scope)
      }),
      reportProgress: (report) =>
        Effect.zipRight(
          callback.reportProgress(report),
          clearml.reportMetrics(report.metrics, report.epoch)
        ),
      reportValidation: Effect.fn("TrainerSdk.reportValidation")(function*(report: CallbackValidationReport) {
        yield* callback.reportValidation(report)
        yield* clearml.reportMetrics(validationSeries(report.allMetrics), report.epoch)
      }),
      reportCompleted: Effect.fn("TrainerSdk.reportCompleted")(function*(report: CallbackCompletionReport) {
        yield* sideWork(logs.flush) // the run's logs reach the backend before its terminal status
        yield* callback.reportCompleted(report)
        yield* sideWork(clearml.completed)
      }),
      reportFailed: Effect.fn("TrainerSdk.reportFailed")(function*(report: CallbackFailureReport) {
        yield* sideWork(logs.flush)
        yield* callback.reportFailed(report).pipe(
          Effect.ensuring(sideWork(clearml.failed(`[${report.errorType}] ${report.message}`)))
        )
      }),
      downloadDatasetWithCache: Effect.fn("TrainerSdk.downloadDatasetWithCache")(
        function*(datasetOptions: TrainerDatasetOptions = {}) {
          return yield* cache.ensure({ ...datasetOptions, destDir: datasetOptions.destDir ?? workDir })
        }
      ),
      convertDataset: (convertOptions) =>
        converter.convert({ ...convertOptions, taskType: convertOptions.taskType ?? context.taskType }),
      uploadCheckpoint: (localPath, checkpointType, metrics) => storage.uploadCheckpoint(localPath, checkpointType, metrics),
      log: (level, message, logOptions) =>
        Effect.zipRight(logs.log(level, message, logOptions), clearml.reportText(message, clearmlLevel[level]))
    } satisfies TrainerSdkService
  })

/** The trainer service layer over capability services already in context (the tag is passed in: see the class). */
const serviceLayer = (tag: Context.Tag<TrainerSdk, TrainerSdkService>, workDir: string | undefined) =>
  Layer.scoped(tag, makeTrainerSdk(workDir === undefined ? {} : { workDir }))

/** Every live capability over a job context, an `HttpClient` and the Node file system. */
const liveCapabilities = Layer.mergeAll(Callback.layer, LogBuffer.layer, ClearML.layer, Converter.layer).pipe(
  Layer.provideMerge(Storage.layer.pipe(Layer.provide(LogBuffer.checkpointEvents), Layer.provide(LogBuffer.layer)))
)

/** The trainer SDK: `const sdk = yield* TrainerSdk`. */
export class TrainerSdk extends Context.Tag("trainer-sdk/TrainerSdk")<TrainerSdk, TrainerSdkService>() {
  /** Builds the service over the capability services in context (see `makeTrainerSdk`). */
  static readonly make = makeTrainerSdk

  /**
   * Every live service with the given options, composed once from the environment (through the current
   * `ConfigProvider`): job context, callbacks, storage (checkpoint events shipped as log
   * entries), dataset cache, converter, log shipping (with `Effect.log*` bridged into it,
   * the console logger kept), ClearML, over the Node HTTP client and file system. Closing
   * it flushes progress and logs and ends the ClearML task by the outcome.
   */
  static readonly layerWith = (
    options: TrainerSdkLayerOptions = {}
  ): Layer.Layer<TrainerServices, ConfigError> =>
    serviceLayer(TrainerSdk, options.workDir).pipe(
      Layer.provideMerge(
        LogBuffer.layerLogger.pipe(Layer.provideMerge(DatasetCache.layer.pipe(Layer.provideMerge(liveCapabilities))))
      ),
      Layer.provideMerge(Layer.mergeAll(JobContext.layer, NodeContext.layer, NodeHttpClient.layerUndici))
    )

  /** `layerWith()`: every live service with the default working directory. */
  static readonly layer: Layer.Layer<TrainerServices, ConfigError> = TrainerSdk.layerWith()

  /**
   * The same composition over every in-memory twin, so a trainer's whole program runs in a
   * unit test: read what it did through `CallbackTest`, `MemoryStorage` (seed datasets
   * there), `LogBufferTest`, `ClearMLTest` and `ConverterTest`. The converter and cache use
   * the real file system, under temp directories removed with the layer; the program's own
   * `HttpClient` is the Node one.
   */
  static readonly layerTest = (options: TrainerSdkTestOptions = {}): Layer.Layer<TrainerTestServices> =>
    Layer.unwrapScoped(Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const root = yield* Effect.orDie(fs.makeTempDirectoryScoped({ prefix: "trainer-sdk-test-" }))
      const job = JobContext.layerTest({ callbackRetryDelay: Duration.zero, ...options.job })
      const storage = Layer.unwrapEffect(Effect.map(JobContext, (ctx) =>
        Storage.layerMemoryWith({
          jobId: ctx.jobId,
          externalBucket: ctx.externalStorage.bucket,
          internalBucket: ctx.internalStorage.bucket
        })
      )).pipe(Layer.provide(LogBuffer.checkpointEvents), Layer.provide(LogBuffer.layerTest))
      const capabilities = Layer.mergeAll(Callback.layerTest, LogBuffer.layerTest, ClearML.layerTest, Converter.layerTest).pipe(
        Layer.provideMerge(storage)
      )
      const cache = DatasetCache.layerWith({ cacheDir: options.cacheDir ?? path.join(root, "cache") })
      return serviceLayer(TrainerSdk, options.workDir ?? path.join(root, "work")).pipe(
        Layer.provideMerge(LogBuffer.layerLogger.pipe(Layer.provideMerge(cache.pipe(Layer.provideMerge(capabilities))))),
        Layer.provideMerge(Layer.mergeAll(job, NodeContext.layer, NodeHttpClient.layerUndici))
      )
    })).pipe(Layer.provide(NodeContext.layer))

  /**
   * The Promise facade: one `ManagedRuntime` of `TrainerSdk.layer` (or `options.layer`)
   * behind async methods. Rejects with the SDK's error (e.g. `ConfigError`) when the
   * environment is invalid; call `close()` when done.
   */
  static readonly create = (options: TrainerSdkCreateOptions = {}): Promise<TrainerClient> =>
    makeTrainerClient(TrainerSdk, options.layer ?? TrainerSdk.layer, { handleSignals: options.handleSignals ?? true })
}

/**
 * Runs a trainer program as an Effect over `layer` (default `TrainerSdk.layer`) and returns
 * how it ended, without exiting the process: the start is reported before the program runs
 * (unless `reportStarted: false`), on failure the error is classified and reported (with
 * message and trace), logs are flushed and ClearML is ended by the outcome. Exit code 0 / 1 / 2 (2: the outcome
 * could not be delivered).
 */
export const runTrainerEffect = <A, E>(
  program: Effect.Effect<A, E, TrainerServices>,
  options: TrainerRunOptions & { readonly layer?: Layer.Layer<TrainerServices, ConfigError> } = {}
): Effect.Effect<TrainerOutcome> =>
  runTrainerWith(options.layer ?? TrainerSdk.layer, program, options).pipe(Effect.provide(NodeHttpClient.layerUndici))

/**
 * Runs a trainer program as the process main: `runTrainerEffect` with SIGTERM and SIGINT
 * interrupting the program (so the failure is still reported and the logs flushed), then
 * exits with the outcome's code.
 */
export const runTrainer = <A, E>(
  program: Effect.Effect<A, E, TrainerServices>,
  options: TrainerRunOptions & { readonly layer?: Layer.Layer<TrainerServices, ConfigError> } = {}
): void => {
  let outcome: TrainerOutcome | undefined
  // `runMain` interrupts the program on the first SIGTERM/SIGINT and then removes its own
  // listeners; these keep a repeated signal from killing the process while the outcome is
  // being reported (Kubernetes sends SIGKILL after the grace period anyway).
  const ignoreRepeatedSignal = () => {}
  process.on("SIGTERM", ignoreRepeatedSignal)
  process.on("SIGINT", ignoreRepeatedSignal)
  NodeRuntime.runMain(
    runTrainerEffect(program, {
      ...options,
      onOutcome: (o) => {
        outcome = o
        options.onOutcome?.(o)
      }
    }),
    {
      // The outcome is recorded before an interruption (a signal) ends the main fiber; no
      // outcome means the runner itself broke, so the result is unknown to the backend.
      teardown: () => process.exit(outcome?.exitCode ?? 2)
    }
  )
}
