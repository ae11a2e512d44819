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

/** Characters of text gathered per file before they are written. */
const writeBatchChars = 1 << 20

/**
 * Writes several files from one stream of `[key, text]` pieces (each piece belongs to the
 * file `fileOf(key)`), every file atomically: written into its temporary sibling
 * (`temporarySibling`) as its pieces come, in batches of about a megabyte, and renamed over
 * its name once the whole stream is through, so a reader sees the old file or the whole new
 * one, never a part. Nothing is renamed when the stream, a write or
 * a rename fails or is interrupted; the temporary files are then removed. A file gets at
 * least one piece or is not written. Gives the stream's own result.
 */
export const writeFilesAtomically = <K, R>(
  fs: FileSystem.FileSystem,
  path: Path.Path,
  pieces: Iterator<readonly [K, string], R>,
  fileOf: (key: K) => string
): Effect.Effect<R, PlatformError> =>
  Effect.suspend(() => {
    const open = new Map<K, PendingFile>()
    const writeOut = (entry: PendingFile) => {
      const text = entry.texts.join("")
      entry.texts = []
      entry.chars = 0
      // An empty write is an error of FileSystem.writeAll.
      return text === "" ? Effect.void : entry.handle.writeAll(encoder.encode(text))
    }
    const writeAll = Effect.gen(function*() {
      const token = yield* temporaryToken
      for (let next = pieces.next();; next = pieces.next()) {
        if (next.done) {
          for (const entry of open.values()) yield* writeOut(entry)
          return next.value
        }
        const [key, text] = next.value
        let entry = open.get(key)
        if (entry === undefined) {
          const file = fileOf(key)
          const tmp = temporarySibling(path, file, token)
          open.set(key, entry = { file, tmp, handle: yield* fs.open(tmp, { flag: "w" }), texts: [], chars: 0 })
        }
        entry.texts.push(text)
        entry.chars += text.length
        if (entry.chars >= writeBatchChars) yield* writeOut(entry)
      }
    })
    return Effect.scoped(writeAll).pipe(
      Effect.tap(() => Effect.forEach(open.values(), (e) => fs.rename(e.tmp, e.file), { discard: true })),
      Effect.onError(() => Effect.forEach(open.values(), (e) => Effect.ignore(fs.remove(e.tmp, { force: true })), { discard: true }))
    )
  })

/** A file being written by `writeFilesAtomically`: its names, its handle and the text not yet written. */
interface PendingFile {
  readonly file: string
  readonly tmp: string
  readonly handle: FileSystem.File
  texts: Array<string>
  chars: number
}
