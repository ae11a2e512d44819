/**
 * Generic JSON helpers shared by every reader of untrusted JSON (annotation files, callback
 * bodies, S3 and cache files): field access on unknown values, JSON paths for error
 * messages, the nesting bound, and parsing a file's bytes into a value.
 */
import { Either } from "effect"
import { DatasetError, thrownMessage } from "../Errors.js"
import { maxJsonDepth } from "./jsonChunks.js"

/** Whether a value is a plain JSON object (not `null`, not an array). */
export const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** The field `name` of an object-like value, `undefined` for anything else. */
export const field = (u: unknown, name: string): unknown =>
  typeof u === "object" && u !== null ? (u as Record<string, unknown>)[name] : undefined

/** Renders a parse path as a JSON path: `metrics.extra_metrics["mAP50-95"]`, `images[3].width`. */
export const formatJsonPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((acc, key) => {
    if (typeof key === "number") return `${acc}[${key}]`
    const name = String(key)
    if (/^[A-Za-z_$][\w$]*$/.test(name)) return acc === "" ? name : `${acc}.${name}`
    return `${acc}[${JSON.stringify(name)}]`
  }, "")

/**
 * Where a parsed JSON value nests arrays/objects deeper than `limit` (default
 * `maxJsonDepth`): the path of its top-level field (`[]` when the value is itself too deep
 * an array), or `undefined` when it does not. Recursive but bounded: it never descends more
 * than `limit + 1` levels, whatever the value holds.
 */
export const tooDeepField = (value: unknown, limit: number = maxJsonDepth): ReadonlyArray<PropertyKey> | undefined => {
  const walk = (node: object, depth: number): boolean => {
    if (depth > limit) return true
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const child: unknown = node[i]
        if (typeof child === "object" && child !== null && walk(child, depth + 1)) return true
      }
      return false
    }
    for (const key in node) {
      const child: unknown = (node as Record<string, unknown>)[key]
      if (typeof child === "object" && child !== null && walk(child, depth + 1)) return true
    }
    return false
  }
  if (typeof value !== "object" || value === null) return undefined
  if (Array.isArray(value)) return walk(value, 1) ? [] : undefined
  if (1 > limit) return []
  for (const key in value) {
    const child: unknown = (value as Record<string, unknown>)[key]
    if (typeof child === "object" && child !== null && walk(child, 2)) return [key]
  }
  return undefined
}

/**
 * Parses JSON text, failing with a `DatasetError` that names the file and the parser's
 * message; a document nested deeper than `maxJsonDepth` is rejected the same way.
 */
export const parseJsonText = (file: string, text: string): Either.Either<unknown, DatasetError> => {
  const invalid = (detail: string) => Either.left(new DatasetError({ reason: "InvalidJson", file, detail }))
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (error) {
    return invalid(`malformed JSON: ${thrownMessage(error)}`)
  }
  return tooDeepField(doc) !== undefined
    ? invalid(`JSON nested deeper than ${maxJsonDepth} levels`)
    : Either.right(doc)
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * Parses the bytes of a JSON file (see `parseJsonText`). The bytes must be UTF-8 (a BOM is
 * dropped): invalid sequences are a `DatasetError` naming the file, never silently replaced,
 * since a replaced character in a file name points at an image that does not exist.
 */
export const parseJsonBytes = (file: string, bytes: Uint8Array): Either.Either<unknown, DatasetError> => {
  let text: string
  try {
    text = strictUtf8.decode(bytes)
  } catch {
    return Either.left(new DatasetError({ reason: "InvalidJson", file, detail: "not valid UTF-8 text" }))
  }
  return parseJsonText(file, text)
}
