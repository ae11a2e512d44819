/**
 * The ClearML REST calls the SDK makes: `{api_host}/{service}.{action}`, the response
 * envelope, Basic → JWT login with refresh before expiry and once on a 401, the worker
 * header, and retries of transient failures.
 */
import { HttpBody, HttpClient, HttpClientRequest } from "@effect/platform"
import { Clock, Data, Duration, Effect, Redacted, Ref, Schedule } from "effect"
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
  /** Calls `service.action` with a JSON body and returns the envelope's `data`. */
  readonly call: (endpoint: string, body: unknown) => Effect.Effect<Record<string, unknown>, ClearMLCallError>
  /** `events.add_batch` with a newline-delimited JSON body. */
  readonly addBatch: (lines: string) => Effect.Effect<Record<string, unknown>, ClearMLCallError>
  /** Finds the project by exact name or creates it; returns its id. */
  readonly projectId: (name: string) => Effect.Effect<string, ClearMLCallError>
}

const transientStatuses = new Set([429, 502, 503, 504])

interface Token {
  readonly value: string
  /** Epoch ms after which to log in again. */
  readonly refreshAt: number
}

const defaultLifetime = Duration.days(30)

const record = (u: unknown): Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u) ? u as Record<string, unknown> : {}

/** Builds the client; the first call logs in. */
export const makeClearMLApi = (
  settings: ClearMLSettings,
  client: HttpClient.HttpClient,
  options: ClearMLApiOptions
): Effect.Effect<ClearMLApi> =>
  Effect.gen(function*() {
    const base = settings.apiHost.replace(/\/+$/, "")
    const token = yield* Ref.make<Token | undefined>(undefined)
    const loginLock = yield* Effect.makeSemaphore(1)
    const basic = `Basic ${btoa(`${settings.accessKey}:${Redacted.value(settings.secretKey)}`)}`

    /** One attempt: returns `data` of a 200 envelope, fails with the status and subcode otherwise. */
    const attempt = (endpoint: string, authorization: string, body: HttpBody.HttpBody) =>
      client.execute(
        HttpClientRequest.post(`${base}/${endpoint}`).pipe(
          HttpClientRequest.setHeaders({ authorization, "x-clearml-worker": options.worker }),
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
          let envelope: Record<string, unknown> = {}
          try {
            envelope = record(JSON.parse(text))
          } catch {
            // Not an envelope (a proxy's error page): the status alone decides.
          }
          const meta = record(envelope["meta"])
          const subcode = typeof meta["result_subcode"] === "number" ? meta["result_subcode"] : undefined
          if (status >= 200 && status < 300 && (meta["result_code"] === undefined || meta["result_code"] === 200)) {
            return Effect.succeed(record(envelope["data"]))
          }
          const message = typeof meta["result_msg"] === "string" ? meta["result_msg"] : text.slice(0, 300)
          return Effect.fail(
            new ClearMLCallError({
              endpoint,
              status,
              ...(subcode === undefined ? {} : { subcode }),
              transient: transientStatuses.has(status),
              detail: message
            })
          )
        }),
        Effect.retry({ schedule: options.retrySchedule, while: (e) => e.transient })
      )

    const login = Effect.gen(function*() {
      const data = yield* attempt("auth.login", basic, HttpBody.empty)
      const value = data["token"]
      if (typeof value !== "string" || value === "") {
        return yield* new ClearMLCallError({ endpoint: "auth.login", transient: false, detail: "no token in the response" })
      }
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

    const authorized = (endpoint: string, body: HttpBody.HttpBody) =>
      Effect.flatMap(currentToken(), (held) =>
        attempt(endpoint, `Bearer ${held.value}`, body).pipe(
          Effect.catchIf(
            (e) => e.status === 401,
            () => Effect.flatMap(currentToken(held.value), (renewed) => attempt(endpoint, `Bearer ${renewed.value}`, body))
          )
        ))

    const call = (endpoint: string, body: unknown) => authorized(endpoint, HttpBody.text(JSON.stringify(body), "application/json"))

    const lookUpProject = (name: string) =>
      Effect.map(
        call("projects.get_all", { name: `^${escapeRegex(name)}$`, only_fields: ["id"] }),
        (data) => {
          const projects = Array.isArray(data["projects"]) ? data["projects"] : []
          const id = projects.length > 0 ? record(projects[0])["id"] : undefined
          return typeof id === "string" ? id : undefined
        }
      )

    const projectId = (name: string) =>
      Effect.gen(function*() {
        const existing = yield* lookUpProject(name)
        if (existing !== undefined) return existing
        const created = yield* call("projects.create", { name }).pipe(
          Effect.map((data) => typeof data["id"] === "string" ? data["id"] : undefined),
          Effect.catchIf((e) => e.status === 400 && e.subcode === 801, () => lookUpProject(name))
        )
        if (created === undefined) {
          return yield* new ClearMLCallError({ endpoint: "projects.create", transient: false, detail: `no id for project "${name}"` })
        }
        return created
      })

    return {
      call,
      addBatch: (lines) => authorized("events.add_batch", HttpBody.text(lines, "application/json-lines")),
      projectId
    } satisfies ClearMLApi
  })
