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
import { callbackEndpoints, matchCallbackEndpoint } from "./internal/callbackBodies.js"
import {
  decodeDevBackendRequest,
  type DevBackendEvent,
  type DevBackendRejection,
  type DevBackendSummary,
  jobStatusAfter,
  summarizeDevBackendEvents
} from "./internal/devBackendEvents.js"
import { withDashboardRoutes } from "./internal/dashboardRoutes.js"
import { type DashboardState, projectDashboardState } from "./internal/dashboardState.js"

export {
  type DashboardCheckpoint,
  type DashboardEpochPoint,
  type DashboardJob,
  type DashboardLog,
  type DashboardRejection,
  type DashboardState,
  type DashboardValidation,
  type DashboardValidationPoint,
  projectDashboardState
} from "./internal/dashboardState.js"
export {
  decodeDevBackendRequest,
  type DevBackendDecoded,
  type DevBackendEvent,
  type DevBackendEventKind,
  devBackendEventKinds,
  type DevBackendFieldIssue,
  type DevBackendJobSummary,
  type DevBackendOperation,
  type DevBackendPayload,
  type DevBackendRejection,
  type DevBackendSummary,
  formatDevBackendEvent,
  formatDevBackendRejection,
  formatDevBackendSummary,
  summarizeDevBackendEvents
} from "./internal/devBackendEvents.js"

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
