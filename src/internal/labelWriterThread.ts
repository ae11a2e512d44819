/**
 * The label writer thread (see `labelPrewrite`): runs `labelFileWriter` for the one staging
 * directory it was started for, answering once when told the batches are over.
 */
import { parentPort, workerData } from "node:worker_threads"
import { makeLabelFileWriter } from "./labelFileWriter.js"
import type { LabelWriterRequest } from "./labelPrewrite.js"

const port = parentPort!
const { progress, staging } = workerData as { readonly staging: string; readonly progress: SharedArrayBuffer }
const write = makeLabelFileWriter(staging, progress)

port.on("message", (request: LabelWriterRequest) => {
  const reply = write(request)
  if (reply === undefined) return
  port.postMessage(reply)
  port.close()
})
