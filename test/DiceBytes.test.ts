/**
 * The piecewise decoder of DICE bytes (`decodeDiceBytes`) against the reference: parse the
 * whole text, then decode (`parseJsonBytes` + `decodeDice`). Same dataset for every valid
 * document whatever its formatting and piece size, and the same error (reason, file, JSON
 * path, detail) for every broken one — malformed, non-UTF-8, too deep, wrong shapes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { decodeDicePieces, type DiceDataset } from "../src/internal/diceModel.js"
import { decodeDice, decodeDiceBytes } from "../src/internal/diceSchema.js"
import { parseJsonBytes } from "../src/internal/json.js"
import { maxJsonDepth } from "../src/internal/jsonChunks.js"
import type { DatasetError } from "../src/Errors.js"

/** The reference decode: the whole document parsed at once. */
const reference = (bytes: Uint8Array) => Either.flatMap(parseJsonBytes("f.json", bytes), (doc) => decodeDice("f.json", doc))

/** An outcome as plain data (errors by their fields), for deep equality. */
const plain = (e: Either.Either<DiceDataset, DatasetError>) =>
  Either.match(e, {
    onLeft: (err) => ({ error: { reason: err.reason, file: err.file, jsonPath: err.jsonPath, detail: err.detail } }),
    onRight: (dataset) => ({ dataset })
  })

const num = fc.oneof(fc.integer({ min: -5, max: 700 }), fc.double({ min: -10, max: 700, noNaN: true, noDefaultInfinity: true }))
const extra = fc.dictionary(fc.constantFrom("color", "attributes", "score", "__proto__", "note"), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 2 })
const optional = <A>(arb: fc.Arbitrary<A>) => fc.option(arb, { nil: undefined })

const annotation = fc.record({
  id: optional(fc.oneof(fc.integer(), fc.constant(null))),
  bbox: optional(fc.oneof(fc.tuple(num, num, num, num), fc.constant(null))),
  area: optional(num),
  iscrowd: optional(fc.constantFrom(0, 1, true, false, null)),
  segmentation: optional(fc.oneof(
    fc.array(fc.array(num, { maxLength: 8 }), { maxLength: 2 }),
    fc.record({ counts: fc.oneof(fc.string(), fc.array(fc.nat(), { maxLength: 4 })), size: fc.tuple(fc.nat(), fc.nat()) })
  )),
  keypoints: optional(fc.oneof(fc.array(num, { maxLength: 6 }), fc.array(fc.tuple(num, num, fc.nat(2)), { maxLength: 2 }))),
  num_keypoints: optional(fc.nat(5))
}, { requiredKeys: [] })

const image = fc.record({
  id: fc.integer({ min: 1, max: 40 }),
  file_name: fc.oneof(fc.constantFrom("a.jpg", "sub/b.png", "é ü.jpg", "q\"uote\\.jpg"), fc.string({ maxLength: 6 })),
  width: fc.oneof(fc.integer({ min: 1, max: 900 }), fc.double({ min: 0.5, max: 900, noNaN: true })),
  height: fc.integer({ min: 1, max: 900 }),
  split: optional(fc.constantFrom("train", "val", "Test", "other", null))
})

const categories = fc.array(
  fc.record({ id: fc.integer({ min: 0, max: 6 }), name: fc.constantFrom("cat", "dog", "__background__", "ü"), supercategory: optional(fc.constantFrom("animal", null)) }),
  { maxLength: 4 }
)

const header = fc.record({
  task_type: optional(fc.constantFrom("detection", "pose", null)),
  storage_info: optional(fc.oneof(fc.constant(null), fc.record({ image_root: optional(fc.constantFrom("datasets/1/images/", null)) })))
}, { requiredKeys: [] })

const nestedDoc = fc.tuple(header, categories, fc.array(fc.tuple(image, fc.array(fc.tuple(annotation, fc.integer({ min: 0, max: 7 }), extra), { maxLength: 4 }), extra), { maxLength: 8 }))
  .map(([h, classes, images]) => ({
    ...h,
    format_version: "2.0",
    classes,
    images: images.map(([img, anns, more]) => ({
      ...more,
      ...img,
      annotations: anns.map(([a, c, x], k) => ({ ...x, ...a, ...(k % 3 === 2 ? { class_name: "dog" } : { class_id: c }) })),
      ...(img.id % 4 === 0 ? { annotation: { class_id: 1 } } : {})
    }))
  }))

const flatDoc = fc.tuple(header, categories, fc.array(image, { maxLength: 8 }), fc.array(fc.tuple(annotation, fc.integer({ min: 1, max: 45 }), fc.integer({ min: 0, max: 7 })), { maxLength: 12 }))
  .map(([h, cats, images, anns]) => ({
    ...h,
    categories: cats,
    images,
    annotations: anns.map(([a, imageId, c]) => ({ ...a, image_id: imageId, category_id: c }))
  }))

/** The document as bytes, formatted one of several ways (indent, CRLF, BOM, member order). */
const formatted = (doc: object, style: number): Uint8Array => {
  const entries = Object.entries(doc)
  const ordered = Object.fromEntries(style % 2 === 0 ? entries : entries.reverse())
  const text = style === 0
    ? JSON.stringify(ordered)
    : style === 1
    ? JSON.stringify(ordered, null, 2)
    : style === 2
    ? JSON.stringify(ordered, null, "\t").replace(/\n/g, "\r\n")
    : "\ufeff \n" + JSON.stringify(ordered, null, 1) + "\n"
  return new TextEncoder().encode(text)
}

const style = fc.integer({ min: 0, max: 3 })
const chunk = fc.constantFrom(1, 40, 300, 1 << 20)

describe("decodeDiceBytes", () => {
  it.prop("a valid nested document: decoded piecewise, the same dataset as the whole-document decode", [nestedDoc, style, chunk], ([doc, s, size]) => {
    const bytes = formatted(doc, s)
    const expected = reference(bytes)
    if (Either.isRight(expected)) expect(decodeDicePieces(bytes, size)).toEqual(expected.right)
    expect(plain(decodeDiceBytes("f.json", bytes, size))).toEqual(plain(expected))
  }, { fastCheck: { numRuns: 150 } })

  it.prop("a valid flat document: the same", [flatDoc, style, chunk], ([doc, s, size]) => {
    const bytes = formatted(doc, s)
    const expected = reference(bytes)
    if (Either.isRight(expected)) expect(decodeDicePieces(bytes, size)).toEqual(expected.right)
    expect(plain(decodeDiceBytes("f.json", bytes, size))).toEqual(plain(expected))
  }, { fastCheck: { numRuns: 150 } })

  const mutation = fc.tuple(fc.nat(), fc.constantFrom(..."{}[],:\"\\ 0e-.ntx".split(""), "\u00ff", "\u0080"), fc.constantFrom("replace", "insert", "delete"))

  it.prop("a corrupted document: the same outcome, error fields included", [fc.oneof(nestedDoc, flatDoc), style, chunk, fc.array(mutation, { minLength: 1, maxLength: 3 })], ([doc, s, size, mutations]) => {
    const bytes = Array.from(formatted(doc, s))
    for (const [at, ch, kind] of mutations) {
      const i = at % (bytes.length + 1)
      const b = ch.charCodeAt(0)
      if (kind === "replace" && i < bytes.length) bytes[i] = b
      else if (kind === "insert") bytes.splice(i, 0, b)
      else bytes.splice(i, 1)
    }
    const corrupted = Uint8Array.from(bytes)
    expect(plain(decodeDiceBytes("f.json", corrupted, size))).toEqual(plain(reference(corrupted)))
  }, { fastCheck: { numRuns: 400 } })

  it("fixed hostile cases: deep nesting in a header member or an element, repeated keys, bad UTF-8, junk after the end", () => {
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n)
    const img = `{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}`
    const texts = [
      `{"classes": [], "x": ${deep(maxJsonDepth - 1)}, "images": [${img}]}`,
      `{"classes": [], "x": ${deep(maxJsonDepth)}, "images": [${img}]}`,
      `{"classes": [], "images": [${img}, ${deep(maxJsonDepth - 2)}]}`,
      `{"classes": [], "images": [${img}, ${deep(maxJsonDepth - 1)}]}`,
      `{"categories": [], "images": [${img}], "annotations": [{"image_id": 1, "x": ${deep(maxJsonDepth - 3)}}]}`,
      `{"categories": [], "images": [${img}], "annotations": [{"image_id": 1, "x": ${deep(maxJsonDepth - 2)}}]}`,
      `{"classes": [], "images": [${img}], "images": [${img}, ${img}]}`,
      `{"classes": [], "images": [${img}]} x`,
      `{"classes": [], "images": [${img}],}`,
      `{"classes": [], "images": [${img},]}`,
      `{"classes": [], "images": [${img}] "task_type": "pose"}`,
      `{"classes": [], "images": [${img}], "task_type": tru}`,
      `{"classes": [], "\\u0069mages": [${img}]}`,
      `{"classes": [], "images": [${img.replace("a.jpg", "a\\u00e9.jpg")}]}`,
      `[${img}]`,
      `{"classes": [], "images": [1e309]}`,
      `{"classes": [], "images": [${img.replace('"width": 4', '"width": 1e309')}]}`
    ]
    for (const text of texts) {
      const bytes = new TextEncoder().encode(text)
      for (const size of [1, 1 << 20]) expect(plain(decodeDiceBytes("f.json", bytes, size)), text.slice(0, 80)).toEqual(plain(reference(bytes)))
    }
    const badUtf8 = Uint8Array.from([...new TextEncoder().encode(`{"classes": [], "images": [{"id": 1, "file_name": "a`), 0xc3, 0x28, ...new TextEncoder().encode(`.jpg", "width": 4, "height": 4}]}`)])
    expect(plain(decodeDiceBytes("f.json", badUtf8, 1))).toEqual(plain(reference(badUtf8)))
    expect(Either.isLeft(decodeDiceBytes("f.json", badUtf8, 1))).toBe(true)
  })
})
