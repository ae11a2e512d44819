/**
 * The moment the process was told to stop (SIGTERM/SIGINT), shared between the program's
 * edge (which receives the signal) and the report outboxes (whose shutdown budget counts
 * from it).
 */

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
