/**
 * A seeded synthetic DICE dataset (nested or flat shape) exercising every annotation kind the
 * decoder reads and every edge case the writers skip or clip: boxes outside or across the
 * border, degenerate and crowd boxes, unknown, background and name-only categories,
 * multi-part and too-short polygons, RLE masks, flat and nested keypoints, null fields,
 * explicit and missing splits, images in sub-folders, orphan annotations (flat shape).
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { mulberry32 } from "../../src/internal/splits.js"

/** What to generate. */
export interface SyntheticOptions {
  readonly images: number
  readonly shape: "nested" | "flat"
  /** `detection`, `segmentation` or `pose` (names the annotation file and `task_type`). */
  readonly task: string
  readonly seed: number
}

/** The seeded PRNG the synthetic sets are drawn from (the same seed gives the same set). */
export { mulberry32 }

/** Writes `annotations_{task}.json` and empty image files into `dir`. */
export const syntheticDice = async (dir: string, options: SyntheticOptions): Promise<void> => {
  const random = mulberry32(options.seed)
  const int = (n: number) => Math.floor(random() * n)
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[int(xs.length)]!
  const num = () => Math.round(random() * 4000) / 10 - 50
  const categories = [
    { id: 0, name: "__background__" },
    { id: 5, name: "person", supercategory: "human" },
    { id: 2, name: "car" },
    { id: 9, name: "yes" },
    { id: 7, name: "a b: c" }
  ]
  const images: Array<Record<string, unknown>> = []
  const annotations: Array<Record<string, unknown>> = []
  let annId = 1
  for (let i = 0; i < options.images; i++) {
    const width = pick([320, 640, 333.5])
    const height = pick([240, 480, 211])
    const sub = i % 7 === 0 ? "sub/" : ""
    const fileName = `${sub}img_${i}.${i % 5 === 0 ? "png" : "jpg"}`
    await fs.mkdir(path.join(dir, "images", sub), { recursive: true })
    await fs.writeFile(path.join(dir, "images", fileName), "")
    const anns: Array<Record<string, unknown>> = []
    const count = int(9)
    for (let b = 0; b < count; b++) {
      const kind = int(20)
      const bbox = kind === 0
        ? null
        : kind === 1
        ? [num(), num(), 0, num()]
        : kind === 2
        ? [width + 5, 10, 20, 20]
        : [num(), num(), Math.round(random() * 2000) / 10, Math.round(random() * 2000) / 10]
      const category = kind === 3 ? 99 : kind === 4 ? 0 : kind === 5 ? null : pick([5, 2, 9, 7])
      const a: Record<string, unknown> = { id: annId++, bbox }
      if (kind !== 6) a["area"] = bbox === null ? null : Math.abs((bbox[2] as number) * (bbox[3] as number))
      a["iscrowd"] = kind === 7 ? 1 : kind === 8 ? true : kind === 9 ? false : 0
      if (options.task === "segmentation") {
        a["segmentation"] = kind === 10
          ? { counts: "abc123", size: [height, width] }
          : kind === 11
          ? { counts: [1, 2, 3], size: [height, width] }
          : kind === 12
          ? [[1, 2, 3, 4]]
          : kind === 13
          ? null
          : Array.from({ length: 1 + int(3) }, () => Array.from({ length: 6 + 2 * int(4) }, num))
      }
      if (options.task === "pose") {
        const points = Array.from({ length: 2 + int(3) }, () => [num(), num(), int(3)])
        a["keypoints"] = kind === 14 ? points : kind === 15 ? null : points.flat()
        if (kind === 16) a["num_keypoints"] = 1
      }
      if (b > 0 && kind === 17) {
        // An exact duplicate of the previous annotation (the YOLO writer drops it).
        anns.push({ ...anns[b - 1]!, id: annId++ })
        continue
      }
      if (options.shape === "nested") {
        if (category === null) a["class_name"] = kind === 18 ? "car" : null
        else a["class_id"] = category
      } else a["category_id"] = category
      anns.push(a)
    }
    const split = pick([undefined, "train", "val", "valid", "test", " Train ", "other", null])
    const image: Record<string, unknown> = { id: 1000 + i, file_name: `images/${fileName}`, width, height }
    if (split !== undefined) image["split"] = split
    if (options.shape === "nested") images.push({ ...image, annotations: anns })
    else {
      images.push(image)
      for (const a of anns) annotations.push({ ...a, image_id: 1000 + i })
    }
  }
  const doc: Record<string, unknown> = { format_version: "2.0", task_type: options.task }
  if (options.shape === "nested") {
    doc["classes"] = categories
    doc["images"] = images
  } else {
    annotations.push({ id: annId++, image_id: 999_999, category_id: 5, bbox: [1, 1, 2, 2] })
    doc["categories"] = categories
    doc["images"] = images
    doc["annotations"] = annotations
  }
  await fs.writeFile(path.join(dir, `annotations_${options.task}.json`), JSON.stringify(doc))
}
