/**
 * Image headers read the way the training frameworks check images, without decoding pixels:
 * the format from the content (not the extension), the size, and the structural checks that
 * tell a whole file from a truncated or foreign one (JPEG, PNG, BMP, WebP, TIFF). Pure: the
 * caller reads a prefix of the file and its last bytes.
 */

/** Image extensions Ultralytics lists (`IMG_FORMATS`); a file with another extension is ignored by it. */
export const ultralyticsImageExtensions: ReadonlySet<string> = new Set([
  "bmp",
  "dng",
  "jpeg",
  "jpg",
  "mpo",
  "png",
  "tif",
  "tiff",
  "webp",
  "pfm",
  "heic"
])

/** Bytes read from the start of a file before a header needs more. */
export const headerPrefixBytes = 64 * 1024

/** Bytes read from the end of a file (end markers). */
export const headerTailBytes = 16

/** What the header of an image file says. */
export type ImageHeader =
  | {
    readonly _tag: "Image"
    readonly format: "jpeg" | "png" | "bmp" | "webp" | "tiff"
    readonly width: number
    readonly height: number
    /** Things the consumer repairs or tolerates, e.g. a JPEG without its end marker. */
    readonly warning?: string | undefined
  }
  /** A format the consumer reads but this module does not check (PFM, HEIC). */
  | { readonly _tag: "Unchecked"; readonly format: string }
  /** Not an image the consumer can use; `reason` says why. */
  | { readonly _tag: "Bad"; readonly reason: string }
  /** The prefix given is too short to tell: read this many bytes (or the whole file) and ask again. */
  | { readonly _tag: "NeedMore"; readonly bytes: number }

const bad = (reason: string): ImageHeader => ({ _tag: "Bad", reason })

const u16be = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!
const u32be = (b: Uint8Array, o: number) => ((b[o]! << 24) >>> 0) + (b[o + 1]! << 16) + (b[o + 2]! << 8) + b[o + 3]!
const u16le = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8)
const u32le = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16)) + ((b[o + 3]! << 24) >>> 0)
const i32le = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)
const ascii = (b: Uint8Array, o: number, n: number) => String.fromCharCode(...b.subarray(o, o + n))

const crcTable = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

const crc32 = (b: Uint8Array): number => {
  let c = 0xffffffff
  for (const byte of b) c = crcTable[(c ^ byte) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

/**
 * The EXIF orientation (tag 274) of an APP1 segment starting at `at`, or 1. Orientations 5 to
 * 8 turn the image a quarter: readers that apply them (OpenCV, PIL's `exif_transpose`,
 * Ultralytics' `exif_size`) see width and height swapped.
 */
const exifOrientation = (head: Uint8Array, at: number, length: number): number => {
  const base = at + 10
  const end = Math.min(head.length, at + 2 + length)
  if (base + 8 > end || ascii(head, at + 4, 6) !== "Exif\0\0") return 1
  const le = head[base] === 0x49
  const r16 = (o: number) => (le ? u16le(head, o) : u16be(head, o))
  const r32 = (o: number) => (le ? u32le(head, o) : u32be(head, o))
  const ifd = base + r32(base + 4)
  if (ifd + 2 > end) return 1
  const count = r16(ifd)
  for (let i = 0; i < count && ifd + 2 + 12 * i + 12 <= end; i++) {
    const e = ifd + 2 + 12 * i
    if (r16(e) === 274) return r16(e + 8)
  }
  return 1
}

const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc

const jpeg = (head: Uint8Array, tail: Uint8Array, size: number): ImageHeader => {
  let at = 2
  let dims: readonly [number, number] | undefined
  let orientation = 1
  for (;;) {
    if (at + 4 > head.length) return head.length < size ? { _tag: "NeedMore", bytes: size } : bad("truncated JPEG (no image data)")
    if (head[at] !== 0xff) return bad(`corrupt JPEG: no marker at byte ${at}`)
    let marker = head[at + 1]!
    while (marker === 0xff && at + 2 < head.length) marker = head[++at + 1]!
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2
      continue
    }
    if (marker === 0xd9) return bad("corrupt JPEG: end marker before the image data")
    const length = u16be(head, at + 2)
    if (length < 2) return bad(`corrupt JPEG: segment of length ${length} at byte ${at}`)
    if (marker === 0xe1 && orientation === 1) orientation = exifOrientation(head, at, length)
    if (isSof(marker)) {
      if (at + 9 > head.length) return head.length < size ? { _tag: "NeedMore", bytes: size } : bad("truncated JPEG header")
      dims = [u16be(head, at + 7), u16be(head, at + 5)]
      if (dims[0] === 0 || dims[1] === 0) return bad("JPEG without a size in its frame header")
    }
    if (marker === 0xda) {
      if (dims === undefined) return bad("corrupt JPEG: image data before the frame header")
      const warning = tail[tail.length - 2] === 0xff && tail[tail.length - 1] === 0xd9
        ? undefined
        : "JPEG without its end marker (truncated or trailing bytes): Ultralytics re-saves it in place ('corrupt JPEG restored')"
      const [width, height] = orientation >= 5 && orientation <= 8 ? [dims[1], dims[0]] : dims
      return { _tag: "Image", format: "jpeg", width, height, warning }
    }
    at += 2 + length
  }
}

const pngEnd = [0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]

const png = (head: Uint8Array, tail: Uint8Array): ImageHeader => {
  if (head.length < 33) return bad("truncated PNG header")
  if (u32be(head, 8) !== 13 || ascii(head, 12, 4) !== "IHDR") return bad("corrupt PNG: no IHDR chunk first")
  if (crc32(head.subarray(12, 29)) !== u32be(head, 29)) return bad("corrupt PNG: IHDR checksum mismatch")
  const width = u32be(head, 16), height = u32be(head, 20)
  if (width === 0 || height === 0) return bad("PNG of zero size")
  const end = tail.subarray(tail.length - 12)
  if (end.length < 12 || pngEnd.some((v, i) => end[i] !== v)) return bad("truncated PNG (no IEND chunk at the end)")
  return { _tag: "Image", format: "png", width, height }
}

const bmp = (head: Uint8Array, size: number): ImageHeader => {
  if (head.length < 26) return bad("truncated BMP header")
  const dib = u32le(head, 14)
  const [width, height] = dib === 12
    ? [u16le(head, 18), u16le(head, 20)]
    : dib >= 40 && head.length >= 30
    ? [i32le(head, 18), Math.abs(i32le(head, 22))]
    : [0, 0]
  if (!(width > 0 && height > 0)) return bad("corrupt BMP header (no size)")
  if (u32le(head, 10) >= size) return bad("truncated BMP (pixel data offset past the end)")
  return { _tag: "Image", format: "bmp", width, height }
}

const webp = (head: Uint8Array, size: number): ImageHeader => {
  if (u32le(head, 4) + 8 > size) return bad("truncated WebP (shorter than its RIFF size)")
  const chunk = ascii(head, 12, 4)
  if (head.length < (chunk === "VP8L" ? 25 : 30)) return bad("truncated WebP header")
  let width = 0, height = 0
  if (chunk === "VP8 ") {
    if (head[23] !== 0x9d || head[24] !== 0x01 || head[25] !== 0x2a) return bad("corrupt WebP (VP8 start code)")
    width = u16le(head, 26) & 0x3fff
    height = u16le(head, 28) & 0x3fff
  } else if (chunk === "VP8L") {
    if (head[20] !== 0x2f) return bad("corrupt WebP (VP8L signature)")
    const b1 = head[22]!, b2 = head[23]!, b3 = head[24]!
    width = 1 + (head[21]! | ((b1 & 0x3f) << 8))
    height = 1 + ((b1 >> 6) | (b2 << 2) | ((b3 & 0x0f) << 10))
  } else if (chunk === "VP8X") {
    width = 1 + (head[24]! | (head[25]! << 8) | (head[26]! << 16))
    height = 1 + (head[27]! | (head[28]! << 8) | (head[29]! << 16))
  } else return bad(`corrupt WebP (unknown chunk ${JSON.stringify(chunk)})`)
  if (width === 0 || height === 0) return bad("WebP of zero size")
  return { _tag: "Image", format: "webp", width, height }
}

const tiff = (head: Uint8Array, size: number): ImageHeader => {
  const le = head[0] === 0x49
  const r16 = (o: number) => (le ? u16le(head, o) : u16be(head, o))
  const r32 = (o: number) => (le ? u32le(head, o) : u32be(head, o))
  const ifd = r32(4)
  if (ifd < 8 || ifd + 2 > size) return bad("corrupt TIFF (first directory outside the file)")
  if (ifd + 2 > head.length) return { _tag: "NeedMore", bytes: size }
  const count = r16(ifd)
  if (ifd + 2 + 12 * count > head.length) return head.length < size ? { _tag: "NeedMore", bytes: size } : bad("truncated TIFF directory")
  let width = 0, height = 0
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + 12 * i
    const tag = r16(e), type = r16(e + 2)
    const value = type === 3 ? r16(e + 8) : type === 4 ? r32(e + 8) : 0
    if (tag === 256) width = value
    if (tag === 257) height = value
  }
  if (width === 0 || height === 0) return bad("TIFF without a size")
  return { _tag: "Image", format: "tiff", width, height }
}

/**
 * Reads an image header from `head` (the first bytes of the file, up to `headerPrefixBytes`
 * or more when asked), `tail` (its last `headerTailBytes` bytes) and the file size. The
 * format comes from the content; a JPEG's size is as displayed (EXIF orientation applied, as
 * OpenCV and Ultralytics read it); an empty file, an unknown or non-image format (GIF, text),
 * a truncated PNG, WebP or BMP, a JPEG without frame header or image data are `Bad`.
 */
export const readImageHeader = (head: Uint8Array, tail: Uint8Array, size: number): ImageHeader => {
  if (size === 0) return bad("empty file (0 bytes)")
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return jpeg(head, tail, size)
  if (head.length >= 8 && ascii(head, 1, 3) === "PNG" && head[0] === 0x89) return png(head, tail)
  if (head.length >= 2 && ascii(head, 0, 2) === "BM") return bmp(head, size)
  if (head.length >= 12 && ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 4) === "WEBP") return webp(head, size)
  if (head.length >= 8 && (ascii(head, 0, 4) === "II*\0" || ascii(head, 0, 4) === "MM\0*")) return tiff(head, size)
  if (head.length >= 3 && (ascii(head, 0, 3) === "PF\n" || ascii(head, 0, 3) === "Pf\n")) return { _tag: "Unchecked", format: "pfm" }
  if (head.length >= 12 && ascii(head, 4, 4) === "ftyp" && /^(heic|heix|mif1|msf1|heim|heis|hevc)$/.test(ascii(head, 8, 4))) {
    return { _tag: "Unchecked", format: "heic" }
  }
  if (head.length >= 6 && ascii(head, 0, 3) === "GIF") return bad("a GIF image: Ultralytics reads no GIF (not in its image formats)")
  return bad("not an image Ultralytics reads (unknown content)")
}

/** The problem of an image for training, if any: a bad header, or a side under 10 pixels (Ultralytics' minimum). */
export const imageProblem = (header: ImageHeader): string | undefined =>
  header._tag === "Bad"
    ? header.reason
    : header._tag === "Image" && (header.width < 10 || header.height < 10)
    ? `image of ${header.width}x${header.height} pixels: Ultralytics rejects images under 10 pixels on a side`
    : undefined
