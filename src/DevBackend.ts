/**
 * A local stand-in for the platform backend, so a trainer can be dry-run without the
 * platform: an HTTP server on 127.0.0.1 that accepts every callback endpoint of the spec,
 * validates each body exactly as strictly as the backend's models (lax types, unknown
 * fields dropped and listed on the event; see internal/backendModels.ts), answers like the
 * backend (200, 422 naming the field, 404) and records what it accepted, in order. Its root
 * URL serves a live dashboard of what it recorded (see `DevBackendHandle.dashboardUrl`).
 *
 * Node-specific (it listens with `@effect/platform-node`'s `NodeHttpServer`).
 *
 * @since 0.1.0
 */
import { FileSystem, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Cause, Clock, Context, Effect, Either, Layer, Option, type Scope, SubscriptionRef } from "effect"
import * as http from "node:http"
import { DevBackendError } from "./Errors.js"
import type {
  BackendCompletion,
  BackendExportCompletion,
  BackendInferenceResults,
  BackendLogEvent,
  BackendOperationStarted,
  BackendProgress,
  BackendTestResults,
  BackendValidation
} from "./internal/backendModels.js"
import { callbackEndpoints, type CallbackEndpointName, matchCallbackEndpoint } from "./internal/callbackBodies.js"
import {
  decodeDevBackendRequest,
  jobStatusAfter,
  summarizeDevBackendEvents
} from "./internal/devBackendEvents.js"
import { withDashboardRoutes } from "./internal/dashboardRoutes.js"
import { projectDashboardState } from "./internal/dashboardState.js"

export {
  devBackendEventKinds,
  formatDevBackendEvent,
  formatDevBackendRejection,
  formatDevBackendSummary,
  summarizeDevBackendEvents
} from "./internal/devBackendEvents.js"

/** The operation a callback belongs to. */
export type DevBackendOperation = "training" | "inference" | "export" | "evaluation"

/** What an accepted callback announced. */
export type DevBackendEventKind = "started" | "progress" | "validation" | "completed" | "failed" | "log"

/**
 * The kind, operation and body (as the backend's model decoded it) of an accepted callback
 * (a discriminated union). Outcomes are told apart by `status` (`failed` is a failure).
 */
export type DevBackendPayload =
  | { readonly kind: "started"; readonly operation: "training"; readonly body: BackendProgress }
  | { readonly kind: "started"; readonly operation: "inference" | "export"; readonly body: BackendOperationStarted }
  | { readonly kind: "progress"; readonly operation: "training"; readonly body: BackendProgress }
  | { readonly kind: "validation"; readonly operation: "training"; readonly body: BackendValidation }
  | { readonly kind: "log"; readonly operation: "training"; readonly body: BackendLogEvent }
  | { readonly kind: "completed" | "failed"; readonly operation: "training"; readonly body: BackendCompletion }
  | { readonly kind: "completed" | "failed"; readonly operation: "inference"; readonly body: BackendInferenceResults }
  | { readonly kind: "completed" | "failed"; readonly operation: "export"; readonly body: BackendExportCompletion }
  | { readonly kind: "completed" | "failed"; readonly operation: "evaluation"; readonly body: BackendTestResults }

/** One accepted callback, as recorded by the dev backend. */
export type DevBackendEvent = DevBackendPayload & {
  /** 1-based position among the accepted events. */
  readonly sequence: number
  /** When it was received (epoch milliseconds, from `Clock`). */
  readonly receivedAt: number
  /** The request path relative to the API base, e.g. `/training/jobs/7/callback/progress`. */
  readonly path: string
  readonly endpoint: CallbackEndpointName
  /** The id in the path (the backend files the callback under it, whatever the body's `job_id`). */
  readonly jobId: number
  /**
   * Top-level fields the backend's model does not have, with their values: accepted and
   * dropped, as the backend does (e.g. a validation report's `is_best`).
   */
  readonly ignored: Readonly<Record<string, unknown>>
}

/** One problem of a rejected body: the JSON path (`""` for the body itself) and what is wrong. */
export interface DevBackendFieldIssue {
  readonly field: string
  readonly problem: string
}

/** A request the dev backend refused, with why. */
export interface DevBackendRejection {
  readonly receivedAt: number
  readonly method: string
  readonly path: string
  /**
   * 404 (no such endpoint), 413 (body too large), 422 (the body breaks the contract) or
   * 500 (the dev backend itself failed on it; the problem is in `issues`).
   */
  readonly status: 404 | 413 | 422 | 500
  /** The job id of the path, when the path names an endpoint. */
  readonly jobId: number | undefined
  /** Empty for a 404; the one problem with the body as a whole (field `""`) for a 413 or 500. */
  readonly issues: ReadonlyArray<DevBackendFieldIssue>
}

/** What the backend knows about one job at the end. */
export interface DevBackendJobSummary {
  /** The id in the paths (a training job and an inference job may share a number: they are separate jobs). */
  readonly jobId: number
  readonly operation: DevBackendOperation
  /** `running`, `completed`, `failed`, or `null` when only logs or validation arrived. */
  readonly status: string | null
  /** The last epoch reported as progress. */
  readonly lastEpoch: number | undefined
  readonly totalEpochs: number | undefined
  /** The failure message, when the job failed. */
  readonly errorMessage: string | undefined
}

/** Counts per kind, rejections and the final state of every job seen. */
export interface DevBackendSummary {
  readonly accepted: number
  readonly rejected: number
  readonly counts: Readonly<Record<DevBackendEventKind, number>>
  readonly jobs: ReadonlyArray<DevBackendJobSummary>
}

/** One epoch's progress report: every numeric metric it carried, by name. */
export interface DashboardEpochPoint {
  readonly epoch: number
  /** When the report arrived (epoch milliseconds). */
  readonly at: number
  readonly metrics: Readonly<Record<string, number>>
}

/** One validation report's primary metric. */
export interface DashboardValidationPoint {
  readonly epoch: number
  readonly value: number | null
  /** What the trainer claimed (`is_best`); the platform ignores it and takes the highest value. */
  readonly reportedBest: boolean
}

/** The latest validation result, as the platform's validation view shows it. */
export interface DashboardValidation {
  readonly epoch: number
  readonly taskType: string
  readonly primaryMetricName: string
  readonly primaryMetricValue: number | null
  readonly metrics: Readonly<Record<string, number | null>>
  readonly overallLoss: number | null
  readonly classNames: ReadonlyArray<string>
  /** Per class, its metrics (the classes in `classNames` order first, then any others). */
  readonly perClassMetrics: ReadonlyArray<{ readonly className: string; readonly metrics: Readonly<Record<string, number | null>> }>
  /** Rows are true classes, columns predicted ones; absent when not sent. */
  readonly confusionMatrix: ReadonlyArray<ReadonlyArray<number>> | null
  readonly visualizationUrls: Readonly<Record<string, string>>
}

/** One log row, in the platform's order (arrival order). */
export interface DashboardLog {
  readonly sequence: number
  readonly at: number
  readonly level: string
  readonly eventType: string
  readonly message: string
  readonly timestamp: string
  readonly data: Readonly<Record<string, unknown>>
  /** A `checkpoint` entry (a checkpoint upload with its metrics). */
  readonly checkpoint: boolean
  /**
   * Its `timestamp` is earlier than that of a row that arrived before it: the platform shows
   * rows in arrival order, so this one appears out of place there.
   */
  readonly outOfOrder: boolean
}

/** A checkpoint the trainer uploaded or named. */
export interface DashboardCheckpoint {
  readonly type: string
  readonly uri: string
  readonly metrics: Readonly<Record<string, number | null>>
  readonly at: number
  /** Where it was learned from: a checkpoint log entry, a progress or the completion report. */
  readonly source: "log" | "progress" | "completion"
}

/** A request the dev backend refused, with the fields the backend would complain about. */
export interface DashboardRejection {
  readonly at: number
  readonly method: string
  readonly path: string
  readonly status: number
  readonly jobId: number | null
  readonly issues: ReadonlyArray<DevBackendFieldIssue>
}

/** Everything the dashboard shows about one job. */
export interface DashboardJob {
  readonly jobId: number
  /** The operation (job kind): `training`, `inference`, `export`, `evaluation`; `null` until a report says. */
  readonly kind: DevBackendOperation | null
  /** `waiting` until a started or progress report arrives (only logs or validation so far). */
  readonly status: "waiting" | "running" | "completed" | "failed"
  readonly error: { readonly type: string | null; readonly message: string; readonly traceback: string | null } | null
  readonly currentEpoch: number | null
  readonly totalEpochs: number | null
  readonly progressPercent: number | null
  /** First report of the job (epoch milliseconds). */
  readonly startedAt: number
  /** Latest report of the job. */
  readonly updatedAt: number
  /** When the completed or failed report arrived. */
  readonly endedAt: number | null
  /**
   * When the job should end, from the last progress report: its `estimated_time_remaining`
   * when sent, else the mean epoch time so far times the epochs left. `null` once ended.
   */
  readonly etaAt: number | null
  /** The chart order of the progress metric names (loss first, the learning rate last). */
  readonly metricNames: ReadonlyArray<string>
  /** One point per epoch (a repeated epoch keeps its latest report), in epoch order. */
  readonly epochs: ReadonlyArray<DashboardEpochPoint>
  readonly primaryMetricName: string | null
  /** One point per epoch (the latest report of an epoch), in epoch order. */
  readonly validations: ReadonlyArray<DashboardValidationPoint>
  /** The epoch with the highest primary metric (the platform's rule; the earliest on a tie). */
  readonly bestEpoch: { readonly epoch: number; readonly value: number } | null
  readonly latestValidation: DashboardValidation | null
  /** The newest `dashboardLogRowsKept` rows, in arrival order. */
  readonly logs: ReadonlyArray<DashboardLog>
  /** Rows older than those, which the platform would no longer keep. */
  readonly logsDropped: number
  readonly checkpoints: ReadonlyArray<DashboardCheckpoint>
  /** What the completion report said, as label/value pairs (totals, format, output URI, ...). */
  readonly result: ReadonlyArray<{ readonly label: string; readonly value: string }>
  /** Refused requests whose path names this job. */
  readonly rejections: ReadonlyArray<DashboardRejection>
}

/** The whole dashboard: every job seen (in order of first report) and every refused request. */
export interface DashboardState {
  /** The dev backend's clock when this state was taken (epoch milliseconds). */
  readonly now: number
  readonly accepted: number
  readonly jobs: ReadonlyArray<DashboardJob>
  /** Every refused request, in arrival order (also those naming no job). */
  readonly rejections: ReadonlyArray<DashboardRejection>
}

/** The largest request body the dev backend reads (16 MiB); a larger one is answered 413. */
export const devBackendMaxBodyBytes = 16 * 1024 * 1024

/** Options of `DevBackend.start`. */
export interface DevBackendOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  readonly port?: number
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string
  /** Path prefix of the API. Default `/api/v1`. */
  readonly basePath?: string
  /** Called with each accepted event, in order (the CLI prints it). */
  readonly onEvent?: (event: DevBackendEvent) => Effect.Effect<void>
  /** Called with each refused request (404, 413, 422 or 500). */
  readonly onRejected?: (rejection: DevBackendRejection) => Effect.Effect<void>
  /** The largest body read, in bytes. Default `devBackendMaxBodyBytes`. */
  readonly maxBodyBytes?: number
}

/** A running dev backend. */
export interface DevBackendHandle {
  /** The base URL to use as `CALLBACK_URL`, e.g. `http://127.0.0.1:41234/api/v1`. */
  readonly url: string
  readonly port: number
  /**
   * The live dashboard: a page showing each job as the platform's UI would (status, epochs,
   * charts, validation, logs, checkpoints, rejected requests), e.g. `http://127.0.0.1:41234/`.
   * Its state is also served as JSON at `/dashboard/state` and as Server-Sent Events at
   * `/dashboard/stream`.
   */
  readonly dashboardUrl: string
  /** What the dashboard shows now. */
  readonly dashboard: Effect.Effect<DashboardState>
  /** Every accepted event, in arrival order. */
  readonly events: Effect.Effect<ReadonlyArray<DevBackendEvent>>
  /** Every refused request, in arrival order. */
  readonly rejections: Effect.Effect<ReadonlyArray<DevBackendRejection>>
  /** Counts per kind and the final state of each job. */
  readonly summary: Effect.Effect<DevBackendSummary>
}

const kindMessage = (event: DevBackendEvent): string =>
  event.kind === "log" ? `log entry recorded for job ${event.jobId}` : `${event.operation} ${event.kind} recorded for job ${event.jobId}`

/**
 * Starts a dev backend in the current scope; it stops (dropping open connections) when the
 * scope closes. Fails with `DevBackendError` when it cannot listen (port in use).
 */
export const startDevBackend = (
  options: DevBackendOptions = {}
): Effect.Effect<DevBackendHandle, DevBackendError, Scope.Scope> =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const port = options.port ?? 0
    const basePath = (options.basePath ?? "/api/v1").replace(/\/+$/, "")
    const onEvent = options.onEvent ?? (() => Effect.void)
    const onRejected = options.onRejected ?? (() => Effect.void)
    const maxBodyBytes = options.maxBodyBytes ?? devBackendMaxBodyBytes
    // Appended in place (a long dry run sends thousands of log entries) under `reporting`'s
    // permit, so `onEvent` sees the recorded order; readers get copies.
    const events: Array<DevBackendEvent> = []
    const rejections: Array<DevBackendRejection> = []
    /** Keyed by operation and id: a training job and an inference job may share a number. */
    const jobStatuses = new Map<string, string | null>()
    const reporting = yield* Effect.makeSemaphore(1)
    // Bumped after each recorded event or rejection; the dashboard's stream follows it.
    const revision = yield* SubscriptionRef.make(0)
    const changed = SubscriptionRef.update(revision, (n) => n + 1)

    const nodeServer = http.createServer()
    const server = yield* NodeHttpServer.make(() => nodeServer, { port, host }).pipe(
      Effect.mapError((error) => {
        const code = (error.cause as { readonly code?: unknown } | undefined)?.code
        return new DevBackendError({
          host,
          port,
          detail: code === "EADDRINUSE" ? "the port is already in use" : String(error.cause),
          cause: error.cause
        })
      })
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => nodeServer.closeAllConnections()))

    const reject = (rejection: DevBackendRejection) =>
      reporting.withPermits(1)(
        Effect.zipRight(
          Effect.sync(() => rejections.push(rejection)),
          Effect.zipRight(changed, onRejected(rejection))
        )
      )

    const notFound = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const receivedAt = yield* Clock.currentTimeMillis
      yield* reject({ receivedAt, method: request.method, path: request.url, status: 404, jobId: undefined, issues: [] })
      return HttpServerResponse.unsafeJson({ success: false, message: `Not Found: ${request.method} ${request.url}` }, { status: 404 })
    })

    /** The request path relative to the API base, without its query string (routing ignores it). */
    const apiPath = (url: string) => url.split("?")[0]!.slice(basePath.length)

    /** Refuses a request with `status` and one problem about the body as a whole. */
    const refuse = (status: 413 | 500, path: string, jobId: number | undefined, problem: string) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const receivedAt = yield* Clock.currentTimeMillis
        yield* reject({ receivedAt, method: request.method, path, status, jobId, issues: [{ field: "", problem }] })
        return HttpServerResponse.unsafeJson({ success: false, message: problem }, { status })
      })

    const handle = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const path = apiPath(request.url)
      const jobId = matchCallbackEndpoint(path)?.jobId
      const tooLarge = `the body is larger than the dev backend's limit of ${maxBodyBytes} bytes`
      if (Number(request.headers["content-length"] ?? 0) > maxBodyBytes) return yield* refuse(413, path, jobId, tooLarge)
      const text = yield* request.text.pipe(
        HttpServerRequest.withMaxBodySize(Option.some(FileSystem.Size(maxBodyBytes))),
        Effect.either
      )
      // A body cut off by the size limit fails the read; any other read failure is an empty body.
      if (Either.isLeft(text) && String(text.left.cause).includes("maxBytes")) return yield* refuse(413, path, jobId, tooLarge)
      const receivedAt = yield* Clock.currentTimeMillis
      const decoded = decodeDevBackendRequest(path, Either.getOrElse(text, () => ""))
      switch (decoded._tag) {
        case "NotFound":
          return yield* notFound
        case "Invalid": {
          yield* reject({ receivedAt, method: request.method, path, status: 422, jobId: decoded.jobId, issues: decoded.issues })
          const message = decoded.issues.map((i) => `${i.field === "" ? "body" : i.field}: ${i.problem}`).join("; ")
          return HttpServerResponse.unsafeJson({ success: false, message, errors: decoded.issues }, { status: 422 })
        }
        case "Accepted": {
          const [event, jobStatus] = yield* reporting.withPermits(1)(
            Effect.tap(
              Effect.sync(() => {
                const event = {
                  ...decoded.payload,
                  sequence: events.length + 1,
                  receivedAt,
                  path,
                  endpoint: decoded.endpoint,
                  jobId: decoded.jobId,
                  ignored: decoded.ignored
                } as DevBackendEvent
                const key = `${event.operation}:${event.jobId}`
                const status = jobStatusAfter(event, jobStatuses.get(key) ?? null)
                events.push(event)
                jobStatuses.set(key, status)
                return [event, status] as const
              }),
              ([event]) => Effect.zipRight(changed, onEvent(event))
            )
          )
          return HttpServerResponse.unsafeJson({ success: true, message: kindMessage(event), job_status: jobStatus })
        }
      }
    }).pipe(
      // Anything unexpected is still an answer (a JSON 500) and a reported rejection, never an empty 500.
      Effect.catchAllCause((cause) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const path = apiPath(request.url)
          const first = Cause.pretty(cause).split("\n")[0] ?? "unknown failure"
          return refuse(500, path, matchCallbackEndpoint(path)?.jobId, `the dev backend failed on this request: ${first}`)
        })
      )
    )

    const address = server.address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("dev backend is not on TCP")
    const urlHost = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname
    const origin = `http://${urlHost}:${address.port}`
    const dashboard = Effect.map(Clock.currentTimeMillis, (now) => projectDashboardState(events, rejections, now))

    let router: HttpRouter.HttpRouter<never, never> = withDashboardRoutes(HttpRouter.empty, {
      callbackUrl: `${origin}${basePath}`,
      state: dashboard,
      changes: revision.changes,
      notFound
    })
    for (const endpoint of callbackEndpoints) {
      router = HttpRouter.post(router, `${basePath}${endpoint.template.replace("{id}", ":id")}` as HttpRouter.PathInput, handle)
    }
    yield* server.serve(Effect.catchTag(router, "RouteNotFound", () => notFound))

    return {
      url: `${origin}${basePath}`,
      port: address.port,
      dashboardUrl: `${origin}/`,
      dashboard,
      events: Effect.sync(() => events.slice()),
      rejections: Effect.sync(() => rejections.slice()),
      summary: Effect.sync(() => summarizeDevBackendEvents(events, rejections))
    } satisfies DevBackendHandle
  })

/** The dev backend as a service: `const backend = yield* DevBackend` once its layer is provided. */
export class DevBackend extends Context.Tag("trainer-sdk/DevBackend")<DevBackend, DevBackendHandle>() {
  /** Starts a dev backend in the current scope (see `startDevBackend`). */
  static readonly start = startDevBackend

  /** A dev backend living as long as the layer. */
  static readonly layer = (options: DevBackendOptions = {}): Layer.Layer<DevBackend, DevBackendError> =>
    Layer.scoped(DevBackend, startDevBackend(options))
}
