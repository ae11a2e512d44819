/**
 * The platform's split configuration (`CONFIG.split_config`, platform-behaviour.md) read
 * into the converter's split plan. The backend has two shapes and a trainer may get either:
 * - dataset level (`SplitConfig`): `{method: "manual"|"auto"|"partial", default_ratio,
 *   seed, splits?}`;
 * - job level (`SplitStrategy`): `{method: "use_dataset"|"auto"|"custom", ratio?, seed?,
 *   custom_splits?, exclude_images?}`.
 * Map keys are JSON strings naming (usually integer) image ids: `"17"` is image 17. A split
 * name outside train/val/test (`valid`/`validation` mean val) is an error naming the key;
 * an image the dataset lacks is reported as a warning, never silently ignored.
 */
import { Either } from "effect"
import type { DiceImage } from "./diceModel.js"
import type { DatasetSplit, PlatformSplitConfig, SplitOptions, SplitRatios } from "../Converter.js"

/** What the converter does with the images: which to drop, whether their own splits count, and the split options. */
export interface SplitPlan {
  readonly split: SplitOptions
  /** `auto`: every image is split by the ratios, whatever its own `split` field says. */
  readonly ignoreImageSplits: boolean
  /** Image ids left out of the conversion (`exclude_images`). */
  readonly exclude: ReadonlySet<number>
  /** Things the trainer should know (images named that the dataset lacks). */
  readonly warnings: ReadonlyArray<string>
}

/** Whether a value has the platform's `split_config` shape (an object with a string `method`). */
export const isPlatformSplitConfig = (value: unknown): value is PlatformSplitConfig =>
  typeof value === "object" && value !== null && !Array.isArray(value) &&
  typeof (value as Record<string, unknown>)["method"] === "string"

const splitNames: Record<string, DatasetSplit> = {
  train: "train",
  training: "train",
  val: "val",
  valid: "val",
  validation: "val",
  test: "test",
  testing: "test"
}

const ratiosOf = (field: string, raw: ReadonlyArray<number> | undefined): Either.Either<SplitRatios | undefined, string> => {
  if (raw === undefined || raw === null) return Either.right(undefined)
  if (!Array.isArray(raw) || raw.length < 2 || raw.length > 3 || !raw.every((r) => typeof r === "number" && Number.isFinite(r) && r >= 0)) {
    return Either.left(`${field} must be [train, val] or [train, val, test] with non-negative numbers, got ${JSON.stringify(raw)}`)
  }
  return Either.right({ train: raw[0]!, val: raw[1]!, test: raw[2] ?? 0 })
}

/**
 * Reads a platform split configuration against the dataset's images: the split plan, or
 * the problem (naming the field) when the configuration cannot be honoured.
 */
export const planPlatformSplit = (
  config: PlatformSplitConfig,
  images: ReadonlyArray<Pick<DiceImage, "id">>
): Either.Either<SplitPlan, string> => {
  const method = config.method
  const known = ["manual", "auto", "partial", "use_dataset", "custom"]
  if (!known.includes(method)) {
    return Either.left(`split_config.method must be one of ${known.join(", ")}, got ${JSON.stringify(method)}`)
  }
  const ratioField = config.ratio !== undefined ? "split_config.ratio" : "split_config.default_ratio"
  const ratios = ratiosOf(ratioField, config.ratio ?? config.default_ratio)
  if (Either.isLeft(ratios)) return Either.left(ratios.left)
  if (config.seed !== undefined && config.seed !== null && !Number.isSafeInteger(config.seed)) {
    return Either.left(`split_config.seed must be an integer, got ${JSON.stringify(config.seed)}`)
  }
  const ids = new Set(images.map((image) => image.id))
  const warnings: Array<string> = []
  const missing = (field: string, keys: ReadonlyArray<string>) => {
    if (keys.length > 0) {
      warnings.push(`${field} names ${keys.length} image(s) the dataset does not have: ${keys.slice(0, 10).join(", ")}${keys.length > 10 ? ", ..." : ""}`)
    }
  }
  const imageId = (key: string | number): number | undefined => {
    const text = String(key).trim()
    return /^[+-]?\d+$/.test(text) ? Number(text) : undefined
  }

  const mapField = method === "custom" ? "custom_splits" : method === "manual" || method === "partial" ? "splits" : undefined
  const rawMap = mapField === undefined ? undefined : (config[mapField] as Readonly<Record<string, string>> | undefined)
  const assignments: Record<number, DatasetSplit> = {}
  if (rawMap !== undefined && rawMap !== null) {
    if (typeof rawMap !== "object" || Array.isArray(rawMap)) return Either.left(`split_config.${mapField} must be an object of image id to split`)
    const absent: Array<string> = []
    for (const [key, value] of Object.entries(rawMap)) {
      const split = typeof value === "string" ? splitNames[value.trim().toLowerCase()] : undefined
      if (split === undefined) {
        return Either.left(`split_config.${mapField}["${key}"] is ${JSON.stringify(value)}: expected train, val or test`)
      }
      const id = imageId(key)
      if (id === undefined || !ids.has(id)) absent.push(key)
      else assignments[id] = split
    }
    missing(`split_config.${mapField}`, absent)
  }

  const exclude = new Set<number>()
  if (config.exclude_images !== undefined && config.exclude_images !== null) {
    if (!Array.isArray(config.exclude_images)) return Either.left("split_config.exclude_images must be a list of image ids")
    const absent: Array<string> = []
    for (const key of config.exclude_images) {
      const id = imageId(key)
      if (id === undefined || !ids.has(id)) absent.push(String(key))
      else exclude.add(id)
    }
    missing("split_config.exclude_images", absent)
  }

  return Either.right({
    split: {
      assignments: Object.keys(assignments).length > 0 ? assignments : undefined,
      ratios: ratios.right,
      seed: config.seed ?? undefined
    },
    ignoreImageSplits: method === "auto",
    exclude,
    warnings
  })
}
