/**
 * Local file rules shared by the storage flows, the dataset cache and the converter: what a
 * file-system failure means, and the one atomic write (a temporary sibling renamed over
 * the final name, removed again when anything fails).
 */
import type { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, Random } from "effect"
import { temporarySibling } from "./safeName.js"

/** Whether a file-system failure means the path does not exist. */
export const isNotFound = (e: PlatformError): boolean => e._tag === "SystemError" && e.reason === "NotFound"

/** Whether a file-system failure means the path already exists. */
export const isAlreadyExists = (e: PlatformError): boolean => e._tag === "SystemError" && e.reason === "AlreadyExists"

/** A random token for temporary names (`file.tmp-<token>`). */
export const temporaryToken: Effect.Effect<string> = Effect.map(Random.nextInt, (n) => (n >>> 0).toString(36))

const encoder = new TextEncoder()

/**
 * Writes `text` to `file` atomically: into a temporary sibling (`temporarySibling`), then
 * renamed over `file`, so a reader sees the old file or the whole new one, never a part. The
 * temporary file is removed when the write or the rename fails or is interrupted (one file of
 * `writeFilesAtomically`).
 */
export const writeFileAtomically = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  file: string,
  text: string
): Effect.Effect<void, PlatformError> => Effect.asVoid(writeFilesAtomically(fs, path, [[file, text] as const].values(), () => file))

/** Bytes gathered per file before they are written. */
const writeBatchBytes = 1 << 20

/**
 * Characters of strings gathered per file before they are encoded into its batch: joined,
 * they stay a young-generation object (a megabyte-long string would be allocated straight in
 * the old generation, and the collector would run the more often).
 */
const encodeBatchChars = 1 << 16

/**
 * Writes several files from one stream of `[key, text]` pieces (each piece, a string or UTF-8
 * bytes, belongs to the file `fileOf(key)`), every file atomically: written into its
 * temporary sibling (`temporarySibling`) as its pieces come, in batches of about a megabyte,
 * and renamed over its name once the whole stream is through, so a reader sees the old file
 * or the whole new one, never a part. Nothing is renamed when the stream, a write or a
 * rename fails or is interrupted; the temporary files are then removed. A file gets at least
 * one piece or is not written. A piece is used only until the stream's next step (bytes are
 * copied), so the stream may reuse its buffers. Gives the stream's own result.
 */
export const writeFilesAtomically = <K, R>(
  fs: FileSystem.FileSystem,
  path: Path.Path,
  pieces: Iterator<readonly [K, string | Uint8Array], R>,
  fileOf: (key: K) => string
): Effect.Effect<R, PlatformError> =>
  Effect.suspend(() => {
    const open = new Map<K, PendingFile>()
    const writeAll = Effect.gen(function*() {
      const token = yield* temporaryToken
      for (let next = pieces.next();; next = pieces.next()) {
        if (next.done) {
          for (const entry of open.values()) {
            yield* encodeStrings(entry)
            yield* writeOut(entry)
          }
          return next.value
        }
        const [key, piece] = next.value
        let entry = open.get(key)
        if (entry === undefined) {
          const file = fileOf(key)
          const tmp = temporarySibling(path, file, token)
          const handle = yield* fs.open(tmp, { flag: "w" })
          open.set(key, entry = { file, tmp, handle, buffer: new Uint8Array(2 * writeBatchBytes), at: 0, strings: [], chars: 0 })
        }
        if (typeof piece === "string") {
          entry.strings.push(piece)
          entry.chars += piece.length
          if (entry.chars >= encodeBatchChars) yield* encodeStrings(entry)
        } else {
          yield* encodeStrings(entry)
          if (entry.at + piece.length > entry.buffer.length) yield* writeOut(entry)
          if (piece.length > entry.buffer.length) yield* entry.handle.writeAll(piece)
          else {
            entry.buffer.set(piece, entry.at)
            entry.at += piece.length
          }
        }
        if (entry.at >= writeBatchBytes) yield* writeOut(entry)
      }
    })
    return Effect.scoped(writeAll).pipe(
      Effect.tap(() => Effect.forEach(open.values(), (e) => fs.rename(e.tmp, e.file), { discard: true })),
      Effect.onError(() => Effect.forEach(open.values(), (e) => Effect.ignore(fs.remove(e.tmp, { force: true })), { discard: true }))
    )
  })

/** A file being written by `writeFilesAtomically`: its names, its handle, its batch so far and the strings not yet in it. */
interface PendingFile {
  readonly file: string
  readonly tmp: string
  readonly handle: FileSystem.File
  /** The batch: `buffer` up to `at`. */
  readonly buffer: Uint8Array
  at: number
  strings: Array<string>
  chars: number
}

/** Writes out a file's batch. */
const writeOut = (entry: PendingFile): Effect.Effect<void, PlatformError> => {
  if (entry.at === 0) return Effect.void
  const bytes = entry.buffer.subarray(0, entry.at)
  entry.at = 0
  return entry.handle.writeAll(bytes)
}

/** Moves a file's pending strings into its batch (joined, encoded once), writing the batch out whenever it fills. */
const encodeStrings = (entry: PendingFile): Effect.Effect<void, PlatformError> =>
  Effect.suspend(() => {
    if (entry.chars === 0 && entry.strings.length === 0) return Effect.void
    const text = entry.strings.join("")
    entry.strings = []
    entry.chars = 0
    return Effect.gen(function*() {
      for (let rest = text;;) {
        const { read, written } = encoder.encodeInto(rest, entry.buffer.subarray(entry.at))
        entry.at += written
        if (read === rest.length) return
        rest = rest.slice(read)
        yield* writeOut(entry)
      }
    })
  })
