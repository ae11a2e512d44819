/**
 * The wire contract of the platform backend's callback endpoints: one `Schema` per request
 * body, defined once. The SDK encodes every report through these; a dev backend decodes
 * incoming bodies with them (`onExcessProperty: "error"`) to answer 422 naming the field.
 *
 * Shapes follow the callback spec: `?` fields there are exact optional keys here (absent,
 * never `undefined`), and non-finite metric values travel as `null` because JSON cannot
 * carry NaN or Infinity.
 */
import { Schema } from "effect"

/** A job id: the spec requires an integer. */
export const CallbackJobId = Schema.Int.annotations({ identifier: "JobId" })

/** An ISO-8601 UTC timestamp such as `2026-01-02T03:04:05.678Z`. */
export const CallbackTimestamp = Schema.String.pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/, {
    message: () => "expected an ISO-8601 UTC timestamp such as 2026-01-02T03:04:05.678Z"
  })
).annotations({ identifier: "Timestamp" })

/** One metric value on the wire: a finite number, or `null` for a missing or non-finite one. */
export const CallbackMetricValue = Schema.NullOr(Schema.Finite)

/** A map of metric name to value, as sent in `extra_metrics` and validation `metrics`. */
export const CallbackMetricMap = Schema.Record({ key: Schema.String, value: CallbackMetricValue })

/** Free-form JSON object (`extra_data`, `pr_curves`, log `data`, export `metadata`). */
export const CallbackJsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })
const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())
const PositiveInt = Schema.Int.pipe(Schema.positive())
const NonNegativeFinite = Schema.Finite.pipe(Schema.nonNegative())

/**
 * The spec's metrics block: `loss`, `accuracy` (else `mAP50-95`), `learning_rate` (else
 * `lr`, except in completion reports) and every metric as given in `extra_metrics`.
 */
export const MetricsBlock = Schema.Struct({
  loss: CallbackMetricValue,
  accuracy: CallbackMetricValue,
  learning_rate: CallbackMetricValue,
  extra_metrics: CallbackMetricMap
}).annotations({ identifier: "MetricsBlock" })
/** @see MetricsBlock */
export type MetricsBlock = typeof MetricsBlock.Type

/**
 * `POST /training/jobs/{id}/callback/progress` announcing that training started. The SDK
 * sends `checkpoint_path: null` as the spec's example does; the field is optional on the
 * progress endpoint, so a body without it is valid too. `metrics` is required there.
 */
export const TrainingStartedBody = Schema.Struct({
  job_id: CallbackJobId,
  status: Schema.Literal("running"),
  current_epoch: Schema.Literal(0),
  total_epochs: PositiveInt,
  progress_percent: Schema.Literal(0),
  metrics: Schema.Null,
  checkpoint_path: optional(Schema.Null)
}).annotations({ identifier: "TrainingStartedBody" })
/** @see TrainingStartedBody */
export type TrainingStartedBody = typeof TrainingStartedBody.Type

const operationStartedBody = <Op extends "inference" | "export">(operation: Op, identifier: string) =>
  Schema.Struct({
    type: Schema.Literal("started"),
    job_id: CallbackJobId,
    operation_type: Schema.Literal(operation),
    timestamp: CallbackTimestamp
  }).annotations({ identifier })

/** `POST /test_inference/inference/jobs/{id}/callback/started`. */
export const InferenceStartedBody = operationStartedBody("inference", "InferenceStartedBody")
/** @see InferenceStartedBody */
export type InferenceStartedBody = typeof InferenceStartedBody.Type

/** `POST /export/jobs/{id}/callback/started`. */
export const ExportStartedBody = operationStartedBody("export", "ExportStartedBody")
/** @see ExportStartedBody */
export type ExportStartedBody = typeof ExportStartedBody.Type

/** `POST /training/jobs/{id}/callback/progress` for one epoch. */
export const TrainingProgressBody = Schema.Struct({
  job_id: CallbackJobId,
  status: Schema.Literal("running"),
  current_epoch: NonNegativeInt,
  total_epochs: PositiveInt,
  progress_percent: Schema.Finite.pipe(Schema.between(0, 100)),
  metrics: MetricsBlock,
  extra_data: optional(CallbackJsonObject),
  checkpoint_path: optional(Schema.String),
  best_checkpoint_path: optional(Schema.String),
  epoch_duration_seconds: optional(NonNegativeFinite),
  estimated_time_remaining: optional(NonNegativeFinite),
  logs: optional(Schema.String)
}).annotations({ identifier: "TrainingProgressBody" })
/** @see TrainingProgressBody */
export type TrainingProgressBody = typeof TrainingProgressBody.Type

/** One per-image entry of a validation report's `image_results`. */
export const ValidationImageResultBody = Schema.Struct({
  image_name: Schema.String,
  is_correct: Schema.Boolean,
  image_index: optional(NonNegativeInt),
  true_label: optional(Schema.String),
  true_label_id: optional(Schema.Int),
  predicted_label: optional(Schema.String),
  predicted_label_id: optional(Schema.Int),
  confidence: optional(CallbackMetricValue),
  top5_predictions: optional(Schema.Array(Schema.Unknown)),
  true_boxes: optional(Schema.Array(Schema.Unknown)),
  predicted_boxes: optional(Schema.Array(Schema.Unknown)),
  iou: optional(CallbackMetricValue),
  extra_data: optional(CallbackJsonObject)
}).annotations({ identifier: "ValidationImageResultBody" })
/** @see ValidationImageResultBody */
export type ValidationImageResultBody = typeof ValidationImageResultBody.Type

/** `POST /validation/jobs/{id}/results`. */
export const ValidationBody = Schema.Struct({
  type: Schema.Literal("validation"),
  job_id: CallbackJobId,
  epoch: NonNegativeInt,
  task_type: Schema.String,
  primary_metric_name: Schema.String,
  primary_metric_value: CallbackMetricValue,
  metrics: CallbackMetricMap,
  is_best: Schema.Boolean,
  timestamp: CallbackTimestamp,
  class_names: optional(Schema.Array(Schema.String)),
  visualization_urls: optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  per_class_metrics: optional(Schema.Record({ key: Schema.String, value: CallbackMetricMap })),
  overall_loss: optional(CallbackMetricValue),
  confusion_matrix: optional(Schema.Array(Schema.Array(Schema.Int))),
  pr_curves: optional(CallbackJsonObject),
  sample_correct_images: optional(Schema.Array(Schema.String)),
  sample_incorrect_images: optional(Schema.Array(Schema.String)),
  image_results: optional(Schema.Array(ValidationImageResultBody))
}).annotations({ identifier: "ValidationBody" })
/** @see ValidationBody */
export type ValidationBody = typeof ValidationBody.Type

/** `POST /training/jobs/{id}/callback/completion` for a successful run. */
export const CompletionBody = Schema.Struct({
  job_id: CallbackJobId,
  status: Schema.Literal("completed"),
  total_epochs_completed: NonNegativeInt,
  final_metrics: MetricsBlock,
  exit_code: Schema.Literal(0),
  best_checkpoint_path: optional(Schema.String),
  last_checkpoint_path: optional(Schema.String),
  extra_data: optional(CallbackJsonObject),
  best_metrics: optional(MetricsBlock),
  best_epoch: optional(NonNegativeInt),
  final_checkpoint_path: optional(Schema.String),
  model_artifacts_path: optional(Schema.String),
  mlflow_run_id: optional(Schema.String),
  total_duration_seconds: optional(NonNegativeFinite)
}).annotations({ identifier: "CompletionBody" })
/** @see CompletionBody */
export type CompletionBody = typeof CompletionBody.Type

/** The failure report, sent to the completion endpoint of the operation that started. */
export const FailedBody = Schema.Struct({
  job_id: CallbackJobId,
  status: Schema.Literal("failed"),
  total_epochs_completed: NonNegativeInt,
  error_message: Schema.String,
  exit_code: Schema.Literal(1),
  traceback: optional(Schema.String)
}).annotations({ identifier: "FailedBody" })
/** @see FailedBody */
export type FailedBody = typeof FailedBody.Type

/**
 * One element of an inference report's `results`: `image_path` is required (the backend
 * answers 422 without it), `predictions` is a list of objects (the SDK always sends it,
 * `[]` when there are none).
 */
export const InferenceResultBody = Schema.Struct({
  image_path: Schema.String,
  image_name: optional(Schema.String),
  predictions: Schema.Array(CallbackJsonObject),
  inference_time_ms: optional(NonNegativeFinite)
}).annotations({ identifier: "InferenceResultBody" })
/** @see InferenceResultBody */
export type InferenceResultBody = typeof InferenceResultBody.Type

/** `POST /test_inference/inference/jobs/{id}/callback/completion` for a successful run. */
export const InferenceCompletedBody = Schema.Struct({
  type: Schema.Literal("inference_completed"),
  job_id: CallbackJobId,
  status: Schema.Literal("completed"),
  total_images: NonNegativeInt,
  total_inference_time_ms: NonNegativeFinite,
  avg_inference_time_ms: NonNegativeFinite,
  results: Schema.Array(InferenceResultBody),
  result_urls: optional(CallbackJsonObject),
  timestamp: CallbackTimestamp
}).annotations({ identifier: "InferenceCompletedBody" })
/** @see InferenceCompletedBody */
export type InferenceCompletedBody = typeof InferenceCompletedBody.Type

/** `POST /export/jobs/{id}/callback/completion` for a successful export. */
export const ExportCompletedBody = Schema.Struct({
  type: Schema.Literal("export_completed"),
  job_id: CallbackJobId,
  status: Schema.Literal("completed"),
  export_format: Schema.String,
  output_s3_uri: Schema.String,
  file_size_bytes: NonNegativeInt,
  metadata: CallbackJsonObject,
  timestamp: CallbackTimestamp
}).annotations({ identifier: "ExportCompletedBody" })
/** @see ExportCompletedBody */
export type ExportCompletedBody = typeof ExportCompletedBody.Type

/**
 * `POST /test_inference/test/{test_run_id}/results`: an evaluation (test run) outcome. The
 * body has no `job_id` (the path names the test run); `status` is `completed` or `failed`,
 * and a failure carries `error_message` (and `traceback`).
 */
export const EvaluationResultsBody = Schema.Struct({
  status: Schema.Literal("completed", "failed"),
  task_type: Schema.String,
  metrics: optional(CallbackMetricMap),
  per_class_metrics: optional(Schema.Record({ key: Schema.String, value: CallbackMetricMap })),
  class_names: optional(Schema.Array(Schema.String)),
  num_images: optional(NonNegativeInt),
  visualization_urls: optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  predictions_json_uri: optional(Schema.String),
  config: optional(CallbackJsonObject),
  error_message: optional(Schema.String),
  traceback: optional(Schema.String)
}).annotations({ identifier: "EvaluationResultsBody" })
/** @see EvaluationResultsBody */
export type EvaluationResultsBody = typeof EvaluationResultsBody.Type

/** The longest `event_type` the backend can store (a column of 10 characters). */
export const maxEventTypeLength = 10

/** A log entry's `event_type`: at most 10 characters (a longer one makes the backend's insert fail). */
export const LogEventType = Schema.String.pipe(
  Schema.maxLength(maxEventTypeLength, {
    message: () => `must be at most ${maxEventTypeLength} characters (the backend stores it in a column of 10)`
  })
).annotations({ identifier: "LogEventType" })

/** Log levels the backend accepts. */
export const LogLevel = Schema.Literal("DEBUG", "INFO", "WARNING", "ERROR")
/** @see LogLevel */
export type LogLevel = typeof LogLevel.Type

/** `POST /training/jobs/{id}/callback/logs`: one log entry per request. */
export const LogEntryBody = Schema.Struct({
  job_id: CallbackJobId,
  event_type: LogEventType,
  message: Schema.String,
  level: LogLevel,
  data: CallbackJsonObject,
  timestamp: CallbackTimestamp
}).annotations({ identifier: "LogEntryBody" })
/** @see LogEntryBody */
export type LogEntryBody = typeof LogEntryBody.Type

/** Request paths (relative to `CALLBACK_URL`) of every callback endpoint, for job `id`. */
export const callbackPaths = {
  trainingProgress: (id: number) => `/training/jobs/${id}/callback/progress`,
  trainingCompletion: (id: number) => `/training/jobs/${id}/callback/completion`,
  trainingLogs: (id: number) => `/training/jobs/${id}/callback/logs`,
  validationResults: (id: number) => `/validation/jobs/${id}/results`,
  inferenceStarted: (id: number) => `/test_inference/inference/jobs/${id}/callback/started`,
  inferenceCompletion: (id: number) => `/test_inference/inference/jobs/${id}/callback/completion`,
  exportStarted: (id: number) => `/export/jobs/${id}/callback/started`,
  exportCompletion: (id: number) => `/export/jobs/${id}/callback/completion`,
  evaluationResults: (id: number) => `/test_inference/test/${id}/results`
} as const

/** The name of one callback endpoint. */
export type CallbackEndpointName = keyof typeof callbackPaths

/** One endpoint of the contract: its path template and the bodies it accepts. */
export interface CallbackEndpoint {
  readonly name: CallbackEndpointName
  /** The spec's path template, e.g. `/training/jobs/{id}/callback/progress`. */
  readonly template: string
  /** Matches a request path; group 1 is the job id. */
  readonly pattern: RegExp
  /** The accepted bodies, each tried in turn. */
  readonly bodies: ReadonlyArray<Schema.Schema.AnyNoContext>
  /** The union of `bodies`, to decode an incoming JSON value in one go. */
  readonly body: Schema.Schema<unknown, unknown>
}

const endpoint = (
  name: CallbackEndpointName,
  bodies: ReadonlyArray<Schema.Schema.AnyNoContext>
): CallbackEndpoint => {
  const template = callbackPaths[name](0).replace("/0/", "/{id}/")
  const pattern = new RegExp(`^${template.replace("{id}", "(-?\\d+)")}$`)
  return { name, template, pattern, bodies, body: Schema.Union(...bodies) as Schema.Schema<unknown, unknown> }
}

/**
 * Every callback endpoint with the body schemas it accepts. A dev backend matches the
 * request path against `pattern` and decodes the JSON with `body` using
 * `{ onExcessProperty: "error" }`.
 */
export const callbackEndpoints: ReadonlyArray<CallbackEndpoint> = [
  endpoint("trainingProgress", [TrainingStartedBody, TrainingProgressBody]),
  endpoint("trainingCompletion", [CompletionBody, FailedBody]),
  endpoint("trainingLogs", [LogEntryBody]),
  endpoint("validationResults", [ValidationBody]),
  endpoint("inferenceStarted", [InferenceStartedBody]),
  endpoint("inferenceCompletion", [InferenceCompletedBody, FailedBody]),
  endpoint("exportStarted", [ExportStartedBody]),
  endpoint("exportCompletion", [ExportCompletedBody, FailedBody]),
  endpoint("evaluationResults", [EvaluationResultsBody])
]

/** Finds the endpoint a request path (relative to `CALLBACK_URL`) addresses, with its job id. */
export const matchCallbackEndpoint = (
  path: string
): { readonly endpoint: CallbackEndpoint; readonly jobId: number } | undefined => {
  for (const candidate of callbackEndpoints) {
    const match = candidate.pattern.exec(path)
    if (match) return { endpoint: candidate, jobId: Number(match[1]) }
  }
  return undefined
}
