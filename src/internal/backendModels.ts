/**
 * What the platform backend's request models accept, for the dev backend to be exactly as
 * strict as the backend and no stricter (platform-behaviour.md). The backend validates with
 * pydantic models in their default ("lax") mode:
 * - unknown fields are dropped, never an error;
 * - `int` accepts integers, integral floats (`5.0`) and integer strings (`"5"`);
 * - `float` accepts numbers and numeric strings; `bool` accepts `true/false`, `0/1` and
 *   the usual words (`"yes"`, `"off"`, ...); `str` accepts only strings;
 * - `Optional[X] = None` accepts `null` or a missing key; a `datetime` accepts ISO-8601
 *   with `Z`, an offset (`+00:00`) or none, and Unix times.
 * Constraints the models declare (`ge=0`, `gt=0`, `le=100`) are checked; a value the model
 * accepts but the database cannot store (an `event_type` over 10 characters) is rejected
 * here too, as the backend's insert would fail.
 *
 * Each model decodes an incoming JSON value; the SDK's own bodies (callbackBodies.ts) are
 * stricter than these, and every one of them passes (test/BackendModels.test.ts).
 */
import { ParseResult, Schema, type SchemaAST } from "effect"
import { maxEventTypeLength } from "./callbackBodies.js"
import { integerText } from "./jobConfig.js"

const typeError = (ast: SchemaAST.AST, actual: unknown, message: string) =>
  ParseResult.fail(new ParseResult.Type(ast, actual, message))

const shown = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** pydantic's lax `int`. */
export const LaxInt = Schema.transformOrFail(Schema.Unknown, Schema.Number, {
  strict: true,
  decode: (input, _options, ast) => {
    const value = typeof input === "number"
      ? input
      : typeof input === "string"
      ? integerText(input) ?? Number.NaN
      : Number.NaN
    return Number.isSafeInteger(value)
      ? ParseResult.succeed(value)
      : typeError(ast, input, `expected an integer, got ${shown(input)}`)
  },
  encode: ParseResult.succeed
}).annotations({ identifier: "int" })

/** pydantic's lax `float`. */
export const LaxFloat = Schema.transformOrFail(Schema.Unknown, Schema.Number, {
  strict: true,
  decode: (input, _options, ast) => {
    const value = typeof input === "number"
      ? input
      : typeof input === "string" && input.trim() !== ""
      ? Number(input.trim())
      : Number.NaN
    return Number.isFinite(value)
      ? ParseResult.succeed(value)
      : typeError(ast, input, `expected a number, got ${shown(input)}`)
  },
  encode: ParseResult.succeed
}).annotations({ identifier: "float" })

const truthy = new Set(["1", "on", "t", "true", "y", "yes"])
const falsy = new Set(["0", "off", "f", "false", "n", "no"])

/** pydantic's lax `bool`. */
export const LaxBool = Schema.transformOrFail(Schema.Unknown, Schema.Boolean, {
  strict: true,
  decode: (input, _options, ast) => {
    if (typeof input === "boolean") return ParseResult.succeed(input)
    if (input === 0 || input === 1) return ParseResult.succeed(input === 1)
    if (typeof input === "string") {
      const word = input.trim().toLowerCase()
      if (truthy.has(word)) return ParseResult.succeed(true)
      if (falsy.has(word)) return ParseResult.succeed(false)
    }
    return typeError(ast, input, `expected a boolean, got ${shown(input)}`)
  },
  encode: ParseResult.succeed
}).annotations({ identifier: "bool" })

/** `str`: strings only (pydantic does not turn numbers into strings). */
export const Str = Schema.String

const isoDateTime =
  /^\d{4}-\d{2}-\d{2}(?:[T t_]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/

/** pydantic's lax `datetime`: ISO-8601 with `Z`, an offset or none, a date alone, or a Unix time. */
export const LaxDateTime = Schema.transformOrFail(Schema.Unknown, Schema.Unknown, {
  strict: true,
  decode: (input, _options, ast) => {
    if (typeof input === "number" && Number.isFinite(input)) return ParseResult.succeed(input)
    if (typeof input === "string") {
      const text = input.trim()
      if (/^[+-]?\d+(\.\d+)?$/.test(text)) return ParseResult.succeed(input)
      if (isoDateTime.test(text) && !Number.isNaN(Date.parse(text.replace(/[ _t]/, "T").replace(",", ".")))) {
        return ParseResult.succeed(input)
      }
    }
    return typeError(ast, input, `expected an ISO-8601 date-time such as 2026-01-02T03:04:05Z or 2026-01-02T03:04:05+00:00, got ${shown(input)}`)
  },
  encode: ParseResult.succeed
}).annotations({ identifier: "datetime" })

/** `dict` / `Dict[str, Any]`: a JSON object. */
export const Dict = Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({ identifier: "dict" })

/** `Optional[X] = None`: absent, `null` or an `X`. */
const opt = <S extends Schema.Schema.Any>(schema: S) => Schema.optional(Schema.NullOr(schema))

const atLeast = (min: number) => LaxInt.pipe(Schema.filter((n) => n >= min || `must be >= ${min}, got ${n}`))
const aboveZero = LaxInt.pipe(Schema.filter((n) => n > 0 || `must be > 0, got ${n}`))

/** `TrainingCallbackMetrics`: every field optional. */
export const BackendMetrics = Schema.Struct({
  loss: opt(LaxFloat),
  accuracy: opt(LaxFloat),
  learning_rate: opt(LaxFloat),
  extra_metrics: opt(Dict)
})

/** `TrainingProgressCallback` (`POST /training/jobs/{id}/callback/progress`). */
export const BackendProgress = Schema.Struct({
  job_id: LaxInt,
  status: Str,
  current_epoch: atLeast(0),
  total_epochs: aboveZero,
  progress_percent: opt(
    LaxFloat.pipe(Schema.filter((n) => (n >= 0 && n <= 100) || `must be within [0, 100], got ${n}`))
  ),
  metrics: opt(BackendMetrics),
  checkpoint_path: opt(Str),
  best_checkpoint_path: opt(Str),
  epoch_duration_seconds: opt(LaxFloat),
  estimated_time_remaining: opt(LaxFloat),
  logs: opt(Str),
  error_message: opt(Str),
  traceback: opt(Str)
})

/** `TrainingCompletionCallback` (`POST /training/jobs/{id}/callback/completion`), success or failure. */
export const BackendCompletion = Schema.Struct({
  job_id: LaxInt,
  status: Str,
  total_epochs_completed: atLeast(0),
  final_metrics: opt(BackendMetrics),
  best_metrics: opt(BackendMetrics),
  best_epoch: opt(LaxInt),
  final_checkpoint_path: opt(Str),
  best_checkpoint_path: opt(Str),
  last_checkpoint_path: opt(Str),
  model_artifacts_path: opt(Str),
  mlflow_run_id: opt(Str),
  total_duration_seconds: opt(LaxFloat),
  error_message: opt(Str),
  traceback: opt(Str),
  exit_code: opt(LaxInt)
})

/** `LogEventCallback` (`POST /training/jobs/{id}/callback/logs`); `event_type` fits the 10-character column. */
export const BackendLogEvent = Schema.Struct({
  job_id: LaxInt,
  event_type: Str.pipe(
    Schema.filter((s) =>
      s.length <= maxEventTypeLength ||
      `must be at most ${maxEventTypeLength} characters (the backend stores it in a column of 10; a longer one fails the insert), got ${s.length}`
    )
  ),
  message: Str,
  level: Schema.optional(Str),
  data: opt(Dict),
  timestamp: opt(Str)
})

/** One per-image entry of a validation report. */
export const BackendValidationImage = Schema.Struct({
  image_name: Str,
  is_correct: LaxBool,
  image_index: opt(LaxInt),
  true_label: opt(Str),
  true_label_id: opt(LaxInt),
  predicted_label: opt(Str),
  predicted_label_id: opt(LaxInt),
  confidence: opt(LaxFloat),
  top5_predictions: opt(Schema.Array(Schema.Unknown)),
  true_boxes: opt(Schema.Array(Schema.Unknown)),
  predicted_boxes: opt(Schema.Array(Schema.Unknown)),
  iou: opt(LaxFloat),
  extra_data: opt(Dict)
})

/**
 * `POST /validation/jobs/{id}/results`. `type`, `is_best` and `timestamp` are not in the
 * model (dropped); the result fields are optional as in the backend's stored result.
 */
export const BackendValidation = Schema.Struct({
  job_id: LaxInt,
  epoch: LaxInt,
  task_type: Str,
  primary_metric_name: opt(Str),
  primary_metric_value: opt(LaxFloat),
  metrics: opt(Dict),
  per_class_metrics: opt(Dict),
  class_names: opt(Schema.Array(Str)),
  visualization_urls: opt(Schema.Record({ key: Schema.String, value: Str })),
  overall_loss: opt(LaxFloat),
  confusion_matrix: opt(Schema.Array(Schema.Array(LaxInt))),
  pr_curves: opt(Dict),
  sample_correct_images: opt(Schema.Array(Str)),
  sample_incorrect_images: opt(Schema.Array(Str)),
  image_results: opt(Schema.Array(BackendValidationImage))
})

/** The inference- and export-started callbacks. */
export const BackendOperationStarted = Schema.Struct({
  type: Str,
  job_id: LaxInt,
  operation_type: Str,
  timestamp: LaxDateTime
})

/** `ImagePredictionResult`: one element of an inference report's `results`. */
export const BackendImagePrediction = Schema.Struct({
  image_path: Str,
  image_name: opt(Str),
  predictions: Schema.optional(Schema.Array(Dict)),
  inference_time_ms: opt(LaxFloat)
})

/** `InferenceResultsCallback` (`POST /test_inference/inference/jobs/{id}/callback/completion`), success or failure. */
export const BackendInferenceResults = Schema.Struct({
  status: Str,
  total_images: opt(LaxInt),
  total_inference_time_ms: opt(LaxFloat),
  avg_inference_time_ms: opt(LaxFloat),
  results: opt(Schema.Array(BackendImagePrediction)),
  error_message: opt(Str),
  traceback: opt(Str)
})

/** The export completion callback: a finished export, or (with `status: "failed"`) a failure. */
export const BackendExportCompletion = Schema.Struct({
  job_id: LaxInt,
  status: Str,
  export_format: opt(Str),
  output_s3_uri: opt(Str),
  file_size_bytes: opt(LaxInt),
  metadata: opt(Dict),
  timestamp: opt(LaxDateTime),
  error_message: opt(Str),
  traceback: opt(Str)
})

/** The fields a successful export must carry (the failure report has none of them). */
export const exportCompletedRequired = ["export_format", "output_s3_uri", "file_size_bytes", "metadata"] as const

/** `TestResultsCallback` (`POST /test_inference/test/{test_run_id}/results`). */
export const BackendTestResults = Schema.Struct({
  status: Str,
  task_type: Str,
  metrics: opt(Dict),
  per_class_metrics: opt(Dict),
  class_names: opt(Schema.Array(Str)),
  num_images: opt(LaxInt),
  visualization_urls: opt(Schema.Record({ key: Schema.String, value: Str })),
  predictions_json_uri: opt(Str),
  config: opt(Dict),
  error_message: opt(Str),
  traceback: opt(Str)
})

/** The model (decoded type) of each endpoint. */
export type BackendProgress = typeof BackendProgress.Type
/** @see BackendCompletion */
export type BackendCompletion = typeof BackendCompletion.Type
/** @see BackendLogEvent */
export type BackendLogEvent = typeof BackendLogEvent.Type
/** @see BackendValidation */
export type BackendValidation = typeof BackendValidation.Type
/** @see BackendOperationStarted */
export type BackendOperationStarted = typeof BackendOperationStarted.Type
/** @see BackendInferenceResults */
export type BackendInferenceResults = typeof BackendInferenceResults.Type
/** @see BackendExportCompletion */
export type BackendExportCompletion = typeof BackendExportCompletion.Type
/** @see BackendTestResults */
export type BackendTestResults = typeof BackendTestResults.Type
/** @see BackendMetrics */
export type BackendMetrics = typeof BackendMetrics.Type
