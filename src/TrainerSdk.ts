/**
 * The SDK as a trainer meets it: one layer with every service built from the environment,
 * and an in-memory twin for unit tests. The process runner is in `Runner.ts`, the Promise
 * facade in `TrainerClient.ts`.
 *
 * @since 0.1.0
 */
import { FileSystem, HttpClient, Path } from "@effect/platform"
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { Context, Duration, Effect, Layer, Option, Ref, Runtime, Schedule, type Scope } from "effect"
import * as nodePath from "node:path"
import {
  Callback,
  type CallbackCompletionReport,
  type CallbackEvaluationReport,
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
import { completionWithUploads, makeCheckpointUploadQueue } from "./internal/checkpointUploads.js"
import { makeHookQueue, promiseOf } from "./internal/hookQueue.js"
import { isPlatformSplitConfig } from "./internal/splitConfig.js"
import { JobContext, type JobContextInput, type JobContextShape, makeJobContext } from "./JobContext.js"
import { LogBuffer, type LogBufferEntryOptions, type LogBufferLevel, type LogBufferService, LogBufferTest } from "./LogBuffer.js"
import { defaultWorkDir, ReportOutbox } from "./Outbox.js"
import { StorageTest, Storage, type StorageService, type UploadCheckpointOptions } from "./Storage.js"


/** Where a background upload stands. */
export type CheckpointUploadStatus = "queued" | "uploading" | "uploaded" | "superseded" | "failed"

/** The handle `enqueueCheckpoint` returns at once. */
export interface CheckpointUpload {
  readonly checkpointType: string
  /** Epochs completed when the checkpoint was taken, if known. */
  readonly epoch: number | undefined
  /** Where the upload stands now. */
  readonly status: Effect.Effect<CheckpointUploadStatus>
  /**
   * Waits for the upload: its `s3://` URI (for a superseded `last`, the URI of the newer
   * `last` that replaced it), or the `CheckpointError` it finally failed with.
   */
  readonly result: Effect.Effect<string, CheckpointError>
}

/** Options of `enqueueCheckpoint`. */
export interface EnqueueCheckpointOptions {
  /** Metrics stored with the checkpoint (and shipped as a checkpoint log entry). */
  readonly metrics?: CallbackMetrics
  /** Epochs completed when it was taken (default: the highest epoch reported as progress). */
  readonly epoch?: number
}

/** An upload that finally failed (or did not finish in time), as the completion report lists it. */
export interface CheckpointUploadFailure {
  readonly checkpointType: string
  readonly epoch: number | undefined
  /** The file the trainer handed in. */
  readonly localPath: string
  readonly error: string
}

/** What the background uploads achieved, once waited for. */
export interface CheckpointUploadsSummary {
  /** The newest uploaded URI per checkpoint type. */
  readonly uploaded: Readonly<Record<string, string>>
  /** Uploads that failed after their retries, or were still running when the wait ended. */
  readonly failed: ReadonlyArray<CheckpointUploadFailure>
}

/** Where `downloadDatasetWithCache` puts the job's view; every field defaults to the job context's. */
export interface TrainerDatasetOptions extends Partial<EnsureDatasetOptions> {}

/** The trainer-facing service: composite operations over the capability services. */
export interface TrainerSdkService {
  /** The job context (environment) of this process. */
  readonly context: JobContextShape
  /**
   * The job's working directory, created when the SDK starts (default
   * `{tmpdir}/trainer-sdk/job-{JOB_ID}` for training, `{tmpdir}/trainer-sdk/{kind}-{id}`
   * for the other kinds, e.g. `/tmp/trainer-sdk/inference-7`).
   */
  readonly workDir: string
  readonly callback: CallbackService
  readonly storage: StorageService
  readonly cache: DatasetCacheService
  readonly converter: ConverterService
  readonly logs: LogBufferService
  readonly clearml: ClearMLService
  /** `Callback.reportStarted`; the ClearML task is marked started in the background (never waited for). */
  readonly reportStarted: CallbackService["reportStarted"]
  /**
   * Queues the epoch's progress (never waits on the network) and reports its numeric
   * metrics to ClearML at iteration `epoch`. Once a `best` checkpoint was uploaded through
   * `uploadCheckpoint`, the report carries its URI as `best_checkpoint_path` (unless the
   * report names one itself).
   */
  readonly reportProgress: CallbackService["reportProgress"]
  /** Queues validation results (never waits on the network); numeric metrics go to ClearML under the `val` series. */
  readonly reportValidation: CallbackService["reportValidation"]
  /**
   * Sends what synchronous hooks queued, waits for the background checkpoint uploads (at
   * most `checkpointUploadWait`), then reports completion after everything queued before it
   * (progress, logs) and waits for its delivery (at most the shutdown budget), then ends the
   * ClearML task as completed (at most 10 s). The report carries the uploads:
   * `checkpoints.best` / `checkpoints.last` default to the uploaded `best` / `last`,
   * `extra_data.checkpoints` lists every uploaded type's URI and
   * `extra_data.checkpoint_upload_failures` every upload that failed (also logged).
   */
  readonly reportCompleted: CallbackService["reportCompleted"]
  /**
   * Sends what synchronous hooks queued and gives pending checkpoint uploads at most 10 s,
   * then reports the failure like `reportCompleted` and ends the ClearML task as failed.
   */
  readonly reportFailed: CallbackService["reportFailed"]
  /**
   * An inference job's outcome, like `reportCompleted`: what synchronous hooks queued is
   * sent, logs flushed, results reported, ClearML completed.
   */
  readonly reportInferenceCompleted: CallbackService["reportInferenceCompleted"]
  /** An export job's outcome, like `reportInferenceCompleted`. */
  readonly reportExportCompleted: CallbackService["reportExportCompleted"]
  /**
   * An evaluation (test run) job's outcome, like `reportInferenceCompleted`: its results go to
   * `POST /test_inference/test/{id}/results`; numeric metrics go to ClearML under `test`.
   */
  readonly reportEvaluationResults: CallbackService["reportEvaluationResults"]
  /**
   * Makes the job's dataset available through the node-wide cache and returns the view's
   * directory (`destDir/dataset`; `destDir` defaults to `workDir`).
   */
  readonly downloadDatasetWithCache: (
    options?: TrainerDatasetOptions
  ) => Effect.Effect<string, CacheError | StorageError | DownloadError | DatasetError>
  /**
   * Converts a dataset in place (`Converter.convert`): the task type defaults to the job's,
   * the split to the platform's `CONFIG.split_config` when the job has one.
   */
  readonly convertDataset: (options: ConvertOptions) => Effect.Effect<ConversionReport, DatasetError>
  /**
   * Uploads a checkpoint and waits for it (with metrics, a checkpoint log entry is shipped
   * too); returns its `s3://` URI. The epoch recorded for resuming defaults to the highest
   * epoch reported as progress. A `best` checkpoint's URI (uploaded here or in the
   * background) is carried in later progress reports. Prefer `enqueueCheckpoint` inside the
   * training loop.
   */
  readonly uploadCheckpoint: StorageService["uploadCheckpoint"]
  /**
   * Uploads a checkpoint in the background: snapshots the file into the work directory (a
   * copy, cloned where the file system can, so the trainer may overwrite it right away) and
   * returns a handle at once. At most one upload per checkpoint type is in flight; a newer
   * `last` replaces a `last` not yet started, `best` and every other type are all uploaded.
   * A failed upload is retried, then logged and listed in the completion report. Fails only
   * when the file cannot be snapshotted (`NotFound`) or the type is invalid.
   */
  readonly enqueueCheckpoint: (
    localPath: string,
    checkpointType: string,
    options?: EnqueueCheckpointOptions
  ) => Effect.Effect<CheckpointUpload, CheckpointError>
  /**
   * Sends what synchronous hooks queued and waits for the background checkpoint uploads
   * queued so far (at most `checkpointUploadWait`); what `reportCompleted` does first.
   */
  readonly awaitCheckpointUploads: Effect.Effect<CheckpointUploadsSummary>
  /**
   * Where a restarted job (same `JOB_ID`, e.g. after preemption) resumes: the newest
   * checkpoint this job uploaded (highest recorded epoch), downloaded into
   * `workDir/resume/`, with its epoch and metrics; `None` for a fresh job. From then on,
   * progress reports of epochs up to the resumed one are not sent again (the backend's
   * charts already hold them), and checkpoints default to at least that epoch.
   */
  readonly resume: Effect.Effect<Option.Option<ResumePoint>, CheckpointError | StorageError>
  /** Uploads any file under the caller's key (`Storage.uploadFile`); returns its `s3://` URI. */
  readonly uploadFile: StorageService["uploadFile"]
  /** Downloads every object of a dataset to `destDir`, bypassing the cache (`Storage.downloadDataset`). */
  readonly downloadDataset: StorageService["downloadDataset"]
  /** Downloads a checkpoint (`s3://` URI of the internal store) to `localPath`; returns `localPath`. */
  readonly downloadCheckpoint: (uri: string, localPath: string) => Effect.Effect<string, StorageError | CheckpointError>
  /** One log entry to the backend (buffered) and a console line to ClearML. */
  readonly log: (level: LogBufferLevel, message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** Ships the buffered log entries now (bounded by the shipper's retry policy); never fails. */
  readonly flushLogs: Effect.Effect<void>
  /**
   * The same reporting as plain synchronous functions, for a framework's epoch-end hooks:
   * each call queues its report and returns at once (reports go out in call order).
   */
  readonly hooks: TrainerHooks
}

/** Where a restarted job resumes (see `TrainerSdkService.resume`). */
export interface ResumePoint {
  readonly checkpointType: string
  /** The checkpoint's `s3://` URI. */
  readonly uri: string
  /** The downloaded copy, under `workDir/resume/`. */
  readonly localPath: string
  /** Epochs completed when it was taken (0 when it was recorded without one). */
  readonly epoch: number
  readonly metrics: CallbackMetrics
}

/**
 * Reporting callable from synchronous code (a framework callback): nothing here blocks on
 * the network or throws because of it. A report that cannot be sent is logged as a warning.
 */
export interface TrainerHooks {
  /** Queues progress (see `TrainerSdkService.reportProgress`) and returns at once. */
  readonly reportProgress: (report: CallbackProgressReport) => void
  /** Queues validation results and returns at once. */
  readonly reportValidation: (report: CallbackValidationReport) => void
  /** Queues a log entry and returns at once. */
  readonly log: (level: LogBufferLevel, message: string, options?: LogBufferEntryOptions) => void
  /**
   * `enqueueCheckpoint` from synchronous code: snapshots the file (a synchronous copy) and
   * returns the handle; throws the `CheckpointError` when the file cannot be snapshotted.
   */
  readonly enqueueCheckpoint: (
    localPath: string,
    checkpointType: string,
    options?: EnqueueCheckpointOptions
  ) => CheckpointUploadHandle
}

/** A background upload seen from Promise or synchronous code. */
export interface CheckpointUploadHandle {
  readonly checkpointType: string
  readonly epoch: number | undefined
  /** Where the upload stands now. */
  readonly status: () => CheckpointUploadStatus
  /** Resolves with the URI (a superseded `last`: the newer one's) or rejects with the `CheckpointError`. */
  readonly result: () => Promise<string>
}

/** Everything a trainer program may require from `TrainerSdk.layer` (the Node `HttpClient` included). */
export type TrainerServices = TrainerSdk | TrainerCapabilities | HttpClient.HttpClient

/** The capability services (and the platform's file system) that `TrainerSdk` is built over. */
export type TrainerCapabilities =
  | JobContext
  | Callback
  | Storage
  | DatasetCache
  | Converter
  | LogBuffer
  | ClearML
  | ReportOutbox
  | FileSystem.FileSystem
  | Path.Path

/** `TrainerServices` plus the recorders of `TrainerSdk.layerTest`. */
export type TrainerTestServices =
  | TrainerServices
  | CallbackTest
  | StorageTest
  | LogBufferTest
  | ClearMLTest
  | ConverterTest

/** Options of `TrainerSdk.layerConfig`. */
export interface TrainerSdkLayerOptions {
  /** The job's working directory (default: see `TrainerSdkService.workDir`), created at start. */
  readonly workDir?: string
  /** How long `reportCompleted` waits for pending background checkpoint uploads (default 30 minutes). */
  readonly checkpointUploadWait?: Duration.DurationInput
}

/** Options of `makeTrainerSdk`. */
export interface MakeTrainerSdkOptions extends TrainerSdkLayerOptions {
  /** Retries of a failed background upload (default: 3 more, exponential from 2 s, jittered). */
  readonly checkpointUploadRetry?: Schedule.Schedule<unknown, CheckpointError>
}

/** Options of `TrainerSdk.layerTest`. */
export interface TrainerSdkTestOptions {
  /** Job context values (retry delay 0 unless given). */
  readonly job?: JobContextInput
  /** Cache directory (default: a temp directory removed with the layer). */
  readonly cacheDir?: string
  /** Working directory (default: a temp directory removed with the layer). */
  readonly workDir?: string
  /** How long `reportCompleted` waits for background checkpoint uploads (default 30 minutes). */
  readonly checkpointUploadWait?: Duration.DurationInput
}

/** Metrics under a ClearML series (`val`, `test`; a key that names its own series keeps it). */
const inSeries = (series: string, metrics: CallbackMetrics): CallbackMetrics => {
  const result: Record<string, number | null> = {}
  for (const [key, value] of Object.entries(metrics)) result[key.includes("/") ? key : `${series}/${key}`] = value
  return result
}

const clearmlLevel = { DEBUG: "debug", INFO: "info", WARNING: "warning", ERROR: "error" } as const

/** Builds the trainer service over the capability services in context. */
export const makeTrainerSdk = (
  options: MakeTrainerSdkOptions = {}
): Effect.Effect<
  TrainerSdkService,
  never,
  TrainerCapabilities | Scope.Scope
> =>
  Effect.gen(function*() {
    const context = yield* JobContext
    const callback = yield* Callback
    const storage = yield* Storage
    const cache = yield* DatasetCache
    const converter = yield* Converter
    const logs = yield* LogBuffer
    const clearml = yield* ClearML
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const scope = yield* Effect.scope
    const runtime = yield* Effect.runtime<never>()
    const workDir = path.resolve(options.workDir ?? defaultWorkDir(context))
    yield* fs.makeDirectory(workDir, { recursive: true }).pipe(
      Effect.orDieWith((error) => new Error(`Cannot create the job's working directory ${workDir}: ${error.message}`))
    )
    const uploadWait = options.checkpointUploadWait ?? Duration.minutes(30)
    const hookQueue = yield* makeHookQueue
    /** The URI of the latest `best` checkpoint uploaded (waited for or in the background). */
    const bestCheckpoint = yield* Ref.make(Option.none<string>())
    const splitConfig = context.config["split_config"]
    const platformSplit = isPlatformSplitConfig(splitConfig) ? splitConfig : undefined
    /** Epochs completed before this process started (set by `resume`). */
    let resumedEpoch = 0

    const currentEpoch = Effect.map(callback.lifecycle, (s) => Math.max(s.epochsCompleted, resumedEpoch))
    const uploadCheckpoint = (localPath: string, checkpointType: string, metrics?: CallbackMetrics, upload: UploadCheckpointOptions = {}) =>
      Effect.flatMap(
        upload.epoch === undefined ? currentEpoch : Effect.succeed(upload.epoch),
        (epoch) => storage.uploadCheckpoint(localPath, checkpointType, metrics, { epoch })
      ).pipe(Effect.tap((uri) => checkpointType === "best" ? Ref.set(bestCheckpoint, Option.some(uri)) : Effect.void))
    const uploads = yield* makeCheckpointUploadQueue({
      snapshotDir: path.join(workDir, ".checkpoint-uploads"),
      upload: (snapshot, checkpointType, metrics, epoch) =>
        uploadCheckpoint(snapshot, checkpointType, metrics, epoch === undefined ? {} : { epoch }),
      ...(options.checkpointUploadRetry === undefined ? {} : { retry: options.checkpointUploadRetry })
    })

    // The reports themselves; the public methods first let what synchronous hooks queued go out.
    const progress = (report: CallbackProgressReport) =>
      report.epoch <= resumedEpoch
        ? Effect.logDebug(`Progress of epoch ${report.epoch} not sent: the job resumed after epoch ${resumedEpoch}`)
        : Effect.flatMap(Ref.get(bestCheckpoint), (best) =>
          Effect.zipRight(
            callback.reportProgress(
              report.bestCheckpointPath === undefined && Option.isSome(best)
                ? { ...report, bestCheckpointPath: best.value }
                : report
            ),
            clearml.reportMetrics(report.metrics, report.epoch)
          ))
    const validation = (report: CallbackValidationReport) =>
      Effect.zipRight(callback.reportValidation(report), clearml.reportMetrics(inSeries("val", report.allMetrics), report.epoch))
    const log = (level: LogBufferLevel, message: string, logOptions?: LogBufferEntryOptions) =>
      Effect.zipRight(logs.log(level, message, logOptions), clearml.reportText(message, clearmlLevel[level]))
    const enqueueOptions = (enqueue: EnqueueCheckpointOptions) =>
      enqueue.epoch === undefined ? Effect.map(currentEpoch, (epoch) => ({ ...enqueue, epoch })) : Effect.succeed({ ...enqueue, epoch: enqueue.epoch })
    const afterHooks = <A, E>(effect: Effect.Effect<A, E>) => Effect.zipRight(hookQueue.drain, effect)
    /**
     * An outcome other than training's: what hooks queued goes first, the logs are flushed and
     * ClearML completed after, each bounded: neither holds up the outcome.
     */
    const outcomeReport = <A>(send: (report: A) => Effect.Effect<void, CallbackError>) => (report: A) =>
      afterHooks(Effect.zipRight(sideWork(logs.flush), Effect.zipLeft(send(report), sideWork(clearml.completed))))
    const awaitCheckpointUploads = Effect.zipRight(hookQueue.drain, uploads.awaitAll(uploadWait))

    const hooks: TrainerHooks = {
      reportProgress: (report) => hookQueue.push("Progress", progress(report)),
      reportValidation: (report) => hookQueue.push("Validation", validation(report)),
      log: (level, message, logOptions) => hookQueue.push("Log entry", log(level, message, logOptions)),
      enqueueCheckpoint: (localPath, checkpointType, enqueue = {}) => {
        const epoch = enqueue.epoch ?? Runtime.runSync(runtime)(currentEpoch)
        const handle = uploads.enqueueSync(localPath, checkpointType, { ...enqueue, epoch })
        return {
          checkpointType: handle.checkpointType,
          epoch: handle.epoch,
          status: () => Runtime.runSync(runtime)(handle.status),
          result: () => promiseOf(runtime, handle.result)
        }
      }
    }

    const resume = Effect.gen(function*() {
      const records = yield* storage.checkpointRecords
      for (const record of records) {
        const localPath = path.join(workDir, "resume", record.uri.slice(record.uri.lastIndexOf("/") + 1))
        const downloaded = yield* Effect.either(storage.downloadCheckpoint(record.uri, localPath))
        if (downloaded._tag === "Left") {
          if (downloaded.left._tag === "CheckpointError" && downloaded.left.reason === "NotFound") {
            yield* Effect.logWarning(`Recorded checkpoint ${record.uri} is gone; trying an older one`)
            continue
          }
          return yield* downloaded.left
        }
        resumedEpoch = Math.max(resumedEpoch, record.epoch ?? 0)
        yield* log("INFO", `Resuming from the ${record.checkpointType} checkpoint of epoch ${record.epoch ?? 0}: ${record.uri}`, {
          source: "checkpoint"
        })
        return Option.some<ResumePoint>({
          checkpointType: record.checkpointType,
          uri: record.uri,
          localPath,
          epoch: record.epoch ?? 0,
          metrics: record.metrics
        })
      }
      return Option.none<ResumePoint>()
    }).pipe(Effect.withSpan("TrainerSdk.resume"))

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
      reportProgress: (report) => afterHooks(progress(report)),
      reportValidation: Effect.fn("TrainerSdk.reportValidation")(function*(report: CallbackValidationReport) {
        yield* afterHooks(validation(report))
      }),
      reportCompleted: Effect.fn("TrainerSdk.reportCompleted")(function*(report: CallbackCompletionReport) {
        const summary = yield* awaitCheckpointUploads
        yield* callback.reportCompleted(completionWithUploads(report, summary))
        yield* sideWork(clearml.completed)
      }),
      reportFailed: Effect.fn("TrainerSdk.reportFailed")(function*(report: CallbackFailureReport) {
        yield* sideWork(Effect.zipRight(hookQueue.drain, uploads.awaitAll(Duration.seconds(10))))
        yield* callback.reportFailed(report).pipe(
          Effect.ensuring(sideWork(clearml.failed(`[${report.errorType}] ${report.message}`)))
        )
      }),
      reportInferenceCompleted: Effect.fn("TrainerSdk.reportInferenceCompleted")(
        outcomeReport(callback.reportInferenceCompleted)
      ),
      reportExportCompleted: Effect.fn("TrainerSdk.reportExportCompleted")(outcomeReport(callback.reportExportCompleted)),
      reportEvaluationResults: Effect.fn("TrainerSdk.reportEvaluationResults")(function*(report: CallbackEvaluationReport) {
        if (report.metrics !== undefined) yield* clearml.reportMetrics(inSeries("test", report.metrics), 0)
        return yield* outcomeReport(callback.reportEvaluationResults)(report)
      }),
      downloadDatasetWithCache: Effect.fn("TrainerSdk.downloadDatasetWithCache")(
        function*(datasetOptions: TrainerDatasetOptions = {}) {
          return yield* cache.ensure({ ...datasetOptions, destDir: datasetOptions.destDir ?? workDir })
        }
      ),
      convertDataset: (convertOptions) =>
        converter.convert({
          ...convertOptions,
          taskType: convertOptions.taskType ?? context.taskType,
          split: convertOptions.split ?? platformSplit
        }),
      uploadCheckpoint,
      enqueueCheckpoint: (localPath, checkpointType, enqueue = {}) =>
        Effect.flatMap(enqueueOptions(enqueue), (resolved) => uploads.enqueue(localPath, checkpointType, resolved)),
      awaitCheckpointUploads,
      resume,
      uploadFile: storage.uploadFile,
      downloadDataset: storage.downloadDataset,
      downloadCheckpoint: storage.downloadCheckpoint,
      log: (level, message, logOptions) => afterHooks(log(level, message, logOptions)),
      flushLogs: afterHooks(logs.flush),
      hooks
    } satisfies TrainerSdkService
  })

/** The trainer service layer over capability services already in context (the tag is passed in: see the class). */
const serviceLayer = (tag: Context.Tag<TrainerSdk, TrainerSdkService>, options: MakeTrainerSdkOptions) =>
  Layer.scoped(tag, makeTrainerSdk(options))

/**
 * Every live capability, each reading its own variables, over an `HttpClient` and the Node
 * file system; callbacks and logs share one report outbox with its file under
 * `{workDir}/outbox`.
 */
const liveCapabilities = (workDir: string | undefined) =>
  Layer.mergeAll(Callback.layer, LogBuffer.layer, ClearML.layer, Converter.layer).pipe(
    Layer.provideMerge(Storage.layer.pipe(Layer.provide(LogBuffer.checkpointEvents), Layer.provide(LogBuffer.layer))),
    Layer.provideMerge(
      workDir === undefined
        ? ReportOutbox.layer
        : ReportOutbox.layerConfig(ReportOutbox.config, { dir: nodePath.join(workDir, "outbox") })
    )
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
  static readonly layerConfig = (
    options: TrainerSdkLayerOptions = {}
  ): Layer.Layer<TrainerServices, ConfigError> =>
    serviceLayer(TrainerSdk, options).pipe(
      Layer.provideMerge(
        LogBuffer.layerLogger.pipe(
          Layer.provideMerge(DatasetCache.layer.pipe(Layer.provideMerge(liveCapabilities(options.workDir))))
        )
      ),
      Layer.provideMerge(Layer.mergeAll(JobContext.layer, NodeContext.layer, NodeHttpClient.layerUndici))
    )

  /** `layerConfig()`: every live service with the default working directory. */
  static readonly layer: Layer.Layer<TrainerServices, ConfigError> = TrainerSdk.layerConfig()

  /**
   * The same composition over every in-memory twin, so a trainer's whole program runs in a
   * unit test: read what it did through `CallbackTest`, `StorageTest` (seed datasets
   * there), `LogBufferTest`, `ClearMLTest` and `ConverterTest`. The converter and cache use
   * the real file system, under temp directories removed with the layer; the program's own
   * `HttpClient` is the Node one.
   */
  static readonly layerTest = (options: TrainerSdkTestOptions = {}): Layer.Layer<TrainerTestServices> =>
    Layer.unwrapScoped(Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const root = yield* Effect.orDie(fs.makeTempDirectoryScoped({ prefix: "trainer-sdk-test-" }))
      const ctx = makeJobContext({ callbackRetryDelay: Duration.zero, ...options.job })
      const job = Layer.succeed(JobContext, ctx)
      const storage = Storage.layerTest({
        jobId: ctx.jobId,
        externalBucket: ctx.externalStorage.bucket,
        internalBucket: ctx.internalStorage.bucket
      }).pipe(Layer.provide(LogBuffer.checkpointEvents), Layer.provide(LogBuffer.layerTest()))
      const capabilities = Layer.mergeAll(Callback.layerTest(), LogBuffer.layerTest(), ClearML.layerTest(), Converter.layerTest()).pipe(
        Layer.provideMerge(storage)
      )
      const cache = DatasetCache.layerConfig(ctx, { cacheDir: options.cacheDir ?? path.join(root, "cache") })
      // In memory there is no transport to wait for: a failed upload is retried at once.
      return serviceLayer(TrainerSdk, {
        workDir: options.workDir ?? path.join(root, "work"),
        checkpointUploadRetry: Schedule.recurs(2),
        ...(options.checkpointUploadWait === undefined ? {} : { checkpointUploadWait: options.checkpointUploadWait })
      }).pipe(
        Layer.provideMerge(LogBuffer.layerLogger.pipe(Layer.provideMerge(cache.pipe(Layer.provideMerge(capabilities))))),
        Layer.provideMerge(Layer.mergeAll(job, NodeContext.layer, NodeHttpClient.layerUndici))
      )
    })).pipe(Layer.provide(NodeContext.layer))
}
