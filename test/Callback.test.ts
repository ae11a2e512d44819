import { assert, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, FastCheck, Fiber, Layer, Option, ParseResult, Schema, Scope, TestClock } from "effect"
import { Callback, CallbackTest, exportMetadata } from "../src/Callback.js"
import { ReportOutbox } from "../src/Outbox.js"
import { CallbackError } from "../src/Errors.js"
import { type JobContextInput, JobContext } from "../src/JobContext.js"
import { callbackEndpoints, matchCallbackEndpoint, TrainingProgressBody } from "../src/internal/callbackBodies.js"
import { advanceTiming, metricsBlock, progressPercent, timingAtStart } from "../src/internal/callbackReports.js"

const jobContext = (input: JobContextInput = {}) =>
  JobContext.layerTest({
    jobId: 123,
    callbackUrl: "http://backend:8000/api/v1/",
    callbackRetryDelay: Duration.zero,
    basicConfig: { epochs: 50 },
    ...input
  })

const withCallback = (input: JobContextInput = {}) => Effect.provide(Callback.layerTest().pipe(Layer.provide(jobContext(input))))

/** What the backend received once everything queued so far was delivered. */
const sent = Effect.zipRight(Effect.flatMap(Callback, (c) => c.flushProgress), Effect.flatMap(CallbackTest, (t) => t.requests))

const progressPath = "/training/jobs/123/callback/progress"
const completionPath = "/training/jobs/123/callback/completion"

/** Decodes a recorded request the way a strict dev backend would. */
const validateOnBackend = (request: { readonly path: string; readonly body: unknown }) => {
  const match = matchCallbackEndpoint(request.path)
  assert.isDefined(match, `no endpoint for ${request.path}`)
  return Schema.decodeUnknownEither(match!.endpoint.body)(request.body, { onExcessProperty: "error" })
}

describe("Callback contract", () => {
  it.effect("training started: progress path, integer job id, epochs from config", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted()
      yield* callback.reportStarted({ totalEpochs: 10 })
      const requests = yield* sent
      assert.deepStrictEqual(requests.map((r) => r.path), [progressPath, progressPath])
      assert.deepStrictEqual(requests[0]!.body, {
        job_id: 123,
        status: "running",
        current_epoch: 0,
        total_epochs: 50,
        progress_percent: 0,
        metrics: null,
        checkpoint_path: null
      })
      assert.strictEqual((requests[1]!.body as { total_epochs: number }).total_epochs, 10)
    }).pipe(withCallback()))

  it.effect("started is idempotent: a repeat is not sent, except to change the plan before any progress", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted({ totalEpochs: 10 })
      yield* callback.reportStarted({ totalEpochs: 10 })
      yield* callback.reportStarted({ totalEpochs: 20 })
      yield* callback.reportProgress({ epoch: 1, totalEpochs: 20, metrics: {} })
      yield* callback.flushProgress
      yield* callback.reportStarted({ totalEpochs: 30 })
      const totals = (yield* sent).map((r) => (r.body as { current_epoch: number; total_epochs: number }))
      assert.deepStrictEqual(totals.map((b) => [b.current_epoch, b.total_epochs]), [[0, 10], [0, 20], [1, 20]])
      assert.isTrue((yield* callback.lifecycle).started)
    }).pipe(withCallback()))

  it.effect("a start the backend rejects (4xx) never fails the caller: it is counted, and what follows still goes out", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      const test = yield* CallbackTest
      const outbox = yield* ReportOutbox
      yield* test.failNext(1, { status: 422, body: "{\"detail\":\"job 123 is not pending\"}" })
      yield* callback.reportStarted()
      yield* callback.reportProgress({ epoch: 1, totalEpochs: 50, metrics: {} })
      assert.isTrue((yield* callback.lifecycle).started)
      assert.deepStrictEqual((yield* sent).map((r) => (r.body as { current_epoch: number }).current_epoch), [1])
      const stats = yield* outbox.stats
      assert.deepStrictEqual(stats.rejected, { started: 1 })
      assert.deepStrictEqual(stats.delivered, { progress: 1 })
    }).pipe(withCallback()))

  it.effect("progress: metrics block keeps accuracy 0, falls back to lr, percent and timing from the Clock", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted({ totalEpochs: 50 })
      yield* TestClock.adjust("30 seconds")
      yield* callback.reportProgress({
        epoch: 5,
        totalEpochs: 50,
        metrics: { loss: 0.5, accuracy: 0, lr: 0.01, "mAP50-95": 0.3 },
        extraData: { gpu: "A100" },
        checkpointPath: "s3://ckpt/last.pt",
        bestCheckpointPath: "s3://ckpt/best.pt"
      })
      yield* callback.flushProgress
      yield* TestClock.adjust("12 seconds")
      yield* callback.reportProgress({ epoch: 6, totalEpochs: 50, metrics: { "mAP50-95": 0.42, learning_rate: 0.002, lr: 9 } })
      yield* callback.flushProgress
      const requests = yield* sent
      assert.deepStrictEqual(requests.map((r) => r.path), [progressPath, progressPath, progressPath])
      assert.deepStrictEqual(requests[1]!.body, {
        job_id: 123,
        status: "running",
        current_epoch: 5,
        total_epochs: 50,
        progress_percent: 10,
        metrics: {
          loss: 0.5,
          accuracy: 0,
          learning_rate: 0.01,
          extra_metrics: { loss: 0.5, accuracy: 0, lr: 0.01, "mAP50-95": 0.3 }
        },
        extra_data: { gpu: "A100" },
        checkpoint_path: "s3://ckpt/last.pt",
        best_checkpoint_path: "s3://ckpt/best.pt",
        epoch_duration_seconds: 6,
        estimated_time_remaining: 270
      })
      assert.deepStrictEqual(requests[2]!.body, {
        job_id: 123,
        status: "running",
        current_epoch: 6,
        total_epochs: 50,
        progress_percent: 12,
        metrics: {
          loss: null,
          accuracy: 0.42,
          learning_rate: 0.002,
          extra_metrics: { "mAP50-95": 0.42, learning_rate: 0.002, lr: 9 }
        },
        epoch_duration_seconds: 12,
        estimated_time_remaining: 7 * 44
      })
    }).pipe(withCallback()))

  it.effect("progress: NaN and ±Infinity metrics are sent as null and the report still goes out", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportProgress({
        epoch: 1,
        totalEpochs: 4,
        metrics: { loss: Number.NaN, accuracy: Number.POSITIVE_INFINITY, lr: Number.NEGATIVE_INFINITY, box_loss: Number.NaN, cls: 1.5 }
      })
      yield* callback.flushProgress
      const [request] = yield* sent
      assert.deepStrictEqual((request!.body as { metrics: unknown }).metrics, {
        loss: null,
        accuracy: null,
        learning_rate: null,
        extra_metrics: { loss: null, accuracy: null, lr: null, box_loss: null, cls: 1.5 }
      })
      assert.strictEqual((request!.body as { progress_percent: number }).progress_percent, 25)
    }).pipe(withCallback()))

  it.effect("validation: every field in wire names, timestamp ISO-8601 UTC, task type from the job", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* TestClock.setTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678))
      yield* callback.reportValidation({
        epoch: 5,
        primaryMetric: ["mAP50-95", 0.52],
        allMetrics: { "mAP50-95": 0.52, mAP50: Number.NaN },
        classNames: ["cat"],
        visualizationUrls: { confusion_matrix: "s3://viz/cm.png" },
        perClassMetrics: { cat: { ap: 0.5 } },
        isBest: true,
        overallLoss: 0.7,
        confusionMatrix: [[3, 1], [0, 4]],
        prCurves: { cat: [[0, 1]] },
        sampleCorrectImages: ["a.jpg"],
        sampleIncorrectImages: ["b.jpg"],
        imageResults: [{ imageName: "a.jpg", isCorrect: true, predictedLabel: "cat", confidence: 0.9 }]
      })
      const [request] = yield* sent
      assert.strictEqual(request!.path, "/validation/jobs/123/results")
      assert.deepStrictEqual(request!.body, {
        type: "validation",
        job_id: 123,
        epoch: 5,
        task_type: "detection",
        primary_metric_name: "mAP50-95",
        primary_metric_value: 0.52,
        metrics: { "mAP50-95": 0.52, mAP50: null },
        is_best: true,
        timestamp: "2026-01-02T03:04:05.678Z",
        class_names: ["cat"],
        visualization_urls: { confusion_matrix: "s3://viz/cm.png" },
        per_class_metrics: { cat: { ap: 0.5 } },
        overall_loss: 0.7,
        confusion_matrix: [[3, 1], [0, 4]],
        pr_curves: { cat: [[0, 1]] },
        sample_correct_images: ["a.jpg"],
        sample_incorrect_images: ["b.jpg"],
        image_results: [{ image_name: "a.jpg", is_correct: true, predicted_label: "cat", confidence: 0.9 }]
      })
    }).pipe(withCallback()))

  it.effect("completed: learning_rate only (no lr fallback), epochs from progress, duration from start", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted()
      yield* callback.reportProgress({ epoch: 7, totalEpochs: 50, metrics: {} })
      yield* TestClock.adjust("90 seconds")
      yield* callback.reportCompleted({
        finalMetrics: { loss: 0.1, accuracy: 0, lr: 0.01 },
        checkpoints: { best: "s3://ckpt/best.pt", last: "s3://ckpt/last.pt" },
        bestMetrics: { "mAP50-95": 0.6, learning_rate: 0.001 },
        bestEpoch: 6,
        extraData: { note: "early stop" }
      })
      const requests = yield* sent
      assert.deepStrictEqual(requests.map((r) => r.path), [progressPath, progressPath, completionPath])
      assert.deepStrictEqual(requests[2]!.body, {
        job_id: 123,
        status: "completed",
        total_epochs_completed: 7,
        final_metrics: { loss: 0.1, accuracy: 0, learning_rate: null, extra_metrics: { loss: 0.1, accuracy: 0, lr: 0.01 } },
        exit_code: 0,
        best_checkpoint_path: "s3://ckpt/best.pt",
        last_checkpoint_path: "s3://ckpt/last.pt",
        extra_data: { note: "early stop" },
        best_metrics: { loss: null, accuracy: 0.6, learning_rate: 0.001, extra_metrics: { "mAP50-95": 0.6, learning_rate: 0.001 } },
        best_epoch: 6,
        total_duration_seconds: 90
      })
    }).pipe(withCallback()))

  it.effect("failed: training completion path, [type] prefix once, epochs tracked from progress", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted()
      yield* callback.reportProgress({ epoch: 3, totalEpochs: 50, metrics: {} })
      yield* callback.reportFailed({ errorType: "DatasetError", message: "annotations.json is missing", traceback: "Traceback..." })
      yield* callback.reportFailed({ errorType: "FrameworkError", message: "[FrameworkError] CUDA error", epochsCompleted: 9 })
      const requests = yield* sent
      assert.deepStrictEqual(requests.slice(2), [
        {
          path: completionPath,
          body: {
            job_id: 123,
            status: "failed",
            total_epochs_completed: 3,
            error_message: "[DatasetError] annotations.json is missing",
            exit_code: 1,
            traceback: "Traceback..."
          }
        },
        {
          path: completionPath,
          body: { job_id: 123, status: "failed", total_epochs_completed: 9, error_message: "[FrameworkError] CUDA error", exit_code: 1 }
        }
      ])
    }).pipe(withCallback()))

  it.effect("inference: started body and path, failure routed to the inference completion path", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted({ operation: "inference" })
      yield* callback.reportFailed({ errorType: "ResourceError", message: "out of memory" })
      const requests = yield* sent
      assert.deepStrictEqual(requests.map((r) => r.path), [
        "/test_inference/inference/jobs/123/callback/started",
        "/test_inference/inference/jobs/123/callback/completion"
      ])
      assert.deepStrictEqual(requests[0]!.body, {
        type: "started",
        job_id: 123,
        operation_type: "inference",
        timestamp: "1970-01-01T00:00:00.000Z"
      })
      assert.strictEqual((requests[1]!.body as { error_message: string }).error_message, "[ResourceError] out of memory")
      assert.strictEqual((requests[1]!.body as { total_epochs_completed: number }).total_epochs_completed, 0)
    }).pipe(withCallback()))

  const checkpoint = { uri: "s3://ckpt/checkpoints/31/best.pt", bucket: "ckpt", key: "checkpoints/31/best.pt" }

  it.effect("an inference job (INFERENCE_JOB_ID) starts and fails on its own endpoints without being told the operation", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted()
      yield* callback.reportFailed({ errorType: "CheckpointError", message: "no such checkpoint" })
      assert.deepStrictEqual((yield* sent).map((r) => r.path), [
        "/test_inference/inference/jobs/4/callback/started",
        "/test_inference/inference/jobs/4/callback/completion"
      ])
      // Progress and validation are training endpoints: with this id they would address training job 4.
      const progress = yield* Effect.flip(callback.reportProgress({ epoch: 1, totalEpochs: 2, metrics: {} }))
      const validation = yield* Effect.flip(callback.reportValidation({ epoch: 1, primaryMetric: ["map", 0.1], allMetrics: {} }))
      assert.strictEqual(progress.reason, "Invalid")
      assert.include(progress.message, "only for training jobs")
      assert.strictEqual(validation.reason, "Invalid")
      assert.strictEqual((yield* sent).length, 2)
    }).pipe(withCallback({
      job: {
        kind: "inference",
        inferenceJobId: 4,
        checkpointS3Uri: checkpoint,
        imagesS3Uri: { uri: "s3://img/x/", bucket: "img", key: "x/" },
        trainingJobId: Option.none()
      }
    })))

  it.effect("an evaluation job (TEST_RUN_ID): no start request, results and failure to /test_inference/test/{id}/results", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted()
      assert.deepStrictEqual(yield* sent, [])
      assert.isTrue((yield* callback.lifecycle).started)
      yield* callback.reportEvaluationResults({
        metrics: { "mAP50-95": 0.5, precision: Number.NaN },
        perClassMetrics: { cat: { ap: 0.6 } },
        classNames: ["cat"],
        numImages: 12,
        visualizationUrls: { confusion_matrix: "s3://r/cm.png" },
        predictionsJsonUri: "s3://r/predictions.json",
        config: { conf_threshold: 0.25, split: "test" }
      })
      yield* callback.reportFailed({ errorType: "DatasetError", message: "no labels", traceback: "trace" })
      const [results, failed] = yield* sent
      assert.strictEqual(results!.path, "/test_inference/test/6/results")
      assert.deepStrictEqual(results!.body, {
        status: "completed",
        task_type: "semantic_segmentation",
        metrics: { "mAP50-95": 0.5, precision: null },
        per_class_metrics: { cat: { ap: 0.6 } },
        class_names: ["cat"],
        num_images: 12,
        visualization_urls: { confusion_matrix: "s3://r/cm.png" },
        predictions_json_uri: "s3://r/predictions.json",
        config: { conf_threshold: 0.25, split: "test" }
      })
      assert.strictEqual(failed!.path, "/test_inference/test/6/results")
      assert.deepStrictEqual(failed!.body, {
        status: "failed",
        task_type: "semantic_segmentation",
        error_message: "[DatasetError] no labels",
        traceback: "trace"
      })
      for (const request of [results!, failed!]) assert.isTrue(validateOnBackend(request)._tag === "Right")
      assert.strictEqual((yield* callback.lifecycle).outcome, "failed")
    }).pipe(withCallback({
      taskType: "semantic_segmentation",
      job: {
        kind: "evaluation",
        testRunId: 6,
        checkpointS3Uri: checkpoint,
        datasetS3Uri: { uri: "s3://ds/d/", bucket: "ds", key: "d/" },
        trainingJobId: Option.some(31)
      }
    })))

  it.effect("export: started and failure on the export paths", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted({ operation: "export" })
      yield* callback.reportFailed({ errorType: "UnknownError", message: "boom" })
      const requests = yield* sent
      assert.deepStrictEqual(requests.map((r) => r.path), [
        "/export/jobs/123/callback/started",
        "/export/jobs/123/callback/completion"
      ])
      assert.strictEqual((requests[0]!.body as { operation_type: string }).operation_type, "export")
    }).pipe(withCallback()))

  it.effect("inference completed: average time, 0 for no images", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportInferenceCompleted({
        totalImages: 10,
        totalInferenceTimeMs: 812.5,
        results: [{ imagePath: "s3://images/a.jpg", predictions: [{ class_name: "cat", confidence: 0.9 }] }],
        resultUrls: { predictions: "s3://r/p.json" }
      })
      yield* callback.reportInferenceCompleted({ totalImages: 0, totalInferenceTimeMs: 0, results: [] })
      yield* callback.reportInferenceCompleted({
        results: [
          { imagePath: "a.jpg", imageName: "a.jpg", inferenceTimeMs: 10 },
          { imagePath: "b.jpg", inferenceTimeMs: 30 }
        ]
      })
      const [first, second, third] = yield* sent
      assert.strictEqual(first!.path, "/test_inference/inference/jobs/123/callback/completion")
      assert.deepStrictEqual(first!.body, {
        type: "inference_completed",
        job_id: 123,
        status: "completed",
        total_images: 10,
        total_inference_time_ms: 812.5,
        avg_inference_time_ms: 81.25,
        results: [{ image_path: "s3://images/a.jpg", predictions: [{ class_name: "cat", confidence: 0.9 }] }],
        result_urls: { predictions: "s3://r/p.json" },
        timestamp: "1970-01-01T00:00:00.000Z"
      })
      assert.strictEqual((second!.body as { avg_inference_time_ms: number }).avg_inference_time_ms, 0)
      // Totals default to the results' count and summed times; every result carries `predictions`.
      expect(third!.body).toMatchObject({
        total_images: 2,
        total_inference_time_ms: 40,
        avg_inference_time_ms: 20,
        results: [
          { image_path: "a.jpg", image_name: "a.jpg", predictions: [], inference_time_ms: 10 },
          { image_path: "b.jpg", predictions: [], inference_time_ms: 30 }
        ]
      })
    }).pipe(withCallback()))

  it.effect("export completed with exportMetadata", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      const metadata = exportMetadata({
        framework: "ultralytics",
        modelName: "yolo11n",
        exportFormat: "onnx",
        taskType: "detection",
        inputShape: [1, 3, 640, 640],
        outputShape: [[1, 84, 8400]],
        createdAt: new Date(Date.UTC(2026, 0, 2)),
        classNames: ["cat", "dog"],
        preprocessing: { normalize: true },
        extra: { opset: 17 }
      })
      assert.deepStrictEqual(metadata, {
        framework: "ultralytics",
        model_name: "yolo11n",
        export_format: "onnx",
        task_type: "detection",
        input_shape: [1, 3, 640, 640],
        input_dtype: "float32",
        output_shape: [[1, 84, 8400]],
        created_at: "2026-01-02T00:00:00.000Z",
        class_names: ["cat", "dog"],
        num_classes: 2,
        preprocessing: { normalize: true },
        opset: 17
      })
      yield* callback.reportExportCompleted({
        exportFormat: "onnx",
        outputS3Uri: "s3://exports/model.onnx",
        fileSizeBytes: 1234,
        metadata
      })
      const [request] = yield* sent
      assert.strictEqual(request!.path, "/export/jobs/123/callback/completion")
      assert.deepStrictEqual(request!.body, {
        type: "export_completed",
        job_id: 123,
        status: "completed",
        export_format: "onnx",
        output_s3_uri: "s3://exports/model.onnx",
        file_size_bytes: 1234,
        metadata,
        timestamp: "1970-01-01T00:00:00.000Z"
      })
    }).pipe(withCallback()))

  it.effect("every body sent is accepted by the strict endpoint table; an excess field is named", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted()
      yield* callback.reportProgress({ epoch: 1, totalEpochs: 2, metrics: { loss: Number.NaN } })
      yield* callback.reportValidation({ epoch: 1, primaryMetric: ["top1", Number.NaN], allMetrics: { top1: 0.1 } })
      yield* callback.reportCompleted({ finalMetrics: { loss: 1 } })
      yield* callback.reportFailed({ errorType: "ConfigError", message: "bad" })
      yield* callback.reportInferenceCompleted({ totalImages: 1, totalInferenceTimeMs: 3, results: [] })
      yield* callback.reportExportCompleted({ exportFormat: "onnx", outputS3Uri: "s3://x/y", fileSizeBytes: 0, metadata: {} })
      const requests = yield* sent
      assert.strictEqual(requests.length, 7)
      for (const request of requests) assert.isTrue(validateOnBackend(request)._tag === "Right", request.path)

      const extra = validateOnBackend({ path: progressPath, body: { ...(requests[1]!.body as object), surprise: 1 } })
      assert.isTrue(extra._tag === "Left")
      if (extra._tag === "Left") {
        expect(ParseResult.ArrayFormatter.formatErrorSync(extra.left).map((i) => i.path.join("."))).toContain("surprise")
      }
      const stringJobId = validateOnBackend({ path: completionPath, body: { ...(requests[3]!.body as object), job_id: "123" } })
      assert.isTrue(stringJobId._tag === "Left")
      assert.deepStrictEqual(callbackEndpoints.map((e) => e.template).sort(), [
        "/export/jobs/{id}/callback/completion",
        "/export/jobs/{id}/callback/started",
        "/test_inference/inference/jobs/{id}/callback/completion",
        "/test_inference/inference/jobs/{id}/callback/started",
        "/test_inference/test/{id}/results",
        "/training/jobs/{id}/callback/completion",
        "/training/jobs/{id}/callback/logs",
        "/training/jobs/{id}/callback/progress",
        "/validation/jobs/{id}/results"
      ])
    }).pipe(withCallback()))

  it.effect("a report that breaks the contract is a typed Invalid error naming the field, and nothing is sent", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      const started = yield* Effect.flip(callback.reportStarted({ totalEpochs: 0 }))
      const progress = yield* Effect.flip(callback.reportProgress({ epoch: 1.5, totalEpochs: 10, metrics: {} }))
      assert.instanceOf(started, CallbackError)
      assert.strictEqual(started.reason, "Invalid")
      assert.include(started.message, "total_epochs")
      assert.strictEqual(progress.reason, "Invalid")
      assert.include(progress.message, "current_epoch")
      yield* callback.flushProgress
      assert.deepStrictEqual(yield* sent, [])
    }).pipe(withCallback()))

  it.effect("secondary ranks send nothing", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      yield* callback.reportStarted()
      yield* callback.reportProgress({ epoch: 1, totalEpochs: 2, metrics: {} })
      yield* callback.reportCompleted({ finalMetrics: {} })
      yield* callback.flushProgress
      assert.deepStrictEqual(yield* Effect.flatMap(CallbackTest, (t) => t.attempts), [])
    }).pipe(withCallback({ rank: 1 })))
})

describe("Callback delivery (in-memory backend)", () => {
  it.effect("transient failures are retried; a 4xx is not, and surfaces status and body", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      const test = yield* CallbackTest
      yield* test.failNext(1, "network")
      yield* test.failNext(1, { status: 503 })
      yield* callback.reportCompleted({ finalMetrics: {} })
      assert.deepStrictEqual((yield* test.attempts).map((a) => a.outcome), ["network", 503, 200])
      assert.strictEqual((yield* test.requests).length, 1)

      yield* test.failNext(1, { status: 422, body: "{\"detail\":\"total_epochs_completed: field required\"}" })
      const error = yield* Effect.flip(callback.reportFailed({ errorType: "UnknownError", message: "x" }))
      assert.strictEqual(error.reason, "Rejected")
      assert.strictEqual(error.status, 422)
      assert.include(error.body, "total_epochs_completed")
      assert.strictEqual((yield* test.attempts).length, 4)
    }).pipe(withCallback()))

  it.effect("reportProgress and reportValidation return without waiting while the backend is down; completion waits at most the budget", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      const test = yield* CallbackTest
      yield* test.failNext(1000, "network")
      // No TestClock adjustment: if a report waited for the retries (2 s, 4 s, 8 s) it would hang here.
      for (let epoch = 1; epoch <= 5; epoch++) {
        yield* callback.reportProgress({ epoch, totalEpochs: 5, metrics: {} })
        yield* callback.reportValidation({ epoch, primaryMetric: ["mAP50-95", 0.1], allMetrics: {} })
      }
      const completed = yield* Effect.fork(callback.reportCompleted({ finalMetrics: {} }))
      let waited = 0
      while (Option.isNone(yield* Fiber.poll(completed))) {
        yield* TestClock.adjust("1 second")
        waited++
      }
      const error = yield* Effect.flip(Fiber.join(completed))
      assert.strictEqual(error.reason, "Transient")
      assert.include(error.detail, "shutdown budget of 10s")
      assert.include(error.detail, "ECONNREFUSED")
      assert.strictEqual(waited, 10)
      assert.deepStrictEqual(yield* test.requests, [])
      assert.isAtLeast((yield* test.attempts).length, 3)
      // Nothing was given up: the backend comes back and gets every report, the outcome last.
      const lifecycle = yield* callback.lifecycle
      assert.strictEqual(lifecycle.outcome, "completed")
      assert.isFalse(lifecycle.outcomeDelivered)
      yield* test.clear
      const delivered = yield* Effect.fork(callback.awaitOutcome)
      while (Option.isNone(yield* Fiber.poll(delivered))) yield* TestClock.adjust("1 second")
      assert.isTrue(yield* Fiber.join(delivered))
      const kinds = (yield* test.requests).map((r) => r.path.split("/").pop())
      assert.deepStrictEqual(kinds, [...Array.from({ length: 5 }, () => ["progress", "results"]).flat(), "completion"])
    }).pipe(withCallback({ callbackRetryDelay: Duration.seconds(2), callbackShutdownBudget: Duration.seconds(10) })))

  it.effect("lifecycle: operation, start, epochs, the outcome reported and whether the backend accepted it", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      const test = yield* CallbackTest
      assert.deepStrictEqual(yield* callback.lifecycle, {
        operation: "training",
        started: false,
        outcome: undefined,
        outcomeDelivered: false,
        epochsCompleted: 0
      })
      yield* callback.reportStarted({ operation: "export" })
      yield* callback.reportProgress({ epoch: 3, totalEpochs: 5, metrics: {} })
      yield* callback.flushProgress
      yield* test.failNext(1, { status: 409 })
      yield* Effect.flip(callback.reportFailed({ errorType: "UnknownError", message: "x" }))
      assert.deepStrictEqual(yield* callback.lifecycle, {
        operation: "export",
        started: true,
        outcome: "failed",
        outcomeDelivered: false,
        epochsCompleted: 3
      })
      assert.isFalse(yield* callback.awaitOutcome)
      yield* callback.reportFailed({ errorType: "UnknownError", message: "x" })
      assert.include(yield* callback.lifecycle, { outcome: "failed", outcomeDelivered: true })
      assert.isTrue(yield* callback.awaitOutcome)
    }).pipe(withCallback()))

  it.effect("pending progress is flushed when the layer's scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Callback.layerTest().pipe(Layer.provide(jobContext())), scope)
      const test = yield* Effect.gen(function*() {
        const callback = yield* Callback
        yield* callback.reportProgress({ epoch: 2, totalEpochs: 3, metrics: { loss: 1 } })
        return yield* CallbackTest
      }).pipe(Effect.provide(context))
      yield* Scope.close(scope, Exit.void)
      const requests = yield* test.requests
      assert.deepStrictEqual(requests.map((r) => (r.body as { current_epoch: number }).current_epoch), [2])
    }))
})

describe("Callback pure parts", () => {
  it.prop(
    "metrics blocks carry only finite numbers or null",
    [FastCheck.dictionary(FastCheck.constantFrom("loss", "accuracy", "lr", "mAP50-95", "x"), FastCheck.double())],
    ([metrics]) => {
      const block = metricsBlock(metrics, "progress")
      const values = [block.loss, block.accuracy, block.learning_rate, ...Object.values(block.extra_metrics)]
      return values.every((v) => v === null || Number.isFinite(v)) &&
        Schema.is(TrainingProgressBody.fields.metrics)(block)
    }
  )

  it.prop(
    "progress percent stays within [0, 100]",
    [FastCheck.integer({ min: 0, max: 10_000 }), FastCheck.integer({ min: 1, max: 1000 })],
    ([epoch, total]) => {
      const percent = progressPercent(epoch, total)
      return percent >= 0 && percent <= 100 && (epoch > total || percent === (epoch / total) * 100)
    }
  )

  it("timing: repeated epochs keep the last duration; a restarted loop starts afresh", () => {
    const [first, t1] = advanceTiming(timingAtStart(0), 2, 10, 20_000)
    assert.deepStrictEqual(first, { epochDurationSeconds: 10, estimatedTimeRemaining: 80 })
    const [same] = advanceTiming(t1, 2, 10, 25_000)
    assert.deepStrictEqual(same, { epochDurationSeconds: 10, estimatedTimeRemaining: 80 })
    const [restarted, t2] = advanceTiming(t1, 1, 10, 30_000)
    assert.deepStrictEqual(restarted, {})
    const [afterRestart] = advanceTiming(t2, 2, 10, 34_000)
    assert.deepStrictEqual(afterRestart, { epochDurationSeconds: 4, estimatedTimeRemaining: 32 })
    const [noStart] = advanceTiming({}, 3, 10, 1_000)
    assert.deepStrictEqual(noStart, {})
  })
})
