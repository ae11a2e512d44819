import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Deferred, Duration, Effect, Fiber, Layer, Schema, TestClock } from "effect"
import { Callback } from "../src/Callback.js"
import { ReportOutbox } from "../src/Outbox.js"
import { type JobContextInput, makeJobContext } from "../src/JobContext.js"
import { matchCallbackEndpoint } from "../src/internal/callbackBodies.js"
import { type BackendServerShape, makeBackendServer } from "./support/backendServer.js"

/** Runs `body` against a fresh backend on 127.0.0.1 with the live Callback layer over undici. */
const withBackend = <A, E>(
  input: JobContextInput,
  body: (server: BackendServerShape) => Effect.Effect<A, E, Callback>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* makeBackendServer()
    const job = makeJobContext({ jobId: 7, callbackUrl: server.baseUrl, ...input })
    return yield* body(server).pipe(
      Effect.provide(Callback.layerConfig(job).pipe(
        Layer.provideMerge(ReportOutbox.layerConfig(job, { dir: null })),
        Layer.provide(NodeHttpClient.layerUndici)
      ))
    )
  }))

const fastRetries: JobContextInput = { callbackRetryDelay: Duration.millis(10) }

/** Waits (in real time) until the TestClock has a pending sleep, i.e. a retry is backing off. */
const awaitPendingSleep = Effect.gen(function*() {
  while (Chunk.isEmpty(yield* TestClock.sleeps())) {
    yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 2)))
  }
})

describe("Callback over real HTTP", () => {
  it.live("503 twice then 200: exactly one stored report per call, each body valid for a strict backend", () =>
    withBackend(fastRetries, (server) =>
      Effect.gen(function*() {
        const callback = yield* Callback
        yield* server.reply({ status: 503 }, { status: 503 })
        yield* callback.reportStarted({ totalEpochs: 3 })
        yield* server.reply({ status: 503, body: "busy" }, { status: 503 })
        yield* callback.reportCompleted({ finalMetrics: { loss: 0.2 } })
        const stored = yield* server.stored
        assert.deepStrictEqual(stored.map((r) => r.path), ["/training/jobs/7/callback/progress", "/training/jobs/7/callback/completion"])
        assert.strictEqual((yield* server.received).length, 6)
        for (const request of stored) {
          const endpoint = matchCallbackEndpoint(request.path)!.endpoint
          assert.isTrue(Schema.decodeUnknownEither(endpoint.body)(request.body, { onExcessProperty: "error" })._tag === "Right")
        }
      })))

  it.live("a 422 is not retried and surfaces as a typed rejection with status and body", () =>
    withBackend(fastRetries, (server) =>
      Effect.gen(function*() {
        const callback = yield* Callback
        yield* server.reply({ status: 422, body: { detail: [{ loc: ["body", "total_epochs_completed"], msg: "field required" }] } })
        const error = yield* Effect.flip(callback.reportFailed({ errorType: "DatasetError", message: "no images" }))
        assert.strictEqual(error._tag, "CallbackError")
        assert.strictEqual(error.reason, "Rejected")
        assert.strictEqual(error.status, 422)
        assert.strictEqual(error.path, "/training/jobs/7/callback/completion")
        assert.include(error.body, "total_epochs_completed")
        assert.include(error.message, "HTTP 422")
        assert.strictEqual((yield* server.received).length, 1)
        assert.deepStrictEqual(yield* server.stored, [])
      })))

  it.effect("a backend that never answers: attempts time out and are retried; the outcome gives up at the shutdown budget", () =>
    withBackend({ callbackShutdownBudget: Duration.seconds(90) }, (server) =>
      Effect.gen(function*() {
        const callback = yield* Callback
        yield* server.otherwise(() => "never")
        const report = yield* Effect.fork(callback.reportCompleted({ finalMetrics: {} }))
        yield* server.awaitReceived(1)
        yield* TestClock.adjust("60 seconds")
        yield* awaitPendingSleep
        yield* TestClock.adjust("10 seconds")
        yield* server.awaitReceived(2)
        yield* TestClock.adjust("20 seconds")
        const error = yield* Effect.flip(Fiber.join(report))
        assert.strictEqual(error.reason, "Transient")
        assert.include(error.detail, "shutdown budget of 1m 30s")
        assert.include(error.detail, "timed out after 1m")
        assert.strictEqual((yield* server.received).length, 2)
        assert.deepStrictEqual(yield* server.stored, [])
        // It stays queued: once the backend answers again, it is delivered (once).
        yield* server.otherwise(() => ({ status: 200 }))
        yield* TestClock.adjust("40 seconds")
        yield* awaitPendingSleep
        yield* TestClock.adjust("10 seconds")
        assert.isTrue(yield* callback.awaitOutcome)
        assert.deepStrictEqual((yield* server.stored).map((r) => r.path), ["/training/jobs/7/callback/completion"])
      })))

  it.live("progress piling up behind a slow backend: every epoch delivered once, in order, before the outcome", () =>
    withBackend(fastRetries, (server) =>
      Effect.gen(function*() {
        const callback = yield* Callback
        const gate = yield* Deferred.make<void>()
        yield* server.reply({ status: 200 }, { status: 200, before: Deferred.await(gate) })
        yield* callback.reportStarted({ totalEpochs: 10 })
        yield* callback.reportProgress({ epoch: 1, totalEpochs: 10, metrics: { loss: 1 } })
        yield* server.awaitReceived(2)
        for (let epoch = 2; epoch <= 5; epoch++) {
          yield* callback.reportProgress({ epoch, totalEpochs: 10, metrics: { loss: 1 / epoch } })
        }
        const completion = yield* Effect.fork(callback.reportCompleted({ finalMetrics: { loss: 0.2 } }))
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(completion)
        const stored = yield* server.stored
        assert.deepStrictEqual(
          stored.map((r) => [r.path.split("/").pop(), (r.body as { current_epoch?: number }).current_epoch]),
          [["progress", 0], ["progress", 1], ["progress", 2], ["progress", 3], ["progress", 4], ["progress", 5], ["completion", undefined]]
        )
        assert.strictEqual((yield* server.received).length, 7)
      })))
})
