import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Layer, Schedule } from "effect"
import { exampleTrainer, simulatedMetrics } from "../examples/trainer.js"
import { sampleDiceDataset } from "../examples/sampleDataset.js"
import {
  CallbackTest,
  ClearMLTest,
  ConverterTest,
  LogBufferTest,
  StorageTest,
  runTrainerEffect,
  TrainerClient,
  TrainerSdk,
  type TrainerTestServices
} from "../src/index.js"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { makeBackendServer } from "./support/backendServer.js"

const epochs = 3
const job = {
  jobId: 42,
  datasetId: "sample-ds",
  datasetVersionHash: "v1sample",
  modelName: "yolo11n",
  basicConfig: { epochs }
}

/** `TrainerSdk.layerTest` with the sample dataset seeded into the in-memory external store. */
const testLayer = Layer.tap(TrainerSdk.layerTest({ job }), (context) =>
  Effect.sync(() => {
    Context.get(context, StorageTest).seedDataset("sample-ds", { files: sampleDiceDataset() })
  }))

/** Builds the test layer in the test's scope, so its recorders outlive a run over it. */
const builtTestLayer = Effect.map(Layer.build(testLayer), (context) => ({
  context,
  layer: Layer.succeedContext(context) as Layer.Layer<TrainerTestServices>
}))

const bodyOf = (request: { readonly body: unknown }) => request.body as Record<string, unknown>

describe("TrainerSdk.layerTest", () => {
  it.scopedLive("runs the example trainer: the exact callback sequence, logs, ClearML scalars and checkpoints", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* builtTestLayer
      const outcome = yield* runTrainerEffect(exampleTrainer({ epochDuration: Duration.zero }), { layer })
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed" })

      const callback = Context.get(context, CallbackTest)
      const requests = yield* callback.requests
      const progressPath = "/training/jobs/42/callback/progress"
      const expectedPaths = [
        progressPath,
        ...Array.from({ length: epochs }, () => [progressPath, "/validation/jobs/42/results"]).flat(),
        "/training/jobs/42/callback/completion"
      ]
      expect(requests.map((r) => r.path)).toEqual(expectedPaths)

      const [started, ...rest] = requests.map(bodyOf)
      expect(started).toMatchObject({ job_id: 42, status: "running", current_epoch: 0, total_epochs: epochs, progress_percent: 0 })
      const progress = rest.filter((_, i) => i % 2 === 0).slice(0, epochs)
      const validation = rest.filter((_, i) => i % 2 === 1)
      progress.forEach((body, i) => {
        const metrics = simulatedMetrics(i + 1, epochs, 0.01)
        expect(body).toMatchObject({
          job_id: 42,
          status: "running",
          current_epoch: i + 1,
          total_epochs: epochs,
          metrics: { loss: metrics.loss, accuracy: metrics["mAP50-95"], learning_rate: metrics.lr, extra_metrics: metrics }
        })
        expect(body["progress_percent"]).toBeCloseTo(((i + 1) / epochs) * 100)
      })
      validation.forEach((body, i) => {
        expect(body).toMatchObject({
          type: "validation",
          epoch: i + 1,
          task_type: "detection",
          primary_metric_name: "mAP50-95",
          is_best: true,
          class_names: ["cat", "dog"]
        })
      })
      const completion = bodyOf(requests.at(-1)!)
      expect(completion).toMatchObject({
        job_id: 42,
        status: "completed",
        total_epochs_completed: epochs,
        exit_code: 0,
        best_checkpoint_path: "s3://training-checkpoints/checkpoints/42/best.pt",
        last_checkpoint_path: "s3://training-checkpoints/checkpoints/42/last.pt",
        best_epoch: epochs
      })

      const storage = Context.get(context, StorageTest)
      expect(storage.internal.keys()).toEqual([
        "checkpoints/42/best.pt",
        "checkpoints/42/last.pt",
        "checkpoints/42/resume/best.json",
        "checkpoints/42/resume/last.json"
      ])
      const saved = JSON.parse(new TextDecoder().decode(storage.internal.read("checkpoints/42/last.pt")!))
      expect(saved).toMatchObject({ model: "yolo11n", epoch: epochs })
      const record = JSON.parse(new TextDecoder().decode(storage.internal.read("checkpoints/42/resume/last.json")!))
      expect(record).toMatchObject({ checkpoint_type: "last", uri: "s3://training-checkpoints/checkpoints/42/last.pt", epoch: epochs })

      const entries = yield* Context.get(context, LogBufferTest).entries
      const checkpointEntries = entries.filter((e) => e.source === "checkpoint")
      // Every best is uploaded (in order); a last still queued when a newer one comes is replaced.
      expect(checkpointEntries.filter((e) => e.message === "Saved best checkpoint").length).toBe(epochs)
      const lastSaved = checkpointEntries.filter((e) => e.message === "Saved last checkpoint")
      expect(lastSaved.length).toBeGreaterThanOrEqual(1)
      expect(lastSaved.at(-1)!.data).toMatchObject({ s3_uri: "s3://training-checkpoints/checkpoints/42/last.pt" })
      // `Effect.logInfo` reaches the backend's log too, through the Logger bridge.
      expect(entries.some((e) => e.source === "trainer" && e.message.startsWith("Training yolo11n for 3 epochs"))).toBe(true)
      expect(entries.some((e) => e.source === "training" && e.message.startsWith("Dataset ready: 6 images"))).toBe(true)

      const clearml = Context.get(context, ClearMLTest)
      const scalars = yield* clearml.scalars
      expect(scalars.filter((s) => s.title === "mAP50-95" && s.series === "train").map((s) => s.iteration)).toEqual([1, 2, 3])
      expect(scalars.filter((s) => s.series === "val").map((s) => s.title)).toEqual(
        Array.from({ length: epochs }, () => ["mAP50", "mAP50-95"]).flat()
      )
      expect((yield* clearml.lifecycle).map((s) => s.step)).toEqual(["started", "completed"])

      const conversions = yield* Context.get(context, ConverterTest).conversions
      expect(conversions.map((c) => [c.options.from, c.options.to, c.options.taskType, c.report.images])).toEqual([
        ["dice", "yolo", "detection", 6]
      ])
    }))

  it.scopedLive("runTrainerEffect: a failing trainer is reported failed with its error type and trace", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* builtTestLayer
      const outcome = yield* runTrainerEffect(exampleTrainer({ epochDuration: Duration.zero, failAtEpoch: 2 }), { layer })
      expect(outcome).toMatchObject({ exitCode: 1, status: "failed", errorType: "FrameworkError", delivered: true })

      const requests = yield* Context.get(context, CallbackTest).requests
      expect(requests.map((r) => r.path)).toEqual([
        "/training/jobs/42/callback/progress",
        "/training/jobs/42/callback/progress",
        "/validation/jobs/42/results",
        "/training/jobs/42/callback/completion"
      ])
      const failed = bodyOf(requests.at(-1)!)
      expect(failed).toMatchObject({
        job_id: 42,
        status: "failed",
        total_epochs_completed: 1,
        error_message: "[FrameworkError] loss became NaN at epoch 2 (simulated divergence)",
        exit_code: 1
      })
      expect(failed["traceback"]).toContain("loss became NaN")

      const entries = yield* Context.get(context, LogBufferTest).entries
      const error = entries.find((e) => e.source === "error")
      expect(error).toMatchObject({ level: "ERROR", data: { error_type: "FrameworkError" } })
      expect((yield* Context.get(context, ClearMLTest).lifecycle).map((s) => s.step)).toEqual(["started", "failed"])
    }))

  it.scopedLive("runTrainerEffect: fills in the start and a completion for a training program that reported neither", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* builtTestLayer
      const outcome = yield* runTrainerEffect(Effect.void, { layer, totalEpochs: 7 })
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed", delivered: true })
      const requests = yield* Context.get(context, CallbackTest).requests
      expect(requests.map((r) => [r.path, bodyOf(r)["status"]])).toEqual([
        ["/training/jobs/42/callback/progress", "running"],
        ["/training/jobs/42/callback/completion", "completed"]
      ])
      expect(bodyOf(requests[0]!)["total_epochs"]).toBe(7)
      // The runner's start marks the ClearML task started too, in the background: waited for, not timed.
      const steps = yield* Context.get(context, ClearMLTest).lifecycle.pipe(
        Effect.map((lifecycle) => lifecycle.map((s) => s.step)),
        Effect.filterOrFail((steps) => steps.length > 0, () => "not started yet"),
        Effect.retry(Schedule.spaced("5 millis")),
        Effect.timeout("30 seconds")
      )
      expect(steps[0]).toBe("started")
    }))

  it.scopedLive("runTrainerEffect: a job stopped after reporting its completion stays completed (exit 0)", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* builtTestLayer
      const program = Effect.gen(function*() {
        const sdk = yield* TrainerSdk
        yield* sdk.reportCompleted({ finalMetrics: { loss: 0.1 } })
        return yield* Effect.interrupt
      })
      const outcome = yield* runTrainerEffect(program, { layer })
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed", delivered: true })
      const requests = yield* Context.get(context, CallbackTest).requests
      expect(requests.map((r) => bodyOf(r)["status"])).toEqual(["running", "completed"])
    }))

  it.scopedLive("runTrainerEffect: exit code 2 when the backend rejects the failure report (4xx)", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* builtTestLayer
      const program = Effect.gen(function*() {
        const sdk = yield* TrainerSdk
        yield* sdk.reportStarted()
        yield* sdk.callback.flushProgress
        yield* Context.get(context, CallbackTest).failNext(1, { status: 409, body: "job already finished" })
        return yield* Effect.fail(new Error("ENOSPC: no space left on device"))
      })
      const outcome = yield* runTrainerEffect(program, { layer })
      expect(outcome).toMatchObject({ exitCode: 2, status: "failed", errorType: "ResourceError", delivered: false })
    }))
})

describe("runTrainerEffect: a reported outcome is kept", () => {
  it.scopedLive("a self-reported failure that was not delivered never turns into a completion: exit code 2", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* builtTestLayer
      const program = Effect.gen(function*() {
        const sdk = yield* TrainerSdk
        yield* sdk.reportStarted()
        yield* sdk.callback.flushProgress
        yield* Context.get(context, CallbackTest).failNext(1, { status: 409, body: "conflict" })
        // The program swallows the error of its own failure report and ends "successfully".
        yield* Effect.ignore(sdk.reportFailed({ errorType: "DatasetError", message: "no images" }))
      })
      const outcome = yield* runTrainerEffect(program, { layer })
      expect(outcome).toMatchObject({ exitCode: 2, status: "failed", delivered: false })
      const requests = yield* Context.get(context, CallbackTest).requests
      expect(requests.map((r) => bodyOf(r)["status"])).toEqual(["running"])
    }))
})

describe("runTrainerEffect over the live layer", () => {
  it.scopedLive("a 4xx on a log entry never fails training: the run completes, exit code 0", () =>
    Effect.gen(function*() {
      const backend = yield* makeBackendServer()
      yield* backend.otherwise((request) =>
        request.path.endsWith("/logs") ? { status: 422, body: { detail: "event_type too long" } } : { status: 200, body: {} }
      )
      const workDir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "live-run-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const environment = ConfigProvider.fromMap(new Map([["CALLBACK_URL", backend.baseUrl], ["JOB_ID", "19"]]))
      const program = Effect.gen(function*() {
        const sdk = yield* TrainerSdk
        yield* sdk.log("INFO", "epoch 1 done")
        yield* sdk.reportProgress({ epoch: 1, totalEpochs: 1, metrics: { loss: 0.5 } })
        yield* sdk.reportCompleted({ finalMetrics: { loss: 0.5 } })
      })
      const outcome = yield* runTrainerEffect(program, { totalEpochs: 1, layer: TrainerSdk.layerConfig({ workDir }) }).pipe(
        Effect.withConfigProvider(environment)
      )
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed", delivered: true })
      const stored = yield* backend.stored
      expect(stored.map((r) => r.path.split("/").pop())).toEqual(["progress", "progress", "completion"])
      expect((yield* backend.received).filter((r) => r.path.endsWith("/logs")).length).toBe(1)
    }))


  it.scopedLive("an invalid environment is still reported failed when CALLBACK_URL and JOB_ID are usable", () =>
    Effect.gen(function*() {
      const backend = yield* makeBackendServer()
      const environment = ConfigProvider.fromMap(
        new Map([["CALLBACK_URL", backend.baseUrl], ["JOB_ID", "9"], ["EPOCHS", "many"], ["CALLBACK_MAX_RETRIES", "0"]])
      )
      const outcome = yield* runTrainerEffect(Effect.void).pipe(Effect.withConfigProvider(environment))
      expect(outcome).toMatchObject({ exitCode: 1, status: "failed", errorType: "ConfigError", delivered: true })
      const received = yield* backend.received
      expect(received.map((r) => r.path)).toEqual(["/training/jobs/9/callback/progress", "/training/jobs/9/callback/completion"])
      expect(bodyOf(received[1]!)).toMatchObject({ job_id: 9, status: "failed" })
      expect(bodyOf(received[1]!)["error_message"]).toMatch(/^\[ConfigError\] EPOCHS is invalid/)
    }))

  it.live("an environment without CALLBACK_URL cannot be reported: exit code 2", () =>
    Effect.gen(function*() {
      const outcome = yield* runTrainerEffect(Effect.void).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["JOB_ID", "9"]])))
      )
      expect(outcome).toMatchObject({ exitCode: 2, errorType: "ConfigError", delivered: false })
      expect(outcome.message).toContain("CALLBACK_URL")
    }))
})

describe("TrainerClient.create (Promise facade)", () => {
  it.live("mirrors the services and rejects with the SDK's own error instances", () =>
    Effect.promise(async () => {
      const sdk = await TrainerClient.create({ layer: testLayer })
      try {
        expect(sdk.context.jobId).toBe(42)
        await sdk.reportStarted({ totalEpochs: 2 })
        await sdk.reportProgress({ epoch: 1, totalEpochs: 2, metrics: { loss: 0.5, "mAP50-95": Number.NaN } })
        await sdk.log("INFO", "epoch 1 done")
        const datasetDir = await sdk.downloadDatasetWithCache()
        const report = await sdk.convertDataset({ datasetDir, from: "dice", to: "yolo" })
        expect(report.classes).toEqual(["cat", "dog"])
        const error = await sdk.reportProgress({ epoch: 1, totalEpochs: 0, metrics: {} }).then(() => undefined, (e) => e)
        expect(error).toMatchObject({ _tag: "CallbackError", reason: "Invalid" })
        expect(error).toBeInstanceOf(Error)
        await sdk.reportFailed({ errorType: "DatasetError", message: "simulated" })
      } finally {
        await sdk.close()
      }
    }))

  it.live("rejects creation with the ConfigError naming the variable", () =>
    Effect.promise(async () => {
      const environment = ConfigProvider.fromMap(new Map([["CALLBACK_URL", "http://127.0.0.1:9/api/v1"], ["JOB_ID", "abc"]]))
      const layer = TrainerSdk.layer.pipe(Layer.provide(Layer.setConfigProvider(environment)))
      const error = await TrainerClient.create({ layer }).then(() => undefined, (e) => e)
      expect(error).toMatchObject({ _tag: "ConfigError", reason: "Invalid", variable: "JOB_ID" })
      expect(error).toBeInstanceOf(Error)
    }))
})
