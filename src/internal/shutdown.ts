/**
 * The moment the process was told to stop (SIGTERM/SIGINT), shared between the program's
 * edge (which receives the signal) and the report outboxes (whose shutdown budget counts
 * from it); and the edge's one channel to stderr for what the outbox could not deliver.
 */
import { FiberRef, HashMap, HashSet, Layer, Logger } from "effect"

type Listener = (atMillis: number) => void

const listeners = new Map<Listener, number>()
let signalledAt: number | undefined

/**
 * Records that the process was signalled at `atMillis` (epoch milliseconds) and tells every
 * subscribed outbox (later calls are ignored). Returns the longest shutdown budget (ms) of
 * the subscribers, `undefined` when there is none, so the edge can arm a last-resort exit.
 */
export const signalShutdown = (atMillis: number): number | undefined => {
  if (signalledAt === undefined) {
    signalledAt = atMillis
    for (const listener of listeners.keys()) listener(atMillis)
  }
  return listeners.size === 0 ? undefined : Math.max(...listeners.values())
}

/**
 * Calls `listener` once the process is signalled (at once if it already was); `budgetMillis`
 * is the subscriber's shutdown budget. Returns the unsubscription.
 */
export const onShutdownSignal = (listener: Listener, budgetMillis: number): (() => void) => {
  if (signalledAt !== undefined) listener(signalledAt)
  listeners.set(listener, budgetMillis)
  return () => void listeners.delete(listener)
}

/** Time past the shutdown budget after which a signalled process exits whatever it is doing. */
const watchdogGraceMillis = 2000

/**
 * For a program's edge that received SIGTERM/SIGINT: records the signal (see
 * `signalShutdown`) and arms a last-resort timer that exits the process shortly after the
 * budget (with `exitCode()`, and a line on stderr) should anything still be running then,
 * so the process always ends on its own before Kubernetes' SIGKILL.
 */
export const handleShutdownSignal = (signal: NodeJS.Signals, exitCode: () => number): void => {
  const budget = signalShutdown(Date.now())
  if (budget === undefined) return
  setTimeout(() => {
    process.stderr.write(
      `[trainer-sdk] still running ${Math.round((budget + watchdogGraceMillis) / 1000)} s after ${signal}; exiting now\n`
    )
    process.exit(exitCode())
  }, budget + watchdogGraceMillis).unref()
}

/** The log annotation of the outbox's closing reports (what was not delivered, the delivery summary). */
export const deliveryReportAnnotation = "trainer_sdk_delivery"

/**
 * The program's loggers with the outbox's closing reports routed to stderr: the default
 * logger (stdout) is replaced by one writing those entries to stderr and every other entry
 * as before; beside any other logger (a program's own), they are written to stderr too.
 */
const routeDeliveryReports = (loggers: HashSet.HashSet<Logger.Logger<unknown, any>>) => {
  const toStderr = (options: Logger.Logger.Options<unknown>): boolean => {
    if (!HashMap.has(options.annotations, deliveryReportAnnotation)) return false
    const text = (Array.isArray(options.message) ? options.message : [options.message]).map(String).join(" ")
    process.stderr.write(`[trainer-sdk] ${text}\n`)
    return true
  }
  return HashSet.has(loggers, Logger.defaultLogger)
    ? HashSet.add(
      HashSet.remove(loggers, Logger.defaultLogger),
      Logger.make((options) => void (toStderr(options) || Logger.defaultLogger.log(options)))
    )
    : HashSet.add(loggers, Logger.make((options) => void toStderr(options)))
}

/**
 * For the runner's exit path (a program's edge), provided before the SDK's layer is built
 * (a finalizer logs with the loggers of the fiber that added it): the outbox's closing
 * reports go to stderr, so a job that ends with reports still undelivered says so where
 * the platform's logs collect it. Library code itself only logs.
 */
export const deliveryReportsOnStderr: Layer.Layer<never> = Layer.fiberRefLocallyScopedWith(
  FiberRef.currentLoggers,
  routeDeliveryReports
)
