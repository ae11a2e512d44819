/**
 * The one HTTP transport to the platform backend, used by the report outbox: an `HttpClient`
 * pipeline (`CALLBACK_URL` prepended, non-2xx filtered), a per-attempt timeout, the mapping
 * of every transport outcome into `CallbackError` (with the server's `Retry-After`), and the
 * retry schedule between attempts (`deliverySchedule`).
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError } from "@effect/platform"
import { Clock, Duration, Effect, Schedule } from "effect"
import { CallbackError } from "../Errors.js"
import type { DeliverySettings } from "../Outbox.js"
import { maskUrlCredentials } from "./redact.js"

/**
 * The backend base URL as the prefix the client prepends to every path: its trailing `/`s
 * replaced by exactly one (paths are sent without their leading `/`).
 */
export const baseUrlPrefix = (base: string): string => `${base.replace(/\/+$/, "")}/`

/** A path relative to the base: its leading `/` stripped. */
const relativePath = (path: string): string => path.replace(/^\/+/, "")

/** Options of the backend transport. */
export interface BackendClientOptions {
  /** Time allowed for one attempt (request and response body). Default 60 s. */
  readonly attemptTimeout?: Duration.DurationInput
}

/** A failed attempt: the typed error, and how long the backend asked to wait (`Retry-After`). */
export interface AttemptFailure {
  readonly error: CallbackError
  readonly retryAfterMillis: number | undefined
}

/** A POST-only JSON transport for the backend: one attempt per call, no retry. */
export interface BackendClient {
  /** Sends the JSON text `body` to `path` (relative to `CALLBACK_URL`) once. */
  readonly attempt: (path: string, body: string) => Effect.Effect<void, AttemptFailure>
}

/** The longest wait between two attempts of a report (5 minutes): a longer backoff or `Retry-After` is clamped. */
const maxWaitMillis = 5 * 60 * 1000

/** `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date; `undefined` when absent or unreadable. */
export const parseRetryAfter = (header: string | undefined, now: number): number | undefined => {
  if (header === undefined || header.trim() === "") return undefined
  const text = header.trim()
  const millis = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : Date.parse(text) - now
  return Number.isFinite(millis) ? Math.min(maxWaitMillis, Math.max(0, millis)) : undefined
}

/** Whether an HTTP status is worth another attempt: 5xx, 408 and 429. */
export const isTransientStatus = (status: number): boolean => status >= 500 || status === 408 || status === 429

/**
 * The waits between the attempts of one report: `CALLBACK_RETRY_DELAY` doubled per retry for
 * the first `CALLBACK_MAX_RETRIES` retries and then held at that ceiling (it never ends:
 * delivery goes on for as long as the job runs), jittered (×0.8–1.2), at most 5 minutes,
 * and never shorter than the backend's `Retry-After` (read from the failure it is given).
 */
export const deliverySchedule = (
  settings: Pick<DeliverySettings, "callbackRetryDelay" | "callbackMaxRetries">
): Schedule.Schedule<unknown, AttemptFailure> => {
  const ceiling = Duration.times(settings.callbackRetryDelay, 2 ** settings.callbackMaxRetries)
  const backoff = Schedule.exponential(settings.callbackRetryDelay, 2).pipe(
    Schedule.modifyDelay((_, delay) => Duration.min(delay, ceiling)),
    Schedule.jitteredWith({ min: 0.8, max: 1.2 }),
    Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.millis(maxWaitMillis)))
  )
  return Schedule.intersect(Schedule.identity<AttemptFailure>(), backoff).pipe(
    Schedule.modifyDelay(([failure], delay) => Duration.max(delay, Duration.millis(failure.retryAfterMillis ?? 0)))
  )
}

/** Builds the transport from the delivery settings (`CALLBACK_URL`) and an `HttpClient`. */
export const makeBackendClient = (
  ctx: Pick<DeliverySettings, "callbackUrl">,
  client: HttpClient.HttpClient,
  options: BackendClientOptions = {}
): BackendClient => {
  const timeout = Duration.decode(options.attemptTimeout ?? Duration.seconds(60))
  const backend = client.pipe(
    HttpClient.mapRequest(HttpClientRequest.prependUrl(baseUrlPrefix(ctx.callbackUrl))),
    HttpClient.filterStatusOk
  )

  return {
    attempt: (path, body) =>
      backend.execute(HttpClientRequest.post(relativePath(path)).pipe(HttpClientRequest.bodyText(body, "application/json"))).pipe(
        Effect.flatMap((response) => Effect.ignore(response.text)),
        Effect.catchTag("ResponseError", (e): Effect.Effect<never, AttemptFailure | HttpClientError.HttpClientError> =>
          e.reason !== "StatusCode"
            ? Effect.fail(e)
            : Effect.flatMap(Effect.orElseSucceed(e.response.text, () => ""), (text) =>
              Effect.flatMap(Clock.currentTimeMillis, (now) =>
                Effect.fail({
                  error: new CallbackError({
                    reason: isTransientStatus(e.response.status) ? "Transient" : "Rejected",
                    path,
                    status: e.response.status,
                    body: text,
                    detail: `HTTP ${e.response.status}`
                  }),
                  retryAfterMillis: parseRetryAfter(e.response.headers["retry-after"], now)
                })))
        ),
        Effect.mapError((e): AttemptFailure =>
          "error" in e ? e : {
            error: new CallbackError({
              reason: "Transient",
              path,
              ...(e._tag === "ResponseError" ? { status: e.response.status } : {}),
              detail: maskUrlCredentials(
                e._tag === "RequestError" ? `${e.reason}: ${e.cause instanceof Error ? e.cause.message : e.message}` : e.message
              )
            }),
            retryAfterMillis: undefined
          }
        ),
        Effect.scoped,
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: (): AttemptFailure => ({
            error: new CallbackError({ reason: "Transient", path, detail: `timed out after ${Duration.format(timeout)}` }),
            retryAfterMillis: undefined
          })
        })
      )
  }
}
