/**
 * The heartbeat of the dataset cache's lock and lease files, run in a worker thread: it
 * refreshes their mtimes every few seconds whatever the main thread is doing, so a job
 * whose main thread is blocked for minutes (a synchronous call into a native training
 * library, a long garbage collection, a big synchronous parse) keeps its leases, and they
 * go stale promptly once the process is gone (the worker dies with it).
 */
import { Effect, type Scope } from "effect"
import { Worker } from "node:worker_threads"

/** The worker's source (CommonJS, evaluated): a set of files touched on an interval. */
const workerSource = `
const { parentPort, workerData } = require("node:worker_threads")
const fs = require("node:fs")
const files = new Set()
const touch = (file) => {
  const now = new Date()
  try { fs.utimesSync(file, now, now) } catch {}
}
parentPort.on("message", (message) => {
  if (message.add !== undefined) { files.add(message.add); touch(message.add) }
  if (message.remove !== undefined) files.delete(message.remove)
})
setInterval(() => { for (const file of files) touch(file) }, workerData.everyMs)
`

/** Files kept fresh by the heartbeat thread. */
export interface CacheHeartbeat {
  /** Starts refreshing `file` (at once, then every interval). */
  readonly add: (file: string) => Effect.Effect<void>
  /** Stops refreshing `file`. */
  readonly remove: (file: string) => Effect.Effect<void>
}

/**
 * Starts the heartbeat thread, refreshing its files every `everyMs` milliseconds; it is
 * terminated when the scope closes, and never keeps the process alive on its own.
 */
export const startCacheHeartbeat = (everyMs: number): Effect.Effect<CacheHeartbeat, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        const worker = new Worker(workerSource, { eval: true, workerData: { everyMs: Math.max(1, Math.floor(everyMs)) } })
        // A crashed heartbeat must not take the process down; its leases then go stale as a dead process's would.
        worker.on("error", () => undefined)
        worker.unref()
        return worker
      }),
      (worker) => Effect.promise(() => worker.terminate())
    ),
    (worker): CacheHeartbeat => ({
      add: (file) => Effect.sync(() => worker.postMessage({ add: file })),
      remove: (file) => Effect.sync(() => worker.postMessage({ remove: file }))
    })
  )
