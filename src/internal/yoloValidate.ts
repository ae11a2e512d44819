import type { YoloValidation } from "../Converter.js"
/**
 * Checks of a converted YOLO dataset: the label text of a detection/segmentation/pose
 * dataset, the class folders of a classification one. Pure: the service reads the files.
 */

/** What a label row must look like. */
export interface YoloRowShape {
  readonly nc: number
  /** `kpt_shape` from data.yaml (pose), when present. */
  readonly kptShape: readonly [number, number] | undefined
}

/**
 * Checks one label file as Ultralytics' `verify_image_label` reads it: every row of a
 * detection file has 5 columns (a pose file `5 + K·ndim`); a file with any row longer than
 * 6 columns is read as polygons, so box rows mixed in are an issue; a polygon row has an
 * even number of coordinates (at least 3 points); every value is a number `>= 0`,
 * coordinates are `<= 1`, the class an integer below `nc`. Returns the valid rows' class
 * indices; problems are appended to `issues`, identical rows (Ultralytics drops them) to
 * `warnings`.
 */
export const checkYoloLabelText = (
  file: string,
  text: string,
  shape: YoloRowShape,
  issues: Array<string>,
  warnings: Array<string>
): Array<number> => {
  const classes: Array<number> = []
  const lines = text.split("\n")
  const rows = lines.map((l) => l.trim()).filter((l) => l !== "")
  const polygons = shape.kptShape === undefined && rows.some((r) => r.split(/\s+/).length > 6)
  const seen = new Set<string>()
  let duplicates = 0
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim()
    if (line === "") continue
    const tokens = line.split(/\s+/)
    const values = tokens.map(Number)
    const where = `${file}:${n + 1}`
    const [K, ndim] = shape.kptShape ?? [0, 0]
    if (polygons && tokens.length === 5) {
      issues.push(`${where}: a box row in a file of polygon rows (Ultralytics reads it as a 2-point polygon)`)
      continue
    }
    const lengthOk = shape.kptShape
      ? tokens.length === 5 + K * ndim
      : polygons
      ? tokens.length >= 7 && tokens.length % 2 === 1
      : tokens.length === 5
    if (!lengthOk || values.some((v) => !Number.isFinite(v))) {
      issues.push(`${where}: malformed line "${line.slice(0, 80)}"`)
      continue
    }
    const cls = values[0]!
    if (!Number.isInteger(cls) || cls < 0 || cls >= shape.nc) {
      issues.push(`${where}: class index ${tokens[0]} out of range [0, ${shape.nc})`)
      continue
    }
    const outside = values.some((v, i) => i > 0 && (v < 0 || (v > 1 && !(ndim === 3 && i >= 5 && (i - 5) % 3 === 2))))
    if (outside) {
      issues.push(`${where}: coordinate outside [0, 1]`)
      continue
    }
    const key = values.join(" ")
    if (seen.has(key)) duplicates++
    seen.add(key)
    classes.push(cls)
  }
  if (duplicates > 0) warnings.push(`${file}: ${duplicates} duplicate row(s) (Ultralytics removes them)`)
  return classes
}

/** One split of a classification (ImageFolder) dataset as found on disk. */
export interface ClassifySplitListing {
  /** `train`, `val` or `test`. */
  readonly split: string
  /** The split directory. */
  readonly dir: string
  /** Its class folders (folder name → image paths inside it, recursively). */
  readonly folders: ReadonlyArray<{ readonly name: string; readonly images: ReadonlyArray<string> }>
  /** Images lying directly in the split directory, outside any class folder. */
  readonly looseImages: ReadonlyArray<string>
}

/**
 * Checks a classification dataset (data.yaml's splits are directories of class folders, the
 * layout `convert --task classification` writes) as Ultralytics reads it: it numbers classes
 * by the sorted train folder names, so data.yaml's `names` (when given) must be those folders'
 * classes in that order (`folderOf` names a class's folder); every class folder must hold an
 * image; a val or test folder without a train folder makes the classifier fail; no image may
 * lie outside a class folder. Stats count each image once, with one label (its class) per
 * image. Problems are appended to `issues`.
 */
export const checkClassifySplits = (
  splits: ReadonlyArray<ClassifySplitListing>,
  names: ReadonlyArray<string>,
  minImages: number,
  folderOf: (name: string) => string,
  compare: (a: string, b: string) => number,
  issues: Array<string>,
  warnings: ReadonlyArray<string>
): YoloValidation => {
  const images = new Set<string>()
  const distribution: Record<string, number> = {}
  const train = splits.find((s) => s.split === "train")
  const trainFolders = (train?.folders ?? []).map((f) => f.name).sort(compare)
  const nameOfFolder = new Map(names.map((name) => [folderOf(name), name]))
  if (names.length > 0) {
    const expected = names.map(folderOf)
    if (expected.length !== trainFolders.length || expected.some((f, i) => f !== trainFolders[i])) {
      issues.push(
        `data.yaml: names (${names.length}) are not the train class folders in Ultralytics' order (sorted folder names: ${
          trainFolders.slice(0, 10).join(", ")
        }${trainFolders.length > 10 ? ", ..." : ""})`
      )
    }
  }
  let labels = 0
  for (const split of splits) {
    if (split.folders.length === 0) issues.push(`${split.split}: no class folders in ${split.dir}`)
    for (const image of split.looseImages.slice(0, 20)) issues.push(`${split.split}: image outside a class folder: ${image}`)
    if (split.looseImages.length > 20) issues.push(`${split.split}: ${split.looseImages.length - 20} more image(s) outside a class folder`)
    for (const folder of split.folders) {
      const name = nameOfFolder.get(folder.name) ?? folder.name
      if (names.length > 0 && !nameOfFolder.has(folder.name)) issues.push(`${split.split}/${folder.name}: class folder not in data.yaml names`)
      if (split.split !== "train" && !trainFolders.includes(folder.name)) {
        issues.push(`${split.split}/${folder.name}: class without a train folder (Ultralytics' classifier fails on its images: target out of bounds)`)
      }
      if (folder.images.length === 0) issues.push(`${split.split}/${folder.name}: empty class folder (no images)`)
      for (const image of folder.images) {
        images.add(image)
        labels++
      }
      if (folder.images.length > 0) distribution[name] = (distribution[name] ?? 0) + folder.images.length
    }
  }
  for (const split of splits) for (const image of split.looseImages) images.add(image)
  if (images.size < minImages) issues.push(`only ${images.size} image(s), fewer than the minimum ${minImages}`)
  return {
    valid: issues.length === 0,
    issues,
    warnings,
    stats: {
      total_images: images.size,
      total_labels: labels,
      classes: trainFolders.length,
      class_distribution: distribution,
      background_images: 0
    }
  }
}
