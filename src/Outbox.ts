/**
 * The one ordered, durable outbox through which every report of a job reaches the platform
 * backend: lifecycle, progress, validation, results, outcomes and log entries.
 *
 * - Queueing never waits on the network, and can be done synchronously (`unsafeOffer`).
 * - A single sender delivers the reports one at a time, in the order they were queued; a
 *   report the backend acknowledged (2xx) is never sent again.
 * - Transient failures (5xx, 408, 429, connection errors, timeouts) are retried with
 *   jittered exponential backoff (a `Schedule`, at most 5 minutes between attempts) for as
 *   long as the job runs, honouring `Retry-After`.
 * - A 4xx settles the report: its waiter (an outcome) learns it was rejected; any other
 *   report is logged with the status and body and counted.
 * - Memory is bounded in bytes (`CALLBACK_OUTBOX_MEMORY_MB`); beyond it bodies spill to an
 *   append-only file under the job's work dir. Log entries beyond their byte budget are
 *   dropped (counted; a summary entry follows once delivery resumes); nothing else is.
 * - Closing drains what is queued within the shutdown budget (`CALLBACK_SHUTDOWN_BUDGET`,
 *   counted from SIGTERM when there was one); what is left is logged (`Effect.logError`,
 *   annotated `deliveryReportAnnotation`, which the runner also writes to stderr) and kept in
 *   the file, so a restart of the same job delivers it first.
 *
 * @since 0.2.0
 */
import { HttpClient } from "@effect/platform"
import {
  Clock,
  Config,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  Fiber,
  FiberRef,
  Layer,
  Queue,
  Redacted,
  type Scope
} from "effect"
import * as os from "node:os"
import * as nodePath from "node:path"
import { CallbackError, type ConfigError } from "./Errors.js"
import type { JobIdentity, SettingsError } from "./JobContext.js"
import { type AttemptFailure, deliverySchedule, makeBackendClient } from "./internal/backendClient.js"
import { reportOutboxConfig, settingsLayer } from "./internal/envSections.js"
import { callbackPaths, LogEntryBody } from "./internal/callbackBodies.js"
import { encodeBody, isoTimestamp } from "./internal/callbackReports.js"
import { OutboxStore, type OutboxStoreStats } from "./internal/outboxStore.js"
import { makeRedactor, redactJson } from "./internal/redact.js"
import { deliveryReportAnnotation, onShutdownSignal } from "./internal/shutdown.js"


/**
 * The kinds of report the SDK queues. The outbox treats them alike except `outcome` (a 4xx
 * on it is a delivery failure for its waiter, and it is never kept for a restart) and `log`
 * (droppable); other kinds may be added.
 */
export type ReportKind = "started" | "progress" | "validation" | "result" | "outcome" | "log" | (string & {})

/**
 * How a report may be dropped under pressure: `never` (lifecycle, progress, validation,
 * results, outcomes), `low` (DEBUG/INFO log entries), `high` (WARNING/ERROR log entries, which
 * get 25% more room than `low` ones).
 */
export type OutboxDropClass = "never" | "low" | "high"

/** One report to queue: kind, path (relative to `CALLBACK_URL`), the encoded JSON body, and whether it may be dropped. */
export interface OutboxOffer {
  readonly kind: ReportKind
  readonly path: string
  /**
   * The body as a JSON value (already encoded through its schema), or a function making
   * it: a droppable report is then only built when it is not dropped at once (a function
   * returning `undefined` queues nothing).
   */
  readonly body: unknown
  /** A lower bound of the body's size in bytes, to drop a log entry before building it. Default 0. */
  readonly minBytes?: number
  /** Default `never`; log entries are `low` (DEBUG/INFO) or `high` (WARNING/ERROR). */
  readonly drop?: OutboxDropClass
}

/** Counters of the outbox. */
export interface ReportOutboxStats extends OutboxStoreStats {
  /** Reports the backend acknowledged, by kind. */
  readonly delivered: Readonly<Record<string, number>>
  /** Reports the backend refused with a 4xx, by kind. */
  readonly rejected: Readonly<Record<string, number>>
  /** Log entries given up at the shutdown deadline so that the outcome could still go out. */
  readonly skippedLogs: number
  /** Reports whose body could not be read back from the outbox file. */
  readonly lost: number
}

/** The outbox service. */
export interface ReportOutboxService {
  /**
   * Queues a report synchronously; returns its sequence number, or `undefined` when it was
   * a log entry dropped under pressure (or the process is a secondary rank).
   */
  readonly unsafeOffer: (report: OutboxOffer) => number | undefined
  /** `unsafeOffer` as an effect. */
  readonly offer: (report: OutboxOffer) => Effect.Effect<number | undefined>
  /**
   * Waits until the report `seq` (to `path`) is settled, bounded like `offerAndWait`, and
   * fails like it. The rejection of an `outcome` is remembered, so waiting after it
   * settled still reports it.
   */
  readonly awaitDelivery: (seq: number, path: string) => Effect.Effect<void, CallbackError>
  /**
   * Queues a report and waits until the backend acknowledged it (after everything queued
   * before it), at most the shutdown budget (from `beginShutdown` when it was called, else
   * from now). Fails with the rejection (4xx), or with a `Transient` error naming the last
   * failure when the budget ran out first.
   */
  readonly offerAndWait: (report: OutboxOffer) => Effect.Effect<void, CallbackError>
  /**
   * Waits until every report queued so far is settled, bounded like `offerAndWait`.
   * Returns whether it was.
   */
  readonly drain: Effect.Effect<boolean>
  /** Starts the shutdown budget now, unless it already started (a signal, an earlier call). */
  readonly beginShutdown: Effect.Effect<void>
  /** The outbox's counters. */
  readonly stats: Effect.Effect<ReportOutboxStats>
}

/** Options of `ReportOutbox.layerConfig`. */
export interface ReportOutboxOptions {
  /**
   * Directory of the outbox file (`reports.jsonl`); default `{work dir}/outbox` with the
   * default work dir `{tmpdir}/trainer-sdk/job-{JOB_ID}`. `null`: no file (memory only).
   */
  readonly dir?: string | null
  /** Bytes of log entries queued (memory and file) before DEBUG/INFO entries are dropped. Default 64 MiB. */
  readonly logBytes?: number
  /** Time allowed for one HTTP attempt. Default 60 s (the Python client's read timeout). */
  readonly attemptTimeout?: Duration.DurationInput
}

/** How reports reach the backend (`ReportOutbox.config`): URL, retries, backoff, shutdown budget, outbox memory. */
export interface DeliverySettings {
  /** `CALLBACK_URL`. */
  readonly callbackUrl: string
  /** `CALLBACK_MAX_RETRIES` (0 to 10, default 3). */
  readonly callbackMaxRetries: number
  /** `CALLBACK_RETRY_DELAY` (0.01 to 60 seconds, default 2). */
  readonly callbackRetryDelay: Duration.Duration
  /** `CALLBACK_SHUTDOWN_BUDGET` (1 to 3600 seconds, default 25). */
  readonly callbackShutdownBudget: Duration.Duration
  /** `CALLBACK_OUTBOX_MEMORY_MB` MiB in bytes (1/16 to 1024 MiB, default 4 MiB). */
  readonly outboxMemoryBytes: number
}

/**
 * What the live outbox reads (`ReportOutbox.config`): the delivery variables, the job it
 * reports for (the default work dir, the dropped-logs summary), whether this process is
 * rank 0 (other ranks send nothing) and the secret values it masks in every body.
 */
export interface ReportOutboxSettings extends DeliverySettings, JobIdentity {
  /** Only rank 0 sends (`RANK` / `LOCAL_RANK`). */
  readonly isPrimary: boolean
  /** Values replaced by `***` wherever they occur in a report (the storage and ClearML secrets). */
  readonly secrets: ReadonlyArray<Redacted.Redacted<string>>
}

/** True on the outbox's own fiber, so a `Logger` bridge never queues the outbox's own logs. */
export const insideOutbox: FiberRef.FiberRef<boolean> = FiberRef.unsafeMake(false)

/**
 * The job's default working directory: `{tmpdir}/trainer-sdk/job-{JOB_ID}` for training,
 * `{kind}-{id}` for the other kinds (`inference-7`, `export-3`, `evaluation-12`).
 */
export const defaultWorkDir = (job: JobIdentity): string =>
  nodePath.join(os.tmpdir(), "trainer-sdk", `${job.kind === "training" ? "job" : job.kind}-${job.jobId}`)

/** The outbox file inside its directory. */
export const outboxFileName = "reports.jsonl"

const kindLabel = (kind: string, count: number): string =>
  kind === "log" ? `${count} log ${count === 1 ? "entry" : "entries"}` : kind === "outcome" ? "the outcome" : `${count} ${kind}`

/** `{progress: 2, log: 30}` as `2 progress, 30 log entries`. */
const describeCounts = (counts: Readonly<Record<string, number>>): string =>
  Object.entries(counts).filter(([, n]) => n > 0).map(([kind, n]) => kindLabel(kind, n)).join(", ")

const increment = (counts: Record<string, number>, kind: string) => {
  counts[kind] = (counts[kind] ?? 0) + 1
}

const inactive: ReportOutboxService = {
  unsafeOffer: () => undefined,
  offer: () => Effect.succeed(undefined),
  awaitDelivery: () => Effect.void,
  offerAndWait: () => Effect.void,
  drain: Effect.succeed(true),
  beginShutdown: Effect.void,
  stats: Effect.succeed({
    queued: {},
    memoryBytes: 0,
    maxMemoryBytes: 0,
    spilled: 0,
    droppedLogs: 0,
    replayed: 0,
    journalError: undefined,
    delivered: {},
    rejected: {},
    skippedLogs: 0,
    lost: 0
  })
}

interface Waiter {
  readonly seq: number
  readonly done: Deferred.Deferred<void, CallbackError>
}

/**
 * Builds the outbox with `settings` over the `HttpClient` in context: opens (and replays)
 * its file, forks the sender into the surrounding scope, and on scope close drains within
 * the budget. Secondary ranks get an outbox that accepts everything and sends nothing.
 */
export const makeReportOutbox = (
  ctx: ReportOutboxSettings,
  options: ReportOutboxOptions = {}
): Effect.Effect<ReportOutboxService, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    if (!ctx.isPrimary) return inactive
    const backend = makeBackendClient(
      ctx,
      yield* HttpClient.HttpClient,
      options.attemptTimeout === undefined ? {} : { attemptTimeout: options.attemptTimeout }
    )
    const dir = options.dir === undefined ? nodePath.join(defaultWorkDir(ctx), "outbox") : options.dir
    const journalPath = dir === null ? undefined : nodePath.join(dir, outboxFileName)
    const store = new OutboxStore({
      memoryBytes: ctx.outboxMemoryBytes,
      logBytes: options.logBytes ?? 64 * 1024 * 1024,
      ...(journalPath === undefined ? {} : { journalPath })
    })
    store.open()
    const budgetMillis = Duration.toMillis(ctx.callbackShutdownBudget)
    const redact = makeRedactor(ctx.secrets.map(Redacted.value))
    const wake = yield* Queue.sliding<void>(1)
    const delivered: Record<string, number> = {}
    const rejected: Record<string, number> = {}
    let skippedLogs = 0
    let lost = 0
    let droppedSinceSummary = 0
    let lastFailure: CallbackError | undefined
    let deadline: number | undefined
    const waiters: Array<Waiter> = []
    const rejections = new Map<number, CallbackError>()

    const unsafeOffer = (report: OutboxOffer): number | undefined => {
      const drop = report.drop ?? "never"
      if (store.dropsAtLeast(drop, report.minBytes ?? 0)) {
        droppedSinceSummary++
        return undefined
      }
      const value = typeof report.body === "function" ? (report.body as () => unknown)() : report.body
      if (value === undefined) return undefined
      const body = JSON.stringify(redactJson(value, redact))
      const seq = store.offer({ kind: report.kind, path: report.path, body, drop })
      if (seq === undefined) droppedSinceSummary++
      Queue.unsafeOffer(wake, undefined)
      return seq
    }

    /** Every report up to this sequence number is settled. */
    const settledThrough = (): number => (store.peek()?.seq ?? store.lastSeq + 1) - 1

    const notify = () => {
      const through = settledThrough()
      for (let i = waiters.length - 1; i >= 0; i--) {
        const waiter = waiters[i]!
        if (waiter.seq > through) continue
        waiters.splice(i, 1)
        const rejection = rejections.get(waiter.seq)
        Deferred.unsafeDone(waiter.done, rejection === undefined ? Effect.void : Effect.fail(rejection))
      }
    }

    const timeLeft = Effect.map(Clock.currentTimeMillis, (now) => Math.max(0, (deadline ?? now + budgetMillis) - now))

    const beginShutdownAt = (at: number) => {
      if (deadline === undefined) deadline = at + budgetMillis
    }
    const beginShutdown = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => beginShutdownAt(now)))
    yield* Effect.acquireRelease(
      Effect.sync(() => onShutdownSignal(beginShutdownAt, budgetMillis)),
      (unsubscribe) => Effect.sync(unsubscribe)
    )

    /** Waits for `seq` to settle within the budget; the `Transient` error on time-out names the last failure. */
    const awaitSeq = (seq: number, path: string): Effect.Effect<void, CallbackError> =>
      Effect.gen(function*() {
        const done = yield* Deferred.make<void, CallbackError>()
        waiters.push({ seq, done })
        notify()
        const left = yield* timeLeft
        return yield* Deferred.await(done).pipe(
          Effect.timeoutFail({
            duration: Duration.millis(left),
            onTimeout: () =>
              new CallbackError({
                reason: "Transient",
                path,
                detail: `not delivered within the shutdown budget of ${Duration.format(ctx.callbackShutdownBudget)}${
                  lastFailure === undefined ? "" : ` (last failure: ${lastFailure.message})`
                }`
              })
          })
        )
      })

    const dropSummary = Effect.gen(function*() {
      const count = droppedSinceSummary
      droppedSinceSummary = 0
      const path = callbackPaths.trainingLogs(ctx.jobId)
      const body = encodeBody(LogEntryBody, path, {
        job_id: ctx.jobId,
        event_type: "trainer",
        message: `${count} log ${count === 1 ? "entry was" : "entries were"} dropped while the backend was slow or unreachable (the outbox was full)`,
        level: "WARNING",
        data: { dropped: count, dropped_total: store.stats().droppedLogs },
        timestamp: isoTimestamp(yield* Clock.currentTimeMillis)
      })
      if (Either.isRight(body)) store.offer({ kind: "log", path, body: JSON.stringify(body.right), drop: "never" })
    })

    const settle = (entry: NonNullable<ReturnType<OutboxStore["peek"]>>, rejection?: CallbackError) => {
      // Outcomes are few; their rejection is kept for a late waiter. Others only while awaited.
      if (rejection !== undefined && (entry.kind === "outcome" || waiters.some((w) => w.seq === entry.seq))) {
        rejections.set(entry.seq, rejection)
      }
      store.settle(entry)
      notify()
    }

    /**
     * One attempt at `entry`, the report at the head: settles it when it is done with
     * (delivered, rejected, unreadable, or a log entry given up near the deadline), or fails
     * with the transient failure for `retry` to try again after its wait.
     */
    const attemptHead = (entry: NonNullable<ReturnType<OutboxStore["peek"]>>): Effect.Effect<void, AttemptFailure> =>
      Effect.gen(function*() {
        store.flush()
        const now = yield* Clock.currentTimeMillis
        if (entry.drop !== "never" && deadline !== undefined && store.has("outcome") && now >= deadline - budgetMillis / 5) {
          // The outcome matters more than the log lines ahead of it: give them up near the deadline.
          skippedLogs++
          return settle(entry)
        }
        const body = store.body(entry)
        if (body === undefined) {
          lost++
          return settle(entry, new CallbackError({ reason: "Invalid", path: entry.path, detail: "the report could not be read back from the outbox file" }))
        }
        const result = yield* Effect.either(backend.attempt(entry.path, body))
        if (Either.isRight(result)) {
          lastFailure = undefined
          increment(delivered, entry.kind)
          settle(entry)
          if (droppedSinceSummary > 0) yield* dropSummary
          return
        }
        const { error } = result.left
        if (error.reason === "Rejected") {
          increment(rejected, entry.kind)
          if (entry.kind !== "outcome") {
            yield* Effect.logWarning(`${entry.kind} report not kept by the backend: ${error.message}`)
          }
          return settle(entry, error)
        }
        lastFailure = error
        return yield* Effect.fail(result.left)
      })

    /** The retry schedule of every report, restarted for each (see `deliverySchedule`). */
    const retry = deliverySchedule(ctx)

    const sender = Effect.gen(function*() {
      while (true) {
        store.flush()
        const entry = store.peek()
        if (entry === undefined) {
          yield* Queue.take(wake)
          continue
        }
        // The schedule never ends: a report is retried until it is settled or the sender stopped.
        yield* attemptHead(entry).pipe(Effect.retry(retry), Effect.orDie)
      }
    }).pipe(Effect.locally(insideOutbox, true), Effect.withSpan("ReportOutbox.sender"))

    const fiber = yield* Effect.forkScoped(sender)

    const drain = Effect.suspend(() => {
      const seq = store.lastSeq
      return awaitSeq(seq, "").pipe(Effect.as(true), Effect.orElseSucceed(() => settledThrough() >= seq))
    })

    const stats = Effect.sync((): ReportOutboxStats => ({
      ...store.stats(),
      delivered: { ...delivered },
      rejected: { ...rejected },
      skippedLogs,
      lost
    }))

    /**
     * A closing report: logged (never queued in this closing outbox: the `Logger` bridge skips
     * it) and annotated so the runner also writes it to stderr.
     */
    const closingReport = (log: typeof Effect.logError, text: string) =>
      log(text).pipe(Effect.annotateLogs(deliveryReportAnnotation, true), Effect.locally(insideOutbox, true))

    // Added after the fork, so it runs first on close: drain within the budget, then stop the sender.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* beginShutdown
        // In a child fiber: a closing fiber that was itself interrupted (a signal) would cut
        // an interruptible wait short at once; the drain has its own deadline.
        yield* Effect.flatMap(Effect.fork(Effect.interruptible(drain)), Fiber.join)
        yield* Fiber.interrupt(fiber)
        const left = store.stats().queued
        const kept = store.persistAndClose(["outcome"])
        const s = yield* stats
        if (Object.keys(left).length > 0) {
          yield* closingReport(
            Effect.logError,
            `the shutdown budget of ${Duration.format(ctx.callbackShutdownBudget)} ran out; not delivered to the backend: ${
              describeCounts(left)
            }${kept > 0 && journalPath !== undefined ? `; ${kept} kept in ${journalPath} for a restart of this job` : ""}${
              lastFailure === undefined ? "" : ` (last failure: ${lastFailure.message})`
            }`
          )
        }
        const refused = describeCounts(s.rejected)
        if (refused !== "" || s.droppedLogs > 0 || s.skippedLogs > 0 || s.lost > 0 || s.journalError !== undefined) {
          yield* closingReport(
            Effect.logWarning,
            `report delivery summary: ${describeCounts(s.delivered) || "nothing"} delivered${
              refused === "" ? "" : `; rejected by the backend (4xx): ${refused}`
            }${s.droppedLogs > 0 ? `; ${s.droppedLogs} log entries dropped (outbox full)` : ""}${
              s.skippedLogs > 0 ? `; ${s.skippedLogs} log entries given up at the shutdown deadline` : ""
            }${s.lost > 0 ? `; ${s.lost} reports unreadable in the outbox file` : ""}${
              s.journalError === undefined ? "" : `; ${s.journalError}`
            }`
          )
        }
      })
    )

    return {
      unsafeOffer,
      offer: (report) => Effect.sync(() => unsafeOffer(report)),
      awaitDelivery: awaitSeq,
      offerAndWait: (report) =>
        Effect.suspend(() => {
          const seq = unsafeOffer(report)
          return seq === undefined ? Effect.void : awaitSeq(seq, report.path)
        }),
      drain,
      beginShutdown,
      stats
    } satisfies ReportOutboxService
  })

/** The job's report outbox: `const outbox = yield* ReportOutbox`. Shared by `Callback` and `LogBuffer`. */
export class ReportOutbox extends Context.Tag("trainer-sdk/ReportOutbox")<ReportOutbox, ReportOutboxService>() {
  /**
   * What the outbox reads through `Config`: the delivery variables (`CALLBACK_URL`,
   * `CALLBACK_MAX_RETRIES`, `CALLBACK_RETRY_DELAY`, `CALLBACK_SHUTDOWN_BUDGET`,
   * `CALLBACK_OUTBOX_MEMORY_MB`), the job's id variable, `RANK` / `LOCAL_RANK` and the secret
   * variables it masks. The job context composes the same sections.
   */
  static readonly config: Config.Config<ReportOutboxSettings> = reportOutboxConfig

  /**
   * The live outbox with `settings` (values, e.g. a job context, or a `Config`, where an
   * invalid value is a `ConfigError` naming the variable) and `options`.
   */
  static readonly layerConfig = <S extends ReportOutboxSettings | Config.Config<ReportOutboxSettings>>(
    settings: S,
    options: ReportOutboxOptions = {}
  ): Layer.Layer<ReportOutbox, SettingsError<S>, HttpClient.HttpClient> =>
    settingsLayer(ReportOutbox, settings, (resolved: ReportOutboxSettings) => makeReportOutbox(resolved, options))

  /** `layerConfig(ReportOutbox.config)`: the live outbox with its file under the default work dir (see `ReportOutboxOptions.dir`). */
  static readonly layer: Layer.Layer<ReportOutbox, ConfigError, HttpClient.HttpClient> = ReportOutbox.layerConfig(
    reportOutboxConfig
  )

  /** The live outbox from `ReportOutbox.config` without a file (memory only), for tests and tools. */
  static readonly layerMemory: Layer.Layer<ReportOutbox, ConfigError, HttpClient.HttpClient> = ReportOutbox.layerConfig(
    reportOutboxConfig,
    { dir: null }
  )
}
