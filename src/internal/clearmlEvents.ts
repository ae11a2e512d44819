/**
 * Pure helpers of the ClearML integration: metric naming, event lines and their batching
 * under the request size cap, project-name regex escaping, JWT expiry.
 */
import type { ClearMLMetricName, ClearMLTextLevel } from "../ClearML.js"

/**
 * The platform's naming rule: a key with `/` is split at the first `/` into series and
 * title (`"val/mAP50"` → series `val`, title `mAP50`); a key without one is the title of
 * the `train` series.
 */
export const clearmlMetricName = (key: string): ClearMLMetricName => {
  const slash = key.indexOf("/")
  return slash === -1 ? { title: key, series: "train" } : { series: key.slice(0, slash), title: key.slice(slash + 1) }
}

/** Escapes a name so the server's regular-expression match on it is literal. */
export const escapeRegex = (name: string): string => name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** A scalar or console event before the task id is known. */
export type ClearMLEvent =
  | {
    readonly type: "training_stats_scalar"
    readonly iter: number
    readonly metric: string
    readonly variant: string
    readonly value: number
    readonly timestamp: number
  }
  | {
    readonly type: "log"
    readonly level: ClearMLTextLevel
    readonly msg: string
    readonly timestamp: number
  }

/** Whether a scalar can be sent: a finite value at a whole, non-negative iteration. */
export const isSendableScalar = (value: number, iteration: number): boolean =>
  Number.isFinite(value) && Number.isSafeInteger(iteration) && iteration >= 0

/** The JSON line of one event for `events.add_batch`. */
export const eventLine = (event: ClearMLEvent, task: string, worker: string): string =>
  event.type === "log"
    ? JSON.stringify({ type: "log", task, level: event.level, worker, msg: event.msg, timestamp: event.timestamp })
    : JSON.stringify({
      type: "training_stats_scalar",
      task,
      iter: event.iter,
      metric: event.metric,
      variant: event.variant,
      value: event.value,
      timestamp: event.timestamp
    })

const encoder = new TextEncoder()

/** Lines grouped into request bodies of at most `maxBytes` (lines joined by `\n`); oversized lines are left out. */
export interface ClearMLBatches {
  readonly bodies: ReadonlyArray<string>
  /** Lines counted per body, parallel to `bodies`. */
  readonly counts: ReadonlyArray<number>
  /** Lines that alone exceed the cap (they can never be sent). */
  readonly oversized: number
}

/** Splits lines into `\n`-joined bodies (no trailing newline) of at most `maxBytes` bytes each, in order. */
export const splitIntoBatches = (lines: ReadonlyArray<string>, maxBytes: number): ClearMLBatches => {
  const bodies: Array<string> = []
  const counts: Array<number> = []
  let oversized = 0
  let current: Array<string> = []
  let size = 0
  const close = () => {
    if (current.length > 0) {
      bodies.push(current.join("\n"))
      counts.push(current.length)
    }
    current = []
    size = 0
  }
  for (const line of lines) {
    const bytes = encoder.encode(line).length
    if (bytes > maxBytes) {
      oversized++
      continue
    }
    const added = current.length === 0 ? bytes : bytes + 1
    if (size + added > maxBytes) close()
    size += current.length === 0 ? bytes : bytes + 1
    current.push(line)
  }
  close()
  return { bodies, counts, oversized }
}

/** The `exp` claim of a JWT in epoch milliseconds, or `undefined` when absent or unreadable. */
export const jwtExpiryMillis = (token: string): number | undefined => {
  const payload = token.split(".")[1]
  if (payload === undefined) return undefined
  try {
    const json = JSON.parse(new TextDecoder().decode(base64UrlDecode(payload))) as unknown
    const exp = typeof json === "object" && json !== null ? (json as Record<string, unknown>)["exp"] : undefined
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined
  } catch {
    return undefined
  }
}

const base64UrlDecode = (text: string): Uint8Array => {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=")
  const binary = atob(base64)
  return Uint8Array.from(binary, (c) => c.charCodeAt(0))
}
