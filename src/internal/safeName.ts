/**
 * The one rule for names that come from input (S3 keys, annotation `file_name`s, image
 * roots, LabelMe paths, manifest entries and keys read from the cache directory): what is a
 * usable relative name, what it normalises to, and the proof that a path built from it
 * stays inside its root. Downloads, cache verification and the converter all use it, so a
 * name one of them accepts is accepted, and means the same file, in all of them.
 */
import type { Path } from "@effect/platform"
import { Either } from "effect"

/** The longest file name (one path segment) the usual Linux file systems accept, in bytes. */
export const maxNameBytes = 255

/**
 * A name the rule below leaves as it is, in printable ASCII (one byte per character): no
 * leading `/`, no drive letter, no `\\`, segments of 1 to 255 characters none of which is
 * `.` or `..`. The common case, checked without splitting.
 */
const normalPrintableAscii = /^(?![A-Za-z]:)(?!\.\.?(?:\/|$))[ -.0-\[\]-~]{1,255}(?:\/(?!\.\.?(?:\/|$))[ -.0-\[\]-~]{1,255})*$/

/**
 * Normalises a relative name: backslashes become `/`, empty and `.` segments are dropped
 * (`sub//a.jpg`, `sub\a.jpg`, `./c.jpg/` are `sub/a.jpg`, `sub/a.jpg`, `c.jpg`). `Left`, with
 * the reason, for a NUL byte, an absolute path, a drive letter, a `..` segment, a segment
 * longer than 255 bytes, or a name that ends up empty.
 */
export const normalizeRelativeName = (name: string): Either.Either<string, string> => {
  if (normalPrintableAscii.test(name)) return Either.right(name)
  if (name.includes("\0")) return Either.left("contains a NUL byte")
  const slashed = name.replace(/\\/g, "/")
  if (slashed.startsWith("/")) return Either.left("is an absolute path")
  if (/^[A-Za-z]:/.test(slashed)) return Either.left("starts with a drive letter")
  const segments = slashed.split("/").filter((s) => s !== "" && s !== ".")
  if (segments.includes("..")) return Either.left("contains a '..' segment")
  if (segments.length === 0) return Either.left("is empty")
  if (segments.some((s) => Buffer.byteLength(s) > maxNameBytes)) {
    return Either.left(`has a segment longer than ${maxNameBytes} bytes`)
  }
  return Either.right(segments.join("/"))
}

/** Whether the absolute path `target` lies strictly inside the absolute directory `root`. */
export const isInside = (path: Path.Path, root: string, target: string): boolean => {
  const relative = path.relative(path.resolve(root), path.resolve(target))
  return relative !== "" && relative !== ".." && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative)
}

/**
 * The absolute path of relative `name` under `root`, once normalised and proven to stay
 * inside it; `Left` with the reason otherwise.
 */
export const resolveInside = (path: Path.Path, root: string, name: string): Either.Either<string, string> =>
  Either.flatMap(normalizeRelativeName(name), (normalized) => {
    const target = path.resolve(root, ...normalized.split("/"))
    return isInside(path, root, target) ? Either.right(target) : Either.left("resolves outside its directory")
  })

/** Whether a name is usable as one plain file name (a single segment, no separator). */
export const isPlainFileName = (name: string): boolean =>
  Either.match(normalizeRelativeName(name), { onLeft: () => false, onRight: (n) => n === name && !n.includes("/") })

/**
 * A temporary name next to `file` for an atomic write: `file.tmp-<token>` when that still
 * fits in one file name, else `.tmp-<token>` in the same directory, so a valid file name of
 * up to 255 bytes never fails with `ENAMETOOLONG` because of the suffix.
 */
export const temporarySibling = (path: Path.Path, file: string, token: string): string => {
  const suffixed = `${path.basename(file)}.tmp-${token}`
  return Buffer.byteLength(suffixed) <= maxNameBytes
    ? path.join(path.dirname(file), suffixed)
    : path.join(path.dirname(file), `.tmp-${token}`)
}
