/**
 * Runs a conversion on a worker thread (`convertWorker`), so its CPU-bound parts — parsing a
 * 100+ MB annotation file, building the model, formatting labels, creating tens of thousands
 * of files — never hold up the caller's event loop. Only the options go in and the report
 * (or the `DatasetError`) comes back. Interrupting the caller interrupts the conversion in
 * the worker, whose finalizers remove what it staged, before the thread ends.
 */
import { Effect } from "effect"
import { handOver, type ReadAhead, startReadAhead } from "./readAhead.js"
import { startThread } from "./sharedWork.js"
import type { ConversionReport, ConvertOptions } from "../Converter.js"
import { DatasetError } from "../Errors.js"

/** What the worker is asked: a conversion (with the helper thread reading ahead for it, when one was started), or to stop. */
export type WorkerRequest =
  | { readonly _tag: "Convert"; readonly options: ConvertOptions; readonly readAhead?: Omit<ReadAhead, "thread"> }
  | { readonly _tag: "Interrupt" }

/** The fields of a `DatasetError`, as they cross the thread boundary. */
export type DatasetErrorFields = ConstructorParameters<typeof DatasetError>[0]

/** What the worker answers (once). */
export type WorkerReply =
  | { readonly _tag: "Done"; readonly report: ConversionReport }
  | { readonly _tag: "Failed"; readonly error: DatasetErrorFields }
  | { readonly _tag: "Defect"; readonly message: string }
  | { readonly _tag: "Interrupted" }

/** How long an interrupted worker gets to run its finalizers before the thread is stopped. */
const interruptGraceMs = 30_000

/** The helper thread of a DICE conversion, started reading ahead; `undefined` when there is nothing to read (or it could not start). */
const readingAhead = (options: ConvertOptions): ReadAhead | undefined => {
  try {
    return startReadAhead(options)
  } catch {
    return undefined
  }
}

/**
 * Converts on a worker thread: the report, or the same `DatasetError` the caller's thread
 * would give. A DICE conversion's helper thread is started here too, at the same time, and
 * handed to the worker (`readAhead`): it reads the annotation file while the worker starts.
 */
export const convertOnWorker = (options: ConvertOptions): Effect.Effect<ConversionReport, DatasetError> =>
  Effect.async<ConversionReport, DatasetError>((resume) => {
    // The helper first: it reads and scans the file while the worker starts and loads the
    // converter, and the scan is the longer of the two.
    const ahead = readingAhead(options)
    const worker = startThread("convertWorker")
    // A failing helper thread only stops answering: the conversion waits for it up to a timeout.
    ahead?.thread?.on("error", () => undefined)
    const stopHelper = () => void ahead?.thread?.terminate()
    worker.once("exit", stopHelper)
    let settled = false
    const settle = (effect: Effect.Effect<ConversionReport, DatasetError>) => {
      if (settled) return
      settled = true
      resume(effect)
      void worker.terminate()
      stopHelper()
    }
    worker.on("message", (reply: WorkerReply) => {
      switch (reply._tag) {
        case "Done":
          return settle(Effect.succeed(reply.report))
        case "Failed":
          return settle(Effect.fail(new DatasetError(reply.error)))
        case "Defect":
          return settle(Effect.die(new Error(`conversion worker: ${reply.message}`)))
        case "Interrupted":
          return
      }
    })
    worker.on("error", (error) => settle(Effect.die(error)))
    worker.on("exit", (code) => settle(Effect.die(new Error(`conversion worker exited early (code ${code})`))))
    const handed = ahead === undefined ? undefined : handOver(ahead)
    worker.postMessage({ _tag: "Convert", options, readAhead: handed?.ahead } satisfies WorkerRequest, [...(handed?.transfer ?? [])])
    return Effect.async<void>((exited) => {
      settled = true
      const timer = setTimeout(() => void worker.terminate(), interruptGraceMs)
      worker.once("exit", () => {
        clearTimeout(timer)
        exited(Effect.void)
      })
      worker.postMessage({ _tag: "Interrupt" } satisfies WorkerRequest)
    })
  })
