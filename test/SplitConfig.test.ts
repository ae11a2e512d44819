/**
 * The platform's `CONFIG.split_config` (both shapes) read by the converter directly, and
 * by `TrainerSdk.convertDataset` from the job's `CONFIG`.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { sampleDiceDataset } from "../examples/sampleDataset.js"
import { TrainerSdk } from "../src/index.js"
import { planPlatformSplit } from "../src/internal/splitConfig.js"

const images = [1, 2, 3, 4, 5, 6].map((id) => ({ id }))

describe("planPlatformSplit", () => {
  it("dataset level (manual): string keys name integer ids, valid/validation mean val, the rest by default_ratio", () => {
    const plan = Either.getOrThrow(planPlatformSplit({
      method: "manual",
      default_ratio: [0.7, 0.2, 0.1],
      seed: 7,
      splits: { "1": "train", "2": "valid", "3": "validation", " 4 ": "test" }
    }, images))
    assert.deepStrictEqual(plan.split, {
      assignments: { 1: "train", 2: "val", 3: "val", 4: "test" },
      ratios: { train: 0.7, val: 0.2, test: 0.1 },
      seed: 7
    })
    assert.isFalse(plan.ignoreImageSplits)
    assert.deepStrictEqual(plan.warnings, [])
  })

  it("job level (custom): custom_splits, ratio and exclude_images; ids the dataset lacks are reported", () => {
    const plan = Either.getOrThrow(planPlatformSplit({
      method: "custom",
      ratio: [0.5, 0.5],
      custom_splits: { "5": "val", "99": "train", "cat": "train" },
      exclude_images: ["6", 42]
    }, images))
    assert.deepStrictEqual(plan.split.assignments, { 5: "val" })
    assert.deepStrictEqual([...plan.exclude], [6])
    assert.deepStrictEqual(plan.warnings, [
      "split_config.custom_splits names 2 image(s) the dataset does not have: 99, cat",
      "split_config.exclude_images names 1 image(s) the dataset does not have: 42"
    ])
  })

  it("auto splits every image by the ratios; use_dataset keeps the images' own splits", () => {
    assert.isTrue(Either.getOrThrow(planPlatformSplit({ method: "auto", default_ratio: [0.8, 0.2], seed: 42 }, images)).ignoreImageSplits)
    const useDataset = Either.getOrThrow(planPlatformSplit({ method: "use_dataset" }, images))
    assert.isFalse(useDataset.ignoreImageSplits)
    assert.isUndefined(useDataset.split.assignments)
  })

  it("what cannot be honoured is refused, naming the field", () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ method: "stratified" }, "split_config.method"],
      [{ method: "manual", splits: { "1": "holdout" } }, "split_config.splits[\"1\"]"],
      [{ method: "auto", default_ratio: [0.8] }, "split_config.default_ratio"],
      [{ method: "custom", ratio: [0.8, -0.2] }, "split_config.ratio"],
      [{ method: "auto", seed: 1.5 }, "split_config.seed"],
      [{ method: "custom", exclude_images: "6" }, "split_config.exclude_images"]
    ]
    for (const [config, field] of cases) {
      const result = planPlatformSplit(config as never, images)
      assert.isTrue(Either.isLeft(result), JSON.stringify(config))
      expect(Either.isLeft(result) ? result.left : "").toContain(field)
    }
  })
})

/** The sample dataset (6 images: 1-5 train, 6 val by their own split field) in a temp dir. */
const sampleDir = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const dir = yield* fs.makeTempDirectoryScoped()
  yield* fs.makeDirectory(`${dir}/images`)
  for (const file of sampleDiceDataset()) yield* fs.writeFile(`${dir}/${file.key}`, file.bytes)
  return dir
})

const readList = (dir: string, name: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    Effect.map(fs.readFileString(`${dir}/${name}`), (text) => text.split("\n").filter((l) => l !== "").map((l) => l.replace(/^.*\//, ""))))

describe("convertDataset with the platform's split_config", () => {
  it.scoped("the converter takes either shape directly: assignments, exclusions and warnings", () =>
    Effect.gen(function*() {
      const dir = yield* sampleDir
      const sdk = yield* Effect.provide(TrainerSdk, TrainerSdk.layerTest())
      const report = yield* sdk.convertDataset({
        datasetDir: dir,
        from: "dice",
        to: "yolo",
        split: { method: "custom", ratio: [0.8, 0.2], custom_splits: { "1": "val", "6": "train", "77": "val" }, exclude_images: ["2"] }
      })
      assert.strictEqual(report.images, 5)
      expect(report.warnings).toContain("split_config.custom_splits names 1 image(s) the dataset does not have: 77")
      const val = yield* readList(dir, "val.txt")
      const train = yield* readList(dir, "train.txt")
      assert.include(val, "img_001.png")
      assert.include(train, "img_006.png")
      assert.notInclude([...train, ...val], "img_002.png")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("TrainerSdk.convertDataset uses CONFIG.split_config by default; a bad one is a DatasetError naming it", () =>
    Effect.gen(function*() {
      const dir = yield* sampleDir
      const manual = { method: "manual", default_ratio: [0.8, 0.2], seed: 42, splits: { "6": "train", "1": "val" } }
      const sdk = yield* Effect.provide(TrainerSdk, TrainerSdk.layerTest({ job: { config: { split_config: manual } } }))
      const report = yield* sdk.convertDataset({ datasetDir: dir, from: "dice", to: "yolo" })
      assert.deepStrictEqual(report.splits, { train: 5, val: 1, test: 0 })
      assert.deepStrictEqual(yield* readList(dir, "val.txt"), ["img_001.png"])

      const bad = yield* Effect.provide(TrainerSdk, TrainerSdk.layerTest({ job: { config: { split_config: { method: "manual", splits: { "1": "holdout" } } } } }))
      const error = yield* Effect.flip(bad.convertDataset({ datasetDir: dir, from: "dice", to: "yolo" }))
      assert.strictEqual(error._tag, "DatasetError")
      expect(error.message).toContain("split_config")
    }).pipe(Effect.provide(NodeContext.layer)))
})
