/**
 * A fault-injecting HTTP proxy for tests: listens on 127.0.0.1, forwards to one target on
 * this machine, and at chosen (seeded) rates answers 500, resets the connection, stalls,
 * or truncates the response body.
 */
import { Effect, type Scope } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { mulberry32 } from "../../src/internal/splits.js"

/** The faults the proxy can inject. */
export type Fault = "error500" | "reset" | "stall" | "truncate"

/** What the proxy did, per outcome. */
export type FaultStats = Record<Fault | "forwarded", number>

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** Base URL of the upstream server, e.g. `http://127.0.0.1:4568` (must be on this machine). */
  readonly target: string
  /** Probability of each fault per request; the rest is forwarded untouched. */
  readonly rates: Partial<Record<Fault, number>>
  /** Seed of the fault draw (deterministic runs). */
  readonly seed?: number
  /** How long a stalled request is held before its socket is destroyed (default 500 ms). */
  readonly stallMs?: number
  /** Which requests may be faulted (default: all). */
  readonly eligible?: (request: { readonly method: string; readonly url: string }) => boolean
  /**
   * At most this many faults in a row for one request (same method and URL); the next one is
   * forwarded. Bounds the attempts a client needs, so a retry budget cannot run out by
   * chance while the overall fault rate stays as chosen. Default: unbounded.
   */
  readonly maxConsecutiveFaults?: number
  /** The body of an injected 500 (default: an S3-style XML `InternalError`). */
  readonly errorBody?: { readonly contentType: string; readonly body: string }
}

/** A running proxy. */
export interface FaultProxy {
  /** The proxy's base URL. */
  readonly url: string
  /** Counts of injected faults and forwarded requests so far. */
  readonly stats: () => FaultStats
  /** Changes the fault rates from now on (e.g. to end a flapping phase). */
  readonly setRates: (rates: Partial<Record<Fault, number>>) => void
}


const s3InternalError = {
  contentType: "application/xml",
  body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>injected fault</Message></Error>"
}

/** Starts the proxy for the lifetime of the scope. */
export const startFaultProxy = (options: FaultProxyOptions): Effect.Effect<FaultProxy, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ proxy: FaultProxy; close: () => Promise<void> }>((resume) => {
      const target = new URL(options.target)
      if (!["127.0.0.1", "localhost", "[::1]"].includes(target.hostname)) {
        resume(Effect.dieMessage(`fault proxy targets must be on this machine, got ${options.target}`))
        return
      }
      const random = mulberry32(options.seed ?? 1)
      let rates = { ...options.rates }
      const stats: FaultStats = { error500: 0, reset: 0, stall: 0, truncate: 0, forwarded: 0 }
      const timers = new Set<NodeJS.Timeout>()
      const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
      const errorBody = options.errorBody ?? s3InternalError

      const consecutive = new Map<string, number>()
      const maxConsecutive = options.maxConsecutiveFaults ?? Number.POSITIVE_INFINITY

      const pick = (): Fault | undefined => {
        let roll = random()
        for (const fault of ["error500", "reset", "stall", "truncate"] as const) {
          const rate = rates[fault] ?? 0
          if (roll < rate) return fault
          roll -= rate
        }
        return undefined
      }

      /** A fault for one request (`METHOD url`), honouring `maxConsecutiveFaults`. */
      const draw = (request: string): Fault | undefined => {
        const streak = consecutive.get(request) ?? 0
        const fault = streak < maxConsecutive ? pick() : undefined
        if (fault === undefined) consecutive.delete(request)
        else consecutive.set(request, streak + 1)
        return fault
      }

      const forward = (req: http.IncomingMessage, res: http.ServerResponse, truncate: boolean) => {
        const upstream = http.request({
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
          agent
        }, (upstreamRes) => {
          if (!truncate) {
            res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers)
            upstreamRes.pipe(res)
            return
          }
          const chunks: Array<Buffer> = []
          upstreamRes.on("data", (c: Buffer) => chunks.push(c))
          upstreamRes.on("end", () => {
            const body = Buffer.concat(chunks)
            res.writeHead(upstreamRes.statusCode ?? 502, { ...upstreamRes.headers, "content-length": String(body.length) })
            res.write(body.subarray(0, Math.floor(body.length / 2)), () => req.socket.destroy())
          })
        })
        upstream.on("error", () => req.socket.destroy())
        req.pipe(upstream)
      }

      const server = http.createServer((req, res) => {
        const eligible = options.eligible?.({ method: req.method ?? "GET", url: req.url ?? "/" }) ?? true
        const fault = eligible ? draw(`${req.method} ${req.url}`) : undefined
        switch (fault) {
          case "error500":
            stats.error500++
            req.resume()
            req.on("end", () => {
              res.writeHead(500, { "content-type": errorBody.contentType, "content-length": Buffer.byteLength(errorBody.body) })
              res.end(errorBody.body)
            })
            return
          case "reset":
            stats.reset++
            req.socket.destroy()
            return
          case "stall": {
            stats.stall++
            req.resume()
            const timer = setTimeout(() => {
              timers.delete(timer)
              req.socket.destroy()
            }, options.stallMs ?? 500)
            timers.add(timer)
            return
          }
          case "truncate":
            stats.truncate++
            forward(req, res, true)
            return
          default:
            stats.forwarded++
            forward(req, res, false)
        }
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({
          proxy: {
            url: `http://127.0.0.1:${port}`,
            stats: () => ({ ...stats }),
            setRates: (next) => {
              rates = { ...next }
            }
          },
          close: () =>
            new Promise<void>((done) => {
              for (const timer of timers) clearTimeout(timer)
              server.closeAllConnections()
              server.close(() => done())
              agent.destroy()
            })
        }))
      })
    }),
    ({ close }) => Effect.promise(close)
  ).pipe(Effect.map(({ proxy }) => proxy))
