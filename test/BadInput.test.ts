/**
 * The bad-input sweep: hostile inputs fed to every service that reads paths, numbers or
 * files from outside — path traversal in every path-bearing field of every format, huge
 * numbers, NaN/Infinity metrics, deeply nested JSON, non-UTF-8 annotation files, symlinks
 * in the cache directory. Each must end in a typed error (never a defect) or a result kept
 * inside the destination, and nothing may be written outside it.
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Duration, Effect, Either, Exit, Layer, Option, Schema } from "effect"
import { Callback, CallbackTest } from "../src/Callback.js"
import { Converter } from "../src/Converter.js"
import { cacheKeyOf, DatasetCache, type DatasetCacheService } from "../src/DatasetCache.js"
import { JobContext, makeJobContext } from "../src/JobContext.js"
import { matchCallbackEndpoint } from "../src/internal/callbackBodies.js"
import { StorageTest, Storage, type StorageService } from "../src/Storage.js"

/** A temp root holding `dest/` (where writes belong) and `outside/` (a sentinel that must not change). */
interface Sandbox {
  readonly root: string
  readonly dest: string
  readonly outside: string
}

const sentinel = "untouched"

const makeSandbox = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const root = yield* fs.makeTempDirectoryScoped()
  const dest = path.join(root, "dest")
  const outside = path.join(root, "outside")
  yield* fs.makeDirectory(dest)
  yield* fs.makeDirectory(outside)
  yield* fs.writeFileString(path.join(outside, "sentinel.txt"), sentinel)
  return { root, dest, outside } satisfies Sandbox
})

/** Nothing appeared next to `dest/`, and `outside/` still holds only its unchanged sentinel. */
const assertNothingOutside = (box: Sandbox) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const extra = (yield* fs.readDirectory(box.root)).filter((n) => n !== "dest" && n !== "outside")
    assert.deepStrictEqual(extra, [], `written next to dest: ${extra.join(", ")}`)
    assert.deepStrictEqual(yield* fs.readDirectory(box.outside, { recursive: true }), ["sentinel.txt"])
    assert.strictEqual(yield* fs.readFileString(`${box.outside}/sentinel.txt`), sentinel)
  })

/** What a hostile input must lead to. */
type Outcome =
  /** A typed failure with one of these tags (and, when given, this `reason`). */
  | { readonly fails: ReadonlyArray<string>; readonly reason?: string }
  /** Success is acceptable: the result stays inside the destination. */
  | "contained"

/** Runs `effect`, failing the test on a defect; checks the typed failure or the success. */
const expectOutcome = <A, E, R>(effect: Effect.Effect<A, E, R>, outcome: Outcome, label: string) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(effect)
    if (Exit.isSuccess(exit)) {
      assert.strictEqual(outcome, "contained", `${label}: succeeded, expected a typed failure`)
      return Option.some(exit.value)
    }
    assert.deepStrictEqual([...Cause.defects(exit.cause)], [], `${label}: a defect instead of a typed error`)
    const failure = Cause.failureOption(exit.cause)
    assert.isTrue(Option.isSome(failure), `${label}: no typed failure in ${Cause.pretty(exit.cause)}`)
    const error = Option.getOrThrow(failure) as { readonly _tag: string; readonly reason?: string; readonly message: string }
    if (outcome === "contained") return Option.none<A>()
    assert.include(outcome.fails, error._tag, `${label}: ${error._tag}: ${error.message}`)
    if (outcome.reason !== undefined) assert.strictEqual(error.reason, outcome.reason, `${label}: ${error.message}`)
    assert.isAbove(error.message.length, 0)
    return Option.none<A>()
  })

// ---------------------------------------------------------------------------------------------
// Path traversal in downloads (in-memory object stores, real local file system)

const StorageLive = Storage.layerTest().pipe(Layer.provideMerge(NodeContext.layer))

/** Names that must never become a local path outside `dest/images/` (or `dest/`). */
const hostileNames = (box: Sandbox): ReadonlyArray<string> => [
  "../../outside/x.jpg",
  "../x.jpg",
  "a/../../../outside/x.jpg",
  "./../../outside/x.jpg",
  `${box.outside}/x.jpg`,
  "..\\..\\outside\\x.jpg",
  "a\\..\\..\\..\\outside\\x.jpg",
  "C:\\outside\\x.jpg",
  "C:/outside/x.jpg",
  "..",
  "x\u0000.jpg"
]

/** An annotation document in one of the DICE shapes, with `hostile` as the second image's name. */
const diceDocument = (shape: "nested" | "flat", hostile: string, storageInfo?: Record<string, unknown>) => {
  const images = [{ id: 1, file_name: "good.jpg", width: 10, height: 10 }, { id: 2, file_name: hostile, width: 10, height: 10 }]
  const annotation = { id: 1, class_id: 0, class_name: "cat", bbox: [1, 1, 2, 2] }
  return shape === "nested"
    ? {
      format_version: "1.0",
      task_type: "object_detection",
      classes: [{ id: 0, name: "cat" }],
      ...(storageInfo ? { storage_info: storageInfo } : {}),
      images: images.map((image) => ({ ...image, annotations: [annotation] }))
    }
    : {
      ...(storageInfo ? { storage_info: storageInfo } : {}),
      images,
      annotations: images.map((image, i) => ({ id: i + 1, image_id: image.id, category_id: 0, bbox: [1, 1, 2, 2] })),
      categories: [{ id: 0, name: "cat" }]
    }
}

const withStorage = <A, E>(body: (storage: StorageService, memory: StorageTest["Type"], box: Sandbox) => Effect.Effect<A, E, FileSystem.FileSystem | Path.Path>) =>
  Effect.gen(function*() {
    const box = yield* makeSandbox
    yield* body(yield* Storage, yield* StorageTest, box)
    yield* assertNothingOutside(box)
  }).pipe(Effect.provide(StorageLive))

describe("bad input: path traversal in downloads", () => {
  for (const shape of ["nested", "flat"] as const) {
    it.scoped(`DICE ${shape} images[].file_name: every hostile name is rejected before any image is written`, () =>
      withStorage((storage, memory, box) =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          for (const name of hostileNames(box)) {
            const id = `${shape}-${hostileNames(box).indexOf(name)}`
            // The annotation file and every image key the document could make the flow read.
            memory.seedDataset(id, {
              annotations: { "annotations_detection.json": diceDocument(shape, name) },
              images: { "good.jpg": "GOOD", [name]: "HOSTILE" }
            })
            const dest = `${box.dest}/${id}`
            yield* expectOutcome(storage.downloadDatasetSelective(id, dest), { fails: ["DatasetError"], reason: "PathEscape" }, name)
            // Annotation files are written first; no image at all once a name is rejected.
            assert.isFalse(yield* fs.exists(`${dest}/images/good.jpg`), name)
          }
        })))
  }

  it.scoped("storage_info.image_root: hostile roots only change the object key read, never the local path", () =>
    withStorage((storage, memory, box) =>
      Effect.gen(function*() {
        const roots = ["s3://training-datasets/../../outside/", "../../outside/", "/abs/root/", "s3://b/../../x/", "C:\\root\\", "s3://../x/"]
        for (const [i, root] of roots.entries()) {
          memory.seedDataset(`root-${i}`, {
            annotations: { "annotations_detection.json": diceDocument("nested", "good.jpg", { image_root: root }) }
          })
          const dest = `${box.dest}/root-${i}`
          const report = yield* expectOutcome(
            storage.downloadDatasetSelective(`root-${i}`, dest),
            { fails: ["DatasetError", "DownloadError", "StorageError"] },
            root
          )
          assert.isTrue(Option.isNone(report), `${root}: the hostile root's objects do not exist`)
        }
        // A root whose objects do exist: the image still lands under dest/images/.
        memory.seedDataset("ds", { annotations: { "annotations_detection.json": diceDocument("nested", "good.jpg", { image_root: "../../outside/" }) } })
        memory.external.seed("../../outside/good.jpg", "FROM-ODD-KEY")
        yield* storage.downloadDatasetSelective("ds", `${box.dest}/odd-root`)
        const fs = yield* FileSystem.FileSystem
        assert.strictEqual(yield* fs.readFileString(`${box.dest}/odd-root/images/good.jpg`), "FROM-ODD-KEY")
      })))

  it.scoped("LabelMe data_summary img_path / label_path: only a sane base name is ever used locally", () =>
    withStorage((storage, memory, box) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        memory.external.seed("../../outside/x.jpg", "IMG")
        memory.external.seed("../../outside/x.json", "{}")
        const cases: ReadonlyArray<readonly [Record<string, unknown>, Outcome]> = [
          [{ img_path: "s3://training-datasets/..", label_path: null }, { fails: ["DatasetError"], reason: "PathEscape" }],
          [{ img_path: "s3://training-datasets/a/..\\..\\x.jpg", label_path: null }, { fails: ["DatasetError"], reason: "PathEscape" }],
          [{ img_path: "s3://training-datasets/ok.jpg", label_path: "s3://training-datasets/a\\..\\..\\x.json" }, { fails: ["DatasetError"], reason: "PathEscape" }],
          [{ img_path: "s3://training-datasets/ok.jpg", label_path: "s3://training-datasets/.." }, { fails: ["DatasetError"], reason: "PathEscape" }],
          [{ img_path: "E:/data/images/x.jpg", label_path: null }, { fails: ["DatasetError"], reason: "InvalidShape" }],
          [{ img_path: "E:\\data\\images\\x.jpg", label_path: null }, { fails: ["DatasetError"], reason: "InvalidShape" }],
          [{ img_path: `${box.outside}/x.jpg`, label_path: null }, { fails: ["DatasetError"], reason: "InvalidShape" }],
          [{ img_path: "../../outside/x.jpg", label_path: null }, { fails: ["DatasetError"], reason: "InvalidShape" }],
          [{ img_path: "s3://../x.jpg", label_path: null }, { fails: ["DatasetError"], reason: "InvalidShape" }],
          // `..` inside the key only addresses an odd object; the file still lands at dest/images/x.jpg.
          [{ img_path: "s3://training-datasets/../../outside/x.jpg", label_path: "s3://training-datasets/../../outside/x.json" }, "contained"]
        ]
        for (const [i, [entry, outcome]] of cases.entries()) {
          const dest = `${box.dest}/labelme-${i}`
          const result = yield* expectOutcome(
            storage.downloadFromAnnotation({ data_summary: [entry] }, dest, "labelme"),
            outcome,
            JSON.stringify(entry)
          )
          if (Option.isSome(result)) {
            assert.strictEqual(yield* fs.readFileString(`${dest}/images/x.jpg`), "IMG")
            assert.strictEqual(yield* fs.readFileString(`${dest}/labels/x.json`), "{}")
          } else {
            assert.isFalse(yield* fs.exists(dest), `${JSON.stringify(entry)}: nothing written`)
          }
        }
      })))

  it.scoped("COCO images[].file_name URIs: rejected or reduced to a base name under dest/images/", () =>
    withStorage((storage, memory, box) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        memory.external.seed("../../outside/x.jpg", "IMG")
        const cases: ReadonlyArray<readonly [string, Outcome]> = [
          ["s3://training-datasets/..", { fails: ["DatasetError"], reason: "PathEscape" }],
          ["s3://training-datasets/a/..\\..\\x.jpg", { fails: ["DatasetError"], reason: "PathEscape" }],
          ["../../outside/x.jpg", { fails: ["DatasetError"], reason: "InvalidShape" }],
          [`${box.outside}/x.jpg`, { fails: ["DatasetError"], reason: "InvalidShape" }],
          ["C:\\outside\\x.jpg", { fails: ["DatasetError"], reason: "InvalidShape" }],
          ["s3:///x.jpg", { fails: ["DatasetError"], reason: "InvalidShape" }],
          ["s3://training-datasets/../../outside/x.jpg", "contained"]
        ]
        for (const [i, [uri, outcome]] of cases.entries()) {
          const dest = `${box.dest}/coco-${i}`
          const data = { images: [{ id: 1, file_name: uri, width: 4, height: 4 }], annotations: [], categories: [] }
          const result = yield* expectOutcome(storage.downloadFromAnnotation(data, dest, "coco"), outcome, uri)
          if (Option.isSome(result)) {
            assert.strictEqual(yield* fs.readFileString(`${dest}/images/x.jpg`), "IMG")
            const written = JSON.parse(yield* fs.readFileString(`${dest}/annotations.json`)) as { images: Array<{ file_name: string }> }
            assert.strictEqual(written.images[0]!.file_name, "images/x.jpg")
          } else {
            assert.isFalse(yield* fs.exists(dest), `${uri}: nothing written`)
          }
        }
      })))

  it.scoped("whole-prefix download: a listed key escaping the destination rejects the whole plan, nothing written", () =>
    withStorage((storage, memory, box) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const keys = [
          "datasets/ds/../../outside/x.txt",
          "datasets/ds/a/../../../outside/x.txt",
          "datasets/ds/..\\..\\outside\\x.txt",
          `datasets/ds/${box.outside}/x.txt`,
          "datasets/ds/C:/outside/x.txt",
          "datasets/ds/..",
          "datasets/ds/x\u0000.txt"
        ]
        for (const [i, key] of keys.entries()) {
          // One dataset per case, so that each listing holds exactly one hostile key.
          const id = `prefix-${i}`
          memory.external.seed(`datasets/${id}/fine.txt`, "FINE")
          memory.external.seed(key.replace("datasets/ds/", `datasets/${id}/`), "HOSTILE")
          const dest = `${box.dest}/${id}`
          yield* expectOutcome(storage.downloadDataset(id, dest), { fails: ["DatasetError"], reason: "PathEscape" }, key)
          assert.isFalse(yield* fs.exists(dest), `${key}: nothing written`)
        }
      })))

  it.scoped("downloadCheckpoint: malformed URIs are typed errors naming the URI; the local path is the caller's", () =>
    withStorage((storage, memory, box) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        memory.internal.seed("../../outside/x.pt", "CKPT")
        const cases: ReadonlyArray<readonly [string, Outcome]> = [
          ["s3://../x.pt", { fails: ["StorageError"], reason: "InvalidUri" }],
          ["s3:///x.pt", { fails: ["StorageError"], reason: "InvalidUri" }],
          ["s3://training-checkpoints/", { fails: ["StorageError"], reason: "InvalidUri" }],
          ["s3://training-checkpoints", { fails: ["StorageError"], reason: "InvalidUri" }],
          ["../../outside/x.pt", { fails: ["StorageError"], reason: "InvalidUri" }],
          [`file://${box.outside}/x.pt`, { fails: ["StorageError"], reason: "InvalidUri" }],
          ["s3://training-checkpoints/missing/../x.pt", { fails: ["CheckpointError"], reason: "NotFound" }],
          ["s3://training-checkpoints/../../outside/x.pt", "contained"]
        ]
        for (const [i, [uri, outcome]] of cases.entries()) {
          const local = `${box.dest}/ckpt-${i}/best.pt`
          const result = yield* expectOutcome(storage.downloadCheckpoint(uri, local), outcome, uri)
          if (Option.isSome(result)) assert.strictEqual(yield* fs.readFileString(local), "CKPT")
          else assert.isFalse(yield* fs.exists(local), uri)
        }
      })))
})

// ---------------------------------------------------------------------------------------------
// Path traversal in local conversion (the converter reads names from annotation files)

const ConverterLive = Converter.layer.pipe(Layer.provideMerge(NodeContext.layer))

/** Writes a local DICE dataset in `dir` with an image for `good.jpg` and, outside, one a hostile name could reach. */
const writeDiceDataset = (dir: string, doc: unknown) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    yield* fs.makeDirectory(`${dir}/images`, { recursive: true })
    yield* fs.writeFileString(`${dir}/images/good.jpg`, "GOOD")
    yield* fs.writeFileString(`${dir}/annotations_detection.json`, typeof doc === "string" ? doc : JSON.stringify(doc))
  })

/** Runs a conversion of `dest/ds` to both YOLO and COCO with `outside/x.jpg` present as bait. */
const convertBoth = (box: Sandbox, outcome: Outcome, label: string) =>
  Effect.gen(function*() {
    const converter = yield* Converter
    for (const to of ["yolo", "coco"] as const) {
      yield* expectOutcome(converter.convert({ datasetDir: `${box.dest}/ds`, from: "dice", to }), outcome, `${label} → ${to}`)
    }
  })

describe("bad input: path traversal in conversion", () => {
  for (const shape of ["nested", "flat"] as const) {
    it.scoped(`DICE ${shape} images[].file_name: hostile names are a PathEscape DatasetError`, () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const count = hostileNames(yield* makeSandbox).length
        for (let i = 0; i < count; i++) {
          const box = yield* makeSandbox
          const name = hostileNames(box)[i]!
          yield* fs.writeFileString(`${box.outside}/x.jpg`, "BAIT")
          yield* writeDiceDataset(`${box.dest}/ds`, diceDocument(shape, name))
          const converter = yield* Converter
          for (const to of ["yolo", "coco"] as const) {
            yield* expectOutcome(
              converter.convert({ datasetDir: `${box.dest}/ds`, from: "dice", to }),
              { fails: ["DatasetError"] },
              `${name} → ${to}`
            )
          }
          yield* fs.remove(`${box.outside}/x.jpg`)
          yield* assertNothingOutside(box)
        }
      }).pipe(Effect.provide(ConverterLive)))
  }

  it.scoped("storage_info.image_root climbing out of the dataset is a PathEscape DatasetError", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      for (const root of ["datasets/ds/../../../outside/", "datasets/ds/..\\..\\..\\outside\\", "a/b/../../../../outside"]) {
        const box = yield* makeSandbox
        yield* fs.writeFileString(`${box.outside}/good.jpg`, "BAIT")
        yield* writeDiceDataset(`${box.dest}/ds`, diceDocument("nested", "good.jpg", { image_root: root }))
        yield* convertBoth(box, { fails: ["DatasetError"], reason: "PathEscape" }, root)
        yield* fs.remove(`${box.outside}/good.jpg`)
        yield* assertNothingOutside(box)
      }
    }).pipe(Effect.provide(ConverterLive)))

  it.scoped("LabelMe data_summary paths: only base names are used; '..' names are typed errors", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const cases: ReadonlyArray<readonly [Record<string, string>, Outcome]> = [
        [{ img_path: "../../outside/x.jpg", label_path: "../../outside/x.json" }, "contained"],
        [{ img_path: "E:\\data\\..\\..\\outside\\x.jpg", label_path: "E:/data/../outside/x.json" }, "contained"],
        [{ img_path: "images/..", label_path: "labels/x.json" }, { fails: ["DatasetError"] }],
        [{ img_path: "images/x.jpg", label_path: "labels/.." }, { fails: ["DatasetError"] }]
      ]
      for (const [entry, outcome] of cases) {
        const box = yield* makeSandbox
        const dir = `${box.dest}/lm`
        yield* fs.makeDirectory(`${dir}/images`, { recursive: true })
        yield* fs.makeDirectory(`${dir}/labels`)
        yield* fs.writeFileString(`${dir}/images/x.jpg`, "IMG")
        yield* fs.writeFileString(
          `${dir}/labels/x.json`,
          JSON.stringify({ shapes: [{ label: "cat", points: [[1, 1], [3, 3]], shape_type: "rectangle" }], imageWidth: 10, imageHeight: 10 })
        )
        yield* fs.writeFileString(`${box.outside}/x.json`, "{\"bait\": true}")
        yield* fs.writeFileString(
          `${dir}/label_map.json`,
          JSON.stringify({ task_type: "det", class_summary: { classes: [{ name: "cat", idx: 0, color: "#fff" }] }, data_summary: [entry] })
        )
        const converter = yield* Converter
        yield* expectOutcome(converter.convert({ datasetDir: dir, from: "labelme", to: "yolo" }), outcome, JSON.stringify(entry))
        assert.strictEqual(yield* fs.readFileString(`${box.outside}/x.json`), "{\"bait\": true}")
        yield* fs.remove(`${box.outside}/x.json`)
        yield* assertNothingOutside(box)
      }
    }).pipe(Effect.provide(ConverterLive)))
})

// ---------------------------------------------------------------------------------------------
// Huge numbers, deeply nested JSON, non-UTF-8 annotation files

/** Every number of every YOLO label file under `dir` is finite and within Ultralytics' bounds. */
const assertSaneLabels = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    for (const entry of yield* fs.readDirectory(`${dir}/labels`, { recursive: true })) {
      if (!entry.endsWith(".txt")) continue
      const text = yield* fs.readFileString(`${dir}/labels/${entry}`)
      for (const line of text.split("\n").filter((l) => l !== "")) {
        const [, ...coords] = line.split(" ").map(Number)
        for (const c of coords) assert.isTrue(Number.isFinite(c) && c >= -0.01 && c <= 1.01, `${entry}: ${line}`)
      }
    }
  })

const deepArray = (depth: number) => "[".repeat(depth) + "]".repeat(depth)
const deepObject = (depth: number) => "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)

/** Annotation texts that must be a typed DatasetError naming the file. */
const hostileAnnotationTexts: ReadonlyArray<readonly [string, string | Uint8Array]> = [
  ["100,000 nested arrays", deepArray(100_000)],
  ["100,000 nested objects", deepObject(100_000)],
  ["100,000 unclosed arrays", "[".repeat(100_000)],
  ["nested arrays as images", `{"images": ${deepArray(100_000)}, "annotations": [], "categories": []}`],
  ["nested arrays as a bbox", `{"images": [{"id": 1, "file_name": "good.jpg", "width": 4, "height": 4}], "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": ${deepArray(100_000)}}], "categories": [{"id": 0, "name": "cat"}]}`],
  ["invalid UTF-8 in a file name", Buffer.concat([Buffer.from("{\"images\": [{\"id\": 1, \"file_name\": \"good"), Buffer.from([0xff, 0xfe]), Buffer.from(".jpg\", \"width\": 4, \"height\": 4}], \"annotations\": [], \"categories\": []}")])],
  ["a lone UTF-8 continuation byte in a class name", Buffer.concat([Buffer.from("{\"images\": [{\"id\": 1, \"file_name\": \"good.jpg\", \"width\": 4, \"height\": 4}], \"annotations\": [], \"categories\": [{\"id\": 0, \"name\": \"c"), Buffer.from([0x80]), Buffer.from("t\"}]}")])],
  ["UTF-16 with a byte-order mark", Buffer.from("\ufeff{\"images\": []}", "utf16le")]
]

describe("bad input: numbers and annotation files", () => {
  it.scoped("width / height / bbox at 1e308 (and 1e309 = Infinity): typed error or sane labels, never a crash", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const image = (side: string) => `"images": [{"id": 1, "file_name": "good.jpg", "width": ${side}, "height": ${side}}]`
      const box = (bbox: string) => `"annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": ${bbox}}]`
      const cat = `"categories": [{"id": 0, "name": "cat"}]`
      // JSON has no Infinity, but a literal like 1e309 parses to it: a DICE document holding one is malformed.
      const infinite: Outcome = { fails: ["DatasetError"], reason: "InvalidShape" }
      const docs: ReadonlyArray<readonly [string, string, Outcome]> = [
        ["huge bbox", `{${image("10")}, ${box("[1e308, 1e308, 1e308, 1e308]")}, ${cat}}`, "contained"],
        ["negative huge bbox", `{${image("10")}, ${box("[-1e308, -1e308, 1e308, 1e308]")}, ${cat}}`, "contained"],
        ["huge image", `{${image("1e308")}, ${box("[1, 1, 1e308, 1e308]")}, ${cat}}`, "contained"],
        ["huge ids", `{"images": [{"id": 1e308, "file_name": "good.jpg", "width": 10, "height": 10}], "annotations": [{"id": 1e308, "image_id": 1e308, "category_id": 1e308, "bbox": [1, 1, 2, 2]}], "categories": [{"id": 1e308, "name": "cat"}]}`, "contained"],
        ["infinite image", `{${image("1e309")}, ${box("[1, 1, 2, 2]")}, ${cat}}`, infinite],
        ["infinite bbox", `{${image("10")}, ${box("[1, 1e309, 2, 2]")}, ${cat}}`, infinite],
        ["infinite category id", `{${image("10")}, ${box("[1, 1, 2, 2]")}, "categories": [{"id": -1e309, "name": "cat"}]}`, infinite]
      ]
      for (const [label, text, outcome] of docs) {
        const box = yield* makeSandbox
        yield* writeDiceDataset(`${box.dest}/ds`, text)
        const converter = yield* Converter
        const yolo = yield* expectOutcome(converter.convert({ datasetDir: `${box.dest}/ds`, from: "dice", to: "yolo" }), outcome, label)
        if (Option.isSome(yolo)) yield* assertSaneLabels(`${box.dest}/ds`)
        const coco = yield* expectOutcome(converter.convert({ datasetDir: `${box.dest}/ds`, from: "dice", to: "coco" }), outcome, label)
        if (Option.isSome(coco)) {
          // The COCO files must be loadable JSON: no Infinity turned into null where a number belongs.
          const doc = JSON.parse(yield* fs.readFileString(`${box.dest}/ds/annotations/instances_all.json`)) as {
            images: Array<{ width: unknown; height: unknown }>
            annotations: Array<{ bbox: Array<unknown>; area: unknown }>
          }
          for (const image of doc.images) assert.isTrue(typeof image.width === "number" && typeof image.height === "number", label)
          for (const a of doc.annotations) {
            assert.isTrue(a.bbox.every((v) => typeof v === "number") && typeof a.area === "number", `${label}: ${JSON.stringify(a)}`)
          }
        }
        yield* assertNothingOutside(box)
      }
    }).pipe(Effect.provide(ConverterLive)))

  it.scoped("hostile annotation files in a selective download: a DatasetError naming the file", () =>
    withStorage((storage, memory, box) =>
      Effect.gen(function*() {
        for (const [i, [label, text]] of hostileAnnotationTexts.entries()) {
          const id = `hostile-${i}`
          memory.seedDataset(id, {
            annotations: { "annotations_detection.json": text },
            images: { "good.jpg": "GOOD", "good\ufffd\ufffd.jpg": "REPLACED" }
          })
          const dest = `${box.dest}/${id}`
          const exit = yield* Effect.exit(storage.downloadDatasetSelective(id, dest))
          yield* expectOutcome(exit, { fails: ["DatasetError"] }, label)
          if (Exit.isFailure(exit)) {
            const error = Option.getOrThrow(Cause.failureOption(exit.cause))
            assert.include(error.message, "annotations_detection.json", label)
          }
        }
      })))

  it.scoped("hostile annotation files in a conversion: a DatasetError naming the file", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      for (const [label, text] of hostileAnnotationTexts) {
        const box = yield* makeSandbox
        yield* fs.makeDirectory(`${box.dest}/ds/images`, { recursive: true })
        yield* fs.writeFileString(`${box.dest}/ds/images/good.jpg`, "GOOD")
        yield* fs.writeFileString(`${box.dest}/ds/images/good\ufffd\ufffd.jpg`, "REPLACED")
        yield* fs.writeFile(`${box.dest}/ds/annotations_detection.json`, typeof text === "string" ? Buffer.from(text) : text)
        const converter = yield* Converter
        const exit = yield* Effect.exit(converter.convert({ datasetDir: `${box.dest}/ds`, from: "dice", to: "yolo" }))
        yield* expectOutcome(exit, { fails: ["DatasetError"] }, label)
        if (Exit.isFailure(exit)) {
          const error = Option.getOrThrow(Cause.failureOption(exit.cause))
          assert.include(error.message, "annotations_detection.json", label)
        }
        yield* assertNothingOutside(box)
      }
    }).pipe(Effect.provide(ConverterLive)))

  it.scoped("COCO annotation data nested 100,000 deep, or cyclic: a typed error before anything is written", () =>
    withStorage((storage, memory, box) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        memory.external.seed("imgs/x.jpg", "IMG")
        const image = { id: 1, file_name: "s3://training-datasets/imgs/x.jpg" }
        const deep = JSON.parse(`{"info": ${deepArray(100_000)}, "images": [], "annotations": [], "categories": []}`) as Record<string, unknown>
        const cyclic: Record<string, unknown> = { images: [image], annotations: [], categories: [] }
        cyclic["info"] = cyclic
        for (const [label, data] of [["deep info", { ...deep, images: [image] }], ["cyclic info", cyclic]] as const) {
          const dest = `${box.dest}/${label.replace(" ", "-")}`
          yield* expectOutcome(storage.downloadFromAnnotation(data, dest, "coco"), { fails: ["DatasetError"], reason: "InvalidShape" }, label)
          assert.isFalse(yield* fs.exists(dest), `${label}: nothing written`)
        }
      })))
})

// ---------------------------------------------------------------------------------------------
// NaN / Infinity metrics and huge numbers in reports (on the wire, through Callback.layerTest())

const callbackLayer = Callback.layerTest().pipe(
  Layer.provideMerge(JobContext.layerTest({ jobId: 7, callbackRetryDelay: Duration.zero }))
)

/** Every recorded body decodes with the backend's strict model of its endpoint. */
const assertWireValid = (requests: ReadonlyArray<{ readonly path: string; readonly body: unknown }>) => {
  for (const request of requests) {
    const endpoint = matchCallbackEndpoint(request.path)
    assert.isDefined(endpoint, request.path)
    const decoded = Schema.decodeUnknownEither(endpoint!.endpoint.body)(request.body, { onExcessProperty: "error" })
    assert.isTrue(decoded._tag === "Right", `${request.path}: ${JSON.stringify(request.body)}`)
  }
}

describe("bad input: metrics and numbers in reports", () => {
  it.scoped("NaN and ±Infinity metrics are sent as null and the reports still go out", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      const test = yield* CallbackTest
      yield* callback.reportStarted({ totalEpochs: 10 })
      yield* callback.reportProgress({
        epoch: 1,
        totalEpochs: 10,
        metrics: { loss: Number.NaN, accuracy: Number.POSITIVE_INFINITY, lr: Number.NEGATIVE_INFINITY, mAP50: 0.5, zero: 0 }
      })
      yield* callback.flushProgress
      yield* callback.reportValidation({
        epoch: 1,
        primaryMetric: ["mAP50-95", Number.NaN],
        allMetrics: { "mAP50-95": Number.NaN, precision: Number.POSITIVE_INFINITY, recall: 0.25 },
        overallLoss: Number.POSITIVE_INFINITY
      })
      yield* callback.reportCompleted({ finalMetrics: { loss: Number.NEGATIVE_INFINITY, accuracy: Number.NaN, "mAP50-95": 0 } })

      const requests = yield* test.requests
      assert.deepStrictEqual(requests.map((r) => r.path), [
        "/training/jobs/7/callback/progress",
        "/training/jobs/7/callback/progress",
        "/validation/jobs/7/results",
        "/training/jobs/7/callback/completion"
      ])
      const [, progress, validation, completion] = requests.map((r) => r.body as Record<string, unknown>)
      assert.deepStrictEqual(progress!["metrics"], {
        loss: null,
        accuracy: null,
        learning_rate: null,
        extra_metrics: { loss: null, accuracy: null, lr: null, mAP50: 0.5, zero: 0 }
      })
      assert.strictEqual(validation!["primary_metric_value"], null)
      assert.deepStrictEqual(validation!["metrics"], { "mAP50-95": null, precision: null, recall: 0.25 })
      assert.strictEqual(validation!["overall_loss"], null)
      assert.deepStrictEqual(completion!["final_metrics"], {
        loss: null,
        accuracy: null,
        learning_rate: null,
        extra_metrics: { loss: null, accuracy: null, "mAP50-95": 0 }
      })
      assertWireValid(requests)
    }).pipe(Effect.provide(callbackLayer)))

  it.scoped("epochs, totals and durations at 1e308, Infinity or NaN: a typed Invalid error or a valid body, never a crash", () =>
    Effect.gen(function*() {
      const callback = yield* Callback
      const test = yield* CallbackTest
      const reports: ReadonlyArray<readonly [string, Effect.Effect<void, unknown>]> = [
        ["started 1e308 epochs", callback.reportStarted({ totalEpochs: 1e308 })],
        ["started Infinity epochs", callback.reportStarted({ totalEpochs: Number.POSITIVE_INFINITY })],
        ["progress epoch 1e308", Effect.zipRight(callback.reportProgress({ epoch: 1e308, totalEpochs: 50, metrics: {} }), callback.flushProgress)],
        ["progress total 1e308", Effect.zipRight(callback.reportProgress({ epoch: 3, totalEpochs: 1e308, metrics: {} }), callback.flushProgress)],
        ["progress epoch NaN", Effect.zipRight(callback.reportProgress({ epoch: Number.NaN, totalEpochs: 50, metrics: {} }), callback.flushProgress)],
        ["progress epoch Infinity", Effect.zipRight(callback.reportProgress({ epoch: Number.POSITIVE_INFINITY, totalEpochs: 50, metrics: {} }), callback.flushProgress)],
        ["validation epoch 1e308", callback.reportValidation({ epoch: 1e308, primaryMetric: ["mAP50-95", 1e308], allMetrics: { x: 1e308 } })],
        ["completed 1e308 epochs", callback.reportCompleted({ finalMetrics: { loss: 1e308 }, totalEpochs: 1e308, totalDurationSeconds: 1e308 })],
        ["completed Infinity duration", callback.reportCompleted({ finalMetrics: {}, totalDurationSeconds: Number.POSITIVE_INFINITY })],
        ["inference 1e308 images", callback.reportInferenceCompleted({ totalImages: 1e308, totalInferenceTimeMs: 1e308, results: [] })],
        ["inference Infinity time", callback.reportInferenceCompleted({ totalImages: 2, totalInferenceTimeMs: Number.POSITIVE_INFINITY, results: [] })],
        ["export Infinity size", callback.reportExportCompleted({ exportFormat: "onnx", outputS3Uri: "s3://b/k", fileSizeBytes: Number.POSITIVE_INFINITY, metadata: {} })]
      ]
      for (const [label, report] of reports) {
        const before = (yield* test.requests).length
        const exit = yield* Effect.exit(report)
        const sent = (yield* test.requests).slice(before)
        if (Exit.isFailure(exit)) {
          yield* expectOutcome(exit, { fails: ["CallbackError"], reason: "Invalid" }, label)
          assert.deepStrictEqual(sent, [], `${label}: an invalid report is not sent`)
        } else {
          assert.strictEqual(sent.length, 1, label)
        }
        assertWireValid(sent)
      }
    }).pipe(Effect.provide(callbackLayer)))
})

// ---------------------------------------------------------------------------------------------
// The dataset cache: hostile version hashes, symlinks planted in the cache directory

const hashA = "aaaaaaaaaaaaaaaa-version-a"
const keyA = Either.getOrThrow(cacheKeyOf("ds1", hashA))
/** A well-formed completion marker, so a planted entry looks complete and sized to the cache. */
const marker = JSON.stringify({
  snapshot_id: "snap1",
  dataset_id: "ds1",
  dataset_version_hash: hashA,
  created_at: "2026-01-01T00:00:00.000Z",
  last_accessed: "2026-01-01T00:00:00.000Z",
  size_bytes: 100
})

/** A cache dir next to a `victim/` tree that planted links point at; the cache over in-memory storage. */
const cacheHarness = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const box = yield* makeSandbox
  const cacheDir = `${box.root}/cache`
  const victim = `${box.root}/victim`
  yield* fs.makeDirectory(`${victim}/images`, { recursive: true })
  yield* fs.writeFileString(`${victim}/images/precious.jpg`, "PRECIOUS")
  yield* fs.writeFileString(`${victim}/annotations_detection.json`, "{\"images\": []}")
  yield* fs.writeFileString(`${victim}/.complete`, marker)
  yield* fs.writeFileString(`${victim}/metadata.json`, "PRECIOUS")
  yield* fs.makeDirectory(cacheDir)
  const storage = yield* Layer.build(Storage.layerTest())
  Context.get(storage, StorageTest).seedDataset("ds1", { images: { "a.jpg": "AAAA" } })
  /** Runs `f` with a fresh cache layer (its leases end with it). */
  const withCache = <A, E>(f: (cache: DatasetCacheService) => Effect.Effect<A, E>) =>
    Effect.flatMap(DatasetCache, f).pipe(Effect.provide(
      DatasetCache.layerConfig(
        makeJobContext({ datasetId: "ds1", snapshotId: "snap1", datasetVersionHash: hashA }),
        { cacheDir, maxBytes: 1 << 30, staleAfter: "2 seconds", heartbeatEvery: "100 millis", pollEvery: "20 millis" }
      ).pipe(Layer.provide(Layer.succeedContext(storage)))
    ))
  /** The victim tree is exactly as planted. */
  const assertVictimIntact = Effect.gen(function*() {
    assert.deepStrictEqual(
      (yield* fs.readDirectory(victim, { recursive: true })).sort(),
      [".complete", "annotations_detection.json", "images", "images/precious.jpg", "metadata.json"]
    )
    assert.strictEqual(yield* fs.readFileString(`${victim}/images/precious.jpg`), "PRECIOUS")
    assert.strictEqual(yield* fs.readFileString(`${victim}/metadata.json`), "PRECIOUS")
    assert.strictEqual(yield* fs.readFileString(`${victim}/annotations_detection.json`), "{\"images\": []}")
    yield* assertNothingOutsideCache
  })
  const assertNothingOutsideCache = Effect.gen(function*() {
    const extra = (yield* fs.readDirectory(box.root)).filter((n) => !["dest", "outside", "cache", "victim"].includes(n))
    assert.deepStrictEqual(extra, [])
    assert.deepStrictEqual(yield* fs.readDirectory(box.outside, { recursive: true }), ["sentinel.txt"])
  })
  return { box, cacheDir, victim, withCache, assertVictimIntact, fs }
})

describe("bad input: the dataset cache", () => {
  it.scopedLive("a dataset version hash or entry key with path parts is an InvalidKey error, nothing created", () =>
    Effect.gen(function*() {
      const { assertVictimIntact, box, cacheDir, fs, withCache } = yield* cacheHarness
      const hostile = ["../../outside", "..", "a/../../b", `${box.outside}`, "x\\..\\y", "C:\\x", "", "  ", "a\u0000b", "../victim"]
      yield* withCache((cache) =>
        Effect.gen(function*() {
          for (const hash of hostile) {
            yield* expectOutcome(cache.ensure({ datasetVersionHash: hash, destDir: `${box.dest}/job` }), { fails: ["CacheError"], reason: "InvalidKey" }, `ensure ${JSON.stringify(hash)}`)
            yield* expectOutcome(cache.remove(hash), { fails: ["CacheError"], reason: "InvalidKey" }, `remove ${JSON.stringify(hash)}`)
          }
        })
      )
      assert.isFalse(yield* fs.exists(`${box.dest}/job`))
      assert.deepStrictEqual((yield* fs.readDirectory(cacheDir)).filter((n) => !n.startsWith(".")), [])
      yield* assertVictimIntact
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("an entry planted as a symlink to an incomplete tree outside: replaced by a real download, target untouched", () =>
    Effect.gen(function*() {
      const { assertVictimIntact, box, cacheDir, fs, victim, withCache } = yield* cacheHarness
      yield* fs.remove(`${victim}/.complete`)
      yield* fs.symlink(victim, `${cacheDir}/${keyA}`)
      const view = yield* withCache((cache) => cache.ensure({ destDir: `${box.dest}/job` }))
      assert.strictEqual(yield* fs.readFileString(`${view}/images/a.jpg`), "AAAA")
      assert.isFalse((yield* Effect.either(fs.readLink(`${cacheDir}/${keyA}`)))._tag === "Right", "the entry is a real directory now")
      yield* fs.writeFileString(`${victim}/.complete`, marker)
      yield* assertVictimIntact
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("an entry planted as a symlink to a 'complete' tree outside: prune and remove drop the link, never the target", () =>
    Effect.gen(function*() {
      const { assertVictimIntact, box, cacheDir, fs, victim, withCache } = yield* cacheHarness
      yield* fs.symlink(victim, `${cacheDir}/${keyA}`)
      yield* withCache((cache) => Effect.ignore(cache.ensure({ destDir: `${box.dest}/job` })))
      yield* assertVictimIntact
      const pruned = yield* withCache((cache) => cache.prune({ maxBytes: 0 }))
      assert.include(pruned, keyA)
      assert.isFalse(yield* fs.exists(`${cacheDir}/${keyA}`))
      yield* assertVictimIntact
      yield* fs.symlink(victim, `${cacheDir}/${keyA}`)
      yield* withCache((cache) => cache.remove(keyA))
      assert.isFalse(yield* fs.exists(`${cacheDir}/${keyA}`))
      yield* assertVictimIntact
    }).pipe(Effect.provide(NodeContext.layer)))

  for (const planted of [".locks", ".leases", `.leases/${keyA}`]) {
    it.scopedLive(`${planted} planted as a symlink outside: a typed error, no lock or lease file written through it`, () =>
      Effect.gen(function*() {
        const { assertVictimIntact, box, cacheDir, fs, victim, withCache } = yield* cacheHarness
        if (planted.includes("/")) yield* fs.makeDirectory(`${cacheDir}/.leases`)
        yield* fs.symlink(victim, `${cacheDir}/${planted}`)
        yield* expectOutcome(
          withCache((cache) => cache.ensure({ destDir: `${box.dest}/job` })),
          { fails: ["CacheError"], reason: "Corrupt" },
          planted
        )
        yield* assertVictimIntact
      }).pipe(Effect.provide(NodeContext.layer)))
  }

  it.scopedLive("symlinks planted inside an entry, as the metadata file or as a leftover download: removal never follows them", () =>
    Effect.gen(function*() {
      const { assertVictimIntact, box, cacheDir, fs, victim, withCache } = yield* cacheHarness
      yield* fs.symlink(`${victim}/metadata.json`, `${cacheDir}/.cache_metadata.json`)
      yield* fs.symlink(victim, `${cacheDir}/.tmp-${keyA}-planted`)
      yield* withCache((cache) => cache.ensure({ destDir: `${box.dest}/job` }))
      yield* assertVictimIntact
      assert.isFalse(yield* fs.exists(`${cacheDir}/.tmp-${keyA}-planted`))
      yield* fs.symlink(victim, `${cacheDir}/${keyA}/images/evil-dir`)
      yield* fs.symlink(`${victim}/images/precious.jpg`, `${cacheDir}/${keyA}/images/evil.jpg`)
      const pruned = yield* withCache((cache) => cache.prune({ maxBytes: 0 }))
      assert.deepStrictEqual(pruned, [keyA])
      yield* assertVictimIntact
      yield* withCache((cache) => cache.ensure({ destDir: `${box.dest}/job2` }))
      yield* fs.symlink(victim, `${cacheDir}/${keyA}/images/evil-dir`)
      assert.isTrue(yield* withCache((cache) => cache.remove(keyA)))
      yield* assertVictimIntact
    }).pipe(Effect.provide(NodeContext.layer)))
})
