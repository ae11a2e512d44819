/**
 * An in-memory backend behind an `HttpClient`: records every callback request (path
 * relative to `CALLBACK_URL` and decoded JSON body) and answers 200, or fails as scripted.
 * `Callback.layerTest()` runs the live service over it, so ordering, coalescing, encoding
 * and retries are those of production.
 */
import { HttpClient, HttpClientError, HttpClientResponse } from "@effect/platform"
import { Effect, Ref } from "effect"
import type { CallbackAttempt, CallbackFailure, CallbackRecorder, CallbackRequest } from "../Callback.js"
import { baseUrlPrefix } from "./backendClient.js"

interface ScriptStep {
  readonly failure: CallbackFailure
  readonly times: number
}

const decodeBody = (body: unknown): unknown => {
  if (body instanceof Uint8Array) {
    const text = new TextDecoder().decode(body)
    try {
      return JSON.parse(text)
    } catch {
      return text
    }
  }
  return undefined
}

/** Builds the recorder and the `HttpClient` that talks to it, for the backend at `baseUrl`. */
export const makeCallbackRecorder = (
  baseUrl: string
): Effect.Effect<{ readonly recorder: CallbackRecorder; readonly client: HttpClient.HttpClient }> =>
  Effect.gen(function*() {
    // Appended in place (a copy per request would make long runs quadratic); read as copies.
    const requests: Array<CallbackRequest> = []
    const attempts: Array<CallbackAttempt> = []
    const script = yield* Ref.make<ReadonlyArray<ScriptStep>>([])
    const prefix = baseUrlPrefix(baseUrl)

    const nextFailure = Ref.modify(script, (steps): readonly [CallbackFailure | undefined, ReadonlyArray<ScriptStep>] => {
      const [head, ...rest] = steps
      if (head === undefined) return [undefined, steps]
      return [head.failure, head.times > 1 ? [{ failure: head.failure, times: head.times - 1 }, ...rest] : rest]
    })

    const client = HttpClient.make((request, url) =>
      Effect.gen(function*() {
        const href = url.toString()
        const path = href.startsWith(prefix) ? `/${href.slice(prefix.length)}` : url.pathname
        const body = decodeBody(request.body._tag === "Uint8Array" ? request.body.body : undefined)
        const failure = yield* nextFailure
        const outcome: CallbackAttempt["outcome"] = failure === undefined ? 200 : failure === "network" ? "network" : failure.status
        attempts.push({ path, body, outcome })
        if (failure === "network") {
          return yield* new HttpClientError.RequestError({
            request,
            reason: "Transport",
            cause: new Error("connect ECONNREFUSED (CallbackTest.failNext)")
          })
        }
        if (failure !== undefined) {
          return HttpClientResponse.fromWeb(request, new Response(failure.body ?? `simulated HTTP ${failure.status}`, { status: failure.status }))
        }
        requests.push({ path, body })
        return HttpClientResponse.fromWeb(
          request,
          new Response(JSON.stringify({ success: true, message: "recorded", job_status: null }), {
            status: 200,
            headers: { "content-type": "application/json" }
          })
        )
      })
    )

    const recorder: CallbackRecorder = {
      requests: Effect.sync(() => [...requests]),
      attempts: Effect.sync(() => [...attempts]),
      failNext: (times, failure) =>
        times > 0 ? Ref.update(script, (steps) => [...steps, { failure, times }]) : Effect.void,
      clear: Effect.zipRight(
        Effect.sync(() => {
          requests.length = 0
          attempts.length = 0
        }),
        Ref.set(script, [])
      )
    }
    return { recorder, client }
  })
