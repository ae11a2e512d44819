/**
 * The object rules both writers share, so the YOLO and the COCO output of one dataset hold
 * the same objects: which annotations are kept (and why the others are skipped), boxes and
 * polygons clipped to the image, keypoints outside the image or with a bad visibility
 * cleared, duplicates dropped; and the YOLO row of each object. Pure: no I/O.
 */
import type { DiceAnnotation, DiceImage, DiceRle } from "./diceModel.js"
import type { ConverterTask } from "../Converter.js"

/** Skipped annotations (or parts) by reason. */
export type SkipCounts = Record<string, number>

/** Adds `n` to a reason's count. */
export const countSkip = (skipped: SkipCounts, reason: string, n = 1): void => {
  skipped[reason] = (skipped[reason] ?? 0) + n
}

/**
 * The millionths a normalized coordinate rounds to, when `toFixed(6)` is sure to print them:
 * in [0, 1], `value * 1e6` is off the exact product by less than 1e-9, so when it lies
 * further than that from a rounding tie, its nearest integer is the one `toFixed` picks.
 * `undefined` for ties and values outside [0, 1] (those go to `toFixed`).
 */
const shortMicros = (value: number): number | undefined => {
  if (!(value >= 0 && value <= 1)) return undefined
  const scaled = value * 1e6
  const n = Math.round(scaled)
  return Math.abs(scaled - n) < 0.4999 ? n : undefined
}

/** `toFixed(6)` without `-0.000000`. */
const fixed6 = (value: number): string => {
  const text = value.toFixed(6)
  return text === "-0.000000" ? "0.000000" : text
}

/** Label bytes are ASCII, which UTF-8 decodes as it is. */
const asciiText = new TextDecoder()

const SPACE = 0x20
const NEWLINE = 0x0a
const ZERO = 0x30
const DOT = 0x2e

/**
 * YOLO label text written as bytes (it is ASCII): rows of a class index and numbers printed
 * `%.6f` (exactly `toFixed(6)`, never `-0.000000`), separated by newlines. Rows are compared
 * where they lie, so label files are built without a string per number or per row
 * (`toFixed` itself dominated label formatting; normalized coordinates take the short path
 * of `shortMicros`).
 */
export class LabelBytes {
  bytes: Uint8Array
  length = 0

  /** `capacity`: the bytes to start with (it grows as needed). */
  constructor(capacity = 1 << 16) {
    this.bytes = new Uint8Array(Math.max(capacity, 64))
  }

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n))
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }

  /** An ASCII string. */
  ascii(text: string): void {
    this.reserve(text.length)
    for (let i = 0; i < text.length; i++) this.bytes[this.length++] = text.charCodeAt(i)
  }

  /** A non-negative whole number, as `String` prints it. */
  int(value: number): void {
    if (value >= 1e9) return this.ascii(String(value))
    this.reserve(10)
    let digits = 1
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++
    const bytes = this.bytes
    for (let i = this.length + digits - 1, rest = value; i >= this.length; i--, rest = Math.floor(rest / 10)) {
      bytes[i] = ZERO + (rest % 10)
    }
    this.length += digits
  }

  /** A space, then `value` printed `%.6f` (see the class). */
  number(value: number): void {
    const n = shortMicros(value)
    if (n === undefined) {
      this.byte(SPACE)
      return this.ascii(fixed6(value))
    }
    this.reserve(9)
    const bytes = this.bytes
    let at = this.length
    bytes[at++] = SPACE
    if (n === 1e6) {
      bytes[at++] = ZERO + 1
      bytes[at++] = DOT
      for (let i = 0; i < 6; i++) bytes[at++] = ZERO
    } else {
      bytes[at++] = ZERO
      bytes[at++] = DOT
      for (let i = at + 5, rest = n; i >= at; i--, rest = Math.floor(rest / 10)) bytes[i] = ZERO + (rest % 10)
      at += 6
    }
    this.length = at
  }

  /** A newline. */
  newline(): void {
    this.byte(NEWLINE)
  }

  /** Whether the bytes `[a, a + n)` and `[b, b + n)` are the same. */
  same(a: number, b: number, n: number): boolean {
    const bytes = this.bytes
    for (let i = 0; i < n; i++) if (bytes[a + i] !== bytes[b + i]) return false
    return true
  }

  /** The text of `[start, end)`. */
  text(start: number, end: number): string {
    return asciiText.decode(this.bytes.subarray(start, end))
  }

  private byte(value: number): void {
    this.reserve(1)
    this.bytes[this.length++] = value
  }
}

/** What the object rules need to know about the dataset. */
export interface ObjectContext {
  readonly task: ConverterTask
  /** Category id → class index (position among non-background categories, file order). */
  readonly classIndex: ReadonlyMap<number, number>
  readonly backgroundIds: ReadonlySet<number>
  /** `K` of `kpt_shape: [K, 3]` (pose only). */
  readonly keypointCount: number
}

/**
 * The class index of an annotation's category, or the skip reason: `no_category`,
 * `background`, `unknown_category`.
 */
export const resolveClass = (
  categoryId: number | undefined,
  ctx: Pick<ObjectContext, "classIndex" | "backgroundIds">
): number | string => {
  if (categoryId === undefined) return "no_category"
  if (ctx.backgroundIds.has(categoryId)) return "background"
  return ctx.classIndex.get(categoryId) ?? "unknown_category"
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

/** A box `[x1, y1, x2, y2]` as a 4-point polygon (flat), clockwise from the top-left corner. */
export const boxPolygon = (box: readonly [number, number, number, number]): Array<number> => {
  const [x1, y1, x2, y2] = box
  return [x1, y1, x2, y1, x2, y2, x1, y2]
}

/**
 * An annotation's keypoints as exactly `k` triples `x, y, v` in pixels: a keypoint with
 * `v = 0`, outside the image (`keypoint_outside_image`) or with a visibility other than 0, 1
 * or 2 (`keypoint_bad_visibility`) becomes `0, 0, 0`; missing triples are `0, 0, 0`.
 */
export const cleanKeypoints = (
  keypoints: ReadonlyArray<number> | undefined,
  k: number,
  width: number,
  height: number,
  skipped: SkipCounts
): Array<number> => {
  const out = new Array<number>(3 * k).fill(0)
  const kp = keypoints ?? []
  for (let i = 0; i < k && 3 * i + 2 < kp.length; i++) {
    const x = kp[3 * i]!, y = kp[3 * i + 1]!, v = kp[3 * i + 2]!
    if (v !== 0 && v !== 1 && v !== 2) {
      countSkip(skipped, "keypoint_bad_visibility")
      continue
    }
    if (v === 0) continue
    if (!(x >= 0 && x <= width && y >= 0 && y <= height)) {
      countSkip(skipped, "keypoint_outside_image")
      continue
    }
    out[3 * i] = x
    out[3 * i + 1] = y
    out[3 * i + 2] = v
  }
  return out
}

/** One object of an image as both writers hold it. */
export interface ImageObject {
  readonly annotation: DiceAnnotation
  readonly categoryId: number
  /** The YOLO class index. */
  readonly cls: number
  /** The box clipped to the image, `[x1, y1, x2, y2]` in pixels. */
  readonly box: readonly [number, number, number, number]
  /** Whether clipping changed the box. */
  readonly clipped: boolean
  /**
   * Polygons in pixels, each point clipped to the image and each with at least 3 points.
   * Segmentation task: a box-only annotation has its box as a rectangle here; undefined when
   * the mask is an RLE only.
   */
  readonly polygons: ReadonlyArray<ReadonlyArray<number>> | undefined
  /** The annotation's RLE mask when it has no usable polygon. */
  readonly rle: DiceRle | undefined
  /** Pose task: exactly `K` cleaned keypoint triples (see `cleanKeypoints`). */
  readonly keypoints: ReadonlyArray<number> | undefined
  readonly crowd: boolean
  /**
   * Why YOLO cannot hold the object, when it cannot: `crowd` (a crowd region is not an object
   * to learn; COCO keeps it as `iscrowd: 1`) or `rle_mask` (a segmentation row needs a
   * polygon; COCO keeps the RLE). Otherwise it has a YOLO label row.
   */
  readonly skip: "crowd" | "rle_mask" | undefined
}

const boxRow = (out: LabelBytes, cls: number, [x1, y1, x2, y2]: readonly [number, number, number, number], w: number, h: number) => {
  out.int(cls)
  out.number((x1 + x2) / 2 / w)
  out.number((y1 + y2) / 2 / h)
  out.number((x2 - x1) / w)
  out.number((y2 - y1) / h)
}

const polygonRow = (out: LabelBytes, cls: number, points: ReadonlyArray<Point>, w: number, h: number) => {
  out.int(cls)
  for (const [x, y] of points) {
    out.number(x / w)
    out.number(y / h)
  }
}

const keypointTail = (out: LabelBytes, kp: ReadonlyArray<number>, w: number, h: number) => {
  for (let i = 0; i + 2 < kp.length; i += 3) {
    out.number(kp[i]! / w)
    out.number(kp[i + 1]! / h)
    out.number(kp[i + 2]!)
  }
}

/** Where rows are written when the caller wants the objects only (they are still compared, for duplicates). */
const scratchRows = new LabelBytes()

/**
 * The objects of one image (detection, segmentation or pose), in annotation order. Skipped
 * and counted, for both outputs alike: no/unknown/background category, no bbox, zero or
 * negative size (`degenerate_box`), nothing left after clipping (`outside_image`), polygon
 * parts of fewer than 3 points (`polygon_too_few_points`), identical duplicates
 * (`duplicate`: the same YOLO row twice). Boxes, polygon points and keypoints are clipped to
 * the image, so no normalized coordinate leaves [0, 1].
 *
 * The YOLO rows of the objects that have one are appended to `rows`, separated by newlines:
 * the image's label text (see `yoloImageLabel`).
 */
export const imageObjects = (
  image: DiceImage,
  ctx: ObjectContext,
  skipped: SkipCounts,
  rows: LabelBytes = scratchRows
): Array<ImageObject> => {
  const objects: Array<ImageObject> = []
  if (rows === scratchRows) rows.length = 0
  // Rows kept so far (start and end, interleaved): compared in place while they are few
  // (most images; a set per image cost more), in a set of their texts beyond that.
  const kept: Array<number> = []
  let seen: Set<string> | undefined
  const W = image.width, H = image.height
  for (const a of image.annotations) {
    const cls = resolveClass(a.categoryId, ctx)
    if (typeof cls === "string") {
      countSkip(skipped, cls)
      continue
    }
    if (a.bbox === undefined) {
      countSkip(skipped, "no_bbox")
      continue
    }
    const [x, y, w, h] = a.bbox
    if (!(w > 0 && h > 0)) {
      countSkip(skipped, "degenerate_box")
      continue
    }
    const box = [clamp(x, 0, W), clamp(y, 0, H), clamp(x + w, 0, W), clamp(y + h, 0, H)] as const
    if (!(box[2] > box[0] && box[3] > box[1])) {
      countSkip(skipped, "outside_image")
      continue
    }
    const clipped = box[0] !== x || box[1] !== y || box[2] !== x + w || box[3] !== y + h
    const usable: Array<Array<number>> = []
    for (const poly of a.polygons ?? []) {
      if (poly.length >= 6) {
        const part = new Array<number>(2 * Math.floor(poly.length / 2))
        for (let i = 0; i + 1 < poly.length; i += 2) {
          part[i] = clamp(poly[i]!, 0, W)
          part[i + 1] = clamp(poly[i + 1]!, 0, H)
        }
        usable.push(part)
      } else countSkip(skipped, "polygon_too_few_points")
    }
    const rle = usable.length === 0 ? a.rle : undefined
    const polygons = usable.length > 0
      ? usable
      : ctx.task === "segmentation" && rle === undefined
      ? [boxPolygon(box)]
      : undefined
    const keypoints = ctx.task === "pose" ? cleanKeypoints(a.keypoints, ctx.keypointCount, W, H, skipped) : undefined
    const skip = a.iscrowd ? "crowd" : ctx.task === "segmentation" && polygons === undefined ? "rle_mask" : undefined
    if (skip === undefined) {
      const before = rows.length
      if (kept.length > 0) rows.newline()
      const start = rows.length
      if (ctx.task === "segmentation") polygonRow(rows, cls, mergeMultiSegment(polygons!.map(toPoints)), W, H)
      else {
        boxRow(rows, cls, box, W, H)
        if (ctx.task === "pose") keypointTail(rows, keypoints!, W, H)
      }
      if (isDuplicate(rows, kept, start, seen)) {
        rows.length = before
        countSkip(skipped, "duplicate")
        continue
      }
      kept.push(start, rows.length)
      if (seen !== undefined) seen.add(rows.text(start, rows.length))
      else if (kept.length > 64) seen = new Set(Array.from({ length: kept.length / 2 }, (_, k) => rows.text(kept[2 * k]!, kept[2 * k + 1]!)))
    }
    objects.push({ annotation: a, categoryId: a.categoryId!, cls, box, clipped, polygons, rle, keypoints, crowd: a.iscrowd, skip })
  }
  return objects
}

/** Whether the row just written (from `start` to the end of `rows`) is one of the rows `kept` (or `seen`, once they are many). */
const isDuplicate = (rows: LabelBytes, kept: ReadonlyArray<number>, start: number, seen: ReadonlySet<string> | undefined): boolean => {
  const n = rows.length - start
  if (seen !== undefined) return seen.has(rows.text(start, rows.length))
  for (let k = 0; k < kept.length; k += 2) {
    if (kept[k + 1]! - kept[k]! === n && rows.same(kept[k]!, start, n)) return true
  }
  return false
}

const swapSide = (name: string): string | undefined => {
  const pairs: ReadonlyArray<readonly [RegExp, (m: string) => string]> = [
    [/left|right/i, (m) => {
      const other = m.toLowerCase() === "left" ? "right" : "left"
      return m === m.toUpperCase() ? other.toUpperCase() : m[0] === m[0]!.toUpperCase() ? other[0]!.toUpperCase() + other.slice(1) : other
    }],
    [/^[lr](?=[_\-. ])/i, (m) => (m === "l" ? "r" : m === "r" ? "l" : m === "L" ? "R" : "L")],
    [/(?<=[_\-. ])[lr]$/i, (m) => (m === "l" ? "r" : m === "r" ? "l" : m === "L" ? "R" : "L")]
  ]
  for (const [re, swap] of pairs) if (re.test(name)) return name.replace(re, swap)
  return undefined
}

/**
 * Ultralytics' `flip_idx` from keypoint names: each name with a left/right marker (`left_eye`,
 * `RightHand`, `l_knee`, `wrist.R`) maps to the index of its mirrored name, the others to
 * themselves. `undefined` when a marked name has no mirrored partner (the pairing cannot be
 * derived) or names repeat.
 */
export const flipIndex = (names: ReadonlyArray<string>): Array<number> | undefined => {
  const at = new Map<string, number>()
  for (let i = 0; i < names.length; i++) {
    if (at.has(names[i]!)) return undefined
    at.set(names[i]!, i)
  }
  const flip: Array<number> = []
  for (let i = 0; i < names.length; i++) {
    const other = swapSide(names[i]!)
    if (other === undefined) flip.push(i)
    else {
      const j = at.get(other)
      if (j === undefined || j === i) return undefined
      flip.push(j)
    }
  }
  return flip.every((j, i) => flip[j] === i) ? flip : undefined
}
