/**
 * Bulk writer of YOLO label files. Creating tens of thousands of small files through
 * `FileSystem.writeFileString` costs three thread-pool round trips per file (open, write,
 * close) and dominated the conversion time (about 1.1 s vs 0.25 s for 20,000 files on tmpfs),
 * so label files are written with Node's synchronous calls in short batches, yielding to the
 * scheduler between batches so other fibers (heartbeats, callbacks) keep running.
 */
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import { DatasetError, thrownMessage } from "../Errors.js"

/** Files written per synchronous step (a few milliseconds of blocking at most). */
const batchSize = 256

/** Writes `[path, text]` pairs (parent directories must exist), batch by batch. */
export const writeLabelFiles = (files: ReadonlyArray<readonly [string, string]>): Effect.Effect<void, DatasetError> =>
  Effect.gen(function*() {
    for (let start = 0; start < files.length; start += batchSize) {
      const end = Math.min(files.length, start + batchSize)
      let at = start
      yield* Effect.try({
        try: () => {
          for (; at < end; at++) NodeFs.writeFileSync(files[at]![0], files[at]![1])
        },
        catch: (cause) =>
          new DatasetError({
            reason: "Io",
            file: files[at]![0],
            detail: `cannot write label file: ${thrownMessage(cause)}`
          })
      })
      yield* Effect.yieldNow()
    }
  })
