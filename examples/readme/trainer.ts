import { FileSystem, Path } from "@effect/platform"
import { Effect } from "effect"
import { type CallbackMetrics, TrainerError, TrainerSdk } from "trainer-sdk"

/** The training program: no process main here, so tests can import and run it. */
export const trainer = Effect.gen(function*() {
  const sdk = yield* TrainerSdk
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const { epochs, lr0 } = sdk.context.basicConfig

  const datasetDir = yield* sdk.downloadDatasetWithCache() // cached per node, viewed per job
  const dataset = yield* sdk.convertDataset({ datasetDir, from: "dice", to: "yolo" })
  yield* Effect.logInfo(`${dataset.images} images, classes ${dataset.classes.join(", ")}`) // shipped too
  yield* fs.makeDirectory(sdk.workDir, { recursive: true })

  let metrics: CallbackMetrics = {}
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const loss = 1 / (epoch + 1) // your framework here
    if (!Number.isFinite(loss)) {
      return yield* new TrainerError({ errorType: "FrameworkError", message: `loss diverged at epoch ${epoch}` })
    }
    metrics = { loss, "mAP50-95": 0.1 * epoch, lr: lr0 / epoch }
    yield* sdk.reportProgress({ epoch, metrics }) // never waits on the network
    yield* sdk.reportValidation({ epoch, primaryMetric: ["mAP50-95", metrics["mAP50-95"]!], allMetrics: metrics })
    const weights = path.join(sdk.workDir, "last.pt")
    yield* fs.writeFileString(weights, `weights of epoch ${epoch}`)
    yield* sdk.enqueueCheckpoint(weights, "last", { metrics }) // snapshot now, upload in the background
  }
  // Waits for the uploads; checkpoints.last is the uploaded s3://…/checkpoints/{job}/last.pt
  yield* sdk.reportCompleted({ finalMetrics: metrics })
})
