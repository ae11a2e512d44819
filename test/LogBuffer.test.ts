import { HttpClient, HttpClientResponse } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, Ref, Stream, SubscriptionRef, TestClock } from "effect"
import { type JobContextInput, makeJobContext } from "../src/JobContext.js"
import { LogBuffer, LogBufferTest } from "../src/LogBuffer.js"
import { ReportOutbox } from "../src/Outbox.js"
import { CheckpointEvents } from "../src/Storage.js"
import { captureWarnings } from "./support/logs.js"

interface WireEntry {
  readonly job_id: number
  readonly event_type: string
  readonly message: string
  readonly level: string
  readonly data: Record<string, unknown>
  readonly timestamp: string
}

/**
 * An in-memory backend for `HttpClient.make`: records accepted log bodies, answers with the
 * current status (200 or a failure), and can run an effect inside each request.
 */
const makeFakeBackend = (onRequest: Effect.Effect<void> = Effect.void) =>
  Effect.gen(function*() {
    const received = yield* SubscriptionRef.make<ReadonlyArray<WireEntry>>([])
    const attempts = yield* SubscriptionRef.make(0)
    const status = yield* Ref.make(200)
    const paths: Array<string> = []
    const client = HttpClient.make((request, url) =>
      Effect.gen(function*() {
        yield* onRequest
        yield* SubscriptionRef.update(attempts, (n) => n + 1)
        paths.push(url.pathname)
        const code = yield* Ref.get(status)
        if (code === 200 && request.body._tag === "Uint8Array") {
          const body = JSON.parse(new TextDecoder().decode(request.body.body)) as WireEntry
          yield* SubscriptionRef.update(received, (all) => [...all, body])
        }
        return HttpClientResponse.fromWeb(request, new Response(code === 200 ? "{\"success\":true}" : "down", { status: code }))
      })
    )
    const waitFor = <A>(ref: SubscriptionRef.SubscriptionRef<A>, done: (a: A) => boolean) =>
      ref.changes.pipe(Stream.filter(done), Stream.take(1), Stream.runDrain)
    return {
      client,
      status,
      paths,
      received: SubscriptionRef.get(received),
      messages: Effect.map(SubscriptionRef.get(received), (all) => all.map((e) => e.message)),
      waitForReceived: (n: number) => waitFor(received, (all) => all.length >= n),
      waitForAttempts: (n: number) => waitFor(attempts, (count) => count >= n)
    }
  })

type FakeBackend = Effect.Effect.Success<ReturnType<typeof makeFakeBackend>>

const liveLayer = (fake: FakeBackend, context: JobContextInput = {}) => {
  const job = makeJobContext({ jobId: 7, callbackMaxRetries: 1, callbackRetryDelay: Duration.seconds(1), ...context })
  return LogBuffer.layerConfig(job).pipe(
    Layer.provideMerge(ReportOutbox.layerConfig(job, { dir: null })),
    Layer.provide(Layer.succeed(HttpClient.HttpClient, fake.client))
  )
}

const info = (message: string) => Effect.flatMap(LogBuffer, (logs) => logs.info(message))

describe("LogBuffer", () => {
  it.effect("queues without waiting; one request per entry with the backend's body, in logged order", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        for (let i = 1; i <= 4; i++) yield* logs.info(`line ${i}`, { source: "training", data: { i } })
        yield* TestClock.adjust("59 minutes")
        yield* logs.debug("line 5", { source: "a-very-long-source" })
        yield* fake.waitForReceived(5)
        const received = yield* fake.received
        assert.deepStrictEqual(received[0], {
          job_id: 7,
          event_type: "training",
          message: "line 1",
          level: "INFO",
          data: { i: 1 },
          timestamp: new Date(0).toISOString()
        })
        assert.deepStrictEqual(received.map((e) => e.message), ["line 1", "line 2", "line 3", "line 4", "line 5"])
        // The backend's event_type column holds 10 characters; a longer value would fail its insert.
        assert.deepStrictEqual(received[4]!.event_type, "a-very-lon")
        assert.deepStrictEqual(received[4]!.level, "DEBUG")
        assert.deepStrictEqual(received[4]!.timestamp, new Date(Duration.toMillis("59 minutes")).toISOString())
        assert.isTrue(fake.paths.every((p) => p === "/api/v1/training/jobs/7/callback/logs"))
      }).pipe(Effect.provide(liveLayer(fake)))
    }))

  it.effect("never two log requests in flight: lines cannot swap on the backend", () =>
    Effect.gen(function*() {
      let inFlight = 0
      let maxInFlight = 0
      const fake = yield* makeFakeBackend(Effect.gen(function*() {
        inFlight++
        maxInFlight = Math.max(maxInFlight, inFlight)
        for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
        inFlight--
      }))
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        for (let i = 1; i <= 50; i++) yield* (i % 7 === 0 ? logs.error(`line ${i}`) : logs.info(`line ${i}`))
        yield* logs.flush
        assert.deepStrictEqual(yield* fake.messages, Array.from({ length: 50 }, (_, i) => `line ${i + 1}`))
        assert.strictEqual(maxInFlight, 1)
      }).pipe(Effect.provide(liveLayer(fake)))
    }))

  it.effect("delivered on scope close when the program fails", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      const exit = yield* Effect.gen(function*() {
        yield* info("before the failure")
        return yield* Effect.fail("boom")
      }).pipe(Effect.provide(liveLayer(fake)), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      assert.deepStrictEqual(yield* fake.messages, ["before the failure"])
    }))

  it.effect("delivered on scope close when the program is interrupted", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      const logged = yield* Deferred.make<void>()
      const fiber = yield* Effect.gen(function*() {
        yield* info("still running")
        yield* Deferred.succeed(logged, undefined)
        return yield* Effect.never
      }).pipe(Effect.provide(liveLayer(fake)), Effect.fork)
      yield* Deferred.await(logged)
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.deepStrictEqual(yield* fake.messages, ["still running"])
    }))

  it.effect("closing gives up at the shutdown budget on a backend that never answers, and says what was left", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend(Effect.never)
      const { lines, logger } = yield* captureWarnings
      const closing = yield* Effect.gen(function*() {
        for (const m of ["a", "b", "c"]) yield* info(m)
      }).pipe(
        Effect.provide(liveLayer(fake, { callbackShutdownBudget: Duration.seconds(2) })),
        Effect.provide(logger),
        Effect.fork
      )
      yield* fake.waitForAttempts(0)
      yield* TestClock.adjust("2 seconds")
      const exit = yield* Fiber.await(closing)
      assert.isTrue(Exit.isSuccess(exit))
      assert.isTrue(
        lines.some((l) => l.includes("shutdown budget of 2s ran out; not delivered to the backend: 3 log entries")),
        lines.join("\n")
      )
    }))

  it.effect("beyond the log budget DEBUG/INFO entries are dropped first, WARNING/ERROR kept longer; a summary entry follows once delivery resumes", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      const { lines, logger } = yield* captureWarnings
      yield* Ref.set(fake.status, 503)
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        // Each body is ~310 bytes; with no outbox file the log budget is the 1,000-byte memory
        // cap (WARNING/ERROR: 1,250): 3 INFO entries fit, then only the WARNING does.
        const pad = "x".repeat(190)
        for (let i = 1; i <= 6; i++) yield* info(`info ${i} ${pad}`)
        yield* logs.warning(`warning 1 ${pad}`)
        yield* logs.error(`error 1 ${pad}`)
        yield* info(`info 7 ${pad}`)
        assert.deepStrictEqual(yield* logs.stats, { buffered: 4, shipped: 0, failed: 0, dropped: 5 })
        yield* Ref.set(fake.status, 200)
        yield* TestClock.adjust("10 seconds")
        yield* logs.flush
        const messages = (yield* fake.messages).map((m) => m.replace(` ${pad}`, ""))
        assert.deepStrictEqual(messages.slice(0, 4), ["info 1", "info 2", "info 3", "warning 1"])
        assert.strictEqual(messages.length, 5)
        assert.match(messages[4]!, /^5 log entries were dropped while the backend was slow or unreachable/)
        const summary = (yield* fake.received).at(-1)!
        assert.strictEqual(summary.level, "WARNING")
        assert.deepStrictEqual(summary.data, { dropped: 5, dropped_total: 5 })
      }).pipe(
        Effect.ensuring(Ref.set(fake.status, 200)),
        Effect.provide(liveLayer(fake, { outboxMemoryBytes: 1000, callbackRetryDelay: Duration.millis(100) })),
        Effect.provide(logger)
      )
      assert.isTrue(lines.some((l) => l.includes("5 log entries dropped (outbox full)")), lines.join("\n"))
    }))

  it.effect("a 4xx on a log entry never fails the caller: logged with status and body, counted, and the next entries go out", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      const { lines, logger } = yield* captureWarnings
      yield* Ref.set(fake.status, 422)
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        yield* info("refused")
        yield* fake.waitForAttempts(1)
        yield* Ref.set(fake.status, 200)
        yield* info("kept")
        yield* logs.flush
        assert.deepStrictEqual(yield* fake.messages, ["kept"])
        assert.deepStrictEqual(yield* logs.stats, { buffered: 0, shipped: 1, failed: 1, dropped: 0 })
      }).pipe(Effect.provide(liveLayer(fake)), Effect.provide(logger))
      assert.isTrue(lines.some((l) => l.includes("rejected by the backend (4xx): 1 log entry")), lines.join("\n"))
      assert.strictEqual(fake.paths.length, 2)
    }))

  it.effect("secondary ranks ship nothing", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        yield* logs.error("from rank 1")
        yield* logs.flush
      }).pipe(Effect.provide(liveLayer(fake, { rank: 1 })))
      assert.deepStrictEqual(fake.paths, [])
    }))

  it.effect("the Logger bridge routes Effect.log* into the buffer", () =>
    Effect.gen(function*() {
      const entries = yield* Effect.gen(function*() {
        yield* Effect.logInfo("epoch", 3, "done").pipe(Effect.annotateLogs({ event_type: "training", loss: 0.5 }))
        yield* Effect.logDebug("details")
        yield* Effect.logWarning("slow")
        yield* Effect.logError("bad batch", Cause.fail("bad input"))
        yield* Effect.logTrace("hidden")
        return yield* Effect.flatMap(LogBufferTest, (t) => t.entries)
      }).pipe(
        Logger.withMinimumLogLevel(LogLevel.Debug),
        Effect.provide(Layer.provideMerge(Layer.merge(LogBuffer.layerLogger, Logger.remove(Logger.defaultLogger)), LogBuffer.layerTest()))
      )
      assert.deepStrictEqual(entries.map((e) => [e.level, e.source, e.message]), [
        ["INFO", "training", "epoch 3 done"],
        ["DEBUG", "trainer", "details"],
        ["WARNING", "trainer", "slow"],
        ["ERROR", "trainer", "bad batch"]
      ])
      assert.deepStrictEqual(entries[0]!.data, { loss: 0.5 })
      assert.include(String(entries[3]!.data["cause"]), "bad input")
    }))

  it.effect("the Logger bridge does not feed the outbox's own logs (transport, rejections) back into it", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend(Effect.logInfo("transport log"))
      yield* Ref.set(fake.status, 422)
      yield* Effect.gen(function*() {
        yield* Effect.logInfo("refused by the backend")
        yield* fake.waitForAttempts(1)
        yield* Ref.set(fake.status, 200)
        yield* Effect.logInfo("from the program")
        yield* Effect.flatMap(LogBuffer, (logs) => logs.flush)
        yield* TestClock.adjust("1 minute")
        yield* Effect.flatMap(LogBuffer, (logs) => logs.flush)
      }).pipe(
        Effect.provide(Layer.provideMerge(Layer.merge(LogBuffer.layerLogger, Logger.remove(Logger.defaultLogger)), liveLayer(fake)))
      )
      assert.deepStrictEqual(yield* fake.messages, ["from the program"])
    }))

  it.effect("records saved checkpoints as checkpoint entries", () =>
    Effect.gen(function*() {
      const events = yield* CheckpointEvents
      yield* events.checkpointSaved({ checkpointType: "best", uri: "s3://ckpt/job-7/best.pt", metrics: { "mAP50-95": 0.5 } })
      const entries = yield* Effect.flatMap(LogBufferTest, (t) => t.entries)
      assert.deepStrictEqual(entries.map((e) => [e.level, e.source, e.message, e.data]), [
        ["INFO", "checkpoint", "Saved best checkpoint", { s3_uri: "s3://ckpt/job-7/best.pt", metrics: { "mAP50-95": 0.5 } }]
      ])
    }).pipe(Effect.provide(Layer.provideMerge(LogBuffer.checkpointEvents, LogBuffer.layerTest()))))
})
