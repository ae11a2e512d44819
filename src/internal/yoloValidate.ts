/**
 * Checks of a converted YOLO dataset's label text. Pure: the service reads the files.
 */

/** The outcome of validating a YOLO dataset. */
export interface YoloValidation {
  readonly valid: boolean
  readonly issues: ReadonlyArray<string>
  readonly stats: {
    readonly total_images: number
    /** Label rows (objects) over all label files. */
    readonly total_labels: number
    readonly classes: number
    /** Rows per class name. */
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
