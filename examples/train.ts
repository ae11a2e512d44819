/**
 * The example trainer's entry point (`npm run example`, or `node dist/examples/train.js`
 * in an image). With `CALLBACK_URL` set it runs against the real platform through
 * `runTrainer`; without it, against in-process stand-ins (see `embedded.ts`).
 *
 * `--kind inference` runs the example inference job instead (`examples/inference.ts`); on the
 * platform the kind follows from the environment (`INFERENCE_JOB_ID` means inference).
 *
 * Ask it to fail with `--fail` (at epoch 3) or `FAIL_AT_EPOCH=<n>`. `--promise` runs the
 * Promise trainer of the README (`readme/promiseTrainer.ts`) through `TrainerClient.run` instead
 * (a training job). In embedded mode the dev backend's dashboard stays up 30 s after the run
 * (`DASHBOARD_LINGER_SECONDS=<n>`), or with `--serve` until Ctrl-C.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Duration, Effect } from "effect"
import { runTrainer, TrainerClient, TrainerSdk } from "../src/index.js"
import { exampleInference } from "./inference.js"
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
const kindArgument = process.argv.indexOf("--kind")
const requestedKind = kindArgument >= 0 ? process.argv[kindArgument + 1] : undefined
if (requestedKind !== undefined && requestedKind !== "training" && requestedKind !== "inference") {
  console.error(`--kind must be training or inference, got ${requestedKind ?? "nothing"}`)
  process.exit(2)
}
if (usePromises && requestedKind === "inference") {
  console.error("--promise runs the README's Promise trainer, a training job: it does not combine with --kind inference")
  process.exit(2)
}
const training = usePromises
  ? TrainerClient.fromPromise(promiseTrainer)
  : exampleTrainer(failAtEpoch === undefined ? {} : { failAtEpoch })
// On the platform the environment decides: INFERENCE_JOB_ID starts the inference program.
const program = process.env["CALLBACK_URL"]
  ? Effect.flatMap(TrainerSdk, (sdk) => sdk.context.kind === "inference" ? exampleInference : training)
  : requestedKind === "inference"
  ? exampleInference
  : training

if (process.env["CALLBACK_URL"]) {
  if (usePromises) await TrainerClient.run(promiseTrainer)
  else runTrainer(program)
} else {
  const { runEmbedded } = await import("./embedded.js")
  const lingerSeconds = Number(process.env["DASHBOARD_LINGER_SECONDS"] ?? 30)
  const linger = process.argv.includes("--serve")
    ? "until-interrupted" as const
    : Duration.seconds(Number.isFinite(lingerSeconds) && lingerSeconds > 0 ? lingerSeconds : 0)
  // Ctrl-C while the dashboard lingers still exits with the trainer's own code.
  let exitCode = 2
  const kind = requestedKind === "inference" ? "inference" as const : "training" as const
  NodeRuntime.runMain(runEmbedded(program, { kind, linger, onExitCode: (code) => (exitCode = code) }), {
    teardown: () => process.exit(exitCode)
  })
}
