import { describe, expect, it } from "@effect/vitest"
import * as NodeFs from "node:fs"
import { fileURLToPath } from "node:url"
import { imageProblem, readImageHeader } from "../src/internal/imageHeader.js"
import { pngBytes } from "./support/images.js"

const header = (bytes: Uint8Array) => readImageHeader(bytes, bytes.subarray(Math.max(0, bytes.length - 16)), bytes.length)

const jpeg = new Uint8Array(NodeFs.readFileSync(fileURLToPath(new URL("./fixtures/datasets/nested-pose/images/p1.jpg", import.meta.url))))

const le16 = (n: number) => [n & 0xff, n >> 8]
const le32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff]
const be16 = (n: number) => [n >> 8, n & 0xff]

/** A JPEG with an APP1 EXIF segment (big-endian TIFF) carrying `orientation`, spliced after SOI. */
const withOrientation = (orientation: number): Uint8Array => {
  const tiff = [0x4d, 0x4d, 0, 42, 0, 0, 0, 8, ...be16(1), ...be16(274), ...be16(3), 0, 0, 0, 1, ...be16(orientation), 0, 0, 0, 0, 0, 0]
  const payload = [...Buffer.from("Exif\0\0", "latin1"), ...tiff]
  const app1 = [0xff, 0xe1, ...be16(payload.length + 2), ...payload]
  return new Uint8Array([...jpeg.subarray(0, 2), ...app1, ...jpeg.subarray(2)])
}

const bmp = (width: number, height: number) =>
  new Uint8Array([0x42, 0x4d, ...le32(70), 0, 0, 0, 0, ...le32(54), ...le32(40), ...le32(width), ...le32(height), ...le16(1), ...le16(24), ...new Array(40).fill(0)])

const riff = (chunk: Array<number>) => new Uint8Array([...Buffer.from("RIFF"), ...le32(4 + chunk.length), ...Buffer.from("WEBP"), ...chunk])

const tiffLe = (width: number, height: number) =>
  new Uint8Array([0x49, 0x49, 42, 0, ...le32(8), ...le16(2), ...le16(256), ...le16(3), ...le32(1), ...le16(width), 0, 0, ...le16(257), ...le16(4), ...le32(1), ...le32(height), ...le32(0)])

describe("readImageHeader", () => {
  it("PNG: size from IHDR; a truncated file or a bad checksum is bad", () => {
    const png = pngBytes(12, 34)
    expect(header(png)).toEqual({ _tag: "Image", format: "png", width: 12, height: 34 })
    expect(header(png.subarray(0, png.length - 5))).toEqual({ _tag: "Bad", reason: "truncated PNG (no IEND chunk at the end)" })
    const corrupt = new Uint8Array(png)
    corrupt[18] = 0x7f
    expect(header(corrupt)).toEqual({ _tag: "Bad", reason: "corrupt PNG: IHDR checksum mismatch" })
  })

  it("JPEG: size from the frame header, EXIF orientation applied; no end marker is a warning; no image data is bad", () => {
    expect(header(jpeg)).toEqual({ _tag: "Image", format: "jpeg", width: 100, height: 200, warning: undefined })
    expect(header(withOrientation(6))).toMatchObject({ width: 200, height: 100 })
    expect(header(withOrientation(3))).toMatchObject({ width: 100, height: 200 })
    expect(header(jpeg.subarray(0, jpeg.length - 2))).toMatchObject({ _tag: "Image", warning: expect.stringMatching(/without its end marker/) })
    expect(header(jpeg.subarray(0, 30))._tag).toBe("Bad")
  })

  it("BMP, WebP (VP8, VP8L, VP8X) and TIFF sizes", () => {
    expect(header(bmp(640, -480))).toEqual({ _tag: "Image", format: "bmp", width: 640, height: 480 })
    const vp8 = [...Buffer.from("VP8 "), ...le32(10), 0, 0, 0, 0x9d, 0x01, 0x2a, ...le16(320), ...le16(240)]
    expect(header(riff(vp8))).toMatchObject({ format: "webp", width: 320, height: 240 })
    const vp8l = [...Buffer.from("VP8L"), ...le32(5), 0x2f, (99 & 0xff), ((99 >> 8) & 0x3f) | ((49 & 0x3) << 6), (49 >> 2) & 0xff, (49 >> 10) & 0x0f]
    expect(header(riff(vp8l))).toMatchObject({ format: "webp", width: 100, height: 50 })
    const vp8x = [...Buffer.from("VP8X"), ...le32(10), 0, 0, 0, 0, 199, 0, 0, 99, 0, 0]
    expect(header(riff(vp8x))).toMatchObject({ format: "webp", width: 200, height: 100 })
    expect(header(tiffLe(30, 40))).toEqual({ _tag: "Image", format: "tiff", width: 30, height: 40 })
  })

  it("empty, GIF, text and short WebP files are bad; images under 10 pixels are a problem", () => {
    expect(header(new Uint8Array())).toEqual({ _tag: "Bad", reason: "empty file (0 bytes)" })
    expect(header(new Uint8Array(Buffer.from("GIF89a....")))).toMatchObject({ _tag: "Bad", reason: expect.stringMatching(/GIF/) })
    expect(header(new Uint8Array(Buffer.from("hello world")))._tag).toBe("Bad")
    const vp8x = riff([...Buffer.from("VP8X"), ...le32(10), 0, 0, 0, 0, 199, 0, 0, 99, 0, 0])
    expect(readImageHeader(vp8x, vp8x, vp8x.length + 10)._tag).toBe("Image")
    expect(readImageHeader(vp8x, vp8x, vp8x.length - 1)).toEqual({ _tag: "Bad", reason: "truncated WebP (shorter than its RIFF size)" })
    expect(imageProblem(header(pngBytes(9, 50)))).toMatch(/9x50 pixels: Ultralytics rejects images under 10 pixels/)
    expect(imageProblem(header(pngBytes(10, 10)))).toBeUndefined()
  })
})
