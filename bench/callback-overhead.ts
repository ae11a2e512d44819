/**
 * Caller-side cost of `Callback.reportProgress`: how long the training loop waits per
 * progress report, with a healthy local backend and with a backend that is down (a closed
 * port on 127.0.0.1). For comparison, the same run measures a blocking delivery
 * (`reportProgress` then `flushProgress`, i.e. what a client that waits for the backend
 * pays) against the healthy backend, and a noise floor: a plain synchronous computation of
 * `--control-us` microseconds timed the same way between the same calls (on a loaded
 * machine, OS preemption alone puts milliseconds into the p99 of any short window).
 *
 * The healthy backend runs in a child process (as the real backend does), so its own work
 * and garbage do not land in the measured process.
 *
 * Usage: `npx tsx bench/callback-overhead.ts [--n 2000] [--gap-ms 1] [--warmup 200] [--control-us 100]`
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Duration, Effect, Layer, Logger, LogLevel } from "effect"
import { spawn } from "node:child_process"
import * as net from "node:net"
import { performance, PerformanceObserver } from "node:perf_hooks"
import * as os from "node:os"
import { type CallbackService, makeCallback } from "../src/Callback.js"
import { JobContext } from "../src/JobContext.js"
import { makeBackendServer } from "../test/support/backendServer.js"
import { numberFlag, percentile, report } from "./lib/report.js"

const n = numberFlag("n", 2000)
const gapMs = numberFlag("gap-ms", 1)
const warmup = numberFlag("warmup", 200)
const controlUs = numberFlag("control-us", 100)

interface Timing {
  readonly mean: number
  readonly p99: number
  readonly max: number
  /** Samples over 1 ms. */
  readonly over1ms: number
}

/** Garbage-collection pauses of this process, to attribute slow calls. */
const gcPauses: Array<{ readonly start: number; readonly end: number }> = []
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcPauses.push({ start: entry.startTime, end: entry.startTime + entry.duration })
}).observe({ entryTypes: ["gc"] })

/** Calls slower than 1 ms, and how many of them overlapped a GC pause. */
const attributeSlowCalls = (windows: ReadonlyArray<{ readonly start: number; readonly end: number }>) => {
  const slow = windows.filter((w) => w.end - w.start > 1)
  const withGc = slow.filter((w) => gcPauses.some((gc) => gc.start < w.end && gc.end > w.start))
  return { slow: slow.length, withGc: withGc.length }
}

const summarize = (samples: ReadonlyArray<number>): Timing => ({
  mean: samples.reduce((a, b) => a + b, 0) / samples.length,
  p99: percentile(samples, 99),
  max: Math.max(...samples),
  over1ms: samples.filter((s) => s > 1).length
})

const ms = (value: number): string => value < 1 ? `${(value * 1000).toFixed(1)} µs` : `${value.toFixed(2)} ms`

/** Busy-waits `micros` µs and returns the time observed (more when the process was preempted). */
const spin = (micros: number): number => {
  const start = performance.now()
  let now = start
  while (now - start < micros / 1000) now = performance.now()
  return now - start
}

/**
 * Calls `reportProgress` like a training loop (a `gapMs` step between calls) and times each
 * call, and the noise-floor control right after it.
 */
const timeProgress = (callback: CallbackService, calls: number, flush: boolean) =>
  Effect.gen(function*() {
    const samples: Array<number> = []
    const control: Array<number> = []
    const windows: Array<{ readonly start: number; readonly end: number }> = []
    for (let i = 0; i < warmup + calls; i++) {
      const epoch = (i % 100) + 1
      const start = performance.now()
      yield* callback.reportProgress({
        epoch,
        totalEpochs: 100,
        metrics: { loss: 1 / epoch, "mAP50-95": epoch / 100, lr: 0.01, box_loss: 0.5, cls_loss: 0.3 }
      })
      if (flush) yield* callback.flushProgress
      const elapsed = performance.now() - start
      const controlElapsed = spin(controlUs)
      if (i >= warmup) {
        samples.push(elapsed)
        control.push(controlElapsed)
        windows.push({ start, end: start + elapsed })
      }
      if (gapMs > 0) yield* Effect.sleep(Duration.millis(gapMs))
    }
    // Let the observer deliver the last GC entries before attributing.
    yield* Effect.sleep(Duration.millis(50))
    return { ...summarize(samples), control: summarize(control), slow: attributeSlowCalls(windows) }
  })

const withCallback = <A, E>(callbackUrl: string, use: (callback: CallbackService) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Effect.gen(function*() {
      const callback = yield* makeCallback({ flushTimeout: Duration.seconds(1) })
      return yield* use(callback)
    }).pipe(
      Effect.provide(Layer.mergeAll(JobContext.layerTest({ jobId: 1, callbackUrl }), NodeHttpClient.layerUndici))
    )
  )

/** A port on 127.0.0.1 that nothing listens on. */
const closedPort = Effect.promise(() =>
  new Promise<number>((resolve, reject) => {
    const probe = net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      probe.close(() => resolve(port))
    })
  })
)

/** Child-process mode: serve the backend, print its URL, report the stored count on stdin close. */
const serveBackend = Effect.scoped(Effect.gen(function*() {
  const server = yield* makeBackendServer()
  console.log(`URL ${server.baseUrl}`)
  yield* Effect.async<void>((resume) => {
    process.stdin.resume()
    process.stdin.once("end", () => resume(Effect.void))
  })
  console.log(`STORED ${(yield* server.stored).length}`)
}))

/** Starts the backend in a child process; `stop` ends it and returns how many reports it stored. */
const childBackend = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly stop: () => Promise<number> }>((resume) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, "--serve-backend"], {
      stdio: ["pipe", "pipe", "inherit"]
    })
    let output = ""
    let stored: (count: number) => void = () => {}
    const storedCount = new Promise<number>((resolve) => (stored = resolve))
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8")
      const url = /URL (\S+)\n/.exec(output)
      if (url) {
        resume(Effect.succeed({
          url: url[1]!,
          stop: () => {
            child.stdin!.end()
            return storedCount
          }
        }))
      }
      const count = /STORED (\d+)\n/.exec(output)
      if (count) stored(Number(count[1]))
    })
  }),
  (backend) => Effect.promise(() => backend.stop())
)

const program = Effect.gen(function*() {
  const healthy = yield* Effect.scoped(Effect.gen(function*() {
    const backend = yield* childBackend
    const timing = yield* withCallback(backend.url, (callback) => timeProgress(callback, n, false))
    const delivered = yield* Effect.promise(() => backend.stop())
    const blocking = yield* Effect.scoped(Effect.gen(function*() {
      const fresh = yield* childBackend
      return yield* withCallback(fresh.url, (callback) => timeProgress(callback, Math.min(n, 500), true))
    }))
    return { timing, delivered, blocking }
  }))
  const port = yield* closedPort
  const down = yield* withCallback(`http://127.0.0.1:${port}/api/v1`, (callback) => timeProgress(callback, n, false))

  const met = healthy.timing.p99 < 1 && down.p99 < 1
  report({
    name: "callback-overhead",
    figure: `reportProgress caller time, healthy backend: mean ${ms(healthy.timing.mean)}, p99 ${ms(healthy.timing.p99)}; ` +
      `backend down: mean ${ms(down.mean)}, p99 ${ms(down.p99)} (${n} calls each, ${gapMs} ms step between calls)`,
    comparison: `blocking delivery (report + wait for the backend, as the Python client does) on the same healthy ` +
      `local backend: mean ${ms(healthy.blocking.mean)}, p99 ${ms(healthy.blocking.p99)}; with the backend down the ` +
      `Python client blocks up to ~14 s per call (2 s + 4 s + 8 s backoff, plus connect timeouts)`,
    target: "< 1 ms p99 in both cases",
    met,
    notes: `calls over 1 ms: ${healthy.timing.slow.slow} healthy (${healthy.timing.slow.withGc} during a GC pause), ` +
      `${down.slow.slow} down (${down.slow.withGc} during a GC pause); noise floor (a ${controlUs} µs busy loop timed the same way, ` +
      `right after each call): p99 ${ms(healthy.timing.control.p99)} with ${healthy.timing.control.over1ms} over 1 ms ` +
      `in the healthy run, p99 ${ms(down.control.p99)} with ${down.control.over1ms} over 1 ms in the down run; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} ` +
      `cores at the end; max caller time healthy ${ms(healthy.timing.max)}, down ${ms(down.max)}; ` +
      `${healthy.delivered} of ${warmup + n} healthy progress reports reached the backend (the rest were superseded ` +
      `while a send was in flight); ${warmup} warm-up calls per case not counted`
  })
})

const main = process.argv.includes("--serve-backend") ? serveBackend : program
Effect.runPromise(main.pipe(Logger.withMinimumLogLevel(LogLevel.Error))).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
