/**
 * The conversion worker thread (see `converterThread`): runs one conversion on Node's file
 * system with the same code as the caller's thread would, answers once, then ends.
 *
 * This entry loads no converter module until the request is in; the converter's modules
 * (`convertWorkerRun`) then take this thread about 100 ms, which the helper thread the caller
 * started with it (`readAhead`, handed over with the request) spends reading and scanning
 * the annotation file.
 */
import { type MessagePort, parentPort } from "node:worker_threads"
import type { WorkerReply, WorkerRequest } from "./converterThread.js"
import { takeOver } from "./readAhead.js"

const port: MessagePort = parentPort!

port.once("message", (request: WorkerRequest) => {
  if (request._tag !== "Convert") return port.close()
  // An interrupt that arrives while the modules load is passed on once the conversion runs.
  let interrupted = false
  let interrupt = (): void => {
    interrupted = true
  }
  port.on("message", (next: WorkerRequest) => {
    if (next._tag === "Interrupt") interrupt()
  })
  const readAhead = request.readAhead === undefined ? undefined : takeOver(request.readAhead)
  import("./convertWorkerRun.js").then(
    ({ runConversion }) => {
      interrupt = runConversion(port, request.options, readAhead)
      if (interrupted) interrupt()
    },
    (cause: unknown) => {
      port.postMessage({ _tag: "Defect", message: `conversion worker: ${String(cause)}` } satisfies WorkerReply)
      port.close()
    }
  )
})
