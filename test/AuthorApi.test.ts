import { FileSystem, HttpClient, HttpClientRequest, Path } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type CallbackMetrics, CallbackTest, LogBufferTest, runTrainerEffect, TrainerSdk } from "../src/index.js"
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
