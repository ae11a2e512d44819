import type { DatasetSplit, SplitOptions, SplitRatios } from "../Converter.js"
/**
 * Split assignment, the spec's three steps: an explicit `image id → split` map, else the
 * images' own `split` field, else a seeded random split by ratios. Pure and deterministic.
 */

/** The default ratios: train 0.8, val 0.2. */
export const defaultSplitRatios: SplitRatios = { train: 0.8, val: 0.2, test: 0 }

/** The default seed of the random split. */
export const defaultSplitSeed = 42

/** A small seeded PRNG (mulberry32) started at `state`: the same state gives the same sequence in [0, 1). */
export const mulberry32 = (state: number): () => number => {
  let a = state >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The split's PRNG: mulberry32 from the seed's integer part, mixed with the golden ratio. */
export const seededRandom = (seed: number): () => number => mulberry32((Math.trunc(seed) >>> 0) ^ 0x9e3779b9)

/**
 * How many of `n` randomly split images go to each split: `floor(n * train)` to train,
 * `floor(n * test)` to test and the remainder to val (the old Python client's rule: no
 * image is left out of both train and val). Then every split a consumer needs is made
 * non-empty when there are images enough: val, then train, with two images or more, test
 * (only when a test ratio was asked for) with three or more; each image moved comes from
 * the largest other split that can spare one (test gives up its last image for val or train). Ratios are normalized to sum 1 (all zero:
 * the defaults).
 */
export const splitSizes = (n: number, ratios: SplitRatios = defaultSplitRatios): Record<DatasetSplit, number> => {
  const train = Math.max(0, ratios.train), val = Math.max(0, ratios.val), test = Math.max(0, ratios.test ?? 0)
  const total = train + val + test
  const [trainRatio, testRatio] = total > 0 ? [train / total, test / total] : [0.8, 0]
  const sizes: Record<DatasetSplit, number> = { train: Math.floor(n * trainRatio), val: 0, test: Math.floor(n * testRatio) }
  sizes.val = n - sizes.train - sizes.test
  // The splits to fill, most needed first, each with the dataset size from which it is filled.
  const needs: Array<readonly [DatasetSplit, number]> = [["val", 2], ["train", 2], ...(testRatio > 0 ? [["test", 3] as const] : [])]
  const keep = (d: DatasetSplit) => (d === "test" ? 0 : 1)
  for (const [s, minimum] of needs) {
    if (sizes[s] > 0 || n < minimum) continue
    const donor = (["train", "val", "test"] as const)
      .filter((d) => d !== s && sizes[d] > keep(d))
      .sort((a, b) => sizes[b] - sizes[a])[0]
    if (donor !== undefined) {
      sizes[donor]--
      sizes[s]++
    }
  }
  return sizes
}

/**
 * Assigns each image a split. Images named in `assignments` take that split; the others
 * keep their own `split` field; the rest are shuffled with the seed and cut by
 * `splitSizes` (train first, then val, then test). Which images land where depends on this
 * module's seeded shuffle (mulberry32), not on the Python trainers' generator.
 */
export const assignSplits = (
  images: ReadonlyArray<{ readonly id: number; readonly split: DatasetSplit | undefined }>,
  options: SplitOptions = {}
): Array<DatasetSplit> => {
  const out = new Array<DatasetSplit>(images.length)
  const rest: Array<number> = []
  const assignments = options.assignments
  for (let i = 0; i < images.length; i++) {
    const image = images[i]!
    const explicit = assignments?.[image.id]
    if (explicit !== undefined) out[i] = explicit
    else if (image.split !== undefined) out[i] = image.split
    else rest.push(i)
  }
  if (rest.length === 0) return out
  const random = seededRandom(options.seed ?? defaultSplitSeed)
  for (let i = rest.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = rest[i]!
    rest[i] = rest[j]!
    rest[j] = t
  }
  const sizes = splitSizes(rest.length, options.ratios)
  for (let k = 0; k < rest.length; k++) {
    out[rest[k]!] = k < sizes.train ? "train" : k < sizes.train + sizes.val ? "val" : "test"
  }
  return out
}

/** Counts images per split. */
export const countSplits = (splits: ReadonlyArray<DatasetSplit>): Record<DatasetSplit, number> => {
  const counts = { train: 0, val: 0, test: 0 }
  for (const s of splits) counts[s]++
  return counts
}

/**
 * The splits every consumer needs (train and val) that hold no image. Ultralytics refuses to
 * train without val images and MMDetection without a val annotation file, so the converter
 * turns a non-empty result into an error naming the splits.
 */
export const emptyRequiredSplits = (counts: Readonly<Record<DatasetSplit, number>>): Array<DatasetSplit> =>
  (["train", "val"] as const).filter((s) => counts[s] === 0)
