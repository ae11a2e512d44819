/**
 * A child process for the memory test: `node --expose-gc <compiled>/test/support/logFlood.js
 * <callbackUrl> <workDir>` (compiled by compileScripts.ts) logs 1,500 lines of 1 MiB (each a fresh string) through the live
 * log buffer while the backend is down, then prints `{"before","after",...}`: the process's
 * RSS (after a full GC) before the first line and after the last, and the outbox's counters.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"
import { makeJobContext } from "../../src/JobContext.js"
import { LogBuffer } from "../../src/LogBuffer.js"
import { deliveryReportsOnStderr } from "../../src/internal/shutdown.js"
import { ReportOutbox } from "../../src/Outbox.js"

const [callbackUrl, workDir] = process.argv.slice(2)
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
const rss = () => {
  gc()
  return process.memoryUsage().rss
}

const job = makeJobContext({ jobId: 7, callbackUrl: callbackUrl!, callbackShutdownBudget: Duration.seconds(1) })
const layer = LogBuffer.layerConfig(job).pipe(
  Layer.provideMerge(ReportOutbox.layerConfig(job, { dir: `${workDir}/outbox` })),
  Layer.provide(NodeHttpClient.layerUndici),
  // This program is its own edge: the outbox's closing reports go to stderr, as under `runTrainer`.
  Layer.provideMerge(deliveryReportsOnStderr)
)

const program = Effect.gen(function*() {
  const logs = yield* LogBuffer
  const outbox = yield* ReportOutbox
  yield* logs.info("warm-up")
  const before = rss()
  const mib = 1024 * 1024
  for (let i = 0; i < 1500; i++) {
    yield* logs.info(`${i} `.padEnd(mib, String.fromCharCode(97 + (i % 26))))
    if (i % 250 === 249) gc()
  }
  const after = rss()
  const stats = yield* outbox.stats
  process.stdout.write(`${JSON.stringify({ before, after, maxMemoryBytes: stats.maxMemoryBytes, droppedLogs: stats.droppedLogs, spilled: stats.spilled })}\n`)
})

void Effect.runPromise(program.pipe(Effect.provide(layer)))
