/**
 * The label files of a proposal (see `labelPrewrite`), created as they are sent, batch by
 * batch, with plain synchronous calls, on a thread of its own (`labelWriterThread`) while the
 * conversion thread goes on parsing. Only ever below the one staging directory it was made
 * for; it stops at the first failure and answers once, when told the batches are over.
 * Free of `effect`: its thread loads nothing but `node:fs`.
 */
import * as NodeFs from "node:fs"
import type { LabelWriterReply, LabelWriterRequest } from "./labelPrewrite.js"

/** A segment no label path has: empty, `.` or `..` (a path with one could point anywhere). */
const oddSegment = /(?:^|\/)(?:\.{1,2})?(?:\/|$)/

/** Whether `file` lies below `staging`, as a plain path (no empty, `.` or `..` segment after it). */
const isBelow = (staging: string, file: string): boolean =>
  file.length > staging.length + 1 && file.startsWith(`${staging}/`) && !oddSegment.test(file.slice(staging.length + 1))

/**
 * The writer for `staging`: handles a request — a batch of files is written and counted in
 * `progress` (the sender waits when too many are pending) — and answers `End` (once).
 */
export const makeLabelFileWriter = (staging: string, progress: SharedArrayBuffer) => {
  const handled = new Int32Array(progress)
  const made = new Set<string>()
  let failure: { readonly file: string; readonly message: string } | undefined

  const write = (file: string, text: string): void => {
    if (!isBelow(staging, file)) throw new Error("outside the staging directory")
    const dir = file.slice(0, file.lastIndexOf("/"))
    if (!made.has(dir)) {
      NodeFs.mkdirSync(dir, { recursive: true })
      made.add(dir)
    }
    NodeFs.writeFileSync(file, text)
  }

  return (request: LabelWriterRequest): LabelWriterReply | undefined => {
    if (request._tag === "End") return failure === undefined ? { _tag: "Written" } : { _tag: "Failed", ...failure }
    const { bytes, ends, files } = request
    // One string per file, taken from the bytes (ASCII): a string is written in one call.
    const texts = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i < files.length && failure === undefined; i++) {
      try {
        write(files[i]!, texts.toString("latin1", i === 0 ? 0 : ends[i - 1]!, ends[i]!))
      } catch (cause) {
        // Errors.thrownMessage's rule, inlined: this module loads nothing but node:fs.
        failure = { file: files[i]!, message: cause instanceof Error ? cause.message : String(cause) }
      }
    }
    Atomics.add(handled, 0, 1)
    Atomics.notify(handled, 0)
    return undefined
  }
}
