/**
 * The dashboard's HTTP routes on the dev backend: the page at `/`, its script and style,
 * the vendored chart library, the state as JSON (`GET /dashboard/state`) and as a stream
 * of Server-Sent Events (`GET /dashboard/stream`, one `state` event now and one after each
 * change, coalesced). All of them are GETs, so they never shadow a callback route (POSTs).
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Clock, Duration, Effect, Stream } from "effect"
import {
  dashboardCss,
  dashboardHtml,
  dashboardScript,
  dashboardVendorAssets,
  readDashboardVendorAsset
} from "./dashboardAssets.js"
import type { DashboardState } from "../DevBackend.js"

/** The dashboard's paths. */
export const dashboardPaths = {
  page: "/",
  script: "/dashboard/app.js",
  style: "/dashboard/app.css",
  vendor: "/dashboard/vendor/:name",
  state: "/dashboard/state",
  stream: "/dashboard/stream"
} as const

/** What the routes need from the dev backend. */
export interface DashboardSource {
  /** The `CALLBACK_URL` shown on the page. */
  readonly callbackUrl: string
  /** The current state (projected from what the backend recorded). */
  readonly state: Effect.Effect<DashboardState>
  /** Emits now and after every recorded event or rejection. */
  readonly changes: Stream.Stream<unknown>
  /** The answer (and rejection record) for an unknown path. */
  readonly notFound: HttpRouter.Route.Handler<never, never>
  /** The shortest time between two pushed states; changes in between are folded into the next. */
  readonly pushInterval?: Duration.DurationInput
}

const liveClock = Clock.make()
const noStore = { "cache-control": "no-store" }
const encoder = new TextEncoder()

/** Adds the dashboard's routes to `router`. */
export const withDashboardRoutes = (
  router: HttpRouter.HttpRouter<never, never>,
  source: DashboardSource
): HttpRouter.HttpRouter<never, never> => {
  const pushInterval = source.pushInterval ?? Duration.millis(150)
  const vendor = Effect.gen(function*() {
    const { name } = yield* HttpRouter.params
    const asset = name !== undefined && Object.hasOwn(dashboardVendorAssets, name) ? dashboardVendorAssets[name] : undefined
    if (asset === undefined) return yield* source.notFound
    return yield* readDashboardVendorAsset(asset).pipe(
      Effect.map((bytes) => HttpServerResponse.uint8Array(bytes, { contentType: asset.contentType })),
      Effect.catchAll((error) => Effect.succeed(HttpServerResponse.text(error.message, { status: 500 })))
    )
  })
  const frames = source.changes.pipe(
    // A slow reader gets the latest state, never a backlog.
    Stream.buffer({ capacity: 1, strategy: "sliding" }),
    Stream.mapEffect(() => source.state),
    Stream.map((state) => encoder.encode(`event: state\ndata: ${JSON.stringify(state)}\n\n`)),
    // Pacing is about wall time (how often a browser re-renders), so it uses the live clock
    // even where the backend's own clock is a TestClock.
    Stream.tap(() => Effect.withClock(Effect.sleep(pushInterval), liveClock))
  )
  return router.pipe(
    HttpRouter.get(dashboardPaths.page, Effect.succeed(HttpServerResponse.html(dashboardHtml(source.callbackUrl)))),
    HttpRouter.get(
      dashboardPaths.script,
      Effect.succeed(HttpServerResponse.text(dashboardScript, { contentType: "text/javascript; charset=utf-8" }))
    ),
    HttpRouter.get(
      dashboardPaths.style,
      Effect.succeed(HttpServerResponse.text(dashboardCss, { contentType: "text/css; charset=utf-8" }))
    ),
    HttpRouter.get(dashboardPaths.vendor, vendor),
    HttpRouter.get(dashboardPaths.state, Effect.map(source.state, (state) => HttpServerResponse.unsafeJson(state, { headers: noStore }))),
    HttpRouter.get(
      dashboardPaths.stream,
      Effect.succeed(
        HttpServerResponse.stream(frames, {
          contentType: "text/event-stream",
          headers: { ...noStore, connection: "keep-alive" }
        })
      )
    )
  )
}
