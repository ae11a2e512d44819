import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it, layer } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Layer } from "effect"
import * as YAML from "yaml"
import { Converter } from "../src/Converter.js"
import { cocoDocuments, cocoTexts } from "./support/coco.js"
import type { DiceDataset } from "../src/internal/diceModel.js"
import { decodeDice, decodeDiceWithSchema, decodeFlatDice } from "../src/internal/diceSchema.js"
import { imageObjects, LabelBytes, mergeMultiSegment } from "../src/internal/objectRules.js"
import { yoloDataYaml } from "../src/internal/dataYaml.js"
import { readYaml11 } from "../src/internal/yaml11.js"
import { assignSplits, countSplits, emptyRequiredSplits, splitSizes } from "../src/internal/splits.js"
import { chunkLabels, yoloContext, yoloImageLabel } from "../src/internal/yoloLabels.js"

/** A label number as YOLO files hold it: `%.6f` (`toFixed(6)`), never `-0.000000`. */
const printed = (value: number): string => {
  const text = value.toFixed(6)
  return text === "-0.000000" ? "0.000000" : text
}

/** One image's label rows. */
const yoloImageLines = (...args: Parameters<typeof yoloImageLabel>): Array<string> => {
  const { text } = yoloImageLabel(...args)
  return text === "" ? [] : text.split("\n")
}

// ---------------------------------------------------------------------------------------------
// Generators: valid nested DICE documents whose boxes and polygons lie inside their images.

const side = fc.integer({ min: 1, max: 5000 })
const unit = fc.double({ min: 0, max: 1, noNaN: true })

const polygon = (w: number, h: number) =>
  fc.array(fc.tuple(unit, unit), { minLength: 3, maxLength: 8 }).map((ps) => ps.flatMap(([u, v]) => [u * w, v * h]))

const annotation = (w: number, h: number, classIds: ReadonlyArray<number>) =>
  fc.record({
    class_id: fc.constantFrom(...classIds),
    box: fc.tuple(unit, unit, unit, unit),
    segmentation: fc.array(polygon(w, h), { minLength: 1, maxLength: 3 }),
    keypoints: fc.array(fc.tuple(unit, unit, fc.constantFrom(0, 1, 2)), { minLength: 2, maxLength: 2 })
  }).map(({ box: [a, b, c, d], class_id, keypoints, segmentation }) => {
    const x = a * w * 0.99, y = b * h * 0.99
    const bw = Math.max((w - x) * c, w * 1e-3), bh = Math.max((h - y) * d, h * 1e-3)
    return {
      class_id,
      bbox: [x, y, Math.min(bw, w - x), Math.min(bh, h - y)],
      segmentation,
      keypoints: keypoints.map(([u, v, vis]) => [u * w, v * h, vis])
    }
  })

const classNames = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes("background")), {
  minLength: 1,
  maxLength: 5
})

const nestedDoc = classNames.chain((names) => {
  const classIds = names.map((_, i) => i * 3 + 1)
  const image = fc.tuple(side, side, fc.option(fc.constantFrom("train", "val", "test"), { nil: undefined })).chain(
    ([w, h, split]) =>
      fc.array(annotation(w, h, classIds), { maxLength: 4 }).map((annotations) => ({ w, h, split, annotations }))
  )
  return fc.array(image, { minLength: 1, maxLength: 12 }).map((images) => ({
    task_type: "object_detection",
    classes: [{ id: 0, name: "__background__" }, ...names.map((name, i) => ({ id: classIds[i]!, name }))],
    images: images.map((img, i) => ({
      id: i + 1,
      file_name: `img_${i + 1}.jpg`,
      width: img.w,
      height: img.h,
      ...(img.split ? { split: img.split } : {}),
      annotations: img.annotations.map((a, k) => ({ id: i * 10 + k + 1, ...a }))
    }))
  }))
})

const decoded = (doc: unknown): DiceDataset => Either.getOrThrow(decodeDice("gen.json", doc))

describe("Converter properties (pure)", () => {
  it.prop("fast decode agrees with the Schema decode", [nestedDoc], ([doc]) => {
    expect(decodeDice("f", doc)).toEqual(decodeDiceWithSchema("f", doc))
  }, { fastCheck: { numRuns: 60 } })

  it.prop("a YOLO box de-normalizes to the original within 1e-6 of the image size", [nestedDoc], ([doc]) => {
    const dataset = decoded(doc)
    const ctx = yoloContext(dataset, "detection")
    for (const image of dataset.images) {
      const skipped: Record<string, number> = {}
      const all = yoloImageLines(image, ctx, skipped)
      assert.strictEqual(all.length + (skipped["duplicate"] ?? 0), image.annotations.length)
      assert.strictEqual(new Set(all).size, all.length)
      image.annotations.forEach((annotation) => {
        const [line] = yoloImageLines({ ...image, annotations: [annotation] }, ctx, {}) as [string]
        const [cls, cx, cy, w, h] = line.split(" ").map(Number) as [number, number, number, number, number]
        const [x0, y0, w0, h0] = annotation.bbox!
        assert.strictEqual(cls, ctx.classIndex.get(annotation.categoryId!))
        const W = image.width, H = image.height
        assert.isAtMost(Math.abs((cx - w / 2) * W - x0), 1e-6 * W)
        assert.isAtMost(Math.abs((cy - h / 2) * H - y0), 1e-6 * H)
        assert.isAtMost(Math.abs(w * W - w0), 1e-6 * W)
        assert.isAtMost(Math.abs(h * H - h0), 1e-6 * H)
      })
    }
  }, { fastCheck: { numRuns: 80 } })

  it.prop("polygon point counts are preserved (merged parts add two bridge points per join)", [nestedDoc], ([doc]) => {
    const dataset = decoded(doc)
    const ctx = yoloContext(dataset, "segmentation")
    for (const image of dataset.images) {
      image.annotations.forEach((annotation) => {
        const [line] = yoloImageLines({ ...image, annotations: [annotation] }, ctx, {}) as [string]
        const polygons = annotation.polygons!
        const points = polygons.reduce((n, p) => n + p.length / 2, 0)
        assert.strictEqual(line.split(" ").length, 1 + 2 * (points + 2 * (polygons.length - 1)))
      })
    }
  }, { fastCheck: { numRuns: 80 } })

  it.prop("merging keeps every vertex of every part", [fc.array(polygon(100, 100), { minLength: 1, maxLength: 4 })], ([parts]) => {
    const asPoints = parts.map((p) => Array.from({ length: p.length / 2 }, (_, i) => [p[2 * i]!, p[2 * i + 1]!] as const))
    const merged = mergeMultiSegment(asPoints).map(([x, y]) => `${x},${y}`)
    for (const part of asPoints) for (const [x, y] of part) assert.include(merged, `${x},${y}`)
  }, { fastCheck: { numRuns: 100 } })

  it.prop(
    "every image lands in exactly one split; a seeded split is reproducible, follows the ratios and leaves no needed split empty",
    [fc.integer({ min: 0, max: 300 }), fc.integer(), fc.tuple(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 10 }))],
    ([n, seed, [train, val, test]]) => {
      const images = Array.from({ length: n }, (_, i) => ({ id: i + 1, split: undefined }))
      const options = { seed, ratios: { train, val, test } }
      const a = assignSplits(images, options)
      expect(a).toEqual(assignSplits(images, options))
      assert.strictEqual(a.length, n)
      for (const s of a) assert.include(["train", "val", "test"], s)
      const counts = countSplits(a)
      expect(counts).toEqual(splitSizes(n, options.ratios))
      const total = train + val + test
      // floor(n * ratio) to train and test, the remainder to val, then at most one image moved per empty split.
      assert.isAtMost(Math.abs(counts.train - Math.floor(n * (train / total))), 2)
      assert.isAtMost(Math.abs(counts.test - Math.floor(n * (test / total))), 2)
      if (test === 0) assert.strictEqual(counts.test, 0)
      if (n >= 2) expect(emptyRequiredSplits(counts)).toEqual([])
      if (n >= 3 && test > 0) assert.isAbove(counts.test, 0)
    },
    { fastCheck: { numRuns: 100 } }
  )

  it.prop("explicit assignments win, then the images' own split field", [nestedDoc, fc.integer()], ([doc, seed]) => {
    const dataset = decoded(doc)
    const assignments = { [dataset.images[0]!.id]: "test" as const }
    const splits = assignSplits(dataset.images, { assignments, seed })
    assert.strictEqual(splits[0], "test")
    dataset.images.forEach((image, i) => {
      if (i > 0 && image.split !== undefined) assert.strictEqual(splits[i], image.split)
    })
  }, { fastCheck: { numRuns: 50 } })

  it.prop("DICE → COCO → decode as flat DICE → COCO is a fixed point", [nestedDoc, fc.integer()], ([doc, seed]) => {
    const dataset = decoded(doc)
    const splits = assignSplits(dataset.images, { seed })
    const names = dataset.images.map((i) => i.fileName)
    const first = cocoDocuments(dataset, "segmentation", splits, names, {})
    const again = Either.getOrThrow(decodeFlatDice("coco.json", JSON.parse(JSON.stringify(first.all))))
    const second = cocoDocuments(again, "segmentation", splits, again.images.map((i) => i.fileName), {})
    expect(JSON.parse(JSON.stringify(second))).toEqual(JSON.parse(JSON.stringify(first)))
    assert.isTrue(first.all.annotations.every((a, i) => a.id === i + 1))
  }, { fastCheck: { numRuns: 60 } })

  it.prop(
    "an image's repeated objects are counted as duplicates however many it holds (few, or hundreds)",
    [fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 400 })],
    ([distinct, total]) => {
      const boxes = Array.from({ length: total }, (_, k) => [k % distinct, 1, 5, 5])
      const dataset = decoded({
        classes: [{ id: 1, name: "a" }],
        images: [{ id: 1, file_name: "a.jpg", width: 500, height: 50, annotations: boxes.map((bbox) => ({ class_id: 1, bbox })) }]
      })
      const skipped: Record<string, number> = {}
      const lines = yoloImageLines(dataset.images[0]!, yoloContext(dataset, "detection"), skipped)
      assert.strictEqual(lines.length, Math.min(distinct, total))
      assert.strictEqual(new Set(lines).size, lines.length)
      assert.strictEqual(skipped["duplicate"] ?? 0, total - lines.length)
    },
    { fastCheck: { numRuns: 100 } }
  )

  it.prop(
    "label numbers are toFixed(6) (without -0.000000) for every number, rounding ties and near-ties included",
    [fc.oneof(
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ noNaN: false }),
      fc.integer({ min: 0, max: 999_999 }).chain((k) =>
        fc.constantFrom((k + 0.5) / 1e6, (k + 0.4999999) / 1e6, (k + 0.5000001) / 1e6, k / 1e6, -(k + 0.5) / 1e6)
      )
    )],
    ([value]) => {
      const out = new LabelBytes(8)
      out.number(value)
      expect(out.text(0, out.length)).toBe(` ${printed(value)}`)
    },
    { fastCheck: { numRuns: 20_000 } }
  )

  it.prop(
    "label bytes: numbers printed %.6f, class indices as String does, one after another",
    [fc.array(fc.oneof(
      fc.double({ min: 0, max: 1, noNaN: true }).map((v) => ["number", v] as const),
      fc.double({ noNaN: false }).map((v) => ["number", v] as const),
      fc.integer({ min: 0, max: 999_999 }).map((k) => ["number", (k + 0.5) / 1e6] as const),
      fc.oneof(fc.nat(), fc.constantFrom(0, 9, 10, 999_999_999, 1e9, 2 ** 31)).map((n) => ["int", n] as const)
    ), { maxLength: 40 })],
    ([items]) => {
      const out = new LabelBytes(8)
      let expected = ""
      for (const [kind, value] of items) {
        if (kind === "int") {
          out.int(value)
          expected += String(value)
        } else {
          out.number(value)
          expected += ` ${printed(value)}`
        }
      }
      expect(out.text(0, out.length)).toBe(expected)
    },
    { fastCheck: { numRuns: 2_000 } }
  )

  it.prop(
    "COCO text: JSON.stringify of its content; each split file is `all` restricted to its images, ids 1..N",
    [nestedDoc, fc.integer(), fc.constantFrom("detection" as const, "segmentation" as const, "pose" as const)],
    ([doc, seed, task]) => {
      const dataset = decoded(doc)
      const splits = assignSplits(dataset.images, { seed })
      const names = dataset.images.map((i) => i.fileName)
      const texts = cocoTexts(dataset, task, splits, names, {})
      // Each file is exactly JSON.stringify of what it holds (field order, number forms).
      for (const text of texts.values()) expect(JSON.stringify(JSON.parse(text))).toBe(text)
      const all = JSON.parse(texts.get("all")!)
      expect(Object.keys(all)).toEqual(["images", "annotations", "categories"])
      expect(all.images.map((i: { id: number }) => i.id)).toEqual(dataset.images.map((i) => i.id))
      expect(all.annotations.map((a: { id: number }) => a.id)).toEqual(all.annotations.map((_: unknown, i: number) => i + 1))
      for (const s of ["train", "val", "test"] as const) {
        const ids = new Set(dataset.images.filter((_, i) => splits[i] === s).map((i) => i.id))
        const text = texts.get(s)
        if (ids.size === 0) {
          assert.isUndefined(text)
          continue
        }
        expect(JSON.parse(text!)).toEqual({
          images: all.images.filter((i: { id: number }) => ids.has(i.id)),
          annotations: all.annotations.filter((a: { image_id: number }) => ids.has(a.image_id)),
          categories: all.categories
        })
      }
    },
    { fastCheck: { numRuns: 100 } }
  )

  it.prop(
    "class names in data.yaml read back unchanged under YAML 1.1 (PyYAML's resolvers), whatever they contain",
    [fc.array(
      fc.oneof(
        fc.string({ unit: "binary", maxLength: 20 }),
        fc.constantFrom("yes", "No", "ON", "off", "=", "<<", "1:20", "1_000", "0b101", "017", "0x1F", "2020-01-01", "~", "null", "", ".inf", "1.5"),
        fc.string({ unit: fc.constantFrom(..."yesnoYN01_:.-+~=<#'\"\\ \t\n\u0085\u2028\u007f"), maxLength: 8 })
      ),
      { maxLength: 8 }
    )],
    ([names]) => {
      const text = yoloDataYaml({ names, hasTest: false })
      const reading = readYaml11(text)
      expect(reading.issues).toEqual([])
      expect(reading.names).toEqual(names)
      const parsed = YAML.parse(text, { version: "1.1" })
      expect(parsed.names).toEqual(names)
      expect(parsed.nc).toBe(names.length)
    },
    { fastCheck: { numRuns: 200 } }
  )

  it.prop(
    "data.yaml is printed as the YAML library prints it (every string double-quoted, lines never folded)",
    [
      fc.array(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 30 }),
          fc.string({ unit: fc.constantFrom(..."ab \n\t\\\"\u0000\u0007\u000b\u001b\u0085\u00a0\u2028\ud800\ufeff\uffff\u007f"), maxLength: 12 }),
          fc.string({ unit: "grapheme", minLength: 40, maxLength: 90 })
        ).filter((s) => !s.includes("\n") || JSON.stringify(s).length < 40),
        { maxLength: 6 }
      ),
      fc.boolean(),
      fc.option(fc.array(fc.nat(40), { maxLength: 5 }), { nil: undefined })
    ],
    ([names, hasTest, flipIdx]) => {
      // The library's own printing (what data.yaml was written with before); it folds a
      // quoted string holding a line break only from 40 characters of JSON on.
      const doc: Record<string, unknown> = { train: "train.txt", val: "val.txt" }
      if (hasTest) doc["test"] = "test.txt"
      doc["nc"] = names.length
      doc["names"] = names
      if (flipIdx) doc["kpt_shape"] = [flipIdx.length, 3]
      if (flipIdx) doc["flip_idx"] = flipIdx
      const document = new YAML.Document(doc)
      YAML.visit(document, {
        Scalar(_key, node) {
          if (typeof node.value === "string") node.type = "QUOTE_DOUBLE"
        }
      })
      const library = document.toString({ lineWidth: 0 }).replace(/[\x7F-\x9F\u2028\u2029\uFEFF\uFFFE\uFFFF]/g, (c) => {
        const code = c.charCodeAt(0)
        return code <= 0xff ? `\\x${code.toString(16).toUpperCase().padStart(2, "0")}` : `\\u${code.toString(16).toUpperCase().padStart(4, "0")}`
      })
      const text = yoloDataYaml({ names, hasTest, kptShape: flipIdx ? [flipIdx.length, 3] : undefined, flipIdx })
      expect(text).toBe(library)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it("a long class name with a line break stays on one line, and PyYAML's reading gives it back", () => {
    const name = `${"long ".repeat(10)}\n${"name ".repeat(10)}`
    const text = yoloDataYaml({ names: [name], hasTest: false })
    expect(text.split("\n")).toHaveLength(6)
    expect(readYaml11(text).names).toEqual([name])
  })
})

// ---------------------------------------------------------------------------------------------
// Wild geometry: boxes, polygons and keypoints anywhere around the image, crowd regions,
// duplicates and bad visibilities.

const around = (size: number) => fc.double({ min: -size, max: 2 * size, noNaN: true })

const wildDoc = fc.tuple(fc.integer({ min: 1, max: 3 }), fc.array(fc.tuple(side, side), { minLength: 1, maxLength: 6 })).chain(
  ([nClasses, sizes]) =>
    fc.tuple(...sizes.map(([w, h]) =>
      fc.array(
        fc.record({
          class_id: fc.integer({ min: 0, max: nClasses + 1 }),
          bbox: fc.tuple(around(w), around(h), fc.double({ min: -w, max: 2 * w, noNaN: true }), fc.double({ min: -h, max: 2 * h, noNaN: true })),
          segmentation: fc.array(fc.array(fc.tuple(around(w), around(h)), { minLength: 1, maxLength: 6 }).map((ps) => ps.flat()), { maxLength: 2 }),
          keypoints: fc.array(fc.tuple(around(w), around(h), fc.constantFrom(0, 1, 2, 3, 9)), { minLength: 3, maxLength: 3 }),
          iscrowd: fc.constantFrom(0, 0, 0, 1)
        }),
        { maxLength: 6 }
      ).map((annotations) => ({ w, h, annotations: annotations.length > 1 ? [...annotations, annotations[0]!] : annotations }))
    )).map((images) => ({
      classes: Array.from({ length: nClasses }, (_, i) => ({ id: i + 1, name: `c${i}` })),
      images: images.map((img, i) => ({ id: i + 1, file_name: `${i}.png`, width: img.w, height: img.h, annotations: img.annotations }))
    }))
)

describe("YOLO and COCO hold the same objects (pure)", () => {
  for (const task of ["detection", "segmentation", "pose"] as const) {
    it.prop(`${task}: same object count per image, same skips, every normalized coordinate in [0, 1]`, [wildDoc], ([doc]) => {
      const dataset = decoded(doc)
      const ctx = yoloContext(dataset, task)
      const splits = dataset.images.map(() => "train" as const)
      const yoloSkipped: Record<string, number> = {}
      const cocoSkipped: Record<string, number> = {}
      const coco = cocoDocuments(dataset, task, splits, dataset.images.map((i) => i.fileName), cocoSkipped)
      for (const image of dataset.images) {
        const lines = yoloImageLines(image, ctx, yoloSkipped)
        const kept = coco.all.annotations.filter((a) =>
          a.image_id === image.id && a.iscrowd === 0 && (task !== "segmentation" || Array.isArray(a.segmentation))
        )
        assert.strictEqual(lines.length, kept.length)
        for (const line of lines) {
          const values = line.split(" ").map(Number).slice(1)
          values.forEach((v, i) => {
            const visibility = task === "pose" && i >= 4 && (i - 4) % 3 === 2
            assert.isTrue(visibility ? v === 0 || v === 1 || v === 2 : v >= 0 && v <= 1, line)
          })
        }
        for (const a of kept) {
          const [x, y, w, h] = a.bbox
          assert.isTrue(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= image.width + 1e-9 && y + h <= image.height + 1e-9)
        }
      }
      const { crowd = 0, rle_mask = 0, ...shared } = yoloSkipped
      expect(shared).toEqual(cocoSkipped)
      assert.strictEqual(coco.all.annotations.filter((a) => a.iscrowd === 1).length, crowd)
      assert.strictEqual(rle_mask, 0)
      // Each object is written once, whichever output: imageObjects is the one rule both follow.
      const objects = dataset.images.reduce((n, image) => n + imageObjects(image, ctx, {}).length, 0)
      assert.strictEqual(coco.all.annotations.length, objects)
    }, { fastCheck: { numRuns: 150 } })

    it.prop(`${task}: each label row is its object printed %.6f; a chunk's labels are its images' labels`, [wildDoc], ([doc]) => {
      const dataset = decoded(doc)
      const ctx = yoloContext(dataset, task)
      const chunk = chunkLabels(dataset.images, ctx, 16)
      const texts = Buffer.from(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.byteLength)
      dataset.images.forEach((image, k) => {
        const W = image.width, H = image.height
        const n = (v: number) => ` ${printed(v)}`
        const rows = imageObjects(image, ctx, {}).filter((o) => o.skip === undefined).map((o) => {
          const [x1, y1, x2, y2] = o.box
          if (task === "segmentation") {
            const points = mergeMultiSegment(o.polygons!.map((p) => Array.from({ length: p.length / 2 }, (_, i) => [p[2 * i]!, p[2 * i + 1]!] as const)))
            return `${o.cls}${points.map(([x, y]) => n(x / W) + n(y / H)).join("")}`
          }
          const box = `${o.cls}${n((x1 + x2) / 2 / W)}${n((y1 + y2) / 2 / H)}${n((x2 - x1) / W)}${n((y2 - y1) / H)}`
          if (task === "detection") return box
          const kp = o.keypoints!
          return box + Array.from({ length: kp.length / 3 }, (_, i) => n(kp[3 * i]! / W) + n(kp[3 * i + 1]! / H) + n(kp[3 * i + 2]!)).join("")
        })
        const skipped: Record<string, number> = {}
        const label = yoloImageLabel(image, ctx, skipped)
        expect(label.text).toBe(rows.join("\n"))
        expect(texts.toString("latin1", k === 0 ? 0 : chunk.ends[k - 1]!, chunk.ends[k]!)).toBe(label.text)
        expect(chunk.classes[k]).toEqual(label.classes)
        expect(chunk.skipped[k] ?? {}).toEqual(skipped)
      })
    }, { fastCheck: { numRuns: 150 } })
  }
})

layer(Layer.provideMerge(Converter.layer, NodeContext.layer))("Converter properties (on disk)", (it) => {
  it.scoped.prop("one label file per image, every image listed in exactly one split file", [nestedDoc], ([doc]) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* fs.makeDirectory(path.join(dir, "images"))
      yield* fs.writeFileString(path.join(dir, "annotations_detection.json"), JSON.stringify(doc))
      for (const image of doc.images) yield* fs.writeFileString(path.join(dir, "images", image.file_name), "")
      const result = yield* Effect.either(Effect.flatMap(Converter, (c) => c.convert({ datasetDir: dir, from: "dice", to: "yolo" })))
      const expectedEmpty = emptyRequiredSplits(countSplits(assignSplits(decoded(doc).images)))
      if (expectedEmpty.length > 0) {
        // Only when the images' own split fields (or a single image) leave train or val empty.
        assert.isTrue(Either.isLeft(result) && result.left.reason === "EmptySplit")
        return
      }
      const report = Either.getOrThrow(result)
      const labels = yield* fs.readDirectory(path.join(dir, "labels"))
      assert.strictEqual(labels.filter((f) => f.endsWith(".txt")).length, doc.images.length)
      assert.strictEqual(report.images, doc.images.length)
      const listed: Array<string> = []
      for (const s of ["train", "val", "test"]) {
        const file = path.join(dir, `${s}.txt`)
        if (yield* fs.exists(file)) listed.push(...(yield* fs.readFileString(file)).split("\n").filter((l) => l !== ""))
      }
      // Relative to the split file's directory (`./`), so a moved dataset still loads.
      expect(listed.sort()).toEqual(doc.images.map((i) => `./images/${i.file_name}`).sort())
    }), { fastCheck: { numRuns: 15 } })
})
