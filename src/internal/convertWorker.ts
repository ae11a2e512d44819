/**
 * The conversion worker thread (see `converterThread`): runs one conversion on Node's file
 * system with the same code as the caller's thread would, answers once, then ends.
 *
 * This entry loads no converter module: once the request is in, a DICE conversion's helper
 * thread is started reading the annotation file ahead (`readAhead`), and only then are the
 * converter's modules loaded (`convertWorkerRun`), which takes this thread about 100 ms that
 * the other thread spends reading and scanning the file.
 */
import { type MessagePort, parentPort } from "node:worker_threads"
import type { WorkerReply, WorkerRequest } from "./converterThread.js"
import { type ReadAhead, startReadAhead } from "./readAhead.js"

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
  let readAhead: ReadAhead | undefined
  try {
    readAhead = startReadAhead(request.options)
  } catch {
    // Nothing read ahead: the conversion reads the file itself.
  }
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
