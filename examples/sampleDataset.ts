/**
 * A small generated DICE detection dataset for the example trainer: a few tiny PNG
 * images (coloured boxes on a plain background) and `annotations_detection.json` whose
 * boxes match what is drawn. Nothing is read from disk; the files are built in memory.
 */
import { deflateSync } from "node:zlib"

/** One file of the dataset, relative to `datasets/{datasetId}/`. */
export interface SampleFile {
  readonly key: string
  readonly bytes: Uint8Array
  readonly contentType: string
}

const classes = [
  { id: 0, name: "__background__" },
  { id: 1, name: "cat", color: "#FF6B6B", supercategory: "animal" },
  { id: 2, name: "dog", color: "#4ECDC4", supercategory: "animal" }
] as const

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

const crc32 = (bytes: Uint8Array): number => {
  let c = 0xffffffff
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const chunk = (type: string, data: Uint8Array): Buffer => {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, "ascii")
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0)
  return Buffer.concat([head, data, crc])
}

type Box = readonly [x: number, y: number, w: number, h: number]

/**
 * An 8-bit RGB PNG of `width`×`height` whose pixel at (x, y) has the colour `rgbAt(x, y)`:
 * a valid signature, IHDR with its checksum, zlib-compressed rows and IEND.
 */
export const encodeRgbPng = (
  width: number,
  height: number,
  rgbAt: (x: number, y: number) => readonly [number, number, number]
): Uint8Array => {
  const rows = Buffer.alloc((width * 3 + 1) * height)
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1)
    for (let x = 0; x < width; x++) rows.set(rgbAt(x, y), row + 1 + x * 3)
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header.set([8, 2, 0, 0, 0], 8)
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows)),
    chunk("IEND", new Uint8Array())
  ])
}

const background = [235, 235, 225] as const

/** An RGB PNG of `width`×`height` with each box filled in its colour. */
const png = (width: number, height: number, boxes: ReadonlyArray<{ box: Box; rgb: readonly [number, number, number] }>) =>
  encodeRgbPng(width, height, (x, y) =>
    boxes.find(({ box: [bx, by, bw, bh] }) => x >= bx && x < bx + bw && y >= by && y < by + bh)?.rgb ?? background
  )

const colours = { 1: [255, 107, 107], 2: [78, 205, 196] } as const

/** The dataset's files: `images` PNGs (default 6) and the DICE annotation file. */
export const sampleDiceDataset = (imageCount = 6): ReadonlyArray<SampleFile> => {
  const width = 64
  const height = 48
  const images = Array.from({ length: imageCount }, (_, i) => {
    const objects = [
      { classId: 1 as const, box: [4 + i * 3, 6, 20, 16] as Box },
      ...(i % 2 === 0 ? [{ classId: 2 as const, box: [36, 20 + (i % 3) * 4, 22, 18] as Box }] : [])
    ]
    return { id: i + 1, fileName: `img_${String(i + 1).padStart(3, "0")}.png`, objects }
  })
  const annotations = {
    format_version: "1.0",
    task_type: "object_detection",
    classes,
    images: images.map((image, i) => ({
      id: image.id,
      file_name: image.fileName,
      width,
      height,
      split: i < Math.ceil(imageCount * 0.7) ? "train" : "val",
      annotations: image.objects.map((o, j) => ({
        id: image.id * 100 + j,
        class_id: o.classId,
        class_name: classes[o.classId].name,
        bbox: o.box,
        area: o.box[2] * o.box[3],
        iscrowd: 0
      }))
    }))
  }
  return [
    {
      key: "annotations_detection.json",
      bytes: new TextEncoder().encode(JSON.stringify(annotations, null, 1)),
      contentType: "application/json"
    },
    ...images.map((image) => ({
      key: `images/${image.fileName}`,
      bytes: png(width, height, image.objects.map((o) => ({ box: o.box, rgb: colours[o.classId] }))),
      contentType: "image/png"
    }))
  ]
}
