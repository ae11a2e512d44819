/**
 * Buffered shipping of the trainer's log entries to the backend's logs endpoint, and a
 * bridge so the program's own `Effect.log*` calls land there too.
 *
 * @since 0.1.0
 */
import { Cause, Clock, type Config, Context, Effect, Either, FiberRefs, HashMap, Layer, Logger, LogLevel, Schema } from "effect"
import { type ConfigError, thrownMessage } from "./Errors.js"
import { callbackPaths, LogEntryBody, maxEventTypeLength } from "./internal/callbackBodies.js"
import { logBufferSectionConfig, settingsLayer } from "./internal/envSections.js"
import type { JobIdentity, SettingsError } from "./JobContext.js"
import { insideOutbox, ReportOutbox } from "./Outbox.js"
import { CheckpointEvents } from "./Storage.js"

/** The four log levels of the backend's log entries. */
export type LogBufferLevel = "DEBUG" | "INFO" | "WARNING" | "ERROR"

/** One log entry as queued and shipped (the body adds `job_id`). */
export interface LogBufferEntry {
  readonly level: LogBufferLevel
  readonly message: string
  /** The backend's `event_type`: the entry's source or category (`trainer`, `checkpoint`, ...), at most 10 characters. */
  readonly source: string
  readonly data: Readonly<Record<string, unknown>>
  /** ISO-8601 UTC. */
  readonly timestamp: string
}

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
  /** Entries waiting in the outbox. */
  readonly buffered: number
  /** Entries the backend accepted. */
  readonly shipped: number
  /** Entries the backend refused (4xx) or given up at the shutdown deadline. */
  readonly failed: number
  /** Entries dropped because the outbox's log budget was full. */
  readonly dropped: number
}

/** The log buffer service. No method ever fails: shipping problems are counted and reported. */
export interface LogBufferService {
  /** Queues one entry in the job's outbox (never waits on the network). */
  readonly log: (level: LogBufferLevel, message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** `log("DEBUG", ...)`. */
  readonly debug: (message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** `log("INFO", ...)`. */
  readonly info: (message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** `log("WARNING", ...)`. */
  readonly warning: (message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** `log("ERROR", ...)`. */
  readonly error: (message: string, options?: LogBufferEntryOptions) => Effect.Effect<void>
  /** Waits until everything queued so far is delivered (at most the shutdown budget). */
  readonly flush: Effect.Effect<void>
  /** The buffer's counters. */
  readonly stats: Effect.Effect<LogBufferStats>
  /**
   * Synchronous append with an explicit time, for code that cannot run an effect (an
   * Effect `Logger`, a framework hook). Prefer `log`.
   */
  readonly unsafeLog: (level: LogBufferLevel, message: string, options: LogBufferEntryOptions, date: Date) => void
}

const defaultSource = "trainer"


const jsonSafe = (data: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> => {
  if (data === undefined) return {}
  try {
    const text = JSON.stringify(data, (_key, value) => typeof value === "bigint" ? value.toString() : value)
    return text === undefined ? {} : JSON.parse(text) as Record<string, unknown>
  } catch (e) {
    return { unserializable: thrownMessage(e) }
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

const encodeEntry = Schema.encodeEither(LogEntryBody)

/**
 * What the live buffer reads (`LogBuffer.config`): the job whose log it writes (only a
 * training job has one) and whether this process is rank 0.
 */
export interface LogBufferSettings extends JobIdentity {
  /** Only rank 0 ships (`RANK` / `LOCAL_RANK`). */
  readonly isPrimary: boolean
}

/**
 * Builds the live buffer over the job's outbox: each entry is encoded through the log
 * body's schema and queued behind every report queued before it, so the backend shows
 * the lines in the order they were logged, interleaved with progress as it happened.
 */
const makeLive = (ctx: LogBufferSettings) => Effect.gen(function*() {
  // The logs endpoint is a training one: an inference, export or evaluation id would file
  // the entries under the training job that happens to have the same number.
  if (!ctx.isPrimary || ctx.kind !== "training") return noop
  const outbox = yield* ReportOutbox
  const path = callbackPaths.trainingLogs(ctx.jobId)
  let unencodable = 0

  const unsafeLog = (level: LogBufferLevel, message: string, entryOptions: LogBufferEntryOptions, date: Date): void => {
    const body = () => {
      const entry = makeEntry(level, message, entryOptions, date)
      const encoded = encodeEntry({
        job_id: ctx.jobId,
        event_type: entry.source,
        message: entry.message,
        level: entry.level,
        data: entry.data,
        timestamp: entry.timestamp
      })
      // Every field is built to the schema above; an entry it still refuses is counted as failed, never a crash.
      if (Either.isRight(encoded)) return encoded.right
      unencodable++
      return undefined
    }
    outbox.unsafeOffer({
      kind: "log",
      path,
      body,
      // A UTF-8 body is at least as many bytes as its message has UTF-16 code units.
      minBytes: message.length,
      drop: level === "DEBUG" || level === "INFO" ? "low" : "high"
    })
  }

  const stats = Effect.map(outbox.stats, (s): LogBufferStats => ({
    buffered: s.queued["log"] ?? 0,
    shipped: s.delivered["log"] ?? 0,
    failed: (s.rejected["log"] ?? 0) + s.skippedLogs + unencodable,
    dropped: s.droppedLogs
  }))

  return { ...fromUnsafe(unsafeLog), flush: Effect.asVoid(outbox.drain), stats } satisfies LogBufferService
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
 * non-empty cause is added as `data.cause`. Logs emitted by the outbox's sender itself are skipped.
 */
export const makeLogBufferLogger = (buffer: LogBufferService): Logger.Logger<unknown, void> =>
  Logger.make(({ annotations, cause, context, date, logLevel, message }) => {
    if (FiberRefs.getOrDefault(context, insideOutbox)) return
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

/** Access to what `LogBuffer.layerTest()` recorded. */
export class LogBufferTest extends Context.Tag("trainer-sdk/LogBufferTest")<LogBufferTest, {
  /** Every entry logged so far, in order. */
  readonly entries: Effect.Effect<ReadonlyArray<LogBufferEntry>>
}>() {}

/** The log buffer: `const logs = yield* LogBuffer; yield* logs.info("epoch 3 done")`. */
export class LogBuffer extends Context.Tag("trainer-sdk/LogBuffer")<LogBuffer, LogBufferService>() {
  /**
   * The live buffer over the job's `ReportOutbox` (shared with `Callback`) with `settings`
   * (values, e.g. a job context, or a `Config`), on rank 0 of a training job (a no-op on
   * other ranks and for inference, export and evaluation jobs, which have no logs
   * endpoint). What is queued is delivered when the outbox closes, within the shutdown
   * budget, whether the program succeeded, failed or was interrupted.
   */
  static readonly layerConfig = <S extends LogBufferSettings | Config.Config<LogBufferSettings>>(
    settings: S
  ): Layer.Layer<LogBuffer, SettingsError<S>, ReportOutbox> => settingsLayer(LogBuffer, settings, makeLive)

  /** What the live buffer reads through `Config`: the job's id variable and `RANK` / `LOCAL_RANK`. */
  static readonly config: Config.Config<LogBufferSettings> = logBufferSectionConfig

  /** `layerConfig(LogBuffer.config)`: the live buffer configured from the environment. */
  static readonly layer: Layer.Layer<LogBuffer, ConfigError, ReportOutbox> = LogBuffer.layerConfig(logBufferSectionConfig)

  /** A buffer that discards everything. */
  static readonly layerNoop: Layer.Layer<LogBuffer> = Layer.succeed(LogBuffer, noop)

  /** An in-memory buffer; read what was logged through `LogBufferTest`. */
  static readonly layerTest = (): Layer.Layer<LogBuffer | LogBufferTest> => LogBuffer.sharedTestLayer

  /** The one instance `layerTest()` returns, so a layer provided twice is built once. */
  private static readonly sharedTestLayer: Layer.Layer<LogBuffer | LogBufferTest> = Layer.effectContext(Effect.sync(() => {
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
