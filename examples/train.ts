/**
 * The example trainer's entry point (`npm run example`, or `node dist/examples/train.js`
 * in an image). With `CALLBACK_URL` set it runs against the real platform through
 * `runTrainer`; without it, against in-process stand-ins (see `embedded.ts`).
 *
 * Ask it to fail with `--fail` (at epoch 3) or `FAIL_AT_EPOCH=<n>`. `--promise` runs the
 * Promise trainer of the README (`readme/promiseTrainer.ts`) through `TrainerSdk.run` instead.
 * In embedded mode the dev backend's dashboard stays up 30 s after the run
 * (`DASHBOARD_LINGER_SECONDS=<n>`), or with `--serve` until Ctrl-C.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Duration } from "effect"
import { runTrainer, TrainerSdk } from "../src/index.js"
import { train as promiseTrainer } from "./readme/promiseTrainer.js"
import { exampleTrainer } from "./trainer.js"

// The AWS SDK prints a multi-line notice on Node 20 that its 2027 releases need Node 22;
// it is for whoever upgrades the image, not for every job's log.
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true"

const failAtEpoch = process.argv.includes("--fail")
  ? 3
  : process.env["FAIL_AT_EPOCH"]
  ? Number(process.env["FAIL_AT_EPOCH"])
  : undefined
const usePromises = process.argv.includes("--promise")
const program = usePromises
  ? TrainerSdk.fromPromise(promiseTrainer)
  : exampleTrainer(failAtEpoch === undefined ? {} : { failAtEpoch })

if (process.env["CALLBACK_URL"]) {
  if (usePromises) await TrainerSdk.run(promiseTrainer)
  else runTrainer(program)
} else {
  const { runEmbedded } = await import("./embedded.js")
  const lingerSeconds = Number(process.env["DASHBOARD_LINGER_SECONDS"] ?? 30)
  const linger = process.argv.includes("--serve")
    ? "until-interrupted" as const
    : Duration.seconds(Number.isFinite(lingerSeconds) && lingerSeconds > 0 ? lingerSeconds : 0)
  // Ctrl-C while the dashboard lingers still exits with the trainer's own code.
  let exitCode = 2
  NodeRuntime.runMain(runEmbedded(program, { linger, onExitCode: (code) => (exitCode = code) }), {
    teardown: () => process.exit(exitCode)
  })
}
