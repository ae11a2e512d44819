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
 * Writes `content` (one text, or pieces written one after another) to `file` atomically:
 * into a temporary sibling (`temporarySibling`), then renamed over `file`, so a reader sees
 * the old file or the whole new one, never a part. The temporary file is removed when the
 * write or the rename fails or is interrupted.
 */
export const writeFileAtomically = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  file: string,
  content: string | Iterable<string>
): Effect.Effect<void, PlatformError> =>
  Effect.flatMap(temporaryToken, (token) => {
    const tmp = temporarySibling(path, file, token)
    const pieces = typeof content === "string" ? [content] : content
    return Effect.scoped(Effect.flatMap(fs.open(tmp, { flag: "w" }), (handle) =>
      // An empty piece is skipped: writing zero bytes is an error of FileSystem.writeAll.
      Effect.forEach(pieces, (piece) => piece === "" ? Effect.void : handle.writeAll(encoder.encode(piece)), {
        discard: true
      }))).pipe(
        Effect.zipRight(fs.rename(tmp, file)),
        Effect.onError(() => Effect.ignore(fs.remove(tmp, { force: true })))
      )
  })
