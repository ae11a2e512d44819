/**
 * A trainer process for the S3 signal tests: `node <compiled>/test/support/transferProcess.js
 * <scenario>` (compiled by compileScripts.ts) with the job's environment (storage endpoints at a test double) set by the
 * test. It prints `transferring` on stdout when the transfer starts.
 * - `runner-upload`: `runTrainer` uploading the checkpoint at `CHECKPOINT_FILE`.
 * - `facade-upload`: the same through the Promise facade.
 * - `facade-download`: the Promise facade's `downloadDatasetWithCache` into `DEST_DIR`.
 */
import { Effect } from "effect"
import { runTrainer, TrainerClient, TrainerSdk } from "../../src/index.js"

const scenario = process.argv[2]
const checkpoint = process.env["CHECKPOINT_FILE"] ?? ""
const started = () => process.stdout.write("transferring\n")

const facade = async () => {
  const sdk = await TrainerClient.create()
  await sdk.reportStarted({ totalEpochs: 1 })
  started()
  if (scenario === "facade-upload") await sdk.uploadCheckpoint(checkpoint, "best")
  else await sdk.downloadDatasetWithCache({ destDir: process.env["DEST_DIR"] ?? "" })
  process.stdout.write("transfer finished\n")
  await sdk.close()
}

if (scenario === "runner-upload") {
  runTrainer(
    Effect.gen(function*() {
      const sdk = yield* TrainerSdk
      yield* Effect.sync(started)
      yield* sdk.uploadCheckpoint(checkpoint, "best")
    }),
    { totalEpochs: 1 }
  )
} else if (scenario === "facade-upload" || scenario === "facade-download") {
  void facade()
} else {
  throw new Error(`unknown scenario ${scenario}`)
}
