import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { fileURLToPath } from "node:url"
import * as YAML from "yaml"
import { Converter, type ConvertOptions, ConverterTest } from "../src/Converter.js"
import type { DatasetError } from "../src/Errors.js"

const fixtures = fileURLToPath(new URL("./fixtures/datasets", import.meta.url))

/** Copies a fixture dataset into a fresh temp dir and returns its path. */
const copyFixture = (name: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.join(yield* fs.makeTempDirectoryScoped(), name)
    yield* fs.copy(path.join(fixtures, name), dir)
    return dir
  })

const read = (file: string) => Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(file))
const write = (file: string, text: string) => Effect.flatMap(FileSystem.FileSystem, (fs) => fs.writeFileString(file, text))
const exists = (file: string) => Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(file))

const convert = (options: ConvertOptions) => Effect.flatMap(Converter, (c) => c.convert(options))
const convertError = (options: ConvertOptions) =>
  convert(options).pipe(Effect.flip) as Effect.Effect<DatasetError, never, Converter>

layer(Layer.provideMerge(Converter.layer, NodeContext.layer))("Converter", (it) => {
  describe("DICE → YOLO", () => {
    it.scoped("a warning names each class with no object in the train split, whatever the order of the images", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        yield* fs.makeDirectory(`${dir}/images`)
        // Train images first (every class but "rare" and "absent" seen at once), then val.
        const classOf = (i: number) => (i < 6 ? ["cat", "dog"][i % 2]! : i === 7 ? "rare" : "dog")
        const images = Array.from({ length: 9 }, (_, i) => ({
          id: i + 1,
          file_name: `img${i}.jpg`,
          width: 100,
          height: 100,
          split: i < 6 ? "train" : "val",
          annotations: [{ class_name: classOf(i), bbox: [10, 10, 20, 20] }]
        }))
        for (const image of images) yield* fs.writeFileString(`${dir}/images/${image.file_name}`, "")
        const classes = ["cat", "dog", "rare", "absent"].map((name, i) => ({ id: i + 1, name }))
        yield* fs.writeFileString(`${dir}/annotations_detection.json`, JSON.stringify({ classes, images }))
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(report.warnings).toEqual([
          `class "rare" has no object in the train split`,
          `class "absent" has no object in the train split`
        ])
      }))

    it.scoped("nested detection: clipped normalized boxes, class order, every skip counted, splits", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(report.classes).toEqual(["cat", "dog: \"good\""])
        expect(report.images).toBe(3)
        expect(report.objects).toBe(3)
        expect(report.negatives).toBe(1)
        expect(report.splits).toEqual({ train: 1, val: 1, test: 1 })
        expect(report.warnings).toEqual([])
        expect(report.trainerInput).toEqual({ kind: "dataYaml", path: `${dir}/data.yaml` })
        expect(report.skipped).toEqual({
          duplicate: 1,
          background: 1,
          unknown_category: 1,
          crowd: 1,
          no_bbox: 1,
          outside_image: 1,
          degenerate_box: 1
        })
        expect(yield* read(`${dir}/labels/a/img001.txt`)).toBe(
          "0 0.175000 0.400000 0.250000 0.400000\n1 0.875000 0.750000 0.250000 0.500000"
        )
        expect(yield* read(`${dir}/labels/img002.txt`)).toBe("")
        expect(yield* read(`${dir}/labels/img003.txt`)).toBe("1 0.500000 0.500000 1.000000 1.000000")
        expect(yield* read(`${dir}/train.txt`)).toBe(`./images/a/img001.jpg\n`)
        expect(yield* read(`${dir}/val.txt`)).toBe(`./images/img002.png\n`)
        expect(yield* read(`${dir}/test.txt`)).toBe(`./images/img003.jpg\n`)
        const yaml = YAML.parse(yield* read(`${dir}/data.yaml`))
        expect(yaml).toEqual({
          train: "train.txt",
          val: "val.txt",
          test: "test.txt",
          nc: 2,
          names: ["cat", "dog: \"good\""]
        })
        expect(report.outputs).toContain(`${dir}/data.yaml`)
        expect(report.outputs).toContain(`${dir}/labels`)
      }))

    it.scoped("flat segmentation: images outside an images folder are linked, polygons only", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("flat-segmentation")
        const fs = yield* FileSystem.FileSystem
        yield* write(`${dir}/labels.cache`, "stale")
        // Ultralytics' cache of the label folder labels/JPEGImages sits next to it.
        yield* fs.makeDirectory(`${dir}/labels`)
        yield* write(`${dir}/labels/JPEGImages.cache`, "stale")
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(report.taskType).toBe("segmentation")
        expect(report.classes).toEqual(["road", "car"])
        // The RLE mask of y.jpg is no polygon: skipped in YOLO (counted), never a rectangle.
        expect(report.skipped).toEqual({ unknown_image: 1, rle_mask: 1 })
        // 2 images at 0.8/0.2: floor(1.6) = 1 train, the remainder to val; no unrequested test split.
        expect(report.splits).toEqual({ train: 1, val: 1, test: 0 })
        expect(yield* fs.readLink(`${dir}/images/JPEGImages/x.jpg`)).toBe(`${dir}/JPEGImages/x.jpg`)
        const x = (yield* read(`${dir}/labels/JPEGImages/x.txt`)).split("\n")
        expect(x[0]).toBe("0 0.100000 0.100000 0.400000 0.100000 0.400000 0.400000 0.100000 0.400000")
        expect(x[1]!.split(" ")).toHaveLength(1 + 2 * (3 + 4 + 2))
        expect(yield* read(`${dir}/labels/JPEGImages/y.txt`)).toBe(
          "0 0.000000 0.000000 0.200000 0.000000 0.200000 0.200000 0.000000 0.200000"
        )
        const listed: Array<string> = []
        for (const split of ["train", "val"]) listed.push(...(yield* read(`${dir}/${split}.txt`)).split("\n"))
        assert.isFalse(yield* exists(`${dir}/test.txt`))
        expect(listed.filter((l) => l !== "").sort()).toEqual([
          `./images/JPEGImages/x.jpg`,
          `./images/JPEGImages/y.jpg`
        ])
        assert.isFalse(yield* exists(`${dir}/labels.cache`))
        assert.isFalse(yield* exists(`${dir}/labels/JPEGImages.cache`))
      }))

    it.scoped("nested pose: keypoints normalized, kpt_shape in data.yaml", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-pose")
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(report.taskType).toBe("pose")
        expect(yield* read(`${dir}/labels/p1.txt`)).toBe(
          "0 0.350000 0.350000 0.500000 0.500000 0.200000 0.150000 2.000000 0.400000 0.300000 1.000000 0.000000 0.000000 0.000000"
        )
        expect(YAML.parse(yield* read(`${dir}/data.yaml`)).kpt_shape).toEqual([3, 3])
      }))

    it.scoped("nested classification: an ImageFolder tree of links", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-classification")
        const fs = yield* FileSystem.FileSystem
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(report.objects).toBe(5)
        expect(report.skipped).toEqual({ no_class: 1 })
        expect((yield* fs.readDirectory(`${dir}/train/dog`)).sort()).toEqual(["c1.jpg", "c3.jpg"])
        expect(yield* fs.readDirectory(`${dir}/train/cat`)).toEqual(["c2.jpg"])
        expect((yield* fs.readDirectory(`${dir}/val`)).sort()).toEqual(["cat", "dog"])
        expect(yield* fs.readLink(`${dir}/val/dog/c5.jpg`)).toBe(`${dir}/images/c5.jpg`)
        expect(report.trainerInput).toEqual({ kind: "directory", path: dir })
        // A second run replaces the tree instead of mixing old and new.
        yield* convert({ datasetDir: dir, from: "dice", to: "yolo", split: { assignments: { 1: "val", 2: "val", 3: "train", 4: "train" } } })
        expect(yield* fs.readDirectory(`${dir}/train/cat`)).toEqual(["c4.jpg"])
        expect(yield* fs.readDirectory(`${dir}/train/dog`)).toEqual(["c3.jpg"])
        expect((yield* fs.readDirectory(`${dir}/val/dog`)).sort()).toEqual(["c1.jpg", "c5.jpg"])
      }))

    it.scoped("rerun replaces the previous labels (no stale files left)", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        yield* write(`${dir}/labels/stale.txt`, "0 0.5 0.5 0.1 0.1")
        yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        assert.isFalse(yield* exists(`${dir}/labels/stale.txt`))
        assert.isTrue(yield* exists(`${dir}/labels/a/img001.txt`))
      }))
  })

  describe("LabelMe → YOLO", () => {
    it.scoped("detection: rectangles in any corner order, polygons as boxes, LabelMe files kept", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("labelme-detection")
        const report = yield* convert({ datasetDir: dir, from: "labelme", to: "yolo" })
        expect(report.classes).toEqual(["bolt", "nut"])
        expect(report.skipped).toEqual({ unknown_category: 1, unsupported_shape_circle: 1 })
        expect(yield* read(`${dir}/labels/m1.txt`)).toBe(
          "0 0.350000 0.600000 0.500000 0.400000\n1 0.100000 0.200000 0.200000 0.400000"
        )
        expect(yield* read(`${dir}/labels/m2.txt`)).toBe("")
        assert.isTrue(yield* exists(`${dir}/labels/m1.json`))
        expect(report.splits).toEqual({ train: 1, val: 1, test: 0 })
      }))

    it.scoped("classification: the point shape names the image class", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("labelme-classification")
        const fs = yield* FileSystem.FileSystem
        const report = yield* convert({ datasetDir: dir, from: "labelme", to: "yolo" })
        expect(report.taskType).toBe("classification")
        expect((yield* fs.readDirectory(`${dir}/train/defect`)).sort()).toEqual(["k1.jpg"])
        expect(yield* fs.readDirectory(`${dir}/train/ok`)).toEqual(["k2.jpg"])
        expect(yield* fs.readDirectory(`${dir}/val/defect`)).toEqual(["k3.jpg"])
      }))
  })

  describe("DICE → COCO", () => {
    it.scoped("instances files per split, ids from 1, background dropped, image root reported", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "coco" })
        expect(report.imageRoot).toBe(`${dir}/images`)
        expect(report.outputs).toEqual(["train", "val", "test", "all"].map((s) => `${dir}/annotations/instances_${s}.json`))
        const all = JSON.parse(yield* read(`${dir}/annotations/instances_all.json`))
        expect(all.categories).toEqual([
          { id: 3, name: "cat", supercategory: "animal" },
          { id: 1, name: "dog: \"good\"", supercategory: "none" }
        ])
        expect(all.images.map((i: { file_name: string }) => i.file_name)).toEqual(["a/img001.jpg", "img002.png", "img003.jpg"])
        expect(report.trainerInput).toEqual({ kind: "cocoAnnotations", path: `${dir}/annotations` })
        // The YOLO writer's objects (duplicate and outside-image boxes dropped, the same counts),
        // plus the crowd region, kept as iscrowd 1.
        expect(all.annotations.map((a: { id: number }) => a.id)).toEqual([1, 2, 3, 4])
        expect(all.annotations.map((a: { iscrowd: number }) => a.iscrowd)).toEqual([0, 0, 1, 0])
        expect(all.annotations[0]).toEqual({ id: 1, image_id: 1, category_id: 3, bbox: [10, 20, 50, 40], area: 2000, iscrowd: 0 })
        expect(report.skipped).toEqual({
          background: 1,
          unknown_category: 1,
          no_bbox: 1,
          degenerate_box: 1,
          duplicate: 1,
          outside_image: 1
        })
        const test = JSON.parse(yield* read(`${dir}/annotations/instances_test.json`))
        expect(test.annotations).toEqual([{ id: 4, image_id: 3, category_id: 1, bbox: [0, 0, 640, 480], area: 307200, iscrowd: 0 }])
      }))

    it.scoped("a rerun whose splits lose the test split removes its old file; nothing else is left in annotations/", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* copyFixture("nested-detection")
        yield* convert({ datasetDir: dir, from: "dice", to: "coco" })
        assert.isTrue(yield* exists(`${dir}/annotations/instances_test.json`))
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "coco", split: { assignments: { 3: "val" } } })
        expect(report.splits.test).toBe(0)
        expect(report.outputs).toEqual(["train", "val", "all"].map((s) => `${dir}/annotations/instances_${s}.json`))
        expect((yield* fs.readDirectory(`${dir}/annotations`)).sort()).toEqual(["instances_all.json", "instances_train.json", "instances_val.json"])
        const val = JSON.parse(yield* read(`${dir}/annotations/instances_val.json`))
        expect(val.images.map((i: { id: number }) => i.id)).toContain(3)
        expect(report.objects).toBe(4)
      }))

    it.scoped("segmentation: area computed from the polygon, RLE kept", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("flat-segmentation")
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "coco" })
        expect(report.imageRoot).toBe(dir)
        const all = JSON.parse(yield* read(`${dir}/annotations/instances_all.json`))
        expect(all.images[0].file_name).toBe("JPEGImages/x.jpg")
        expect(all.annotations[1].area).toBe(50 + 100)
        expect(all.annotations[3].segmentation).toEqual({ counts: "abc", size: [50, 100] })
      }))
  })

  describe("validateYolo", () => {
    it.scoped("a converted dataset is valid; a broken label, a missing label and a bad class are reported", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        const converter = yield* Converter
        yield* converter.convert({ datasetDir: dir, from: "dice", to: "yolo" })
        const ok = yield* converter.validateYolo(dir)
        expect(ok).toEqual({
          valid: true,
          issues: [],
          warnings: [],
          stats: {
            total_images: 3,
            total_labels: 3,
            classes: 2,
            class_distribution: { cat: 1, "dog: \"good\"": 2 },
            background_images: 1
          }
        })
        yield* write(`${dir}/labels/a/img001.txt`, "0 0.5 0.5 1.2 0.1\n5 0.5 0.5 0.1 0.1\n0 0.5")
        // An image without a label file is a background image to Ultralytics, not an issue.
        yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.remove(`${dir}/labels/img002.txt`))
        const bad = yield* converter.validateYolo(dir, { minImages: 10 })
        assert.isFalse(bad.valid)
        expect(bad.issues).toHaveLength(4)
        expect(bad.issues.join("\n")).toMatch(/coordinate outside/)
        expect(bad.issues.join("\n")).toMatch(/class index 5 out of range/)
        expect(bad.issues.join("\n")).toMatch(/malformed line/)
        expect(bad.issues.join("\n")).toMatch(/fewer than the minimum 10/)
        expect(bad.stats.background_images).toBe(2)
      }))

    it.scoped("a converted classification tree is valid; an empty, an unknown class folder and a loose image are reported", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-classification")
        const fs = yield* FileSystem.FileSystem
        const converter = yield* Converter
        yield* converter.convert({ datasetDir: dir, from: "dice", to: "yolo", taskType: "classification" })
        const ok = yield* converter.validateYolo(dir)
        expect(ok).toEqual({
          valid: true,
          issues: [],
          warnings: [],
          stats: { total_images: 5, total_labels: 5, classes: 2, class_distribution: { cat: 2, dog: 3 }, background_images: 0 }
        })

        yield* fs.remove(`${dir}/val/cat`, { recursive: true })
        yield* fs.makeDirectory(`${dir}/val/cat`)
        yield* fs.makeDirectory(`${dir}/train/bird`)
        yield* fs.copyFile(`${dir}/images/c6.jpg`, `${dir}/train/bird/c6.jpg`)
        yield* fs.copyFile(`${dir}/images/c6.jpg`, `${dir}/val/c6.jpg`)
        const bad = yield* converter.validateYolo(dir, { minImages: 10 })
        // Ultralytics counts the train folders (bird, cat, dog): 3 classes, names no longer match.
        expect(bad).toEqual({
          valid: false,
          issues: [
            "data.yaml: names (2) are not the train class folders in Ultralytics' order (sorted folder names: bird, cat, dog)",
            "train/bird: class folder not in data.yaml names",
            `val: image outside a class folder: ${dir}/val/c6.jpg`,
            "val/cat: empty class folder (no images)",
            "only 6 image(s), fewer than the minimum 10"
          ],
          warnings: [],
          stats: { total_images: 6, total_labels: 5, classes: 3, class_distribution: { bird: 1, cat: 1, dog: 3 }, background_images: 0 }
        })
        yield* fs.remove(`${dir}/val`, { recursive: true })
        expect((yield* converter.validateYolo(dir)).issues).toContain(`data.yaml: val points to missing directory ${dir}/val`)
      }))

    it.scoped("missing data.yaml", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        const result = yield* Effect.flatMap(Converter, (c) => c.validateYolo(dir))
        assert.isFalse(result.valid)
        expect(result.issues[0]).toMatch(/missing data.yaml/)
      }))
  })

  describe("bad input", () => {
    const withAnnotations = (doc: unknown) =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        yield* write(`${dir}/annotations_detection.json`, typeof doc === "string" ? doc : JSON.stringify(doc))
        return dir
      })
    const image = (extra: Record<string, unknown>) => ({ id: 1, file_name: "img002.png", width: 10, height: 10, ...extra })

    it.scoped("malformed JSON names the file", () =>
      Effect.gen(function*() {
        const dir = yield* withAnnotations("{\"images\": [")
        const error = yield* convertError({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(error.reason).toBe("InvalidJson")
        expect(error.file).toBe(`${dir}/annotations_detection.json`)
      }))

    it.scoped("missing width, zero width and a bad bbox give the JSON path", () =>
      Effect.gen(function*() {
        const cases: Array<[unknown, string]> = [
          [{ classes: [], images: [image({}), { id: 2, file_name: "x.jpg", height: 5 }] }, "images[1].width"],
          [{ classes: [], images: [image({ width: 0 })] }, "images[0].width"],
          [{ classes: [], images: [image({ annotations: [{ class_id: 0, bbox: [1, 2, 3] }] })] }, "images[0].annotations[0].bbox[3]"],
          [{ classes: [], images: [image({ annotations: [{ class_id: 0, bbox: { x: 1 } }] })] }, "images[0].annotations[0].bbox"],
          [{ classes: [], images: [image({ annotations: [{ class_id: 0, bbox: [1, 2, "3", 4] }] })] }, "images[0].annotations[0].bbox[2]"],
          [{ categories: [], images: [image({})], annotations: [{ image_id: 1, bbox: null, area: "x" }] }, "annotations[0].area"]
        ]
        for (const [doc, jsonPath] of cases) {
          const dir = yield* withAnnotations(doc)
          const error = yield* convertError({ datasetDir: dir, from: "dice", to: "yolo" })
          expect(error.reason).toBe("InvalidShape")
          expect(error.jsonPath).toBe(jsonPath)
          expect(error.message).toContain(jsonPath)
        }
      }))

    it.scoped("all missing images in one error, and nothing on disk is touched", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        const before = yield* read(`${dir}/labels/a/img001.txt`)
        const fs = yield* FileSystem.FileSystem
        yield* fs.remove(`${dir}/images/img002.png`)
        yield* fs.remove(`${dir}/images/img003.jpg`)
        const error = yield* convertError({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(error.reason).toBe("MissingImages")
        expect(error.paths).toEqual([
          `${dir}/images/img002.png`,
          `${dir}/images/img002.png`,
          `${dir}/img002.png`,
          `${dir}/images/img003.jpg`,
          `${dir}/images/img003.jpg`,
          `${dir}/img003.jpg`
        ])
        expect(error.message).toMatch(/2 of 3 image/)
        expect(yield* read(`${dir}/labels/a/img001.txt`)).toBe(before)
      }))

    it.scoped("an absent annotation file lists the names looked for", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.remove(`${dir}/annotations_detection.json`))
        const error = yield* convertError({ datasetDir: dir, from: "dice", to: "yolo", taskType: "object_detection" })
        expect(error.reason).toBe("AnnotationsNotFound")
        expect(error.paths).toEqual([`${dir}/annotations_detection.json`, `${dir}/annotations.json`])
        const labelme = yield* convertError({ datasetDir: dir, from: "labelme", to: "yolo" })
        expect(labelme.paths).toEqual([`${dir}/label_map.json`])
        // Every alias the job context accepts names its task's file (one alias table for both).
        const keypoint = yield* convertError({ datasetDir: dir, from: "dice", to: "yolo", taskType: "Keypoint" })
        expect(keypoint.paths).toEqual([`${dir}/annotations_pose.json`, `${dir}/annotations.json`])
        const unknown = yield* convertError({ datasetDir: dir, from: "dice", to: "yolo", taskType: "open-vocabulary" })
        expect(unknown.paths).toEqual([`${dir}/annotations_open_vocabulary.json`, `${dir}/annotations.json`])
      }))

    it.scoped("a file name climbing out of the dataset is refused", () =>
      Effect.gen(function*() {
        const dir = yield* withAnnotations({ classes: [], images: [image({ file_name: "../../etc/passwd" })] })
        const error = yield* convertError({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(error.reason).toBe("PathEscape")
      }))
  })
})

layer(Layer.provideMerge(Converter.layerTest(), NodeContext.layer))("Converter.layerTest()", (it) => {
  it.scoped("records each successful conversion with its options and report", () =>
    Effect.gen(function*() {
      const dir = yield* copyFixture("nested-detection")
      const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
      yield* convertError({ datasetDir: `${dir}/missing`, from: "dice", to: "yolo" })
      const runs = yield* Effect.flatMap(ConverterTest, (t) => t.conversions)
      expect(runs).toEqual([{ options: { datasetDir: dir, from: "dice", to: "yolo" }, report }])
      assert.isTrue(yield* exists(`${dir}/data.yaml`))
    }))
})
