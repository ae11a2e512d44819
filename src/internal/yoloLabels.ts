/**
 * The normalized model → YOLO (Ultralytics) output: label lines per image, the label path
 * rule, `data.yaml` content and the classification folder plan. Pure: no I/O.
 */
import * as YAML from "yaml"
import type { DatasetSplit, DiceAnnotation, DiceDataset, DiceImage } from "./diceModel.js"

/** The four tasks the converter handles. */
export type ConverterTask = "detection" | "segmentation" | "pose" | "classification"

/** Skipped annotations (or parts) by reason. */
export type SkipCounts = Record<string, number>

/** Adds one to a reason's count. */
export const countSkip = (skipped: SkipCounts, reason: string, n = 1): void => {
  skipped[reason] = (skipped[reason] ?? 0) + n
}

/** `%.6f`, never `-0.000000`. */
export const yoloNumber = (value: number): string => {
  const text = value.toFixed(6)
  return text === "-0.000000" ? "0.000000" : text
}

/** What the label functions need to know about the dataset. */
export interface YoloContext {
  readonly task: ConverterTask
  /** Category id → class index (position among non-background categories, file order). */
  readonly classIndex: ReadonlyMap<number, number>
  readonly backgroundIds: ReadonlySet<number>
  /** `K` of `kpt_shape: [K, 3]` (pose only). */
  readonly keypointCount: number
}

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
 * The class index of an annotation's category, or the skip reason: `no_category`,
 * `background`, `unknown_category`.
 */
export const resolveClass = (
  categoryId: number | undefined,
  ctx: Pick<YoloContext, "classIndex" | "backgroundIds">
): number | string => {
  if (categoryId === undefined) return "no_category"
  if (ctx.backgroundIds.has(categoryId)) return "background"
  return ctx.classIndex.get(categoryId) ?? "unknown_category"
}

/** An annotation's class index and bbox, both present. */
export interface ClassifiedBox {
  readonly cls: number
  readonly bbox: readonly [number, number, number, number]
}

/**
 * The class index and bbox of an annotation, or `undefined` once the reason it cannot be
 * written is counted: its category's (`no_category`, `background`, `unknown_category`) or
 * `no_bbox`. YOLO labels and COCO annotations both start with this check.
 */
export const classifiedBox = (
  a: DiceAnnotation,
  ctx: Pick<YoloContext, "classIndex" | "backgroundIds">,
  skipped: SkipCounts
): ClassifiedBox | undefined => {
  const cls = resolveClass(a.categoryId, ctx)
  if (typeof cls === "string") {
    countSkip(skipped, cls)
    return undefined
  }
  if (a.bbox === undefined) {
    countSkip(skipped, "no_bbox")
    return undefined
  }
  return { cls, bbox: a.bbox }
}

const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v)

type Point = readonly [number, number]

const toPoints = (flat: ReadonlyArray<number>): Array<Point> => {
  const points: Array<Point> = []
  for (let i = 0; i + 1 < flat.length; i += 2) points.push([flat[i]!, flat[i + 1]!])
  return points
}

const closestPair = (a: ReadonlyArray<Point>, b: ReadonlyArray<Point>): [number, number] => {
  let best = Infinity, bi = 0, bj = 0
  for (let i = 0; i < a.length; i++) {
    for (let j = 0; j < b.length; j++) {
      const dx = a[i]![0] - b[j]![0], dy = a[i]![1] - b[j]![1]
      const d = dx * dx + dy * dy
      if (d < best) (best = d), (bi = i), (bj = j)
    }
  }
  return [bi, bj]
}

const roll = <A>(xs: ReadonlyArray<A>, start: number): Array<A> => [...xs.slice(start), ...xs.slice(0, start)]

/**
 * Merges the polygons of one instance into a single ring, Ultralytics' `merge_multi_segment`:
 * consecutive parts are joined at their closest vertices by a zero-width bridge, so the result
 * holds every vertex plus two bridge points per join (`Σ nᵢ + 2(k − 1)` points). Middle parts
 * are walked from their entry to their exit vertex and back (indices mapped when reversed).
 */
export const mergeMultiSegment = (parts: ReadonlyArray<ReadonlyArray<Point>>): Array<Point> => {
  if (parts.length === 1) return [...parts[0]!]
  const segs = parts.map((p) => [...p])
  const idx: Array<Array<number>> = segs.map(() => [])
  for (let i = 1; i < segs.length; i++) {
    const [a, b] = closestPair(segs[i - 1]!, segs[i]!)
    idx[i - 1]!.push(a)
    idx[i]!.push(b)
  }
  const last = segs.length - 1
  const out: Array<Array<Point>> = []
  const middleTail: Array<Array<Point>> = []
  for (let i = 0; i <= last; i++) {
    let [enter, exit] = idx[i]!
    let seg = segs[i]!
    if (exit !== undefined && enter! > exit) {
      seg = [...seg].reverse()
      enter = seg.length - 1 - enter!
      exit = seg.length - 1 - exit
    }
    const ring = roll(seg, enter!)
    ring.push(ring[0]!)
    if (i === 0 || i === last) out.push(ring)
    else {
      const d = exit! - enter!
      out.push(ring.slice(0, d + 1))
      middleTail[i] = ring.slice(d)
    }
  }
  for (let i = last - 1; i >= 1; i--) out.push(middleTail[i]!)
  return out.flat()
}

const boxLine = (cls: number, x1: number, y1: number, x2: number, y2: number, w: number, h: number): string =>
  `${cls} ${yoloNumber((x1 + x2) / 2 / w)} ${yoloNumber((y1 + y2) / 2 / h)} ${yoloNumber((x2 - x1) / w)} ${
    yoloNumber((y2 - y1) / h)
  }`

const polygonLine = (cls: number, points: ReadonlyArray<Point>, w: number, h: number): string => {
  let line = String(cls)
  for (const [x, y] of points) line += ` ${yoloNumber(clamp(x, 0, w) / w)} ${yoloNumber(clamp(y, 0, h) / h)}`
  return line
}

const segmentationPoints = (
  a: DiceAnnotation,
  box: readonly [number, number, number, number],
  skipped: SkipCounts
): ReadonlyArray<Point> => {
  const usable: Array<Array<Point>> = []
  for (const poly of a.polygons ?? []) {
    const points = toPoints(poly)
    if (points.length >= 3) usable.push(points)
    else countSkip(skipped, "polygon_too_few_points")
  }
  if (usable.length > 0) return mergeMultiSegment(usable)
  const [x1, y1, x2, y2] = box
  return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
}

const keypointTail = (a: DiceAnnotation, k: number, w: number, h: number): string => {
  let tail = ""
  const kp = a.keypoints ?? []
  for (let i = 0; i < k; i++) {
    if (3 * i + 2 < kp.length) {
      tail += ` ${yoloNumber(clamp(kp[3 * i]! / w, 0, 1))} ${yoloNumber(clamp(kp[3 * i + 1]! / h, 0, 1))} ${
        yoloNumber(kp[3 * i + 2]!)
      }`
    } else tail += " 0.000000 0.000000 0.000000"
  }
  return tail
}

/**
 * The label lines of one image (detection, segmentation or pose). Boxes are clipped to the
 * image; skipped (and counted): no/unknown/background category, no bbox, `iscrowd`, zero or
 * negative size (`degenerate_box`), nothing left after clipping (`outside_image`), identical
 * duplicate rows (`duplicate`). A segmentation file holds polygon rows only (a box without a
 * usable polygon becomes a 4-point polygon).
 */
export const yoloImageLines = (image: DiceImage, ctx: YoloContext, skipped: SkipCounts): Array<string> => {
  const lines: Array<string> = []
  const seen = new Set<string>()
  const W = image.width, H = image.height
  for (const a of image.annotations) {
    const boxed = classifiedBox(a, ctx, skipped)
    if (boxed === undefined) continue
    if (a.iscrowd) {
      countSkip(skipped, "crowd")
      continue
    }
    const { bbox: [x, y, w, h], cls } = boxed
    if (!(w > 0 && h > 0)) {
      countSkip(skipped, "degenerate_box")
      continue
    }
    const x1 = clamp(x, 0, W), y1 = clamp(y, 0, H), x2 = clamp(x + w, 0, W), y2 = clamp(y + h, 0, H)
    if (!(x2 > x1 && y2 > y1)) {
      countSkip(skipped, "outside_image")
      continue
    }
    const line = ctx.task === "segmentation"
      ? polygonLine(cls, segmentationPoints(a, [x1, y1, x2, y2], skipped), W, H)
      : ctx.task === "pose"
      ? boxLine(cls, x1, y1, x2, y2, W, H) + keypointTail(a, ctx.keypointCount, W, H)
      : boxLine(cls, x1, y1, x2, y2, W, H)
    if (seen.has(line)) {
      countSkip(skipped, "duplicate")
      continue
    }
    seen.add(line)
    lines.push(line)
  }
  return lines
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

/** What goes in `data.yaml`. */
export interface YoloDataYaml {
  /** Absolute dataset directory. */
  readonly path: string
  readonly names: ReadonlyArray<string>
  /** Whether there is a test split. */
  readonly hasTest: boolean
  /** `[K, 3]` for pose. */
  readonly kptShape?: readonly [number, number] | undefined
  /** Classification: split entries are folders (`train`, `val`) rather than list files. */
  readonly folders?: boolean | undefined
}

/** The `data.yaml` text, written with the YAML library so any class name survives. */
export const yoloDataYaml = (d: YoloDataYaml): string => {
  const ext = d.folders ? "" : ".txt"
  const doc: Record<string, unknown> = { path: d.path, train: `train${ext}`, val: `val${ext}` }
  if (d.hasTest) doc["test"] = `test${ext}`
  doc["nc"] = d.names.length
  doc["names"] = [...d.names]
  if (d.kptShape) doc["kpt_shape"] = [...d.kptShape]
  return YAML.stringify(doc)
}

/** A class name made safe as one folder name (no separators, not `.`/`..`, not empty). */
export const classFolderName = (name: string): string => {
  const safe = name.replace(/[\\/\0]/g, "_")
  return safe === "" || safe === "." || safe === ".." ? `_${safe}` : safe
}

/** One link of the classification ImageFolder tree. */
export interface ClassifyLink {
  /** Index of the image in the dataset. */
  readonly image: number
  /** Path relative to the dataset dir: `{split}/{class}/{name}`. */
  readonly target: string
}

/**
 * The ImageFolder plan: each image with a class goes to `{split}/{class}/{base name}` (the
 * image id is prefixed when two images of one folder share a base name). The image class is
 * the image-level label, else its first annotation with a usable category; images without
 * one are skipped (`no_class`, or the category's skip reason).
 */
export const classifyPlan = (
  dataset: DiceDataset,
  splits: ReadonlyArray<DatasetSplit>,
  ctx: YoloContext,
  skipped: SkipCounts
): Array<ClassifyLink> => {
  const links: Array<ClassifyLink> = []
  const used = new Set<string>()
  dataset.images.forEach((image, i) => {
    let cls: number | string = "no_class"
    if (image.imageCategoryId !== undefined) cls = resolveClass(image.imageCategoryId, ctx)
    else {
      for (const a of image.annotations) {
        const c = resolveClass(a.categoryId, ctx)
        if (typeof c === "number" || cls === "no_class") cls = c
        if (typeof c === "number") break
      }
    }
    if (typeof cls === "string") {
      countSkip(skipped, cls)
      return
    }
    const folder = `${splits[i]}/${classFolderName(dataset.categories[cls]!.name)}`
    const base = image.fileName.split(/[\\/]/).pop() || `image-${image.id}`
    let target = `${folder}/${base}`
    if (used.has(target)) target = `${folder}/${image.id}_${base}`
    used.add(target)
    links.push({ image: i, target })
  })
  return links
}
