/**
 * Golden outputs: every fixture dataset converted to YOLO and to COCO must produce exactly
 * the files committed under `test/fixtures/expected/` (byte for byte, the dataset directory
 * written as `$DIR`), plus a seeded synthetic dataset of both DICE shapes with every
 * annotation kind, pinned by digest. Performance work on the converter must not change a
 * byte of any output; a deliberate change of a writing rule regenerates the files with
 * `UPDATE_GOLDEN=1 npx vitest run test/ConverterGolden.test.ts` and shows up in review.
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { createHash } from "node:crypto"
import { fileURLToPath } from "node:url"
import { Converter, type ConvertOptions, makeConverter } from "../src/Converter.js"
import { syntheticDice } from "./support/syntheticDice.js"

const fixtures = fileURLToPath(new URL("./fixtures/datasets", import.meta.url))
const expectedDir = fileURLToPath(new URL("./fixtures/expected", import.meta.url))
const update = process.env["UPDATE_GOLDEN"] === "1"

/** What a conversion left in the dataset directory: new files' text, links' targets, or the error. */
type Outcome = Readonly<Record<string, string>>

/** Every file and link under `dir` not in `before`, `dir` replaced by `$DIR` in names and contents. */
const snapshot = (dir: string, before: ReadonlySet<string>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const out: Record<string, string> = {}
    const entries = (yield* fs.readDirectory(dir, { recursive: true })).map((e) => e.split(path.sep).join("/")).sort()
    for (const entry of entries) {
      if (before.has(entry)) continue
      const full = path.join(dir, entry)
      const link = yield* Effect.option(fs.readLink(full))
      if (link._tag === "Some") {
        out[entry] = `-> ${link.value.split(dir).join("$DIR")}`
        continue
      }
      const info = yield* fs.stat(full)
      if (info.type === "File") out[entry] = (yield* fs.readFileString(full)).split(dir).join("$DIR")
    }
    return out
  })

/** Converts a copy of `source` and snapshots what it wrote (or the error's reason and detail). */
const convertCopy = (source: string, options: Omit<ConvertOptions, "datasetDir">) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.join(yield* fs.makeTempDirectoryScoped(), "ds")
    yield* fs.copy(source, dir)
    const before = new Set((yield* fs.readDirectory(dir, { recursive: true })).map((e) => e.split(path.sep).join("/")))
    const result = yield* Effect.either(Effect.flatMap(Converter, (c) => c.convert({ ...options, datasetDir: dir })))
    if (result._tag === "Left") return { error: `${result.left.reason}: ${result.left.detail}` } as Outcome
    const { outputs: _outputs, ...report } = result.right
    return {
      ...(yield* snapshot(dir, before)),
      "(report)": JSON.stringify(report, null, 1).split(dir).join("$DIR")
    } as Outcome
  })

/** Compares with (or, with UPDATE_GOLDEN=1, writes) the committed expected outcome. */
const checkGolden = (name: string, outcome: Outcome) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const file = `${expectedDir}/${name}.json`
    if (update) {
      yield* fs.makeDirectory(expectedDir, { recursive: true })
      yield* fs.writeFileString(file, JSON.stringify(outcome, null, 1) + "\n")
    }
    const expected = JSON.parse(yield* fs.readFileString(file)) as Outcome
    expect(outcome).toStrictEqual(expected)
  })

const digest = (outcome: Outcome): string => createHash("sha256").update(JSON.stringify(outcome)).digest("hex")

const cases: ReadonlyArray<readonly [string, "dice" | "labelme"]> = [
  ["nested-detection", "dice"],
  ["flat-segmentation", "dice"],
  ["nested-classification", "dice"],
  ["nested-pose", "dice"],
  ["labelme-detection", "labelme"],
  ["labelme-classification", "labelme"]
]

/**
 * Digests of the synthetic datasets' outcomes, recorded with the converter without the
 * performance work of issue #17 (the writing rules of #16; regenerate deliberately as
 * described above).
 */
const syntheticDigests: Readonly<Record<string, string>> = {
  "synthetic-nested-detection--yolo":
    "8726c5fc2119c704d7a593af83357b5ce0394d331e950427520a3a96282a0736",
  "synthetic-nested-detection--coco":
    "e78f80976301b8e39a2e2ad3f5f72e380f1fe96fd677ca246f2f72abd0a396c7",
  "synthetic-flat-segmentation--yolo":
    "f879d1b3c03f1c495017c039a767b09f2f30b85d2d870ef33340f49daf00bd2d",
  "synthetic-flat-segmentation--coco":
    "99be49217d4750d6fa45b2fee6aa406a5b07c793020b22686ebae3b87c9d4261",
  "synthetic-nested-pose--yolo":
    "0be4a598d3fbe6ad1acdd553cd848a92f73194db2e06fa0108220006392f9b4b",
  "synthetic-flat-pose--coco":
    "8bf60c8b5fc7fe49c5cabfa440cb554e2082f9f10936e4b038be7b048440b919"
}

layer(Layer.provideMerge(Converter.layer, NodeContext.layer))("Converter golden outputs", (it) => {
  describe("fixtures", () => {
    for (const [name, from] of cases) {
      for (const to of ["yolo", "coco"] as const) {
        it.scoped(`${name} → ${to}`, () =>
          Effect.gen(function*() {
            const outcome = yield* convertCopy(`${fixtures}/${name}`, { from, to })
            yield* checkGolden(`${name}--${to}`, outcome)
          }))
      }
    }
  })

  describe("synthetic datasets (seeded, every annotation kind and edge case)", () => {
    for (const key of Object.keys(syntheticDigests)) {
      const [, shape, task, to] = /^synthetic-(nested|flat)-(\w+)--(yolo|coco)$/.exec(key)!
      it.scoped(key, () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* fs.makeTempDirectoryScoped()
          yield* Effect.promise(() => syntheticDice(dir, { images: 300, shape: shape as "nested" | "flat", task: task!, seed: 7 }))
          const outcome = yield* convertCopy(dir, { from: "dice", to: to as "yolo" | "coco" })
          expect(outcome["error"]).toBeUndefined()
          if (update) console.log(`${key}: ${digest(outcome)}`)
          else expect(digest(outcome)).toBe(syntheticDigests[key])
        }))
    }
  })
})

/** The converter that runs every conversion on its worker thread. */
const OnWorker = Layer.provideMerge(Layer.effect(Converter, makeConverter({ fromBytes: 0 })), NodeContext.layer)

layer(OnWorker)("Converter golden outputs on the worker thread", (it) => {
  it.scoped("a synthetic dataset (labels written while parsing) and a LabelMe fixture: the same bytes as in the caller's thread", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* Effect.promise(() => syntheticDice(dir, { images: 300, shape: "nested", task: "detection", seed: 7 }))
      const outcome = yield* convertCopy(dir, { from: "dice", to: "yolo" })
      expect(digest(outcome)).toBe(syntheticDigests["synthetic-nested-detection--yolo"])
      yield* checkGolden("labelme-detection--coco", yield* convertCopy(`${fixtures}/labelme-detection`, { from: "labelme", to: "coco" }))
    }))

  it.scoped("the platform's split_config and a task alias cross the thread boundary and are honoured as in the caller's thread", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* Effect.promise(() => syntheticDice(dir, { images: 300, shape: "nested", task: "detection", seed: 7 }))
      const options: Omit<ConvertOptions, "datasetDir"> = {
        from: "dice",
        to: "yolo",
        taskType: "object_detection",
        split: { method: "custom", ratio: [0.6, 0.3, 0.1], seed: 5, custom_splits: { "1003": "test", "42": "val" }, exclude_images: ["1000", 1001] }
      }
      const onWorker = yield* convertCopy(dir, options)
      const inProcess = yield* convertCopy(dir, options).pipe(Effect.provide(Converter.layerInProcess))
      expect(onWorker["error"]).toBeUndefined()
      expect(onWorker).toStrictEqual(inProcess)
      const report = JSON.parse(onWorker["(report)"]!) as { images: number; taskType: string; warnings: Array<string> }
      expect(report.images).toBe(298)
      expect(report.taskType).toBe("detection")
      expect(report.warnings).toContain("split_config.custom_splits names 1 image(s) the dataset does not have: 42")
      // Image id 1000 + i is img_{i}: 1003 is pinned to test, 1000 and 1001 are left out.
      expect(onWorker["test.txt"]).toMatch(/\/img_3\./)
      const lists = ["train.txt", "val.txt", "test.txt"].map((name) => onWorker[name] ?? "").join("\n")
      expect(lists).not.toMatch(/\/img_[01]\./)
    }))

  it.scoped("a DatasetError crosses the thread boundary intact (reason, file, JSON path, detail)", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${dir}/annotations_detection.json`, JSON.stringify({
        classes: [],
        images: [{ id: 1, file_name: "a.jpg", width: 4, height: 4, annotations: [{ class_id: 0, bbox: [1, 2, "3", 4] }] }]
      }))
      const error = yield* Effect.flip(Effect.flatMap(Converter, (c) => c.convert({ datasetDir: dir, from: "dice", to: "yolo" })))
      expect(error._tag).toBe("DatasetError")
      expect(error.reason).toBe("InvalidShape")
      expect(error.file).toBe(`${dir}/annotations_detection.json`)
      expect(error.jsonPath).toBe("images[0].annotations[0].bbox[2]")
      expect(error.message).toContain("images[0].annotations[0].bbox[2]")
    }))

  it.scoped("the caller's event loop keeps turning; interrupting the caller stops the worker and leaves nothing half-written", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* Effect.promise(() => syntheticDice(dir, { images: 3000, shape: "nested", task: "detection", seed: 3 }))
      const before = (yield* fs.readDirectory(dir)).sort()
      let ticks = 0
      const timer = setInterval(() => ticks++, 1)
      const fiber = yield* Effect.fork(Effect.flatMap(Converter, (c) => c.convert({ datasetDir: dir, from: "dice", to: "yolo" })))
      // Wait until the worker has started writing (its staging directory appears), then interrupt.
      const staged = yield* Effect.promise(async () => {
        for (let i = 0; i < 6000; i++) {
          const names = await fs.readDirectory(dir).pipe(Effect.runPromise)
          if (names.some((n) => n.startsWith(".labels"))) return true
          await new Promise((r) => setTimeout(r, 5))
        }
        return false
      })
      clearInterval(timer)
      yield* Fiber.interrupt(fiber)
      expect(staged).toBe(true)
      // Timer callbacks kept running while the worker parsed and decoded (in this thread they could not).
      expect(ticks).toBeGreaterThan(5)
      const after = (yield* fs.readDirectory(dir)).sort()
      expect(after.filter((n) => n.startsWith("."))).toEqual([])
      // Either the conversion was stopped (nothing new) or it had just finished (all of it).
      if (!after.includes("data.yaml")) expect(after).toEqual(before)
      else expect(after).toEqual(expect.arrayContaining([...before, "labels", "train.txt", "val.txt", "data.yaml"]))
    }))
})
