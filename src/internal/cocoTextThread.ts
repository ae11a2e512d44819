/**
 * The COCO text thread (see `cocoPrebuild`): decodes the image entries it is given from the
 * shared bytes, a chunk at a time from the last one backwards, claims each chunk's images
 * from the back of the shared claim word and prints their annotations (each but its id) with
 * the converter's own printing function, until its claims meet the conversion thread's. It
 * only reads the bytes and posts text back; it writes nothing.
 *
 * Started with a file to read ahead (see `readAhead`), it first reads the file into shared
 * memory and scans it, and posts the bytes with the scan: the conversion thread's modules
 * load meanwhile.
 */
import { workerData } from "node:worker_threads"
import { printImageBodies } from "./cocoExport.js"
import type { CocoTextReply, CocoTextRequest } from "./cocoPrebuild.js"
import { decodeNestedRange } from "./diceModel.js"
import { chunkStarts } from "./jsonChunks.js"
import type { SkipCounts } from "./objectRules.js"
import { readAheadIfAsked, type ReadAheadReply } from "./readAhead.js"
import { claimBack, helperSide, startRunning } from "./sharedWork.js"
import { headerContext } from "./yoloLabels.js"

const { claimed, control, post, requests } = helperSide<CocoTextReply | ReadAheadReply>(workerData)

requests.once("message", ({ chunkBytes, layout, task }: CocoTextRequest) => {
  // The conversion thread may have given up on this thread already.
  if (!startRunning(control)) return
  try {
    const ctx = headerContext(layout.header, task)
    const starts = chunkStarts(layout.elements, chunkBytes)
    for (let c = starts.length - 2; c >= 0; c--) {
      const first = starts[c]!, end = starts[c + 1]!
      const decoded = decodeNestedRange(layout, first, end)
      if (decoded === undefined) return post({ _tag: "Failed", message: `image entries ${first} to ${end - 1} did not decode` })
      const from = claimBack(claimed, first, end)
      if (from === end) break
      const images = decoded.slice(from - first)
      const skipped: SkipCounts = {}
      const printed = printImageBodies(images, ctx, task === "segmentation", skipped)
      const ids = Float64Array.from(images, (image) => image.id)
      post({ _tag: "Printed", from, ids, ...printed, skipped })
      if (from > first) break
    }
    post({ _tag: "Done" })
  } catch (cause) {
    post({ _tag: "Failed", message: cause instanceof Error ? cause.message : String(cause) })
  }
})

readAheadIfAsked(workerData, post)
