/**
 * The pure half of the dev backend: strict decoding of one callback request against the
 * contract (with problems named by JSON path), the events it records, their one-line
 * rendering and a run summary.
 */
import { Either, ParseResult, Schema } from "effect"
import { maxJsonDepth } from "./diceModel.js"
import {
  type CallbackEndpointName,
  CompletionBody,
  ExportCompletedBody,
  ExportStartedBody,
  FailedBody,
  InferenceCompletedBody,
  InferenceStartedBody,
  LogEntryBody,
  type MetricsBlock,
  matchCallbackEndpoint,
  TrainingProgressBody,
  TrainingStartedBody,
  ValidationBody
} from "./callbackBodies.js"

/** The operation a callback belongs to. */
export type DevBackendOperation = "training" | "inference" | "export"

/** What an accepted callback announced. */
export type DevBackendEventKind = "started" | "progress" | "validation" | "completed" | "failed" | "log"

/** Every kind, in lifecycle order (the keys of a summary's counts). */
export const devBackendEventKinds: ReadonlyArray<DevBackendEventKind> = [
  "started",
  "progress",
  "validation",
  "log",
  "completed",
  "failed"
]

/** The kind, operation and decoded body of an accepted callback (a discriminated union). */
export type DevBackendPayload =
  | { readonly kind: "started"; readonly operation: "training"; readonly body: typeof TrainingStartedBody.Type }
  | { readonly kind: "started"; readonly operation: "inference"; readonly body: typeof InferenceStartedBody.Type }
  | { readonly kind: "started"; readonly operation: "export"; readonly body: typeof ExportStartedBody.Type }
  | { readonly kind: "progress"; readonly operation: "training"; readonly body: typeof TrainingProgressBody.Type }
  | { readonly kind: "validation"; readonly operation: "training"; readonly body: typeof ValidationBody.Type }
  | { readonly kind: "log"; readonly operation: "training"; readonly body: typeof LogEntryBody.Type }
  | { readonly kind: "completed"; readonly operation: "training"; readonly body: typeof CompletionBody.Type }
  | { readonly kind: "completed"; readonly operation: "inference"; readonly body: typeof InferenceCompletedBody.Type }
  | { readonly kind: "completed"; readonly operation: "export"; readonly body: typeof ExportCompletedBody.Type }
  | { readonly kind: "failed"; readonly operation: DevBackendOperation; readonly body: typeof FailedBody.Type }

/** One accepted callback, as recorded by the dev backend. */
export type DevBackendEvent = DevBackendPayload & {
  /** 1-based position among the accepted events. */
  readonly sequence: number
  /** When it was received (epoch milliseconds, from `Clock`). */
  readonly receivedAt: number
  /** The request path relative to the API base, e.g. `/training/jobs/7/callback/progress`. */
  readonly path: string
  readonly endpoint: CallbackEndpointName
  readonly jobId: number
}

/** One problem of a rejected body: the JSON path (`""` for the body itself) and what is wrong. */
export interface DevBackendFieldIssue {
  readonly field: string
  readonly problem: string
}

/** A request the dev backend refused, with why. */
export interface DevBackendRejection {
  readonly receivedAt: number
  readonly method: string
  readonly path: string
  /**
   * 404 (no such endpoint), 413 (body too large), 422 (the body breaks the contract) or
   * 500 (the dev backend itself failed on it; the problem is in `issues`).
   */
  readonly status: 404 | 413 | 422 | 500
  /** The job id of the path, when the path names an endpoint. */
  readonly jobId: number | undefined
  /** Empty for a 404; the one problem with the body as a whole (field `""`) for a 413 or 500. */
  readonly issues: ReadonlyArray<DevBackendFieldIssue>
}

/** Renders a parse path as a JSON path: `metrics.extra_metrics["mAP50-95"]`, `image_results[0].iou`. */
export const formatJsonPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((acc, key) => {
    if (typeof key === "number") return `${acc}[${key}]`
    const name = String(key)
    if (/^[A-Za-z_$][\w$]*$/.test(name)) return acc === "" ? name : `${acc}.${name}`
    return `${acc}[${JSON.stringify(name)}]`
  }, "")

const literalMismatch = /^Expected ("(?:[^"\\]|\\.)*"|-?\d[\d.e+-]*|true|false|null), actual (.*)$/s

/**
 * The alternatives of a union merged into one problem: a union of literals (`"DEBUG" |
 * "INFO" | ...`) as `expected one of DEBUG, INFO, got "LOUD"`, any other (`number | null`)
 * as its messages joined by `; or `.
 */
export const mergeUnionProblems = (problems: ReadonlyArray<string>): string => {
  const literals = problems.map((problem) => literalMismatch.exec(problem))
  if (problems.length > 1 && literals.every((m) => m !== null && m[2] === literals[0]![2])) {
    const choices = literals.map((m) => (m![1]!.startsWith("\"") ? JSON.parse(m![1]!) as string : m![1]!))
    return `expected one of ${choices.join(", ")}, got ${literals[0]![2]}`
  }
  return problems.join("; or ")
}

/** One issue per field: the alternatives of a union are merged into one line (`mergeUnionProblems`). */
const fieldIssues = (error: ParseResult.ParseError): ReadonlyArray<DevBackendFieldIssue> => {
  const byField = new Map<string, Array<string>>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const field = formatJsonPath(issue.path)
    const problem = issue._tag === "Unexpected" ? "is not a field of this callback (excess properties are rejected)" : issue.message
    const problems = byField.get(field) ?? []
    if (!problems.includes(problem)) problems.push(problem)
    byField.set(field, problems)
  }
  return Array.from(byField, ([field, problems]) => ({ field, problem: mergeUnionProblems(problems) }))
}

/**
 * Where a parsed body nests arrays/objects deeper than `maxJsonDepth`: the path of its
 * top-level field (`[]` when the body itself is too deep an array), or `undefined` when it
 * does not. Iterative, so a hostile body cannot overflow the stack here.
 */
export const tooDeepField = (value: unknown): ReadonlyArray<PropertyKey> | undefined => {
  const stack: Array<readonly [unknown, number, ReadonlyArray<PropertyKey>]> = [[value, 1, []]]
  while (stack.length > 0) {
    const [current, depth, field] = stack.pop()!
    if (typeof current !== "object" || current === null) continue
    if (depth > maxJsonDepth) return field
    const entries: Array<readonly [PropertyKey, unknown]> = Array.isArray(current)
      ? current.map((child, index) => [index, child] as const)
      : Object.entries(current)
    for (const [key, child] of entries) {
      if (typeof child === "object" && child !== null) {
        stack.push([child, depth + 1, depth === 1 && !Array.isArray(current) ? [key] : field])
      }
    }
  }
  return undefined
}

/** The outcome of decoding one request: the event payload, or the problems with its body. */
export type DevBackendDecoded =
  | { readonly _tag: "Accepted"; readonly endpoint: CallbackEndpointName; readonly jobId: number; readonly payload: DevBackendPayload }
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "Invalid"; readonly jobId: number; readonly issues: ReadonlyArray<DevBackendFieldIssue> }

/**
 * Decodes one POST (path relative to the API base, raw body text) strictly: the body must
 * be JSON matching one of the endpoint's schemas with no excess property, and its `job_id`
 * must equal the id in the path. When no schema matches, the issues of the closest one
 * (fewest problems) are returned.
 */
export const decodeDevBackendRequest = (path: string, text: string): DevBackendDecoded => {
  const match = matchCallbackEndpoint(path.split("?")[0]!)
  if (match === undefined) return { _tag: "NotFound" }
  const { endpoint, jobId } = match
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error)
    return { _tag: "Invalid", jobId, issues: [{ field: "", problem: `the body is not valid JSON (${detail})` }] }
  }
  const deep = tooDeepField(json)
  if (deep !== undefined) {
    return {
      _tag: "Invalid",
      jobId,
      issues: [{ field: formatJsonPath(deep), problem: `nests arrays/objects deeper than ${maxJsonDepth} levels` }]
    }
  }
  let closest: ReadonlyArray<DevBackendFieldIssue> | undefined
  for (const { kind, operation, schema } of endpoint.accepts) {
    const decoded = Schema.decodeUnknownEither(schema)(json, { onExcessProperty: "error", errors: "all" })
    if (Either.isRight(decoded)) {
      const body = decoded.right as { readonly job_id: number }
      if (body.job_id !== jobId) {
        return {
          _tag: "Invalid",
          jobId,
          issues: [{ field: "job_id", problem: `is ${body.job_id} but the path addresses job ${jobId}` }]
        }
      }
      return { _tag: "Accepted", endpoint: endpoint.name, jobId, payload: { kind, operation, body: decoded.right } as DevBackendPayload }
    }
    const issues = fieldIssues(decoded.left)
    if (closest === undefined || issues.length < closest.length) closest = issues
  }
  return { _tag: "Invalid", jobId, issues: closest ?? [] }
}

/** The `job_status` the backend answers with after `payload`, given the job's previous status. */
export const jobStatusAfter = (payload: DevBackendPayload, previous: string | null): string | null =>
  payload.kind === "started" || payload.kind === "progress"
    ? "running"
    : payload.kind === "completed" || payload.kind === "failed"
    ? payload.kind
    : previous

/** A metric value for humans: integers as is, others with 4 significant digits. */
const formatNumber = (value: number | null): string =>
  value === null ? "null" : Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)))

const formatMetrics = (metrics: Readonly<Record<string, number | null>>): string =>
  Object.entries(metrics).map(([name, value]) => `${name}=${formatNumber(value)}`).join(" ")

const formatBlock = (block: MetricsBlock): string => {
  if (Object.keys(block.extra_metrics).length > 0) return formatMetrics(block.extra_metrics)
  const named: Record<string, number | null> = {}
  if (block.loss !== null) named.loss = block.loss
  if (block.accuracy !== null) named.accuracy = block.accuracy
  if (block.learning_rate !== null) named.learning_rate = block.learning_rate
  return formatMetrics(named)
}

const columns = (...parts: ReadonlyArray<string | undefined>): string =>
  parts.filter((part): part is string => part !== undefined && part !== "").join("  ")

const label = (text: string): string => text.padEnd(10)

/** Describes one payload without its job prefix. */
const describePayload = (payload: DevBackendPayload): string => {
  switch (payload.kind) {
    case "started":
      return payload.operation === "training"
        ? columns(label("started"), "training", `${payload.body.total_epochs} epochs`)
        : columns(label("started"), payload.operation)
    case "progress": {
      const b = payload.body
      return columns(
        label("progress"),
        `epoch ${b.current_epoch}/${b.total_epochs}`,
        `${b.progress_percent.toFixed(1)}%`,
        formatBlock(b.metrics),
        b.estimated_time_remaining === undefined ? undefined : `eta ${Math.round(b.estimated_time_remaining)}s`,
        b.checkpoint_path === undefined ? undefined : `checkpoint=${b.checkpoint_path}`
      )
    }
    case "validation": {
      const b = payload.body
      return columns(
        label("validation"),
        `epoch ${b.epoch}`,
        `${b.primary_metric_name}=${formatNumber(b.primary_metric_value)}${b.is_best ? " (best)" : ""}`,
        `task=${b.task_type}`
      )
    }
    case "log": {
      const b = payload.body
      return columns(label("log"), b.level.padEnd(7), `${b.event_type}: ${b.message}`)
    }
    case "failed": {
      const b = payload.body
      return columns(
        label("failed"),
        payload.operation,
        `after ${b.total_epochs_completed} epochs`,
        b.error_message
      )
    }
    case "completed":
      switch (payload.operation) {
        case "training": {
          const b = payload.body
          return columns(
            label("completed"),
            "training",
            `${b.total_epochs_completed} epochs`,
            formatBlock(b.final_metrics),
            b.best_checkpoint_path === undefined ? undefined : `best=${b.best_checkpoint_path}`
          )
        }
        case "inference": {
          const b = payload.body
          return columns(
            label("completed"),
            "inference",
            `${b.total_images} images`,
            `avg ${formatNumber(b.avg_inference_time_ms)} ms`
          )
        }
        case "export": {
          const b = payload.body
          return columns(label("completed"), "export", b.export_format, `${b.file_size_bytes} bytes`, b.output_s3_uri)
        }
      }
  }
}

/** One readable line for an accepted event, e.g. `[job 7] progress    epoch 3/10  30.0%  loss=0.412`. */
export const formatDevBackendEvent = (event: DevBackendEvent): string =>
  `[job ${event.jobId}] ${describePayload(event)}`

/** One readable line for a refused request, naming every offending field. */
export const formatDevBackendRejection = (rejection: DevBackendRejection): string => {
  const who = rejection.jobId === undefined ? "[backend]" : `[job ${rejection.jobId}]`
  if (rejection.status === 404) return `${who} ${label("REJECTED")}  404 ${rejection.method} ${rejection.path}: no such endpoint`
  const issues = rejection.issues.map((issue) => `${issue.field === "" ? "body" : issue.field}: ${issue.problem}`)
  return `${who} ${label("REJECTED")}  ${rejection.status} ${rejection.method} ${rejection.path}: ${issues.join("; ")}`
}

/** What the backend knows about one job at the end. */
export interface DevBackendJobSummary {
  readonly jobId: number
  readonly operation: DevBackendOperation
  /** `running`, `completed`, `failed`, or `null` when only logs or validation arrived. */
  readonly status: string | null
  /** The last epoch reported as progress. */
  readonly lastEpoch: number | undefined
  readonly totalEpochs: number | undefined
  /** The failure message, when the job failed. */
  readonly errorMessage: string | undefined
}

/** Counts per kind, rejections and the final state of every job seen. */
export interface DevBackendSummary {
  readonly accepted: number
  readonly rejected: number
  readonly counts: Readonly<Record<DevBackendEventKind, number>>
  readonly jobs: ReadonlyArray<DevBackendJobSummary>
}

/** Summarizes what a dev backend received. */
export const summarizeDevBackendEvents = (
  events: ReadonlyArray<DevBackendEvent>,
  rejections: ReadonlyArray<DevBackendRejection> = []
): DevBackendSummary => {
  const counts: Record<DevBackendEventKind, number> = {
    started: 0,
    progress: 0,
    validation: 0,
    log: 0,
    completed: 0,
    failed: 0
  }
  const jobs = new Map<number, DevBackendJobSummary>()
  for (const event of events) {
    counts[event.kind] += 1
    const previous: DevBackendJobSummary = jobs.get(event.jobId) ?? {
      jobId: event.jobId,
      operation: event.operation,
      status: null,
      lastEpoch: undefined,
      totalEpochs: undefined,
      errorMessage: undefined
    }
    jobs.set(event.jobId, {
      ...previous,
      operation: event.kind === "log" || event.kind === "validation" ? previous.operation : event.operation,
      status: jobStatusAfter(event, previous.status),
      lastEpoch: event.kind === "progress" ? event.body.current_epoch : previous.lastEpoch,
      totalEpochs: event.kind === "progress" || (event.kind === "started" && event.operation === "training")
        ? event.body.total_epochs
        : previous.totalEpochs,
      errorMessage: event.kind === "failed" ? event.body.error_message : previous.errorMessage
    })
  }
  return { accepted: events.length, rejected: rejections.length, counts, jobs: Array.from(jobs.values()) }
}

/** A few readable lines for a summary (counts, then one line per job). */
export const formatDevBackendSummary = (summary: DevBackendSummary): string => {
  const counts = devBackendEventKinds.map((kind) => `${kind}=${summary.counts[kind]}`).join(" ")
  const lines = [`${summary.accepted} callbacks accepted, ${summary.rejected} rejected  (${counts})`]
  for (const job of summary.jobs) {
    const epochs = job.lastEpoch === undefined ? "" : `  epoch ${job.lastEpoch}/${job.totalEpochs ?? "?"}`
    const failure = job.errorMessage === undefined ? "" : `  ${job.errorMessage}`
    lines.push(`job ${job.jobId} (${job.operation}): ${job.status ?? "no status"}${epochs}${failure}`)
  }
  return lines.join("\n")
}
