/**
 * The Promise facade, for trainers that do not use Effect: `TrainerClient.run(body)` is the
 * process main (as safe as `runTrainer`), `TrainerClient.create()` a client without the
 * runner, `TrainerClient.fromPromise(body)` a Promise trainer as an Effect program.
 *
 * @since 0.1.0
 */
import { NodeHttpClient } from "@effect/platform-node"
import { type Context, Effect, type Layer } from "effect"
import type {
  CallbackCompletionReport,
  CallbackEvaluationReport,
  CallbackExportCompletedReport,
  CallbackFailureReport,
  CallbackInferenceCompletedReport,
  CallbackMetrics,
  CallbackProgressReport,
  CallbackStartedReport,
  CallbackValidationReport
} from "./Callback.js"
import type { ConversionReport, ConvertOptions } from "./Converter.js"
import type { ConfigError } from "./Errors.js"
import { makeClientOver, makeTrainerClient } from "./internal/facade.js"
import { settleSetupFailure } from "./internal/runner.js"
import type { JobContextShape } from "./JobContext.js"
import type { LogBufferEntryOptions, LogBufferLevel } from "./LogBuffer.js"
import { runTrainer, runTrainerEffect, type TrainerOutcome, type TrainerRunOptions } from "./Runner.js"
import type { DatasetDownloadSummary, DownloadOptions, UploadCheckpointOptions, UploadFileOptions } from "./Storage.js"
import {
  type CheckpointUploadHandle,
  type CheckpointUploadsSummary,
  type EnqueueCheckpointOptions,
  type ResumePoint,
  type TrainerDatasetOptions,
  type TrainerHooks,
  TrainerSdk,
  type TrainerSdkService,
  type TrainerServices
} from "./TrainerSdk.js"

/** The trainer SDK for Promise-based code (`TrainerClient.run(async (sdk) => …)` or `await TrainerClient.create()`). */
export interface TrainerClient {
  /** The job context read from the environment. */
  readonly context: JobContextShape
  /** The job's working directory. */
  readonly workDir: string
  readonly reportStarted: (report?: CallbackStartedReport) => Promise<void>
  /** Queues progress and returns at once (see `Callback.reportProgress`). */
  readonly reportProgress: (report: CallbackProgressReport) => Promise<void>
  readonly reportValidation: (report: CallbackValidationReport) => Promise<void>
  /** Waits for the background checkpoint uploads, then reports completion (see `TrainerSdkService.reportCompleted`). */
  readonly reportCompleted: (report: CallbackCompletionReport) => Promise<void>
  readonly reportFailed: (report: CallbackFailureReport) => Promise<void>
  /** An inference job's outcome (see `TrainerSdkService.reportInferenceCompleted`). */
  readonly reportInferenceCompleted: (report: CallbackInferenceCompletedReport) => Promise<void>
  /** An export job's outcome (see `TrainerSdkService.reportExportCompleted`). */
  readonly reportExportCompleted: (report: CallbackExportCompletedReport) => Promise<void>
  /** An evaluation (test run) job's results (see `TrainerSdkService.reportEvaluationResults`). */
  readonly reportEvaluationResults: (report: CallbackEvaluationReport) => Promise<void>
  /** Uploads a checkpoint and waits for it; returns its `s3://` URI. */
  readonly uploadCheckpoint: (
    localPath: string,
    checkpointType: string,
    metrics?: CallbackMetrics,
    options?: UploadCheckpointOptions
  ) => Promise<string>
  /** Snapshots the file and uploads it in the background (see `TrainerSdkService.enqueueCheckpoint`). */
  readonly enqueueCheckpoint: (
    localPath: string,
    checkpointType: string,
    options?: EnqueueCheckpointOptions
  ) => Promise<CheckpointUploadHandle>
  /** Waits for the background uploads queued so far (see `TrainerSdkService.awaitCheckpointUploads`). */
  readonly awaitCheckpointUploads: () => Promise<CheckpointUploadsSummary>
  /** Where a restarted job resumes, `undefined` for a fresh one (see `TrainerSdkService.resume`). */
  readonly resume: () => Promise<ResumePoint | undefined>
  /** Uploads any file under the caller's key; returns its `s3://` URI. */
  readonly uploadFile: (localPath: string, key: string, options?: UploadFileOptions) => Promise<string>
  /** Downloads every object of a dataset to `destDir`, bypassing the cache. */
  readonly downloadDataset: (datasetId: string, destDir: string, options?: DownloadOptions) => Promise<DatasetDownloadSummary>
  /** Downloads a checkpoint to `localPath`; returns `localPath`. */
  readonly downloadCheckpoint: (uri: string, localPath: string) => Promise<string>
  /** Returns the local dataset directory (`destDir/dataset`). */
  readonly downloadDatasetWithCache: (options?: TrainerDatasetOptions) => Promise<string>
  readonly convertDataset: (options: ConvertOptions) => Promise<ConversionReport>
  readonly log: (level: LogBufferLevel, message: string, options?: LogBufferEntryOptions) => Promise<void>
  /** Ships the buffered log entries now. */
  readonly flushLogs: () => Promise<void>
  /** Reporting from synchronous framework callbacks: each call queues and returns at once. */
  readonly hooks: TrainerHooks
  /** The Effect service behind this client, with every capability service (`callback`, `storage`, `cache`, …). */
  readonly services: TrainerSdkService
  /**
   * Any service of the layer behind this client, e.g. `sdk.service(CallbackTest)` over
   * `TrainerSdk.layerTest`; throws naming the tag when the layer has none.
   */
  readonly service: <I, S>(tag: Context.Tag<I, S>) => S
  /** Runs an Effect over the layer's services; rejects with its error (e.g. `sdk.runEffect(recorder.requests)`). */
  readonly runEffect: <A, E>(effect: Effect.Effect<A, E, TrainerServices>) => Promise<A>
  /**
   * Flushes progress and logs, ends ClearML, releases everything: call it once, at the end
   * of a `TrainerClient.create()` client. Under `TrainerClient.run` it does nothing (the runner closes).
   */
  readonly close: () => Promise<void>
}

/** Options of `TrainerClient.run`. */
export interface TrainerClientRunOptions extends TrainerRunOptions {
  /** The layer behind the client (default `TrainerSdk.layer`). */
  readonly layer?: Layer.Layer<TrainerServices, ConfigError>
  /**
   * Whether the process exits with the outcome's code once settled, SIGTERM/SIGINT handled
   * as `runTrainer` does (default `true`). `false`: resolve with the outcome (tests, embedding).
   */
  readonly exit?: boolean
}

/** Options of `TrainerClient.create`. */
export interface TrainerClientCreateOptions {
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

/**
 * The Promise trainer's entry point, as safe as `runTrainer`: builds `TrainerSdk.layer` (or
 * `options.layer`), reports the start (unless `reportStarted: false`), runs `body` with
 * the Promise client, then settles the outcome exactly as `runTrainer` does — a thrown
 * error is classified and reported failed, a training body that returns without
 * reporting completes (after its background uploads), an invalid environment is still
 * reported, SIGTERM/SIGINT report the job stopped — and closes everything. Then the
 * process exits with the outcome's code (0 / 1 / 2); with `exit: false` it installs no
 * signal handlers and resolves with the outcome instead.
 */
const run = <A>(
  body: (sdk: TrainerClient) => Promise<A>,
  options: TrainerClientRunOptions = {}
): Promise<TrainerOutcome> => {
  const program = fromPromise(body)
  if (options.exit === false) return Effect.runPromise(runTrainerEffect(program, options))
  return new Promise((resolve) => runTrainer(program, { ...options, onOutcome: (outcome) => {
    options.onOutcome?.(outcome)
    resolve(outcome)
  } }))
}

/**
 * A Promise trainer as an Effect program (what `TrainerClient.run` runs): `body` gets a
 * Promise client over the program's services; a rejection is the program's failure.
 * For `runTrainerEffect(TrainerClient.fromPromise(body), { layer })` in tests and embedders.
 */
const fromPromise = <A>(body: (sdk: TrainerClient) => Promise<A>): Effect.Effect<A, unknown, TrainerServices> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<TrainerServices>()
    const client = makeClientOver(runtime, yield* TrainerSdk, () => Promise.resolve())
    return yield* Effect.tryPromise({ try: () => body(client), catch: (error) => error })
  })

/**
 * The Promise facade without the runner: one `ManagedRuntime` of `TrainerSdk.layer` (or
 * `options.layer`) behind async methods; the caller reports the start and the outcome and
 * calls `close()` (prefer `TrainerClient.run`). Rejects with the SDK's error (e.g.
 * `ConfigError`) when the environment is invalid, after reporting that failure to the
 * backend when `CALLBACK_URL` and `JOB_ID` are usable.
 */
const create = (options: TrainerClientCreateOptions = {}): Promise<TrainerClient> =>
  makeTrainerClient(options.layer ?? TrainerSdk.layer, {
    handleSignals: options.handleSignals ?? true,
    reportSetupFailure: (cause) =>
      Effect.runPromise(settleSetupFailure(cause, {}).pipe(Effect.provide(NodeHttpClient.layerUndici), Effect.asVoid))
  })

/**
 * The Promise facade: `TrainerClient.run(body)` (the process main), `TrainerClient.create()`
 * (a client without the runner) and `TrainerClient.fromPromise(body)` (the body as an Effect program).
 */
export const TrainerClient = { run, create, fromPromise } as const
