/**
 * The label files of a proposal (see `labelPrewrite`), created as they are sent, batch by
 * batch, with plain synchronous calls, while the conversion thread goes on parsing. Only ever
 * below the one staging directory it was made for; it stops at the first failure and answers
 * once, when told the batches are over.
 *
 * It runs on a thread of its own (`labelWriterThread`), or, for a conversion on the
 * conversion worker, on the caller's thread (`serveLabelWrites`), which only waits while the
 * worker converts: that spares starting one more thread. A batch is one chunk's files (about
 * 130 for 256 KiB of DICE, a few milliseconds), so the caller's event loop keeps turning.
 * Free of `effect`: a thread that runs it loads nothing but `node:fs`.
 */
import * as NodeFs from "node:fs"
import type { MessagePort } from "node:worker_threads"
import type { LabelWriterReply, LabelWriterRequest } from "./labelPrewrite.js"

/** A segment no label path has: empty, `.` or `..` (a path with one could point anywhere). */
const oddSegment = /(?:^|\/)(?:\.{1,2})?(?:\/|$)/

/** Whether `file` lies below `staging`, as a plain path (no empty, `.` or `..` segment after it). */
const isBelow = (staging: string, file: string): boolean =>
  file.length > staging.length + 1 && file.startsWith(`${staging}/`) && !oddSegment.test(file.slice(staging.length + 1))

/** The writer for `staging`: handles a request, and answers `End` (once). */
export const makeLabelFileWriter = (staging: string, progress: SharedArrayBuffer) => {
  /** Batches handled so far, shared with the sender (which waits when too many are pending). */
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

/** What the conversion worker sends the caller's side of the label writes: where to write first, then the requests. */
export type LabelWritesMessage =
  | { readonly _tag: "Open"; readonly staging: string; readonly progress: SharedArrayBuffer }
  | LabelWriterRequest

/**
 * The caller's side of a conversion worker's label writes, on `port`: the writer is made for
 * the staging directory the first message names, and answers on the port. `close` (when the
 * worker has exited) stops it: it writes nothing more, and removes the staging directory,
 * which a conversion that ended well has already moved into place (and one that did not
 * had removed, unless it was stopped before it could).
 */
export const serveLabelWrites = (port: MessagePort) => {
  let writer: ReturnType<typeof makeLabelFileWriter> | undefined
  let staging: string | undefined
  let closed = false
  // A port hands over every message waiting at once: they are queued and handled one per
  // turn of the event loop, so the loop is never held for more than one batch's writes.
  const queue: Array<LabelWriterRequest> = []
  let scheduled = false
  const handleNext = (): void => {
    scheduled = false
    const message = queue.shift()
    if (closed || message === undefined) return
    const reply = writer?.(message)
    if (reply !== undefined) port.postMessage(reply)
    if (queue.length > 0) schedule()
  }
  const schedule = (): void => {
    if (scheduled) return
    scheduled = true
    setImmediate(handleNext)
  }
  port.on("message", (message: LabelWritesMessage) => {
    if (closed) return
    if (message._tag === "Open") {
      // Only a path the worker made under its dataset directory: checked by each write too.
      staging ??= message.staging
      writer ??= makeLabelFileWriter(message.staging, message.progress)
      return
    }
    queue.push(message)
    schedule()
  })
  return {
    close: (): void => {
      if (closed) return
      closed = true
      queue.length = 0
      port.close()
      if (staging !== undefined) NodeFs.rmSync(staging, { recursive: true, force: true })
    }
  }
}
