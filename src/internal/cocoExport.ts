/**
 * The normalized model → COCO instance documents MMDetection and pycocotools load as they
 * are. Pure: no I/O.
 */
import type { DiceDataset, DiceImage, DiceRle } from "./diceModel.js"
import { countSkip, type ImageObject, imageObjects, type ObjectContext, type SkipCounts } from "./objectRules.js"
import { yoloContext } from "./yoloLabels.js"
import type { DatasetSplit } from "../Converter.js"

/** A COCO image entry. */
export interface CocoImage {
  readonly id: number
  /** Relative to the image root given in the conversion report. */
  readonly file_name: string
  readonly width: number
  readonly height: number
}

/** A COCO instance annotation. */
export interface CocoAnnotation {
  /** Starts at 1 (pycocotools treats a ground-truth id of 0 as unmatched). */
  readonly id: number
  readonly image_id: number
  readonly category_id: number
  readonly bbox: readonly [number, number, number, number]
  readonly area: number
  readonly iscrowd: 0 | 1
  readonly segmentation?: ReadonlyArray<ReadonlyArray<number>> | DiceRle
  readonly keypoints?: ReadonlyArray<number>
  readonly num_keypoints?: number
}

/** A COCO category: source id kept, background dropped. */
export interface CocoCategory {
  readonly id: number
  readonly name: string
  readonly supercategory: string
  /** Pose: the keypoint names, when the source names them. */
  readonly keypoints?: ReadonlyArray<string>
  /** Pose: the source's skeleton, when given. */
  readonly skeleton?: ReadonlyArray<ReadonlyArray<number>>
}

/** One COCO instances file. */
export interface CocoDocument {
  readonly images: ReadonlyArray<CocoImage>
  readonly annotations: ReadonlyArray<CocoAnnotation>
  readonly categories: ReadonlyArray<CocoCategory>
}

/** A COCO instances file the converter writes: everything (`all`), or one split's. */
export type CocoFile = "all" | DatasetSplit

/** A piece of a COCO file's text (as a string, or UTF-8 bytes), for the file it belongs to. */
export type CocoPiece = readonly [file: CocoFile, text: string | Uint8Array]

/**
 * The last images' annotations printed by another thread (see `cocoPrebuild`), each but its
 * id: consecutive images from `from`, with what printing them skipped.
 */
export interface PrintedBodies {
  /** The first image's index. */
  readonly from: number
  /** Each image's annotation count. */
  readonly counts: Uint32Array
  /** Where each annotation's body (`cocoImageAnnotationBodies`) ends in `bytes`, in order. */
  readonly ends: Uint32Array
  /** The bodies one after the other, as UTF-8. */
  readonly bytes: Uint8Array
  /** What printing these images skipped, by reason (in the order first met). */
  readonly skipped: SkipCounts
}

/**
 * The printing of a dataset's annotations shared with another thread, which prints from the
 * last image backwards while `cocoFilePieces` prints from the first one on.
 */
export interface CocoPrintSharing {
  /** Claims images from `from` on for this thread: the end of the claim, `from` once the rest is the other thread's. */
  readonly claim: (from: number) => number
  /**
   * The other thread's images, from `from` (where claiming ended) to the last, in order, once
   * it has printed them all; `undefined` when they cannot be used (this thread prints them).
   */
  readonly rest: (from: number) => ReadonlyArray<PrintedBodies> | undefined
}

/** What the COCO files hold, once every piece was produced. */
export interface CocoSummary {
  /** The files produced, in the order they were opened (present splits, then `all`). */
  readonly files: ReadonlyArray<CocoFile>
  /** Annotations written (in `all`). */
  readonly objects: number
  /** Images without an annotation. */
  readonly negatives: number
  readonly categories: ReadonlyArray<CocoCategory>
}

/** Area of polygons by the shoelace formula (summed over parts). */
export const polygonArea = (polygons: ReadonlyArray<ReadonlyArray<number>>): number => {
  let total = 0
  for (const p of polygons) {
    let twice = 0
    const n = Math.floor(p.length / 2)
    for (let i = 0; i < n; i++) {
      const j = (i + 1) % n
      twice += p[2 * i]! * p[2 * j + 1]! - p[2 * j]! * p[2 * i + 1]!
    }
    total += Math.abs(twice) / 2
  }
  return total
}

/** `JSON.stringify` of numbers: joined when all are finite (the same text: both print a number by `Number#toString`). */
const numbersJson = (values: ReadonlyArray<number>): string => {
  for (const v of values) if (!Number.isFinite(v)) return JSON.stringify(values)
  return `[${values.join(",")}]`
}

/**
 * The COCO annotation of an object but its id: what follows `{"id":N` in `JSON.stringify` of
 * the `CocoAnnotation` (fields in its order), written out directly: numbers as
 * `Number#toString` prints them (JSON's form for finite numbers; an RLE mask, whose fields are
 * the source's, is stringified). Without the id, an annotation can be printed before its
 * number is known. `undefined` when its area is beyond any number: JSON would carry it as
 * null, where pycocotools needs a number.
 */
const cocoAnnotationBody = (o: ImageObject, imageId: number, withMask: boolean): string | undefined => {
  const [x1, y1, x2, y2] = o.box
  const w = x2 - x1, h = y2 - y1
  const computed = withMask && o.polygons !== undefined ? polygonArea(o.polygons) : w * h
  // The source area describes the unclipped object; a clipped or rectangle-filled one is measured again.
  const area = o.clipped || (withMask && o.annotation.polygons === undefined && o.polygons !== undefined)
    ? computed
    : o.annotation.area ?? computed
  if (!Number.isFinite(area)) return undefined
  let text = `,"image_id":${JSON.stringify(imageId)},"category_id":${JSON.stringify(o.categoryId)},` +
    `"bbox":${numbersJson([x1, y1, w, h])},"area":${area},"iscrowd":${o.crowd ? 1 : 0}`
  if (withMask) {
    if (o.polygons !== undefined) text += `,"segmentation":[${o.polygons.map(numbersJson).join(",")}]`
    else if (o.rle !== undefined) text += `,"segmentation":${JSON.stringify(o.rle)}`
  }
  if (o.keypoints !== undefined) {
    let visible = 0
    for (let i = 2; i < o.keypoints.length; i += 3) if (o.keypoints[i]! > 0) visible++
    text += `,"keypoints":${numbersJson(o.keypoints)},"num_keypoints":${visible}`
  }
  return `${text}}`
}

/**
 * One image's annotations as COCO text bodies (`cocoAnnotationBody`: each but its id), one
 * per object kept. Skips are counted in `skipped`: the object rules' reasons, and
 * `non_finite_area`.
 */
export const cocoImageAnnotationBodies = (
  image: DiceImage,
  ctx: ObjectContext,
  withMask: boolean,
  skipped: SkipCounts
): Array<string> => {
  const bodies: Array<string> = []
  for (const o of imageObjects(image, ctx, skipped)) {
    const body = cocoAnnotationBody(o, image.id, withMask)
    if (body === undefined) countSkip(skipped, "non_finite_area")
    else bodies.push(body)
  }
  return bodies
}

/**
 * Annotation bodies numbered from `firstId` (ids are whole numbers: printed as JSON prints
 * them), joined by commas into one flat string (written twice, to `all` and to a split's file:
 * a string built by `+=` would be flattened each time).
 */
export const numberedAnnotations = (bodies: ReadonlyArray<string>, firstId: number): string => {
  const annotations = new Array<string>(bodies.length)
  for (let j = 0; j < bodies.length; j++) annotations[j] = `{"id":${firstId + j}${bodies[j]}`
  return annotations.join(",")
}

/** A comma as UTF-8, between elements given as bytes. */
const commaBytes = new Uint8Array([0x2c])

/**
 * The COCO instance documents of a detection, segmentation or pose dataset, as the text of
 * each file in pieces: `instances_all.json` (`all`) and one per split present, each exactly
 * `JSON.stringify` of `{ images, annotations, categories }`. Streamed in one pass per
 * member, every element stringified once and shared by `all` and its split's file, so no
 * document is ever held whole (800,000 annotations are about 150 MB of text).
 *
 * `fileNames[i]` is image `i`'s path relative to the image root. The objects are
 * `imageObjects`' (the YOLO writer's), so both outputs hold the same objects; crowd regions
 * and RLE masks, which YOLO cannot hold, are kept here. A segmentation task gives every
 * annotation a `segmentation` (a box-only one its clipped box as a rectangle); detection and
 * pose write boxes (and keypoints) only, so no file mixes annotations with and without a
 * mask. Annotations are numbered 1..N in dataset order (the same id in `all` and its split
 * file); skipped and counted besides the object rules' reasons: an area too large for a
 * number. With `sharing`, the annotations are printed on two threads (the other thread's
 * the same text). Pure but for `sharing`: no I/O; the writer gathers the pieces into writes.
 * A piece given as bytes is valid until the next one is asked for (its buffer is reused).
 */
export function* cocoFilePieces(
  dataset: DiceDataset,
  task: "detection" | "segmentation" | "pose",
  splits: ReadonlyArray<DatasetSplit>,
  fileNames: ReadonlyArray<string>,
  skipped: SkipCounts,
  sharing?: CocoPrintSharing
): Generator<CocoPiece, CocoSummary> {
  const ctx = yoloContext(dataset, task)
  const categories: Array<CocoCategory> = dataset.categories.map((c) => ({
    id: c.id,
    name: c.name,
    supercategory: c.supercategory ?? "none",
    ...(task === "pose" && c.keypointNames ? { keypoints: c.keypointNames } : {}),
    ...(task === "pose" && c.skeleton ? { skeleton: c.skeleton } : {})
  }))
  const present = new Set(splits)
  const files: Array<CocoFile> = [...(["train", "val", "test"] as const).filter((s) => present.has(s)), "all"]
  // The files whose current array has an element already (the next one needs a comma).
  const started = new Set<CocoFile>()
  function* element(file: CocoFile, text: string | Uint8Array): Generator<CocoPiece> {
    if (typeof text === "string") yield [file, started.has(file) ? `,${text}` : text]
    else {
      if (started.has(file)) yield [file, commaBytes]
      yield [file, text]
    }
    started.add(file)
  }
  function* member(text: string): Generator<CocoPiece> {
    for (const f of files) yield [f, text]
    started.clear()
  }

  yield* member(`{"images":[`)
  for (let i = 0; i < dataset.images.length; i++) {
    const image = dataset.images[i]!
    const text = JSON.stringify({ id: image.id, file_name: fileNames[i]!, width: image.width, height: image.height } satisfies CocoImage)
    yield* element("all", text)
    yield* element(splits[i]!, text)
  }
  yield* member(`],"annotations":[`)
  const withMask = task === "segmentation"
  const count = dataset.images.length
  let nextId = 1
  let negatives = 0
  function* annotations(i: number, text: string | Uint8Array): Generator<CocoPiece> {
    if (text.length === 0) negatives++
    else {
      yield* element("all", text)
      yield* element(splits[i]!, text)
    }
  }
  function* printImages(from: number, to: number): Generator<CocoPiece> {
    for (let i = from; i < to; i++) {
      const bodies = cocoImageAnnotationBodies(dataset.images[i]!, ctx, withMask, skipped)
      yield* annotations(i, numberedAnnotations(bodies, nextId))
      nextId += bodies.length
    }
  }
  let printedTo = 0
  if (sharing !== undefined) {
    for (let end = sharing.claim(0); end > printedTo; end = sharing.claim(printedTo)) {
      yield* printImages(printedTo, end)
      printedTo = end
    }
    // The writer copies each piece before the next step, so one buffer takes every chunk's text.
    let scratch: Uint8Array = new Uint8Array(0)
    for (const printed of (printedTo < count ? sharing.rest(printedTo) : undefined) ?? []) {
      for (const reason in printed.skipped) countSkip(skipped, reason, printed.skipped[reason])
      const numbered = numberBodies(printed, nextId, scratch)
      if (numbered.bytes.buffer !== scratch.buffer) scratch = new Uint8Array(numbered.bytes.buffer)
      let start = 0
      for (let k = 0; k < printed.counts.length; k++) {
        yield* annotations(printed.from + k, numbered.bytes.subarray(start, numbered.ends[k]))
        start = numbered.ends[k]!
        nextId += printed.counts[k]!
      }
      printedTo = printed.from + printed.counts.length
    }
  }
  yield* printImages(printedTo, count)
  yield* member(`],"categories":${JSON.stringify(categories)}}`)
  return { files, objects: nextId - 1, negatives, categories }
}

const encoder = new TextEncoder()

/** Consecutive images' annotations printed each but its id (`cocoImageAnnotationBodies`), as `PrintedBodies` hold them. */
export const printImageBodies = (
  images: ReadonlyArray<DiceImage>,
  ctx: ObjectContext,
  withMask: boolean,
  skipped: SkipCounts
): Pick<PrintedBodies, "counts" | "ends" | "bytes"> => {
  const bodies: Array<string> = []
  const counts = new Uint32Array(images.length)
  for (let i = 0; i < images.length; i++) {
    const printed = cocoImageAnnotationBodies(images[i]!, ctx, withMask, skipped)
    counts[i] = printed.length
    for (const body of printed) bodies.push(body)
  }
  const joined = bodies.join("")
  const bytes = encoder.encode(joined)
  const ends = new Uint32Array(bodies.length)
  // Text of ASCII only (numbers and keys; an RLE's fields may hold anything) ends where its characters do.
  const ascii = bytes.length === joined.length
  let end = 0
  for (let j = 0; j < bodies.length; j++) {
    end += ascii ? bodies[j]!.length : encoder.encode(bodies[j]!).length
    ends[j] = end
  }
  return { counts, ends, bytes }
}

const OPEN_ID = encoder.encode(`{"id":`)
const COMMA = 0x2c

/**
 * Printed bodies numbered from `firstId`: each image's annotations as `cocoFilePieces` prints
 * them (`numberedAnnotations` of its bodies), one after the other, with where each image's
 * text ends. The text is written into `scratch` when it fits there (the caller's buffer,
 * reused from call to call), else into a new buffer.
 */
export const numberBodies = (
  printed: PrintedBodies,
  firstId: number,
  scratch?: Uint8Array
): { readonly bytes: Uint8Array; readonly ends: Uint32Array } => {
  const annotations = printed.ends.length
  // Per annotation at most: a comma, `{"id":` and the digits of a safe integer.
  const size = printed.bytes.length + annotations * (1 + OPEN_ID.length + 16)
  const out = scratch !== undefined && scratch.length >= size ? scratch : new Uint8Array(size)
  const imageEnds = new Uint32Array(printed.counts.length)
  let at = 0
  let j = 0
  let start = 0
  for (let k = 0; k < printed.counts.length; k++) {
    for (let n = 0; n < printed.counts[k]!; n++, j++) {
      if (n > 0) out[at++] = COMMA
      out.set(OPEN_ID, at)
      at += OPEN_ID.length
      const digits = String(firstId + j)
      for (let d = 0; d < digits.length; d++) out[at++] = digits.charCodeAt(d)
      const end = printed.ends[j]!
      out.set(printed.bytes.subarray(start, end), at)
      at += end - start
      start = end
    }
    imageEnds[k] = at
  }
  return { bytes: out.subarray(0, at), ends: imageEnds }
}
