import { join } from "node:path"
import type { TrainerClient } from "trainer-sdk"
import { Trainer } from "./framework.js" // your training library, with synchronous callbacks

/** A trainer whose framework reports through synchronous epoch-end callbacks. */
export const trainWithHooks = async (sdk: TrainerClient) => {
  const model = new Trainer(join(sdk.workDir, "weights"))
  model.onEpochEnd(({ bestWeights, epoch, lastWeights, metrics }) => {
    // Plain synchronous calls: each queues its report or upload and returns at once.
    sdk.hooks.reportProgress({ epoch, metrics })
    sdk.hooks.log("INFO", `epoch ${epoch}: loss ${metrics["loss"]}`)
    sdk.hooks.enqueueCheckpoint(lastWeights, "last", { metrics, epoch })
    if (bestWeights !== undefined) sdk.hooks.enqueueCheckpoint(bestWeights, "best", { metrics, epoch })
  })
  const finalMetrics = await model.train({ epochs: sdk.context.basicConfig.epochs })
  await sdk.reportCompleted({ finalMetrics }) // after the hooks' reports and the uploads
}
