/**
 * The Schemas of the two DICE JSON shapes and the decoders built on them: `decodeDice` (a
 * parsed document) and `decodeDiceBytes` (a file's bytes) give the normalized model of
 * `diceModel`, or a `DatasetError` naming the file and the JSON path of the first problem.
 * Valid documents take `diceModel`'s fast guards and piecewise decoder; the Schemas decide
 * (and name) everything else. Pure: no I/O.
 */
import { Either, ParseResult, Schema } from "effect"
import { DatasetError } from "../Errors.js"
import {
  buildFlat,
  buildNested,
  decodeDicePieces,
  type DiceDataset,
  isFlatDice,
  looksFlat,
  looksNested,
  type NestedDecodeObserver
} from "./diceModel.js"
import { formatJsonPath, parseJsonBytes } from "./json.js"
import { defaultChunkBytes } from "./jsonChunks.js"

/** Turns a Schema parse error into a `DatasetError` naming the file and the first JSON path. */
export const parseErrorToDatasetError = (file: string, error: ParseResult.ParseError): DatasetError => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  return new DatasetError({
    reason: "InvalidShape",
    file,
    jsonPath: issue ? formatJsonPath(issue.path) : "",
    detail: issue ? issue.message : "invalid dataset shape"
  })
}

// ---------------------------------------------------------------------------------------------
// Schemas (lean: filters only, no transformations, so decoding is one walk over the input)

/** Every number of a DICE document is finite: JSON has no Infinity, but `1e309` parses to it. */
const Num = Schema.Finite
const optionalNullable = <S extends Schema.Schema.Any>(s: S) => Schema.optional(Schema.NullOr(s))

/** An image side in pixels: a finite number greater than 0. */
export const ImageSide = Schema.Finite.pipe(Schema.greaterThan(0, { message: () => "expected a finite number greater than 0" }))
const Bbox = Schema.Tuple(Num, Num, Num, Num).annotations({
  message: () => "expected a bbox of 4 numbers [x, y, w, h]"
})
const Rle = Schema.Struct({
  counts: Schema.Union(Schema.String, Schema.Array(Num)),
  size: Schema.Array(Num)
})
const Polygons = Schema.Array(Schema.Array(Num))
const Segmentation = Schema.Union(Polygons, Rle)
/** Keypoints, flat `[x, y, v, ...]` or as triples. */
export const Keypoints = Schema.Union(Schema.Array(Num), Schema.Array(Schema.Array(Num)))
const IsCrowd = Schema.Union(Num, Schema.Boolean)
const StorageInfo = Schema.Struct({ image_root: optionalNullable(Schema.String) })

/** A category entry: `{id, name, supercategory?, keypoints?, skeleton?}`. */
export const Category = Schema.Struct({
  id: Num,
  name: Schema.String,
  supercategory: optionalNullable(Schema.String),
  keypoints: optionalNullable(Schema.Array(Schema.String)),
  skeleton: optionalNullable(Schema.Array(Schema.Array(Num)))
})

const annotationFields = {
  id: optionalNullable(Num),
  bbox: optionalNullable(Bbox),
  area: optionalNullable(Num),
  iscrowd: optionalNullable(IsCrowd),
  segmentation: optionalNullable(Segmentation),
  keypoints: optionalNullable(Keypoints),
  num_keypoints: optionalNullable(Num)
}

/** An annotation inside a nested image entry (its class by id or name). */
export const NestedAnnotation = Schema.Struct({
  ...annotationFields,
  class_id: optionalNullable(Num),
  class_name: optionalNullable(Schema.String)
})

/** An image entry of a nested document, with its annotations. */
export const NestedImage = Schema.Struct({
  id: Num,
  file_name: Schema.String,
  width: ImageSide,
  height: ImageSide,
  split: optionalNullable(Schema.String),
  annotations: optionalNullable(Schema.Array(NestedAnnotation)),
  annotation: optionalNullable(Schema.Struct({ class_id: optionalNullable(Num), class_name: optionalNullable(Schema.String) }))
})

/** The nested DICE (v1/v2) document. */
export const NestedDice = Schema.Struct({
  task_type: optionalNullable(Schema.String),
  classes: Schema.Array(Category),
  storage_info: optionalNullable(StorageInfo),
  images: Schema.Array(NestedImage)
})

/** A top-level annotation of a flat document (its image by id). */
export const FlatAnnotation = Schema.Struct({
  ...annotationFields,
  image_id: Num,
  category_id: optionalNullable(Num)
})

/** An image entry of a flat document. */
export const FlatImage = Schema.Struct({
  id: Num,
  file_name: Schema.String,
  width: ImageSide,
  height: ImageSide,
  split: optionalNullable(Schema.String)
})

/** The flat COCO-style DICE document. */
export const FlatDice = Schema.Struct({
  task_type: optionalNullable(Schema.String),
  categories: Schema.Array(Category),
  storage_info: optionalNullable(StorageInfo),
  images: Schema.Array(FlatImage),
  annotations: optionalNullable(Schema.Array(FlatAnnotation))
})

const decodeNested = Schema.decodeUnknownEither(NestedDice)
const decodeFlat = Schema.decodeUnknownEither(FlatDice)

/**
 * The dataset unchanged, or a `Duplicate` error naming two images that share an id: the
 * flat shape attaches annotations by `image_id`, so a repeated id would copy one image's
 * objects onto another (and both shapes export the id to COCO).
 */
const uniqueImageIds = (file: string) => (dataset: DiceDataset): Either.Either<DiceDataset, DatasetError> => {
  const firstById = new Map<number, number>()
  for (let i = 0; i < dataset.images.length; i++) {
    const id = dataset.images[i]!.id
    const first = firstById.get(id)
    if (first !== undefined) {
      return Either.left(
        new DatasetError({
          reason: "Duplicate",
          file,
          jsonPath: `images[${i}].id`,
          paths: [dataset.images[first]!.fileName, dataset.images[i]!.fileName],
          detail: `images[${first}] and images[${i}] share the image id ${id}`
        })
      )
    }
    firstById.set(id, i)
  }
  return Either.right(dataset)
}

/** A nested document decoded by its Schema (the path of the first problem on failure), then built. */
const nestedBySchema = (file: string, doc: unknown) =>
  Either.map(Either.mapLeft(decodeNested(doc), (e) => parseErrorToDatasetError(file, e)), buildNested)

/** A flat document decoded by its Schema (the path of the first problem on failure), then built. */
const flatBySchema = (file: string, doc: unknown) =>
  Either.map(Either.mapLeft(decodeFlat(doc), (e) => parseErrorToDatasetError(file, e)), buildFlat)

/** Decodes a parsed nested DICE document into the normalized model. */
export const decodeNestedDice = (file: string, doc: unknown): Either.Either<DiceDataset, DatasetError> =>
  Either.flatMap(looksNested(doc) ? Either.right(buildNested(doc)) : nestedBySchema(file, doc), uniqueImageIds(file))

/** Decodes a parsed flat (COCO-style) DICE document into the normalized model. */
export const decodeFlatDice = (file: string, doc: unknown): Either.Either<DiceDataset, DatasetError> =>
  Either.flatMap(looksFlat(doc) ? Either.right(buildFlat(doc)) : flatBySchema(file, doc), uniqueImageIds(file))

/** Decodes with the Schema only (no fast guard): the reference the fast path must agree with. */
export const decodeDiceWithSchema = (file: string, doc: unknown): Either.Either<DiceDataset, DatasetError> =>
  Either.flatMap(isFlatDice(doc) ? flatBySchema(file, doc) : nestedBySchema(file, doc), uniqueImageIds(file))

/** Decodes a parsed DICE document of either JSON shape. */
export const decodeDice = (file: string, doc: unknown): Either.Either<DiceDataset, DatasetError> =>
  isFlatDice(doc) ? decodeFlatDice(file, doc) : decodeNestedDice(file, doc)

/**
 * Decodes the bytes of a DICE annotation file of either JSON shape: exactly
 * `parseJsonBytes` then `decodeDice`, errors included, but a valid file is parsed and checked
 * piece by piece (about half the peak memory and a fraction of the garbage-collection time
 * of parsing 100+ MB in one go). `chunkBytes` sets the piece size (tests use tiny ones);
 * `observer` watches a nested document's images being decoded.
 */
export const decodeDiceBytes = (
  file: string,
  bytes: Uint8Array,
  chunkBytes: number = defaultChunkBytes,
  observer?: NestedDecodeObserver
): Either.Either<DiceDataset, DatasetError> => {
  const fast = decodeDicePieces(bytes, chunkBytes, observer)
  return fast !== undefined
    ? uniqueImageIds(file)(fast)
    : Either.flatMap(parseJsonBytes(file, bytes), (doc) => decodeDice(file, doc))
}
