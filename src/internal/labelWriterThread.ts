/**
 * The label writer thread (see `labelPrewrite`): creates the label files it is sent, batch by
 * batch, with plain synchronous calls, while the conversion thread goes on parsing. It only
 * ever writes below the one staging directory it was started for, stops at the first
 * failure, and answers once when told the batches are over.
 */
import * as NodeFs from "node:fs"
import { parentPort, workerData } from "node:worker_threads"
import type { LabelWriterReply, LabelWriterRequest } from "./labelPrewrite.js"

const port = parentPort!
const { progress, staging } = workerData as { readonly staging: string; readonly progress: SharedArrayBuffer }
/** Batches handled so far, shared with the sender (which waits when too many are pending). */
const handled = new Int32Array(progress)
const made = new Set<string>()
let failure: { readonly file: string; readonly message: string } | undefined

const write = (file: string, text: string): void => {
  if (!file.startsWith(`${staging}/`)) throw new Error("outside the staging directory")
  const dir = file.slice(0, file.lastIndexOf("/"))
  if (!made.has(dir)) {
    NodeFs.mkdirSync(dir, { recursive: true })
    made.add(dir)
  }
  NodeFs.writeFileSync(file, text)
}

port.on("message", (request: LabelWriterRequest) => {
  if (request._tag === "Files") {
    const { bytes, ends, files } = request
    // One string per file, taken from the bytes (ASCII): a string is written in one call.
    const texts = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i < files.length && failure === undefined; i++) {
      try {
        write(files[i]!, texts.toString("latin1", i === 0 ? 0 : ends[i - 1]!, ends[i]!))
      } catch (cause) {
        // Errors.thrownMessage's rule, inlined: this thread loads nothing but node:fs.
        failure = { file: files[i]!, message: cause instanceof Error ? cause.message : String(cause) }
      }
    }
    Atomics.add(handled, 0, 1)
    Atomics.notify(handled, 0)
    return
  }
  port.postMessage((failure === undefined ? { _tag: "Written" } : { _tag: "Failed", ...failure }) satisfies LabelWriterReply)
  port.close()
})
