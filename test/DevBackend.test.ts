import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Ref } from "effect"
import { ReportOutbox } from "../src/Outbox.js"
import { Callback } from "../src/Callback.js"
import {
  DevBackend,
  type DevBackendEvent,
  type DevBackendHandle,
  formatDevBackendEvent,
  formatDevBackendRejection,
  formatDevBackendSummary,
  summarizeDevBackendEvents
} from "../src/DevBackend.js"
import { decodeDevBackendRequest } from "../src/internal/devBackendEvents.js"
import { type JobContextInput, makeJobContext } from "../src/JobContext.js"
import { LogBuffer } from "../src/LogBuffer.js"

/** A dev backend plus the live Callback and LogBuffer layers (undici) pointed at it. */
const withDevBackend = <A, E>(
  input: JobContextInput,
  body: (backend: DevBackendHandle, printed: Ref.Ref<ReadonlyArray<string>>) => Effect.Effect<A, E, Callback | LogBuffer>
) =>
  Effect.scoped(Effect.gen(function*() {
    const printed = yield* Ref.make<ReadonlyArray<string>>([])
    const backend = yield* DevBackend.start({
      onEvent: (event) => Ref.update(printed, (lines) => [...lines, formatDevBackendEvent(event)])
    })
    const job = makeJobContext({ jobId: 7, callbackUrl: backend.url, callbackRetryDelay: Duration.millis(5), ...input })
    return yield* body(backend, printed).pipe(
      Effect.provide(Layer.merge(Callback.layerConfig(job), LogBuffer.layerConfig(job)).pipe(
        Layer.provideMerge(ReportOutbox.layerConfig(job, { dir: null })),
        Layer.provide(NodeHttpClient.layerUndici)
      ))
    )
  }))

/** POSTs raw JSON text with fetch; status and parsed answer. */
const post = (url: string, body: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })
    return { status: response.status, body: await response.json() as Record<string, unknown> }
  })

const metrics = { loss: 0.412, accuracy: 0.31, learning_rate: null, extra_metrics: { loss: 0.412, "mAP50-95": 0.31 } }
const progressBody = { job_id: 7, status: "running", current_epoch: 3, total_epochs: 10, progress_percent: 30, metrics }

describe("DevBackend", () => {
  it.live("a whole training run over the live Callback layer is accepted and recorded in order", () =>
    withDevBackend({}, (backend, printed) =>
      Effect.gen(function*() {
        const callback = yield* Callback
        const logs = yield* LogBuffer
        yield* callback.reportStarted({ totalEpochs: 2 })
        yield* callback.reportProgress({ epoch: 1, totalEpochs: 2, metrics: { loss: 0.9, "mAP50-95": 0.1 } })
        yield* callback.flushProgress
        yield* callback.reportValidation({ epoch: 1, primaryMetric: ["mAP50-95", 0.1], allMetrics: { "mAP50-95": 0.1 }, isBest: true })
        yield* logs.info("epoch 1 done", { data: { epoch: 1 } })
        yield* logs.flush
        yield* callback.reportProgress({ epoch: 2, totalEpochs: 2, metrics: { loss: 0.5, "mAP50-95": 0.3 } })
        yield* callback.reportCompleted({ finalMetrics: { loss: 0.5, "mAP50-95": 0.3 }, checkpoints: { best: "s3://ckpt/best.pt" } })

        const events = yield* backend.events
        assert.deepStrictEqual(events.map((e) => `${e.operation}:${e.kind}`), [
          "training:started",
          "training:progress",
          "training:validation",
          "training:log",
          "training:progress",
          "training:completed"
        ])
        assert.deepStrictEqual(events.map((e) => e.sequence), [1, 2, 3, 4, 5, 6])
        assert.isTrue(events.every((e) => e.jobId === 7))
        assert.strictEqual(events[0]!.path, "/training/jobs/7/callback/progress")
        assert.strictEqual(events[3]!.endpoint, "trainingLogs")
        const last = events[5]!
        assert(last.kind === "completed" && last.operation === "training")
        assert.strictEqual(last.body.best_checkpoint_path, "s3://ckpt/best.pt")
        assert.strictEqual(last.body.total_epochs_completed, 2)
        assert.deepStrictEqual(yield* backend.rejections, [])
        // onEvent saw every event, in the recorded order
        assert.deepStrictEqual(yield* Ref.get(printed), events.map(formatDevBackendEvent))

        const summary = yield* backend.summary
        assert.deepStrictEqual(summary.counts, { started: 1, progress: 2, validation: 1, log: 1, completed: 1, failed: 0 })
        assert.deepStrictEqual(summary.jobs, [
          { jobId: 7, operation: "training", status: "completed", lastEpoch: 2, totalEpochs: 2, errorMessage: undefined }
        ])
      })))

  it.live("inference and export: started, completed and failed reach their own endpoints", () =>
    Effect.gen(function*() {
      const inference = yield* withDevBackend({}, (backend) =>
        Effect.gen(function*() {
          const callback = yield* Callback
          yield* callback.reportStarted({ operation: "inference" })
          yield* callback.reportInferenceCompleted({
            totalImages: 2,
            totalInferenceTimeMs: 50,
            results: [{ imagePath: "s3://images/a.jpg", predictions: [{ label: "cat" }] }]
          })
          yield* callback.reportFailed({ errorType: "FrameworkError", message: "CUDA error" })
          return yield* backend.events
        }))
      assert.deepStrictEqual(inference.map((e) => [e.endpoint, e.kind]), [
        ["inferenceStarted", "started"],
        ["inferenceCompletion", "completed"],
        ["inferenceCompletion", "failed"]
      ])
      assert.include(formatDevBackendEvent(inference[1]!), "2 images")
      assert.strictEqual(formatDevBackendEvent(inference[2]!), "[job 7] failed      inference  [FrameworkError] CUDA error")

      const exported = yield* withDevBackend({ jobId: 12 }, (backend) =>
        Effect.gen(function*() {
          const callback = yield* Callback
          yield* callback.reportStarted({ operation: "export" })
          yield* callback.reportExportCompleted({ exportFormat: "onnx", outputS3Uri: "s3://out/model.onnx", fileSizeBytes: 1234, metadata: { opset: 17 } })
          yield* callback.reportFailed({ errorType: "ResourceError", message: "disk full" })
          return yield* backend.summary
        }))
      assert.deepStrictEqual(exported.counts, { started: 1, progress: 0, validation: 0, log: 0, completed: 1, failed: 1 })
      assert.strictEqual(exported.jobs[0]!.operation, "export")
      assert.strictEqual(exported.jobs[0]!.status, "failed")
      assert.strictEqual(exported.jobs[0]!.errorMessage, "[ResourceError] disk full")
    }))

  it.scoped("answers 200 with the job status, 422 naming the field, 404 for unknown paths", () =>
    Effect.gen(function*() {
      const rejected: Array<string> = []
      const backend = yield* DevBackend.start({
        onRejected: (rejection) => Effect.sync(() => rejected.push(formatDevBackendRejection(rejection)))
      })
      const progress = `${backend.url}/training/jobs/7/callback/progress`

      const ok = yield* post(progress, progressBody)
      expect(ok).toEqual({ status: 200, body: { success: true, message: "training progress recorded for job 7", job_status: "running" } })

      const stringId = yield* post(progress, { ...progressBody, job_id: "seven" })
      assert.strictEqual(stringId.status, 422)
      expect(stringId.body.errors).toEqual([{ field: "job_id", problem: "expected an integer, got \"seven\"" }])

      const { status: _, ...noStatus } = { ...progressBody }
      const missing = yield* post(progress, noStatus)
      assert.strictEqual(missing.status, 422)
      expect(missing.body.errors).toEqual([{ field: "status", problem: "is missing" }])

      // As lax as the backend's pydantic models: integer strings are integers, unknown fields are dropped.
      const lax = yield* post(progress, { ...progressBody, job_id: "7", learning_rate: 0.01 })
      assert.strictEqual(lax.status, 200)

      const nested = yield* post(progress, { ...progressBody, progress_percent: 130 })
      assert.strictEqual(nested.status, 422)
      expect(nested.body.errors).toEqual([{ field: "progress_percent", problem: "must be within [0, 100], got 130" }])
      assert.include(String(nested.body.message), "progress_percent")

      // The backend files a callback under the path's job, whatever the body's job_id says.
      const otherJob = yield* post(`${backend.url}/training/jobs/8/callback/progress`, progressBody)
      assert.strictEqual(otherJob.status, 200)

      const notJson = yield* post(progress, "{\"job_id\": 7,")
      assert.strictEqual(notJson.status, 422)
      assert.include(String(notJson.body.message), "not valid JSON")

      const unknown = yield* post(`${backend.url}/training/jobs/7/callback/metrics`, progressBody)
      assert.strictEqual(unknown.status, 404)
      const outsideApi = yield* post(backend.url.replace("/api/v1", "/api/v2") + "/training/jobs/7/callback/progress", progressBody)
      assert.strictEqual(outsideApi.status, 404)

      const events = yield* backend.events
      assert.deepStrictEqual(events.map((e) => [e.jobId, e.ignored]), [[7, {}], [7, { learning_rate: 0.01 }], [8, {}]])
      const rejections = yield* backend.rejections
      assert.deepStrictEqual(rejections.map((r) => r.status), [422, 422, 422, 422, 404, 404])
      assert.strictEqual(rejected.length, 6)
      assert.strictEqual(
        rejected[0],
        "[job 7] REJECTED    422 POST /training/jobs/7/callback/progress: job_id: expected an integer, got \"seven\""
      )
      assert.include(rejected[4], "404 POST /api/v1/training/jobs/7/callback/metrics: no such endpoint")
    }))

  it.scoped("hostile requests get an answer and are reported: deep nesting 422, a huge body 413, a failing handler a JSON 500", () =>
    Effect.gen(function*() {
      const rejected: Array<string> = []
      const backend = yield* DevBackend.start({
        maxBodyBytes: 65536,
        onEvent: (event) => event.kind === "log" ? Effect.dieMessage("printer broke") : Effect.void,
        onRejected: (rejection) => Effect.sync(() => rejected.push(formatDevBackendRejection(rejection)))
      })
      const progress = `${backend.url}/training/jobs/7/callback/progress`
      const deep = `${"{\"a\":".repeat(5000)}1${"}".repeat(5000)}`
      const nested = yield* post(progress, `{"job_id":7,"metrics":${deep}}`)
      expect(nested).toEqual({
        status: 422,
        body: {
          success: false,
          message: "metrics: nests arrays/objects deeper than 256 levels",
          errors: [{ field: "metrics", problem: "nests arrays/objects deeper than 256 levels" }]
        }
      })
      const deepRoot = yield* post(progress, `${"[".repeat(3000)}${"]".repeat(3000)}`)
      assert.strictEqual(deepRoot.status, 422)
      expect(deepRoot.body.errors).toEqual([{ field: "", problem: "nests arrays/objects deeper than 256 levels" }])

      const huge = yield* post(progress, { ...progressBody, extra_data: { blob: "x".repeat(70_000) } })
      expect(huge).toEqual({
        status: 413,
        body: { success: false, message: "the body is larger than the dev backend's limit of 65536 bytes" }
      })

      const entry = { job_id: 7, event_type: "trainer", message: "hi", level: "INFO", data: {}, timestamp: "2026-01-02T03:04:05.678Z" }
      const failing = yield* post(`${backend.url}/training/jobs/7/callback/logs`, entry)
      assert.strictEqual(failing.status, 500)
      assert.strictEqual(failing.body.success, false)
      assert.include(String(failing.body.message), "printer broke")

      assert.deepStrictEqual((yield* backend.rejections).map((r) => r.status), [422, 422, 413, 500])
      assert.strictEqual(rejected[0], "[job 7] REJECTED    422 POST /training/jobs/7/callback/progress: metrics: nests arrays/objects deeper than 256 levels")
      assert.strictEqual(rejected[2], "[job 7] REJECTED    413 POST /training/jobs/7/callback/progress: body: the body is larger than the dev backend's limit of 65536 bytes")
      assert.match(rejected[3]!, /^\[job 7\] REJECTED {4}500 POST \/training\/jobs\/7\/callback\/logs: body: the dev backend failed on this request: .*printer broke/)
    }))

  it.scoped("a query string does not change the route; an event_type over 10 characters is a 422 naming it", () =>
    Effect.gen(function*() {
      const backend = yield* DevBackend.start()
      const ok = yield* post(`${backend.url}/training/jobs/7/callback/progress?x=1`, progressBody)
      assert.strictEqual(ok.status, 200)
      const [event] = yield* backend.events
      assert.strictEqual(event!.kind, "progress")
      assert.strictEqual(event!.path, "/training/jobs/7/callback/progress")
      const entry = { job_id: 7, event_type: "preprocessing", message: "hi", level: "INFO", data: {}, timestamp: "2026-01-02T03:04:05.678Z" }
      const long = yield* post(`${backend.url}/training/jobs/7/callback/logs`, entry)
      assert.strictEqual(long.status, 422)
      expect(long.body.errors).toEqual([{
        field: "event_type",
        problem: "must be at most 10 characters (the backend stores it in a column of 10; a longer one fails the insert), got 13"
      }])
    }))

  it.scoped("a port already in use is a DevBackendError naming the address", () =>
    Effect.gen(function*() {
      const first = yield* DevBackend.start()
      const error = yield* Effect.flip(DevBackend.start({ port: first.port }))
      assert.strictEqual(error._tag, "DevBackendError")
      assert.strictEqual(error.message, `Dev backend cannot listen on 127.0.0.1:${first.port}: the port is already in use`)
    }))
})

describe("DevBackend decoding and formatting", () => {
  it("a failure report is told from a completion by its status; a wrong exit_code type is named", () => {
    const failure = { job_id: 3, status: "failed", total_epochs_completed: 1, error_message: "boom", exit_code: 1 }
    const decoded = decodeDevBackendRequest("/training/jobs/3/callback/completion", JSON.stringify(failure))
    assert(decoded._tag === "Accepted" && decoded.payload.kind === "failed")
    const bad = decodeDevBackendRequest("/training/jobs/3/callback/completion", JSON.stringify({ ...failure, exit_code: "one" }))
    assert(bad._tag === "Invalid")
    expect(bad.issues).toEqual([{ field: "exit_code", problem: "expected an integer, got \"one\"" }])
  })

  it("a training-started body without the optional checkpoint_path is accepted as the start", () => {
    const started = { job_id: 3, status: "running", current_epoch: 0, total_epochs: 10, progress_percent: 0, metrics: null }
    const decoded = decodeDevBackendRequest("/training/jobs/3/callback/progress", JSON.stringify(started))
    assert(decoded._tag === "Accepted" && decoded.payload.kind === "started")
    expect(decoded.payload.body).toEqual({ ...started, progress_percent: 0 })
    const withNull = decodeDevBackendRequest("/training/jobs/3/callback/progress", JSON.stringify({ ...started, checkpoint_path: null }))
    assert(withNull._tag === "Accepted" && withNull.payload.kind === "started")
  })

  it("validation image results: a wrong nested type is named by its index", () => {
    const decoded = decodeDevBackendRequest("/validation/jobs/3/results", JSON.stringify({
      type: "validation",
      job_id: 3,
      epoch: 1,
      task_type: "classification",
      primary_metric_name: "accuracy",
      primary_metric_value: 0.5,
      metrics: {},
      is_best: false,
      timestamp: "2026-01-02T03:04:05.678Z",
      image_results: [{ image_name: "a.jpg", is_correct: "no" }, { image_name: "b.jpg", is_correct: "maybe" }]
    }))
    assert(decoded._tag === "Invalid")
    expect(decoded.issues).toEqual([{ field: "image_results[1].is_correct", problem: "expected a boolean, got \"maybe\"" }])
  })

  const event = (
    payload: Omit<DevBackendEvent, "sequence" | "receivedAt" | "path" | "endpoint" | "jobId" | "ignored">
  ): DevBackendEvent => ({
    ...payload,
    ignored: {},
    sequence: 1,
    receivedAt: 0,
    path: "/",
    endpoint: "trainingProgress",
    jobId: 7
  } as DevBackendEvent)

  it("formats each kind readably", () => {
    assert.strictEqual(
      formatDevBackendEvent(event({ kind: "progress", operation: "training", body: { ...progressBody, status: "running" } as never })),
      "[job 7] progress    epoch 3/10  30.0%  loss=0.412 mAP50-95=0.31"
    )
    assert.strictEqual(
      formatDevBackendEvent(event({
        kind: "started",
        operation: "training",
        body: { job_id: 7, status: "running", current_epoch: 0, total_epochs: 10, progress_percent: 0, metrics: null, checkpoint_path: null }
      })),
      "[job 7] started     training  10 epochs"
    )
    assert.strictEqual(
      formatDevBackendEvent(event({
        kind: "log",
        operation: "training",
        body: { job_id: 7, event_type: "trainer", message: "epoch 3 done", level: "INFO", data: {}, timestamp: "2026-01-02T03:04:05Z" }
      })),
      "[job 7] log         INFO     trainer: epoch 3 done"
    )
    assert.strictEqual(
      formatDevBackendEvent(event({
        kind: "completed",
        operation: "export",
        body: {
          type: "export_completed",
          job_id: 7,
          status: "completed",
          export_format: "onnx",
          output_s3_uri: "s3://b/m.onnx",
          file_size_bytes: 2048,
          metadata: {},
          timestamp: "2026-01-02T03:04:05Z"
        }
      })),
      "[job 7] completed   export  onnx  2048 bytes  s3://b/m.onnx"
    )
    // A failure reads the same for every kind: its message; training also says how far it got.
    const failed = (operation: "training" | "export" | "evaluation", body: Record<string, unknown>) =>
      formatDevBackendEvent(event({ kind: "failed", operation, body: { status: "failed", ...body } as never }))
    assert.strictEqual(
      failed("training", { job_id: 7, total_epochs_completed: 3, error_message: "[DatasetError] no images" }),
      "[job 7] failed      training  after 3 epochs  [DatasetError] no images"
    )
    assert.strictEqual(failed("export", { job_id: 7, error_message: "[ExportError] no onnx" }), "[job 7] failed      export  [ExportError] no onnx")
    assert.strictEqual(failed("evaluation", { task_type: "detection", error_message: "x" }), "[job 7] failed      evaluation  x")
  })

  it("summarizes counts and the final state per job", () => {
    const failed = event({
      kind: "failed",
      operation: "training",
      body: { job_id: 7, status: "failed", total_epochs_completed: 3, error_message: "[DatasetError] no images", exit_code: 1 }
    })
    const summary = summarizeDevBackendEvents([
      event({ kind: "progress", operation: "training", body: progressBody as never }),
      failed
    ], [{ receivedAt: 0, method: "POST", path: "/x", status: 404, jobId: undefined, issues: [] }])
    assert.strictEqual(
      formatDevBackendSummary(summary),
      "2 callbacks accepted, 1 rejected  (started=0 progress=1 validation=0 log=0 completed=0 failed=1)\n" +
        "job 7 (training): failed  epoch 3/10  [DatasetError] no images"
    )
  })
})
