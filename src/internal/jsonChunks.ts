/**
 * Piecewise parsing of a large JSON document whose bulk sits in a few top-level arrays (a
 * DICE file: `images`, `annotations`). One pass over the bytes finds the top-level members
 * and the element boundaries of the chosen arrays; elements are then decoded and parsed a
 * chunk at a time, so the whole text never exists as one string and each chunk's parse
 * garbage dies young. Pure: no I/O.
 *
 * The scan is deliberately shallow: it checks the syntax of the top-level object and of the
 * separators between array elements, and leaves everything inside a member or an element to
 * `JSON.parse`. A document is accepted here only when every piece parses, which happens
 * exactly when the whole document would; anything else (malformed or non-UTF-8 bytes, a
 * top-level value that is not an object, nesting deeper than the limit) makes `scanObject`
 * return `undefined`, and the caller takes the whole-document path with its exact errors.
 */

/**
 * Deepest nesting of arrays and objects accepted in any JSON the SDK reads. Real files nest
 * a handful of levels; a hostile one nested thousands deep would overflow the stack of every
 * recursive consumer (error formatting, `JSON.stringify`), so it is rejected up front.
 */
export const maxJsonDepth = 256

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const COMMA = 0x2c
const COLON = 0x3a

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09

/** A top-level member: its key and the byte range of its value (`elements` for split arrays). */
export interface ScannedMember {
  readonly key: string
  readonly start: number
  readonly end: number
  /** For a split array: start and end offsets of each element, interleaved. */
  readonly elements: ReadonlyArray<number> | undefined
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/** Decodes a byte range as strict UTF-8, or `undefined`. */
const decodeRange = (bytes: Uint8Array, start: number, end: number): string | undefined => {
  try {
    return strictUtf8.decode(bytes.subarray(start, end))
  } catch {
    return undefined
  }
}

/** Parses a byte range as one JSON text, or `undefined` (bad UTF-8 or JSON). */
export const parseRange = (bytes: Uint8Array, start: number, end: number): { readonly value: unknown } | undefined => {
  const text = decodeRange(bytes, start, end)
  if (text === undefined) return undefined
  try {
    return { value: JSON.parse(text) }
  } catch {
    return undefined
  }
}

/** End (exclusive) of the string whose opening quote is at `at`, or -1. */
const stringEnd = (bytes: Uint8Array, at: number): number => {
  let from = at + 1
  for (;;) {
    const quote = bytes.indexOf(QUOTE, from)
    if (quote < 0) return -1
    let slashes = 0
    while (bytes[quote - 1 - slashes] === BACKSLASH) slashes++
    if (slashes % 2 === 0) return quote + 1
    from = quote + 1
  }
}

/** What a byte is to the container walk of `valueEnd`: nothing, a quote, an opening or a closing bracket. */
const containerByte = new Uint8Array(256)
containerByte[QUOTE] = 1
containerByte[OPEN_BRACKET] = containerByte[OPEN_BRACE] = 2
containerByte[CLOSE_BRACKET] = containerByte[CLOSE_BRACE] = 3

/**
 * End (exclusive) of the value starting at `at` (not whitespace), nested at `depth` (the
 * top-level object is depth 1), or -1 when it runs off the end or nests deeper than `maxDepth`.
 */
const valueEnd = (bytes: Uint8Array, at: number, depth: number, maxDepth: number): number => {
  const n = bytes.length
  const first = bytes[at]
  if (first === QUOTE) return stringEnd(bytes, at)
  if (first !== OPEN_BRACKET && first !== OPEN_BRACE) {
    let i = at
    while (i < n) {
      const c = bytes[i]!
      if (c === COMMA || c === CLOSE_BRACKET || c === CLOSE_BRACE || isSpace(c)) break
      i++
    }
    return i
  }
  // Every byte of a container is looked at, so this loop is the scan's cost: one table
  // lookup per byte, and the (mostly short) strings inside skipped in place, a backslash
  // taking the byte after it along (about 40% faster than a search call per string).
  let level = 0
  let i = at
  while (i < n) {
    const kind = containerByte[bytes[i]!]
    if (kind === 0) i++
    else if (kind === 1) {
      i++
      for (;;) {
        if (i >= n) return -1
        const c = bytes[i]!
        if (c === QUOTE) break
        i += c === BACKSLASH ? 2 : 1
      }
      i++
    } else if (kind === 2) {
      if (depth + level > maxDepth) return -1
      level++
      i++
    } else {
      i++
      if (--level === 0) return i
    }
  }
  return -1
}

const skipSpace = (bytes: Uint8Array, at: number): number => {
  let i = at
  while (i < bytes.length && isSpace(bytes[i]!)) i++
  return i
}

/**
 * Scans a top-level JSON object: its members in order (a repeated key appears twice; the
 * last one wins, as in `JSON.parse`), with the element boundaries of array members named in
 * `split`. `undefined` when the bytes are not shaped like `{ "key": value, ... }` or nest
 * deeper than `maxDepth` (containers; the top-level object is depth 1). A UTF-8 byte-order
 * mark is skipped.
 */
export const scanObject = (
  bytes: Uint8Array,
  split: ReadonlySet<string>,
  maxDepth: number
): ReadonlyArray<ScannedMember> | undefined => {
  const n = bytes.length
  let i = n >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0
  i = skipSpace(bytes, i)
  if (bytes[i] !== OPEN_BRACE) return undefined
  const members: Array<ScannedMember> = []
  i = skipSpace(bytes, i + 1)
  if (bytes[i] === CLOSE_BRACE) return skipSpace(bytes, i + 1) === n ? members : undefined
  for (;;) {
    if (bytes[i] !== QUOTE) return undefined
    const keyEnd = stringEnd(bytes, i)
    if (keyEnd < 0) return undefined
    const key = parseRange(bytes, i, keyEnd)
    if (key === undefined || typeof key.value !== "string") return undefined
    i = skipSpace(bytes, keyEnd)
    if (bytes[i] !== COLON) return undefined
    i = skipSpace(bytes, i + 1)
    if (i >= n) return undefined
    const start = i
    let elements: Array<number> | undefined
    if (bytes[i] === OPEN_BRACKET && split.has(key.value)) {
      if (2 > maxDepth) return undefined
      elements = []
      i = skipSpace(bytes, i + 1)
      if (bytes[i] !== CLOSE_BRACKET) {
        for (;;) {
          if (i >= n) return undefined
          const end = valueEnd(bytes, i, 3, maxDepth)
          if (end <= i) return undefined
          elements.push(i, end)
          i = skipSpace(bytes, end)
          if (bytes[i] === COMMA) i = skipSpace(bytes, i + 1)
          else if (bytes[i] === CLOSE_BRACKET) break
          else return undefined
        }
      }
      i++
    } else {
      const end = valueEnd(bytes, i, 2, maxDepth)
      if (end <= i) return undefined
      i = end
    }
    members.push({ key: key.value, start, end: i, elements })
    i = skipSpace(bytes, i)
    if (bytes[i] === COMMA) i = skipSpace(bytes, i + 1)
    else if (bytes[i] === CLOSE_BRACE) return skipSpace(bytes, i + 1) === n ? members : undefined
    else return undefined
  }
}

/**
 * Bytes of elements parsed at once: big enough to amortize the call, small enough to die
 * young (a 256 KiB chunk's parse is garbage before the next scavenge; 1 MiB chunks made
 * converting 20,000 images about a tenth slower).
 */
export const defaultChunkBytes = 1 << 18

/**
 * Parses the elements of a split array member chunk by chunk (elements spanning at most
 * `chunkBytes`, at least one), handing each parsed chunk (an array) to `each`; stops and
 * returns `false` when a chunk does not parse or `each` returns `false`.
 */
export const forEachChunk = (
  bytes: Uint8Array,
  elements: ReadonlyArray<number>,
  each: (chunk: ReadonlyArray<unknown>) => boolean,
  chunkBytes: number = defaultChunkBytes
): boolean => {
  // The chunk's end is found inline: with it in a helper function (the same rule), V8 kept
  // more of each parsed chunk alive, and converting 118k images peaked 0.1 GB higher.
  for (let first = 0; first < elements.length;) {
    let last = first
    while (last + 2 < elements.length && elements[last + 3]! - elements[first]! <= chunkBytes) last += 2
    const text = decodeRange(bytes, elements[first]!, elements[last + 1]!)
    if (text === undefined) return false
    let chunk: unknown
    try {
      chunk = JSON.parse(`[${text}]`)
    } catch {
      return false
    }
    if (!Array.isArray(chunk) || chunk.length !== (last - first) / 2 + 1 || !each(chunk)) return false
    first = last + 2
  }
  return true
}

/** Where the chunks `forEachChunk` parses start (element indices), then the element count: the same rule. */
export const chunkStarts = (elements: ReadonlyArray<number>, chunkBytes: number = defaultChunkBytes): Array<number> => {
  const starts: Array<number> = []
  for (let first = 0; first < elements.length;) {
    starts.push(first / 2)
    let last = first
    while (last + 2 < elements.length && elements[last + 3]! - elements[first]! <= chunkBytes) last += 2
    first = last + 2
  }
  starts.push(elements.length / 2)
  return starts
}
