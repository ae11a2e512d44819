/**
 * Optional experiment tracking in ClearML: scalars, console text, hyper-parameters and the
 * task's lifecycle, batched to the ClearML REST API. Enabled only when the three
 * `CLEARML_API_*` variables are set; it never fails training (one warning, then silence).
 * With `CLEARML_TASK_ID` set (the backend created the job's task), events go into that task
 * and no task is created; its status is left to the backend.
 *
 * @since 0.1.0
 */
import { HttpClient } from "@effect/platform"
import { Cause, Clock, type Config, Context, Deferred, Duration, Effect, Exit, Layer, Option, Schedule, Schema } from "effect"
import { hostname } from "node:os"
import { type ConfigError, failureMessage } from "./Errors.js"
import type { CallbackMetrics } from "./Callback.js"
import { bestEffortWithin } from "./internal/bestEffort.js"
import { makeBatchShipper, positiveInteger } from "./internal/batchShipper.js"
import { type ClearMLCallError, CreatedData, IgnoredData, makeClearMLApi } from "./internal/clearmlApi.js"
import {
  type ClearMLEvent,
  clearmlMetricName as metricName,
  eventLine,
  isSendableScalar,
  splitIntoBatches
} from "./internal/clearmlEvents.js"
import { clearmlServiceConfig, settingsLayer } from "./internal/envSections.js"
import type { ClearMLSettings, SettingsError } from "./JobContext.js"

/**
 * The platform's naming rule: a key with `/` is split at the first `/` into series and
 * title (`"val/mAP50"` → series `val`, title `mAP50`); a key without one is the title of
 * the `train` series.
 */
export const clearmlMetricName = (key: string): ClearMLMetricName => metricName(key)

/** Where a platform metric key lands in ClearML. */
export interface ClearMLMetricName {
  /** ClearML `metric` (the plot title). */
  readonly title: string
  /** ClearML `variant` (the series in the plot). */
  readonly series: string
}

/** Console text levels ClearML accepts. */
export type ClearMLTextLevel = "debug" | "info" | "warning" | "error" | "critical"

/** One scalar as reported. */
export interface ClearMLScalar {
  readonly title: string
  readonly series: string
  readonly value: number
  readonly iteration: number
}

/** Counters of the live service (zero for the no-op). */
export interface ClearMLStats {
  /** Events waiting for the next batch. */
  readonly queued: number
  /** Events the server accepted. */
  readonly sent: number
  /** Scalars skipped because the value was NaN/Infinity or the iteration not a whole number. */
  readonly skipped: number
  /** Events lost to failed requests, oversized lines or a full queue. */
  readonly undelivered: number
}

/** The ClearML service. No method fails: problems are warned about once and tracking goes on. */
export interface ClearMLService {
  /** Queues one scalar: plot `title`, series `series`, at `iteration`. */
  readonly reportScalar: (title: string, series: string, value: number, iteration: number) => Effect.Effect<void>
  /**
   * Queues each metric under the platform's naming rule (`val/mAP50` → series `val`, title `mAP50`);
   * `null` (a missing value) is left out, NaN and ±Infinity are skipped (counted in `stats`).
   */
  readonly reportMetrics: (metrics: CallbackMetrics, iteration: number) => Effect.Effect<void>
  /** Queues a console line (default level `info`). */
  readonly reportText: (message: string, level?: ClearMLTextLevel) => Effect.Effect<void>
  /** Records hyper-parameters in the task's `General` section (values as strings). */
  readonly reportHyperParams: (params: Readonly<Record<string, unknown>>) => Effect.Effect<void>
  /** Marks the task started. */
  readonly started: Effect.Effect<void>
  /** Flushes, then marks the task completed. */
  readonly completed: Effect.Effect<void>
  /** Flushes, then marks the task failed with the reason. */
  readonly failed: (reason: string) => Effect.Effect<void>
  /** Flushes, then marks the task stopped (SIGTERM/SIGINT) with the reason. */
  readonly stopped: (reason: string) => Effect.Effect<void>
  /** Sends every queued event now and waits for it. */
  readonly flush: Effect.Effect<void>
  /** The task's page when `CLEARML_WEB_HOST` is set (waits for the task to exist). */
  readonly webLink: Effect.Effect<Option.Option<string>>
  /** The service's counters. */
  readonly stats: Effect.Effect<ClearMLStats>
}

/**
 * What the live service reads (`ClearML.config`): the ClearML settings (`None`: tracking
 * off) and whether this process is rank 0 (other ranks track nothing).
 */
export interface ClearMLServiceSettings {
  /** Set when the three `CLEARML_API_*` variables are. */
  readonly clearml: Option.Option<ClearMLSettings>
  /** Only rank 0 tracks (`RANK` / `LOCAL_RANK`). */
  readonly isPrimary: boolean
}

/** Options of the live service. */
export interface ClearMLOptions {
  /** The `X-ClearML-Worker` value. Default: the host name. */
  readonly worker?: string
  /** ClearML task type. Default `training`. */
  readonly taskType?: "training" | "inference" | "data_processing" | "custom"
  /** Interval of the background flush. Default 5 s. */
  readonly flushEvery?: Duration.DurationInput
  /** Queued events that trigger a flush. Default 100. */
  readonly maxEvents?: number
  /** Largest `events.add_batch` request body in bytes. Default 15 MiB. */
  readonly maxRequestBytes?: number
  /** Most events held while the server is slow (oldest dropped first). Default 10,000. */
  readonly capacity?: number
  /** `tasks.ping` after this long without any event sent. Default 30 s. */
  readonly pingEvery?: Duration.DurationInput
  /** Time the final flush and task end may take on scope close. Default 15 s. */
  readonly closeTimeout?: Duration.DurationInput
  /** Time allowed for one request. Default 30 s. */
  readonly attemptTimeout?: Duration.DurationInput
  /** Retries of 429/502/503/504, network errors and timeouts. Default 4, exponential from 500 ms, jittered. */
  readonly retrySchedule?: Schedule.Schedule<unknown, unknown>
  /** Log in again this long before the token expires. Default 5 minutes. */
  readonly refreshMargin?: Duration.DurationInput
}

const hyperParamValue = (value: unknown): string => typeof value === "string" ? value : JSON.stringify(value) ?? String(value)

/** The user-facing methods built on queueing primitives, shared by the live and test services. */
const fromPrimitives = (p: {
  readonly enqueue: (event: ClearMLEvent) => Effect.Effect<void>
  readonly skip: Effect.Effect<void>
}) => {
  const reportScalar = (title: string, series: string, value: number, iteration: number) =>
    isSendableScalar(value, iteration)
      ? Effect.flatMap(Clock.currentTimeMillis, (timestamp) =>
        p.enqueue({ type: "training_stats_scalar", iter: iteration, metric: title, variant: series, value, timestamp }))
      : p.skip
  return {
    reportScalar,
    reportMetrics: (metrics: CallbackMetrics, iteration: number) =>
      Effect.forEach(Object.entries(metrics), ([key, value]) => {
        const { series, title } = clearmlMetricName(key)
        return value === null ? Effect.void : reportScalar(title, series, value, iteration)
      }, { discard: true }),
    reportText: (message: string, level: ClearMLTextLevel = "info") =>
      Effect.flatMap(Clock.currentTimeMillis, (timestamp) => p.enqueue({ type: "log", level, msg: message, timestamp }))
  }
}

const noop: ClearMLService = {
  ...fromPrimitives({ enqueue: () => Effect.void, skip: Effect.void }),
  reportHyperParams: () => Effect.void,
  started: Effect.void,
  completed: Effect.void,
  failed: () => Effect.void,
  stopped: () => Effect.void,
  flush: Effect.void,
  webLink: Effect.succeed(Option.none()),
  stats: Effect.succeed({ queued: 0, sent: 0, skipped: 0, undelivered: 0 })
}

/** `data` of `tasks.get_by_id`: only the task's project is read. */
const TaskData = Schema.Struct({ task: Schema.Struct({ project: Schema.optional(Schema.String) }) })

interface ClearMLTask {
  readonly id: string
  readonly project: string
  readonly webLink: Option.Option<string>
}

const makeLive = (ctx: ClearMLServiceSettings, options: ClearMLOptions) =>
  Effect.gen(function*() {
    if (!ctx.isPrimary || Option.isNone(ctx.clearml)) return noop
    const settings = ctx.clearml.value
    const worker = options.worker ?? hostname()
    const maxRequestBytes = positiveInteger("ClearML", "maxRequestBytes", options.maxRequestBytes ?? 15 * 1024 * 1024)
    const pingEvery = Duration.decode(options.pingEvery ?? Duration.seconds(30))
    const closeTimeout = Duration.decode(options.closeTimeout ?? Duration.seconds(15))
    const api = yield* makeClearMLApi(settings, yield* HttpClient.HttpClient, {
      worker,
      attemptTimeout: Duration.decode(options.attemptTimeout ?? Duration.seconds(30)),
      refreshMargin: Duration.decode(options.refreshMargin ?? Duration.minutes(5)),
      retrySchedule: options.retrySchedule ??
        Schedule.exponential("500 millis", 2).pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(4)))
    })
    const warned = new Set<string>()
    const warnOnce = (kind: string, text: string) =>
      Effect.suspend(() => {
        if (warned.has(kind)) return Effect.void
        warned.add(kind)
        return Effect.logWarning(text)
      })
    const onCallFailure = (e: ClearMLCallError) =>
      warnOnce("call", `${e.message}; training goes on, further ClearML failures are not reported`)

    const state = {
      phase: "created" as "created" | "started" | "ended",
      skipped: 0,
      lastSentAt: yield* Clock.currentTimeMillis
    }

    /** The task's page in the web app, when `CLEARML_WEB_HOST` is set. */
    const taskPage = (project: string, id: string) =>
      Option.map(settings.webHost, (web) => `${web.replace(/\/+$/, "")}/projects/${project}/experiments/${id}/output/log`)

    const task = yield* Deferred.make<Option.Option<ClearMLTask>>()
    /** `CLEARML_TASK_ID`: the backend's own task for this job, reported into; its status stays the backend's to set. */
    const borrowed = settings.taskId
    yield* Effect.gen(function*() {
      if (Option.isSome(borrowed)) {
        const id = borrowed.value
        // The project only serves the web link: a task the server cannot describe is still reported into.
        const project = yield* api.call("tasks.get_by_id", { task: id }, TaskData).pipe(
          Effect.map((data) => Option.fromNullable(data.task.project)),
          Effect.orElseSucceed(() => Option.none<string>())
        )
        return Option.some<ClearMLTask>({
          id,
          project: Option.getOrElse(project, () => ""),
          webLink: Option.flatMap(project, (p) => taskPage(p, id))
        })
      }
      const project = yield* api.projectId(settings.project)
      const { id } = yield* api.call(
        "tasks.create",
        { name: settings.taskName, type: options.taskType ?? "training", project },
        CreatedData
      )
      return Option.some<ClearMLTask>({ id, project, webLink: taskPage(project, id) })
    }).pipe(
      Effect.catchAll((e) => Effect.as(onCallFailure(e), Option.none<ClearMLTask>())),
      Effect.flatMap((result) => Deferred.succeed(task, result)),
      Effect.ensuring(Deferred.succeed(task, Option.none())),
      Effect.forkScoped
    )

    const skip = Effect.suspend(() => {
      state.skipped++
      return warnOnce("skip", "ClearML cannot store NaN/Infinity or a fractional iteration: such scalars are skipped (see stats)")
    })

    /** Sends one `events.add_batch` body of `count` events; returns how many were not delivered. */
    const sendBatch = (id: string, body: string, count: number) =>
      api.addBatch(body).pipe(
        Effect.flatMap((data) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            state.lastSentAt = now
            return data.errors > 0
              ? Effect.as(
                warnOnce("call", `ClearML rejected ${data.errors} event(s) of a batch for task ${id}: ${JSON.stringify(data.errors_info ?? {})}`),
                data.errors
              )
              : Effect.succeed(0)
          })
        ),
        Effect.catchAll((e) => Effect.as(onCallFailure(e), count))
      )

    /** Ships events into the task (once it exists) in bodies under the size cap; returns how many were not delivered. */
    const ship = (events: ReadonlyArray<ClearMLEvent>) =>
      Effect.gen(function*() {
        const current = yield* Deferred.await(task)
        if (Option.isNone(current)) return events.length
        const batches = splitIntoBatches(events.map((e) => eventLine(e, current.value.id, worker)), maxRequestBytes)
        if (batches.oversized > 0) yield* warnOnce("oversize", `ClearML event(s) larger than ${maxRequestBytes} bytes were skipped`)
        let undelivered = batches.oversized
        for (let i = 0; i < batches.bodies.length; i++) {
          undelivered += yield* sendBatch(current.value.id, batches.bodies[i]!, batches.counts[i]!)
        }
        return undelivered
      })

    const shipper = yield* makeBatchShipper({
      label: "ClearML",
      capacity: positiveInteger("ClearML", "capacity", options.capacity ?? 10_000),
      wakeAt: positiveInteger("ClearML", "maxEvents", options.maxEvents ?? 100),
      interval: options.flushEvery ?? Duration.seconds(5),
      closeTimeout,
      ship
    })
    const flush = shipper.flush

    const withTask = (f: (t: ClearMLTask) => Effect.Effect<void>) =>
      Effect.flatMap(Deferred.await(task), Option.match({ onNone: () => Effect.void, onSome: f }))

    const call = (endpoint: string, body: unknown) => Effect.catchAll(Effect.asVoid(api.call(endpoint, body, IgnoredData)), onCallFailure)

    const started = withTask((t) =>
      Effect.suspend(() => {
        if (state.phase !== "created") return Effect.void
        state.phase = "started"
        if (Option.isSome(borrowed)) return Effect.void
        return call("tasks.started", { task: t.id })
      })
    )

    const end = (action: "completed" | "failed" | "stopped", reason: string) =>
      Effect.zipRight(
        flush,
        withTask((t) =>
          Effect.suspend(() => {
            if (state.phase === "ended") return Effect.void
            state.phase = "ended"
            if (Option.isSome(borrowed)) return Effect.void
            return call(`tasks.${action}`, { task: t.id, force: true, status_reason: reason, status_message: reason })
          })
        )
      )

    yield* Effect.sleep(pingEvery).pipe(
      Effect.zipRight(withTask((t) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          if (state.phase !== "started" || now - state.lastSentAt < Duration.toMillis(pingEvery)) return Effect.void
          state.lastSentAt = now
          return call("tasks.ping", { task: t.id })
        })
      )),
      Effect.forever,
      Effect.forkScoped
    )

    // Runs before the background fibers are interrupted: ships what is queued and ends the
    // task by the scope's outcome unless the program already did.
    yield* Effect.addFinalizer((exit) => {
      const [action, reason] = Exit.isSuccess(exit)
        ? ["completed", "completed"] as const
        : Cause.isInterruptedOnly(exit.cause)
        ? ["stopped", "interrupted"] as const
        : ["failed", failureMessage(exit.cause)] as const
      return bestEffortWithin(closeTimeout)(end(action, reason))
    })

    return {
      ...fromPrimitives({ enqueue: shipper.offer, skip }),
      reportHyperParams: (params) =>
        withTask((t) =>
          call("tasks.edit_hyper_params", {
            task: t.id,
            force: true,
            hyperparams: Object.entries(params).map(([name, value]) => ({ section: "General", name, value: hyperParamValue(value) }))
          })
        ),
      started,
      completed: end("completed", "completed"),
      failed: (reason) => end("failed", reason),
      stopped: (reason) => end("stopped", reason),
      flush,
      webLink: Effect.map(Deferred.await(task), Option.flatMap((t) => t.webLink)),
      stats: Effect.map(shipper.stats, (s) => ({
        queued: s.queued,
        sent: s.shipped,
        skipped: state.skipped,
        undelivered: s.failed + s.dropped
      }))
    } satisfies ClearMLService
  })

/** A lifecycle step as `ClearML.layerTest()` records it. */
export interface ClearMLLifecycleStep {
  readonly step: "started" | "completed" | "failed" | "stopped"
  readonly reason?: string
}

/** Access to what `ClearML.layerTest()` recorded. */
export class ClearMLTest extends Context.Tag("trainer-sdk/ClearMLTest")<ClearMLTest, {
  /** Scalars in report order (NaN/Infinity skipped, as the live service does). */
  readonly scalars: Effect.Effect<ReadonlyArray<ClearMLScalar>>
  /** Console lines in report order. */
  readonly texts: Effect.Effect<ReadonlyArray<{ readonly message: string; readonly level: ClearMLTextLevel }>>
  /** Lifecycle steps in order. */
  readonly lifecycle: Effect.Effect<ReadonlyArray<ClearMLLifecycleStep>>
  /** Hyper-parameters as strings, the last report of each name winning. */
  readonly hyperParams: Effect.Effect<Readonly<Record<string, string>>>
}>() {}

/** Experiment tracking: `const clearml = yield* ClearML; yield* clearml.reportMetrics(metrics, epoch)`. */
export class ClearML extends Context.Tag("trainer-sdk/ClearML")<ClearML, ClearMLService>() {
  /**
   * What the live service reads through `Config`: the ClearML variables (`CLEARML_API_HOST`,
   * `CLEARML_API_ACCESS_KEY`, `CLEARML_API_SECRET_KEY`, `CLEARML_WEB_HOST`, `CLEARML_PROJECT`,
   * `CLEARML_TASK_NAME`, `CLEARML_TASK_ID`; tracking is off unless the three API variables
   * are set), the job's id variable only for the default task name, and `RANK` / `LOCAL_RANK`.
   */
  static readonly config: Config.Config<ClearMLServiceSettings> = clearmlServiceConfig

  /**
   * The live service with `settings` (values, e.g. a job context, or a `Config`, where an
   * invalid value is a `ConfigError` naming the variable) and `options` when tracking is on
   * and this is rank 0, else the no-op. Setting up the project and task runs in the
   * background; on scope close it flushes and ends the task (completed, failed or stopped
   * by the scope's outcome) unless the program already ended it.
   */
  static readonly layerConfig = <S extends ClearMLServiceSettings | Config.Config<ClearMLServiceSettings>>(
    settings: S,
    options: ClearMLOptions = {}
  ): Layer.Layer<ClearML, SettingsError<S>, HttpClient.HttpClient> =>
    settingsLayer(ClearML, settings, (resolved: ClearMLServiceSettings) => makeLive(resolved, options))

  /** `layerConfig(ClearML.config)`: the live service configured from the environment, default options. */
  static readonly layer: Layer.Layer<ClearML, ConfigError, HttpClient.HttpClient> = ClearML.layerConfig(clearmlServiceConfig)

  /** Tracking switched off. */
  static readonly layerNoop: Layer.Layer<ClearML> = Layer.succeed(ClearML, noop)

  /** An in-memory twin; read what was reported through `ClearMLTest`. */
  static readonly layerTest = (): Layer.Layer<ClearML | ClearMLTest> => ClearML.sharedTestLayer

  /** The one instance `layerTest()` returns, so a layer provided twice is built once. */
  private static readonly sharedTestLayer: Layer.Layer<ClearML | ClearMLTest> = Layer.effectContext(Effect.sync(() => {
    const scalars: Array<ClearMLScalar> = []
    const texts: Array<{ message: string; level: ClearMLTextLevel }> = []
    const lifecycle: Array<ClearMLLifecycleStep> = []
    const hyperParams: Record<string, string> = {}
    let skipped = 0
    // Like the live task: `started` counts once, and nothing after the task has ended.
    let phase: "created" | "started" | "ended" = "created"
    const step = (s: ClearMLLifecycleStep) =>
      Effect.sync(() => {
        if (phase === "ended" || (s.step === "started" && phase !== "created")) return
        phase = s.step === "started" ? "started" : "ended"
        lifecycle.push(s)
      })
    const service: ClearMLService = {
      ...fromPrimitives({
        enqueue: (event) =>
          Effect.sync(() => {
            if (event.type === "log") texts.push({ message: event.msg, level: event.level })
            else scalars.push({ title: event.metric, series: event.variant, value: event.value, iteration: event.iter })
          }),
        skip: Effect.sync(() => void skipped++)
      }),
      reportHyperParams: (params) =>
        Effect.sync(() => {
          for (const [name, value] of Object.entries(params)) hyperParams[name] = hyperParamValue(value)
        }),
      started: step({ step: "started" }),
      completed: step({ step: "completed" }),
      failed: (reason) => step({ step: "failed", reason }),
      stopped: (reason) => step({ step: "stopped", reason }),
      flush: Effect.void,
      webLink: Effect.succeed(Option.none()),
      stats: Effect.sync(() => ({ queued: 0, sent: scalars.length + texts.length, skipped, undelivered: 0 }))
    }
    return Context.make(ClearML, service).pipe(Context.add(ClearMLTest, {
      scalars: Effect.sync(() => scalars.slice()),
      texts: Effect.sync(() => texts.slice()),
      lifecycle: Effect.sync(() => lifecycle.slice()),
      hyperParams: Effect.sync(() => ({ ...hyperParams }))
    }))
  }))
}
