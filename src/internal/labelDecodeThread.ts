/**
 * The label decode thread (see `labelPrewrite`): takes chunks of image entries from the back
 * of the shared claim word, last chunk first, decodes each from the shared bytes with the
 * decoder's own walk and builds its images' label texts with the converter's own function,
 * until its claims meet the conversion thread's. Each chunk goes back as the images' heads
 * and labels, the texts as bytes (or as failed, after which the thread stops). It only reads
 * the bytes and posts back; it writes nothing.
 *
 * Started with a file to read ahead (see `readAhead`), it first reads the file into
 * shared memory and scans it, and posts the bytes with the scan: the conversion thread's
 * modules load meanwhile.
 */
import { parentPort, workerData } from "node:worker_threads"
import { decodeNestedRange, imageHead } from "./diceModel.js"
import type { LabelDecodeReply, LabelDecodeRequest } from "./labelPrewrite.js"
import { readAheadIfAsked, type ReadAheadReply } from "./readAhead.js"
import { claimBack, helperSide, startRunning } from "./sharedWork.js"
import { chunkLabels, headerContext, textBytesOf, type YoloContext } from "./yoloLabels.js"

const { claimed, control, post, requests } = helperSide<LabelDecodeReply | ReadAheadReply>(workerData)

/** The reply for chunk `chunk` (the entries `starts[chunk]` to `starts[chunk + 1] - 1`), labelled in `ctx`. */
const decodeChunk = ({ layout, starts }: LabelDecodeRequest, ctx: YoloContext, chunk: number): LabelDecodeReply => {
  const first = starts[chunk]!, end = starts[chunk + 1]!
  const images = decodeNestedRange(layout, first, end)
  if (images === undefined) return { _tag: "Failed", chunk, message: `image entries ${first} to ${end - 1} did not decode` }
  return { _tag: "Decoded", chunk, heads: images.map(imageHead), ...chunkLabels(images, ctx, textBytesOf(layout, first, images.length)) }
}

requests.once("message", (request: LabelDecodeRequest) => {
  // The conversion thread may have given up on this thread already.
  if (!startRunning(control)) return
  const ctx = headerContext(request.layout.header, request.task)
  for (let chunk = request.starts.length - 2; chunk >= 0; chunk--) {
    if (claimBack(claimed, chunk, chunk + 1) !== chunk) return
    let reply: LabelDecodeReply
    try {
      reply = decodeChunk(request, ctx, chunk)
    } catch (cause) {
      reply = { _tag: "Failed", chunk, message: cause instanceof Error ? cause.message : String(cause) }
    }
    post(reply)
    if (reply._tag === "Failed") return
  }
})

readAheadIfAsked(workerData, post)

// Started: `LabelPrewrite.ready` waits for this.
parentPort!.postMessage("ready")
