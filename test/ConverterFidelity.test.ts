/**
 * One test per case of issue #16 ("Conversions that Ultralytics, pycocotools and MMDetection
 * read exactly as annotated"): each converts or validates a dataset the way a consumer would
 * meet it and checks what the consumer would read.
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { fileURLToPath } from "node:url"
import * as YAML from "yaml"
import { Converter, type ConvertOptions } from "../src/Converter.js"
import type { DatasetError } from "../src/Errors.js"
import { formatConversionReport } from "../src/internal/cliFormat.js"
import { readYaml11 } from "../src/internal/yaml11.js"
import { classFolderName, classNameOfFolder } from "../src/internal/yoloLabels.js"
import { pngBytes } from "./support/images.js"

const fixtures = fileURLToPath(new URL("./fixtures/datasets", import.meta.url))

const copyFixture = (name: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.join(yield* fs.makeTempDirectoryScoped(), name)
    yield* fs.copy(path.join(fixtures, name), dir)
    return dir
  })

interface GenImage {
  readonly file: string
  readonly width?: number
  readonly height?: number
  readonly split?: string
  readonly annotations?: ReadonlyArray<Record<string, unknown>>
  readonly annotation?: Record<string, unknown>
}

/** A nested DICE dataset in a temp dir, with a real PNG of the annotated size per image. */
const dataset = (
  task: string,
  classes: ReadonlyArray<string | Record<string, unknown>>,
  images: ReadonlyArray<GenImage>
) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped()
    yield* fs.makeDirectory(`${dir}/images`)
    const doc = {
      task_type: task,
      classes: classes.map((c, i) => (typeof c === "string" ? { id: i + 1, name: c } : { id: i + 1, ...c })),
      images: images.map((img, i) => ({
        id: i + 1,
        file_name: img.file,
        width: img.width ?? 40,
        height: img.height ?? 20,
        ...(img.split ? { split: img.split } : {}),
        ...(img.annotations ? { annotations: img.annotations } : {}),
        ...(img.annotation ? { annotation: img.annotation } : {})
      }))
    }
    yield* fs.writeFileString(`${dir}/annotations_${task}.json`, JSON.stringify(doc))
    for (const img of images) yield* fs.writeFile(`${dir}/images/${img.file}`, pngBytes(img.width ?? 40, img.height ?? 20))
    return dir
  })

const read = (file: string) => Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(file))
const readJson = (file: string) => Effect.map(read(file), (text) => JSON.parse(text))
const convert = (options: ConvertOptions) => Effect.flatMap(Converter, (c) => c.convert(options))
const convertError = (options: ConvertOptions) =>
  convert(options).pipe(Effect.flip) as Effect.Effect<DatasetError, never, Converter>

layer(Layer.provideMerge(Converter.layer, NodeContext.layer))("issue #16 cases", (it) => {
  describe("1. class names read back as written under YAML 1.1 (PyYAML)", () => {
    const tricky = ["yes", "no", "on", "off", "=", "<<", "1:20", "1_000", "0b101", "2020-01-01", "~", "n1", "a: b", "\u0085x\u2028"]

    it.scoped("data.yaml names survive PyYAML's resolvers; validate accepts the file", () =>
      Effect.gen(function*() {
        const dir = yield* dataset("detection", tricky, [
          { file: "a.png", split: "train", annotations: tricky.map((_, i) => ({ class_id: i + 1, bbox: [i, 1, 2, 2] })) },
          { file: "b.png", split: "val", annotations: tricky.map((_, i) => ({ class_id: i + 1, bbox: [i, 3, 2, 2] })) }
        ])
        yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        const text = yield* read(`${dir}/data.yaml`)
        const reading = readYaml11(text)
        expect(reading.issues).toEqual([])
        expect(reading.names).toEqual(tricky)
        expect(YAML.parse(text, { version: "1.1" }).names).toEqual(tricky)
        const validation = yield* Effect.flatMap(Converter, (c) => c.validateYolo(dir))
        expect(validation.issues).toEqual([])
      }))

    it.scoped("validate reads data.yaml as YAML 1.1: unquoted yes, 1:20 and = are issues", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        const fs = yield* FileSystem.FileSystem
        yield* fs.writeFileString(`${dir}/data.yaml`, "train: train.txt\nval: val.txt\nnc: 2\nnames:\n  - yes\n  - 1:20\n")
        const bad = yield* Effect.flatMap(Converter, (c) => c.validateYolo(dir))
        expect(bad.issues).toEqual([
          "data.yaml: class 0 \"yes\" reads as True under YAML 1.1 (PyYAML, Ultralytics): quote it",
          "data.yaml: class 1 \"1:20\" reads as 80 under YAML 1.1 (PyYAML, Ultralytics): quote it"
        ])
        yield* fs.writeFileString(`${dir}/data.yaml`, "train: train.txt\nval: val.txt\nnc: 2\nnames: [cat, =]\n")
        const unloadable = yield* Effect.flatMap(Converter, (c) => c.validateYolo(dir))
        expect(unloadable.issues[0]).toMatch(/class 1 "=" makes the file unloadable by PyYAML/)
      }))
  })

  describe("1. (reading) a data.yaml PyYAML cannot load", () => {
    it.effect("an alias bomb is an issue, not a crash", () =>
      Effect.sync(() => {
        const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
        for (let i = 1; i < 6; i++) levels.push(`l${i}: &l${i} [${Array(9).fill(i === 1 ? "*a" : `*l${i - 1}`).join(", ")}]`)
        const reading = readYaml11(`${levels.join("\n")}\nnames: [cat]\n`)
        expect(reading.issues).toEqual([expect.stringMatching(/^data.yaml: not loadable YAML/)])
        expect(reading.doc).toEqual({})
      }))

    it.effect("names as a mapping are read by class index; keys must be 0..n-1", () =>
      Effect.sync(() => {
        expect(readYaml11("names: {1: dog, 0: cat}\n")).toEqual({ doc: { names: { 0: "cat", 1: "dog" } }, names: ["cat", "dog"], issues: [] })
        expect(readYaml11("names: {0: cat, 2: dog}\n").issues).toEqual(["data.yaml: names keys are not the class indices 0..n-1"])
      }))
  })

  describe("2. classification classes in Ultralytics' order, folder names reversible", () => {
    it.scoped("classes sorted by folder name ([ok, defect] → defect, ok); '/' encoded, not silently replaced", () =>
      Effect.gen(function*() {
        const dir = yield* dataset("classification", ["ok", "defect", "a/b", "a_b"], [
          { file: "1.png", split: "train", annotation: { class_id: 1 } },
          { file: "2.png", split: "train", annotation: { class_id: 2 } },
          { file: "3.png", split: "train", annotation: { class_id: 3 } },
          { file: "4.png", split: "train", annotation: { class_id: 4 } },
          { file: "5.png", split: "val", annotation: { class_id: 1 } },
          { file: "6.png", split: "val", annotation: { class_id: 2 } },
          { file: "7.png", split: "val", annotation: { class_id: 3 } },
          { file: "8.png", split: "val", annotation: { class_id: 4 } }
        ])
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(report.classes).toEqual(["a/b", "a_b", "defect", "ok"])
        const fs = yield* FileSystem.FileSystem
        expect((yield* fs.readDirectory(`${dir}/train`)).sort()).toEqual(["a%2Fb", "a_b", "defect", "ok"])
        expect(readYaml11(yield* read(`${dir}/data.yaml`)).names).toEqual(["a/b", "a_b", "defect", "ok"])
        expect(report.warnings).toContain("class \"a/b\" is stored in the folder \"a%2Fb\"")
        for (const name of ["a/b", "%2F", ".", "..", "", "a\\b\u0000"]) expect(classNameOfFolder(classFolderName(name))).toBe(name)
        expect((yield* Effect.flatMap(Converter, (c) => c.validateYolo(dir))).issues).toEqual([])
      }))
  })

  describe("3. a class with no training image", () => {
    const images: ReadonlyArray<GenImage> = [
      { file: "1.png", split: "train", annotation: { class_id: 1 } },
      { file: "2.png", split: "val", annotation: { class_id: 1 } },
      { file: "3.png", split: "val", annotation: { class_id: 2 } }
    ]

    it.scoped("is an error naming the class; accepted, it is left out with its images and a warning", () =>
      Effect.gen(function*() {
        const dir = yield* dataset("classification", ["cat", "rare", "unused"], images)
        const error = yield* convertError({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(error.reason).toBe("ClassWithoutTrainImages")
        expect(error.paths).toEqual(["\"rare\""])
        const fs = yield* FileSystem.FileSystem
        assert.isFalse(yield* fs.exists(`${dir}/train`))
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo", allowClassesWithoutTrainImages: true })
        expect(report.classes).toEqual(["cat"])
        expect(report.skipped).toEqual({ class_without_train_images: 1 })
        expect(report.warnings).toEqual([
          "class \"rare\" has no training image: left out (its 1 other image(s) skipped)",
          "class \"unused\" has no image: it has no class folder and is not among the names"
        ])
        expect(yield* fs.readDirectory(`${dir}/val`)).toEqual(["cat"])
      }))
  })

  describe("4. classification is handed to Ultralytics as a directory", () => {
    it.scoped("the report and the CLI say data=<dataset dir>; data.yaml names the folder splits", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-classification")
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(report.trainerInput).toEqual({ kind: "directory", path: dir })
        expect(formatConversionReport(dir, "dice", report)).toContain(`train with  data=${dir} (a directory`)
        expect(YAML.parse(yield* read(`${dir}/data.yaml`))).toEqual({ train: "train", val: "val", nc: 2, names: ["cat", "dog"] })
        const detection = yield* copyFixture("nested-detection")
        const yolo = yield* convert({ datasetDir: detection, from: "dice", to: "yolo" })
        expect(formatConversionReport(detection, "dice", yolo)).toContain(`train with  data=${detection}/data.yaml`)
        expect(formatConversionReport(detection, "dice", yolo)).toContain(`image root  ${detection}`)
      }))
  })

  describe("5. splits: no unrequested test split, val never empty, every image in train or val", () => {
    it.scoped("2 images give train 1 / val 1; 31 images give 24 / 7 and no test", () =>
      Effect.gen(function*() {
        const two = yield* dataset("detection", ["a"], [{ file: "1.png" }, { file: "2.png" }])
        expect((yield* convert({ datasetDir: two, from: "dice", to: "yolo" })).splits).toEqual({ train: 1, val: 1, test: 0 })
        const many = yield* dataset(
          "detection",
          ["a"],
          Array.from({ length: 31 }, (_, i) => ({ file: `${i}.png`, annotations: [{ class_id: 1, bbox: [1, 1, 5, 5] }] }))
        )
        const report = yield* convert({ datasetDir: many, from: "dice", to: "yolo" })
        expect(report.splits).toEqual({ train: 24, val: 7, test: 0 })
        const listed = [...(yield* read(`${many}/train.txt`)).split("\n"), ...(yield* read(`${many}/val.txt`)).split("\n")]
        expect(listed.filter((l) => l !== "")).toHaveLength(31)
      }))

    it.scoped("a val split left empty by the images' own split fields is an error naming it", () =>
      Effect.gen(function*() {
        const dir = yield* dataset("detection", ["a"], [{ file: "1.png", split: "train" }, { file: "2.png", split: "train" }])
        const error = yield* convertError({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(error.reason).toBe("EmptySplit")
        expect(error.message).toMatch(/^the val split is empty/)
      }))
  })

  describe("6. segmentation → COCO always carries a segmentation", () => {
    it.scoped("box-only DICE annotations and LabelMe rectangles get their box as a polygon", () =>
      Effect.gen(function*() {
        const flat = yield* copyFixture("flat-segmentation")
        yield* convert({ datasetDir: flat, from: "dice", to: "coco" })
        const all = yield* readJson(`${flat}/annotations/instances_all.json`)
        for (const a of all.annotations) assert.isDefined(a.segmentation)
        expect(all.annotations[2]).toMatchObject({ bbox: [0, 0, 20, 10], segmentation: [[0, 0, 20, 0, 20, 10, 0, 10]], area: 200 })
        const labelme = yield* copyFixture("labelme-detection")
        yield* convert({ datasetDir: labelme, from: "labelme", to: "coco", taskType: "segmentation" })
        const lm = yield* readJson(`${labelme}/annotations/instances_all.json`)
        expect(lm.annotations.length).toBeGreaterThan(0)
        for (const a of lm.annotations) expect(a.segmentation[0].length).toBeGreaterThanOrEqual(6)
        expect((yield* Effect.flatMap(Converter, (c) => c.validateCoco(labelme, { segmentation: true }))).issues).toEqual([])
      }))
  })

  describe("7. COCO clips and drops boxes as YOLO does", () => {
    it.scoped("a box past the border is clipped, one outside the image dropped: both outputs agree", () =>
      Effect.gen(function*() {
        const dir = yield* dataset("detection", ["a"], [
          { file: "1.png", split: "train", annotations: [{ class_id: 1, bbox: [30, 10, 20, 20] }, { class_id: 1, bbox: [50, 30, 5, 5] }] },
          { file: "2.png", split: "val", annotations: [{ class_id: 1, bbox: [-5, -5, 10, 10] }] }
        ])
        const yolo = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        const coco = yield* convert({ datasetDir: dir, from: "dice", to: "coco" })
        expect(yolo.objects).toBe(2)
        expect(coco.objects).toBe(2)
        expect(coco.skipped).toEqual({ outside_image: 1 })
        const all = yield* readJson(`${dir}/annotations/instances_all.json`)
        expect(all.annotations.map((a: { bbox: unknown }) => a.bbox)).toEqual([[30, 10, 10, 10], [0, 0, 5, 5]])
        expect(yield* read(`${dir}/labels/1.txt`)).toBe("0 0.875000 0.750000 0.250000 0.500000")
      }))
  })

  describe("8. classification → COCO is refused", () => {
    it.scoped("an Unsupported error, no empty instance files", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-classification")
        const error = yield* convertError({ datasetDir: dir, from: "dice", to: "coco" })
        expect(error.reason).toBe("Unsupported")
        assert.isFalse(yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(`${dir}/annotations`)))
      }))
  })

  describe("9. RLE masks are never turned into rectangles", () => {
    it.scoped("YOLO segmentation skips an RLE-only annotation (counted); COCO keeps the RLE", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("flat-segmentation")
        const yolo = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(yolo.skipped["rle_mask"]).toBe(1)
        expect((yield* read(`${dir}/labels/JPEGImages/y.txt`)).split("\n")).toHaveLength(1)
        yield* convert({ datasetDir: dir, from: "dice", to: "coco" })
        const all = yield* readJson(`${dir}/annotations/instances_all.json`)
        expect(all.annotations.find((a: { image_id: number; category_id: number }) => a.image_id === 6 && a.category_id === 4).segmentation)
          .toEqual({ counts: "abc", size: [50, 100] })
      }))
  })

  describe("10. pose keypoints", () => {
    it.scoped("outside the image → 0 0 0, a bad visibility → 0 0 0 (both counted), flip_idx from left/right names", () =>
      Effect.gen(function*() {
        const dir = yield* dataset("pose", [{ name: "person", keypoints: ["nose", "left_eye", "right_eye"] }], [
          { file: "1.png", split: "train", annotations: [{ class_id: 1, bbox: [0, 0, 40, 20], keypoints: [[40, 10, 2], [45, 10, 2], [10, 10, 9]] }] },
          { file: "2.png", split: "val", annotations: [{ class_id: 1, bbox: [0, 0, 40, 20], keypoints: [[20, 10, 1], [10, 5, 0], [30, 5, 2]] }] }
        ])
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        expect(yield* read(`${dir}/labels/1.txt`)).toBe(
          "0 0.500000 0.500000 1.000000 1.000000 1.000000 0.500000 2.000000 0.000000 0.000000 0.000000 0.000000 0.000000 0.000000"
        )
        expect(yield* read(`${dir}/labels/2.txt`)).toBe(
          "0 0.500000 0.500000 1.000000 1.000000 0.500000 0.500000 1.000000 0.000000 0.000000 0.000000 0.750000 0.250000 2.000000"
        )
        expect(report.skipped).toEqual({ keypoint_outside_image: 1, keypoint_bad_visibility: 1 })
        const yaml = YAML.parse(yield* read(`${dir}/data.yaml`))
        expect(yaml.kpt_shape).toEqual([3, 3])
        expect(yaml.flip_idx).toEqual([0, 2, 1])
        yield* convert({ datasetDir: dir, from: "dice", to: "coco" })
        const all = yield* readJson(`${dir}/annotations/instances_all.json`)
        expect(all.annotations[0]).toMatchObject({ keypoints: [40, 10, 2, 0, 0, 0, 0, 0, 0], num_keypoints: 1 })
        expect(all.categories[0].keypoints).toEqual(["nose", "left_eye", "right_eye"])
      }))

    it.scoped("without keypoint names there is no flip_idx, and the report says so", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-pose")
        const report = yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        assert.isUndefined(YAML.parse(yield* read(`${dir}/data.yaml`)).flip_idx)
        expect(report.warnings).toEqual([expect.stringMatching(/^no flip_idx: the categories name no keypoints/)])
      }))
  })

  describe("11. validate is the consumer's check", () => {
    it.scoped("0-byte, missing, undecodable and 8x8 images are issues; an image without labels is a background image", () =>
      Effect.gen(function*() {
        const dir = yield* dataset("detection", ["a"], [
          { file: "1.png", split: "train", annotations: [{ class_id: 1, bbox: [1, 1, 5, 5] }] },
          { file: "2.png", split: "train" },
          { file: "3.png", split: "train" },
          { file: "4.png", split: "train" },
          { file: "5.png", split: "val", annotations: [{ class_id: 1, bbox: [1, 1, 5, 5] }] },
          { file: "6.png", split: "val" }
        ])
        yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        const fs = yield* FileSystem.FileSystem
        const ok = yield* Effect.flatMap(Converter, (c) => c.validateYolo(dir))
        expect(ok.issues).toEqual([])
        yield* fs.remove(`${dir}/labels/6.txt`)
        expect((yield* Effect.flatMap(Converter, (c) => c.validateYolo(dir))).stats.background_images).toBe(4)
        yield* fs.writeFileString(`${dir}/images/2.png`, "")
        yield* fs.remove(`${dir}/images/3.png`)
        yield* fs.writeFileString(`${dir}/images/4.png`, "not an image at all")
        yield* fs.writeFile(`${dir}/images/6.png`, pngBytes(8, 8))
        const bad = yield* Effect.flatMap(Converter, (c) => c.validateYolo(dir))
        expect([...bad.issues].sort()).toEqual([
          `${dir}/images/2.png: empty file (0 bytes)`,
          `${dir}/images/3.png: missing file`,
          `${dir}/images/4.png: not an image Ultralytics reads (unknown content)`,
          `${dir}/images/6.png: image of 8x8 pixels: Ultralytics rejects images under 10 pixels on a side`
        ])
      }))

    it.scoped("an empty val split and a class folder missing from train are issues", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        const fs = yield* FileSystem.FileSystem
        yield* fs.writeFileString(`${dir}/val.txt`, "")
        expect((yield* Effect.flatMap(Converter, (c) => c.validateYolo(dir))).issues).toContain(
          "the val split has no images (Ultralytics refuses to train)"
        )
        const cls = yield* copyFixture("nested-classification")
        yield* convert({ datasetDir: cls, from: "dice", to: "yolo" })
        yield* fs.makeDirectory(`${cls}/val/bird`)
        yield* fs.copyFile(`${cls}/images/c6.jpg`, `${cls}/val/bird/c6.jpg`)
        const bad = yield* Effect.flatMap(Converter, (c) => c.validateYolo(cls))
        expect(bad.issues).toContain(
          "val/bird: class without a train folder (Ultralytics' classifier fails on its images: target out of bounds)"
        )
      }))

    it.scoped("COCO outputs: ids, references, boxes inside the image, segmentation where needed", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("flat-segmentation")
        yield* convert({ datasetDir: dir, from: "dice", to: "coco" })
        const converter = yield* Converter
        expect((yield* converter.validate(dir, { segmentation: true })).issues).toEqual([])
        const file = `${dir}/annotations/instances_val.json`
        const doc = yield* readJson(file)
        doc.annotations[0].id = 0
        doc.annotations.push({ ...doc.annotations[0], id: 99, image_id: 1234 })
        doc.annotations.push({ ...doc.annotations[0], id: 100, category_id: 77 })
        doc.annotations.push({ ...doc.annotations[0], id: 101, bbox: [90, 0, 20, 10], segmentation: undefined })
        yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.writeFileString(file, JSON.stringify(doc)))
        const bad = yield* converter.validate(dir, { segmentation: true })
        assert.isFalse(bad.valid)
        expect(bad.formats).toEqual(["coco"])
        expect(bad.issues.join("\n")).toMatch(/annotations\[0\]: id 0 \(pycocotools needs integer ids from 1\)/)
        expect(bad.issues.join("\n")).toMatch(/image_id 1234 is no image of the file/)
        expect(bad.issues.join("\n")).toMatch(/category_id 77 is no category of the file/)
        expect(bad.issues.join("\n")).toMatch(/bbox \[90, 0, 20, 10\] outside its/)
        expect(bad.issues.join("\n")).toMatch(/no segmentation \(a segmentation dataset needs one on every annotation\)/)
      }))
  })

  describe("12. a moved dataset still loads", () => {
    it.scoped("data.yaml has no path and the split files hold ./ lines: validate passes after a move", () =>
      Effect.gen(function*() {
        const dir = yield* copyFixture("nested-detection")
        yield* convert({ datasetDir: dir, from: "dice", to: "yolo" })
        const fs = yield* FileSystem.FileSystem
        const moved = `${dir}-moved`
        yield* fs.rename(dir, moved)
        assert.notInclude(yield* read(`${moved}/data.yaml`), dir)
        for (const s of ["train", "val", "test"]) expect(yield* read(`${moved}/${s}.txt`)).toMatch(/^\.\/images\//)
        const validation = yield* Effect.flatMap(Converter, (c) => c.validateYolo(moved))
        expect(validation.issues).toEqual([])
        expect(validation.stats.total_images).toBe(3)
      }))
  })
})
