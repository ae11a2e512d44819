import { FileSystem, HttpClient, HttpClientRequest, Path } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { NodeContext } from "@effect/platform-node"
import { Context, Deferred, Effect, Layer, Option, Schedule } from "effect"
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { sampleDiceDataset } from "../examples/sampleDataset.js"
import {
  type CallbackMetrics,
  CallbackTest,
  CheckpointError,
  ConverterTest,
  LogBufferTest,
  StorageTest,
  runTrainerEffect,
  TrainerClient,
  TrainerError,
  TrainerSdk,
  type TrainerTestServices
} from "../src/index.js"
import { makeCheckpointUploadQueue } from "../src/internal/checkpointUploads.js"
import { makeBackendServer } from "./support/backendServer.js"

const job = { jobId: 7, basicConfig: { epochs: 4 } }

const bodies = (path: string) =>
  Effect.map(Effect.flatMap(CallbackTest, (c) => c.requests), (requests) =>
    requests.filter((r) => r.path === path).map((r) => r.body as Record<string, unknown>))

describe("one metrics type, optional totalEpochs, HttpClient in TrainerServices", () => {
  it.scoped("progress without totalEpochs is out of the start's planned epochs; the same metrics go to uploadCheckpoint", () =>
    Effect.gen(function*() {
      const sdk = yield* TrainerSdk
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      yield* sdk.reportStarted({ totalEpochs: 10 })
      const metrics: CallbackMetrics = { loss: 0.5, "mAP50-95": null, lr: Number.NaN }
      yield* sdk.reportProgress({ epoch: 1, metrics })
      yield* sdk.callback.flushProgress
      yield* sdk.reportProgress({ epoch: 2, totalEpochs: 20, metrics })
      yield* sdk.callback.flushProgress
      const progress = yield* bodies("/training/jobs/7/callback/progress")
      expect(progress.map((b) => [b["current_epoch"], b["total_epochs"]])).toEqual([[0, 10], [1, 10], [2, 20]])
      expect(progress[1]!["progress_percent"]).toBe(10)

      const file = path.join(sdk.workDir, "best.pt")
      yield* fs.makeDirectory(sdk.workDir, { recursive: true })
      yield* fs.writeFileString(file, "weights")
      yield* sdk.uploadCheckpoint(file, "best", metrics)
      const entries = yield* Effect.flatMap(LogBufferTest, (l) => l.entries)
      const saved = entries.find((e) => e.source === "checkpoint")
      expect(saved?.data).toMatchObject({ metrics: { loss: 0.5, "mAP50-95": null, lr: null } })
    }).pipe(Effect.provide(TrainerSdk.layerTest({ job }))))

  it.scoped("progress without a start and without totalEpochs is out of the epochs config", () =>
    Effect.gen(function*() {
      const sdk = yield* TrainerSdk
      yield* sdk.reportProgress({ epoch: 1, metrics: {} })
      yield* sdk.callback.flushProgress
      const progress = yield* bodies("/training/jobs/7/callback/progress")
      expect(progress.map((b) => b["total_epochs"])).toEqual([4])
    }).pipe(Effect.provide(TrainerSdk.layerTest({ job }))))

  it.scopedLive("a program that requires HttpClient runs under runTrainerEffect and layerTest", () =>
    Effect.gen(function*() {
      const server = yield* makeBackendServer()
      const program = Effect.gen(function*() {
        const client = yield* HttpClient.HttpClient
        yield* client.execute(HttpClientRequest.post(`${server.baseUrl}/ping`))
      })
      const outcome = yield* runTrainerEffect(program, { layer: TrainerSdk.layerTest({ job }) })
      expect(outcome).toMatchObject({ exitCode: 0, status: "completed" })
      expect((yield* server.received).map((r) => r.path)).toContain("/ping")
    }))
})

/** Writes `text` as a checkpoint file in the SDK's work dir; returns its path. */
const writeCheckpoint = (name: string, text: string) =>
  Effect.gen(function*() {
    const sdk = yield* TrainerSdk
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    yield* fs.makeDirectory(path.join(sdk.workDir, "weights"), { recursive: true })
    const file = path.join(sdk.workDir, "weights", name)
    yield* fs.writeFileString(file, text)
    return file
  })

const stored = (key: string) =>
  Effect.map(StorageTest, (s) => {
    const bytes = s.internal.read(key)
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes)
  })

describe("background checkpoint uploads", () => {
  it.scoped("one upload per type in flight; a newer last supersedes a queued last; every best is uploaded", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped())
      const gates = new Map<string, Deferred.Deferred<void>>()
      const started: Array<string> = []
      const inFlight = new Map<string, number>()
      let maxPerType = 0
      const queue = yield* makeCheckpointUploadQueue({
        snapshotDir: `${dir}/snapshots`,
        retry: Schedule.stop,
        upload: (snapshot, type) =>
          Effect.gen(function*() {
            const content = readFileSync(snapshot, "utf8")
            started.push(`${type}:${content}`)
            inFlight.set(type, (inFlight.get(type) ?? 0) + 1)
            maxPerType = Math.max(maxPerType, inFlight.get(type)!)
            const gate = yield* Deferred.make<void>()
            gates.set(`${type}:${content}`, gate)
            yield* Deferred.await(gate)
            inFlight.set(type, inFlight.get(type)! - 1)
            return `s3://bucket/${type}@${content}`
          })
      })
      const file = (name: string, content: string) => {
        writeFileSync(`${dir}/${name}`, content)
        return `${dir}/${name}`
      }
      const release = (id: string) =>
        Effect.gen(function*() {
          while (!gates.has(id)) yield* Effect.yieldNow()
          yield* Deferred.succeed(gates.get(id)!, undefined)
        })
      const enqueue = (name: string, type: string, content: string, epoch: number) =>
        queue.enqueue(file(name, content), type, { epoch })

      const last1 = yield* enqueue("last.pt", "last", "e1", 1)
      const best1 = yield* enqueue("best.pt", "best", "e1", 1)
      // The trainer overwrites its files at once: the queued uploads keep their snapshots.
      const last2 = yield* enqueue("last.pt", "last", "e2", 2)
      const best2 = yield* enqueue("best.pt", "best", "e2", 2)
      const last3 = yield* enqueue("last.pt", "last", "e3", 3)
      expect(yield* last2.status).toBe("superseded")
      expect(yield* last3.status).toBe("queued")

      yield* release("last:e1")
      yield* release("best:e1")
      yield* release("last:e3")
      yield* release("best:e2")
      expect(yield* last1.result).toBe("s3://bucket/last@e1")
      expect(yield* last2.result).toBe("s3://bucket/last@e3")
      expect(yield* last3.result).toBe("s3://bucket/last@e3")
      expect(yield* best1.result).toBe("s3://bucket/best@e1")
      expect(yield* best2.result).toBe("s3://bucket/best@e2")
      expect([...started].sort()).toEqual(["best:e1", "best:e2", "last:e1", "last:e3"])
      expect(maxPerType).toBe(1)
      const summary = yield* queue.awaitAll("1 second")
      expect(summary).toEqual({ uploaded: { last: "s3://bucket/last@e3", best: "s3://bucket/best@e2" }, failed: [] })
      // Snapshots are removed once uploaded.
      expect(readdirSync(`${dir}/snapshots`)).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a synchronous hook reports progress and enqueues an upload without blocking; the completion waits for it and carries its URI", () =>
    Effect.gen(function*() {
      const sdk = yield* TrainerSdk
      yield* sdk.reportStarted({ totalEpochs: 2 })
      const weights = yield* writeCheckpoint("last.pt", "epoch-1")
      // A framework's epoch-end callback: plain synchronous code.
      const onEpochEnd = (epoch: number, metrics: Record<string, number>) => {
        sdk.hooks.reportProgress({ epoch, metrics })
        sdk.hooks.log("INFO", `epoch ${epoch} done`)
        return sdk.hooks.enqueueCheckpoint(weights, "last", { metrics })
      }
      const handle = onEpochEnd(1, { loss: 0.5 })
      expect(["queued", "uploading"]).toContain(handle.status()) // the hook returned before the upload ended
      expect(handle.epoch).toBe(0) // no progress had been sent when the hook ran
      writeFileSync(weights, "epoch-2 (overwritten at once)")
      const best = yield* writeCheckpoint("best.pt", "best weights")
      yield* sdk.enqueueCheckpoint(best, "best", { epoch: 1, metrics: { loss: 0.5 } })
      yield* sdk.reportCompleted({ finalMetrics: { loss: 0.5 } })

      expect(yield* Effect.promise(handle.result)).toBe("s3://training-checkpoints/checkpoints/7/last.pt")
      expect(yield* stored("checkpoints/7/last.pt")).toBe("epoch-1")
      const progress = yield* bodies("/training/jobs/7/callback/progress")
      expect(progress.map((b) => b["current_epoch"])).toEqual([0, 1])
      const [completion] = yield* bodies("/training/jobs/7/callback/completion")
      expect(completion).toMatchObject({
        best_checkpoint_path: "s3://training-checkpoints/checkpoints/7/best.pt",
        last_checkpoint_path: "s3://training-checkpoints/checkpoints/7/last.pt",
        extra_data: {
          checkpoints: {
            best: "s3://training-checkpoints/checkpoints/7/best.pt",
            last: "s3://training-checkpoints/checkpoints/7/last.pt"
          }
        }
      })
      const entries = yield* Effect.flatMap(LogBufferTest, (l) => l.entries)
      expect(entries.some((e) => e.message === "epoch 1 done")).toBe(true)
    }).pipe(Effect.provide(TrainerSdk.layerTest({ job }))))

  it.scoped("a failed upload is retried, then reported in the completion's data and the logs", () =>
    Effect.gen(function*() {
      const sdk = yield* TrainerSdk
      const storage = yield* StorageTest
      storage.internal.failOn("checkpoints/7/best.pt", "AccessDenied", 10)
      storage.internal.failOn("checkpoints/7/last.pt", "Transport", 2) // the retry gets through
      const best = yield* sdk.enqueueCheckpoint(yield* writeCheckpoint("best.pt", "b"), "best", { epoch: 1 })
      const last = yield* sdk.enqueueCheckpoint(yield* writeCheckpoint("last.pt", "l"), "last", { epoch: 1 })
      yield* sdk.reportCompleted({ finalMetrics: {} })
      expect(yield* Effect.flip(best.result)).toMatchObject({ _tag: "CheckpointError", reason: "Upload" })
      expect(yield* last.result).toBe("s3://training-checkpoints/checkpoints/7/last.pt")
      const [completion] = yield* bodies("/training/jobs/7/callback/completion")
      expect(completion!["best_checkpoint_path"]).toBeUndefined()
      expect(completion!["extra_data"]).toMatchObject({
        checkpoint_upload_failures: [{ checkpoint_type: "best", epoch: 1, local_path: expect.stringContaining("best.pt") }]
      })
      const entries = yield* Effect.flatMap(LogBufferTest, (l) => l.entries)
      expect(entries.some((e) => e.level === "ERROR" && e.message.startsWith("Checkpoint upload failed (best, epoch 1)"))).toBe(true)
    }).pipe(Effect.provide(TrainerSdk.layerTest({ job }))))

  it.scoped("a missing file or an invalid type fails at once, from Effect and from a hook", () =>
    Effect.gen(function*() {
      const sdk = yield* TrainerSdk
      const missing = yield* Effect.flip(sdk.enqueueCheckpoint("/nonexistent/best.pt", "best"))
      expect(missing).toMatchObject({ _tag: "CheckpointError", reason: "NotFound", path: "/nonexistent/best.pt" })
      const file = yield* writeCheckpoint("x.pt", "x")
      expect(() => sdk.hooks.enqueueCheckpoint(file, "../escape")).toThrow(/invalid checkpoint type/)
      expect(() => sdk.hooks.enqueueCheckpoint("/nonexistent/last.pt", "last")).toThrow(/no such file/)
    }).pipe(Effect.provide(TrainerSdk.layerTest({ job }))))
})

describe("resume after preemption", () => {
  it.scoped("a restarted job resumes from the newest recorded checkpoint and continues from its epoch", () =>
    Effect.gen(function*() {
      // The first run: three epochs, a checkpoint each, then the pod is preempted.
      const first = yield* Layer.build(TrainerSdk.layerTest({ job }))
      const objects = yield* Effect.gen(function*() {
        const sdk = yield* TrainerSdk
        expect(Option.isNone(yield* sdk.resume)).toBe(true)
        yield* sdk.reportStarted({ totalEpochs: 5 })
        for (let epoch = 1; epoch <= 3; epoch++) {
          yield* sdk.reportProgress({ epoch, metrics: { loss: 1 / epoch } })
          const file = yield* writeCheckpoint("last.pt", `weights after epoch ${epoch}`)
          yield* sdk.enqueueCheckpoint(file, "last", { metrics: { loss: 1 / epoch } })
          if (epoch === 2) yield* sdk.enqueueCheckpoint(yield* writeCheckpoint("best.pt", "best of epoch 2"), "best")
        }
        yield* sdk.awaitCheckpointUploads
        const { internal } = yield* StorageTest
        return internal.keys().map((key) => [key, internal.read(key)!] as const)
      }).pipe(Effect.provide(first))
      expect(objects.map(([key]) => key).sort()).toEqual([
        "checkpoints/7/best.pt",
        "checkpoints/7/last.pt",
        "checkpoints/7/resume/best.json",
        "checkpoints/7/resume/last.json"
      ])

      // The restarted pod: same JOB_ID, same store.
      const second = yield* Layer.build(TrainerSdk.layerTest({ job }))
      yield* Effect.gen(function*() {
        const { internal } = yield* StorageTest
        for (const [key, bytes] of objects) internal.seed(key, bytes)
        const sdk = yield* TrainerSdk
        yield* sdk.reportStarted({ totalEpochs: 5 })
        const point = Option.getOrThrow(yield* sdk.resume)
        expect(point).toMatchObject({
          checkpointType: "last",
          uri: "s3://training-checkpoints/checkpoints/7/last.pt",
          epoch: 3,
          metrics: { loss: 1 / 3 }
        })
        expect(point.localPath.startsWith(sdk.workDir)).toBe(true)
        expect(readFileSync(point.localPath, "utf8")).toBe("weights after epoch 3")
        // A loop that restarts from 1 sends no duplicate epochs; one that continues sends the rest.
        for (let epoch = 1; epoch <= 5; epoch++) {
          yield* sdk.reportProgress({ epoch, metrics: { loss: 1 / epoch } })
          yield* sdk.callback.flushProgress
        }
        const progress = yield* bodies("/training/jobs/7/callback/progress")
        expect(progress.map((b) => b["current_epoch"])).toEqual([0, 4, 5])
        // A checkpoint taken now is recorded at least at the resumed epoch.
        const later = yield* sdk.enqueueCheckpoint(yield* writeCheckpoint("best.pt", "best"), "best")
        expect(later.epoch).toBe(5)
      }).pipe(Effect.provide(second))
    }))

  it.scoped("a recorded checkpoint that is gone falls back to the next one; an unreadable record is skipped", () =>
    Effect.gen(function*() {
      const sdk = yield* TrainerSdk
      const { internal } = yield* StorageTest
      const record = (type: string, epoch: number) =>
        JSON.stringify({ checkpoint_type: type, uri: `s3://training-checkpoints/checkpoints/7/${type}.pt`, epoch, metrics: {}, uploaded_at: "2026-01-01T00:00:00.000Z" })
      internal.seed("checkpoints/7/resume/last.json", record("last", 9)) // its checkpoint is missing
      internal.seed("checkpoints/7/resume/best.json", record("best", 6))
      internal.seed("checkpoints/7/resume/junk.json", "{not json")
      internal.seed("checkpoints/7/best.pt", "best")
      const point = Option.getOrThrow(yield* sdk.resume)
      expect(point).toMatchObject({ checkpointType: "best", epoch: 6 })
    }).pipe(Effect.provide(TrainerSdk.layerTest({ job }))))
})

describe("the Promise facade", () => {
  /** The test layer with the sample dataset seeded, as `TrainerSdk.test.ts` uses it. */
  const seeded = Layer.tap(TrainerSdk.layerTest({ job: { ...job, datasetId: "ds", datasetVersionHash: "v1" } }), (context) =>
    Effect.sync(() => {
      Context.get(context, StorageTest).seedDataset("ds", { files: sampleDiceDataset() })
    }))

  it.live("every operation of the Effect API, the services and the test recorders", () =>
    Effect.promise(async () => {
      const sdk = await TrainerClient.create({ layer: seeded, handleSignals: false })
      try {
        expect(sdk.context.jobId).toBe(7)
        expect(await sdk.resume()).toBeUndefined()
        await sdk.reportStarted({ totalEpochs: 2 })
        const datasetDir = await sdk.downloadDatasetWithCache()
        const conversion = await sdk.convertDataset({ datasetDir, from: "dice", to: "yolo" })
        expect(conversion.classes).toEqual(["cat", "dog"])
        const direct = await sdk.downloadDataset("ds", join(sdk.workDir, "direct"))
        expect(direct.files).toBeGreaterThan(0)
        await sdk.reportProgress({ epoch: 1, metrics: { loss: 0.4 } })
        await sdk.reportValidation({ epoch: 1, primaryMetric: ["mAP50-95", 0.3], allMetrics: { "mAP50-95": 0.3 } })
        await sdk.log("INFO", "epoch 1 done")
        await sdk.flushLogs()
        mkdirSync(join(sdk.workDir, "weights"), { recursive: true })
        const weights = join(sdk.workDir, "weights", "best.pt")
        writeFileSync(weights, "best")
        const uri = await sdk.uploadCheckpoint(weights, "best", { loss: 0.4 }, { epoch: 1 })
        expect(uri).toBe("s3://training-checkpoints/checkpoints/7/best.pt")
        const handle = await sdk.enqueueCheckpoint(weights, "last", { metrics: { loss: 0.4 } })
        expect(await handle.result()).toBe("s3://training-checkpoints/checkpoints/7/last.pt")
        expect(handle.status()).toBe("uploaded")
        expect((await sdk.awaitCheckpointUploads()).uploaded).toEqual({ last: "s3://training-checkpoints/checkpoints/7/last.pt" })
        const copy = await sdk.downloadCheckpoint(uri, join(sdk.workDir, "copy.pt"))
        expect(readFileSync(copy, "utf8")).toBe("best")
        expect(await sdk.uploadFile(weights, "results/7/report.txt")).toBe("s3://training-checkpoints/results/7/report.txt")
        const resumed = await sdk.resume()
        expect(resumed).toMatchObject({ epoch: 1, checkpointType: "last" })
        sdk.hooks.reportProgress({ epoch: 2, metrics: { loss: 0.3 } })
        await sdk.reportCompleted({ finalMetrics: { loss: 0.3 } })
        await sdk.reportInferenceCompleted({ totalImages: 1, totalInferenceTimeMs: 5, results: [] })
        await sdk.reportExportCompleted({ exportFormat: "onnx", outputS3Uri: uri, fileSizeBytes: 4, metadata: {} })
        expect(sdk.services.storage).toBeDefined()
        expect(await sdk.runEffect(sdk.services.callback.lifecycle)).toMatchObject({ outcome: "completed", epochsCompleted: 2 })

        // The recorders of the test layer, from Promise code.
        const requests = await sdk.runEffect(sdk.service(CallbackTest).requests)
        expect(requests.map((r) => r.path)).toEqual([
          "/training/jobs/7/callback/progress",
          "/training/jobs/7/callback/progress",
          "/validation/jobs/7/results",
          "/training/jobs/7/callback/progress",
          "/training/jobs/7/callback/completion",
          "/test_inference/inference/jobs/7/callback/completion",
          "/export/jobs/7/callback/completion"
        ])
        expect((await sdk.runEffect(sdk.service(LogBufferTest).entries)).some((e) => e.message === "epoch 1 done")).toBe(true)
        expect((await sdk.runEffect(sdk.service(ConverterTest).conversions)).length).toBe(1)
        expect(sdk.service(StorageTest).internal.keys()).toContain("results/7/report.txt")
        expect(() => sdk.service(Context.GenericTag<{ readonly x: 1 }>("not-in-layer"))).toThrow(/no not-in-layer service/)
        await sdk.reportFailed({ errorType: "DatasetError", message: "after the fact" }).catch(() => undefined)
      } finally {
        await sdk.close()
      }
    }))

  it.live("a rejected operation rejects with the SDK's own error instance", () =>
    Effect.promise(async () => {
      const sdk = await TrainerClient.create({ layer: TrainerSdk.layerTest({ job }), handleSignals: false })
      try {
        const error = await sdk.downloadCheckpoint("s3://training-checkpoints/checkpoints/7/none.pt", join(sdk.workDir, "x.pt"))
          .then(() => undefined, (e) => e)
        expect(error).toBeInstanceOf(CheckpointError)
        expect(error).toMatchObject({ reason: "NotFound" })
      } finally {
        await sdk.close()
      }
    }))
})

describe("TrainerClient.run", () => {
  it.scopedLive("reports the start, then a thrown error as failed (classified, with its trace): exit code 1", () =>
    Effect.gen(function*() {
      const { context, layer } = yield* Effect.map(Layer.build(TrainerSdk.layerTest({ job })), (context) => ({
        context,
        layer: Layer.succeedContext(context) as Layer.Layer<TrainerTestServices>
      }))
      const outcome = yield* Effect.promise(() =>
        TrainerClient.run(async (sdk) => {
          sdk.hooks.reportProgress({ epoch: 1, metrics: { loss: 1 } })
          await sdk.log("INFO", "about to fail")
          throw new TrainerError({ errorType: "FrameworkError", message: "loss diverged" })
        }, { layer, exit: false })
      )
      expect(outcome).toMatchObject({ exitCode: 1, status: "failed", errorType: "FrameworkError", delivered: true })
      const requests = yield* Context.get(context, CallbackTest).requests
      expect(requests.map((r) => r.path)).toEqual([
        "/training/jobs/7/callback/progress",
        "/training/jobs/7/callback/progress",
        "/training/jobs/7/callback/completion"
      ])
      expect(requests[2]!.body).toMatchObject({ status: "failed", error_message: "[FrameworkError] loss diverged" })
      expect((requests[2]!.body as Record<string, unknown>)["traceback"]).toContain("loss diverged")
    }))

  it.scopedLive("a plain Error is reported as UnknownError; a body that returns without reporting completes with its uploads", () =>
    Effect.gen(function*() {
      const built = yield* Layer.build(TrainerSdk.layerTest({ job }))
      const layer = Layer.succeedContext(built) as Layer.Layer<TrainerTestServices>
      const failed = yield* Effect.promise(() => TrainerClient.run(async () => { throw new Error("boom") }, { layer, exit: false }))
      expect(failed).toMatchObject({ exitCode: 1, errorType: "UnknownError", message: expect.stringContaining("boom") })

      const fresh = yield* Layer.build(TrainerSdk.layerTest({ job }))
      const completed = yield* Effect.promise(() =>
        TrainerClient.run(async (sdk) => {
          mkdirSync(sdk.workDir, { recursive: true })
          writeFileSync(join(sdk.workDir, "best.pt"), "w")
          await sdk.enqueueCheckpoint(join(sdk.workDir, "best.pt"), "best")
          return "done"
        }, { layer: Layer.succeedContext(fresh) as Layer.Layer<TrainerTestServices>, exit: false })
      )
      expect(completed).toMatchObject({ exitCode: 0, status: "completed" })
      const requests = yield* Context.get(fresh, CallbackTest).requests
      expect(requests.at(-1)!.body).toMatchObject({
        status: "completed",
        best_checkpoint_path: "s3://training-checkpoints/checkpoints/7/best.pt"
      })
    }))

  it.scopedLive("an invalid environment is reported failed; TrainerClient.create reports it too before rejecting", () =>
    Effect.gen(function*() {
      const backend = yield* makeBackendServer()
      const environment = new Map([["CALLBACK_URL", backend.baseUrl], ["JOB_ID", "9"], ["EPOCHS", "many"], ["CALLBACK_MAX_RETRIES", "0"]])
      const saved = new Map([...environment.keys()].map((key) => [key, process.env[key]]))
      yield* Effect.acquireRelease(
        Effect.sync(() => environment.forEach((value, key) => (process.env[key] = value))),
        () => Effect.sync(() => saved.forEach((value, key) => value === undefined ? delete process.env[key] : (process.env[key] = value)))
      )
      let ran = false
      const outcome = yield* Effect.promise(() => TrainerClient.run(async () => { ran = true }, { exit: false }))
      expect(ran).toBe(false)
      expect(outcome).toMatchObject({ exitCode: 1, errorType: "ConfigError", delivered: true })

      const error = yield* Effect.promise(() => TrainerClient.create({ handleSignals: false }).then(() => undefined, (e) => e))
      expect(error).toMatchObject({ _tag: "ConfigError", variable: "EPOCHS" })
      const received = yield* backend.received
      expect(received.map((r) => r.path)).toEqual([
        "/training/jobs/9/callback/progress",
        "/training/jobs/9/callback/completion",
        "/training/jobs/9/callback/progress",
        "/training/jobs/9/callback/completion"
      ])
      expect(received[3]!.body).toMatchObject({ status: "failed" })
    }))
})
