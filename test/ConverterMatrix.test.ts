/**
 * Every fixture under every task it can be converted as: the YOLO and the COCO output of one
 * conversion hold the same objects per image (same boxes), the counts add up to the source's
 * annotations (written + skipped by reason), and both outputs pass validation.
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { fileURLToPath } from "node:url"
import { Converter } from "../src/Converter.js"
import type { ConverterTask } from "../src/Converter.js"

const fixtures = fileURLToPath(new URL("./fixtures/datasets", import.meta.url))

/** Skip reasons that count parts of an object (a polygon part, a keypoint), not whole annotations. */
const partReasons = new Set(["polygon_too_few_points", "keypoint_outside_image", "keypoint_bad_visibility"])
/** Skip reasons of YOLO only: objects COCO keeps. */
const yoloOnly = new Set(["crowd", "rle_mask"])

const objectSkips = (skipped: Readonly<Record<string, number>>, exclude: ReadonlySet<string> = new Set()) =>
  Object.entries(skipped).reduce((n, [reason, count]) => (partReasons.has(reason) || exclude.has(reason) ? n : n + count), 0)

/** Annotation count of a fixture's source (DICE nested or flat, or LabelMe shapes). */
const sourceAnnotations = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const names = yield* fs.readDirectory(dir)
    const dice = names.find((n) => /^annotations.*\.json$/.test(n))
    if (dice !== undefined) {
      const doc = JSON.parse(yield* fs.readFileString(`${dir}/${dice}`))
      return Array.isArray(doc.annotations)
        ? doc.annotations.length as number
        : (doc.images as Array<{ annotations?: Array<unknown> }>).reduce((n, i) => n + (i.annotations?.length ?? 0), 0)
    }
    let total = 0
    for (const label of yield* fs.readDirectory(`${dir}/labels`)) {
      if (label.endsWith(".json")) total += JSON.parse(yield* fs.readFileString(`${dir}/labels/${label}`)).shapes.length
    }
    return total
  })

const cases: ReadonlyArray<readonly [string, "dice" | "labelme", ReadonlyArray<ConverterTask>]> = [
  ["nested-detection", "dice", ["detection", "segmentation"]],
  ["flat-segmentation", "dice", ["detection", "segmentation"]],
  ["nested-pose", "dice", ["detection", "segmentation", "pose"]],
  ["labelme-detection", "labelme", ["detection", "segmentation"]],
  ["nested-classification", "dice", ["classification"]],
  ["labelme-classification", "labelme", ["classification"]]
]

layer(Layer.provideMerge(Converter.layer, NodeContext.layer))("every fixture, every task: YOLO and COCO agree", (it) => {
  for (const [fixture, from, tasks] of cases) {
    describe(fixture, () => {
      for (const task of tasks) {
        it.scoped(task, () =>
          Effect.gen(function*() {
            const fs = yield* FileSystem.FileSystem
            const path = yield* Path.Path
            const dir = path.join(yield* fs.makeTempDirectoryScoped(), fixture)
            yield* fs.copy(path.join(fixtures, fixture), dir)
            // The task picks the DICE annotation file (annotations_{task}.json): give it the fixture's.
            const dice = (yield* fs.readDirectory(dir)).find((n) => /^annotations.*\.json$/.test(n))
            if (dice !== undefined) yield* fs.copyFile(path.join(dir, dice), path.join(dir, `annotations_${task}.json`)).pipe(Effect.ignore)
            const converter = yield* Converter
            const source = yield* sourceAnnotations(dir)
            const yolo = yield* converter.convert({ datasetDir: dir, from, to: "yolo", taskType: task })
            if (task === "classification") {
              const coco = yield* Effect.flip(converter.convert({ datasetDir: dir, from, to: "coco", taskType: task }))
              expect(coco.reason).toBe("Unsupported")
              // Every image is in the tree or skipped with a reason.
              assert.strictEqual(yolo.objects + objectSkips(yolo.skipped), yolo.images)
              expect((yield* converter.validateYolo(dir)).issues).toEqual([])
              return
            }
            const coco = yield* converter.convert({ datasetDir: dir, from, to: "coco", taskType: task })
            assert.strictEqual(yolo.images, coco.images)
            expect(yolo.splits).toEqual(coco.splits)
            // Source annotations = written + skipped, in each output.
            assert.strictEqual(yolo.objects + objectSkips(yolo.skipped), source)
            assert.strictEqual(coco.objects + objectSkips(coco.skipped), source)
            expect(Object.fromEntries(Object.entries(yolo.skipped).filter(([r]) => !yoloOnly.has(r)))).toEqual(coco.skipped)

            const all = JSON.parse(yield* fs.readFileString(`${dir}/annotations/instances_all.json`))
            for (const image of all.images as Array<{ id: number; file_name: string; width: number; height: number }>) {
              const annotations = (all.annotations as Array<{ image_id: number; iscrowd: number; bbox: Array<number>; segmentation?: unknown }>)
                .filter((a) => a.image_id === image.id && a.iscrowd === 0 && (task !== "segmentation" || Array.isArray(a.segmentation)))
              // COCO file names are relative to the image root; the YOLO labels mirror that tree under labels/.
              const labelFile = path.join(dir, "labels", image.file_name.replace(/\.[^.]+$/, ".txt"))
              const rows = (yield* fs.readFileString(labelFile)).split("\n").filter((l) => l !== "")
              assert.strictEqual(rows.length, annotations.length, `${fixture}/${task} image ${image.file_name}`)
              rows.forEach((row, i) => {
                const values = row.split(" ").map(Number)
                for (const v of values.slice(1)) assert.isTrue(v >= 0 && v <= (task === "pose" ? 2 : 1))
                if (task === "segmentation") return
                const [, cx, cy, w, h] = values as [number, number, number, number, number]
                const [x, y, bw, bh] = annotations[i]!.bbox as [number, number, number, number]
                assert.closeTo((cx - w / 2) * image.width, x, 1e-5 * image.width)
                assert.closeTo((cy - h / 2) * image.height, y, 1e-5 * image.height)
                assert.closeTo(w * image.width, bw, 1e-5 * image.width)
                assert.closeTo(h * image.height, bh, 1e-5 * image.height)
              })
            }
            const validation = yield* converter.validate(dir, { segmentation: task === "segmentation" })
            expect(validation.formats).toEqual(["yolo", "coco"])
            expect(validation.issues).toEqual([])
          }))
      }
    })
  }
})
