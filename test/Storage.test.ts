import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Either, Exit, Fiber, Layer, Option, Ref, type Scope, Stream } from "effect"
import { Converter } from "../src/Converter.js"
import { DatasetError, DownloadError, StorageError } from "../src/Errors.js"
import { boundedConcurrency } from "../src/internal/storageFlows.js"
import { makeMemoryObjectStore, type ObjectStore } from "../src/ObjectStore.js"
import { CheckpointEvents, type CheckpointSaved, type DownloadProgress, StorageTest, parseS3Uri, Storage } from "../src/Storage.js"
import { filesUnder } from "./support/files.js"

const TestLayer = Storage.layerTest().pipe(Layer.provideMerge(NodeContext.layer))

const run = <A, E>(effect: Effect.Effect<A, E, Storage | StorageTest | FileSystem.FileSystem | Path.Path | Scope.Scope>) =>
  Effect.provide(effect, TestLayer)


/** A temp dir holding `dest/`, so escapes would land in the parent and be seen. */
const sandbox = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const parent = yield* fs.makeTempDirectoryScoped()
  const dest = path.join(parent, "dest")
  yield* fs.makeDirectory(dest)
  return { parent, dest }
})

/** Images named `names`, each holding `image {name}`. */
const imagesNamed = (names: ReadonlyArray<string>) => Object.fromEntries(names.map((name) => [name, `image ${name}`]))

describe("StorageTest.seedDataset", () => {
  it.scoped("puts a dataset under datasets/{id}/: by default a DICE detection file listing every image, which downloads and converts", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external, seedDataset } = yield* StorageTest
      const { dest } = yield* sandbox
      seedDataset("ds", {
        images: { "a.jpg": "A", "sub/b.jpg": "B" },
        files: [{ key: "notes/readme.txt", bytes: "about", contentType: "text/plain" }]
      })
      expect(external.keys()).toEqual([
        "datasets/ds/annotations_detection.json",
        "datasets/ds/images/a.jpg",
        "datasets/ds/images/sub/b.jpg",
        "datasets/ds/notes/readme.txt"
      ])
      expect(external.contentTypeOf("datasets/ds/notes/readme.txt")).toBe("text/plain")
      const report = yield* storage.downloadDatasetSelective("ds", dest)
      expect(report.imageCount).toBe(2)
      const converted = yield* Effect.flatMap(Converter, (c) => c.convert({ datasetDir: dest, from: "dice", to: "yolo" })).pipe(
        Effect.provide(Converter.layerInProcess)
      )
      expect(converted).toMatchObject({ taskType: "detection", images: 2, negatives: 2, classes: ["object"] })
      // Annotation files given are stored as given: text and bytes verbatim, other values as JSON.
      seedDataset("raw", { annotations: { "annotations_pose.json": "{ not json", "annotations_x.json": { images: [] } } })
      expect(new TextDecoder().decode(external.read("datasets/raw/annotations_pose.json"))).toBe("{ not json")
      expect(new TextDecoder().decode(external.read("datasets/raw/annotations_x.json"))).toBe("{\"images\":[]}")
      expect(external.keys().filter((key) => key.startsWith("datasets/raw/"))).toHaveLength(2)
    })))
})

describe("parseS3Uri", () => {
  it("splits bucket and key", () => {
    assert.deepStrictEqual(parseS3Uri("s3://bucket/a/b/c.pt"), Either.right({ bucket: "bucket", key: "a/b/c.pt" }))
  })

  it("rejects malformed URIs with an error naming the URI", () => {
    for (const uri of ["http://bucket/key", "s3://", "s3://bucket", "s3://bucket/", "s3:///key", "S3://bucket/key", "bucket/key", "s3://bu cket/key"]) {
      const result = parseS3Uri(uri)
      assert(Either.isLeft(result), uri)
      expect(result.left.reason).toBe("InvalidUri")
      expect(result.left.message).toContain(uri)
    }
  })
})

describe("Storage (in memory)", () => {
  it.scoped("downloads a whole prefix of more than 1,000 objects across listing pages", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external } = yield* StorageTest
      const { dest } = yield* sandbox
      for (let i = 0; i < 2100; i++) external.seed(`datasets/ds1/images/sub${i % 3}/img${i}.jpg`, `x${i}`)
      external.seed("datasets/ds1/annotations.json", "{}")
      external.seed("datasets/ds10/other.jpg", "not this dataset")
      const seen: Array<DownloadProgress> = []
      const result = yield* storage.downloadDataset("ds1", dest, {
        concurrency: 16,
        onProgress: (p) => Effect.sync(() => void seen.push(p))
      })
      expect(result.files).toBe(2101)
      expect(external.listPageCount()).toBeGreaterThanOrEqual(3)
      const files = yield* filesUnder(dest)
      expect(files.length).toBe(2101)
      expect(files).toContain("images/sub2/img2099.jpg")
      expect(files).not.toContain("other.jpg")
      const last = seen.reduce((a, b) => (b.files > a.files ? b : a))
      expect(last).toEqual({ files: 2101, totalFiles: 2101, bytes: result.bytes, totalBytes: result.bytes })
      const fs = yield* FileSystem.FileSystem
      expect(yield* fs.readFileString(`${dest}/images/sub1/img1000.jpg`)).toBe("x1000")
    })))

  it.scoped("an empty dataset prefix is a DatasetError", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { dest } = yield* sandbox
      const error = yield* Effect.flip(storage.downloadDataset("nothing", dest))
      assert(error._tag === "DatasetError")
      expect(error.reason).toBe("Empty")
      expect(error.message).toContain("datasets/nothing/")
    })))

  it.scoped("selective download fetches annotation files and only the referenced images", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external, seedDataset } = yield* StorageTest
      const { dest } = yield* sandbox
      seedDataset("ds2", {
        images: imagesNamed(["a/1.jpg", "a/b/2.jpg", "3.jpg"]),
        files: [{ key: "annotations_segmentation.json", bytes: JSON.stringify({ images: [] }) }]
      })
      external.seed("datasets/ds2/images/unused.jpg", "unused")
      const report = yield* storage.downloadDatasetSelective("ds2", dest)
      expect(report.imageCount).toBe(3)
      expect(report.files).toBe(5)
      expect(report.primaryAnnotationFile).toBe(`${dest}/annotations_detection.json`)
      expect([...report.annotationFiles].sort()).toEqual([`${dest}/annotations_detection.json`, `${dest}/annotations_segmentation.json`])
      expect(yield* filesUnder(dest)).toEqual([
        "annotations_detection.json",
        "annotations_segmentation.json",
        "images/3.jpg",
        "images/a/1.jpg",
        "images/a/b/2.jpg"
      ])
      expect(external.getCount("datasets/ds2/images/unused.jpg")).toBe(0)
    })))

  it.scoped("selective download honours storage_info.image_root", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external } = yield* StorageTest
      const { dest } = yield* sandbox
      external.seed(
        "datasets/ds3/annotations.json",
        JSON.stringify({ images: [{ file_name: "x.jpg" }], storage_info: { image_root: "shared/pool" } })
      )
      external.seed("shared/pool/x.jpg", "pooled")
      const report = yield* storage.downloadDatasetSelective("ds3", dest)
      expect(report.primaryAnnotationFile).toBe(`${dest}/annotations.json`)
      const fs = yield* FileSystem.FileSystem
      expect(yield* fs.readFileString(`${dest}/images/x.jpg`)).toBe("pooled")
    })))

  it.scoped("selective download without annotation files or with bad JSON is a DatasetError", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external } = yield* StorageTest
      const { dest } = yield* sandbox
      external.seed("datasets/ds4/images/a.jpg", "a")
      const missing = yield* Effect.flip(storage.downloadDatasetSelective("ds4", dest))
      assert(missing._tag === "DatasetError")
      expect(missing.reason).toBe("AnnotationsNotFound")
      external.seed("datasets/ds4/annotations.json", "{not json")
      const invalid = yield* Effect.flip(storage.downloadDatasetSelective("ds4", dest))
      assert(invalid._tag === "DatasetError")
      expect(invalid.reason).toBe("InvalidJson")
      external.seed("datasets/ds4/annotations.json", JSON.stringify({ images: [{ file_name: 3 }] }))
      const shape = yield* Effect.flip(storage.downloadDatasetSelective("ds4", dest))
      assert(shape._tag === "DatasetError")
      expect(shape.jsonPath).toBe("images[0].file_name")
    })))

  it.scoped("failing keys: one DownloadError naming every failed key, no partial or temp file left", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external, seedDataset } = yield* StorageTest
      const { dest } = yield* sandbox
      seedDataset("ds5", { images: imagesNamed(["ok1.jpg", "broken.jpg", "ok2.jpg", "denied.jpg", "gone.jpg"]) })
      external.failOn("datasets/ds5/images/broken.jpg", "Transport")
      external.failOn("datasets/ds5/images/denied.jpg", "AccessDenied")
      const ann = JSON.parse(new TextDecoder().decode(external.read("datasets/ds5/annotations_detection.json")))
      ann.images.push({ file_name: "never-uploaded.jpg" })
      external.seed("datasets/ds5/annotations_detection.json", JSON.stringify(ann))
      const error = yield* Effect.flip(storage.downloadDatasetSelective("ds5", dest))
      assert(error instanceof DownloadError)
      expect(error.failures.map((f) => f.key).sort()).toEqual([
        "datasets/ds5/images/broken.jpg",
        "datasets/ds5/images/denied.jpg",
        "datasets/ds5/images/never-uploaded.jpg"
      ])
      expect(error.failures.find((f) => f.key.endsWith("never-uploaded.jpg"))?.reason).toBe("NotFound")
      expect(error.succeeded).toBe(3)
      expect(error.message).toContain("s3://training-datasets/datasets/ds5/images/denied.jpg")
      // Transient failures are retried (3 attempts with Storage.layerTest()), permanent ones are not.
      expect(external.getCount("datasets/ds5/images/broken.jpg")).toBe(3)
      expect(external.getCount("datasets/ds5/images/denied.jpg")).toBe(1)
      const files = yield* filesUnder(dest)
      expect(files.filter((f) => f.includes(".tmp-"))).toEqual([])
      expect(files).toContain("images/ok1.jpg")
      expect(files).not.toContain("images/broken.jpg")
      expect(files).not.toContain("images/denied.jpg")
    })))

  it.scoped("a transient failure that clears is retried and succeeds", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external, seedDataset } = yield* StorageTest
      const { dest } = yield* sandbox
      seedDataset("ds6", { images: imagesNamed(["flaky.jpg"]) })
      external.failOn("datasets/ds6/images/flaky.jpg", "Timeout", 2)
      yield* storage.downloadDatasetSelective("ds6", dest)
      expect(external.getCount("datasets/ds6/images/flaky.jpg")).toBe(3)
      const fs = yield* FileSystem.FileSystem
      expect(yield* fs.readFileString(`${dest}/images/flaky.jpg`)).toBe("image flaky.jpg")
    })))

  it.scoped("escaping file names in annotations are all rejected before any image is written", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external, seedDataset } = yield* StorageTest
      const { parent, dest } = yield* sandbox
      seedDataset("ds7", { images: imagesNamed(["fine.jpg", "../evil.jpg", "/etc/evil.jpg", "..\\..\\evil2.jpg", "C:\\evil3.jpg"]) })
      const error = yield* Effect.flip(storage.downloadDatasetSelective("ds7", dest))
      assert(error instanceof DatasetError)
      expect(error.reason).toBe("PathEscape")
      expect(error.paths?.length).toBe(4)
      expect(error.message).toContain("../evil.jpg")
      expect(error.message).toContain("/etc/evil.jpg")
      expect(external.getCount("datasets/ds7/images/fine.jpg")).toBe(0)
      const fs = yield* FileSystem.FileSystem
      expect((yield* fs.readDirectory(parent)).sort()).toEqual(["dest"])
      expect((yield* filesUnder(dest)).filter((f) => f.startsWith("images/"))).toEqual([])
    })))

  it.scoped("escaping keys under a dataset prefix are rejected in a whole-prefix download", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external } = yield* StorageTest
      const { parent, dest } = yield* sandbox
      external.seed("datasets/ds8/ok.txt", "ok")
      external.seed("datasets/ds8/../../escape.txt", "bad")
      const error = yield* Effect.flip(storage.downloadDataset("ds8", dest))
      assert(error instanceof DatasetError)
      expect(error.reason).toBe("PathEscape")
      const fs = yield* FileSystem.FileSystem
      expect((yield* fs.readDirectory(parent)).sort()).toEqual(["dest"])
      expect(yield* filesUnder(dest)).toEqual([])
    })))

  it.scoped("invalid dataset ids are rejected", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { dest } = yield* sandbox
      for (const id of ["", "..", "a/b", "../x"]) {
        const error = yield* Effect.flip(storage.downloadDatasetSelective(id, dest))
        assert(error._tag === "DatasetError", id)
      }
    })))

  it.scoped("LabelMe: images and labels by base name; every failed object reported", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external } = yield* StorageTest
      const { dest } = yield* sandbox
      external.seed("raw/a/1.jpg", "img1")
      external.seed("raw/a/1.json", "lbl1")
      external.withBucket("other-bucket").seed("b/2.jpg", "img2")
      external.seed("raw/b/2.json", "lbl2")
      const data = {
        data_summary: [
          { img_path: "s3://training-datasets/raw/a/1.jpg", label_path: "s3://training-datasets/raw/a/1.json" },
          { img_path: "s3://other-bucket/b/2.jpg", label_path: "s3://training-datasets/raw/b/2.json" }
        ]
      }
      const report = yield* storage.downloadFromAnnotation(data, dest, "labelme")
      expect(report).toMatchObject({ files: 4, imageCount: 2, labelCount: 2 })
      expect(yield* filesUnder(dest)).toEqual(["images/1.jpg", "images/2.jpg", "labels/1.json", "labels/2.json"])
      const fs = yield* FileSystem.FileSystem
      expect(yield* fs.readFileString(`${dest}/images/2.jpg`)).toBe("img2")

      const missing = {
        data_summary: [
          { img_path: "s3://training-datasets/raw/missing1.jpg", label_path: "s3://training-datasets/raw/a/1.json" },
          { img_path: "s3://training-datasets/raw/missing2.jpg", label_path: "s3://training-datasets/raw/missing2.json" }
        ]
      }
      const { dest: dest2 } = yield* sandbox
      const error = yield* Effect.flip(storage.downloadFromAnnotation(missing, dest2, "labelme"))
      assert(error instanceof DownloadError)
      expect(error.failures.map((f) => f.key).sort()).toEqual(["raw/missing1.jpg", "raw/missing2.jpg", "raw/missing2.json"])
    })))

  it.scoped("LabelMe: missing or empty data_summary and malformed URIs are DatasetErrors", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { dest } = yield* sandbox
      for (const data of [{}, { data_summary: [] }, null, { data_summary: "x" }]) {
        const error = yield* Effect.flip(storage.downloadFromAnnotation(data, dest, "labelme"))
        assert(error instanceof DatasetError)
        expect(error.reason).toBe("Empty")
        expect(error.jsonPath).toBe("data_summary")
      }
      const bad = yield* Effect.flip(
        storage.downloadFromAnnotation({ data_summary: [{ img_path: "s3://b/ok.jpg" }, { img_path: "s3:/b/x.jpg" }] }, dest, "labelme")
      )
      assert(bad instanceof DatasetError)
      expect(bad.jsonPath).toBe("data_summary[1].img_path")
      expect(bad.message).toContain("s3:/b/x.jpg")
      const escape = yield* Effect.flip(
        storage.downloadFromAnnotation({ data_summary: [{ img_path: "s3://b/x/.." }] }, dest, "labelme")
      )
      assert(escape instanceof DatasetError)
      expect(escape.reason).toBe("PathEscape")
    })))

  it.scoped("COCO: images by base name and annotations.json rewritten to local names", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external } = yield* StorageTest
      const { dest } = yield* sandbox
      external.seed("coco/x/1.jpg", "one")
      external.seed("coco/y/2.jpg", "two")
      const data = {
        images: [{ id: 1, file_name: "s3://training-datasets/coco/x/1.jpg" }, { id: 2, file_name: "s3://training-datasets/coco/y/2.jpg" }],
        annotations: [{ id: 1, image_id: 2, category_id: 1 }],
        categories: [{ id: 1, name: "cat" }]
      }
      const report = yield* storage.downloadFromAnnotation(data, dest, "coco")
      expect(report.imageCount).toBe(2)
      assert.deepStrictEqual(report.annotationFile, Option.some(`${dest}/annotations.json`))
      const fs = yield* FileSystem.FileSystem
      const written = JSON.parse(yield* fs.readFileString(`${dest}/annotations.json`))
      expect(written.images).toEqual([{ id: 1, file_name: "images/1.jpg" }, { id: 2, file_name: "images/2.jpg" }])
      expect(written.annotations).toEqual(data.annotations)
      expect(yield* fs.readFileString(`${dest}/images/2.jpg`)).toBe("two")
    })))

  it.scoped("checkpoints: key and content type per the spec, round trip, event with metrics", () =>
    Effect.gen(function*() {
      const events = yield* Ref.make<ReadonlyArray<CheckpointSaved>>([])
      const layer = Storage.layerTest({ jobId: 42 }).pipe(
        Layer.provideMerge(Layer.succeed(CheckpointEvents, {
          checkpointSaved: (e) => Ref.update(events, (all) => [...all, e])
        })),
        Layer.provideMerge(NodeContext.layer)
      )
      yield* Effect.gen(function*() {
        const storage = yield* Storage
        const { internal } = yield* StorageTest
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        yield* fs.writeFileString(`${dir}/model.pth`, "weights")
        yield* fs.writeFileString(`${dir}/model.onnx`, "onnx")
        const uri = yield* storage.uploadCheckpoint(`${dir}/model.pth`, "best", { mAP50: 0.5 })
        expect(uri).toBe("s3://training-checkpoints/checkpoints/42/best.pt")
        expect(internal.contentTypeOf("checkpoints/42/best.pt")).toBe("application/x-pytorch")
        const onnx = yield* storage.uploadCheckpoint(`${dir}/model.onnx`, "best")
        expect(onnx).toBe("s3://training-checkpoints/checkpoints/42/best.onnx")
        expect(internal.contentTypeOf("checkpoints/42/best.onnx")).toBe("application/octet-stream")
        expect(yield* Ref.get(events)).toEqual([{ checkpointType: "best", uri, metrics: { mAP50: 0.5 } }])

        const back = yield* storage.downloadCheckpoint(uri, `${dir}/restored/best.pt`)
        expect(yield* fs.readFileString(back)).toBe("weights")

        const missing = yield* Effect.flip(storage.uploadCheckpoint(`${dir}/nope.pt`, "last"))
        assert(missing._tag === "CheckpointError")
        expect(missing.reason).toBe("NotFound")
        const badType = yield* Effect.flip(storage.uploadCheckpoint(`${dir}/model.pth`, "../x"))
        assert(badType._tag === "CheckpointError")
        internal.failOn("checkpoints/42/last.pt", "AccessDenied")
        const denied = yield* Effect.flip(storage.uploadCheckpoint(`${dir}/model.pth`, "last", { loss: 1 }))
        assert(denied._tag === "CheckpointError")
        expect(denied.reason).toBe("Upload")
        expect(denied.message).toContain("checkpoints/42/last.pt")
        expect((yield* Ref.get(events)).length).toBe(1)

        const badUri = yield* Effect.flip(storage.downloadCheckpoint("s3://training-checkpoints", `${dir}/x.pt`))
        assert(badUri instanceof StorageError)
        expect(badUri.reason).toBe("InvalidUri")
        const notThere = yield* Effect.flip(storage.downloadCheckpoint("s3://training-checkpoints/checkpoints/42/none.pt", `${dir}/x.pt`))
        assert(notThere._tag === "CheckpointError")
        expect(notThere.reason).toBe("NotFound")
        expect(yield* fs.exists(`${dir}/x.pt`)).toBe(false)
      }).pipe(Effect.provide(layer))
    }))

  it.scoped("uploadFile goes to the chosen store with the given content type", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external, internal } = yield* StorageTest
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${dir}/r.json`, "{}")
      expect(yield* storage.uploadFile(`${dir}/r.json`, "results/r.json", { contentType: "application/json" }))
        .toBe("s3://training-checkpoints/results/r.json")
      expect(internal.contentTypeOf("results/r.json")).toBe("application/json")
      expect(yield* storage.uploadFile(`${dir}/r.json`, "exports/r.json", { store: "external" }))
        .toBe("s3://training-datasets/exports/r.json")
      expect(external.contentTypeOf("exports/r.json")).toBe("application/octet-stream")
      const bad = yield* Effect.flip(storage.uploadFile(`${dir}/r.json`, ""))
      expect(bad.reason).toBe("InvalidUri")
      const missing = yield* Effect.flip(storage.uploadFile(`${dir}/none.json`, "x"))
      expect(missing.reason).toBe("LocalIO")
    })))

  it.live("concurrency stays within the bound", () =>
    Effect.gen(function*() {
      const inFlight = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const memory = yield* makeMemoryObjectStore("training-datasets")
      for (let i = 0; i < 40; i++) memory.seed(`datasets/c/f${i}.bin`, `${i}`)
      const slow: ObjectStore = {
        ...memory,
        getToFile: (key, path) =>
          Effect.acquireUseRelease(
            Ref.updateAndGet(inFlight, (n) => n + 1).pipe(Effect.tap((n) => Ref.update(peak, (p) => Math.max(p, n)))),
            () => Effect.zipRight(Effect.sleep("2 millis"), memory.getToFile(key, path)),
            () => Ref.update(inFlight, (n) => n - 1)
          )
      }
      const storage = yield* Storage.make({ external: slow, internal: memory, jobId: 1 })
      const { dest } = yield* sandbox
      const result = yield* storage.downloadDataset("c", dest, { concurrency: 4 })
      expect(result.files).toBe(40)
      expect(yield* Ref.get(peak)).toBe(4)
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))

  it.live("an interrupted download leaves no temp file", () =>
    Effect.gen(function*() {
      const memory = yield* makeMemoryObjectStore("training-datasets")
      memory.seed("datasets/i/a.bin", "a")
      const written = yield* Deferred.make<void>()
      const hanging: ObjectStore = {
        ...memory,
        getToFile: (key, path) =>
          Effect.zipRight(memory.getToFile(key, path), Effect.zipRight(Deferred.succeed(written, undefined), Effect.never))
      }
      const storage = yield* Storage.make({ external: hanging, internal: memory, jobId: 1 })
      const { dest } = yield* sandbox
      const fiber = yield* Effect.fork(storage.downloadDataset("i", dest))
      // Interrupted with the object's bytes in a temp file, not yet under the final name.
      yield* Deferred.await(written)
      const during = yield* filesUnder(dest)
      expect(during).toHaveLength(1)
      expect(during[0]).not.toBe("a.bin")
      const exit = yield* Fiber.interrupt(fiber)
      assert(Exit.isInterrupted(exit))
      expect(yield* filesUnder(dest)).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))

  it.effect("memory store listing paginates like S3", () =>
    Effect.gen(function*() {
      const memory = yield* makeMemoryObjectStore("b", { pageSize: 10 })
      for (let i = 0; i < 25; i++) memory.seed(`p/${String(i).padStart(2, "0")}`, "x")
      const keys = yield* Stream.runCollect(memory.list("p/"))
      expect([...keys].map((o) => o.key)).toEqual(memory.keys())
      expect(memory.listPageCount()).toBe(3)
      memory.seed("p/deeper/x", "x")
      const top = yield* Stream.runCollect(memory.list("p/", { recursive: false }))
      expect(top.length).toBe(25)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("two objects aiming at one local path are rejected, nothing written", () =>
    run(Effect.gen(function*() {
      const storage = yield* Storage
      const { external } = yield* StorageTest
      const { dest } = yield* sandbox
      external.seed("a/x.jpg", "a")
      external.seed("b/x.jpg", "b")
      const data = { images: [{ file_name: "s3://training-datasets/a/x.jpg" }, { file_name: "s3://training-datasets/b/x.jpg" }] }
      const error = yield* Effect.flip(storage.downloadFromAnnotation(data, dest, "coco"))
      assert(error instanceof DatasetError)
      expect(error.reason).toBe("InvalidShape")
      expect(error.message).toContain("s3://training-datasets/b/x.jpg")
      expect(yield* filesUnder(dest)).toEqual([])
    })))
})

describe("boundedConcurrency", () => {
  it("keeps I/O bounded whatever the caller passes", () => {
    expect(boundedConcurrency(undefined, 32)).toBe(32)
    expect(boundedConcurrency(8, 32)).toBe(8)
    expect(boundedConcurrency(2.7, 32)).toBe(2)
    expect(boundedConcurrency(0, 32)).toBe(1)
    expect(boundedConcurrency(-5, 32)).toBe(1)
    expect(boundedConcurrency(Number.POSITIVE_INFINITY, 32)).toBe(32)
    expect(boundedConcurrency(Number.NaN, 32)).toBe(32)
  })
})

describe("Storage.layer reads only its own variables", () => {
  const build = (env: Record<string, string>) =>
    Effect.flatMap(Storage, (storage) => Effect.succeed(storage)).pipe(
      Effect.provide(Storage.layer),
      Effect.provide(NodeContext.layer),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
    )

  it.scoped("builds without CALLBACK_URL or a job id; a checkpoint upload then fails naming the missing job", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const file = yield* fs.makeTempFileScoped({ prefix: "storage-nojob-" })
      yield* fs.writeFileString(file, "weights")
      const storage = yield* build({ EXTERNAL_STORAGE_ENDPOINT: "http://127.0.0.1:1" })
      const error = yield* Effect.flip(storage.uploadCheckpoint(file, "best"))
      assert.strictEqual(error._tag, "CheckpointError")
      expect(error.message).toContain("no job")
      expect(yield* storage.checkpointRecords).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("a stray CALLBACK_URL does not matter, an invalid storage variable is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(build({ CALLBACK_URL: "not a url", AWS_REQUEST_CHECKSUM_CALCULATION: "SOMETIMES" }))
      assert.strictEqual(error._tag, "ConfigError")
      assert.strictEqual(error.variable, "AWS_REQUEST_CHECKSUM_CALCULATION")
      const invalidJob = yield* Effect.flip(build({ JOB_ID: "seven" }))
      assert.strictEqual(invalidJob.variable, "JOB_ID")
    }))
})
