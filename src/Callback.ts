/**
 * The lifecycle callbacks of a job to the platform backend: started, progress, validation,
 * completed, failed, inference and export results.
 *
 * Progress never waits on the network: it is queued and delivered by a background fiber,
 * newest first when reports pile up. Every other report is delivered synchronously after
 * any pending progress, so the wire order is always started → progress… → outcome.
 *
 * @since 0.1.0
 */
import { HttpClient } from "@effect/platform"
import { Clock, Context, Duration, Effect, Either, Layer, Option, Queue, Ref, Schedule, type Schema, type Scope } from "effect"
import { CallbackError } from "./Errors.js"
import { bestEffortWithin } from "./internal/bestEffort.js"
import { JobContext } from "./JobContext.js"
import { callbackRetrySchedule, isTransient, makeBackendClient } from "./internal/backendClient.js"
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
import { type CallbackRecorder, makeCallbackRecorder } from "./internal/callbackRecorder.js"
import {
  advanceTiming,
  type CallbackOperation,
  type CallbackCompletionReport,
  completionBody,
  encodeBody,
  type CallbackEvaluationReport,
  evaluationFailedBody,
  evaluationResultsBody,
  type CallbackExportCompletedReport,
  exportCompletedBody,
  failedBody,
  type CallbackFailureReport,
  type CallbackInferenceCompletedReport,
  inferenceCompletedBody,
  isoTimestamp,
  operationStartedBody,
  type CallbackProgressReport,
  progressBody,
  type ProgressTiming,
  type CallbackStartedReport,
  timingAtStart,
  trainingStartedBody,
  type CallbackValidationReport,
  validationBody
} from "./internal/callbackReports.js"

export type { CallbackAttempt, CallbackFailure, CallbackRecorder, CallbackRequest } from "./internal/callbackRecorder.js"
export {
  type CallbackMetrics,
  type CallbackOperation,
  type CallbackCompletionReport,
  type CallbackEvaluationReport,
  type CallbackExportCompletedReport,
  exportMetadata,
  type ExportMetadataInput,
  type CallbackFailureReport,
  type CallbackInferenceCompletedReport,
  type CallbackInferenceResult,
  type CallbackProgressReport,
  type CallbackStartedReport,
  type CallbackValidationImageResult,
  type CallbackValidationReport
} from "./internal/callbackReports.js"

/** The callback service. Every method fails only with `CallbackError`. */
export interface CallbackService {
  /**
   * Announces the start of the job. `operation` (default: the job's kind) decides where it
   * and a later `reportFailed` go; for training, `totalEpochs` defaults to the resolved
   * `epochs`. An evaluation has no start endpoint: its start is recorded, nothing is sent.
   * Idempotent: once the backend has accepted a start of the same operation, a repeat is
   * not sent again (it would reset the job's progress), except to change the planned epochs
   * before any progress was reported.
   */
  readonly reportStarted: (report?: CallbackStartedReport) => Effect.Effect<void, CallbackError>
  /**
   * Queues the progress after `epoch` epochs and returns at once; it never waits on the
   * network and fails only with `reason: "Invalid"` for a report that breaks the contract
   * (e.g. `totalEpochs` 0). A background fiber delivers it with the retry policy; when
   * reports pile up behind a slow backend only the newest is sent. Delivery failures are
   * logged, not raised. NaN and ±Infinity metric values (which JSON cannot carry) are sent
   * as `null` and the report still goes out. `epoch_duration_seconds` and
   * `estimated_time_remaining` are computed from the times between reports. `totalEpochs`
   * defaults to the start's planned total (else the `epochs` config).
   */
  readonly reportProgress: (report: CallbackProgressReport) => Effect.Effect<void, CallbackError>
  /**
   * Sends one epoch's validation results (after pending progress). Progress and validation
   * exist only for training jobs: for another kind both fail with `reason: "Invalid"`
   * (their endpoints would file the report under the training job with the same id).
   */
  readonly reportValidation: (report: CallbackValidationReport) => Effect.Effect<void, CallbackError>
  /** Reports a successful training run (after pending progress). */
  readonly reportCompleted: (report: CallbackCompletionReport) => Effect.Effect<void, CallbackError>
  /**
   * Reports a failure to the completion endpoint of the operation started (training by
   * default), with `error_message` `[errorType] message`.
   */
  readonly reportFailed: (report: CallbackFailureReport) => Effect.Effect<void, CallbackError>
  /** Reports a finished inference run. */
  readonly reportInferenceCompleted: (report: CallbackInferenceCompletedReport) => Effect.Effect<void, CallbackError>
  /** Reports a finished export. */
  readonly reportExportCompleted: (report: CallbackExportCompletedReport) => Effect.Effect<void, CallbackError>
  /**
   * Reports the results of an evaluation (test run): `POST /test_inference/test/{id}/results`
   * with `status: "completed"`; `task_type` defaults to the job's.
   */
  readonly reportEvaluationResults: (report: CallbackEvaluationReport) => Effect.Effect<void, CallbackError>
  /** Delivers pending progress now (bounded by the retry policy); never fails. */
  readonly flushProgress: Effect.Effect<void>
  /** What the job has reported so far (for runners deciding what is left to report). */
  readonly lifecycle: Effect.Effect<CallbackLifecycle>
}

/** The reporting state of a job, as `CallbackService.lifecycle` returns it. */
export interface CallbackLifecycle {
  /** The operation chosen by `reportStarted` (the job's kind before any start). */
  readonly operation: CallbackOperation
  /** Whether the backend accepted a start report. */
  readonly started: boolean
  /** The outcome the backend accepted (a completion or a failure report), if any. */
  readonly outcome: "completed" | "failed" | undefined
  /** Highest epoch reported as progress (0 when none). */
  readonly epochsCompleted: number
}

/** Tuning of the live service. */
export interface CallbackOptions {
  /** Time allowed for one HTTP attempt. Default 60 s (the Python client's read timeout). */
  readonly attemptTimeout?: Duration.DurationInput
  /** How long closing the layer waits for pending progress. Default 10 s. */
  readonly flushTimeout?: Duration.DurationInput
}

interface LifecycleState {
  readonly operation: CallbackOperation
  readonly startedAt: number | undefined
  readonly plannedEpochs: number | undefined
  /** Highest epoch reported as progress since the start. */
  readonly epochsCompleted: number | undefined
  readonly timing: ProgressTiming
  readonly outcome: "completed" | "failed" | undefined
  /** Whether the backend accepted the start report. */
  readonly startDelivered: boolean
}

const initialState: LifecycleState = {
  operation: "training",
  startedAt: undefined,
  plannedEpochs: undefined,
  epochsCompleted: undefined,
  timing: {},
  outcome: undefined,
  startDelivered: false
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
  lifecycle: Effect.succeed({ operation: "training", started: false, outcome: undefined, epochsCompleted: 0 })
}

/**
 * Builds the live service over the `HttpClient` in context; secondary ranks get
 * `callbackNoop`. The progress fiber lives in the surrounding scope, and closing it
 * delivers pending progress (at most `flushTimeout`).
 */
export const makeCallback = (
  options: CallbackOptions = {}
): Effect.Effect<CallbackService, never, JobContext | HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const ctx = yield* JobContext
    const client = yield* HttpClient.HttpClient
    if (!ctx.isPrimary) return callbackNoop

    const backend = makeBackendClient(ctx, client, options.attemptTimeout === undefined ? {} : { attemptTimeout: options.attemptTimeout })
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
    const pending = yield* Ref.make(Option.none<unknown>())
    const wake = yield* Queue.sliding<void>(1)
    const wire = yield* Effect.makeSemaphore(1)

    // A progress report stops retrying once a newer one is waiting: the backend keeps the latest state.
    const progressSchedule = callbackRetrySchedule(ctx).pipe(
      Schedule.checkEffect(() => Effect.map(Ref.get(pending), Option.isNone))
    )
    const deliverPending = Effect.flatMap(
      Ref.getAndSet(pending, Option.none()),
      Option.match({
        onNone: () => Effect.void,
        onSome: (body) =>
          backend.postOnce(progressPath, body).pipe(
            Effect.retry({ schedule: progressSchedule, while: isTransient }),
            Effect.catchAll((error) => Effect.logWarning("Progress report not delivered", error.message)),
            Effect.withSpan("Callback.deliverProgress")
          )
      })
    )
    const flushProgress = wire.withPermits(1)(deliverPending)

    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Queue.take(wake), flushProgress)))
    yield* Effect.addFinalizer(() =>
      bestEffortWithin(options.flushTimeout ?? Duration.seconds(10))(flushProgress)
    )

    /** Encodes `body` and sends it after pending progress, holding the wire. */
    const send = <A, I>(path: string, schema: Schema.Schema<A, I>, body: A): Effect.Effect<void, CallbackError> =>
      Either.match(encodeBody(schema, path, body), {
        onLeft: (error) => Effect.fail(error),
        onRight: (encoded) => wire.withPermits(1)(Effect.zipRight(deliverPending, backend.post(path, encoded)))
      })

    const now = Clock.currentTimeMillis
    /** Records an outcome once the backend accepted it. */
    const delivered = (outcome: "completed" | "failed") => Ref.update(state, (s) => ({ ...s, outcome }))
    const finishedEpochs = (s: LifecycleState): number => s.epochsCompleted ?? 0

    return {
      reportStarted: Effect.fn("Callback.reportStarted")(function*(report: CallbackStartedReport = {}) {
        const operation = report.operation ?? ctx.kind
        const at = yield* now
        const plannedEpochs = operation === "training" ? report.totalEpochs ?? ctx.basicConfig.epochs : undefined
        const previous = yield* Ref.get(state)
        const repeat = previous.startDelivered && previous.operation === operation && previous.outcome === undefined
        if (repeat && (previous.plannedEpochs === plannedEpochs || previous.epochsCompleted !== undefined)) {
          return yield* Effect.logDebug(`Start of ${operation} already reported; not sent again`)
        }
        yield* Ref.set(state, {
          operation,
          startedAt: repeat ? previous.startedAt : at,
          plannedEpochs,
          epochsCompleted: undefined,
          timing: operation === "training" ? timingAtStart(at) : {},
          outcome: undefined,
          startDelivered: false
        })
        yield* Effect.annotateCurrentSpan("operation", operation)
        const sent = operation === "training"
          ? send(progressPath, TrainingStartedBody, trainingStartedBody(jobId, plannedEpochs!))
          : operation === "inference"
          ? send(callbackPaths.inferenceStarted(jobId), InferenceStartedBody, operationStartedBody(jobId, "inference", isoTimestamp(at)))
          : operation === "export"
          ? send(callbackPaths.exportStarted(jobId), ExportStartedBody, operationStartedBody(jobId, "export", isoTimestamp(at)))
          : Effect.logDebug("An evaluation has no start endpoint; its start is recorded only")
        return yield* Effect.zipRight(sent, Ref.update(state, (s) => ({ ...s, startDelivered: true })))
      }),

      reportProgress: Effect.fn("Callback.reportProgress")(function*(report: CallbackProgressReport) {
        yield* trainingOnly("Progress", progressPath)
        const at = yield* now
        const current = yield* Ref.get(state)
        const totalEpochs = report.totalEpochs ?? current.plannedEpochs ?? ctx.basicConfig.epochs
        const [timing, nextTiming] = advanceTiming(current.timing, report.epoch, totalEpochs, at)
        const body = yield* encodeBody(TrainingProgressBody, progressPath, progressBody(jobId, report, totalEpochs, timing))
        yield* Ref.set(state, {
          ...current,
          timing: nextTiming,
          epochsCompleted: Math.max(current.epochsCompleted ?? 0, report.epoch)
        })
        yield* Ref.set(pending, Option.some(body))
        yield* Queue.offer(wake, undefined)
      }),

      reportValidation: Effect.fn("Callback.reportValidation")(function*(report: CallbackValidationReport) {
        yield* trainingOnly("Validation", callbackPaths.validationResults(jobId))
        const timestamp = isoTimestamp(yield* now)
        return yield* send(
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
        return yield* send(
          callbackPaths.trainingCompletion(jobId),
          CompletionBody,
          completionBody(jobId, report, epochs, duration)
        ).pipe(Effect.zipRight(delivered("completed")))
      }),

      reportFailed: Effect.fn("Callback.reportFailed")(function*(report: CallbackFailureReport) {
        const s = yield* Ref.get(state)
        yield* Effect.annotateCurrentSpan("operation", s.operation)
        if (s.operation === "evaluation") {
          return yield* send(
            callbackPaths.evaluationResults(jobId),
            EvaluationResultsBody,
            evaluationFailedBody(ctx.taskType, report)
          ).pipe(Effect.zipRight(delivered("failed")))
        }
        const path = s.operation === "inference"
          ? callbackPaths.inferenceCompletion(jobId)
          : s.operation === "export"
          ? callbackPaths.exportCompletion(jobId)
          : callbackPaths.trainingCompletion(jobId)
        return yield* send(path, FailedBody, failedBody(jobId, report, report.epochsCompleted ?? finishedEpochs(s))).pipe(
          Effect.zipRight(delivered("failed"))
        )
      }),

      reportInferenceCompleted: Effect.fn("Callback.reportInferenceCompleted")(function*(report: CallbackInferenceCompletedReport) {
        const timestamp = isoTimestamp(yield* now)
        return yield* send(
          callbackPaths.inferenceCompletion(jobId),
          InferenceCompletedBody,
          inferenceCompletedBody(jobId, report, timestamp)
        ).pipe(Effect.zipRight(delivered("completed")))
      }),

      reportExportCompleted: Effect.fn("Callback.reportExportCompleted")(function*(report: CallbackExportCompletedReport) {
        const timestamp = isoTimestamp(yield* now)
        return yield* send(
          callbackPaths.exportCompletion(jobId),
          ExportCompletedBody,
          exportCompletedBody(jobId, report, timestamp)
        ).pipe(Effect.zipRight(delivered("completed")))
      }),

      reportEvaluationResults: Effect.fn("Callback.reportEvaluationResults")(function*(report: CallbackEvaluationReport) {
        return yield* send(
          callbackPaths.evaluationResults(jobId),
          EvaluationResultsBody,
          evaluationResultsBody(ctx.taskType, report)
        ).pipe(Effect.zipRight(delivered("completed")))
      }),

      flushProgress,

      lifecycle: Effect.map(Ref.get(state), (s): CallbackLifecycle => ({
        operation: s.operation,
        started: s.startDelivered,
        outcome: s.outcome,
        epochsCompleted: finishedEpochs(s)
      }))
    } satisfies CallbackService
  })

/** Test handle of `Callback.layerTest`: what was sent, and scripted failures. */
export class CallbackTest extends Context.Tag("trainer-sdk/CallbackTest")<CallbackTest, CallbackRecorder>() {}

/** The callback service: `const callback = yield* Callback`. */
export class Callback extends Context.Tag("trainer-sdk/Callback")<Callback, CallbackService>() {
  /** The live service over `HttpClient` (provide the Node client where the SDK is assembled). */
  static readonly layer: Layer.Layer<Callback, never, JobContext | HttpClient.HttpClient> = Layer.scoped(
    Callback,
    makeCallback()
  )

  /** A service that sends nothing (what secondary ranks get). */
  static readonly layerNoop: Layer.Layer<Callback> = Layer.succeed(Callback, callbackNoop)

  /**
   * The live service over an in-memory backend: `CallbackTest` exposes every request
   * (path and decoded body, in wire order) and can script failures. Retries wait the
   * job context's `callbackRetryDelay` on the `Clock` (set it to zero, or drive TestClock).
   */
  static readonly layerTest: Layer.Layer<Callback | CallbackTest, never, JobContext> = Layer.unwrapEffect(
    Effect.gen(function*() {
      const ctx = yield* JobContext
      const { client, recorder } = yield* makeCallbackRecorder(ctx.callbackUrl)
      return Layer.merge(
        Layer.succeed(CallbackTest, recorder),
        Layer.scoped(Callback, makeCallback()).pipe(Layer.provide(Layer.succeed(HttpClient.HttpClient, client)))
      )
    })
  )
}
