/**
 * The dev backend is exactly as strict as the backend's models (platform-behaviour.md):
 * every body the SDK can produce passes it, every body the models reject is a 422 naming
 * the field, and what the models accept (lax types, unknown fields, `+00:00` offsets) is
 * accepted.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck, Schema } from "effect"
import { decodeDevBackendRequest } from "../src/internal/devBackendEvents.js"
import { boundedEventType, LogBuffer, LogBufferTest } from "../src/LogBuffer.js"
import {
  callbackPaths,
  CompletionBody,
  EvaluationResultsBody,
  ExportCompletedBody,
  ExportStartedBody,
  FailedBody,
  InferenceCompletedBody,
  InferenceStartedBody,
  LogEntryBody,
  TrainingProgressBody,
  TrainingStartedBody,
  ValidationBody
} from "../src/internal/callbackBodies.js"
import type { CallbackMetrics } from "../src/Callback.js"
import { ErrorType } from "../src/Errors.js"
import {
  completionBody,
  evaluationFailedBody,
  evaluationResultsBody,
  exportCompletedBody,
  failedBody,
  inferenceCompletedBody,
  isoTimestamp,
  operationStartedBody,
  progressBody,
  trainingStartedBody,
  validationBody
} from "../src/internal/callbackReports.js"

const id = 7

/** The wire form of `body` through its SDK schema, then the dev backend's verdict on it. */
const throughBackend = <A, I>(schema: Schema.Schema<A, I>, path: string, body: A) => {
  const encoded = Schema.encodeEither(schema)(body, { onExcessProperty: "error" })
  assert.isTrue(Either.isRight(encoded), `the SDK encodes its own ${path} body`)
  return decodeDevBackendRequest(path, JSON.stringify(Either.getOrThrow(encoded)))
}

const metricName = FastCheck.constantFrom("loss", "accuracy", "lr", "learning_rate", "mAP50-95", "precision", "val/mAP50", "x y")
const metricValue = FastCheck.oneof(FastCheck.double(), FastCheck.constant(null))
const metrics: FastCheck.Arbitrary<CallbackMetrics> = FastCheck.dictionary(metricName, metricValue, { maxKeys: 6 })
const text = FastCheck.string({ maxLength: 20 })
const optional = <A>(arb: FastCheck.Arbitrary<A>) => FastCheck.option(arb, { nil: undefined })
const timestamp = FastCheck.integer({ min: 0, max: 4_102_444_800_000 }).map(isoTimestamp)
const errorType = FastCheck.constantFrom(...ErrorType.literals) as FastCheck.Arbitrary<"DatasetError">

const expectAccepted = (decoded: ReturnType<typeof decodeDevBackendRequest>) => {
  if (decoded._tag !== "Accepted") assert.fail(`rejected: ${JSON.stringify(decoded)}`)
}

describe("every body the SDK can produce passes the dev backend", () => {
  it.prop("training started and progress", [
    FastCheck.integer({ min: 1, max: 1000 }),
    FastCheck.integer({ min: 0, max: 2000 }),
    metrics,
    optional(text),
    optional(FastCheck.double({ min: 0, max: 1e6, noNaN: true }))
  ], ([total, epoch, m, checkpoint, seconds]) => {
    expectAccepted(throughBackend(TrainingStartedBody, callbackPaths.trainingProgress(id), trainingStartedBody(id, total)))
    const body = progressBody(id, {
      epoch,
      totalEpochs: total,
      metrics: m,
      ...(checkpoint === undefined ? {} : { checkpointPath: checkpoint, bestCheckpointPath: checkpoint }),
      extraData: { note: "x" }
    }, total, seconds === undefined ? {} : { epochDurationSeconds: seconds, estimatedTimeRemaining: seconds })
    const decoded = throughBackend(TrainingProgressBody, callbackPaths.trainingProgress(id), body)
    expectAccepted(decoded)
    assert(decoded._tag === "Accepted")
    assert.deepStrictEqual(decoded.ignored, { extra_data: { note: "x" } })
  })

  it.prop("validation", [
    FastCheck.integer({ min: 0, max: 1000 }),
    text,
    metricValue,
    metrics,
    FastCheck.array(FastCheck.record({ imageName: text, isCorrect: FastCheck.boolean(), confidence: FastCheck.double() }), { maxLength: 3 }),
    timestamp
  ], ([epoch, taskType, value, m, images, at]) => {
    const body = validationBody(id, taskType, {
      epoch,
      primaryMetric: ["mAP50-95", value],
      allMetrics: m,
      perClassMetrics: { cat: m },
      classNames: ["cat"],
      confusionMatrix: [[1, 0], [0, 1]],
      imageResults: images
    }, at)
    expectAccepted(throughBackend(ValidationBody, callbackPaths.validationResults(id), body))
  })

  it.prop("completion and failure on every operation", [
    metrics,
    FastCheck.integer({ min: 0, max: 1000 }),
    errorType,
    text,
    optional(text)
  ], ([m, epochs, type, message, traceback]) => {
    expectAccepted(throughBackend(CompletionBody, callbackPaths.trainingCompletion(id), completionBody(id, {
      finalMetrics: m,
      bestMetrics: m,
      bestEpoch: epochs,
      checkpoints: { best: "s3://b/best.pt", last: "s3://b/last.pt" }
    }, epochs, 12.5)))
    const failure = failedBody(id, { errorType: type, message, ...(traceback === undefined ? {} : { traceback }) }, epochs)
    for (const path of [callbackPaths.trainingCompletion(id), callbackPaths.inferenceCompletion(id), callbackPaths.exportCompletion(id)]) {
      const decoded = throughBackend(FailedBody, path, failure)
      expectAccepted(decoded)
      assert(decoded._tag === "Accepted")
      assert.strictEqual(decoded.payload.kind, "failed")
    }
    const evaluation = throughBackend(
      EvaluationResultsBody,
      callbackPaths.evaluationResults(id),
      evaluationFailedBody("detection", { errorType: type, message, ...(traceback === undefined ? {} : { traceback }) })
    )
    assert(evaluation._tag === "Accepted")
    assert.strictEqual(evaluation.payload.kind, "failed")
  })

  it.prop("inference, export and evaluation results", [
    FastCheck.array(
      FastCheck.record({
        imagePath: text,
        imageName: optional(text),
        predictions: optional(FastCheck.array(FastCheck.dictionary(text, FastCheck.jsonValue()), { maxLength: 2 })),
        inferenceTimeMs: optional(FastCheck.double({ min: 0, max: 1e6, noNaN: true }))
      }, { requiredKeys: ["imagePath"] }),
      { maxLength: 4 }
    ),
    timestamp,
    metrics,
    FastCheck.integer({ min: 0, max: 1_000_000 })
  ], ([results, at, m, count]) => {
    expectAccepted(throughBackend(InferenceStartedBody, callbackPaths.inferenceStarted(id), operationStartedBody(id, "inference", at)))
    expectAccepted(throughBackend(ExportStartedBody, callbackPaths.exportStarted(id), operationStartedBody(id, "export", at)))
    const cleaned = results.map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined))) as typeof results
    expectAccepted(throughBackend(
      InferenceCompletedBody,
      callbackPaths.inferenceCompletion(id),
      inferenceCompletedBody(id, { results: cleaned, resultUrls: { json: "s3://r/p.json" } }, at)
    ))
    expectAccepted(throughBackend(ExportCompletedBody, callbackPaths.exportCompletion(id), exportCompletedBody(id, {
      exportFormat: "onnx",
      outputS3Uri: "s3://b/m.onnx",
      fileSizeBytes: count,
      metadata: { num_classes: 2 }
    }, at)))
    expectAccepted(throughBackend(EvaluationResultsBody, callbackPaths.evaluationResults(id), evaluationResultsBody("pose", {
      metrics: m,
      perClassMetrics: { person: m },
      numImages: count,
      visualizationUrls: { pr: "s3://r/pr.png" },
      config: { conf: 0.25 }
    })))
  })

  it.prop("log entries, whatever source a trainer names", [text, text, FastCheck.constantFrom("DEBUG" as const, "INFO" as const, "WARNING" as const, "ERROR" as const), timestamp], ([source, message, level, at]) => {
    const body = { job_id: id, event_type: boundedEventType(source), message, level, data: { k: 1 }, timestamp: at } as const
    expectAccepted(throughBackend(LogEntryBody, callbackPaths.trainingLogs(id), body))
  })
})

/** `[path, body, the field the 422 must name, a word of the problem]`. */
type Rejection = readonly [string, Record<string, unknown>, string, string]

const progress = { job_id: id, status: "running", current_epoch: 3, total_epochs: 10, progress_percent: 30, metrics: { loss: 1 } }
const completion = { job_id: id, status: "completed", total_epochs_completed: 10, final_metrics: { loss: 1, extra_metrics: {} }, exit_code: 0 }
const logEntry = { job_id: id, event_type: "trainer", message: "hi", level: "INFO", data: {}, timestamp: "2026-01-02T03:04:05Z" }
const validation = { job_id: id, epoch: 1, task_type: "detection", primary_metric_name: "map", primary_metric_value: 0.5, metrics: {} }
const started = { type: "started", job_id: id, operation_type: "inference", timestamp: "2026-01-02T03:04:05.678Z" }
const inferenceDone = { status: "completed", total_images: 1, results: [{ image_path: "a.jpg", predictions: [] }] }
const exportDone = {
  job_id: id,
  status: "completed",
  export_format: "onnx",
  output_s3_uri: "s3://b/m.onnx",
  file_size_bytes: 10,
  metadata: {},
  timestamp: "2026-01-02T03:04:05Z"
}
const testResults = { status: "completed", task_type: "detection", metrics: { map: 0.5 }, num_images: 3 }
const without = (body: Record<string, unknown>, field: string) => {
  const { [field]: _, ...rest } = body
  return rest
}

const rejections: ReadonlyArray<Rejection> = [
  [callbackPaths.trainingProgress(id), without(progress, "job_id"), "job_id", "missing"],
  [callbackPaths.trainingProgress(id), { ...progress, job_id: "seven" }, "job_id", "integer"],
  [callbackPaths.trainingProgress(id), { ...progress, job_id: 7.5 }, "job_id", "integer"],
  [callbackPaths.trainingProgress(id), without(progress, "status"), "status", "missing"],
  [callbackPaths.trainingProgress(id), { ...progress, status: 1 }, "status", "string"],
  [callbackPaths.trainingProgress(id), { ...progress, current_epoch: -1 }, "current_epoch", ">= 0"],
  [callbackPaths.trainingProgress(id), without(progress, "total_epochs"), "total_epochs", "missing"],
  [callbackPaths.trainingProgress(id), { ...progress, total_epochs: 0 }, "total_epochs", "> 0"],
  [callbackPaths.trainingProgress(id), { ...progress, progress_percent: 100.5 }, "progress_percent", "[0, 100]"],
  [callbackPaths.trainingProgress(id), { ...progress, metrics: { loss: "high" } }, "metrics.loss", "number"],
  [callbackPaths.trainingProgress(id), { ...progress, metrics: { extra_metrics: [1] } }, "metrics.extra_metrics", "Expected"],
  [callbackPaths.trainingProgress(id), { ...progress, best_checkpoint_path: 3 }, "best_checkpoint_path", "string"],
  [callbackPaths.trainingCompletion(id), without(completion, "total_epochs_completed"), "total_epochs_completed", "missing"],
  [callbackPaths.trainingCompletion(id), { ...completion, total_epochs_completed: -2 }, "total_epochs_completed", ">= 0"],
  [callbackPaths.trainingCompletion(id), { ...completion, exit_code: "zero" }, "exit_code", "integer"],
  [callbackPaths.trainingCompletion(id), { ...completion, best_epoch: 1.5 }, "best_epoch", "integer"],
  [callbackPaths.trainingLogs(id), { ...logEntry, event_type: "preprocessing" }, "event_type", "10 characters"],
  [callbackPaths.trainingLogs(id), without(logEntry, "event_type"), "event_type", "missing"],
  [callbackPaths.trainingLogs(id), without(logEntry, "message"), "message", "missing"],
  [callbackPaths.trainingLogs(id), { ...logEntry, data: [1] }, "data", "Expected"],
  [callbackPaths.trainingLogs(id), { ...logEntry, level: null }, "level", "Expected"],
  [callbackPaths.validationResults(id), without(validation, "epoch"), "epoch", "missing"],
  [callbackPaths.validationResults(id), without(validation, "task_type"), "task_type", "missing"],
  [callbackPaths.validationResults(id), { ...validation, confusion_matrix: [[1.5]] }, "confusion_matrix[0][0]", "integer"],
  [callbackPaths.validationResults(id), { ...validation, image_results: [{ is_correct: true }] }, "image_results[0].image_name", "missing"],
  [callbackPaths.validationResults(id), { ...validation, class_names: ["cat", 1] }, "class_names[1]", "string"],
  [callbackPaths.inferenceStarted(id), without(started, "operation_type"), "operation_type", "missing"],
  [callbackPaths.exportStarted(id), { ...started, timestamp: "yesterday" }, "timestamp", "ISO-8601"],
  [callbackPaths.inferenceCompletion(id), without(inferenceDone, "status"), "status", "missing"],
  [callbackPaths.inferenceCompletion(id), { ...inferenceDone, results: [{ image_name: "a.jpg" }] }, "results[0].image_path", "missing"],
  [callbackPaths.inferenceCompletion(id), { ...inferenceDone, results: [{ image_path: "a.jpg", predictions: [1] }] }, "results[0].predictions[0]", "Expected"],
  [callbackPaths.inferenceCompletion(id), { ...inferenceDone, total_images: "many" }, "total_images", "integer"],
  [callbackPaths.exportCompletion(id), without(exportDone, "output_s3_uri"), "output_s3_uri", "missing"],
  [callbackPaths.exportCompletion(id), { ...exportDone, file_size_bytes: "big" }, "file_size_bytes", "integer"],
  [callbackPaths.evaluationResults(id), without(testResults, "task_type"), "task_type", "missing"],
  [callbackPaths.evaluationResults(id), { ...testResults, num_images: 2.5 }, "num_images", "integer"],
  [callbackPaths.evaluationResults(id), { ...testResults, visualization_urls: { cm: 1 } }, "visualization_urls.cm", "string"],
  [callbackPaths.evaluationResults(id), { ...testResults, metrics: "good" }, "metrics", "Expected"]
]

describe("every body the backend's models reject is a 422 naming the field", () => {
  for (const [path, body, field, word] of rejections) {
    it(`${path.replace(`/${id}/`, "/{id}/")}: ${field} (${word})`, () => {
      const decoded = decodeDevBackendRequest(path, JSON.stringify(body))
      if (decoded._tag !== "Invalid") assert.fail(`accepted: ${JSON.stringify(body)}`)
      expect(decoded.issues.map((i) => i.field)).toEqual([field])
      expect(decoded.issues[0]!.problem).toContain(word)
    })
  }
})

/** `[path, body, why the backend accepts it]`: the dev backend must not be stricter. */
const acceptances: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
  [callbackPaths.trainingProgress(id), { ...progress, job_id: "7" }, "an integer string is an int"],
  [callbackPaths.trainingProgress(id), { ...progress, current_epoch: 3.0, progress_percent: "30" }, "numeric strings are numbers"],
  [callbackPaths.trainingProgress(id), without(progress, "metrics"), "metrics is optional"],
  [callbackPaths.trainingProgress(id), { ...progress, is_best: true, extra_data: { a: 1 }, timestamp: "now" }, "unknown fields are dropped"],
  [callbackPaths.trainingProgress(id), { ...progress, status: "paused" }, "status is any string"],
  [callbackPaths.trainingCompletion(id), { ...completion, exit_code: null, final_metrics: null }, "Optional fields take null"],
  [callbackPaths.trainingLogs(id), { ...logEntry, level: "TRACE", timestamp: "2026-01-02T03:04:05+00:00" }, "level and timestamp are plain strings"],
  [callbackPaths.trainingLogs(id), without(without(logEntry, "level"), "data"), "level defaults to INFO, data to None"],
  [callbackPaths.validationResults(id), { ...validation, type: "validation", is_best: "yes", timestamp: 5 }, "type, is_best, timestamp are dropped"],
  [callbackPaths.validationResults(id), { ...validation, image_results: [{ image_name: "a", is_correct: "yes" }] }, "lax booleans"],
  [callbackPaths.inferenceStarted(id), { ...started, timestamp: "2026-01-02T03:04:05.678+00:00" }, "a +00:00 offset"],
  [callbackPaths.exportStarted(id), { ...started, operation_type: "export", timestamp: "2026-01-02 03:04:05" }, "a naive date-time"],
  [callbackPaths.inferenceStarted(id), { ...started, timestamp: 1767323045 }, "a Unix time"],
  [callbackPaths.inferenceCompletion(id), { status: "completed" }, "only status is required"],
  [callbackPaths.inferenceCompletion(id), { ...inferenceDone, result_urls: { a: "b" }, type: "inference_completed" }, "result_urls is dropped"],
  [callbackPaths.inferenceCompletion(id), { status: "completed", results: [{ image_path: "a.jpg" }] }, "predictions defaults to []"],
  [callbackPaths.exportCompletion(id), { ...exportDone, timestamp: "2026-01-02T03:04:05+02:00" }, "an offset timestamp"],
  [callbackPaths.exportCompletion(id), { job_id: id, status: "failed", error_message: "x", exit_code: 1, total_epochs_completed: 0 }, "a failure needs no export fields"],
  [callbackPaths.evaluationResults(id), { status: "completed", task_type: "x", metrics: { map: { "50": 0.1 } } }, "metrics is Dict[str, Any]"]
]

describe("what the backend's models accept, the dev backend accepts", () => {
  for (const [path, body, why] of acceptances) {
    it(`${path.replace(`/${id}/`, "/{id}/")}: ${why}`, () => expectAccepted(decodeDevBackendRequest(path, JSON.stringify(body))))
  }
})

describe("event_type is bounded at the source", () => {
  it("boundedEventType cuts to 10 characters, whole code points, never empty", () => {
    assert.strictEqual(boundedEventType("preprocessing"), "preprocess")
    assert.strictEqual(boundedEventType("checkpoint"), "checkpoint")
    assert.strictEqual(boundedEventType(""), "trainer")
    assert.strictEqual(boundedEventType(undefined), "trainer")
    assert.strictEqual(boundedEventType("ab😀😀😀😀😀"), "ab😀😀😀😀")
  })

  it.effect("a log entry (and an Effect.log annotation) with a long source is stored with 10 characters", () =>
    Effect.gen(function*() {
      const logs = yield* LogBuffer
      yield* logs.info("x", { source: "augmentation-pipeline" })
      yield* Effect.logInfo("y").pipe(Effect.annotateLogs({ event_type: "data-loading-stage" }), Effect.provide(LogBuffer.layerLogger))
      const entries = yield* Effect.flatMap(LogBufferTest, (t) => t.entries)
      assert.deepStrictEqual(entries.map((e) => e.source), ["augmentati", "data-loadi"])
    }).pipe(Effect.provide(LogBuffer.layerTest())))
})
