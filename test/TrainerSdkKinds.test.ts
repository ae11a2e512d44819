/**
 * What `TrainerSdk` adds per kind of job: the work dir created at start, the best
 * checkpoint's URI carried in later progress, conversions refusing only a task they cannot
 * do, and the Promise facade's inference, export and evaluation methods over the live layer.
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option } from "effect"
import { sampleDiceDataset } from "../examples/sampleDataset.js"
import { CallbackTest, DevBackend, TrainerClient, TrainerSdk } from "../src/index.js"

describe("TrainerSdk per kind of job", () => {
  it.scoped("the work dir exists when the SDK starts, nested directories included", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const root = yield* fs.makeTempDirectoryScoped()
      const workDir = `${root}/a/b/job`
      const sdk = yield* Effect.provide(TrainerSdk, TrainerSdk.layerTest({ workDir }))
      assert.strictEqual(sdk.workDir, workDir)
      assert.isTrue(yield* fs.exists(workDir))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.live("once a best checkpoint is uploaded, later progress reports carry best_checkpoint_path", () =>
    Effect.gen(function*() {
      const sdk = yield* TrainerSdk
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const weights = path.join(sdk.workDir, "best.pt")
      yield* fs.writeFileString(weights, "weights")
      yield* sdk.reportProgress({ epoch: 1, totalEpochs: 3, metrics: { loss: 1 } })
      yield* sdk.callback.flushProgress
      const last = yield* sdk.uploadCheckpoint(weights, "last")
      yield* sdk.reportProgress({ epoch: 2, totalEpochs: 3, metrics: { loss: 0.9 } })
      yield* sdk.callback.flushProgress
      const best = yield* sdk.uploadCheckpoint(weights, "best", { loss: 0.8 })
      yield* sdk.reportProgress({ epoch: 3, totalEpochs: 3, metrics: { loss: 0.8 } })
      yield* sdk.callback.flushProgress
      yield* sdk.reportProgress({ epoch: 3, totalEpochs: 3, metrics: { loss: 0.8 }, bestCheckpointPath: "s3://other/best.pt" })
      yield* sdk.callback.flushProgress
      const bodies = (yield* Effect.flatMap(CallbackTest, (t) => t.requests)).map((r) => r.body as Record<string, unknown>)
      assert.notStrictEqual(last, best)
      expect(bodies.map((b) => b["best_checkpoint_path"])).toEqual([undefined, undefined, best, "s3://other/best.pt"])
    }).pipe(Effect.provide(TrainerSdk.layerTest())))

  it.scoped("a task type the converter has no task for starts, and only the conversion refuses it, naming it", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      for (const file of sampleDiceDataset()) {
        yield* fs.makeDirectory(`${dir}/${file.key}`.replace(/\/[^/]+$/, ""), { recursive: true })
        yield* fs.writeFile(`${dir}/${file.key}`, file.bytes)
      }
      const sdk = yield* Effect.provide(TrainerSdk, TrainerSdk.layerTest({ job: { taskType: "semantic_segmentation" } }))
      assert.strictEqual(sdk.context.taskType, "semantic_segmentation")
      assert.isTrue(Option.isNone(sdk.context.converterTask))
      const error = yield* Effect.flip(sdk.convertDataset({ datasetDir: dir, from: "dice", to: "yolo" }))
      assert.strictEqual(error._tag, "DatasetError")
      expect(error.message).toContain("semantic_segmentation")
      // The task named explicitly is converted as usual.
      const report = yield* sdk.convertDataset({ datasetDir: dir, from: "dice", to: "yolo", taskType: "object_detection" })
      assert.strictEqual(report.taskType, "detection")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("the Promise facade reports an evaluation's results and an inference's over the live layer", () =>
    Effect.gen(function*() {
      const backend = yield* DevBackend.start()
      const fs = yield* FileSystem.FileSystem
      const root = yield* fs.makeTempDirectoryScoped()
      const common = {
        CALLBACK_URL: backend.url,
        CONFIG: "{}",
        CHECKPOINT_S3_URI: "s3://training-checkpoints/checkpoints/31/best.pt"
      }
      const layer = (variables: Record<string, string>) =>
        TrainerSdk.layerConfig({ workDir: `${root}/${Object.keys(variables).join("-")}` }).pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ ...common, ...variables })))))
        )
      yield* Effect.promise(async () => {
        const evaluation = await TrainerClient.create({
          layer: layer({ TEST_RUN_ID: "8", DATASET_S3_URI: "s3://training-datasets/datasets/ds" }),
          handleSignals: false
        })
        try {
          await evaluation.reportStarted()
          await evaluation.reportEvaluationResults({ metrics: { top1: 0.9 }, numImages: 10 })
        } finally {
          await evaluation.close()
        }
        const inference = await TrainerClient.create({
          layer: layer({ INFERENCE_JOB_ID: "9", IMAGES_S3_URI: "s3://images/batch/" }),
          handleSignals: false
        })
        try {
          await inference.reportStarted()
          await inference.reportInferenceCompleted({ results: [{ imagePath: "s3://images/batch/a.jpg" }] })
        } finally {
          await inference.close()
        }
      })
      const events = yield* backend.events
      expect(events.map((e) => `${e.endpoint}:${e.kind}:${e.jobId}`)).toEqual([
        "evaluationResults:completed:8",
        "inferenceStarted:started:9",
        "inferenceCompletion:completed:9"
      ])
      assert.deepStrictEqual(yield* backend.rejections, [])
    }).pipe(Effect.provide(NodeContext.layer)))
})
