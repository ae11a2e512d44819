/**
 * Every kind of platform job over the live layer: the environment is exactly what the
 * platform's launcher sets for that kind (platform-behaviour.md, "How each kind of job is
 * started"), the program reports its start, results and outcome through `runTrainerEffect`,
 * and the dev backend checks every request as strictly as the backend's models.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option } from "effect"
import * as os from "node:os"
import * as nodePath from "node:path"
import { DevBackend, type DevBackendEvent, type DevBackendHandle } from "../src/DevBackend.js"
import { runTrainerEffect } from "../src/Runner.js"
import { TrainerSdk } from "../src/TrainerSdk.js"

/** What every pod gets: the callback URL, CONFIG and the eight storage variables. */
const everyPod = (callbackUrl: string, config: Record<string, unknown>) => ({
  CALLBACK_URL: callbackUrl,
  CONFIG: JSON.stringify(config),
  EXTERNAL_STORAGE_ENDPOINT: "http://127.0.0.1:1",
  EXTERNAL_STORAGE_ACCESS_KEY: "ext-key",
  EXTERNAL_STORAGE_SECRET_KEY: "ext-secret",
  EXTERNAL_BUCKET_DATASETS: "training-datasets",
  INTERNAL_STORAGE_ENDPOINT: "http://127.0.0.1:1",
  INTERNAL_STORAGE_ACCESS_KEY: "int-key",
  INTERNAL_STORAGE_SECRET_KEY: "int-secret",
  INTERNAL_BUCKET_CHECKPOINTS: "training-checkpoints"
})

/** A job id no other run of this suite uses, so each job's default work dir is its own. */
const freshId = () => 900_000 + Math.floor(Math.random() * 99_999)

const checkpointUri = "s3://training-checkpoints/checkpoints/31/best.pt"

/** The launcher's environment of each kind (the table's variables, nothing more). */
const launcherEnvironment = {
  training: (url: string, id: number) => ({
    ...everyPod(url, {
      epochs: 2,
      batch: 8,
      learning_rate: 0.01,
      imgsz: 320,
      device: "cpu",
      advanced_config: { mosaic: 0.5 },
      primary_metric: "mAP50-95",
      primary_metric_mode: "max"
    }),
    JOB_ID: String(id),
    TASK_TYPE: "open_vocabulary_detection",
    MODEL_NAME: "yolov8s-worldv2",
    FRAMEWORK: "ultralytics",
    DATASET_ID: "ds-9",
    DATASET_S3_URI: "s3://training-datasets/datasets/ds-9",
    EPOCHS: "2",
    BATCH_SIZE: "8",
    LEARNING_RATE: "0.01",
    IMGSZ: "320",
    DEVICE: "cpu"
  }),
  inference: (url: string, id: number) => ({
    ...everyPod(url, {}),
    INFERENCE_JOB_ID: String(id),
    CHECKPOINT_S3_URI: checkpointUri,
    IMAGES_S3_URI: "s3://inference-images/jobs/7/",
    TRAINING_JOB_ID: "31"
  }),
  export: (url: string, id: number) => ({
    ...everyPod(url, {}),
    EXPORT_JOB_ID: String(id),
    TRAINING_JOB_ID: "31",
    CHECKPOINT_S3_URI: checkpointUri,
    EXPORT_FORMAT: "onnx"
  }),
  evaluation: (url: string, id: number) => ({
    ...everyPod(url, {}),
    TEST_RUN_ID: String(id),
    CHECKPOINT_S3_URI: checkpointUri,
    DATASET_S3_URI: "s3://training-datasets/datasets/ds-9"
  })
} as const

type Kind = keyof typeof launcherEnvironment

/** The program each kind runs when it succeeds: what a real trainer of that kind reports. */
const succeeding = (kind: Kind) =>
  Effect.gen(function*() {
    const sdk = yield* TrainerSdk
    const fs = yield* FileSystem.FileSystem
    assert.isTrue(yield* fs.exists(sdk.workDir), "the work dir exists at start")
    assert.strictEqual(sdk.context.kind, kind)
    switch (sdk.context.job.kind) {
      case "training": {
        assert.deepStrictEqual(Option.map(sdk.context.job.datasetS3Uri, (u) => u.key), Option.some("datasets/ds-9"))
        assert.strictEqual(sdk.context.config["primary_metric"], "mAP50-95")
        yield* sdk.log("INFO", "Dataset ready", { source: "dataset" })
        yield* sdk.reportProgress({ epoch: 1, totalEpochs: 2, metrics: { loss: 0.9, "mAP50-95": 0.2 } })
        yield* sdk.reportValidation({ epoch: 1, primaryMetric: ["mAP50-95", 0.2], allMetrics: { "mAP50-95": 0.2 } })
        yield* sdk.reportProgress({ epoch: 2, totalEpochs: 2, metrics: { loss: 0.7, "mAP50-95": 0.3 } })
        return yield* sdk.reportCompleted({ finalMetrics: { loss: 0.7, "mAP50-95": 0.3 } })
      }
      case "inference":
        assert.strictEqual(sdk.context.job.imagesS3Uri.bucket, "inference-images")
        assert.deepStrictEqual(sdk.context.job.trainingJobId, Option.some(31))
        return yield* sdk.reportInferenceCompleted({
          results: [
            { imagePath: "s3://inference-images/jobs/7/a.jpg", imageName: "a.jpg", predictions: [{ class_name: "cat", confidence: 0.9 }], inferenceTimeMs: 12 },
            { imagePath: "s3://inference-images/jobs/7/b.jpg", inferenceTimeMs: 8 }
          ]
        })
      case "export":
        assert.strictEqual(sdk.context.job.exportFormat, "onnx")
        assert.strictEqual(sdk.context.job.trainingJobId, 31)
        return yield* sdk.reportExportCompleted({
          exportFormat: sdk.context.job.exportFormat,
          outputS3Uri: "s3://training-checkpoints/exports/31/model.onnx",
          fileSizeBytes: 4096,
          metadata: { framework: "ultralytics" }
        })
      case "evaluation":
        assert.strictEqual(sdk.context.job.checkpointS3Uri.key, "checkpoints/31/best.pt")
        return yield* sdk.reportEvaluationResults({ metrics: { "mAP50-95": 0.41 }, classNames: ["cat"], numImages: 20 })
    }
  })

/** The endpoint and kind of each accepted event. */
const trail = (events: ReadonlyArray<DevBackendEvent>) => events.map((e) => `${e.endpoint}:${e.kind}`)

/** Runs `program` as a job of `kind` against a fresh dev backend, from exactly the launcher's environment. */
const runKind = <A, E>(kind: Kind, program: Effect.Effect<A, E, never>, check: (backend: DevBackendHandle, id: number) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const backend = yield* DevBackend.start()
    const id = freshId()
    const environment = launcherEnvironment[kind](backend.url, id)
    const outcome = yield* runTrainerEffect(program).pipe(
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(environment))))
    )
    yield* check(backend, id)
    const fs = yield* FileSystem.FileSystem
    const workDir = nodePath.join(os.tmpdir(), "trainer-sdk", `${kind === "training" ? "job" : kind}-${id}`)
    assert.isTrue(yield* fs.exists(workDir), `the default work dir ${workDir} was created`)
    yield* fs.remove(workDir, { recursive: true })
    assert.deepStrictEqual(yield* backend.rejections, [], "the dev backend rejected nothing")
    return outcome
  }).pipe(Effect.provide(NodeContext.layer))

describe("every kind of job starts from its launcher's environment and reports", () => {
  it.scopedLive("training: started, log, progress, validation, progress, completed", () =>
    Effect.gen(function*() {
      const outcome = yield* runKind("training", succeeding("training") as Effect.Effect<void>, (backend, id) =>
        Effect.gen(function*() {
          const all = yield* backend.events
          // Log entries are shipped in batches; where they land among the lifecycle reports is #14's outbox.
          expect(trail(all.filter((e) => e.kind === "log"))).toEqual(["trainingLogs:log"])
          const events = all.filter((e) => e.kind !== "log")
          expect(trail(events)).toEqual([
            "trainingProgress:started",
            "trainingProgress:progress",
            "validationResults:validation",
            "trainingProgress:progress",
            "trainingCompletion:completed"
          ])
          assert.isTrue(all.every((e) => e.jobId === id))
          const validation = events[2]!
          assert(validation.kind === "validation")
          assert.strictEqual(validation.body.task_type, "open_vocabulary_detection")
          const started = events[0]!
          assert(started.kind === "started" && started.operation === "training")
          assert.strictEqual(started.body.total_epochs, 2)
        }))
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed", delivered: true })
    }))

  it.scopedLive("inference: started, then completed with typed results", () =>
    Effect.gen(function*() {
      const outcome = yield* runKind("inference", succeeding("inference") as Effect.Effect<void>, (backend, id) =>
        Effect.gen(function*() {
          const events = yield* backend.events
          expect(trail(events)).toEqual(["inferenceStarted:started", "inferenceCompletion:completed"])
          assert.isTrue(events.every((e) => e.jobId === id))
          const completed = events[1]!
          assert(completed.kind === "completed" && completed.operation === "inference")
          expect(completed.body).toMatchObject({ status: "completed", total_images: 2, total_inference_time_ms: 20 })
          expect(completed.body.results?.[0]).toEqual({
            image_path: "s3://inference-images/jobs/7/a.jpg",
            image_name: "a.jpg",
            predictions: [{ class_name: "cat", confidence: 0.9 }],
            inference_time_ms: 12
          })
        }))
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed", delivered: true })
    }))

  it.scopedLive("export: started, then completed", () =>
    Effect.gen(function*() {
      const outcome = yield* runKind("export", succeeding("export") as Effect.Effect<void>, (backend, id) =>
        Effect.gen(function*() {
          const events = yield* backend.events
          expect(trail(events)).toEqual(["exportStarted:started", "exportCompletion:completed"])
          assert.isTrue(events.every((e) => e.jobId === id))
        }))
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed", delivered: true })
    }))

  it.scopedLive("evaluation: no start endpoint; the results reach /test_inference/test/{id}/results", () =>
    Effect.gen(function*() {
      const outcome = yield* runKind("evaluation", succeeding("evaluation") as Effect.Effect<void>, (backend, id) =>
        Effect.gen(function*() {
          const events = yield* backend.events
          expect(trail(events)).toEqual(["evaluationResults:completed"])
          const results = events[0]!
          assert(results.kind === "completed" && results.operation === "evaluation")
          assert.strictEqual(results.jobId, id)
          expect(results.body).toMatchObject({ status: "completed", task_type: "detection", num_images: 20, metrics: { "mAP50-95": 0.41 } })
        }))
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed", delivered: true })
    }))

  const failing = Effect.fail(new Error("CUDA out of memory"))

  for (const [kind, expected] of [
    ["training", ["trainingProgress:started", "trainingCompletion:failed"]],
    ["inference", ["inferenceStarted:started", "inferenceCompletion:failed"]],
    ["export", ["exportStarted:started", "exportCompletion:failed"]],
    ["evaluation", ["evaluationResults:failed"]]
  ] as const) {
    it.scopedLive(`${kind}: a failing program is reported failed on the ${kind} endpoints; exit code 1`, () =>
      Effect.gen(function*() {
        const outcome = yield* runKind(kind, failing, (backend, id) =>
          Effect.gen(function*() {
            const events = (yield* backend.events).filter((e) => e.kind !== "log")
            expect(trail(events)).toEqual(expected)
            const last = events[events.length - 1]!
            assert.strictEqual(last.jobId, id)
            assert(last.kind === "failed")
            expect(last.body.error_message).toMatch(/^\[ResourceError\] .*CUDA out of memory/)
            expect(last.body.traceback).toContain("CUDA out of memory")
          }))
        expect(outcome).toMatchObject({ exitCode: 1, status: "failed", errorType: "ResourceError", delivered: true })
      }))
  }

  for (const kind of ["inference", "export", "evaluation"] as const) {
    it.scopedLive(`${kind}: a program that ends without its results is reported failed, not left running`, () =>
      Effect.gen(function*() {
        const outcome = yield* runKind(kind, Effect.void, (backend) =>
          Effect.gen(function*() {
            const events = yield* backend.events
            const last = events[events.length - 1]!
            assert(last.kind === "failed")
            expect(last.body.error_message).toBe(`[UnknownError] The ${kind} program ended without reporting its results`)
          }))
        expect(outcome).toMatchObject({ exitCode: 1, status: "failed", delivered: true })
      }))
  }

  it.scopedLive("an inference pod whose IMAGES_S3_URI is missing reports the ConfigError to its own endpoint", () =>
    Effect.gen(function*() {
      const backend = yield* DevBackend.start()
      const { IMAGES_S3_URI: _, ...environment } = launcherEnvironment.inference(backend.url, 77)
      const outcome = yield* runTrainerEffect(Effect.void).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(environment))))
      )
      expect(outcome).toMatchObject({ exitCode: 1, errorType: "ConfigError", delivered: true })
      const events = yield* backend.events
      expect(trail(events)).toEqual(["inferenceStarted:started", "inferenceCompletion:failed"])
      const failed = events[1]!
      assert(failed.kind === "failed")
      expect(failed.body.error_message).toContain("IMAGES_S3_URI")
    }))
})
