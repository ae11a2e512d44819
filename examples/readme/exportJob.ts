import { Effect } from "effect"
import { exportMetadata, TrainerSdk } from "trainer-sdk"

/** An export job's program; its main is `runTrainer(exportJob)`. */
export const exportJob = Effect.gen(function*() {
  const sdk = yield* TrainerSdk
  if (sdk.context.job.kind !== "export") return yield* Effect.dieMessage("not an export job")
  const { exportFormat, trainingJobId } = sdk.context.job
  const output = yield* sdk.storage.uploadFile(`${sdk.workDir}/model.${exportFormat}`, `exports/${trainingJobId}/model.${exportFormat}`)
  yield* sdk.reportExportCompleted({
    exportFormat,
    outputS3Uri: output,
    fileSizeBytes: 4_194_304,
    metadata: exportMetadata({ framework: "ultralytics", modelName: "yolo11n", exportFormat, taskType: sdk.context.taskType,
      inputShape: [1, 3, 640, 640], outputShape: [[1, 84, 8400]], createdAt: new Date() })
  })
})
