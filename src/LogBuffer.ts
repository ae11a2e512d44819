/**
 * Buffered shipping of the trainer's log entries to the backend's logs endpoint, and a
 * bridge so the program's own `Effect.log*` calls land there too.
 *
 * @since 0.1.0
 */
import { HttpClient } from "@effect/platform"
import type { Console } from "effect"
import {
  Cause,
  Clock,
  Context,
  Duration,
  Effect,
  FiberRef,
  FiberRefs,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Queue,
  Ref
} from "effect"
import { bestEffortWithin } from "./internal/bestEffort.js"
import { makeBackendClient } from "./internal/backendClient.js"
import { maxEventTypeLength } from "./internal/callbackBodies.js"
import { BoundedLogQueue, type LogBufferEntry, type LogBufferLevel } from "./internal/logBufferQueue.js"
import { JobContext } from "./JobContext.js"
import { CheckpointEvents } from "./Storage.js"

export type { LogBufferEntry, LogBufferLevel } from "./internal/logBufferQueue.js"

/**
 * The backend's `event_type` of an entry: at most 10 characters (the backend stores it in a
 * column of 10; a longer one fails its insert). The usual ones are listed; any other string
 * is cut to its first 10 characters when the entry is made.
 */
export type LogEventType =
  | "trainer"
  | "training"
  | "validation"
  | "checkpoint"
  | "error"
  | "dataset"
  | "inference"
  | "export"
  | "evaluation"
  | (string & {})

/** Where an entry comes from and what it carries besides its message. */
export interface LogBufferEntryOptions {
  /** The backend's `event_type` (default `trainer`), at most 10 characters (see `LogEventType`). */
  readonly source?: LogEventType
  /** Structured data; must be JSON-serializable (anything else is replaced by its text). */
  readonly data?: Readonly<Record<string, unknown>>
}

/** Counters of the live buffer (all zero for the no-op and test twins). */
export interface LogBufferStats {
  /** Entries waiting to be shipped. */
  readonly buffered: number
  /** Entries the backend accepted. */
  readonly shipped: number
  /** Entries that still failed after the retries (or were left when the close timed out). */
  readonly failed: number
  /** Entries dropped because the buffer was full. */
  readonly dropped: number
}

/** The log buffer service. No method ever fails: shipping problems are counted and reported. */
export interface LogBufferService {
  /** Buffers one entry (an `ERROR` also wakes the shipper at once). */
  readonly log: (level: LogBufferLevel, message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** `log("DEBUG", ...)`. */
  readonly debug: (message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** `log("INFO", ...)`. */
  readonly info: (message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** `log("WARNING", ...)`. */
  readonly warning: (message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** `log("ERROR", ...)`. */
  readonly error: (message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** Ships everything buffered now and waits for it. */
  readonly flush: Effect.Effect<void>
  /** The buffer's counters. */
  readonly stats: Effect.Effect<LogBufferStats>
  /**
   * Synchronous append with an explicit time, for code that cannot run an effect (an
   * Effect `Logger`). Prefer `log`.
   */
  readonly unsafeLog: (level: LogBufferLevel, message: string, options: LogBufferEntryOptions, date: Date) => void
}

/** Thresholds of the live buffer. */
export interface LogBufferOptions {
  /** Interval of the background flush. Default 5 s. */
  readonly flushEvery?: Duration.DurationInput
  /** Buffered entries that trigger a flush, and the most entries taken per round. Default 50. */
  readonly maxBatch?: number
  /** Most entries held while the backend is slow or down. Default 10,000. */
  readonly capacity?: number
  /** Requests in flight at once. Default 4. */
  readonly concurrency?: number
  /** Time the final flush on scope close may take. Default 15 s. */
  readonly closeTimeout?: Duration.DurationInput
}

/** True inside the shipper, so the `Logger` bridge never feeds the shipper's own logs back in. */
const insideShipper = FiberRef.unsafeMake(false)

const defaultSource = "trainer"

const jsonSafe = (data: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> => {
  if (data === undefined) return {}
  try {
    const text = JSON.stringify(data, (_key, value) => typeof value === "bigint" ? value.toString() : value)
    return text === undefined ? {} : JSON.parse(text) as Record<string, unknown>
  } catch (e) {
    return { unserializable: e instanceof Error ? e.message : String(e) }
  }
}

/** An `event_type` the backend can store: cut to 10 characters (`maxEventTypeLength`), never empty. */
export const boundedEventType = (source: string | undefined): string => {
  const text = (source ?? "").trim()
  if (text === "") return defaultSource
  const chars = Array.from(text) // whole code points, so a cut never splits a surrogate pair
  while (chars.join("").length > maxEventTypeLength) chars.pop()
  return chars.join("")
}

const makeEntry = (level: LogBufferLevel, message: string, options: LogBufferEntryOptions, date: Date): LogBufferEntry => ({
  level,
  message,
  source: boundedEventType(options.source),
  data: jsonSafe(options.data),
  timestamp: date.toISOString()
})

const fromUnsafe = (unsafeLog: LogBufferService["unsafeLog"]): LogBufferService => {
  const log = (level: LogBufferLevel, message: string, options: LogBufferEntryOptions = {}) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => unsafeLog(level, message, options, new Date(now))))
  return {
    log,
    debug: (message, options) => log("DEBUG", message, options),
    info: (message, options) => log("INFO", message, options),
    warning: (message, options) => log("WARNING", message, options),
    error: (message, options) => log("ERROR", message, options),
    flush: Effect.void,
    stats: Effect.succeed({ buffered: 0, shipped: 0, failed: 0, dropped: 0 }),
    unsafeLog
  }
}

const noop: LogBufferService = fromUnsafe(() => {})

const positiveInteger = (name: string, value: number): number => {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`LogBuffer option ${name} must be a positive integer, got ${value}`)
  return value
}

/**
 * The wire body of one entry.
 */
const entryBody = (jobId: number, entry: LogBufferEntry) => ({
  job_id: jobId,
  event_type: entry.source,
  message: entry.message,
  level: entry.level,
  data: entry.data,
  timestamp: entry.timestamp
})

/**
 * Builds the live buffer. A flush takes entries in arrival order, at most `maxBatch` at a
 * time, and starts their requests in that order with at most `concurrency` in flight; so
 * requests start in order and every entry carries its own timestamp, while one slow entry
 * does not hold up the rest. Entries wait in the bounded buffer (not in flight) while the
 * backend is down, so the drop policy applies to them.
 */
const makeLive = (options: LogBufferOptions) =>
  Effect.gen(function*() {
    const ctx = yield* JobContext
    // The logs endpoint is a training one: an inference, export or evaluation id would file
    // the entries under the training job that happens to have the same number.
    if (!ctx.isPrimary || ctx.kind !== "training") return noop
    const flushEvery = Duration.decode(options.flushEvery ?? Duration.seconds(5))
    const maxBatch = positiveInteger("maxBatch", options.maxBatch ?? 50)
    const capacity = positiveInteger("capacity", options.capacity ?? 10_000)
    const concurrency = positiveInteger("concurrency", options.concurrency ?? 4)
    const closeTimeout = Duration.decode(options.closeTimeout ?? Duration.seconds(15))
    const backend = makeBackendClient(ctx, yield* HttpClient.HttpClient)
    const stderr: Console.Console = yield* Effect.console
    const path = `/training/jobs/${ctx.jobId}/callback/logs`
    const queue = new BoundedLogQueue(capacity)
    const wake = yield* Queue.dropping<void>(1)
    const lock = yield* Effect.makeSemaphore(1)
    const counters = yield* Ref.make({ shipped: 0, failed: 0 })
    /** Entries taken from the buffer by a flush and not yet shipped or failed. */
    let inFlight = 0
    const warned = { failure: false, drop: false }

    const unsafeLog = (level: LogBufferLevel, message: string, entryOptions: LogBufferEntryOptions, date: Date): void => {
      queue.offer(makeEntry(level, message, entryOptions, date))
      if (level === "ERROR" || queue.size >= maxBatch) Queue.unsafeOffer(wake, undefined)
    }

    const ship = (entry: LogBufferEntry) =>
      backend.post(path, entryBody(ctx.jobId, entry)).pipe(
        Effect.matchCauseEffect({
          onSuccess: () => Ref.update(counters, (c) => ({ ...c, shipped: c.shipped + 1 })),
          onFailure: (cause) =>
            Effect.zipRight(
              Ref.update(counters, (c) => ({ ...c, failed: c.failed + 1 })),
              warned.failure ? Effect.void : Effect.suspend(() => {
                warned.failure = true
                return stderr.error(
                  `[trainer-sdk] log shipping to ${path} failed; further failures are only counted: ${
                    Cause.pretty(cause).split("\n")[0]
                  }`
                )
              })
            )
        })
      )

    const reportDrops = Effect.suspend(() => {
      if (warned.drop || queue.dropped === 0) return Effect.void
      warned.drop = true
      return stderr.error(
        `[trainer-sdk] log buffer full (${capacity} entries): dropped ${queue.dropped} oldest DEBUG/INFO entries so far`
      )
    })

    const flushNow = Effect.suspend(() => {
      let remaining = queue.size
      const round: Effect.Effect<void> = Effect.suspend(() => {
        const batch = queue.take(Math.min(maxBatch, remaining))
        if (batch.length === 0) return Effect.void
        remaining -= batch.length
        inFlight += batch.length
        return Effect.zipRight(
          // `ship` settles every outcome itself; only an entry cut short (interrupted) stays in flight.
          Effect.forEach(batch, (entry) => Effect.tap(ship(entry), () => Effect.sync(() => inFlight--)), {
            concurrency,
            discard: true
          }),
          remaining > 0 ? round : Effect.void
        )
      })
      return Effect.zipRight(round, reportDrops)
    }).pipe(lock.withPermits(1), Effect.locally(insideShipper, true))

    const stats = Effect.map(Ref.get(counters), (c) => ({ ...c, buffered: queue.size, dropped: queue.dropped }))

    yield* Effect.race(Queue.take(wake), Effect.sleep(flushEvery)).pipe(
      Effect.zipRight(flushNow),
      Effect.forever,
      Effect.forkScoped
    )

    // Added after the fork, so it runs first on close: it waits for a flush in progress
    // (through the lock), then ships the rest, before the background fiber is interrupted.
    yield* Effect.addFinalizer(() =>
      bestEffortWithin(closeTimeout)(flushNow).pipe(
        Effect.zipRight(Effect.suspend(() => {
          const left = queue.size + inFlight
          return Effect.flatMap(Ref.updateAndGet(counters, (c) => ({ ...c, failed: c.failed + left })), (c) =>
            c.failed === 0 && queue.dropped === 0
              ? Effect.void
              : stderr.error(
                `[trainer-sdk] log shipping summary: ${c.shipped} shipped, ${c.failed} not delivered${
                  left > 0 ? ` (${left} left when closing timed out)` : ""
                }, ${queue.dropped} dropped (buffer full)`
              ))
        }))
      )
    )

    return { ...fromUnsafe(unsafeLog), flush: flushNow, stats } satisfies LogBufferService
  })

const effectLevel = (level: LogLevel.LogLevel): LogBufferLevel | undefined =>
  level.ordinal >= LogLevel.None.ordinal
    ? undefined
    : level.ordinal >= LogLevel.Error.ordinal
    ? "ERROR"
    : level.ordinal >= LogLevel.Warning.ordinal
    ? "WARNING"
    : level.ordinal >= LogLevel.Info.ordinal
    ? "INFO"
    : "DEBUG"

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => {
    if (typeof part === "string") return part
    try {
      return JSON.stringify(part) ?? String(part)
    } catch {
      return String(part)
    }
  }).join(" ")
}

/**
 * An Effect `Logger` writing into the given buffer: levels map to DEBUG/INFO/WARNING/ERROR,
 * annotations become `data` (an `event_type` annotation sets the entry's source), a
 * non-empty cause is added as `data.cause`. Logs emitted by the shipper itself are skipped.
 */
export const makeLogBufferLogger = (buffer: LogBufferService): Logger.Logger<unknown, void> =>
  Logger.make(({ annotations, cause, context, date, logLevel, message }) => {
    if (FiberRefs.getOrDefault(context, insideShipper)) return
    const level = effectLevel(logLevel)
    if (level === undefined) return
    const data: Record<string, unknown> = {}
    let source: string | undefined
    for (const [key, value] of HashMap.toEntries(annotations)) {
      if (key === "event_type" && typeof value === "string") source = value
      else data[key] = value
    }
    if (!Cause.isEmpty(cause)) data["cause"] = Cause.pretty(cause)
    buffer.unsafeLog(level, messageText(message), source === undefined ? { data } : { source, data }, date)
  })

/** Access to what `LogBuffer.layerTest` recorded. */
export class LogBufferTest extends Context.Tag("trainer-sdk/LogBufferTest")<LogBufferTest, {
  /** Every entry logged so far, in order. */
  readonly entries: Effect.Effect<ReadonlyArray<LogBufferEntry>>
}>() {}

/** The log buffer: `const logs = yield* LogBuffer; yield* logs.info("epoch 3 done")`. */
export class LogBuffer extends Context.Tag("trainer-sdk/LogBuffer")<LogBuffer, LogBufferService>() {
  /**
   * The live buffer with the given thresholds, shipping to `CALLBACK_URL` on rank 0 of a
   * training job (a no-op on other ranks and for inference, export and evaluation jobs,
   * which have no logs endpoint). Its final flush runs when the layer's scope closes, whether the
   * program succeeded, failed or was interrupted.
   */
  static readonly layerWith = (
    options: LogBufferOptions = {}
  ): Layer.Layer<LogBuffer, never, JobContext | HttpClient.HttpClient> => Layer.scoped(LogBuffer, makeLive(options))

  /** The live buffer with the default thresholds (50 entries, 5 s, 10,000 held). */
  static readonly layer: Layer.Layer<LogBuffer, never, JobContext | HttpClient.HttpClient> = LogBuffer.layerWith()

  /** A buffer that discards everything. */
  static readonly layerNoop: Layer.Layer<LogBuffer> = Layer.succeed(LogBuffer, noop)

  /** An in-memory buffer; read what was logged through `LogBufferTest`. */
  static readonly layerTest: Layer.Layer<LogBuffer | LogBufferTest> = Layer.effectContext(Effect.sync(() => {
    const entries: Array<LogBufferEntry> = []
    return Context.make(LogBuffer, fromUnsafe((level, message, options, date) => {
      entries.push(makeEntry(level, message, options, date))
    })).pipe(Context.add(LogBufferTest, { entries: Effect.sync(() => entries.slice()) }))
  }))

  /** The Effect `Logger` bridge for the buffer in context (see `makeLogBufferLogger`). */
  static readonly logger: Effect.Effect<Logger.Logger<unknown, void>, never, LogBuffer> = Effect.map(
    LogBuffer,
    makeLogBufferLogger
  )

  /**
   * Storage's checkpoint seam: each checkpoint saved with metrics becomes an entry with
   * `event_type: "checkpoint"`, message `Saved {type} checkpoint`, data `{s3_uri, metrics}`.
   */
  static readonly checkpointEvents: Layer.Layer<CheckpointEvents, never, LogBuffer> = Layer.effect(
    CheckpointEvents,
    Effect.map(LogBuffer, (logs) => ({
      checkpointSaved: (event) =>
        logs.info(`Saved ${event.checkpointType} checkpoint`, {
          source: "checkpoint",
          data: { s3_uri: event.uri, metrics: event.metrics }
        })
    }))
  )

  /** Adds the bridge to the program's loggers, so `Effect.logInfo(...)` is shipped too. */
  static readonly layerLogger: Layer.Layer<never, never, LogBuffer> = Logger.addEffect(LogBuffer.logger)
}
