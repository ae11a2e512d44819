/**
 * Checks of a COCO instances document as pycocotools and MMDetection load it: unique ids,
 * annotation ids from 1, references to known images and categories, boxes of positive size
 * inside their image, and a `segmentation` on every annotation of a segmentation dataset.
 * Pure: the service reads the files.
 */
import { isRecord } from "./json.js"

/** An image entry that passed the checks. */
export interface CheckedCocoImage {
  readonly id: number
  readonly file_name: string
  readonly width: number
  readonly height: number
}

/** What one COCO document holds, once checked. */
export interface CocoDocumentCheck {
  readonly images: ReadonlyArray<CheckedCocoImage>
  readonly annotations: number
  /** Annotations per category name. */
  readonly distribution: Readonly<Record<string, number>>
  readonly categories: number
}

const isFiniteNumber = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)

/** Issues listed per document before the rest are counted. */
const maxPerDocument = 50

/**
 * Checks one parsed instances document. `segmentation`: whether every annotation must carry
 * a segmentation (a segmentation task); without it, a document mixing annotations with and
 * without one is still an issue (pycocotools' segm evaluation fails on it). Problems are
 * appended to `issues`, prefixed with `file`.
 */
export const checkCocoDocument = (
  file: string,
  doc: unknown,
  segmentation: boolean,
  issues: Array<string>
): CocoDocumentCheck => {
  const found: Array<string> = []
  const issue = (text: string) => found.push(`${file}: ${text}`)
  const empty = { images: [], annotations: 0, distribution: {}, categories: 0 }
  if (!isRecord(doc) || !Array.isArray(doc["images"]) || !Array.isArray(doc["annotations"]) || !Array.isArray(doc["categories"])) {
    issues.push(`${file}: not a COCO instances document (images, annotations and categories arrays)`)
    return empty
  }
  const images = new Map<number, CheckedCocoImage>()
  doc["images"].forEach((raw: unknown, i) => {
    if (!isRecord(raw) || !isFiniteNumber(raw["id"]) || typeof raw["file_name"] !== "string") {
      return issue(`images[${i}]: needs a numeric id and a file_name`)
    }
    const { file_name, height, id, width } = raw as { id: number; file_name: string; width: unknown; height: unknown }
    if (!(isFiniteNumber(width) && width > 0 && isFiniteNumber(height) && height > 0)) return issue(`images[${i}] (id ${id}): width and height must be numbers > 0`)
    if (images.has(id)) return issue(`images[${i}]: duplicate image id ${id}`)
    images.set(id, { id, file_name, width, height })
  })
  const categories = new Map<number, string>()
  const keypointCounts = new Map<number, number>()
  doc["categories"].forEach((raw: unknown, i) => {
    if (!isRecord(raw) || !isFiniteNumber(raw["id"]) || typeof raw["name"] !== "string") return issue(`categories[${i}]: needs a numeric id and a name`)
    if (categories.has(raw["id"])) return issue(`categories[${i}]: duplicate category id ${raw["id"]}`)
    categories.set(raw["id"], raw["name"])
    if (Array.isArray(raw["keypoints"])) keypointCounts.set(raw["id"], raw["keypoints"].length)
  })
  const ids = new Set<number>()
  const distribution: Record<string, number> = {}
  let withSegmentation = 0
  let count = 0
  doc["annotations"].forEach((raw: unknown, i) => {
    const at = `annotations[${i}]`
    if (!isRecord(raw)) return issue(`${at}: not an object`)
    const id = raw["id"]
    if (!(isFiniteNumber(id) && Number.isInteger(id) && id >= 1)) issue(`${at}: id ${JSON.stringify(id)} (pycocotools needs integer ids from 1)`)
    else if (ids.has(id)) issue(`${at}: duplicate annotation id ${id}`)
    else ids.add(id)
    const image = isFiniteNumber(raw["image_id"]) ? images.get(raw["image_id"]) : undefined
    if (image === undefined) return issue(`${at}: image_id ${JSON.stringify(raw["image_id"])} is no image of the file`)
    const category = isFiniteNumber(raw["category_id"]) ? categories.get(raw["category_id"]) : undefined
    if (category === undefined) return issue(`${at}: category_id ${JSON.stringify(raw["category_id"])} is no category of the file`)
    const bbox = raw["bbox"]
    if (!(Array.isArray(bbox) && bbox.length === 4 && bbox.every(isFiniteNumber))) return issue(`${at}: bbox must be 4 numbers [x, y, w, h]`)
    const [x, y, w, h] = bbox as [number, number, number, number]
    if (!(w > 0 && h > 0)) return issue(`${at}: bbox of zero or negative size`)
    const eps = 1e-6
    if (x < -eps || y < -eps || x + w > image.width + eps || y + h > image.height + eps) {
      issue(`${at}: bbox [${bbox.join(", ")}] outside its ${image.width}x${image.height} image`)
    }
    if (!(isFiniteNumber(raw["area"]) && raw["area"] >= 0)) issue(`${at}: area must be a number >= 0`)
    if (raw["iscrowd"] !== undefined && raw["iscrowd"] !== 0 && raw["iscrowd"] !== 1) issue(`${at}: iscrowd must be 0 or 1`)
    const seg = raw["segmentation"]
    if (seg !== undefined) {
      withSegmentation++
      const polygonsOk = Array.isArray(seg) && seg.length > 0 &&
        seg.every((p) => Array.isArray(p) && p.length >= 6 && p.length % 2 === 0 && p.every(isFiniteNumber))
      const rleOk = isRecord(seg) && (typeof seg["counts"] === "string" || Array.isArray(seg["counts"])) &&
        Array.isArray(seg["size"]) && seg["size"][0] === image.height && seg["size"][1] === image.width
      if (!polygonsOk && !rleOk) issue(`${at}: segmentation is neither polygons (3+ points each) nor an RLE of the image's size`)
    } else if (segmentation) issue(`${at}: no segmentation (a segmentation dataset needs one on every annotation)`)
    const kp = raw["keypoints"]
    if (kp !== undefined) {
      const expected = keypointCounts.get(raw["category_id"] as number)
      if (!(Array.isArray(kp) && kp.length % 3 === 0 && kp.every(isFiniteNumber))) issue(`${at}: keypoints must be a flat [x, y, v, ...] list`)
      else {
        if (expected !== undefined && kp.length !== 3 * expected) issue(`${at}: ${kp.length / 3} keypoints, its category names ${expected}`)
        for (let k = 0; k < kp.length; k += 3) {
          const v = kp[k + 2] as number
          if (v !== 0 && v !== 1 && v !== 2) {
            issue(`${at}: keypoint ${k / 3} has visibility ${v} (0, 1 or 2)`)
            break
          }
          if (v > 0 && !(kp[k]! >= 0 && kp[k]! <= image.width && kp[k + 1]! >= 0 && kp[k + 1]! <= image.height)) {
            issue(`${at}: keypoint ${k / 3} is visible but outside its image`)
            break
          }
        }
      }
    }
    count++
    distribution[category] = (distribution[category] ?? 0) + 1
  })
  if (!segmentation && withSegmentation > 0 && withSegmentation < doc["annotations"].length) {
    issue(`${doc["annotations"].length - withSegmentation} annotation(s) without segmentation among ${withSegmentation} with one (pycocotools' segm evaluation fails on them)`)
  }
  issues.push(...found.slice(0, maxPerDocument))
  if (found.length > maxPerDocument) issues.push(`${file}: and ${found.length - maxPerDocument} more issue(s)`)
  return { images: [...images.values()], annotations: count, distribution, categories: categories.size }
}
