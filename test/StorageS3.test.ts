import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { createReadStream } from "node:fs"
import { DownloadError } from "../src/Errors.js"
import { storageLayerFrom, storageVariables } from "./support/storageEnv.js"
import { Storage } from "../src/Storage.js"
import { type LocalS3, startS3rver } from "./support/s3rver.js"

class Server extends Context.Tag("test/LocalS3")<Server, LocalS3>() {}
class PlainClient extends Context.Tag("test/PlainS3Client")<PlainClient, S3Client>() {}

const ServerLive = Layer.scoped(Server, startS3rver(["training-datasets", "training-checkpoints", "other-bucket"]))

const StorageLive = Layer.unwrapEffect(Effect.map(Server, (s) => {
  const endpoint = { endpoint: s.endpoint, accessKey: s.accessKey, secretKey: s.secretKey }
  return storageLayerFrom(storageVariables(endpoint, { external: "training-datasets", internal: "training-checkpoints" }, 7))
}))

const PlainLive = Layer.scoped(
  PlainClient,
  Effect.flatMap(Server, (s) =>
    Effect.acquireRelease(Effect.sync(() => new S3Client(s.clientConfig)), (c) => Effect.sync(() => c.destroy())))
)

const TestLayer = Layer.mergeAll(StorageLive, PlainLive).pipe(
  Layer.provideMerge(ServerLive),
  Layer.provideMerge(NodeContext.layer)
)

const put = (bucket: string, key: string, body: string | Uint8Array, contentType?: string) =>
  Effect.flatMap(PlainClient, (client) =>
    Effect.promise(() =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ...(contentType ? { ContentType: contentType } : {}) }))
    ))

/** Reads an object with a plain GetObject, consuming the body. */
const getText = (bucket: string, key: string) =>
  Effect.flatMap(PlainClient, (client) =>
    Effect.promise(async () => {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      return { text: await out.Body!.transformToString(), contentType: out.ContentType }
    }))

const sha256File = (file: string) =>
  Effect.promise(() =>
    new Promise<string>((resolve, reject) => {
      const hash = createHash("sha256")
      createReadStream(file).on("data", (c) => hash.update(c)).on("error", reject).on("end", () => resolve(hash.digest("hex")))
    })
  )

describe("Storage on a local S3 server", () => {
  layer(TestLayer, { timeout: 120_000 })((it) => {
    it.scoped("a 64 MiB checkpoint round-trips through multipart upload, byte-identical", () =>
      Effect.gen(function*() {
        const storage = yield* Storage
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        const source = `${dir}/epoch.pt`
        const file = yield* fs.open(source, { flag: "w" })
        for (let i = 0; i < 64; i++) yield* file.write(randomBytes(1024 * 1024))
        yield* file.sync
        const uri = yield* storage.uploadCheckpoint(source, "best", { mAP50: 0.7 })
        expect(uri).toBe("s3://training-checkpoints/checkpoints/7/best.pt")
        const restored = yield* storage.downloadCheckpoint(uri, `${dir}/restored/best.pt`)
        expect((yield* fs.stat(restored)).size).toBe(BigInt(64 * 1024 * 1024))
        expect(yield* sha256File(restored)).toBe(yield* sha256File(source))
      }))

    it.scoped("selective download of a DICE dataset with nested image folders and more than 1,000 objects", () =>
      Effect.gen(function*() {
        const storage = yield* Storage
        const fs = yield* FileSystem.FileSystem
        const prefix = "datasets/dice-1/"
        const names = Array.from({ length: 1100 }, (_, i) => `batch${i % 4}/day${i % 3}/img_${i}.jpg`)
        const annotations = {
          images: names.map((file_name, id) => ({ id, file_name, width: 8, height: 8 })),
          annotations: names.map((_, id) => ({ id, image_id: id, category_id: 1, bbox: [0, 0, 4, 4] })),
          categories: [{ id: 1, name: "defect" }]
        }
        yield* put("training-datasets", `${prefix}annotations_detection.json`, JSON.stringify(annotations))
        yield* put("training-datasets", `${prefix}annotations_classification.json`, JSON.stringify({ images: [] }))
        yield* Effect.forEach(names, (name) => put("training-datasets", `${prefix}images/${name}`, `pixels of ${name}`), {
          concurrency: 16,
          discard: true
        })
        yield* put("training-datasets", `${prefix}images/unlabelled/extra.jpg`, "not referenced")
        const dest = yield* fs.makeTempDirectoryScoped()
        let progressCalls = 0
        const report = yield* storage.downloadDatasetSelective("dice-1", dest, {
          onProgress: () => Effect.sync(() => void progressCalls++)
        })
        expect(report.imageCount).toBe(1100)
        expect(report.files).toBe(1102)
        expect(progressCalls).toBe(1102)
        expect(report.primaryAnnotationFile).toBe(`${dest}/annotations_detection.json`)
        // Every file holds its own object (the clients share one cached middleware stack per bucket).
        const contents = yield* Effect.forEach(names, (name) => fs.readFileString(`${dest}/images/${name}`), { concurrency: 16 })
        expect(contents).toEqual(names.map((name) => `pixels of ${name}`))
        expect(yield* fs.exists(`${dest}/images/unlabelled/extra.jpg`)).toBe(false)
        const whole = yield* fs.makeTempDirectoryScoped()
        const summary = yield* storage.downloadDataset("dice-1", whole)
        expect(summary.files).toBe(1103)
        // 3,300 requests to the local S3 server: seconds when quiet, minutes on an overloaded machine.
      }), 300_000)

    it.scoped("LabelMe flow across buckets, and a missing object is reported by key", () =>
      Effect.gen(function*() {
        const storage = yield* Storage
        const fs = yield* FileSystem.FileSystem
        yield* put("training-datasets", "labelme/a/cat.jpg", "cat")
        yield* put("training-datasets", "labelme/a/cat.json", "{\"shapes\":[]}")
        yield* put("other-bucket", "labelme/b/dog.jpg", "dog")
        const dest = yield* fs.makeTempDirectoryScoped()
        const report = yield* storage.downloadFromAnnotation({
          data_summary: [
            { img_path: "s3://training-datasets/labelme/a/cat.jpg", label_path: "s3://training-datasets/labelme/a/cat.json" },
            { img_path: "s3://other-bucket/labelme/b/dog.jpg" }
          ]
        }, dest, "labelme")
        expect(report).toMatchObject({ files: 3, imageCount: 2, labelCount: 1 })
        expect(yield* fs.readFileString(`${dest}/images/dog.jpg`)).toBe("dog")
        expect(yield* fs.readFileString(`${dest}/labels/cat.json`)).toBe("{\"shapes\":[]}")

        const error = yield* Effect.flip(storage.downloadFromAnnotation({
          data_summary: [{ img_path: "s3://training-datasets/labelme/none.jpg", label_path: "s3://training-datasets/labelme/a/cat.json" }]
        }, yield* fs.makeTempDirectoryScoped(), "labelme"))
        assert(error instanceof DownloadError)
        expect(error.failures).toEqual([
          { bucket: "training-datasets", key: "labelme/none.jpg", reason: "NotFound", detail: expect.any(String) }
        ])
      }))

    it.scoped("objects uploaded by the SDK are readable by a plain GetObject, and the reverse", () =>
      Effect.gen(function*() {
        const storage = yield* Storage
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        yield* fs.writeFileString(`${dir}/metrics.json`, "{\"mAP\":0.5}")
        const uri = yield* storage.uploadFile(`${dir}/metrics.json`, "results/7/metrics.json", { contentType: "application/json" })
        expect(uri).toBe("s3://training-checkpoints/results/7/metrics.json")
        expect(yield* getText("training-checkpoints", "results/7/metrics.json")).toEqual({
          text: "{\"mAP\":0.5}",
          contentType: "application/json"
        })
        yield* fs.writeFileString(`${dir}/small.pth`, "tiny weights")
        yield* storage.uploadCheckpoint(`${dir}/small.pth`, "last")
        expect(yield* getText("training-checkpoints", "checkpoints/7/last.pt")).toEqual({
          text: "tiny weights",
          contentType: "application/x-pytorch"
        })

        yield* put("training-checkpoints", "imported/model.pt", "from elsewhere")
        const local = yield* storage.downloadCheckpoint("s3://training-checkpoints/imported/model.pt", `${dir}/model.pt`)
        expect(yield* fs.readFileString(local)).toBe("from elsewhere")
      }))
  })
})
