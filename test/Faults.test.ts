/**
 * Fault injection: the seeded proxy of `support/faultProxy.ts` on 127.0.0.1 in front of a
 * local s3rver and in front of a local backend, injecting 500s, connection resets, stalls
 * and truncated bodies. The SDK must still deliver byte-identical files (never a partial one
 * under its final name, never a stray temp file) and every lifecycle report exactly once,
 * in order.
 */
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { FileSystem } from "@effect/platform"
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { ReportOutbox } from "../src/Outbox.js"
import { Callback } from "../src/Callback.js"
import { makeJobContext } from "../src/JobContext.js"
import { storageLayerFrom, storageVariables } from "./support/storageEnv.js"
import { Storage } from "../src/Storage.js"
import { type FaultProxy, startFaultProxy } from "./support/faultProxy.js"
import { type ReceivedRequest, makeBackendServer } from "./support/backendServer.js"
import { type LocalS3, startS3rver } from "./support/s3rver.js"
import { filesUnder } from "./support/files.js"

const datasets = "training-datasets"
const checkpoints = "training-checkpoints"

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** Puts objects straight into s3rver (no proxy), a few at a time. */
const seed = (s3: LocalS3, objects: ReadonlyArray<readonly [bucket: string, key: string, body: Uint8Array | string]>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new S3Client(s3.clientConfig)),
    (client) =>
      Effect.forEach(
        objects,
        ([Bucket, Key, Body]) => Effect.promise(() => client.send(new PutObjectCommand({ Bucket, Key, Body }))),
        { concurrency: 16, discard: true }
      ),
    (client) => Effect.sync(() => client.destroy())
  )

/** The live `Storage.layer` (S3 stores from its variables) with both endpoints at `proxy`. */
const storageThrough = (s3: LocalS3, proxy: FaultProxy) =>
  storageLayerFrom(
    storageVariables({ endpoint: proxy.url, accessKey: s3.accessKey, secretKey: s3.secretKey }, {
      external: datasets,
      internal: checkpoints
    }, 7)
  ).pipe(Layer.provide(NodeContext.layer))


describe("Storage behind a faulty S3 proxy", () => {
  it.scopedLive("20% of S3 requests failing: a 500-file selective download ends byte-identical, no stray temp files", () =>
    Effect.gen(function*() {
      const s3 = yield* startS3rver([datasets, checkpoints])
      const names = Array.from({ length: 500 }, (_, i) => `${i % 10 === 0 ? "sub/" : ""}img_${String(i).padStart(4, "0")}.jpg`)
      // A few KiB each: big enough that a truncated body is a real partial file, small enough to stay fast.
      const bodies = new Map(names.map((name, i) => [name, randomBytes(2048 + (i % 7) * 512)]))
      const annotations = JSON.stringify({
        images: names.map((file_name, id) => ({ id, file_name, width: 8, height: 8 })),
        annotations: [],
        categories: [{ id: 1, name: "thing" }]
      })
      yield* seed(s3, [
        [datasets, "datasets/ds-f/annotations_detection.json", annotations],
        // An image no annotation references: the selective flow must not fetch it.
        [datasets, "datasets/ds-f/images/unlabelled.jpg", "not referenced"],
        ...names.map((name) => [datasets, `datasets/ds-f/images/${name}`, bodies.get(name)!] as const)
      ])
      // 20% of requests fail. At most two faults in a row hit one request, so the default
      // retry budgets (the AWS SDK's and Storage's per object) cannot run out by chance: what
      // is under test is integrity under faults, not luck.
      const proxy = yield* startFaultProxy({
        target: s3.endpoint,
        rates: { error500: 0.05, reset: 0.05, truncate: 0.05, stall: 0.05 },
        stallMs: 100,
        seed: 20,
        maxConsecutiveFaults: 2
      })
      yield* Effect.gen(function*() {
        const storage = yield* Storage
        const fs = yield* FileSystem.FileSystem
        const dest = yield* fs.makeTempDirectoryScoped()

        const report = yield* storage.downloadDatasetSelective("ds-f", dest, { concurrency: 16 })

        assert.strictEqual(report.imageCount, 500)
        const files = yield* filesUnder(dest)
        assert.deepStrictEqual(files, ["annotations_detection.json", ...names.map((n) => `images/${n}`)].sort())
        for (const name of names) {
          const local = yield* fs.readFile(`${dest}/images/${name}`)
          assert.strictEqual(sha256(local), sha256(bodies.get(name)!), name)
        }
        assert.strictEqual(yield* fs.readFileString(`${dest}/annotations_detection.json`), annotations)
      }).pipe(Effect.provide(storageThrough(s3, proxy)))
      const stats = proxy.stats()
      // Every kind of fault was really injected, at about the chosen rate.
      for (const fault of ["error500", "reset", "truncate", "stall"] as const) assert.isAbove(stats[fault], 5, fault)
      const faults = stats.error500 + stats.reset + stats.truncate + stats.stall
      assert.isAbove(faults / (faults + stats.forwarded), 0.12)
    }).pipe(Effect.provide(NodeContext.layer)))

  describe("a truncated GET body never leaves a file with the final name", () => {
    /** s3rver with a checkpoint and a two-object dataset, behind a proxy truncating object GETs. */
    const truncating = (maxConsecutiveFaults?: number) =>
      Effect.gen(function*() {
        const s3 = yield* startS3rver([datasets, checkpoints])
        const checkpoint = randomBytes(256 * 1024)
        yield* seed(s3, [
          [checkpoints, "checkpoints/7/best.pt", checkpoint],
          [datasets, "datasets/ds-t/annotations.json", "{\"images\": []}"],
          [datasets, "datasets/ds-t/weights.bin", randomBytes(128 * 1024)]
        ])
        // Only object GETs are truncated: HEADs and listings pass.
        const proxy = yield* startFaultProxy({
          target: s3.endpoint,
          rates: { truncate: 1 },
          eligible: ({ method, url }) => method === "GET" && !url.includes("list-type"),
          ...(maxConsecutiveFaults === undefined ? {} : { maxConsecutiveFaults })
        })
        return { s3, proxy, checkpoint }
      })

    it.scopedLive("checkpoint download: typed error naming the URI, no file at the destination, no temp file", () =>
      Effect.gen(function*() {
        const { proxy, s3 } = yield* truncating()
        yield* Effect.gen(function*() {
          const storage = yield* Storage
          const fs = yield* FileSystem.FileSystem
          const dir = yield* fs.makeTempDirectoryScoped()
          const uri = `s3://${checkpoints}/checkpoints/7/best.pt`
          const error = yield* Effect.flip(storage.downloadCheckpoint(uri, `${dir}/restored/best.pt`))
          assert.strictEqual(error._tag, "CheckpointError")
          if (error._tag !== "CheckpointError") return
          assert.strictEqual(error.reason, "Download")
          assert.strictEqual(error.path, uri)
          assert.include(error.message, `s3://${checkpoints}/checkpoints/7/best.pt`)
          assert.deepStrictEqual(yield* filesUnder(dir), [])
        }).pipe(Effect.provide(storageThrough(s3, proxy)))
        // Every attempt of the default budget (4) was truncated.
        assert.strictEqual(proxy.stats().truncate, 4)
      }).pipe(Effect.provide(NodeContext.layer)))

    it.scopedLive("whole-prefix download: DownloadError lists every key, no final or temp file, earlier files kept", () =>
      Effect.gen(function*() {
        const { proxy, s3 } = yield* truncating()
        yield* Effect.gen(function*() {
          const storage = yield* Storage
          const fs = yield* FileSystem.FileSystem
          const dest = yield* fs.makeTempDirectoryScoped()
          yield* fs.makeDirectory(`${dest}/keep`)
          yield* fs.writeFileString(`${dest}/keep/previous.txt`, "already here")
          const error = yield* Effect.flip(storage.downloadDataset("ds-t", dest))
          assert.strictEqual(error._tag, "DownloadError")
          if (error._tag !== "DownloadError") return
          assert.deepStrictEqual(error.failures.map((f) => f.key).sort(), ["datasets/ds-t/annotations.json", "datasets/ds-t/weights.bin"])
          for (const failure of error.failures) {
            assert.strictEqual(failure.bucket, datasets)
            assert.include(error.message, `s3://${datasets}/${failure.key}`)
          }
          assert.deepStrictEqual(yield* filesUnder(dest), ["keep/previous.txt"])
          assert.strictEqual(yield* fs.readFileString(`${dest}/keep/previous.txt`), "already here")
        }).pipe(Effect.provide(storageThrough(s3, proxy)))
        assert.strictEqual(proxy.stats().truncate, 8)
      }).pipe(Effect.provide(NodeContext.layer)))

    it.scopedLive("three truncated attempts, then a whole body: the retried download is byte-identical", () =>
      Effect.gen(function*() {
        const { checkpoint, proxy, s3 } = yield* truncating(3)
        yield* Effect.gen(function*() {
          const storage = yield* Storage
          const fs = yield* FileSystem.FileSystem
          const dir = yield* fs.makeTempDirectoryScoped()
          const restored = yield* storage.downloadCheckpoint(`s3://${checkpoints}/checkpoints/7/best.pt`, `${dir}/best.pt`)
          assert.strictEqual(sha256(yield* fs.readFile(restored)), sha256(checkpoint))
          assert.deepStrictEqual(yield* filesUnder(dir), ["best.pt"])
        }).pipe(Effect.provide(storageThrough(s3, proxy)))
        assert.strictEqual(proxy.stats().truncate, 3)
      }).pipe(Effect.provide(NodeContext.layer)))
  })
})

describe("Callback behind a flapping backend", () => {
  it.live("every report arrives exactly once and in order: all progress, validation after its epoch, the outcome last", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* makeBackendServer()
      // Only faults that happen BEFORE the request is forwarded (500, reset, stall): a fault that
      // loses the response after the backend stored the request (a truncated answer) would make
      // the SDK send the report again, and exactly-once would need an idempotency key the
      // backend does not have.
      const proxy = yield* startFaultProxy({
        target: `http://127.0.0.1:${backend.port}`,
        rates: { error500: 0.15, reset: 0.15, stall: 0.1 },
        stallMs: 50,
        seed: 9,
        errorBody: { contentType: "application/json", body: "{\"detail\": \"injected fault\"}" }
      })
      const job = makeJobContext({
        jobId: 7,
        callbackUrl: `${proxy.url}/api/v1`,
        callbackRetryDelay: Duration.millis(1),
        callbackMaxRetries: 3
      })
      const epochs = 12
      const validated = [3, 6, 9, 12]
      yield* Effect.scoped(Effect.gen(function*() {
        const callback = yield* Callback
        yield* callback.reportStarted({ totalEpochs: epochs })
        for (let epoch = 1; epoch <= epochs; epoch++) {
          yield* callback.reportProgress({ epoch, totalEpochs: epochs, metrics: { loss: 1 / epoch } })
          if (validated.includes(epoch)) {
            yield* callback.reportValidation({ epoch, primaryMetric: ["mAP50-95", epoch / 100], allMetrics: { "mAP50-95": epoch / 100 } })
          }
        }
        // The flapping phase ends before completion: nothing pending may be lost when it does.
        proxy.setRates({ error500: 0.2, reset: 0.2 })
        yield* callback.reportCompleted({ finalMetrics: { loss: 1 / epochs } })
      }).pipe(Effect.provide(
        Callback.layerConfig(job).pipe(
          Layer.provide(ReportOutbox.layerConfig(job, { dir: null })),
          Layer.provide(NodeHttpClient.layerUndici)
        )
      )))

      const stats = proxy.stats()
      assert.isAbove(stats.error500 + stats.reset + stats.stall, 5)
      const stored = yield* backend.stored
      // Every request that reached the backend was stored: no duplicate from a lost answer.
      assert.strictEqual((yield* backend.received).length, stored.length)
      assert.strictEqual(stats.forwarded, stored.length)

      const kind = (r: ReceivedRequest): string => {
        const body = r.body as Record<string, unknown>
        if (r.path.endsWith("/results")) return `validation:${body["epoch"]}`
        if (r.path.endsWith("/completion")) return `completed:${body["status"]}`
        return body["current_epoch"] === 0 && body["metrics"] === null ? "started" : `progress:${body["current_epoch"]}`
      }
      const sequence = stored.map(kind)
      assert.strictEqual(sequence[0], "started")
      assert.strictEqual(sequence.at(-1), "completed:completed")
      assert.strictEqual(new Set(sequence).size, sequence.length, `duplicates in ${sequence.join(", ")}`)
      assert.deepStrictEqual(sequence.filter((s) => s.startsWith("validation")), validated.map((e) => `validation:${e}`))
      assert.strictEqual(sequence.filter((s) => s.startsWith("completed")).length, 1)
      const progress = sequence.flatMap((s) => s.startsWith("progress:") ? [Number(s.slice("progress:".length))] : [])
      assert.deepStrictEqual(progress, Array.from({ length: epochs }, (_, i) => i + 1), sequence.join(", "))
      // A validation follows the progress of its own epoch.
      for (const epoch of validated) {
        const at = sequence.indexOf(`validation:${epoch}`)
        assert.strictEqual(sequence[at - 1], `progress:${epoch}`, sequence.join(", "))
      }
      assert.strictEqual(progress.at(-1), epochs)
    })))
})
