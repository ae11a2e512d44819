/**
 * Checks of a converted YOLO dataset: the label text of a detection/segmentation/pose
 * dataset, the class folders of a classification one. Pure: the service reads the files.
 */

/** The outcome of validating a YOLO dataset. */
export interface YoloValidation {
  readonly valid: boolean
  readonly issues: ReadonlyArray<string>
  readonly stats: {
    readonly total_images: number
    /** Label rows (objects) over all label files; for classification, images with a class. */
    readonly total_labels: number
    readonly classes: number
    /** Rows (classification: images) per class name. */
    readonly class_distribution: Readonly<Record<string, number>>
  }
}

/** What a label row must look like. */
export interface YoloRowShape {
  readonly nc: number
  /** `kpt_shape` from data.yaml (pose), when present. */
  readonly kptShape: readonly [number, number] | undefined
}

/**
 * Checks one label file's rows: class index an integer in `[0, nc)`, coordinates in `[0, 1]`,
 * a known row length (5 for a box, `1 + 2n` with n ≥ 3 for a polygon, `5 + K·ndim` for pose).
 * Returns the valid rows' class indices; problems are appended to `issues`.
 */
export const checkYoloLabelText = (
  file: string,
  text: string,
  shape: YoloRowShape,
  issues: Array<string>
): Array<number> => {
  const classes: Array<number> = []
  const lines = text.split("\n")
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim()
    if (line === "") continue
    const tokens = line.split(/\s+/)
    const values = tokens.map(Number)
    const where = `${file}:${n + 1}`
    const [K, ndim] = shape.kptShape ?? [0, 0]
    const lengthOk = shape.kptShape
      ? tokens.length === 5 + K * ndim
      : tokens.length === 5 || (tokens.length >= 7 && tokens.length % 2 === 1)
    if (!lengthOk || values.some((v) => !Number.isFinite(v))) {
      issues.push(`${where}: malformed line "${line.slice(0, 80)}"`)
      continue
    }
    const cls = values[0]!
    if (!Number.isInteger(cls) || cls < 0 || cls >= shape.nc) {
      issues.push(`${where}: class index ${tokens[0]} out of range [0, ${shape.nc})`)
      continue
    }
    const outside = values.some((v, i) => i > 0 && (v < 0 || v > 1) && !(ndim === 3 && i >= 5 && (i - 5) % 3 === 2))
    if (outside) {
      issues.push(`${where}: coordinate outside [0, 1]`)
      continue
    }
    classes.push(cls)
  }
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
 * layout `convert --task classification` writes): every class folder must be the folder of a
 * `names` entry (as `folderOf` names it) when data.yaml has names, hold at least one image,
 * and no image may lie outside a class folder. Stats count each image once, with one label
 * (its class) per image. Problems are appended to `issues`; `nc` is data.yaml's class count.
 */
export const checkClassifySplits = (
  splits: ReadonlyArray<ClassifySplitListing>,
  names: ReadonlyArray<string>,
  nc: number,
  minImages: number,
  folderOf: (name: string) => string,
  issues: Array<string>
): YoloValidation => {
  const nameOfFolder = new Map(names.map((name) => [folderOf(name), name]))
  const images = new Set<string>()
  const folderNames = new Set<string>()
  const distribution: Record<string, number> = {}
  let labels = 0
  for (const split of splits) {
    if (split.folders.length === 0) issues.push(`${split.split}: no class folders in ${split.dir}`)
    for (const image of split.looseImages.slice(0, 20)) issues.push(`${split.split}: image outside a class folder: ${image}`)
    if (split.looseImages.length > 20) issues.push(`${split.split}: ${split.looseImages.length - 20} more image(s) outside a class folder`)
    for (const folder of split.folders) {
      folderNames.add(folder.name)
      const name = names.length === 0 ? folder.name : nameOfFolder.get(folder.name)
      if (name === undefined) {
        issues.push(`${split.split}/${folder.name}: class folder not in data.yaml names`)
        continue
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
    stats: {
      total_images: images.size,
      total_labels: labels,
      classes: names.length === 0 ? folderNames.size : nc,
      class_distribution: distribution
    }
  }
}
