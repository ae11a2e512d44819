/**
 * The generic batching shipper (ClearML's events): bounded buffer dropping the oldest,
 * wake-up at `wakeAt` items, the interval, `flush`, the bounded last shipment on close,
 * and the counters.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope, TestClock } from "effect"
import { makeBatchShipper, positiveInteger } from "../src/internal/batchShipper.js"

const recording = (undelivered: (items: ReadonlyArray<number>) => number = () => 0) => {
  const batches: Array<ReadonlyArray<number>> = []
  return {
    batches,
    ship: (items: ReadonlyArray<number>) => Effect.sync(() => (batches.push(items), undelivered(items)))
  }
}

/** Lets the shipper's fiber run until `done` holds (a bounded number of turns). */
const settle = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100 && !done(); i++) yield* Effect.yieldNow()
  })

const options = { label: "Test", capacity: 5, wakeAt: 3, interval: "10 seconds", closeTimeout: "1 second" } as const

describe("makeBatchShipper", () => {
  it.scoped("a full buffer drops the oldest items, in order and counted; flush ships the rest oldest first", () =>
    Effect.gen(function*() {
      const sink = recording()
      const shipper = yield* makeBatchShipper({ ...options, wakeAt: 100, ship: sink.ship })
      for (let i = 1; i <= 12; i++) shipper.unsafeOffer(i)
      assert.deepStrictEqual(yield* shipper.stats, { queued: 5, shipped: 0, failed: 0, dropped: 7 })
      yield* shipper.flush
      assert.deepStrictEqual(sink.batches, [[8, 9, 10, 11, 12]])
      // After a wrap-around the buffer starts linear again.
      for (let i = 13; i <= 14; i++) yield* shipper.offer(i)
      yield* shipper.flush
      assert.deepStrictEqual(sink.batches, [[8, 9, 10, 11, 12], [13, 14]])
      assert.deepStrictEqual(yield* shipper.stats, { queued: 0, shipped: 7, failed: 0, dropped: 7 })
    }))

  it.scoped("ships on its interval, and at once when wakeAt items wait", () =>
    Effect.gen(function*() {
      const sink = recording()
      const shipper = yield* makeBatchShipper({ ...options, ship: sink.ship })
      yield* shipper.offer(1)
      yield* TestClock.adjust("9 seconds")
      assert.deepStrictEqual(sink.batches, [])
      yield* TestClock.adjust("1 second")
      yield* settle(() => sink.batches.length === 1)
      assert.deepStrictEqual(sink.batches, [[1]])
      yield* shipper.offer(2)
      yield* shipper.offer(3)
      yield* Effect.yieldNow()
      assert.deepStrictEqual(sink.batches, [[1]])
      yield* shipper.offer(4)
      yield* settle(() => sink.batches.length === 2)
      assert.deepStrictEqual(sink.batches, [[1], [2, 3, 4]])
    }))

  it.effect("counts what a shipment could not deliver as failed", () =>
    Effect.gen(function*() {
      const sink = recording((items) => items.filter((n) => n % 2 === 0).length)
      const stats = yield* Effect.scoped(Effect.gen(function*() {
        const shipper = yield* makeBatchShipper({ ...options, wakeAt: 100, ship: sink.ship })
        for (let i = 1; i <= 4; i++) shipper.unsafeOffer(i)
        yield* shipper.flush
        return yield* shipper.stats
      }))
      assert.deepStrictEqual(stats, { queued: 0, shipped: 2, failed: 2, dropped: 0 })
    }))

  it.effect("closing the scope ships what is left, and gives up after closeTimeout", () =>
    Effect.gen(function*() {
      const sink = recording()
      const scope = yield* Scope.make()
      const shipper = yield* Scope.extend(makeBatchShipper({ ...options, wakeAt: 100, ship: sink.ship }), scope)
      yield* shipper.offer(1)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(sink.batches, [[1]])

      const started = yield* Deferred.make<void>()
      const stuck = yield* Scope.make()
      const hanging = yield* Scope.extend(
        makeBatchShipper({ ...options, wakeAt: 100, ship: () => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never) }),
        stuck
      )
      yield* hanging.offer(1)
      const closing = yield* Effect.fork(Scope.close(stuck, Exit.void))
      yield* Deferred.await(started)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
    }))

  it("count options must be positive integers", () => {
    assert.strictEqual(positiveInteger("ClearML", "capacity", 3), 3)
    assert.throws(() => positiveInteger("ClearML", "maxEvents", 0), /ClearML option maxEvents must be a positive integer, got 0/)
    assert.throws(() => positiveInteger("ClearML", "maxEvents", 1.5), /positive integer/)
  })
})
