/**
 * The pure half of the dev backend: strict decoding of one callback request against the
 * contract (with problems named by JSON path), the events it records, their one-line
 * rendering and a run summary.
 */
import { Either, ParseResult, Schema } from "effect"
import { formatJsonPath, tooDeepField } from "./json.js"
import { maxJsonDepth } from "./jsonChunks.js"
import {
  BackendCompletion,
  BackendExportCompletion,
  BackendInferenceResults,
  BackendLogEvent,
  type BackendMetrics,
  BackendOperationStarted,
  BackendProgress,
  BackendTestResults,
  BackendValidation,
  exportCompletedRequired
} from "./backendModels.js"
import { type CallbackEndpointName, matchCallbackEndpoint } from "./callbackBodies.js"
import type { DevBackendEvent, DevBackendEventKind, DevBackendFieldIssue, DevBackendJobSummary, DevBackendPayload, DevBackendRejection, DevBackendSummary } from "../DevBackend.js"
import { thrownMessage } from "../Errors.js"

/** Every kind, in lifecycle order (the keys of a summary's counts). */
export const devBackendEventKinds: ReadonlyArray<DevBackendEventKind> = [
  "started",
  "progress",
  "validation",
  "log",
  "completed",
  "failed"
]

const isFailure = (body: { readonly status: string }) => body.status === "failed"
const outcome = (body: { readonly status: string }) => (isFailure(body) ? "failed" as const : "completed" as const)

/** Extra checks beyond the model's fields (a successful export must say what it produced). */
const exportCompletionIssues = (body: typeof BackendExportCompletion.Type): ReadonlyArray<DevBackendFieldIssue> =>
  isFailure(body)
    ? []
    : exportCompletedRequired.flatMap((field) =>
      body[field] === undefined || body[field] === null
        ? [{ field, problem: "is missing (a completed export must carry it)" }]
        : []
    )

interface EndpointModel {
  readonly schema: Schema.Schema.AnyNoContext
  readonly payload: (body: never) => DevBackendPayload
  readonly check?: (body: never) => ReadonlyArray<DevBackendFieldIssue>
}

const model = <A, I>(
  schema: Schema.Schema<A, I>,
  payload: (body: A) => DevBackendPayload,
  check?: (body: A) => ReadonlyArray<DevBackendFieldIssue>
): EndpointModel => ({
  schema: schema as unknown as Schema.Schema.AnyNoContext,
  payload: payload as (body: never) => DevBackendPayload,
  ...(check === undefined ? {} : { check: check as (body: never) => ReadonlyArray<DevBackendFieldIssue> })
})

/** A training progress report at epoch 0 without metrics is the job's start. */
const isTrainingStart = (body: BackendProgress) =>
  body.status === "running" && body.current_epoch === 0 && (body.metrics === undefined || body.metrics === null)

/** For each endpoint, the backend's model and what an accepted body means. */
const models: Record<CallbackEndpointName, EndpointModel> = {
  trainingProgress: model(BackendProgress, (body) =>
    isTrainingStart(body)
      ? { kind: "started", operation: "training", body }
      : { kind: "progress", operation: "training", body }),
  trainingCompletion: model(BackendCompletion, (body) => ({ kind: outcome(body), operation: "training", body })),
  trainingLogs: model(BackendLogEvent, (body) => ({ kind: "log", operation: "training", body })),
  validationResults: model(BackendValidation, (body) => ({ kind: "validation", operation: "training", body })),
  inferenceStarted: model(BackendOperationStarted, (body) => ({ kind: "started", operation: "inference", body })),
  inferenceCompletion: model(BackendInferenceResults, (body) => ({ kind: outcome(body), operation: "inference", body })),
  exportStarted: model(BackendOperationStarted, (body) => ({ kind: "started", operation: "export", body })),
  exportCompletion: model(
    BackendExportCompletion,
    (body) => ({ kind: outcome(body), operation: "export", body }),
    exportCompletionIssues
  ),
  evaluationResults: model(BackendTestResults, (body) => ({ kind: outcome(body), operation: "evaluation", body }))
}

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

/** The `null` / missing alternatives of an optional field, which say nothing about what was wrong. */
const optionalAlternative = /^Expected (null|undefined), actual /

/**
 * One issue per field: the alternatives of a union are merged into one line
 * (`mergeUnionProblems`), an optional field's `null`/missing alternatives are left out, and
 * a field whose deeper parts are named is not named again on its own.
 */
const fieldIssues = (error: ParseResult.ParseError): ReadonlyArray<DevBackendFieldIssue> => {
  const byField = new Map<string, Array<string>>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const field = formatJsonPath(issue.path)
    const problem = issue._tag === "Unexpected" ? "is not a field of this callback (excess properties are rejected)" : issue.message
    const problems = byField.get(field) ?? []
    if (!problems.includes(problem)) problems.push(problem)
    byField.set(field, problems)
  }
  const fields = Array.from(byField.keys())
  return Array.from(byField).flatMap(([field, problems]) => {
    const telling = problems.filter((problem) => !optionalAlternative.test(problem))
    if (telling.length > 0) return [{ field, problem: mergeUnionProblems(telling) }]
    const deeper = fields.some((other) => other !== field && (other.startsWith(`${field}.`) || other.startsWith(`${field}[`)))
    return deeper ? [] : [{ field, problem: mergeUnionProblems(problems) }]
  })
}

/** The outcome of decoding one request: the event payload, or the problems with its body. */
export type DevBackendDecoded =
  | {
    readonly _tag: "Accepted"
    readonly endpoint: CallbackEndpointName
    readonly jobId: number
    readonly payload: DevBackendPayload
    /** Top-level fields the model does not have (dropped), with their values. */
    readonly ignored: Readonly<Record<string, unknown>>
  }
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "Invalid"; readonly jobId: number; readonly issues: ReadonlyArray<DevBackendFieldIssue> }

/**
 * Decodes one POST (path relative to the API base, raw body text) as the backend does: the
 * body must be a JSON object its endpoint's model accepts (lax types, unknown fields
 * dropped and kept in `ignored`); the job is the one the path names.
 */
export const decodeDevBackendRequest = (path: string, text: string): DevBackendDecoded => {
  const match = matchCallbackEndpoint(path.split("?")[0]!)
  if (match === undefined) return { _tag: "NotFound" }
  const { endpoint, jobId } = match
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    const detail = thrownMessage(error)
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
  const { check, payload, schema } = models[endpoint.name]
  const decoded = Schema.decodeUnknownEither(schema)(json, { onExcessProperty: "ignore", errors: "all" })
  if (Either.isLeft(decoded)) return { _tag: "Invalid", jobId, issues: fieldIssues(decoded.left) }
  const extra = check?.(decoded.right as never) ?? []
  if (extra.length > 0) return { _tag: "Invalid", jobId, issues: extra }
  const fields = modelFields(schema)
  const ignored = Object.fromEntries(Object.entries(json as object).filter(([field]) => !fields.has(field)))
  return { _tag: "Accepted", endpoint: endpoint.name, jobId, payload: payload(decoded.right as never), ignored }
}

const fieldsOf = new WeakMap<object, ReadonlySet<string>>()

/** The top-level field names of a struct schema. */
const modelFields = (schema: Schema.Schema.AnyNoContext): ReadonlySet<string> => {
  const cached = fieldsOf.get(schema)
  if (cached !== undefined) return cached
  const ast = schema.ast
  const names = new Set(
    ast._tag === "TypeLiteral" ? ast.propertySignatures.map((p) => String(p.name)) : []
  )
  fieldsOf.set(schema, names)
  return names
}

/** The `job_status` the backend answers with after `payload`, given the job's previous status. */
export const jobStatusAfter = (payload: DevBackendPayload, previous: string | null): string | null =>
  payload.kind === "started" || payload.kind === "progress"
    ? "running"
    : payload.kind === "completed" || payload.kind === "failed"
    ? payload.kind
    : previous

/** A metric value for humans: integers as is, others with 4 significant digits. */
const formatNumber = (value: number | null | undefined): string =>
  value === null || value === undefined
    ? "null"
    : Number.isInteger(value)
    ? String(value)
    : String(Number(value.toPrecision(4)))

const formatMetrics = (metrics: Readonly<Record<string, unknown>>): string =>
  Object.entries(metrics)
    .map(([name, value]) => `${name}=${typeof value === "number" || value === null ? formatNumber(value) : JSON.stringify(value)}`)
    .join(" ")

const formatBlock = (block: BackendMetrics | null | undefined): string => {
  if (block === null || block === undefined) return ""
  if (block.extra_metrics && Object.keys(block.extra_metrics).length > 0) return formatMetrics(block.extra_metrics)
  const named: Record<string, number> = {}
  if (typeof block.loss === "number") named.loss = block.loss
  if (typeof block.accuracy === "number") named.accuracy = block.accuracy
  if (typeof block.learning_rate === "number") named.learning_rate = block.learning_rate
  return formatMetrics(named)
}

const present = <A>(value: A | null | undefined): value is A => value !== null && value !== undefined

const columns = (...parts: ReadonlyArray<string | null | undefined>): string =>
  parts.filter((part): part is string => present(part) && part !== "").join("  ")

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
        present(b.progress_percent) ? `${b.progress_percent.toFixed(1)}%` : undefined,
        formatBlock(b.metrics),
        present(b.estimated_time_remaining) ? `eta ${Math.round(b.estimated_time_remaining)}s` : undefined,
        present(b.checkpoint_path) ? `checkpoint=${b.checkpoint_path}` : undefined,
        present(b.best_checkpoint_path) ? `best=${b.best_checkpoint_path}` : undefined
      )
    }
    case "validation": {
      const b = payload.body
      return columns(
        label("validation"),
        `epoch ${b.epoch}`,
        present(b.primary_metric_name) ? `${b.primary_metric_name}=${formatNumber(b.primary_metric_value)}` : undefined,
        `task=${b.task_type}`
      )
    }
    case "log": {
      const b = payload.body
      return columns(label("log"), (b.level ?? "INFO").padEnd(7), `${b.event_type}: ${b.message}`)
    }
    case "failed":
      // One rule for every kind's failure: its message (training also says how far it got).
      return columns(
        label("failed"),
        payload.operation,
        payload.operation === "training" ? `after ${payload.body.total_epochs_completed} epochs` : undefined,
        payload.body.error_message
      )
    case "completed":
      switch (payload.operation) {
        case "training": {
          const b = payload.body
          return columns(
            label("completed"),
            "training",
            `${b.total_epochs_completed} epochs`,
            formatBlock(b.final_metrics),
            present(b.best_checkpoint_path) ? `best=${b.best_checkpoint_path}` : undefined
          )
        }
        case "inference": {
          const b = payload.body
          return columns(
            label("completed"),
            "inference",
            `${b.total_images ?? b.results?.length ?? 0} images`,
            present(b.avg_inference_time_ms) ? `avg ${formatNumber(b.avg_inference_time_ms)} ms` : undefined
          )
        }
        case "export": {
          const b = payload.body
          return columns(
            label("completed"),
            "export",
            b.export_format,
            present(b.file_size_bytes) ? `${b.file_size_bytes} bytes` : undefined,
            b.output_s3_uri
          )
        }
        case "evaluation": {
          const b = payload.body
          return columns(
            label("completed"),
            "evaluation",
            `task=${b.task_type}`,
            present(b.num_images) ? `${b.num_images} images` : undefined,
            present(b.metrics) ? formatMetrics(b.metrics) : undefined
          )
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
  const jobs = new Map<string, DevBackendJobSummary>()
  for (const event of events) {
    counts[event.kind] += 1
    const key = `${event.operation}:${event.jobId}`
    const previous: DevBackendJobSummary = jobs.get(key) ?? {
      jobId: event.jobId,
      operation: event.operation,
      status: null,
      lastEpoch: undefined,
      totalEpochs: undefined,
      errorMessage: undefined
    }
    jobs.set(key, {
      ...previous,
      status: jobStatusAfter(event, previous.status),
      lastEpoch: event.kind === "progress" ? event.body.current_epoch : previous.lastEpoch,
      totalEpochs: event.kind === "progress" || (event.kind === "started" && event.operation === "training")
        ? event.body.total_epochs
        : previous.totalEpochs,
      errorMessage: event.kind === "failed" ? event.body.error_message ?? undefined : previous.errorMessage
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
