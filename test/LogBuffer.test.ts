import { HttpClient, HttpClientResponse } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, Ref, Stream, SubscriptionRef, TestClock } from "effect"
import { JobContext, type JobContextInput } from "../src/JobContext.js"
import { LogBuffer, type LogBufferOptions, LogBufferTest } from "../src/LogBuffer.js"
import { CheckpointEvents } from "../src/Storage.js"

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

const liveLayer = (fake: FakeBackend, options: LogBufferOptions = {}, context: JobContextInput = {}) =>
  LogBuffer.layerWith(options).pipe(
    Layer.provide(Layer.mergeAll(
      JobContext.layerTest({ jobId: 7, callbackMaxRetries: 1, callbackRetryDelay: Duration.seconds(1), ...context }),
      Layer.succeed(HttpClient.HttpClient, fake.client)
    ))
  )

/** A console whose `error` lines are recorded. */
const captureConsole = Effect.gen(function*() {
  const base = yield* Effect.console
  const lines: Array<string> = []
  return { console: { ...base, error: (...args: ReadonlyArray<unknown>) => Effect.sync(() => void lines.push(args.join(" "))) }, lines }
})

const info = (message: string) => Effect.flatMap(LogBuffer, (logs) => logs.info(message))

describe("LogBuffer", () => {
  it.effect("ships one request per entry with the backend's body once maxBatch entries are buffered", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        for (let i = 1; i <= 4; i++) yield* logs.info(`line ${i}`, { source: "training", data: { i } })
        yield* TestClock.adjust("59 minutes")
        assert.deepStrictEqual(yield* fake.received, [])
        yield* logs.debug("line 5")
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
        assert.deepStrictEqual(received[4]!.event_type, "trainer")
        assert.deepStrictEqual(received[4]!.level, "DEBUG")
        assert.deepStrictEqual(received[4]!.timestamp, new Date(Duration.toMillis("59 minutes")).toISOString())
        assert.isTrue(fake.paths.every((p) => p === "/api/v1/training/jobs/7/callback/logs"))
      }).pipe(Effect.provide(liveLayer(fake, { maxBatch: 5, flushEvery: "1 hour" })))
    }))

  it.effect("flushes on the interval", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      yield* Effect.gen(function*() {
        yield* info("a")
        yield* info("b")
        yield* info("c")
        yield* TestClock.adjust("4900 millis")
        assert.deepStrictEqual(yield* fake.received, [])
        yield* TestClock.adjust("200 millis")
        yield* fake.waitForReceived(3)
        assert.deepStrictEqual(yield* fake.messages, ["a", "b", "c"])
      }).pipe(Effect.provide(liveLayer(fake)))
    }))

  it.effect("ships at once, in order, when an ERROR is logged", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        yield* logs.info("one")
        yield* logs.warning("two")
        yield* logs.error("three", { source: "error" })
        yield* fake.waitForReceived(3)
        const received = yield* fake.received
        assert.deepStrictEqual(received.map((e) => [e.message, e.level]), [["one", "INFO"], ["two", "WARNING"], ["three", "ERROR"]])
      }).pipe(Effect.provide(liveLayer(fake, { concurrency: 3 })))
    }))

  it.effect("flushes on scope close when the program fails", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      const exit = yield* Effect.gen(function*() {
        yield* info("before the failure")
        return yield* Effect.fail("boom")
      }).pipe(Effect.provide(liveLayer(fake)), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      assert.deepStrictEqual(yield* fake.messages, ["before the failure"])
    }))

  it.effect("flushes on scope close when the program is interrupted", () =>
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

  it.effect("closing gives up after closeTimeout on a backend that never answers, and counts what was left", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend(Effect.never)
      const { console, lines } = yield* captureConsole
      const closing = yield* Effect.gen(function*() {
        for (const m of ["a", "b", "c"]) yield* info(m)
      }).pipe(
        Effect.provide(liveLayer(fake, { closeTimeout: "2 seconds", concurrency: 2, flushEvery: "1 hour" })),
        Effect.withConsole(console),
        Effect.fork
      )
      yield* fake.waitForAttempts(0)
      yield* TestClock.adjust("2 seconds")
      // Without the cut the close would wait out every attempt timeout and retry of all three.
      const exit = yield* Fiber.await(closing)
      assert.isTrue(Exit.isSuccess(exit))
      assert.isTrue(lines.some((l) => l.includes("0 shipped, 3 not delivered (3 left when closing timed out)")), lines.join("\n"))
    }))

  it.effect("drops the oldest DEBUG/INFO entries first while the backend is down, and reports the count", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      const { console, lines } = yield* captureConsole
      yield* Ref.set(fake.status, 503)
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        yield* info("i1")
        yield* info("i2")
        // i1 and i2 are in flight, the shipper is waiting to retry i1.
        yield* fake.waitForAttempts(1)
        yield* logs.warning("w1")
        for (const m of ["i3", "i4", "i5", "i6", "i7"]) yield* info(m)
        assert.deepStrictEqual(yield* logs.stats, { buffered: 4, shipped: 0, failed: 0, dropped: 2 })
        yield* Ref.set(fake.status, 200)
        yield* TestClock.adjust("10 seconds")
        yield* logs.flush
        assert.deepStrictEqual(yield* fake.messages, ["i1", "i2", "w1", "i5", "i6", "i7"])
        assert.deepStrictEqual(yield* logs.stats, { buffered: 0, shipped: 6, failed: 0, dropped: 2 })
      }).pipe(
        // A failed assertion must not leave the final flush retrying under the TestClock.
        Effect.ensuring(Ref.set(fake.status, 200)),
        Effect.provide(liveLayer(fake, { capacity: 4, maxBatch: 2, concurrency: 1, flushEvery: "1 hour" })),
        Effect.withConsole(console)
      )
      assert.strictEqual(lines.filter((l) => l.includes("dropped 2 oldest DEBUG/INFO")).length, 1)
      assert.isTrue(lines.some((l) => l.includes("6 shipped, 0 not delivered, 2 dropped")))
    }))

  it.effect("never fails the caller when shipping fails: counts, warns once, summarizes on close", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      const { console, lines } = yield* captureConsole
      yield* Ref.set(fake.status, 503)
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        for (const m of ["a", "b", "c"]) yield* info(m)
        const flushing = yield* Effect.fork(logs.flush)
        yield* TestClock.adjust("1 minute")
        yield* Fiber.join(flushing)
        assert.deepStrictEqual(yield* logs.stats, { buffered: 0, shipped: 0, failed: 3, dropped: 0 })
        assert.strictEqual(lines.length, 1)
        assert.include(lines[0], "log shipping to /training/jobs/7/callback/logs failed")
      }).pipe(Effect.provide(liveLayer(fake, { flushEvery: "1 hour" })), Effect.withConsole(console))
      assert.strictEqual(lines.length, 2)
      assert.include(lines[1], "0 shipped, 3 not delivered, 0 dropped")
      // 2 attempts per entry (CALLBACK_MAX_RETRIES=1).
      assert.strictEqual(fake.paths.length, 6)
    }))

  it.effect("secondary ranks ship nothing", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend()
      yield* Effect.gen(function*() {
        const logs = yield* LogBuffer
        yield* logs.error("from rank 1")
        yield* logs.flush
      }).pipe(Effect.provide(liveLayer(fake, {}, { rank: 1 })))
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
        Effect.provide(Layer.provideMerge(Layer.merge(LogBuffer.layerLogger, Logger.remove(Logger.defaultLogger)), LogBuffer.layerTest))
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

  it.effect("the Logger bridge does not feed the shipper's own logs back into the buffer", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeBackend(Effect.logInfo("transport log"))
      yield* Effect.gen(function*() {
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
    }).pipe(Effect.provide(Layer.provideMerge(LogBuffer.checkpointEvents, LogBuffer.layerTest))))
})
