/**
 * A scriptable platform backend for tests and benchmarks: a real HTTP server on
 * 127.0.0.1 (random port, built with @effect/platform's HttpServer) that records every
 * request (path relative to the API base, parsed JSON body) and answers per a plan:
 * queued replies consumed in arrival order (statuses, gated or never-answered replies),
 * then a fallback responder (200 by default).
 */
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Ref, type Scope, Stream, SubscriptionRef } from "effect"
import * as http from "node:http"

/** One request the backend received. */
export interface ReceivedRequest {
  readonly method: string
  /** Path relative to the API base, e.g. `/training/jobs/1/callback/progress`. */
  readonly path: string
  /** The parsed JSON body, or the raw text when it is not JSON. */
  readonly body: unknown
}

/**
 * How to answer one request: a status with an optional body (JSON, or text when a string),
 * optionally after `before` completes (a gate the test opens); or `"never"` to hang.
 */
export type BackendReply =
  | { readonly status: number; readonly body?: unknown; readonly before?: Effect.Effect<void> }
  | "never"

/** The running backend. */
export interface BackendServerShape {
  /** The API base URL to use as `CALLBACK_URL`, e.g. `http://127.0.0.1:41234/api/v1`. */
  readonly baseUrl: string
  readonly port: number
  /** Every request received, in arrival order (recorded before it is answered). */
  readonly received: Effect.Effect<ReadonlyArray<ReceivedRequest>>
  /** Requests answered with a 2xx (what a real backend would have stored), in answer order. */
  readonly stored: Effect.Effect<ReadonlyArray<ReceivedRequest>>
  /** Waits until at least `n` requests were received; returns them. */
  readonly awaitReceived: (n: number) => Effect.Effect<ReadonlyArray<ReceivedRequest>>
  /** Queues replies for the next requests, in arrival order. */
  readonly reply: (...replies: ReadonlyArray<BackendReply>) => Effect.Effect<void>
  /** Sets the responder used once the queued replies are spent. */
  readonly otherwise: (respond: (request: ReceivedRequest) => BackendReply) => Effect.Effect<void>
}

/** Options of `makeBackendServer`. */
export interface BackendServerOptions {
  /** Path prefix of the API. Default `/api/v1`. */
  readonly basePath?: string
}

const ok: BackendReply = { status: 200, body: { success: true, message: "ok", job_status: null } }

const parseBody = (text: string): unknown => {
  if (text === "") return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** Starts the backend in the current scope; it stops (dropping open connections) when the scope closes. */
export const makeBackendServer = (
  options: BackendServerOptions = {}
): Effect.Effect<BackendServerShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const basePath = (options.basePath ?? "/api/v1").replace(/\/+$/, "")
    const received = yield* SubscriptionRef.make<ReadonlyArray<ReceivedRequest>>([])
    const stored = yield* Ref.make<ReadonlyArray<ReceivedRequest>>([])
    const queued = yield* Ref.make<ReadonlyArray<BackendReply>>([])
    const fallback = yield* Ref.make<(request: ReceivedRequest) => BackendReply>(() => ok)

    const nodeServer = http.createServer()
    const server = yield* NodeHttpServer.make(() => nodeServer, { port: 0, host: "127.0.0.1" }).pipe(Effect.orDie)
    // Runs before the server's own close, which would otherwise wait for hung requests.
    yield* Effect.addFinalizer(() => Effect.sync(() => nodeServer.closeAllConnections()))

    const app = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const text = yield* Effect.orElseSucceed(request.text, () => "")
      const url = request.url.startsWith(basePath) ? request.url.slice(basePath.length) : request.url
      const entry: ReceivedRequest = { method: request.method, path: url, body: parseBody(text) }
      yield* SubscriptionRef.update(received, (all) => [...all, entry])
      const next = yield* Ref.modify(queued, ([head, ...rest]) => [head, rest] as const)
      const answer = next ?? (yield* Ref.get(fallback))(entry)
      if (answer === "never") return yield* Effect.never
      if (answer.before) yield* answer.before
      if (answer.status >= 200 && answer.status < 300) yield* Ref.update(stored, (all) => [...all, entry])
      return typeof answer.body === "string"
        ? HttpServerResponse.text(answer.body, { status: answer.status })
        : HttpServerResponse.unsafeJson(answer.body ?? {}, { status: answer.status })
    })
    yield* server.serve(app)

    const address = server.address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("backend server is not on TCP")
    return {
      baseUrl: `http://127.0.0.1:${address.port}${basePath}`,
      port: address.port,
      received: SubscriptionRef.get(received),
      stored: Ref.get(stored),
      awaitReceived: (n) =>
        received.changes.pipe(
          Stream.filter((all) => all.length >= n),
          Stream.runHead,
          Effect.map((all) => all._tag === "Some" ? all.value : [])
        ),
      reply: (...replies) => Ref.update(queued, (all) => [...all, ...replies]),
      otherwise: (respond) => Ref.set(fallback, respond)
    } satisfies BackendServerShape
  })

/** The backend as a service, for `layer(BackendServer.layer)(...)` in @effect/vitest. */
export class BackendServer extends Context.Tag("test/BackendServer")<BackendServer, BackendServerShape>() {
  /** A fresh backend per layer build. */
  static readonly layer: Layer.Layer<BackendServer> = Layer.scoped(BackendServer, makeBackendServer())
}
