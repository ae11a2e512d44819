/**
 * Decoders of the platform's LabelMe v0.9 layout: `label_map.json` plus one LabelMe file per
 * image, into the normalized dataset model. Pure: the caller reads the files.
 */
import { Either, Schema } from "effect"
import type { DatasetError } from "../Errors.js"
import { type DiceAnnotation, type DiceCategory, type DiceDataset, type DiceImage, isBackgroundName, parseSplit } from "./diceModel.js"
import { ImageSide, parseErrorToDatasetError } from "./diceSchema.js"

const optionalNullable = <S extends Schema.Schema.Any>(s: S) => Schema.optional(Schema.NullOr(s))

/** The `label_map.json` document. */
export const LabelMap = Schema.Struct({
  task_type: optionalNullable(Schema.String),
  class_summary: Schema.Struct({
    classes: Schema.Array(Schema.Struct({ name: Schema.String, idx: Schema.Finite }))
  }),
  data_summary: Schema.Array(Schema.Struct({
    img_path: Schema.String,
    label_path: Schema.String,
    mask_path: optionalNullable(Schema.String)
  }))
})

/** One per-image LabelMe file. */
export const LabelMeFile = Schema.Struct({
  shapes: Schema.Array(Schema.Struct({
    label: Schema.String,
    points: Schema.Array(Schema.Tuple(Schema.Finite, Schema.Finite)),
    shape_type: optionalNullable(Schema.String)
  })),
  imageWidth: ImageSide,
  imageHeight: ImageSide,
  split: optionalNullable(Schema.String)
})

/** A decoded `label_map.json`: task, categories and the per-image entries (base names only). */
export interface LabelMeIndex {
  readonly taskType: string | undefined
  readonly categories: ReadonlyArray<DiceCategory>
  readonly backgroundIds: ReadonlyArray<number>
  /** Category id by class name, background included. */
  readonly idByName: ReadonlyMap<string, number>
  readonly entries: ReadonlyArray<{ readonly imageName: string; readonly labelName: string }>
}

/** The base name of a path that may be a Windows absolute path (`E:\data\images\x.jpg`). */
export const labelmeBaseName = (path: string): string => {
  const parts = path.split(/[\\/]/)
  return parts[parts.length - 1] ?? path
}

const decodeMap = Schema.decodeUnknownEither(LabelMap)
const decodeFile = Schema.decodeUnknownEither(LabelMeFile)

/** Decodes a parsed `label_map.json`. */
export const decodeLabelMap = (file: string, doc: unknown): Either.Either<LabelMeIndex, DatasetError> =>
  Either.map(Either.mapLeft(decodeMap(doc), (e) => parseErrorToDatasetError(file, e)), (raw) => {
    const categories: Array<DiceCategory> = []
    const backgroundIds: Array<number> = []
    const idByName = new Map<string, number>()
    for (const c of raw.class_summary.classes) {
      if (!idByName.has(c.name)) idByName.set(c.name, c.idx)
      if (isBackgroundName(c.name)) backgroundIds.push(c.idx)
      else categories.push({ id: c.idx, name: c.name, supercategory: undefined })
    }
    const taskType = raw.task_type === "cls"
      ? "classification"
      : raw.task_type === "det"
      ? "detection"
      : raw.task_type === "seg"
      ? "segmentation"
      : raw.task_type ?? undefined
    return {
      taskType,
      categories,
      backgroundIds,
      idByName,
      entries: raw.data_summary.map((e) => ({
        imageName: labelmeBaseName(e.img_path),
        labelName: labelmeBaseName(e.label_path)
      }))
    }
  })

const extent = (points: ReadonlyArray<readonly [number, number]>): readonly [number, number, number, number] => {
  let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity
  for (const [x, y] of points) {
    if (x < x1) x1 = x
    if (x > x2) x2 = x
    if (y < y1) y1 = y
    if (y > y2) y2 = y
  }
  return [x1, y1, x2 - x1, y2 - y1]
}

const shapeAnnotation = (
  categoryId: number,
  bbox: readonly [number, number, number, number],
  polygons: ReadonlyArray<ReadonlyArray<number>> | undefined
): DiceAnnotation => ({
  id: undefined,
  categoryId,
  bbox,
  area: undefined,
  iscrowd: false,
  polygons,
  rle: undefined,
  keypoints: undefined,
  numKeypoints: undefined
})

/**
 * Decodes one parsed LabelMe file into an image: rectangles become boxes (corners in any
 * order), polygons become instance masks with their extent as box, a `classification`
 * file's point shape names the image class; other shapes are skipped by reason.
 */
export const decodeLabelMeImage = (
  file: string,
  doc: unknown,
  index: LabelMeIndex,
  id: number,
  imageName: string
): Either.Either<{ readonly image: DiceImage; readonly skipped: Readonly<Record<string, number>> }, DatasetError> =>
  Either.map(Either.mapLeft(decodeFile(doc), (e) => parseErrorToDatasetError(file, e)), (raw) => {
    const skipped: Record<string, number> = {}
    const annotations: Array<DiceAnnotation> = []
    let imageCategoryId: number | undefined
    for (const shape of raw.shapes) {
      const categoryId = index.idByName.get(shape.label) ?? Number.NaN
      const type = shape.shape_type ?? "polygon"
      if (type === "rectangle" && shape.points.length >= 2) {
        annotations.push(shapeAnnotation(categoryId, extent(shape.points.slice(0, 2)), undefined))
      } else if (type === "polygon" && shape.points.length > 0) {
        annotations.push(shapeAnnotation(categoryId, extent(shape.points), [shape.points.flat()]))
      } else if (type === "point" && index.taskType === "classification" && imageCategoryId === undefined) {
        imageCategoryId = categoryId
      } else {
        skipped[`unsupported_shape_${type}`] = (skipped[`unsupported_shape_${type}`] ?? 0) + 1
      }
    }
    return {
      image: {
        id,
        fileName: imageName,
        width: raw.imageWidth,
        height: raw.imageHeight,
        split: parseSplit(raw.split),
        annotations,
        imageCategoryId
      },
      skipped
    }
  })

/** Assembles the decoded LabelMe images into the normalized dataset. */
export const labelmeDataset = (
  index: LabelMeIndex,
  decoded: ReadonlyArray<{ readonly image: DiceImage; readonly skipped: Readonly<Record<string, number>> }>
): DiceDataset => {
  const skipped: Record<string, number> = {}
  for (const d of decoded) for (const [k, n] of Object.entries(d.skipped)) skipped[k] = (skipped[k] ?? 0) + n
  return {
    taskType: index.taskType,
    storageImageRoot: undefined,
    categories: index.categories,
    backgroundIds: index.backgroundIds,
    images: decoded.map((d) => d.image),
    skipped
  }
}
