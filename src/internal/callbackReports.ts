/**
 * Pure building blocks of the callback service: the translation of the report inputs (declared
 * in `Callback.ts`) into wire bodies, progress timing, and encoding through the body schemas.
 */
import { Either, ParseResult, Schema } from "effect"
import type {
  CallbackCompletionReport,
  CallbackEvaluationReport,
  CallbackExportCompletedReport,
  CallbackFailureReport,
  CallbackInferenceCompletedReport,
  CallbackInferenceResult,
  CallbackMetrics,
  CallbackProgressReport,
  CallbackValidationImageResult,
  CallbackValidationReport,
  ExportMetadataInput
} from "../Callback.js"
import { CallbackError, type ErrorType } from "../Errors.js"
import type {
  CompletionBody,
  EvaluationResultsBody,
  ExportCompletedBody,
  FailedBody,
  InferenceCompletedBody,
  InferenceResultBody,
  MetricsBlock,
  TrainingProgressBody,
  TrainingStartedBody,
  ValidationBody,
  ValidationImageResultBody
} from "./callbackBodies.js"

/** A copy of `record` without its `undefined` values (optional wire fields are absent, not null). */
const defined = <A extends Record<string, unknown>>(record: A): A => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(record)) if (value !== undefined) out[key] = value
  return out as A
}

/** A metric as JSON can carry it: finite numbers as they are, anything else `null`. */
export const finiteOrNull = (value: number | null | undefined): number | null =>
  typeof value === "number" && Number.isFinite(value) ? value : null

/** Every metric with non-finite values as `null`. */
export const metricMap = (metrics: CallbackMetrics): Record<string, number | null> => {
  const out: Record<string, number | null> = {}
  for (const [key, value] of Object.entries(metrics)) out[key] = finiteOrNull(value)
  return out
}

/** The first of `keys` present in `metrics` (a 0 is present; `null`/absent is not). */
const firstPresent = (metrics: CallbackMetrics, keys: ReadonlyArray<string>): number | null => {
  for (const key of keys) {
    const value = metrics[key]
    if (value !== undefined && value !== null) return finiteOrNull(value)
  }
  return null
}

/**
 * The spec's metrics block. `accuracy` falls back to `mAP50-95`; `learning_rate` falls back
 * to `lr` except for completion reports (`kind: "completion"`).
 */
export const metricsBlock = (metrics: CallbackMetrics, kind: "progress" | "completion"): MetricsBlock => ({
  loss: firstPresent(metrics, ["loss"]),
  accuracy: firstPresent(metrics, ["accuracy", "mAP50-95"]),
  learning_rate: firstPresent(metrics, kind === "progress" ? ["learning_rate", "lr"] : ["learning_rate"]),
  extra_metrics: metricMap(metrics)
})

/** `epoch / totalEpochs * 100`, kept within [0, 100] (NaN for a non-positive total). */
export const progressPercent = (epoch: number, totalEpochs: number): number =>
  totalEpochs > 0 ? Math.min(100, Math.max(0, (epoch / totalEpochs) * 100)) : Number.NaN

/** What the SDK remembers between progress reports to time epochs. */
export interface ProgressTiming {
  /** Where averaging starts: `reportStarted` (epoch 0) or the first progress report. */
  readonly origin?: { readonly epoch: number; readonly at: number }
  /** The latest report that advanced the epoch. */
  readonly last?: { readonly epoch: number; readonly at: number }
  /** Seconds per epoch measured by the latest advance. */
  readonly lastEpochSeconds?: number
}

/** Timing fields of a progress body, present only when they can be computed. */
export interface ProgressTimingFields {
  readonly epochDurationSeconds?: number
  readonly estimatedTimeRemaining?: number
}

/** Timing after `reportStarted` at `now` (epoch-clock milliseconds). */
export const timingAtStart = (now: number): ProgressTiming => ({ origin: { epoch: 0, at: now }, last: { epoch: 0, at: now } })

/**
 * Folds one progress report at `now` into the timing: the duration of the latest epoch(s)
 * and the remaining time at the mean epoch duration since the origin. A report whose epoch
 * went backwards (a restarted loop) starts timing afresh.
 */
export const advanceTiming = (
  timing: ProgressTiming,
  epoch: number,
  totalEpochs: number,
  now: number
): readonly [ProgressTimingFields, ProgressTiming] => {
  const { last, origin } = timing
  if (last === undefined || origin === undefined || epoch < last.epoch) {
    return [{}, { origin: { epoch, at: now }, last: { epoch, at: now } }]
  }
  const next: ProgressTiming = epoch > last.epoch
    ? { origin, last: { epoch, at: now }, lastEpochSeconds: Math.max(0, now - last.at) / 1000 / (epoch - last.epoch) }
    : timing
  const mean = next.last!.epoch > origin.epoch
    ? Math.max(0, next.last!.at - origin.at) / 1000 / (next.last!.epoch - origin.epoch)
    : undefined
  return [
    defined({
      epochDurationSeconds: next.lastEpochSeconds,
      estimatedTimeRemaining: mean === undefined ? undefined : mean * Math.max(0, totalEpochs - epoch)
    }),
    next
  ]
}

/** The training-started body. */
export const trainingStartedBody = (jobId: number, totalEpochs: number): TrainingStartedBody => ({
  job_id: jobId,
  status: "running",
  current_epoch: 0,
  total_epochs: totalEpochs,
  progress_percent: 0,
  metrics: null,
  checkpoint_path: null
})

/** The inference- or export-started body. */
export const operationStartedBody = <Op extends "inference" | "export">(
  jobId: number,
  operation: Op,
  timestamp: string
): { readonly type: "started"; readonly job_id: number; readonly operation_type: Op; readonly timestamp: string } => ({
  type: "started",
  job_id: jobId,
  operation_type: operation,
  timestamp
})

/** The progress body for one report, out of `totalEpochs` (the report's, else the planned total). */
export const progressBody = (
  jobId: number,
  report: CallbackProgressReport,
  totalEpochs: number,
  timing: ProgressTimingFields
): TrainingProgressBody =>
  defined({
    job_id: jobId,
    status: "running" as const,
    current_epoch: report.epoch,
    total_epochs: totalEpochs,
    progress_percent: progressPercent(report.epoch, totalEpochs),
    metrics: metricsBlock(report.metrics, "progress"),
    extra_data: report.extraData,
    checkpoint_path: report.checkpointPath,
    best_checkpoint_path: report.bestCheckpointPath,
    epoch_duration_seconds: timing.epochDurationSeconds,
    estimated_time_remaining: timing.estimatedTimeRemaining,
    logs: report.logs
  })

const imageResultBody = (r: CallbackValidationImageResult): ValidationImageResultBody =>
  defined({
    image_name: r.imageName,
    is_correct: r.isCorrect,
    image_index: r.imageIndex,
    true_label: r.trueLabel,
    true_label_id: r.trueLabelId,
    predicted_label: r.predictedLabel,
    predicted_label_id: r.predictedLabelId,
    confidence: r.confidence === undefined ? undefined : finiteOrNull(r.confidence),
    top5_predictions: r.top5Predictions,
    true_boxes: r.trueBoxes,
    predicted_boxes: r.predictedBoxes,
    iou: r.iou === undefined ? undefined : finiteOrNull(r.iou),
    extra_data: r.extraData
  })

/** The validation body; `taskType` is the fallback when the report names none. */
export const validationBody = (
  jobId: number,
  taskType: string,
  report: CallbackValidationReport,
  timestamp: string
): ValidationBody =>
  defined({
    type: "validation" as const,
    job_id: jobId,
    epoch: report.epoch,
    task_type: report.taskType ?? taskType,
    primary_metric_name: report.primaryMetric[0],
    primary_metric_value: finiteOrNull(report.primaryMetric[1]),
    metrics: metricMap(report.allMetrics),
    is_best: report.isBest ?? false,
    timestamp,
    class_names: report.classNames,
    visualization_urls: report.visualizationUrls,
    per_class_metrics: metricMaps(report.perClassMetrics),
    overall_loss: report.overallLoss === undefined ? undefined : finiteOrNull(report.overallLoss),
    confusion_matrix: report.confusionMatrix,
    pr_curves: report.prCurves,
    sample_correct_images: report.sampleCorrectImages,
    sample_incorrect_images: report.sampleIncorrectImages,
    image_results: report.imageResults?.map(imageResultBody)
  })

/** The training-completed body, given the epochs completed and the run's duration if known. */
export const completionBody = (
  jobId: number,
  report: CallbackCompletionReport,
  epochsCompleted: number,
  totalDurationSeconds: number | undefined
): CompletionBody =>
  defined({
    job_id: jobId,
    status: "completed" as const,
    total_epochs_completed: epochsCompleted,
    final_metrics: metricsBlock(report.finalMetrics, "completion"),
    exit_code: 0 as const,
    best_checkpoint_path: report.checkpoints?.best,
    last_checkpoint_path: report.checkpoints?.last,
    extra_data: report.extraData,
    best_metrics: report.bestMetrics === undefined ? undefined : metricsBlock(report.bestMetrics, "completion"),
    best_epoch: report.bestEpoch,
    final_checkpoint_path: report.finalCheckpointPath,
    model_artifacts_path: report.modelArtifactsPath,
    mlflow_run_id: report.mlflowRunId,
    total_duration_seconds: report.totalDurationSeconds ?? totalDurationSeconds
  })

/** `[ErrorType] message`, without doubling a prefix the message already carries. */
export const failedErrorMessage = (errorType: ErrorType, message: string): string =>
  message.startsWith(`[${errorType}]`) ? message : `[${errorType}] ${message}`

/** The failure body, given the epochs completed. */
export const failedBody = (jobId: number, report: CallbackFailureReport, epochsCompleted: number): FailedBody =>
  defined({
    job_id: jobId,
    status: "failed" as const,
    total_epochs_completed: epochsCompleted,
    error_message: failedErrorMessage(report.errorType, report.message),
    exit_code: 1 as const,
    traceback: report.traceback
  })

/** One inference result on the wire (`predictions` always present). */
export const inferenceResultBody = (result: CallbackInferenceResult): InferenceResultBody =>
  defined({
    image_path: result.imagePath,
    image_name: result.imageName,
    predictions: (result.predictions ?? []).map((p) => ({ ...p })),
    inference_time_ms: result.inferenceTimeMs
  })

/**
 * The inference-completed body: totals default to the results' count and summed times; the
 * average is 0 when there are no images.
 */
export const inferenceCompletedBody = (
  jobId: number,
  report: CallbackInferenceCompletedReport,
  timestamp: string
): InferenceCompletedBody => {
  const totalImages = report.totalImages ?? report.results.length
  const totalTime = report.totalInferenceTimeMs ??
    report.results.reduce((sum, r) => sum + (r.inferenceTimeMs ?? 0), 0)
  return defined({
    type: "inference_completed" as const,
    job_id: jobId,
    status: "completed" as const,
    total_images: totalImages,
    total_inference_time_ms: totalTime,
    avg_inference_time_ms: totalImages > 0 ? totalTime / totalImages : 0,
    results: report.results.map(inferenceResultBody),
    result_urls: report.resultUrls,
    timestamp
  })
}

const metricMaps = (
  perClass: Readonly<Record<string, CallbackMetrics>> | undefined
): Record<string, Record<string, number | null>> | undefined =>
  perClass === undefined
    ? undefined
    : Object.fromEntries(Object.entries(perClass).map(([name, m]) => [name, metricMap(m)]))

/** The evaluation (test run) results body; `taskType` is the fallback when the report names none. */
export const evaluationResultsBody = (taskType: string, report: CallbackEvaluationReport): EvaluationResultsBody =>
  defined({
    status: "completed" as const,
    task_type: report.taskType ?? taskType,
    metrics: report.metrics === undefined ? undefined : metricMap(report.metrics),
    per_class_metrics: metricMaps(report.perClassMetrics),
    class_names: report.classNames,
    num_images: report.numImages,
    visualization_urls: report.visualizationUrls,
    predictions_json_uri: report.predictionsJsonUri,
    config: report.config === undefined ? undefined : { ...report.config },
    error_message: undefined,
    traceback: undefined
  })

/** The evaluation failure body: the results endpoint with `status: "failed"`. */
export const evaluationFailedBody = (taskType: string, report: CallbackFailureReport): EvaluationResultsBody =>
  defined({
    status: "failed" as const,
    task_type: taskType,
    error_message: failedErrorMessage(report.errorType, report.message),
    traceback: report.traceback
  })

/** The export-completed body. */
export const exportCompletedBody = (
  jobId: number,
  report: CallbackExportCompletedReport,
  timestamp: string
): ExportCompletedBody => ({
  type: "export_completed",
  job_id: jobId,
  status: "completed",
  export_format: report.exportFormat,
  output_s3_uri: report.outputS3Uri,
  file_size_bytes: report.fileSizeBytes,
  metadata: report.metadata,
  timestamp
})

/**
 * The metadata of an exported model, as the platform expects it next to the artifact:
 * `num_classes` follows `class_names`, and `extra` keys are merged in last.
 */
export const exportMetadata = (input: ExportMetadataInput): Record<string, unknown> => ({
  framework: input.framework,
  model_name: input.modelName,
  export_format: input.exportFormat,
  task_type: input.taskType,
  input_shape: [...input.inputShape],
  input_dtype: input.inputDtype ?? "float32",
  output_shape: input.outputShape.map((shape) => [...shape]),
  created_at: typeof input.createdAt === "string" ? input.createdAt : input.createdAt.toISOString(),
  ...defined({
    class_names: input.classNames === undefined ? undefined : [...input.classNames],
    num_classes: input.classNames?.length,
    preprocessing: input.preprocessing,
    postprocessing: input.postprocessing,
    export_config: input.exportConfig
  }),
  ...input.extra
})

/** Epoch-clock milliseconds as an ISO-8601 UTC timestamp. */
export const isoTimestamp = (millis: number): string => new Date(millis).toISOString()

/** Issues of a failed encoding as `field.path: message` lines. */
const describeIssues = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "body"}: ${issue.message}`)
    .join("; ")

/**
 * Encodes a body through its schema (excess keys are an error); a body that breaks the
 * contract becomes `CallbackError{reason:"Invalid"}` naming the field, and nothing is sent.
 */
export const encodeBody = <A, I>(
  schema: Schema.Schema<A, I>,
  path: string,
  body: A
): Either.Either<I, CallbackError> =>
  Schema.encodeEither(schema)(body, { onExcessProperty: "error", errors: "all" }).pipe(
    Either.mapLeft((error) => new CallbackError({ reason: "Invalid", path, detail: describeIssues(error) }))
  )
