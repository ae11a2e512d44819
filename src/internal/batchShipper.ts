/**
 * The one batching shipper, modelled on the OTLP exporter of `@effect/opentelemetry`: items
 * are held in a bounded in-memory buffer (when it is full the oldest item is dropped, in
 * constant time), one background fiber ships them every `interval` or as soon as `wakeAt`
 * items wait, `flush` ships what is buffered now, and closing the scope ships the rest
 * within `closeTimeout`. Shipping never fails: what a batch could not deliver is counted.
 */
import { Duration, Effect, Queue, type Scope } from "effect"
import { bestEffortWithin } from "./bestEffort.js"
import { isPositiveInteger } from "./jobConfig.js"

/** Settings of a shipper. */
export interface BatchShipperOptions<A> {
  /** What is shipped, for messages (`ClearML option capacity ...`) and the flush span. */
  readonly label: string
  /** Most items held; beyond it the oldest is dropped (counted as `dropped`). A positive integer. */
  readonly capacity: number
  /** Items waiting that wake the shipper before its interval. A positive integer. */
  readonly wakeAt: number
  /** Time between two background shipments. */
  readonly interval: Duration.DurationInput
  /** Time the last shipment may take when the scope closes. */
  readonly closeTimeout: Duration.DurationInput
  /**
   * Ships the items buffered so far, oldest first; returns how many of them were not
   * delivered (counted as `failed`, the rest as `shipped`). Never fails.
   */
  readonly ship: (items: ReadonlyArray<A>) => Effect.Effect<number>
}

/** Counters of a shipper. */
export interface BatchShipperStats {
  /** Items waiting for the next shipment. */
  readonly queued: number
  /** Items delivered. */
  readonly shipped: number
  /** Items a shipment could not deliver. */
  readonly failed: number
  /** Items dropped because the buffer was full. */
  readonly dropped: number
}

/** A running shipper. */
export interface BatchShipper<A> {
  /** Buffers one item (synchronously; never waits on the network). */
  readonly unsafeOffer: (item: A) => void
  /** `unsafeOffer` as an effect. */
  readonly offer: (item: A) => Effect.Effect<void>
  /** Ships everything buffered now and waits for it (one shipment at a time). */
  readonly flush: Effect.Effect<void>
  /** The shipper's counters. */
  readonly stats: Effect.Effect<BatchShipperStats>
}

/** A bounded FIFO: appending to a full one overwrites the oldest item (no O(n) shift). */
class BoundedBuffer<A> {
  private items: Array<A> = []
  /** Index of the oldest item; non-zero only while the buffer is full. */
  private head = 0
  constructor(private readonly capacity: number) {}
  get size(): number {
    return this.items.length
  }
  /** Appends `item`; returns whether the oldest item was dropped to make room. */
  push(item: A): boolean {
    if (this.items.length < this.capacity) {
      this.items.push(item)
      return false
    }
    this.items[this.head] = item
    this.head = (this.head + 1) % this.capacity
    return true
  }
  /** Removes and returns every item, oldest first. */
  takeAll(): Array<A> {
    const all = this.head === 0 ? this.items : this.items.slice(this.head).concat(this.items.slice(0, this.head))
    this.items = []
    this.head = 0
    return all
  }
}

/**
 * A count option checked to be a positive integer (`capacity`, `wakeAt` of a shipper), else a
 * `RangeError` naming the option: a programming error, so a defect where it is thrown.
 */
export const positiveInteger = (label: string, name: string, value: number): number => {
  if (!isPositiveInteger(value)) throw new RangeError(`${label} option ${name} must be a positive integer, got ${value}`)
  return value
}

/**
 * Starts a shipper in the current scope: its background fiber is forked into the scope, and
 * closing the scope ships what is left (at most `closeTimeout`) before that fiber stops.
 */
export const makeBatchShipper = <A>(options: BatchShipperOptions<A>): Effect.Effect<BatchShipper<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const buffer = new BoundedBuffer<A>(options.capacity)
    const wakeAt = options.wakeAt
    const wake = yield* Queue.dropping<void>(1)
    const lock = yield* Effect.makeSemaphore(1)
    let shipped = 0
    let failed = 0
    let dropped = 0

    const unsafeOffer = (item: A): void => {
      if (buffer.push(item)) dropped++
      if (buffer.size >= wakeAt) Queue.unsafeOffer(wake, undefined)
    }

    const flush = lock.withPermits(1)(Effect.suspend(() => {
      const items = buffer.takeAll()
      return items.length === 0 ? Effect.void : Effect.map(options.ship(items), (undelivered) => {
        failed += undelivered
        shipped += items.length - undelivered
      })
    })).pipe(Effect.withSpan(`${options.label}.flush`))

    yield* Effect.race(Queue.take(wake), Effect.sleep(Duration.decode(options.interval))).pipe(
      Effect.zipRight(flush),
      Effect.forever,
      Effect.forkScoped
    )
    // Added after the fork, so it runs first on close: the last shipment, then the fiber stops.
    yield* Effect.addFinalizer(() => bestEffortWithin(options.closeTimeout)(flush))

    return {
      unsafeOffer,
      offer: (item) => Effect.sync(() => unsafeOffer(item)),
      flush,
      stats: Effect.sync(() => ({ queued: buffer.size, shipped, failed, dropped }))
    }
  })
