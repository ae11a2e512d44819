import { Effect } from "effect"
import { TrainerSdk } from "trainer-sdk"

/** An inference job's program; its main is `runTrainer(inference)`, as in main.ts. */
export const inference = Effect.gen(function*() {
  const sdk = yield* TrainerSdk
  if (sdk.context.job.kind !== "inference") return yield* Effect.dieMessage("not an inference job")
  const { checkpointS3Uri, imagesS3Uri } = sdk.context.job
  const weights = yield* sdk.storage.downloadCheckpoint(checkpointS3Uri.uri, `${sdk.workDir}/model.pt`)
  const images = ["a.jpg", "b.jpg"] // your listing of imagesS3Uri.key, and your model on `weights`
  yield* Effect.logInfo(`model at ${weights}`)
  yield* sdk.reportInferenceCompleted({
    results: images.map((name) => ({
      imagePath: `${imagesS3Uri.uri}${name}`, // required by the backend
      imageName: name,
      predictions: [{ class_name: "cat", confidence: 0.91, bbox: [10, 20, 50, 60] }],
      inferenceTimeMs: 12.5
    }))
  }) // total_images and the times default to the results' count and sums
})
