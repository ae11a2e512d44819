import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { sampleDiceDataset } from "../examples/sampleDataset.js"
import { trainWithHooks } from "../examples/readme/hooksTrainer.js"
import { train } from "../examples/readme/promiseTrainer.js"
import { trainer } from "../examples/readme/trainer.js"
import { CallbackTest, StorageTest, runTrainerEffect, TrainerClient, TrainerSdk, type TrainerTestServices } from "../src/index.js"
import { makeBackendServer } from "./support/backendServer.js"

const root = join(import.meta.dirname, "..")
const readme = readFileSync(join(root, "README.md"), "utf8")
const exampleDir = join(root, "examples", "readme")
/** The README's examples: every file the README includes (the simulated framework is not shown). */
const included = readdirSync(exampleDir).filter((name) => name !== "framework.ts").sort()

describe("README code blocks", () => {
  it("are the files under examples/readme, verbatim, and nothing else", () => {
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```\n/g)].map((m) => m[1]!)
    const files = included.map((name) => readFileSync(join(exampleDir, name), "utf8"))
    expect(blocks.length).toBe(files.length)
    for (const [i, name] of included.entries()) {
      expect(blocks, `README includes examples/readme/${name} verbatim`).toContain(files[i])
    }
  })

  const job = { jobId: 42, datasetId: "ds", datasetVersionHash: "v1", basicConfig: { epochs: 3 } }
  const seededLayer = Effect.map(
    Layer.build(Layer.tap(TrainerSdk.layerTest({ job }), (context) =>
      Effect.sync(() => {
        Context.get(context, StorageTest).seedDataset("ds", { files: sampleDiceDataset() })
      }))),
    (context) => ({ context, layer: Layer.succeedContext(context) as Layer.Layer<TrainerTestServices> })
  )
  const completion = (context: Context.Context<TrainerTestServices>) =>
    Effect.map(Context.get(context, CallbackTest).requests, (requests) => requests.at(-1)?.body as Record<string, unknown>)

  it.scopedLive("the Effect trainer runs under the runner", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* seededLayer
      expect(yield* runTrainerEffect(trainer, { layer })).toMatchObject({ exitCode: 0 })
      expect(yield* completion(context)).toMatchObject({ status: "completed", total_epochs_completed: 3 })
    }))

  it.scopedLive("the Promise trainer runs under TrainerClient.run; every best and the last checkpoint are carried", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* seededLayer
      const outcome = yield* Effect.promise(() => TrainerClient.run(train, { layer, exit: false }))
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed" })
      expect(yield* completion(context)).toMatchObject({
        status: "completed",
        best_checkpoint_path: "s3://training-checkpoints/checkpoints/42/best.pt",
        last_checkpoint_path: "s3://training-checkpoints/checkpoints/42/last.pt"
      })
    }))

  it.scopedLive("the framework-callback trainer reports every epoch from its synchronous hooks", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* seededLayer
      const outcome = yield* Effect.promise(() => TrainerClient.run(trainWithHooks, { layer, exit: false }))
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed" })
      const requests = yield* Context.get(context, CallbackTest).requests
      const progress = requests.filter((r) => r.path.endsWith("/progress")).map((r) => (r.body as Record<string, unknown>)["current_epoch"])
      expect(progress.at(0)).toBe(0)
      expect(progress.at(-1)).toBe(3) // a slow backend may skip an intermediate epoch, never the last
      expect(yield* completion(context)).toMatchObject({
        status: "completed",
        best_checkpoint_path: "s3://training-checkpoints/checkpoints/42/best.pt",
        last_checkpoint_path: "s3://training-checkpoints/checkpoints/42/last.pt"
      })
      const stored = Context.get(context, StorageTest).internal.read("checkpoints/42/last.pt")
      expect(new TextDecoder().decode(stored)).toBe("weights of epoch 3")
    }))

  it.scopedLive("the mains start the process: a job whose dataset is missing is reported failed, exit code 1", () =>
    Effect.gen(function*() {
      const cacheDir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "trainer-sdk-readme-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      )
      for (const main of ["main.ts", "promiseMain.ts"]) {
        const backend = yield* makeBackendServer()
        const code = yield* Effect.async<number | null>((resume) => {
          const child = spawn(process.execPath, ["--import", "tsx", join(exampleDir, main)], {
            cwd: root,
            env: {
              ...process.env,
              CALLBACK_URL: backend.baseUrl,
              JOB_ID: "5",
              EPOCHS: "2",
              CALLBACK_MAX_RETRIES: "0",
              DATASET_ID: "",
              DATASET_CACHE_DIR: cacheDir
            },
            stdio: "ignore"
          })
          child.on("exit", (exitCode) => resume(Effect.succeed(exitCode)))
        })
        expect(code, main).toBe(1)
        const received = yield* backend.received
        const paths = received.map((r) => r.path).filter((path) => !path.endsWith("/logs"))
        expect(paths, main).toEqual(["/training/jobs/5/callback/progress", "/training/jobs/5/callback/completion"])
        expect(received.find((r) => r.path.endsWith("/completion"))!.body, main).toMatchObject({ status: "failed" })
      }
    }), { timeout: 120_000 })
})
