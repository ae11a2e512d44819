/**
 * Child-process entry for the multi-process dataset-cache tests:
 * `node <compiled>/test/support/cacheWorker.js '<json CacheWorkerArgs>'` (compiled by
 * compileScripts.ts; `node --import tsx test/support/cacheWorker.ts` runs it as well).
 *
 * Modes: `ensure` materializes the dataset and prints `RESULT {view, images, annotations}`;
 * `hold` does the same, prints `READY`, then keeps its lease until killed; `crash` starts
 * the download, prints `DOWNLOADING` at the first progress report and hangs there (holding
 * the entry's lock) until killed; `block` materializes the dataset, prints `BLOCKING`, blocks
 * its main thread synchronously for `blockMs` (a native call, a long GC pause), then prints
 * `UNBLOCKED` and keeps its lease until killed.
 */
import { FileSystem, Path } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer } from "effect"
import { DatasetCache } from "../../src/DatasetCache.js"
import { makeJobContext } from "../../src/JobContext.js"
import { storageLayerFrom, storageVariables } from "./storageEnv.js"

/** What the parent passes as the single JSON argument. */
export interface CacheWorkerArgs {
  readonly mode: "ensure" | "hold" | "crash" | "block"
  /** S3 endpoint (the test's counting proxy in front of s3rver). */
  readonly endpoint: string
  readonly bucket: string
  readonly cacheDir: string
  readonly destDir: string
  readonly datasetId: string
  readonly datasetVersionHash: string
  readonly staleAfterMs: number
  readonly heartbeatMs: number
  /** How long `block` blocks its main thread. */
  readonly blockMs?: number
}

const args = JSON.parse(process.argv[2] ?? "{}") as CacheWorkerArgs

const say = (line: string) => Effect.sync(() => process.stdout.write(`${line}\n`))

const listFiles = (dir: string): Effect.Effect<ReadonlyArray<string>, unknown, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const names = yield* fs.readDirectory(dir, { recursive: true })
    const files: Array<string> = []
    for (const name of names) {
      const info = yield* fs.stat(path.join(dir, name))
      if (info.type === "File") files.push(`${name}:${info.size}`)
    }
    return files.sort()
  })

const program = Effect.gen(function*() {
  const cache = yield* DatasetCache
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  let announced = false
  const view = yield* cache.ensure({
    destDir: args.destDir,
    onProgress: () => {
      if (args.mode !== "crash") return Effect.void
      if (announced) return Effect.never
      announced = true
      return Effect.zipRight(say("DOWNLOADING"), Effect.never)
    }
  })
  const annotations = yield* fs.readFileString(path.join(view, "annotations_detection.json"))
  const images = yield* listFiles(path.join(view, "images"))
  yield* say(`RESULT ${JSON.stringify({ view, images, annotations })}`)
  if (args.mode === "hold") {
    yield* say("READY")
    yield* Effect.never
  }
  if (args.mode === "block") {
    yield* say("BLOCKING")
    // A synchronous wait: no fiber, timer or callback of this thread runs meanwhile.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, args.blockMs ?? 0)
    yield* say("UNBLOCKED")
    yield* Effect.never
  }
})

const job = makeJobContext({
  datasetId: args.datasetId,
  snapshotId: "snapshot",
  datasetVersionHash: args.datasetVersionHash
})

const layer = DatasetCache.layerConfig(job, {
  cacheDir: args.cacheDir,
  staleAfter: args.staleAfterMs,
  heartbeatEvery: args.heartbeatMs,
  pollEvery: 50
}).pipe(
  Layer.provideMerge(storageLayerFrom(storageVariables({ endpoint: args.endpoint, accessKey: "S3RVER", secretKey: "S3RVER" }, { external: args.bucket }))),
  Layer.provideMerge(NodeContext.layer)
)

Effect.runPromise(Effect.scoped(Effect.provide(program, layer))).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`worker failed: ${String(error)}\n`)
    process.exit(1)
  }
)
