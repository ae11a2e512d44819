import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { CallbackTest, StorageTest, runTrainerEffect, TrainerSdk } from "trainer-sdk"
import { sampleDiceDataset } from "../sampleDataset.js" // a small DICE dataset: annotations and images
import { trainer } from "./trainer.js"

const testLayer = Layer.tap(
  TrainerSdk.layerTest({ job: { jobId: 42, datasetId: "ds", datasetVersionHash: "v1", basicConfig: { epochs: 3 } } }),
  // The dataset in the in-memory store, under datasets/ds/ as the platform lays it out.
  (context) => Effect.sync(() => Context.get(context, StorageTest).seedDataset("ds", { files: sampleDiceDataset() }))
)

describe("trainer", () => {
  it.live("reports three epochs and the completion with its checkpoint", () =>
    Effect.gen(function*() {
      yield* trainer
      const requests = yield* (yield* CallbackTest).requests
      expect(requests.filter((r) => r.path.endsWith("/progress")).length).toBe(3)
      expect(requests.at(-1)?.body).toMatchObject({
        status: "completed",
        last_checkpoint_path: "s3://training-checkpoints/checkpoints/42/last.pt"
      })
    }).pipe(Effect.provide(testLayer)))

  it.scopedLive("as the runner runs it: the start first, exit code 0", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(testLayer)
      const outcome = yield* runTrainerEffect(trainer, { layer: Layer.succeedContext(context) })
      expect(outcome.exitCode).toBe(0)
      const requests = yield* Context.get(context, CallbackTest).requests
      expect(requests[0]?.body).toMatchObject({ current_epoch: 0, total_epochs: 3 })
    }))
})
