/**
 * The normalized dataset model every input shape decodes into, and the fast decoding of the
 * two DICE JSON shapes (nested and flat COCO-style): structural guards that accept a subset of
 * what the Schemas of `diceSchema` accept, the builders of the model, and the piecewise decoder
 * of a document's bytes. Pure, no I/O, and free of `effect`, so the threads that decode (see
 * `labelDecodeThread`) start in a fraction of the time; the Schemas, which name the JSON path
 * of a document's first problem, are `diceSchema`'s.
 */
import type { DatasetSplit } from "../Converter.js"
import type { Category, FlatAnnotation, FlatDice, FlatImage, Keypoints, NestedAnnotation, NestedDice, NestedImage } from "./diceSchema.js"
import { chunkStarts, forEachChunk, maxJsonDepth, parseRange, scanObject, type ScannedMember } from "./jsonChunks.js"

/** A COCO run-length-encoded mask, kept as it is. */
export interface DiceRle {
  readonly counts: string | ReadonlyArray<number>
  readonly size: ReadonlyArray<number>
}

/** One object annotation, whatever shape it came from. */
export interface DiceAnnotation {
  /** Source annotation id, when the source had one. */
  readonly id: number | undefined
  /** Category id (not the class index); `undefined` when the annotation names no category. */
  readonly categoryId: number | undefined
  /** `[x, y, w, h]` in pixels, top-left origin. */
  readonly bbox: readonly [number, number, number, number] | undefined
  readonly area: number | undefined
  readonly iscrowd: boolean
  /** Polygons as flat `[x1, y1, x2, y2, ...]` lists, in pixels. */
  readonly polygons: ReadonlyArray<ReadonlyArray<number>> | undefined
  readonly rle: DiceRle | undefined
  /** Keypoints as a flat `[x, y, v, ...]` list, in pixels. */
  readonly keypoints: ReadonlyArray<number> | undefined
  readonly numKeypoints: number | undefined
}

/** One image with its annotations. */
export interface DiceImage {
  readonly id: number
  /** The image path as written in the source, relative to the image root. */
  readonly fileName: string
  readonly width: number
  readonly height: number
  readonly split: DatasetSplit | undefined
  readonly annotations: ReadonlyArray<DiceAnnotation>
  /** Category id of the whole image (classification), when given. */
  readonly imageCategoryId: number | undefined
}

/** One category of the source, in file order. */
export interface DiceCategory {
  readonly id: number
  readonly name: string
  readonly supercategory: string | undefined
  /** Keypoint names of a pose category (COCO's `keypoints`), when given. */
  readonly keypointNames?: ReadonlyArray<string> | undefined
  /** Keypoint skeleton of a pose category (COCO's 1-based `skeleton` pairs), when given. */
  readonly skeleton?: ReadonlyArray<ReadonlyArray<number>> | undefined
}

/** A decoded dataset: categories without background, images, and what decoding skipped. */
export interface DiceDataset {
  /** Task type named by the file, when it names one. */
  readonly taskType: string | undefined
  /** `storage_info.image_root` as written in the source. */
  readonly storageImageRoot: string | undefined
  /** Categories in file order, background dropped: the class index is the position here. */
  readonly categories: ReadonlyArray<DiceCategory>
  /** Ids of the dropped background categories. */
  readonly backgroundIds: ReadonlyArray<number>
  readonly images: ReadonlyArray<DiceImage>
  /** Annotations dropped while decoding, by reason (e.g. `unknown_image`). */
  readonly skipped: Readonly<Record<string, number>>
}

/** Whether a category name is the background pseudo-class. */
export const isBackgroundName = (name: string): boolean => name === "__background__" || name === "_background_"

/** Reads a split field: `train`, `val`/`valid`/`validation`, `test`; anything else is no split. */
export const parseSplit = (raw: string | null | undefined): DatasetSplit | undefined => {
  switch (raw?.trim().toLowerCase()) {
    case "train":
      return "train"
    case "val":
    case "valid":
    case "validation":
      return "val"
    case "test":
      return "test"
    default:
      return undefined
  }
}
type RawAnnotation = typeof FlatAnnotation.Type | typeof NestedAnnotation.Type

const flattenKeypoints = (k: typeof Keypoints.Type | null | undefined): ReadonlyArray<number> | undefined => {
  if (k === null || k === undefined) return undefined
  if (k.length === 0) return []
  return typeof k[0] === "number" ? (k as ReadonlyArray<number>) : (k as ReadonlyArray<ReadonlyArray<number>>).flat()
}

const toAnnotation = (raw: RawAnnotation, categoryId: number | undefined): DiceAnnotation => {
  const seg = raw.segmentation
  const isRle = seg !== null && seg !== undefined && !Array.isArray(seg)
  return {
    id: raw.id ?? undefined,
    categoryId,
    bbox: raw.bbox ?? undefined,
    area: raw.area ?? undefined,
    iscrowd: raw.iscrowd === true || raw.iscrowd === 1,
    polygons: isRle || seg === null || seg === undefined ? undefined : (seg as ReadonlyArray<ReadonlyArray<number>>),
    rle: isRle ? (seg as DiceRle) : undefined,
    keypoints: flattenKeypoints(raw.keypoints),
    numKeypoints: raw.num_keypoints ?? undefined
  }
}

/** Splits categories into the real ones (file order) and the background ids. */
export const splitCategories = (all: ReadonlyArray<typeof Category.Type>) => {
  const categories: Array<DiceCategory> = []
  const backgroundIds: Array<number> = []
  for (const c of all) {
    if (isBackgroundName(c.name)) backgroundIds.push(c.id)
    else {
      categories.push({
        id: c.id,
        name: c.name,
        supercategory: c.supercategory ?? undefined,
        ...(c.keypoints ? { keypointNames: c.keypoints } : {}),
        ...(c.skeleton ? { skeleton: c.skeleton } : {})
      })
    }
  }
  return { categories, backgroundIds }
}

/** Whether a parsed DICE document has the flat COCO-style shape (top-level annotations/categories). */
export const isFlatDice = (doc: unknown): boolean => {
  if (typeof doc !== "object" || doc === null) return false
  const record = doc as Record<string, unknown>
  return Array.isArray(record["annotations"]) || (record["categories"] !== undefined && record["classes"] === undefined)
}

/** An image entry of either JSON shape (the fields both share). */
type RawImage = typeof FlatImage.Type

/** The normalized image of a source image entry, given its annotations and image-level class. */
const toImage = (
  img: RawImage,
  annotations: ReadonlyArray<DiceAnnotation>,
  imageCategoryId: number | undefined
): DiceImage => ({
  id: img.id,
  fileName: img.file_name,
  width: img.width,
  height: img.height,
  split: parseSplit(img.split),
  annotations,
  imageCategoryId
})

/** The normalized dataset of a document of either JSON shape, given its categories and images. */
const toDataset = (
  raw: Pick<typeof FlatDice.Type, "task_type" | "storage_info">,
  allCategories: ReadonlyArray<typeof Category.Type>,
  images: ReadonlyArray<DiceImage>,
  skipped: Readonly<Record<string, number>>
): DiceDataset => {
  const { backgroundIds, categories } = splitCategories(allCategories)
  return {
    taskType: raw.task_type ?? undefined,
    storageImageRoot: raw.storage_info?.image_root ?? undefined,
    categories,
    backgroundIds,
    images,
    skipped
  }
}

/** The builder of nested image entries, given the document's classes (class names resolve to ids). */
const nestedImageBuilder = (classes: ReadonlyArray<typeof Category.Type>) => {
  const idByName = new Map<string, number>()
  for (const c of classes) if (!idByName.has(c.name)) idByName.set(c.name, c.id)
  const resolve = (id: number | null | undefined, name: string | null | undefined) =>
    id ?? (name === null || name === undefined ? undefined : idByName.get(name) ?? Number.NaN)
  return (img: typeof NestedImage.Type): DiceImage => {
    // Pushed from one literal, every image's array gets the same elements kind (`map` gives
    // empty ones another), so the code reading them stays optimized.
    const annotations: Array<DiceAnnotation> = []
    for (const a of img.annotations ?? []) annotations.push(toAnnotation(a, resolve(a.class_id, a.class_name)))
    return toImage(img, annotations, img.annotation ? resolve(img.annotation.class_id, img.annotation.class_name) : undefined)
  }
}

/** The dataset of a nested document that passed `looksNested` (or the Schema). */
export const buildNested = (raw: typeof NestedDice.Type): DiceDataset =>
  toDataset(raw, raw.classes, raw.images.map(nestedImageBuilder(raw.classes)), {})

/**
 * The builder of a flat document's images: annotations are added one by one (in file order)
 * to the image they name, or counted as `unknown_image`; `finish` gives the images in order.
 */
const flatImagesBuilder = (rawImages: ReadonlyArray<RawImage>) => {
  const byImage = new Map<number, Array<DiceAnnotation>>()
  for (const img of rawImages) byImage.set(img.id, [])
  let orphans = 0
  return {
    add: (a: typeof FlatAnnotation.Type): void => {
      const list = byImage.get(a.image_id)
      if (list === undefined) orphans++
      else list.push(toAnnotation(a, a.category_id ?? undefined))
    },
    finish: (): { images: Array<DiceImage>; skipped: Readonly<Record<string, number>> } => ({
      images: rawImages.map((img) => toImage(img, byImage.get(img.id)!, undefined)),
      skipped: orphans > 0 ? { unknown_image: orphans } : {}
    })
  }
}

/** The dataset of a flat document that passed `looksFlat` (or the Schema): annotations attached to their images. */
export const buildFlat = (raw: typeof FlatDice.Type): DiceDataset => {
  const builder = flatImagesBuilder(raw.images)
  for (const a of raw.annotations ?? []) builder.add(a)
  const { images, skipped } = builder.finish()
  return toDataset(raw, raw.categories, images, skipped)
}

// Fast structural guards. Each accepts a subset of what the matching Schema accepts, so a
// document passing its guard decodes to exactly what the Schema would give; anything else goes
// through the Schema, which names the offending JSON path. (Schema decoding walks 200k
// annotations several times slower than these loops.)

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const isAbsent = (u: unknown): boolean => u === undefined || u === null
const isNum = (u: unknown): boolean => typeof u === "number" && Number.isFinite(u)
const optNum = (u: unknown): boolean => isAbsent(u) || isNum(u)
const optStr = (u: unknown): boolean => isAbsent(u) || typeof u === "string"
const isSide = (u: unknown): boolean => isNum(u) && (u as number) > 0
const isNumArray = (u: unknown): boolean => {
  if (!Array.isArray(u)) return false
  for (const v of u) if (!isNum(v)) return false
  return true
}
const isNumArrays = (u: unknown): boolean => Array.isArray(u) && u.every(isNumArray)
const optBbox = (u: unknown): boolean => isAbsent(u) || (isNumArray(u) && (u as Array<number>).length === 4)
const optSegmentation = (u: unknown): boolean =>
  isAbsent(u) || isNumArrays(u) ||
  (isObject(u) && (typeof u["counts"] === "string" || isNumArray(u["counts"])) && isNumArray(u["size"]))
const optKeypoints = (u: unknown): boolean => isAbsent(u) || isNumArray(u) || isNumArrays(u)
const isAnnotationBase = (a: Record<string, unknown>): boolean =>
  optNum(a["id"]) && optBbox(a["bbox"]) && optNum(a["area"]) &&
  (isAbsent(a["iscrowd"]) || isNum(a["iscrowd"]) || typeof a["iscrowd"] === "boolean") &&
  optSegmentation(a["segmentation"]) && optKeypoints(a["keypoints"]) && optNum(a["num_keypoints"])
const isCategories = (u: unknown): boolean =>
  Array.isArray(u) && u.every((c) =>
    isObject(c) && isNum(c["id"]) && typeof c["name"] === "string" && optStr(c["supercategory"]) &&
    (isAbsent(c["keypoints"]) || (Array.isArray(c["keypoints"]) && c["keypoints"].every((k) => typeof k === "string"))) &&
    (isAbsent(c["skeleton"]) || isNumArrays(c["skeleton"]))
  )
const isImageBase = (i: Record<string, unknown>): boolean =>
  isNum(i["id"]) && typeof i["file_name"] === "string" && isSide(i["width"]) && isSide(i["height"]) && optStr(i["split"])
const isHeader = (d: Record<string, unknown>): boolean =>
  optStr(d["task_type"]) && (isAbsent(d["storage_info"]) || (isObject(d["storage_info"]) && optStr(d["storage_info"]["image_root"])))

const isNestedImage = (img: unknown): img is typeof NestedImage.Type => {
  if (!isObject(img) || !isImageBase(img)) return false
  const anns = img["annotations"]
  if (!isAbsent(anns)) {
    if (!Array.isArray(anns)) return false
    for (const a of anns) {
      if (!isObject(a) || !isAnnotationBase(a) || !optNum(a["class_id"]) || !optStr(a["class_name"])) return false
    }
  }
  const label = img["annotation"]
  return isAbsent(label) || (isObject(label) && optNum(label["class_id"]) && optStr(label["class_name"]))
}

const isFlatImage = (img: unknown): img is RawImage => isObject(img) && isImageBase(img)

const isFlatAnnotation = (a: unknown): a is typeof FlatAnnotation.Type =>
  isObject(a) && isAnnotationBase(a) && isNum(a["image_id"]) && optNum(a["category_id"])

/** Whether a parsed document is plainly a valid nested DICE document (the fast guard of `decodeDice`). */
export const looksNested = (u: unknown): u is typeof NestedDice.Type =>
  isObject(u) && isHeader(u) && isCategories(u["classes"]) && Array.isArray(u["images"]) && u["images"].every(isNestedImage)

/** Whether a parsed document is plainly a valid flat DICE document (the fast guard of `decodeDice`). */
export const looksFlat = (u: unknown): u is typeof FlatDice.Type => {
  if (!isObject(u) || !isHeader(u) || !isCategories(u["categories"]) || !Array.isArray(u["images"])) return false
  if (!u["images"].every(isFlatImage)) return false
  const anns = u["annotations"]
  return isAbsent(anns) || (Array.isArray(anns) && anns.every(isFlatAnnotation))
}

/** The members whose arrays hold a DICE document's bulk, parsed chunk by chunk. */
const bulkMembers: ReadonlySet<string> = new Set(["images", "annotations"])

/** The top-level members of a DICE document's bytes, its bulk arrays split into elements (see `scanObject`). */
export const scanDiceMembers = (bytes: Uint8Array): ReadonlyArray<ScannedMember> | undefined =>
  scanObject(bytes, bulkMembers, maxJsonDepth)

/** A dataset's header: everything but its images and skip counts. */
export type DiceHeader = Omit<DiceDataset, "images" | "skipped">

/** Where a nested document's image entries lie, as the piecewise decoder found them. */
export interface NestedImagesLayout {
  readonly header: DiceHeader
  /** The `classes` member as parsed: what the entries' class names resolve against. */
  readonly classes: ReadonlyArray<typeof Category.Type>
  readonly bytes: Uint8Array
  /** Start and end offset of each image entry in `bytes`, interleaved. */
  readonly elements: ReadonlyArray<number>
}

/**
 * The decoder's own walk over the image entries `first` to `end - 1` of a located document
 * (the guard and builder of `decodeDice`): their images, or `undefined` when one does not
 * decode.
 */
export type NestedImagesWalk = (first: number, end: number) => Array<DiceImage> | undefined

/**
 * Watches the piecewise decoding of a nested DICE document, before the rest of the document
 * is read or checked: it may still turn out invalid, so a watcher only prepares work that is
 * checked again later.
 */
export interface NestedDecodeObserver {
  /** Once the image entries are located, before the first is decoded. */
  readonly located?: (layout: NestedImagesLayout) => void
  /**
   * Decodes the image entries in place of the decoder, chunk by chunk (`starts`: the entry
   * each chunk starts at, then the entry count), by `walk` or by sharing the walk with
   * another thread: the images in file order, or `undefined` when an entry does not decode.
   */
  readonly decodeImages?: (layout: NestedImagesLayout, walk: NestedImagesWalk, starts: ReadonlyArray<number>) => Array<DiceImage> | undefined
  /** Whether the file should be read into shared memory (another thread reads the same bytes). */
  readonly sharedBytes?: boolean
  /** The file's bytes as another thread read them (into shared memory), when one did: waits for them. */
  readonly readAhead?: () => Uint8Array | undefined
  /** The document's members in `bytes`, exactly as `scanDiceMembers` finds them (another thread's scan of the same bytes, maybe). */
  readonly scan?: (bytes: Uint8Array) => ReadonlyArray<ScannedMember> | undefined
}

/** An image's fields but its annotations: what a thread that decoded it hands over. */
export type DiceImageHead = Omit<DiceImage, "annotations">

/** The head of an image. */
export const imageHead = (image: DiceImage): DiceImageHead => ({
  id: image.id,
  fileName: image.fileName,
  width: image.width,
  height: image.height,
  split: image.split,
  imageCategoryId: image.imageCategoryId
})

/**
 * The images of a located document that another thread decoded (its entries passed the
 * decoder's guard there): `(head, index)` is the entry `index` with its head as handed over
 * and its annotations decoded from the bytes when first read, by the same builder. (An own
 * property, so a spread copy decodes them too.) Every image made here has one shape, whether
 * its head was built on this thread or came in a message, so the code reading the images is
 * optimized once.
 */
export const deferredImages = (layout: NestedImagesLayout) => {
  const build = nestedImageBuilder(layout.classes)
  const { bytes, elements } = layout
  return (head: DiceImageHead, index: number): DiceImage => {
    let annotations: ReadonlyArray<DiceAnnotation> | undefined
    return {
      id: head.id,
      fileName: head.fileName,
      width: head.width,
      height: head.height,
      split: head.split,
      imageCategoryId: head.imageCategoryId,
      get annotations() {
        if (annotations === undefined) {
          const entry = parseRange(bytes, elements[2 * index]!, elements[2 * index + 1]!)
          if (entry === undefined || !isNestedImage(entry.value)) throw new Error(`image entry ${index} no longer decodes`)
          annotations = build(entry.value).annotations
        }
        return annotations
      }
    }
  }
}

/**
 * Decodes a nested document's image entries (`elements` as in `NestedImagesLayout`) a chunk at
 * a time, checked by the same guard as `decodeDice` and built against `classes`; `each` gets
 * each chunk's images and stops the walk by returning `false`. Whether every entry was
 * decoded: `false` when a chunk does not parse, an entry fails the guard (the caller then
 * goes the Schema's way) or `each` stopped.
 */
const decodeNestedImages = (
  bytes: Uint8Array,
  elements: ReadonlyArray<number>,
  classes: ReadonlyArray<typeof Category.Type>,
  chunkBytes: number,
  each: (images: Array<DiceImage>) => boolean
): boolean => {
  const build = nestedImageBuilder(classes)
  return forEachChunk(bytes, elements, (chunk) => {
    const images: Array<DiceImage> = []
    for (const img of chunk) {
      if (!isNestedImage(img)) return false
      images.push(build(img))
    }
    return each(images)
  }, chunkBytes)
}

/**
 * The decoder's walk over the image entries `first` to `end - 1` of a located document, parsed
 * at once (see `NestedImagesWalk`), on whichever thread has its layout.
 */
export const decodeNestedRange = (layout: NestedImagesLayout, first: number, end: number): Array<DiceImage> | undefined => {
  let images: Array<DiceImage> = []
  const ok = decodeNestedImages(layout.bytes, layout.elements.slice(2 * first, 2 * end), layout.classes, Infinity, (all) => {
    images = all
    return true
  })
  return ok ? images : undefined
}

/**
 * Decodes a valid DICE document piece by piece (see `jsonChunks`): the header members whole,
 * the images and annotations a chunk at a time, each element checked by the same guards as
 * `decodeDice` and turned into the model at once, so the raw parse of one chunk is all that
 * lives beside the model. `undefined` when anything is off (malformed JSON, a repeated
 * top-level key, an element the guards reject): the caller then decodes the whole document,
 * which names the error exactly as before.
 */
export const decodeDicePieces = (
  bytes: Uint8Array,
  chunkBytes: number,
  observer?: NestedDecodeObserver
): DiceDataset | undefined => {
  const members = observer?.scan !== undefined ? observer.scan(bytes) : scanDiceMembers(bytes)
  if (members === undefined) return undefined
  const byKey = new Map<string, ScannedMember>()
  const header = new Map<string, unknown>()
  for (const m of members) {
    if (byKey.has(m.key)) return undefined
    byKey.set(m.key, m)
    if (m.elements !== undefined) continue
    const parsed = parseRange(bytes, m.start, m.end)
    if (parsed === undefined) return undefined
    header.set(m.key, parsed.value)
  }
  const task_type = header.get("task_type"), storage_info = header.get("storage_info")
  const head = { task_type, storage_info }
  if (!isHeader(head)) return undefined
  const raw = head as Pick<typeof FlatDice.Type, "task_type" | "storage_info">
  const images = byKey.get("images")?.elements
  if (images === undefined) return undefined
  const annotations = byKey.get("annotations")
  const flat = annotations?.elements !== undefined || (byKey.has("categories") && !byKey.has("classes"))
  if (!flat) {
    const classes = header.get("classes")
    if (!isCategories(classes)) return undefined
    const categories = classes as ReadonlyArray<typeof Category.Type>
    const { images: _none, skipped: _nothing, ...decodedHead } = toDataset(raw, categories, [], {})
    const layout: NestedImagesLayout = { header: decodedHead, classes: categories, bytes, elements: images }
    observer?.located?.(layout)
    const decodeImages = observer?.decodeImages
    let decoded: Array<DiceImage> | undefined
    if (decodeImages === undefined) {
      const out: Array<DiceImage> = []
      const ok = decodeNestedImages(bytes, images, categories, chunkBytes, (chunk) => {
        for (const image of chunk) out.push(image)
        return true
      })
      decoded = ok ? out : undefined
    } else {
      decoded = decodeImages(layout, (first, end) => decodeNestedRange(layout, first, end), chunkStarts(images, chunkBytes))
    }
    // The observer's header is the dataset's own (the same categories), so what it prepared
    // for these categories can be recognised later.
    return decoded !== undefined ? { ...decodedHead, images: decoded, skipped: {} } : undefined
  }
  const categories = header.get("categories")
  if (!isCategories(categories)) return undefined
  if (annotations !== undefined && annotations.elements === undefined && !isAbsent(header.get("annotations"))) {
    return undefined
  }
  const rawImages: Array<RawImage> = []
  const imagesOk = forEachChunk(bytes, images, (chunk) => {
    for (const img of chunk) {
      if (!isFlatImage(img)) return false
      rawImages.push(img)
    }
    return true
  }, chunkBytes)
  if (!imagesOk) return undefined
  const builder = flatImagesBuilder(rawImages)
  const annotationsOk = annotations?.elements === undefined || forEachChunk(bytes, annotations.elements, (chunk) => {
    for (const a of chunk) {
      if (!isFlatAnnotation(a)) return false
      builder.add(a)
    }
    return true
  }, chunkBytes)
  if (!annotationsOk) return undefined
  const built = builder.finish()
  return toDataset(raw, categories as ReadonlyArray<typeof Category.Type>, built.images, built.skipped)
}

