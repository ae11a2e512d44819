/**
 * The one HTTP pipeline to the platform backend, shared by the callback and log services:
 * base-URL joining, a per-attempt timeout, the spec's retry policy, and the mapping of
 * every transport outcome into `CallbackError`.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Duration, Effect, Schedule } from "effect"
import { CallbackError } from "../Errors.js"
import type { JobContextShape } from "../JobContext.js"

/** Joins the backend base URL and a path: trailing `/` of the base and leading `/` of the path stripped. */
export const joinUrl = (base: string, path: string): string => `${base.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`

/** Options of the backend pipeline. */
export interface BackendClientOptions {
  /** Time allowed for one attempt (request and response body). Default 60 s. */
  readonly attemptTimeout?: Duration.DurationInput
}

/** A POST-only JSON client for the backend that fails only with `CallbackError`. */
export interface BackendClient {
  /** Sends `body` as JSON to `path` (relative to `CALLBACK_URL`), retrying transient failures. */
  readonly post: (path: string, body: unknown) => Effect.Effect<void, CallbackError>
  /** The same, but a single attempt (no retry), for callers with their own policy. */
  readonly postOnce: (path: string, body: unknown) => Effect.Effect<void, CallbackError>
}

/**
 * The spec's retry policy: exponential backoff from `CALLBACK_RETRY_DELAY`, doubled each
 * time, jittered, at most `CALLBACK_MAX_RETRIES` retries.
 */
export const callbackRetrySchedule = (
  ctx: Pick<JobContextShape, "callbackRetryDelay" | "callbackMaxRetries">
): Schedule.Schedule<unknown, unknown> =>
  Schedule.exponential(ctx.callbackRetryDelay, 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(ctx.callbackMaxRetries))
  )

/** Whether a callback failure is worth another attempt. */
export const isTransient = (error: CallbackError): boolean => error.reason === "Transient"

/** Builds the backend client from the job context and an `HttpClient`. */
export const makeBackendClient = (
  ctx: JobContextShape,
  client: HttpClient.HttpClient,
  options: BackendClientOptions = {}
): BackendClient => {
  const timeout = Duration.decode(options.attemptTimeout ?? Duration.seconds(60))
  const schedule = callbackRetrySchedule(ctx)

  const postOnce = (path: string, body: unknown): Effect.Effect<void, CallbackError> =>
    client.execute(HttpClientRequest.post(joinUrl(ctx.callbackUrl, path)).pipe(HttpClientRequest.bodyUnsafeJson(body))).pipe(
      Effect.flatMap((response) =>
        response.status >= 200 && response.status < 300
          ? Effect.asVoid(Effect.ignore(response.text))
          : Effect.flatMap(
            Effect.orElseSucceed(response.text, () => ""),
            (text) =>
              new CallbackError({
                reason: response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429
                  ? "Rejected"
                  : "Transient",
                path,
                status: response.status,
                body: text,
                detail: `HTTP ${response.status}`
              })
          )
      ),
      Effect.scoped,
      Effect.catchTag("RequestError", (e) =>
        new CallbackError({ reason: "Transient", path, detail: `${e.reason}: ${e.cause instanceof Error ? e.cause.message : e.message}` })),
      Effect.catchTag("ResponseError", (e) =>
        new CallbackError({ reason: "Transient", path, status: e.response.status, detail: e.message })),
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new CallbackError({ reason: "Transient", path, detail: `timed out after ${Duration.format(timeout)}` })
      })
    )

  return {
    postOnce,
    post: (path, body) => postOnce(path, body).pipe(Effect.retry({ schedule, while: isTransient }))
  }
}
