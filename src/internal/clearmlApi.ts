/**
 * The ClearML REST calls the SDK makes: one `HttpClient` pipeline (`{api_host}/` prepended,
 * the worker header), the response envelope and each call's `data` decoded by Schemas,
 * Basic → JWT login with refresh before expiry and once on a 401, and retries of transient
 * failures on the caller's `Schedule`.
 */
import { HttpBody, HttpClient, HttpClientRequest } from "@effect/platform"
import { Clock, Data, Duration, Effect, Option, ParseResult, Redacted, Ref, Schedule, Schema } from "effect"
import type { ClearMLSettings } from "../JobContext.js"
import { escapeRegex, jwtExpiryMillis } from "./clearmlEvents.js"

/** One ClearML call that failed (never leaves the ClearML service: it is warned about once). */
export class ClearMLCallError extends Data.TaggedError("ClearMLCallError")<{
  readonly endpoint: string
  readonly status?: number
  readonly subcode?: number
  readonly transient: boolean
  readonly detail: string
}> {
  override get message(): string {
    const code = this.status === undefined ? "" : ` (HTTP ${this.status}${this.subcode === undefined ? "" : `/${this.subcode}`})`
    return `ClearML ${this.endpoint} failed${code}: ${this.detail}`
  }
}

/** Options of the ClearML client. */
export interface ClearMLApiOptions {
  /** The `X-ClearML-Worker` header (the host name). */
  readonly worker: string
  /** Retries of 429/502/503, network errors and timeouts. */
  readonly retrySchedule: Schedule.Schedule<unknown, unknown>
  /** Time allowed for one attempt. */
  readonly attemptTimeout: Duration.Duration
  /** Log in again this long before the token's `exp`. */
  readonly refreshMargin: Duration.Duration
}

/** The ClearML client. */
export interface ClearMLApi {
  /** Calls `service.action` with a JSON body and decodes the envelope's `data` with `schema`. */
  readonly call: <A, I>(endpoint: string, body: unknown, schema: Schema.Schema<A, I>) => Effect.Effect<A, ClearMLCallError>
  /** `events.add_batch` with a newline-delimited JSON body. */
  readonly addBatch: (lines: string) => Effect.Effect<typeof AddBatchData.Type, ClearMLCallError>
  /** Finds the project by exact name or creates it; returns its id. */
  readonly projectId: (name: string) => Effect.Effect<string, ClearMLCallError>
}

/** The `meta` block of every ClearML response. */
const ClearMLMeta = Schema.Struct({
  result_code: Schema.optional(Schema.Number),
  result_subcode: Schema.optional(Schema.Number),
  result_msg: Schema.optional(Schema.String)
})

/** The envelope of every ClearML response: `{meta, data}` (either may be absent; `data` may be `null`). */
const ClearMLEnvelope = Schema.Struct({
  meta: Schema.optionalWith(ClearMLMeta, { default: () => ({}) }),
  data: Schema.optionalWith(Schema.NullOr(Schema.Unknown), { default: () => null })
})

const decodeEnvelope = Schema.decodeUnknownOption(Schema.parseJson(ClearMLEnvelope))

/** What a body that is no envelope (a proxy's error page) counts as: the status alone decides. */
const noEnvelope: typeof ClearMLEnvelope.Type = { meta: {}, data: null }

/** `data` of a call whose result the SDK does not read. */
export const IgnoredData = Schema.Unknown

/** `data` of `auth.login`. */
const LoginData = Schema.Struct({ token: Schema.NonEmptyString })

/** `data` of `projects.get_all`. */
const ProjectsData = Schema.Struct({
  projects: Schema.optionalWith(Schema.Array(Schema.Struct({ id: Schema.String })), { default: () => [] })
})

/** `data` of a call creating something (`projects.create`, `tasks.create`). */
export const CreatedData = Schema.Struct({ id: Schema.String })

/** `data` of `events.add_batch`: events the server refused, with its reasons. */
export const AddBatchData = Schema.Struct({
  errors: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  errors_info: Schema.optional(Schema.Unknown)
})

const transientStatuses = new Set([429, 502, 503, 504])

interface Token {
  readonly value: string
  /** Epoch ms after which to log in again. */
  readonly refreshAt: number
}

const defaultLifetime = Duration.days(30)

/** Builds the client; the first call logs in. */
export const makeClearMLApi = (
  settings: ClearMLSettings,
  client: HttpClient.HttpClient,
  options: ClearMLApiOptions
): Effect.Effect<ClearMLApi> =>
  Effect.gen(function*() {
    const clearml = client.pipe(
      HttpClient.mapRequest((request) =>
        request.pipe(
          HttpClientRequest.prependUrl(`${settings.apiHost.replace(/\/+$/, "")}/`),
          HttpClientRequest.setHeader("x-clearml-worker", options.worker)
        )
      )
    )
    const token = yield* Ref.make<Token | undefined>(undefined)
    const loginLock = yield* Effect.makeSemaphore(1)
    const basic = `Basic ${btoa(`${settings.accessKey}:${Redacted.value(settings.secretKey)}`)}`

    /**
     * One attempt: the envelope's `data` of a 2xx whose `result_code` is 200 (or absent),
     * decoded with `schema`; otherwise a failure with the status, subcode and message (a body
     * that is no envelope, such as a proxy's error page, leaves the status alone to decide).
     */
    const attempt = <A, I>(endpoint: string, authorization: string, body: HttpBody.HttpBody, schema: Schema.Schema<A, I>) =>
      clearml.execute(
        HttpClientRequest.post(endpoint).pipe(
          HttpClientRequest.setHeader("authorization", authorization),
          HttpClientRequest.setBody(body)
        )
      ).pipe(
        Effect.flatMap((response) => Effect.map(response.text, (text) => ({ status: response.status, text }))),
        Effect.scoped,
        Effect.mapError((e) => new ClearMLCallError({ endpoint, transient: true, detail: e.message })),
        Effect.timeoutFail({
          duration: options.attemptTimeout,
          onTimeout: () =>
            new ClearMLCallError({ endpoint, transient: true, detail: `timed out after ${Duration.format(options.attemptTimeout)}` })
        }),
        Effect.flatMap(({ status, text }) => {
          const envelope = Option.getOrElse(decodeEnvelope(text), () => noEnvelope)
          const { result_code, result_msg, result_subcode } = envelope.meta
          if (status >= 200 && status < 300 && (result_code === undefined || result_code === 200)) {
            return Effect.mapError(
              Schema.decodeUnknown(schema)(envelope.data ?? {}),
              (e) =>
                new ClearMLCallError({
                  endpoint,
                  transient: false,
                  detail: `unexpected response: ${ParseResult.TreeFormatter.formatErrorSync(e)}`
                })
            )
          }
          return Effect.fail(
            new ClearMLCallError({
              endpoint,
              status,
              ...(result_subcode === undefined ? {} : { subcode: result_subcode }),
              transient: transientStatuses.has(status),
              detail: result_msg ?? text.slice(0, 300)
            })
          )
        }),
        Effect.retry({ schedule: options.retrySchedule, while: (e) => e.transient })
      )

    const login = Effect.gen(function*() {
      const { token: value } = yield* attempt("auth.login", basic, HttpBody.empty, LoginData)
      const now = yield* Clock.currentTimeMillis
      const expiresAt = jwtExpiryMillis(value) ?? now + Duration.toMillis(defaultLifetime)
      // A token shorter-lived than the margin is still used for half its life.
      const refreshAt = Math.max(expiresAt - Duration.toMillis(options.refreshMargin), now + (expiresAt - now) / 2)
      const fresh: Token = { value, refreshAt }
      yield* Ref.set(token, fresh)
      return fresh
    })

    /** A token valid for a while; `stale` (the one a 401 answered) forces a new login. */
    const currentToken = (stale?: string) =>
      loginLock.withPermits(1)(Effect.gen(function*() {
        const held = yield* Ref.get(token)
        const now = yield* Clock.currentTimeMillis
        return held !== undefined && held.value !== stale && now < held.refreshAt ? held : yield* login
      }))

    const authorized = <A, I>(endpoint: string, body: HttpBody.HttpBody, schema: Schema.Schema<A, I>) =>
      Effect.flatMap(currentToken(), (held) =>
        attempt(endpoint, `Bearer ${held.value}`, body, schema).pipe(
          Effect.catchIf(
            (e) => e.status === 401,
            () => Effect.flatMap(currentToken(held.value), (renewed) => attempt(endpoint, `Bearer ${renewed.value}`, body, schema))
          )
        ))

    const call = <A, I>(endpoint: string, body: unknown, schema: Schema.Schema<A, I>) =>
      authorized(endpoint, HttpBody.text(JSON.stringify(body), "application/json"), schema)

    const lookUpProject = (name: string) =>
      Effect.map(
        call("projects.get_all", { name: `^${escapeRegex(name)}$`, only_fields: ["id"] }, ProjectsData),
        (data) => data.projects[0]?.id
      )

    const projectId = (name: string) =>
      Effect.gen(function*() {
        const existing = yield* lookUpProject(name)
        if (existing !== undefined) return existing
        const created = yield* call("projects.create", { name }, CreatedData).pipe(
          Effect.map((data): string | undefined => data.id),
          Effect.catchIf((e) => e.status === 400 && e.subcode === 801, () => lookUpProject(name))
        )
        if (created === undefined) {
          return yield* new ClearMLCallError({ endpoint: "projects.create", transient: false, detail: `no id for project "${name}"` })
        }
        return created
      })

    return {
      call,
      addBatch: (lines) => authorized("events.add_batch", HttpBody.text(lines, "application/json-lines"), AddBatchData),
      projectId
    } satisfies ClearMLApi
  })
