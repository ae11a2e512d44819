import { FileSystem, HttpClient, HttpClientError, HttpClientResponse } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, FastCheck, Fiber, Layer, Option, Redacted, Scope, TestClock } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Callback } from "../src/Callback.js"
import { type JobContextInput, makeJobContext } from "../src/JobContext.js"
import { LogBuffer } from "../src/LogBuffer.js"
import { outboxFileName, ReportOutbox, type ReportOutboxOptions } from "../src/Outbox.js"
import { maskUrlCredentials, maskUrlValue } from "../src/internal/redact.js"
import { captureWarnings } from "./support/logs.js"

/** One request the in-memory backend stored. */
interface Stored {
  readonly path: string
  readonly body: Record<string, unknown>
}

/**
 * An in-memory backend behind `HttpClient.make`: while `down` it refuses connections (or
 * answers `downStatus`), otherwise it stores the request and answers 200.
 */
const makeBackend = () => {
  const state = {
    down: false,
    downStatus: undefined as number | undefined,
    retryAfter: undefined as string | undefined,
    reject: (_path: string): number | undefined => undefined,
    stored: [] as Array<Stored>,
    attempts: [] as Array<{ readonly path: string; readonly at: number }>
  }
  const client = HttpClient.make((request, url) =>
    Effect.gen(function*() {
      const at = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const requestPath = url.pathname.replace(/^\/api\/v1/, "")
      state.attempts.push({ path: requestPath, at })
      if (state.down && state.downStatus === undefined) {
        return yield* new HttpClientError.RequestError({ request, reason: "Transport", cause: new Error("connect ECONNREFUSED") })
      }
      const status = state.down ? state.downStatus! : state.reject(requestPath) ?? 200
      if (status === 200 && request.body._tag === "Uint8Array") {
        state.stored.push({ path: requestPath, body: JSON.parse(new TextDecoder().decode(request.body.body)) })
      }
      return HttpClientResponse.fromWeb(
        request,
        new Response(status === 200 ? "{\"success\":true}" : `refused ${status}`, {
          status,
          headers: state.retryAfter === undefined ? {} : { "retry-after": state.retryAfter }
        })
      )
    })
  )
  return { state, client }
}

type Backend = ReturnType<typeof makeBackend>

const services = (backend: Backend, input: JobContextInput, options: ReportOutboxOptions) => {
  const job = makeJobContext({ jobId: 7, callbackUrl: "http://backend/api/v1", ...input })
  return Layer.mergeAll(Callback.layerConfig(job), LogBuffer.layerConfig(job)).pipe(
    Layer.provideMerge(ReportOutbox.layerConfig(job, options)),
    Layer.provide(Layer.succeed(HttpClient.HttpClient, backend.client))
  )
}

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "outbox-test-" }))

/** Advances the TestClock a second at a time until `fiber` is done (at most `limit` seconds). */
const adjustUntilDone = <A, E>(fiber: Fiber.Fiber<A, E>, limit = 3600) =>
  Effect.gen(function*() {
    for (let i = 0; i < limit && Option.isNone(yield* Fiber.poll(fiber)); i++) yield* TestClock.adjust("1 second")
    return yield* Fiber.join(fiber)
  })

const kindOf = (r: Stored): string =>
  r.path.endsWith("/logs")
    ? "log"
    : r.path.endsWith("/results")
    ? "validation"
    : r.path.endsWith("/completion")
    ? "completion"
    : r.body["metrics"] === null
    ? "started"
    : "progress"

describe("ReportOutbox", () => {
  it.scoped(
    "a 10-minute outage mid-training (600 progress, 600 validation, 6,000 logs): every report once, in order, training never slowed; the outcome after",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const backend = makeBackend()
        const memoryBytes = 256 * 1024
        const run = Effect.gen(function*() {
          const callback = yield* Callback
          const logs = yield* LogBuffer
          const outbox = yield* ReportOutbox
          yield* callback.reportStarted({ totalEpochs: 600 })
          let line = 0
          // One report of each kind per second; the clock moves in 10-second steps (TestClock
          // steps are costly), so each step queues ten seconds' worth of reports.
          for (let second = 1; second <= 600; second++) {
            if (second === 30) backend.state.down = true
            const before = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
            for (let i = 0; i < 10; i++) yield* logs.info(`line ${++line}`, { data: { line } })
            yield* callback.reportProgress({ epoch: second, totalEpochs: 600, metrics: { loss: 1 / second } })
            yield* callback.reportValidation({ epoch: second, primaryMetric: ["mAP50-95", second / 600], allMetrics: {} })
            // Queueing never waits on the (TestClock) network: no time passed while reporting.
            assert.strictEqual(yield* Effect.clockWith((clock) => clock.currentTimeMillis), before)
            if (second % 10 === 0) yield* TestClock.adjust("10 seconds")
          }
          // The last minutes of the outage: the program does its final work.
          yield* TestClock.adjust("30 seconds")
          const during = yield* outbox.stats
          assert.isAbove(during.spilled, 1000)
          assert.isAtMost(during.maxMemoryBytes, memoryBytes + 300 * 1024)
          assert.strictEqual(during.droppedLogs, 0)
          backend.state.down = false
          const completed = yield* Effect.fork(callback.reportCompleted({ finalMetrics: { loss: 1 / 600 } }))
          // Past the longest backoff (16 s, jittered): from then on the sender never sleeps.
          yield* TestClock.adjust("20 seconds")
          yield* Fiber.join(completed)
          return yield* outbox.stats
        })
        const stats = yield* run.pipe(
          Effect.provide(services(backend, { callbackRetryDelay: Duration.seconds(2), outboxMemoryBytes: memoryBytes }, { dir }))
        )
        const stored = backend.state.stored
        const progress = stored.filter((r) => kindOf(r) === "progress").map((r) => r.body["current_epoch"])
        const validation = stored.filter((r) => kindOf(r) === "validation").map((r) => r.body["epoch"])
        const lines = stored.filter((r) => kindOf(r) === "log").map((r) => r.body["message"])
        const expected = (n: number) => Array.from({ length: n }, (_, i) => i + 1)
        assert.deepStrictEqual(progress, expected(600))
        assert.deepStrictEqual(validation, expected(600))
        assert.deepStrictEqual(lines, expected(6000).map((i) => `line ${i}`))
        assert.strictEqual(kindOf(stored[0]!), "started")
        assert.strictEqual(kindOf(stored.at(-1)!), "completion")
        assert.strictEqual(stored.length, 1 + 600 + 600 + 6000 + 1)
        // Per second: 10 log lines, then progress, then validation — the order they were queued in.
        assert.deepStrictEqual(stored.slice(1, 13).map(kindOf), [...Array(10).fill("log"), "progress", "validation"])
        assert.deepStrictEqual(stats.delivered, { started: 1, log: 6000, progress: 600, validation: 600, outcome: 1 })
        // Retried all along, with the backoff capped (2, 4, 8, 16 s, jittered): no request storm.
        const failed = backend.state.attempts.length - stored.length
        assert.isAbove(failed, 30)
        assert.isBelow(failed, 60)
        assert.isFalse(fs.existsSync(path.join(dir, outboxFileName)))
      }).pipe(Effect.provide(NodeContext.layer)),
    120_000
  )

  it.scoped("restart of the same job: reports left in the outbox file are delivered first, each once", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { lines, logger } = yield* captureWarnings
      const job = { callbackRetryDelay: Duration.seconds(1), callbackShutdownBudget: Duration.seconds(5), outboxMemoryBytes: 2048 }
      // First run: epochs 1–2 are delivered, then the backend goes down for good.
      const first = makeBackend()
      const firstRun = yield* Effect.gen(function*() {
        const callback = yield* Callback
        const logs = yield* LogBuffer
        yield* callback.reportStarted({ totalEpochs: 10 })
        for (let epoch = 1; epoch <= 6; epoch++) {
          if (epoch === 3) {
            yield* callback.flushProgress
            first.state.down = true
          }
          yield* logs.info(`epoch ${epoch} done`)
          yield* callback.reportProgress({ epoch, totalEpochs: 10, metrics: { loss: 1 / epoch } })
        }
      }).pipe(Effect.provide(services(first, job, { dir })), Effect.provide(logger), Effect.fork)
      yield* adjustUntilDone(firstRun, 30)
      assert.deepStrictEqual(first.state.stored.map((r) => [kindOf(r), r.body["current_epoch"] ?? r.body["message"]]), [
        ["started", 0],
        ["log", "epoch 1 done"],
        ["progress", 1],
        ["log", "epoch 2 done"],
        ["progress", 2]
      ])
      assert.isTrue(lines.some((l) => l.includes("not delivered to the backend: 4 log entries, 4 progress; 8 kept in")), lines.join("\n"))
      assert.isTrue(fs.existsSync(path.join(dir, outboxFileName)))

      // The container restarts in the same pod: the left-over reports go first, then the new ones.
      const second = makeBackend()
      yield* Effect.gen(function*() {
        const callback = yield* Callback
        const outbox = yield* ReportOutbox
        assert.strictEqual((yield* outbox.stats).replayed, 8)
        yield* callback.reportProgress({ epoch: 7, totalEpochs: 10, metrics: {} })
        yield* callback.flushProgress
      }).pipe(Effect.provide(services(second, job, { dir })))
      assert.deepStrictEqual(second.state.stored.map((r) => [kindOf(r), r.body["current_epoch"] ?? r.body["message"]]), [
        ["log", "epoch 3 done"],
        ["progress", 3],
        ["log", "epoch 4 done"],
        ["progress", 4],
        ["log", "epoch 5 done"],
        ["progress", 5],
        ["log", "epoch 6 done"],
        ["progress", 6],
        ["progress", 7]
      ])
      assert.isFalse(fs.existsSync(path.join(dir, outboxFileName)))

      // A third start finds nothing left to replay.
      const third = makeBackend()
      yield* Effect.flatMap(ReportOutbox, (outbox) => outbox.stats).pipe(
        Effect.tap((stats) => assert.strictEqual(stats.replayed, 0)),
        Effect.provide(services(third, job, { dir }))
      )
      assert.deepStrictEqual(third.state.stored, [])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a torn last line (a crash mid-write) and acknowledged reports are not sent again on restart", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, outboxFileName)
      const body = (epoch: number) =>
        JSON.stringify({ job_id: 7, status: "running", current_epoch: epoch, total_epochs: 9, progress_percent: 0, metrics: null })
      const record = (seq: number) =>
        `{"s":${seq},"k":"progress","p":"/training/jobs/7/callback/progress","d":"never","b":${body(seq)}}\n`
      fs.writeFileSync(file, `${record(1)}${record(2)}{"a":1}\n${record(3)}{"s":4,"k":"progress","p":"/tr`)
      const backend = makeBackend()
      yield* Effect.flatMap(ReportOutbox, (outbox) => outbox.drain).pipe(Effect.provide(services(backend, {}, { dir })))
      assert.deepStrictEqual(backend.state.stored.map((r) => r.body["current_epoch"]), [2, 3])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("Retry-After is honoured, and a 429 is retried like a 5xx", () =>
    Effect.gen(function*() {
      const backend = makeBackend()
      backend.state.down = true
      backend.state.downStatus = 429
      backend.state.retryAfter = "30"
      yield* Effect.gen(function*() {
        const callback = yield* Callback
        yield* callback.reportProgress({ epoch: 1, totalEpochs: 2, metrics: {} })
        yield* TestClock.adjust("29 seconds")
        assert.strictEqual(backend.state.attempts.length, 1)
        backend.state.down = false
        yield* TestClock.adjust("1 second")
        yield* callback.flushProgress
        assert.deepStrictEqual(backend.state.attempts.map((a) => a.at), [0, 30_000])
        assert.strictEqual(backend.state.stored.length, 1)
      }).pipe(Effect.provide(services(backend, { callbackRetryDelay: Duration.seconds(1) }, { dir: null })))
    }))

  it.effect("the retry schedule: doubled from CALLBACK_RETRY_DELAY, jittered ×0.8–1.2, held after CALLBACK_MAX_RETRIES doublings, at most 5 minutes, restarted per report", () =>
    Effect.gen(function*() {
      const gaps = (from: number) => {
        const at = backend.state.attempts.slice(from).map((a) => a.at)
        return at.slice(1).map((t, i) => Math.round(t - at[i]!))
      }
      const within = (gap: number, millis: number) => gap >= millis * 0.8 && gap <= millis * 1.2
      const backend = makeBackend()
      backend.state.down = true
      // 60 s doubled ten times would wait 17 hours: the wait stops at 5 minutes.
      yield* Effect.gen(function*() {
        const callback = yield* Callback
        yield* callback.reportProgress({ epoch: 1, totalEpochs: 2, metrics: {} })
        for (let i = 0; i < 80; i++) yield* TestClock.adjust("30 seconds")
        const waits = gaps(0)
        // Delivered before asserting, so that a failed assertion does not leave the close waiting on TestClock.
        backend.state.down = false
        yield* TestClock.adjust("5 minutes")
        yield* callback.flushProgress
        assert.isAtLeast(waits.length, 8)
        assert.isTrue(within(waits[0]!, 60_000) && within(waits[1]!, 120_000) && within(waits[2]!, 240_000), `${waits}`)
        assert.deepStrictEqual(waits.slice(3), waits.slice(3).map(() => 300_000))
      }).pipe(Effect.scoped, Effect.provide(services(backend, { callbackRetryDelay: Duration.seconds(60), callbackMaxRetries: 10 }, { dir: null })))

      backend.state.attempts.length = 0
      backend.state.down = true
      yield* Effect.gen(function*() {
        const callback = yield* Callback
        yield* callback.reportProgress({ epoch: 1, totalEpochs: 2, metrics: {} })
        for (let i = 0; i < 40; i++) yield* TestClock.adjust("1 second")
        const waits = gaps(0)
        assert.isTrue(within(waits[0]!, 1000) && within(waits[1]!, 2000), `${waits}`)
        assert.isAtLeast(waits.slice(2).length, 5)
        assert.isTrue(waits.slice(2).every((gap) => within(gap, 4000)), `held at 4 s: ${waits}`)
        assert.isTrue(new Set(waits.slice(2)).size > 1, `jittered: ${waits}`)
        // The next report starts again from CALLBACK_RETRY_DELAY.
        backend.state.down = false
        yield* TestClock.adjust("5 seconds")
        yield* callback.flushProgress
        backend.state.down = true
        const next = backend.state.attempts.length
        yield* callback.reportProgress({ epoch: 2, totalEpochs: 2, metrics: {} })
        for (let i = 0; i < 4; i++) yield* TestClock.adjust("1 second")
        const restarted = gaps(next)
        backend.state.down = false
        yield* TestClock.adjust("5 seconds")
        yield* callback.flushProgress
        assert.isTrue(within(restarted[0]!, 1000) && within(restarted[1]!, 2000), `${restarted}`)
      }).pipe(Effect.scoped, Effect.provide(services(backend, { callbackRetryDelay: Duration.seconds(1), callbackMaxRetries: 2 }, { dir: null })))
    }))

  it.effect("a 4xx on progress or validation is counted and said on stderr with status and body; training goes on", () =>
    Effect.gen(function*() {
      const backend = makeBackend()
      const { lines, logger } = yield* captureWarnings
      backend.state.reject = (p) => (p.endsWith("/results") ? 422 : undefined)
      yield* Effect.gen(function*() {
        const callback = yield* Callback
        const outbox = yield* ReportOutbox
        yield* callback.reportValidation({ epoch: 1, primaryMetric: ["mAP50-95", 0.1], allMetrics: {} })
        yield* callback.reportProgress({ epoch: 1, totalEpochs: 2, metrics: {} })
        yield* callback.reportCompleted({ finalMetrics: {} })
        const stats = yield* outbox.stats
        assert.deepStrictEqual(stats.rejected, { validation: 1 })
        assert.deepStrictEqual(stats.delivered, { progress: 1, outcome: 1 })
      }).pipe(Effect.provide(services(backend, {}, { dir: null })), Effect.provide(logger))
      assert.isTrue(lines.some((l) => l.includes("rejected by the backend (4xx): 1 validation")), lines.join("\n"))
    }))

  it.effect("URL credentials and the storage and ClearML secrets never leave the process in a report", () =>
    Effect.gen(function*() {
      const backend = makeBackend()
      yield* Effect.gen(function*() {
        const callback = yield* Callback
        const logs = yield* LogBuffer
        yield* logs.error("cannot reach http://trainer:s3cr/t+pa@ss@minio:9000/bucket (key S3-SECRET-KEY-1)")
        yield* callback.reportFailed({
          errorType: "NetworkError",
          message: "ClearML said no to CLEARML-SECRET at https://u:p%2F@clearml:8008",
          traceback: "Error at postgres://admin:hunter2/x@db:5432/app"
        })
      }).pipe(Effect.provide(services(backend, {
        internalStorage: { secretKey: Redacted.make("S3-SECRET-KEY-1") },
        clearml: Option.some({
          apiHost: "https://clearml:8008",
          accessKey: "key",
          secretKey: Redacted.make("CLEARML-SECRET"),
          webHost: Option.none(),
          project: "p",
          taskName: "t",
          taskId: Option.none()
        })
      }, { dir: null })))
      const sent = JSON.stringify(backend.state.stored)
      for (const secret of ["s3cr", "pa@ss", "S3-SECRET-KEY-1", "CLEARML-SECRET", "hunter2", "p%2F"]) {
        assert.notInclude(sent, secret)
      }
      assert.include(sent, "http://***@minio:9000/bucket")
      assert.include(sent, "postgres://***@db:5432/app")
    }))

  it.effect("closing under a hung backend ends at the budget and says what was not delivered", () =>
    Effect.gen(function*() {
      const { lines, logger } = yield* captureWarnings
      const hung = HttpClient.make(() => Effect.never)
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        services({ state: makeBackend().state, client: hung }, { callbackShutdownBudget: Duration.seconds(3) }, { dir: null }),
        scope
      ).pipe(Effect.provide(logger))
      yield* Effect.flatMap(Callback, (c) => c.reportProgress({ epoch: 1, totalEpochs: 2, metrics: {} })).pipe(Effect.provide(context))
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("2999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(closing)), lines.join("\n"))
      yield* TestClock.adjust("1 milli")
      yield* Fiber.join(closing)
      assert.isTrue(lines.some((l) => l.includes("shutdown budget of 3s ran out; not delivered to the backend: 1 progress")), lines.join("\n"))
    }))
})

describe("masking of URL credentials", () => {
  it.prop("a variable's URL: whatever the password holds, only `***` is left of it", [FastCheck.string({ minLength: 1 })], ([password]) => {
    assert.strictEqual(maskUrlValue(`http://trainer:${password}@backend:8000/api/v1`), "http://***@backend:8000/api/v1")
  })

  it.prop(
    "free text: a password without whitespace or quotes (base64, `/`, `@`, `%`…) is masked",
    [FastCheck.stringMatching(/^[A-Za-z0-9+/=@:%?#&!$*~^|\\-]{1,40}$/)],
    ([password]) => {
      const text = `request to http://trainer:${password}@backend:8000/api/v1 failed`
      assert.strictEqual(maskUrlCredentials(text), "request to http://***@backend:8000/api/v1 failed")
    }
  )

  it.effect("free text and single values", () =>
    Effect.sync(() => {
      assert.strictEqual(maskUrlValue("http://user:pa/ss@backend:8000/api/v1"), "http://***@backend:8000/api/v1")
      assert.strictEqual(maskUrlValue("http://user:a@b@backend"), "http://***@backend")
      assert.strictEqual(maskUrlValue("http://backend:8000/api"), "http://backend:8000/api")
      assert.strictEqual(
        maskUrlCredentials("got \"http://u:x/y+z=@h:1/p\" and https://h2/q"),
        "got \"http://***@h:1/p\" and https://h2/q"
      )
    }))
})
