/**
 * The normalized model → YOLO (Ultralytics) output: label lines per image, the label path
 * rule and the classification folder plan (`data.yaml`'s text is `dataYaml`'s). Pure: no I/O.
 */
import type { DiceDataset, DiceHeader, DiceImage, NestedImagesLayout } from "./diceModel.js"
import { countSkip, imageObjects, LabelBytes, type ObjectContext, resolveClass, type SkipCounts } from "./objectRules.js"

export type { SkipCounts } from "./objectRules.js"
import type { ConverterTask, DatasetSplit } from "../Converter.js"

/** What the label functions need to know about the dataset. */
export type YoloContext = ObjectContext

/** Builds the label context of a dataset for a task. */
export const yoloContext = (dataset: DiceDataset, task: ConverterTask): YoloContext => {
  const classIndex = new Map<number, number>()
  dataset.categories.forEach((c, i) => {
    if (!classIndex.has(c.id)) classIndex.set(c.id, i)
  })
  let keypointCount = 0
  if (task === "pose") {
    for (const image of dataset.images) {
      for (const a of image.annotations) {
        if (a.keypoints) keypointCount = Math.max(keypointCount, Math.floor(a.keypoints.length / 3))
      }
    }
  }
  return { task, classIndex, backgroundIds: new Set(dataset.backgroundIds), keypointCount }
}

/**
 * The label texts of a chunk of images, as bytes: the `k`th text is `bytes` from `ends[k - 1]`
 * (0 for the first) to `ends[k]`.
 */
export interface ChunkTexts {
  readonly bytes: Uint8Array
  readonly ends: ReadonlyArray<number>
}

/** The labels of a chunk of images: their texts, and each one's row classes and skips (`undefined`: none). */
export interface ChunkLabels extends ChunkTexts {
  readonly classes: ReadonlyArray<ReadonlyArray<number>>
  readonly skipped: ReadonlyArray<SkipCounts | undefined>
}

/** The labels of `images` in `ctx` (`yoloImageLabelInto`, each with its own skip counts). */
export const chunkLabels = (images: ReadonlyArray<DiceImage>, ctx: YoloContext, textBytes: number): ChunkLabels => {
  const out = new LabelBytes(textBytes)
  const ends: Array<number> = [], classes: Array<ReadonlyArray<number>> = [], skipped: Array<SkipCounts | undefined> = []
  for (const image of images) {
    const skips: SkipCounts = {}
    classes.push(yoloImageLabelInto(image, ctx, skips, out))
    ends.push(out.length)
    skipped.push(hasAny(skips) ? skips : undefined)
  }
  return { bytes: out.bytes, ends, classes, skipped }
}

const hasAny = (skips: SkipCounts): boolean => {
  for (const _ in skips) return true
  return false
}

/** About how many bytes the label texts of the entries `first` to `first + count - 1` take (a quarter of their JSON). */
export const textBytesOf = (layout: NestedImagesLayout, first: number, count: number): number =>
  Math.ceil((layout.elements[2 * (first + count) - 1]! - layout.elements[2 * first]!) / 4)

/**
 * The label context from a dataset's header alone (its categories and background ids), for
 * the threads that see the images chunk by chunk. Detection and segmentation only: pose
 * needs every image for its keypoint count.
 */
export const headerContext = (header: DiceHeader, task: "detection" | "segmentation"): YoloContext =>
  yoloContext({ ...header, images: [], skipped: {} }, task)

/** One image's YOLO label file: its text (the rows joined by newlines) and each row's class index. */
export interface YoloImageLabel {
  readonly text: string
  readonly classes: ReadonlyArray<number>
}

/**
 * The label file of one image (detection, segmentation or pose), appended to `out` as bytes:
 * the rows of `imageObjects`, whose skips are counted there; objects YOLO cannot hold are
 * counted here by their reason (`crowd`, `rle_mask`). A segmentation file holds polygon rows
 * only (a box without a polygon becomes a 4-point polygon). Each row's class index.
 */
export const yoloImageLabelInto = (image: DiceImage, ctx: YoloContext, skipped: SkipCounts, out: LabelBytes): Array<number> => {
  const classes: Array<number> = []
  for (const o of imageObjects(image, ctx, skipped, out)) {
    if (o.skip === undefined) classes.push(o.cls)
    else countSkip(skipped, o.skip)
  }
  return classes
}

/** Where `yoloImageLabel` builds each text. */
const labelText = new LabelBytes()

/** The label file of one image as text (see `yoloImageLabelInto`). */
export const yoloImageLabel = (image: DiceImage, ctx: YoloContext, skipped: SkipCounts): YoloImageLabel => {
  labelText.length = 0
  const classes = yoloImageLabelInto(image, ctx, skipped, labelText)
  return { text: labelText.text(0, labelText.length), classes }
}

/**
 * Ultralytics' `img2label_paths`: the last `/images/` segment becomes `/labels/` and the
 * extension (everything after the last `.`) becomes `.txt`.
 */
export const yoloLabelPath = (imagePath: string): string => {
  const at = imagePath.lastIndexOf("/images/")
  const swapped = at < 0 ? imagePath : `${imagePath.slice(0, at)}/labels/${imagePath.slice(at + 8)}`
  const dot = swapped.lastIndexOf(".")
  return `${dot < 0 ? swapped : swapped.slice(0, dot)}.txt`
}

/** The `.../labels` folder of a YOLO label file. */
const labelRootOf = (label: string): string => label.slice(0, label.lastIndexOf("/labels/") + "/labels".length)

/** The `.../labels` folder of an image's YOLO label file (see `yoloLabelPath`). */
export const yoloLabelRoot = (imagePath: string): string => labelRootOf(yoloLabelPath(imagePath))

/** Where an image's label file goes in a staging tree: its label folder, that folder's number, its path under the folder. */
export interface YoloLabelPlace {
  readonly root: string
  readonly number: number
  readonly name: string
}

/**
 * The one rule for staging label files, image by image: each label folder is numbered in the
 * order it is first used (its files are staged under `{number}/`), the file keeps its path
 * under the folder. The label writer and the proposals written while parsing (`labelPrewrite`)
 * both place files by it, so a proposal matches exactly when the images do; a proposal keeps
 * its own numbers (it may place images out of file order).
 */
export const yoloLabelPlacer = (): ((imagePath: string) => YoloLabelPlace) => {
  const numbers = new Map<string, number>()
  return (imagePath) => {
    const label = yoloLabelPath(imagePath)
    const root = labelRootOf(label)
    let number = numbers.get(root)
    if (number === undefined) numbers.set(root, number = numbers.size)
    return { root, number, name: label.slice(root.length + 1) }
  }
}

/**
 * Where Ultralytics must find an image of the dataset directory `dir` (absolute, resolved):
 * inside an `images` folder. An image elsewhere is linked at `dir/images/{its path}`, the
 * returned place. `image` lies inside `dir`, built from normalised names.
 */
export const yoloImagePlace = (dir: string, image: string): string => {
  const rel = image.slice(dir.length + 1)
  if (rel.startsWith("images/") || rel.lastIndexOf("/images/", rel.lastIndexOf("/")) >= 0) return image
  return `${dir}/images/${rel}`
}

/**
 * A class name as one folder name, reversibly (`classNameOfFolder` undoes it, so two classes
 * never share a folder): `%`, `/`, `\\` and NUL are percent-encoded (`a/b` → `a%2Fb`), `.` and
 * `..` become `%2E` and `%2E%2E`, and the empty name becomes `%`.
 */
export const classFolderName = (name: string): string => {
  if (name === "") return "%"
  if (name === "." || name === "..") return name.replace(/\./g, "%2E")
  return name.replace(/[%/\\\0]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`)
}

/** The class name of a folder written by `classFolderName`. */
export const classNameOfFolder = (folder: string): string =>
  folder === "%" ? "" : folder.replace(/%([0-9A-F]{2})/g, (_, code: string) => String.fromCharCode(parseInt(code, 16)))

/** Compares strings by Unicode code points, as Python's `sorted` does (not by UTF-16 units). */
export const compareCodePoints = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!, y = b.codePointAt(i)!
    if (x !== y) return x - y
    if (x > 0xffff) i++
  }
  return a.length - b.length
}

/** One link of the classification ImageFolder tree. */
export interface ClassifyLink {
  /** Index of the image in the dataset. */
  readonly image: number
  /** Path relative to the dataset dir: `{split}/{folder}/{name}`. */
  readonly target: string
}

/** The classification ImageFolder tree to write, and what the trainer should know about it. */
export interface ClassifyPlan {
  readonly links: ReadonlyArray<ClassifyLink>
  /**
   * Class names in Ultralytics' class-index order: sorted by folder name (code points, as
   * Python sorts). Only classes with training images (Ultralytics counts the train folders).
   */
  readonly names: ReadonlyArray<string>
  /** Classes whose images are all outside train (val or test only). */
  readonly withoutTrainImages: ReadonlyArray<string>
  /** Warnings: classes without any image, without val images, renamed folders, shared names. */
  readonly warnings: ReadonlyArray<string>
}

/**
 * The ImageFolder plan: each image with a class goes to `{split}/{folder}/{base name}` (the
 * image id is prefixed when two images of one folder share a base name). The image class is
 * the image-level label, else its first annotation with a usable category; images without
 * one are skipped (`no_class`, or the category's skip reason). A class with images only
 * outside train is listed in `withoutTrainImages`; when `dropClassesWithoutTrainImages`, its
 * images are skipped (`class_without_train_images`) and it is left out of the names.
 */
export const classifyPlan = (
  dataset: DiceDataset,
  splits: ReadonlyArray<DatasetSplit>,
  ctx: YoloContext,
  skipped: SkipCounts,
  dropClassesWithoutTrainImages = false
): ClassifyPlan => {
  const warnings: Array<string> = []
  const folderOf = dataset.categories.map((c) => classFolderName(c.name))
  const classOf = dataset.images.map((image): number | string => {
    let cls: number | string = "no_class"
    if (image.imageCategoryId !== undefined) cls = resolveClass(image.imageCategoryId, ctx)
    else {
      for (const a of image.annotations) {
        const c = resolveClass(a.categoryId, ctx)
        if (typeof c === "number" || cls === "no_class") cls = c
        if (typeof c === "number") break
      }
    }
    return cls
  })
  const perFolder = new Map<string, { name: string; train: number; val: number; test: number }>()
  dataset.categories.forEach((c, i) => {
    const folder = folderOf[i]!
    const entry = perFolder.get(folder)
    if (entry === undefined) perFolder.set(folder, { name: c.name, train: 0, val: 0, test: 0 })
    else warnings.push(`classes ${i} and ${classIndexOfName(dataset, entry.name)} are both named ${JSON.stringify(c.name)}: they share one class folder`)
  })
  classOf.forEach((cls, i) => {
    if (typeof cls === "number") perFolder.get(folderOf[cls]!)![splits[i]!]++
  })
  const withoutTrainImages: Array<string> = []
  const names: Array<string> = []
  const kept = new Set<string>()
  for (const folder of [...perFolder.keys()].sort(compareCodePoints)) {
    const entry = perFolder.get(folder)!
    if (entry.train + entry.val + entry.test === 0) {
      warnings.push(`class ${JSON.stringify(entry.name)} has no image: it has no class folder and is not among the names`)
      continue
    }
    if (entry.train === 0) {
      withoutTrainImages.push(entry.name)
      if (dropClassesWithoutTrainImages) {
        warnings.push(`class ${JSON.stringify(entry.name)} has no training image: left out (its ${entry.val + entry.test} other image(s) skipped)`)
        continue
      }
    } else if (entry.val === 0) {
      warnings.push(
        `class ${JSON.stringify(entry.name)} has no val image: Ultralytics numbers the val folders on their own, so val accuracy is not comparable`
      )
    }
    if (folder !== entry.name) warnings.push(`class ${JSON.stringify(entry.name)} is stored in the folder ${JSON.stringify(folder)}`)
    names.push(entry.name)
    kept.add(folder)
  }
  const links: Array<ClassifyLink> = []
  const used = new Set<string>()
  dataset.images.forEach((image, i) => {
    const cls = classOf[i]!
    if (typeof cls === "string") {
      countSkip(skipped, cls)
      return
    }
    const folderName = folderOf[cls]!
    if (!kept.has(folderName)) {
      countSkip(skipped, "class_without_train_images")
      return
    }
    const folder = `${splits[i]}/${folderName}`
    const base = image.fileName.split(/[\\/]/).pop() || `image-${image.id}`
    let target = `${folder}/${base}`
    if (used.has(target)) target = `${folder}/${image.id}_${base}`
    used.add(target)
    links.push({ image: i, target })
  })
  return { links, names, withoutTrainImages, warnings }
}

const classIndexOfName = (dataset: DiceDataset, name: string): number => dataset.categories.findIndex((c) => c.name === name)
