/**
 * Split assignment, the spec's three steps: an explicit `image id → split` map, else the
 * images' own `split` field, else a seeded random split by ratios. Pure and deterministic.
 */
import type { DatasetSplit } from "./diceModel.js"

/** Split ratios; normalized to sum 1. `test` defaults to 0. */
export interface SplitRatios {
  readonly train: number
  readonly val: number
  readonly test?: number | undefined
}

/** How to split a dataset. */
export interface SplitOptions {
  /** Explicit split per image id; wins over everything else for the images it names. */
  readonly assignments?: Readonly<Record<string | number, DatasetSplit>> | undefined
  /** Ratios for the random split (default train 0.8 / val 0.2). */
  readonly ratios?: SplitRatios | undefined
  /** Seed of the random split (default 42). */
  readonly seed?: number | undefined
}

/** The default ratios: train 0.8, val 0.2. */
export const defaultSplitRatios: SplitRatios = { train: 0.8, val: 0.2, test: 0 }

/** The default seed of the random split. */
export const defaultSplitSeed = 42

/** A small seeded PRNG (mulberry32): uniform floats in [0, 1). */
export const seededRandom = (seed: number): () => number => {
  let a = (Math.trunc(seed) >>> 0) ^ 0x9e3779b9
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Assigns each image a split. Images named in `assignments` take that split; the others
 * keep their own `split` field; the rest are shuffled with the seed and cut by the normalized
 * ratios: `floor(n * train)` to train, `floor(n * val)` to val, the remainder to test — the
 * spec's rule, so the split sizes match the platform's (a 0.8/0.2 split of 7 images puts 5
 * in train, 1 in val and 1 in test). Which images land where depends on this module's
 * seeded shuffle (mulberry32), not on the Python trainers' generator.
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
  const r = options.ratios ?? defaultSplitRatios
  const train = Math.max(0, r.train), val = Math.max(0, r.val), test = Math.max(0, r.test ?? 0)
  const total = train + val + test
  const [trainRatio, valRatio] = total > 0 ? [train / total, val / total] : [0.8, 0.2]
  const random = seededRandom(options.seed ?? defaultSplitSeed)
  for (let i = rest.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = rest[i]!
    rest[i] = rest[j]!
    rest[j] = t
  }
  const n = rest.length
  const nTrain = Math.floor(n * trainRatio)
  const nVal = Math.floor(n * valRatio)
  for (let k = 0; k < n; k++) out[rest[k]!] = k < nTrain ? "train" : k < nTrain + nVal ? "val" : "test"
  return out
}

/** Counts images per split. */
export const countSplits = (splits: ReadonlyArray<DatasetSplit>): Record<DatasetSplit, number> => {
  const counts = { train: 0, val: 0, test: 0 }
  for (const s of splits) counts[s]++
  return counts
}

/**
 * Warnings a trainer should see about split sizes: an empty train or val split (the spec's
 * rule can leave val empty for very small datasets, and Ultralytics then fails at its first
 * validation).
 */
export const splitWarnings = (counts: Readonly<Record<DatasetSplit, number>>): Array<string> => [
  ...(counts.train === 0 ? ["the train split is empty: give the images a split field or pass split ratios"] : []),
  ...(counts.val === 0
    ? ["the val split is empty (trainers such as Ultralytics need validation images): give the images a split field or pass split ratios"]
    : [])
]
