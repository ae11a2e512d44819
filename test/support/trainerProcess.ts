/**
 * A trainer process for `runTrainer` tests: `node <compiled>/test/support/trainerProcess.js
 * <scenario>` (compiled by compileScripts.ts) with the job's environment set by the test.
 * The runner reports the start (with the scenario's epoch count) before the program runs.
 * - `success`: two epochs of progress, completed.
 * - `dataset-error`: converting a dataset directory that does not exist.
 * - `facade-slow`: the same as `slow` through the Promise facade (`TrainerClient.create()`),
 *   without `runTrainer`.
 * - `slow`: one epoch every 200 ms (a log entry each) for a minute, so the
 *   test can stop it with a signal mid-epoch; it prints `epoch N` on stdout per epoch.
 */
import { Effect } from "effect"
import { runTrainer, TrainerClient, TrainerSdk } from "../../src/index.js"

const scenario = process.argv[2]

const program = Effect.gen(function*() {
  const sdk = yield* TrainerSdk
  switch (scenario) {
    case "success": {
      for (const epoch of [1, 2]) yield* sdk.reportProgress({ epoch, totalEpochs: 2, metrics: { loss: 1 / epoch } })
      return yield* sdk.reportCompleted({ finalMetrics: { loss: 0.5 } })
    }
    case "dataset-error": {
      yield* sdk.convertDataset({ datasetDir: `${sdk.workDir}/no-such-dataset`, from: "dice", to: "yolo" })
      return
    }
    case "slow": {
      for (let epoch = 1; epoch <= 300; epoch++) {
        yield* Effect.sleep("200 millis")
        yield* sdk.log("INFO", `epoch ${epoch} done`, { source: "training" })
        yield* sdk.reportProgress({ epoch, totalEpochs: 300, metrics: { loss: 1 / epoch } })
        yield* Effect.sync(() => process.stdout.write(`epoch ${epoch}\n`))
      }
      return
    }
    default:
      return yield* Effect.dieMessage(`unknown scenario ${scenario}`)
  }
})

/** The `slow` loop written against the Promise facade, as a trainer without Effect would. */
const facadeSlow = async () => {
  const sdk = await TrainerClient.create()
  await sdk.reportStarted({ totalEpochs: 300 })
  for (let epoch = 1; epoch <= 300; epoch++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    await sdk.log("INFO", `epoch ${epoch} done`, { source: "training" })
    await sdk.reportProgress({ epoch, totalEpochs: 300, metrics: { loss: 1 / epoch } })
    process.stdout.write(`epoch ${epoch}\n`)
  }
  await sdk.close()
}

if (scenario === "facade-slow") void facadeSlow()
else runTrainer(program, { totalEpochs: scenario === "slow" ? 300 : 2 })
