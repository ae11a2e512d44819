/**
 * The normalized model → COCO instance documents MMDetection and pycocotools load as they
 * are. Pure: no I/O.
 */
import type { DiceDataset, DiceRle } from "./diceModel.js"
import { countSkip, type ImageObject, imageObjects, type SkipCounts } from "./objectRules.js"
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

/** A piece of a COCO file's text, for the file it belongs to. */
export type CocoPiece = readonly [file: CocoFile, text: string]

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
 * The COCO annotation of an object, as `JSON.stringify` of the `CocoAnnotation` (fields in its
 * order) would print it, written out directly: numbers as `Number#toString` prints them
 * (JSON's form for finite numbers; an RLE mask, whose fields are the source's, is
 * stringified). `undefined` when its area is beyond any number: JSON would carry it as null,
 * where pycocotools needs a number.
 */
const cocoAnnotationJson = (o: ImageObject, id: number, imageId: number, withMask: boolean): string | undefined => {
  const [x1, y1, x2, y2] = o.box
  const w = x2 - x1, h = y2 - y1
  const computed = withMask && o.polygons !== undefined ? polygonArea(o.polygons) : w * h
  // The source area describes the unclipped object; a clipped or rectangle-filled one is measured again.
  const area = o.clipped || (withMask && o.annotation.polygons === undefined && o.polygons !== undefined)
    ? computed
    : o.annotation.area ?? computed
  if (!Number.isFinite(area)) return undefined
  let text = `{"id":${JSON.stringify(id)},"image_id":${JSON.stringify(imageId)},"category_id":${JSON.stringify(o.categoryId)},` +
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
 * number. Pure: no I/O; the writer gathers the pieces into writes.
 */
export function* cocoFilePieces(
  dataset: DiceDataset,
  task: "detection" | "segmentation" | "pose",
  splits: ReadonlyArray<DatasetSplit>,
  fileNames: ReadonlyArray<string>,
  skipped: SkipCounts
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
  function* element(file: CocoFile, text: string): Generator<CocoPiece> {
    yield [file, started.has(file) ? `,${text}` : text]
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
  let nextId = 1
  let negatives = 0
  for (let i = 0; i < dataset.images.length; i++) {
    const image = dataset.images[i]!
    const annotations: Array<string> = []
    for (const o of imageObjects(image, ctx, skipped)) {
      const json = cocoAnnotationJson(o, nextId, image.id, task === "segmentation")
      if (json === undefined) {
        countSkip(skipped, "non_finite_area")
        continue
      }
      nextId++
      annotations.push(json)
    }
    if (annotations.length === 0) {
      negatives++
      continue
    }
    const text = annotations.join(",")
    yield* element("all", text)
    yield* element(splits[i]!, text)
  }
  yield* member(`],"categories":${JSON.stringify(categories)}}`)
  return { files, objects: nextId - 1, negatives, categories }
}
