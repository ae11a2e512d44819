import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { type TrainerClient, TrainerError } from "trainer-sdk"

/** Stands in for your framework's training step. */
const trainOneEpoch = async (epoch: number) => ({ loss: 1 / (epoch + 1), "mAP50-95": 0.1 * epoch })

/** The training program, written with Promises; `TrainerClient.run` (see promiseMain.ts) runs it. */
export const train = async (sdk: TrainerClient) => {
  const { epochs } = sdk.context.basicConfig
  const resumed = await sdk.resume() // a job restarted after preemption continues after its last checkpoint
  const datasetDir = await sdk.downloadDatasetWithCache()
  await sdk.convertDataset({ datasetDir, from: "dice", to: "yolo" })
  await mkdir(join(sdk.workDir, "weights"), { recursive: true })

  let best = -1
  let metrics: Record<string, number> = {}
  for (let epoch = (resumed?.epoch ?? 0) + 1; epoch <= epochs; epoch++) {
    const result = await trainOneEpoch(epoch)
    if (!Number.isFinite(result.loss)) {
      throw new TrainerError({ errorType: "FrameworkError", message: `loss diverged at epoch ${epoch}` })
    }
    metrics = result
    await sdk.reportProgress({ epoch, metrics })
    await sdk.log("INFO", `epoch ${epoch} done`)
    const weights = join(sdk.workDir, "weights", "last.pt")
    await writeFile(weights, `weights of epoch ${epoch}`)
    await sdk.enqueueCheckpoint(weights, "last", { metrics }) // returns at once
    if (result["mAP50-95"] > best) {
      best = result["mAP50-95"]
      await sdk.enqueueCheckpoint(weights, "best", { metrics }) // every best is uploaded
    }
  }
  await sdk.reportCompleted({ finalMetrics: metrics }) // waits for the uploads, carries their URIs
}
