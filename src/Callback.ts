/**
 * The lifecycle callbacks of a job to the platform backend: started, progress, validation,
 * completed, failed, inference, export and evaluation results.
 *
 * Every report goes through the job's `ReportOutbox`: queueing never waits on the network,
 * and the wire order is the order of the calls (started → progress/validation… → outcome),
 * each report delivered once. Only the outcome reports wait for their delivery (bounded
 * by the shutdown budget), so the caller learns whether it got through.
 *
 * @since 0.1.0
 */
import { HttpClient } from "@effect/platform"
import { Clock, type Config, Context, Effect, Either, Layer, Ref, type Schema } from "effect"
import { CallbackError, type ConfigError, type ErrorType } from "./Errors.js"
import { type BasicConfig, JobContext, type JobIdentity, type SettingsError } from "./JobContext.js"
import { type ReportKind, ReportOutbox, type ReportOutboxService } from "./Outbox.js"
import {
  callbackPaths,
  CompletionBody,
  EvaluationResultsBody,
  ExportCompletedBody,
  ExportStartedBody,
  FailedBody,
  InferenceCompletedBody,
  InferenceStartedBody,
  TrainingProgressBody,
  TrainingStartedBody,
  ValidationBody
} from "./internal/callbackBodies.js"
import { makeCallbackRecorder } from "./internal/callbackRecorder.js"
import { callbackSectionConfig, settingsLayer } from "./internal/envSections.js"
import {
  advanceTiming,
  completionBody,
  encodeBody,
  evaluationFailedBody,
  evaluationResultsBody,
  exportCompletedBody,
  exportMetadata as buildExportMetadata,
  failedBody,
  inferenceCompletedBody,
  isoTimestamp,
  operationStartedBody,
  progressBody,
  type ProgressTiming,
  timingAtStart,
  trainingStartedBody,
  validationBody
} from "./internal/callbackReports.js"

/**
 * The metadata of an exported model, as the platform expects it next to the artifact:
 * `num_classes` follows `class_names`, and `extra` keys are merged in last.
 */
export const exportMetadata = (input: ExportMetadataInput): Record<string, unknown> => buildExportMetadata(input)

/** Metrics as a trainer reports them; `null`, NaN and ±Infinity travel as `null`. */
export type CallbackMetrics = Readonly<Record<string, number | null>>

/**
 * The operation a job runs; it decides where the start and a failure are reported. It
 * defaults to the job's kind (`evaluation` for a `TEST_RUN_ID` job).
 */
export type CallbackOperation = "training" | "inference" | "export" | "evaluation"

/** Input of `reportStarted`. */
export interface CallbackStartedReport {
  /** Default: the job's kind (`JOB_ID` training, `INFERENCE_JOB_ID` inference, ...). */
  readonly operation?: CallbackOperation
  /** Training only; default the resolved `epochs` config. Must be > 0. */
  readonly totalEpochs?: number
}

/** Input of `reportProgress`: the state after `epoch` epochs (1-based count of epochs done). */
export interface CallbackProgressReport {
  readonly epoch: number
  /** Default: the `totalEpochs` of the start report (itself defaulting to the `epochs` config). */
  readonly totalEpochs?: number
  readonly metrics: CallbackMetrics
  readonly extraData?: Readonly<Record<string, unknown>>
  readonly checkpointPath?: string
  readonly bestCheckpointPath?: string
  readonly logs?: string
}

/** One per-image result of a validation report. */
export interface CallbackValidationImageResult {
  readonly imageName: string
  readonly isCorrect: boolean
  readonly imageIndex?: number
  readonly trueLabel?: string
  readonly trueLabelId?: number
  readonly predictedLabel?: string
  readonly predictedLabelId?: number
  readonly confidence?: number
  readonly top5Predictions?: ReadonlyArray<unknown>
  readonly trueBoxes?: ReadonlyArray<unknown>
  readonly predictedBoxes?: ReadonlyArray<unknown>
  readonly iou?: number
  readonly extraData?: Readonly<Record<string, unknown>>
}

/** Input of `reportValidation`. */
export interface CallbackValidationReport {
  readonly epoch: number
  /** Default: the job's task type. */
  readonly taskType?: string
  readonly primaryMetric: readonly [name: string, value: number | null]
  readonly allMetrics: CallbackMetrics
  readonly classNames?: ReadonlyArray<string>
  readonly visualizationUrls?: Readonly<Record<string, string>>
  readonly perClassMetrics?: Readonly<Record<string, CallbackMetrics>>
  /** Default `false`. */
  readonly isBest?: boolean
  readonly overallLoss?: number
  readonly confusionMatrix?: ReadonlyArray<ReadonlyArray<number>>
  readonly prCurves?: Readonly<Record<string, unknown>>
  readonly sampleCorrectImages?: ReadonlyArray<string>
  readonly sampleIncorrectImages?: ReadonlyArray<string>
  readonly imageResults?: ReadonlyArray<CallbackValidationImageResult>
}

/** Input of `reportCompleted`. */
export interface CallbackCompletionReport {
  readonly finalMetrics: CallbackMetrics
  readonly checkpoints?: { readonly best?: string; readonly last?: string }
  /** Epochs completed; default the highest epoch reported as progress, else the planned total. */
  readonly totalEpochs?: number
  readonly extraData?: Readonly<Record<string, unknown>>
  readonly bestMetrics?: CallbackMetrics
  readonly bestEpoch?: number
  readonly finalCheckpointPath?: string
  readonly modelArtifactsPath?: string
  readonly mlflowRunId?: string
  /** Default: the time since `reportStarted`, when it was called. */
  readonly totalDurationSeconds?: number
}

/** Input of `reportFailed`. */
export interface CallbackFailureReport {
  readonly errorType: ErrorType
  readonly message: string
  readonly traceback?: string
  /** Default: the highest epoch reported as progress (0 when none). */
  readonly epochsCompleted?: number
}

/** One image's inference result. */
export interface CallbackInferenceResult {
  /** Where the image is (required by the backend), e.g. its `s3://` URI or its key. */
  readonly imagePath: string
  readonly imageName?: string
  /** The model's predictions for the image (default none), e.g. `{class_name, confidence, bbox}`. */
  readonly predictions?: ReadonlyArray<Readonly<Record<string, unknown>>>
  readonly inferenceTimeMs?: number
}

/** Input of `reportInferenceCompleted`. */
export interface CallbackInferenceCompletedReport {
  /** Per-image results. */
  readonly results: ReadonlyArray<CallbackInferenceResult>
  /** Default: the number of results. */
  readonly totalImages?: number
  /** Default: the sum of the results' `inferenceTimeMs` (0 when none has one). */
  readonly totalInferenceTimeMs?: number
  /** Not stored by the backend (its model has no such field); sent when given. */
  readonly resultUrls?: Readonly<Record<string, unknown>>
}

/** Input of `reportEvaluationResults`: the results of an evaluation (test run). */
export interface CallbackEvaluationReport {
  /** Default: the job's task type. */
  readonly taskType?: string
  readonly metrics?: CallbackMetrics
  readonly perClassMetrics?: Readonly<Record<string, CallbackMetrics>>
  readonly classNames?: ReadonlyArray<string>
  /** Images evaluated. */
  readonly numImages?: number
  readonly visualizationUrls?: Readonly<Record<string, string>>
  /** Where the per-image predictions were uploaded (an `s3://` URI). */
  readonly predictionsJsonUri?: string
  /** The evaluation's settings (thresholds, image size, split, ...). */
  readonly config?: Readonly<Record<string, unknown>>
}

/** Input of `reportExportCompleted`; `metadata` is usually built with `exportMetadata`. */
export interface CallbackExportCompletedReport {
  readonly exportFormat: string
  readonly outputS3Uri: string
  readonly fileSizeBytes: number
  readonly metadata: Readonly<Record<string, unknown>>
}

/** Input of `exportMetadata`. */
export interface ExportMetadataInput {
  readonly framework: string
  readonly modelName: string
  readonly exportFormat: string
  readonly taskType: string
  readonly inputShape: ReadonlyArray<number>
  /** Default `float32`. */
  readonly inputDtype?: string
  readonly outputShape: ReadonlyArray<ReadonlyArray<number>>
  /** When the export was made (a `Date` or an ISO-8601 string). */
  readonly createdAt: Date | string
  readonly classNames?: ReadonlyArray<string>
  readonly preprocessing?: Readonly<Record<string, unknown>>
  readonly postprocessing?: Readonly<Record<string, unknown>>
  readonly exportConfig?: Readonly<Record<string, unknown>>
  /** Further keys, merged in last. */
  readonly extra?: Readonly<Record<string, unknown>>
}

/** The callback service. Every method fails only with `CallbackError`. */
export interface CallbackService {
  /**
   * Queues the start of the job. `operation` (default: the job's kind) decides where it and
   * a later `reportFailed` go; for training, `totalEpochs` defaults to the resolved `epochs`.
   * An evaluation has no start endpoint: its start is recorded, nothing is sent.
   * Idempotent: once a start of the same operation was reported, a repeat is not sent again
   * (it would reset the job's progress), except to change the planned epochs before any
   * progress was reported. Never waits on the network; fails only with `reason: "Invalid"`.
   */
  readonly reportStarted: (report?: CallbackStartedReport) => Effect.Effect<void, CallbackError>
  /**
   * Queues the progress after `epoch` epochs and returns at once: it never waits on the
   * network and fails only with `reason: "Invalid"` for a report that breaks the contract
   * (e.g. `totalEpochs` 0). Every report is delivered, in order, exactly once (see
   * `ReportOutbox`). NaN and ±Infinity metric values (which JSON cannot carry) are sent as
   * `null`. `epoch_duration_seconds` and `estimated_time_remaining` are computed from the
   * times between reports. `totalEpochs` defaults to the start's planned total (else the
   * `epochs` config).
   */
  readonly reportProgress: (report: CallbackProgressReport) => Effect.Effect<void, CallbackError>
  /**
   * Queues one epoch's validation results, like progress. Progress and validation exist
   * only for training jobs: for another kind both fail with `reason: "Invalid"` (their
   * endpoints would file the report under the training job with the same id).
   */
  readonly reportValidation: (report: CallbackValidationReport) => Effect.Effect<void, CallbackError>
  /**
   * Reports a successful training run after everything queued before it, and waits for its
   * delivery (at most the shutdown budget): fails with the rejection (4xx) or a `Transient`
   * error when it could not be delivered in time (it stays queued).
   */
  readonly reportCompleted: (report: CallbackCompletionReport) => Effect.Effect<void, CallbackError>
  /**
   * Reports a failure to the completion endpoint of the operation started (training by
   * default), with `error_message` `[errorType] message`; waits like `reportCompleted`.
   */
  readonly reportFailed: (report: CallbackFailureReport) => Effect.Effect<void, CallbackError>
  /** Reports a finished inference run; waits like `reportCompleted`. */
  readonly reportInferenceCompleted: (report: CallbackInferenceCompletedReport) => Effect.Effect<void, CallbackError>
  /** Reports a finished export; waits like `reportCompleted`. */
  readonly reportExportCompleted: (report: CallbackExportCompletedReport) => Effect.Effect<void, CallbackError>
  /**
   * Reports the results of an evaluation (test run): `POST /test_inference/test/{id}/results`
   * with `status: "completed"` (`task_type` defaults to the job's); waits like `reportCompleted`.
   */
  readonly reportEvaluationResults: (report: CallbackEvaluationReport) => Effect.Effect<void, CallbackError>
  /** Waits until everything queued so far is delivered (at most the shutdown budget); never fails. */
  readonly flushProgress: Effect.Effect<void>
  /**
   * Waits for the delivery of the outcome already reported (at most the shutdown budget):
   * `true` once the backend acknowledged it, `false` when it was rejected, not delivered in
   * time, or none was reported.
   */
  readonly awaitOutcome: Effect.Effect<boolean>
  /** What the job has reported so far (for runners deciding what is left to report). */
  readonly lifecycle: Effect.Effect<CallbackLifecycle>
}

/** The reporting state of a job, as `CallbackService.lifecycle` returns it. */
export interface CallbackLifecycle {
  /** The operation chosen by `reportStarted` (the job's kind before any start). */
  readonly operation: CallbackOperation
  /** Whether a start report was queued (it is delivered before anything queued after it). */
  readonly started: boolean
  /** The outcome reported (a completion or a failure), whether or not it was delivered yet. */
  readonly outcome: "completed" | "failed" | undefined
  /** Whether the backend acknowledged that outcome. */
  readonly outcomeDelivered: boolean
  /** Highest epoch reported as progress (0 when none). */
  readonly epochsCompleted: number
}

interface LifecycleState {
  readonly operation: CallbackOperation
  readonly startedAt: number | undefined
  readonly plannedEpochs: number | undefined
  /** Highest epoch reported as progress since the start. */
  readonly epochsCompleted: number | undefined
  readonly timing: ProgressTiming
  readonly outcome: "completed" | "failed" | undefined
  /** The outbox sequence number and path of the outcome report. */
  readonly outcomeReport: { readonly seq: number; readonly path: string } | undefined
  readonly outcomeDelivered: boolean
  /** Whether a start report was queued. */
  readonly startQueued: boolean
}

const initialState: LifecycleState = {
  operation: "training",
  startedAt: undefined,
  plannedEpochs: undefined,
  epochsCompleted: undefined,
  timing: {},
  outcome: undefined,
  outcomeReport: undefined,
  outcomeDelivered: false,
  startQueued: false
}

/** The service of a secondary rank: every report is accepted and nothing is sent. */
export const callbackNoop: CallbackService = {
  reportStarted: () => Effect.void,
  reportProgress: () => Effect.void,
  reportValidation: () => Effect.void,
  reportCompleted: () => Effect.void,
  reportFailed: () => Effect.void,
  reportInferenceCompleted: () => Effect.void,
  reportExportCompleted: () => Effect.void,
  reportEvaluationResults: () => Effect.void,
  flushProgress: Effect.void,
  awaitOutcome: Effect.succeed(true),
  lifecycle: Effect.succeed({
    operation: "training",
    started: false,
    outcome: undefined,
    outcomeDelivered: false,
    epochsCompleted: 0
  })
}

/**
 * What the live service reads (`Callback.config`): the job it reports for, whether this
 * process is rank 0, the task type reported with validation and evaluation results, and
 * the planned epochs (the default `totalEpochs`).
 */
export interface CallbackSettings extends JobIdentity {
  /** Only rank 0 reports (`RANK` / `LOCAL_RANK`). */
  readonly isPrimary: boolean
  /** `TASK_TYPE` as given (default `detection`). */
  readonly taskType: string
  /** The planned epochs (`EPOCHS`, `CONFIG.epochs`, `CONFIG_EPOCHS`; default 100). */
  readonly basicConfig: Pick<BasicConfig, "epochs">
}

/**
 * Builds the live service with `settings` over the `ReportOutbox` in context; secondary
 * ranks get `callbackNoop`.
 */
export const makeCallback = (ctx: CallbackSettings): Effect.Effect<CallbackService, never, ReportOutbox> =>
  Effect.gen(function*() {
    if (!ctx.isPrimary) return callbackNoop
    const outbox: ReportOutboxService = yield* ReportOutbox
    const jobId = ctx.jobId
    const progressPath = callbackPaths.trainingProgress(jobId)
    const state = yield* Ref.make<LifecycleState>({ ...initialState, operation: ctx.kind })
    /** Progress and validation are training endpoints: another kind's id would address a different job. */
    const trainingOnly = (what: string, path: string) =>
      ctx.kind === "training" ? Effect.void : Effect.fail(
        new CallbackError({
          reason: "Invalid",
          path,
          detail: `${what} reports exist only for training jobs; this is an ${ctx.kind} job (${ctx.kind} id ${jobId})`
        })
      )

    /** Encodes `body` through its schema and queues it; a body that breaks the contract fails `Invalid`. */
    const queue = <A, I>(kind: ReportKind, path: string, schema: Schema.Schema<A, I>, body: A) =>
      Either.match(encodeBody(schema, path, body), {
        onLeft: (error) => Effect.fail(error),
        onRight: (encoded) => outbox.offer({ kind, path, body: encoded })
      })

    const now = Clock.currentTimeMillis
    const finishedEpochs = (s: LifecycleState): number => s.epochsCompleted ?? 0

    /** Queues an outcome, records it as the job's outcome, and waits for its delivery. */
    const outcome = <A, I>(
      status: "completed" | "failed",
      path: string,
      schema: Schema.Schema<A, I>,
      body: A
    ): Effect.Effect<void, CallbackError> =>
      Effect.gen(function*() {
        const seq = yield* queue("outcome", path, schema, body)
        yield* Ref.update(state, (s) => ({
          ...s,
          outcome: status,
          outcomeReport: seq === undefined ? undefined : { seq, path },
          outcomeDelivered: false
        }))
        if (seq === undefined) return
        yield* outbox.awaitDelivery(seq, path)
        yield* Ref.update(state, (s) => (s.outcomeReport?.seq === seq ? { ...s, outcomeDelivered: true } : s))
      })

    /** A completion outcome whose body carries the time it is reported at. */
    const completedNow = <A, I>(path: string, schema: Schema.Schema<A, I>, body: (timestamp: string) => A) =>
      Effect.flatMap(now, (at) => outcome("completed", path, schema, body(isoTimestamp(at))))

    return {
      reportStarted: Effect.fn("Callback.reportStarted")(function*(report: CallbackStartedReport = {}) {
        const operation = report.operation ?? ctx.kind
        const at = yield* now
        const plannedEpochs = operation === "training" ? report.totalEpochs ?? ctx.basicConfig.epochs : undefined
        const previous = yield* Ref.get(state)
        const repeat = previous.startQueued && previous.operation === operation && previous.outcome === undefined
        if (repeat && (previous.plannedEpochs === plannedEpochs || previous.epochsCompleted !== undefined)) {
          return yield* Effect.logDebug(`Start of ${operation} already reported; not sent again`)
        }
        yield* Effect.annotateCurrentSpan("operation", operation)
        yield* operation === "training"
          ? queue("started", progressPath, TrainingStartedBody, trainingStartedBody(jobId, plannedEpochs!))
          : operation === "inference"
          ? queue("started", callbackPaths.inferenceStarted(jobId), InferenceStartedBody, operationStartedBody(jobId, "inference", isoTimestamp(at)))
          : operation === "export"
          ? queue("started", callbackPaths.exportStarted(jobId), ExportStartedBody, operationStartedBody(jobId, "export", isoTimestamp(at)))
          : Effect.logDebug("An evaluation has no start endpoint; its start is recorded only")
        yield* Ref.set(state, {
          ...initialState,
          operation,
          startedAt: repeat ? previous.startedAt : at,
          plannedEpochs,
          timing: operation === "training" ? timingAtStart(at) : {},
          startQueued: true
        })
      }),

      reportProgress: Effect.fn("Callback.reportProgress")(function*(report: CallbackProgressReport) {
        yield* trainingOnly("Progress", progressPath)
        const at = yield* now
        const current = yield* Ref.get(state)
        const totalEpochs = report.totalEpochs ?? current.plannedEpochs ?? ctx.basicConfig.epochs
        const [timing, nextTiming] = advanceTiming(current.timing, report.epoch, totalEpochs, at)
        yield* queue("progress", progressPath, TrainingProgressBody, progressBody(jobId, report, totalEpochs, timing))
        yield* Ref.set(state, {
          ...current,
          timing: nextTiming,
          epochsCompleted: Math.max(current.epochsCompleted ?? 0, report.epoch)
        })
      }),

      reportValidation: Effect.fn("Callback.reportValidation")(function*(report: CallbackValidationReport) {
        yield* trainingOnly("Validation", callbackPaths.validationResults(jobId))
        const timestamp = isoTimestamp(yield* now)
        yield* queue(
          "validation",
          callbackPaths.validationResults(jobId),
          ValidationBody,
          validationBody(jobId, ctx.taskType, report, timestamp)
        )
      }),

      reportCompleted: Effect.fn("Callback.reportCompleted")(function*(report: CallbackCompletionReport) {
        const at = yield* now
        const s = yield* Ref.get(state)
        const epochs = report.totalEpochs ?? s.epochsCompleted ?? s.plannedEpochs ?? ctx.basicConfig.epochs
        const duration = s.startedAt === undefined ? undefined : Math.max(0, at - s.startedAt) / 1000
        return yield* outcome(
          "completed",
          callbackPaths.trainingCompletion(jobId),
          CompletionBody,
          completionBody(jobId, report, epochs, duration)
        )
      }),

      reportFailed: Effect.fn("Callback.reportFailed")(function*(report: CallbackFailureReport) {
        const s = yield* Ref.get(state)
        yield* Effect.annotateCurrentSpan("operation", s.operation)
        if (s.operation === "evaluation") {
          return yield* outcome("failed", callbackPaths.evaluationResults(jobId), EvaluationResultsBody, evaluationFailedBody(ctx.taskType, report))
        }
        const path = s.operation === "inference"
          ? callbackPaths.inferenceCompletion(jobId)
          : s.operation === "export"
          ? callbackPaths.exportCompletion(jobId)
          : callbackPaths.trainingCompletion(jobId)
        return yield* outcome("failed", path, FailedBody, failedBody(jobId, report, report.epochsCompleted ?? finishedEpochs(s)))
      }),

      reportInferenceCompleted: Effect.fn("Callback.reportInferenceCompleted")(function*(report: CallbackInferenceCompletedReport) {
        return yield* completedNow(callbackPaths.inferenceCompletion(jobId), InferenceCompletedBody, (timestamp) =>
          inferenceCompletedBody(jobId, report, timestamp))
      }),

      reportExportCompleted: Effect.fn("Callback.reportExportCompleted")(function*(report: CallbackExportCompletedReport) {
        return yield* completedNow(callbackPaths.exportCompletion(jobId), ExportCompletedBody, (timestamp) =>
          exportCompletedBody(jobId, report, timestamp))
      }),

      reportEvaluationResults: Effect.fn("Callback.reportEvaluationResults")(function*(report: CallbackEvaluationReport) {
        return yield* outcome(
          "completed",
          callbackPaths.evaluationResults(jobId),
          EvaluationResultsBody,
          evaluationResultsBody(ctx.taskType, report)
        )
      }),

      flushProgress: Effect.asVoid(outbox.drain),

      awaitOutcome: Effect.gen(function*() {
        const s = yield* Ref.get(state)
        if (s.outcomeDelivered) return true
        if (s.outcomeReport === undefined) return false
        const { path, seq } = s.outcomeReport
        const delivered = yield* outbox.awaitDelivery(seq, path).pipe(
          Effect.as(true),
          Effect.catchAll((error) => Effect.as(Effect.logError("Outcome report not delivered", error.message), false))
        )
        if (delivered) yield* Ref.update(state, (now) => (now.outcomeReport?.seq === seq ? { ...now, outcomeDelivered: true } : now))
        return delivered
      }),

      lifecycle: Effect.map(Ref.get(state), (s): CallbackLifecycle => ({
        operation: s.operation,
        started: s.startQueued,
        outcome: s.outcome,
        outcomeDelivered: s.outcomeDelivered,
        epochsCompleted: finishedEpochs(s)
      }))
    } satisfies CallbackService
  })

/** One request the in-memory backend accepted (answered 2xx). */
export interface CallbackRequest {
  /** Path relative to `CALLBACK_URL`, e.g. `/training/jobs/1/callback/progress`. */
  readonly path: string
  /** The decoded JSON body. */
  readonly body: unknown
}

/** One attempt that reached the in-memory backend, with how it was answered. */
export interface CallbackAttempt extends CallbackRequest {
  /** The HTTP status answered, or `network` for a simulated connection failure. */
  readonly outcome: number | "network"
}

/** A scripted failure: an HTTP status (with optional response text) or a network error. */
export type CallbackFailure = { readonly status: number; readonly body?: string } | "network"

/** The recorder's handle, as exposed by `CallbackTest`. */
export interface CallbackRecorder {
  /** Requests the backend accepted, decoded, in wire order. */
  readonly requests: Effect.Effect<ReadonlyArray<CallbackRequest>>
  /** Every attempt, failed ones included, in wire order. */
  readonly attempts: Effect.Effect<ReadonlyArray<CallbackAttempt>>
  /** Makes the next `times` attempts fail this way (after failures already scripted). */
  readonly failNext: (times: number, failure: CallbackFailure) => Effect.Effect<void>
  /** Forgets recorded requests, attempts and scripted failures. */
  readonly clear: Effect.Effect<void>
}

/** Test handle of `Callback.layerTest()`: what was sent, and scripted failures. */
export class CallbackTest extends Context.Tag("trainer-sdk/CallbackTest")<CallbackTest, CallbackRecorder>() {}

/** The callback service: `const callback = yield* Callback`. */
export class Callback extends Context.Tag("trainer-sdk/Callback")<Callback, CallbackService>() {
  /** What the live service reads through `Config`: the job's id variable, `RANK` / `LOCAL_RANK`, `TASK_TYPE`, the planned epochs. */
  static readonly config: Config.Config<CallbackSettings> = callbackSectionConfig

  /**
   * The live service over the job's `ReportOutbox` (shared with `LogBuffer`) with `settings`:
   * values (e.g. a job context) or a `Config`, where an invalid value is a `ConfigError`
   * naming the variable.
   */
  static readonly layerConfig = <S extends CallbackSettings | Config.Config<CallbackSettings>>(
    settings: S
  ): Layer.Layer<Callback, SettingsError<S>, ReportOutbox> => settingsLayer(Callback, settings, makeCallback)

  /** `layerConfig(Callback.config)`: the live service configured from the environment. */
  static readonly layer: Layer.Layer<Callback, ConfigError, ReportOutbox> = Callback.layerConfig(callbackSectionConfig)

  /** A service that sends nothing (what secondary ranks get). */
  static readonly layerNoop: Layer.Layer<Callback> = Layer.succeed(Callback, callbackNoop)

  /**
   * The live service over a memory-only outbox (also provided) and an in-memory backend,
   * both with the settings of the `JobContext` in context: `CallbackTest` exposes every
   * request (path and decoded body, in wire order) and can script failures. Retries wait
   * the job context's `callbackRetryDelay` on the `Clock` (set it to zero, or drive TestClock).
   */
  static readonly layerTest = (): Layer.Layer<Callback | CallbackTest | ReportOutbox, never, JobContext> => Callback.sharedTestLayer

  /** The one instance `layerTest()` returns, so a layer provided twice is built once. */
  private static readonly sharedTestLayer: Layer.Layer<Callback | CallbackTest | ReportOutbox, never, JobContext> = Layer.unwrapEffect(
    Effect.gen(function*() {
      const ctx = yield* JobContext
      const { client, recorder } = yield* makeCallbackRecorder(ctx.callbackUrl)
      return Layer.merge(
        Layer.succeed(CallbackTest, recorder),
        Callback.layerConfig(ctx).pipe(
          Layer.provideMerge(ReportOutbox.layerConfig(ctx, { dir: null })),
          Layer.provide(Layer.succeed(HttpClient.HttpClient, client))
        )
      )
    })
  )
}
