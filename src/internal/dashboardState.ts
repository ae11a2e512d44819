/**
 * The dev backend's dashboard model: a projection of the events and rejections the dev
 * backend recorded into what the platform's UI shows per job (status, epochs, per-epoch
 * metric series, validation with the best epoch, logs, checkpoints, refused requests).
 * Pure: the same recorded events always give the same state. Served as JSON at
 * `/dashboard/state` and pushed over Server-Sent Events at `/dashboard/stream`.
 */
import type { BackendMetrics } from "./backendModels.js"
import type { DashboardCheckpoint, DashboardEpochPoint, DashboardJob, DashboardLog, DashboardRejection, DashboardState, DashboardValidation, DashboardValidationPoint, DevBackendEvent, DevBackendOperation, DevBackendRejection } from "../DevBackend.js"

/** How many log rows per job the platform keeps (platform-behaviour.md); older rows are gone there. */
export const dashboardLogRowsKept = 2000

/** The metric names that carry the learning rate (charted as "learning rate"). */
export const learningRateMetricNames: ReadonlyArray<string> = ["learning_rate", "lr"]

interface JobDraft {
  jobId: number
  kind: DevBackendOperation | null
  status: DashboardJob["status"]
  error: DashboardJob["error"]
  currentEpoch: number | null
  totalEpochs: number | null
  progressPercent: number | null
  startedAt: number
  updatedAt: number
  endedAt: number | null
  estimate: { readonly at: number; readonly seconds: number } | null
  epochs: Map<number, DashboardEpochPoint>
  metricNames: Array<string>
  primaryMetricName: string | null
  validations: Map<number, DashboardValidationPoint>
  latestValidation: DashboardValidation | null
  logs: Array<DashboardLog>
  latestLogTime: number
  checkpoints: Array<DashboardCheckpoint>
  completionCheckpoints: Array<DashboardCheckpoint>
  result: Array<{ readonly label: string; readonly value: string }>
}

/**
 * Every numeric metric of a block (as the backend's model decoded it; every field may be
 * missing): all of `extra_metrics`, plus loss/accuracy/learning rate under their own names
 * when not already there.
 */
export const blockMetrics = (block: BackendMetrics | null | undefined): Record<string, number> => {
  const out: Record<string, number> = {}
  if (block === null || block === undefined) return out
  const extra = block.extra_metrics ?? {}
  for (const [name, value] of Object.entries(extra)) if (typeof value === "number" && Number.isFinite(value)) out[name] = value
  const has = (...names: ReadonlyArray<string>) => names.some((name) => name in extra)
  if (typeof block.loss === "number" && !has("loss")) out["loss"] = block.loss
  if (typeof block.accuracy === "number" && !has("accuracy", "mAP50-95")) out["accuracy"] = block.accuracy
  if (typeof block.learning_rate === "number" && !has(...learningRateMetricNames)) out["learning_rate"] = block.learning_rate
  return out
}

/** `value`, with `null` (an Optional field sent as null) read as absent. */
const given = <A>(value: A | null | undefined): A | undefined => value ?? undefined

/** Chart order: loss first, then the other metrics as first reported, the learning rate last. */
const chartOrder = (names: ReadonlyArray<string>): Array<string> => {
  const rank = (name: string) => (name === "loss" ? 0 : learningRateMetricNames.includes(name) ? 2 : 1)
  return names.map((name, index) => ({ name, index })).sort((a, b) => rank(a.name) - rank(b.name) || a.index - b.index).map((
    entry
  ) => entry.name)
}

/** `[FrameworkError] loss diverged` → the bracketed error type, when there is one. */
const errorTypeOf = (message: string): string | null => /^\[([A-Za-z]+)\]/.exec(message)?.[1] ?? null

const rejectionView = (rejection: DevBackendRejection): DashboardRejection => ({
  at: rejection.receivedAt,
  method: rejection.method,
  path: rejection.path,
  status: rejection.status,
  jobId: rejection.jobId ?? null,
  issues: rejection.issues
})

const numericRecord = (value: unknown): Record<string, number | null> => {
  const out: Record<string, number | null> = {}
  if (typeof value !== "object" || value === null || Array.isArray(value)) return out
  for (const [name, entry] of Object.entries(value)) {
    if (entry === null || (typeof entry === "number" && Number.isFinite(entry))) out[name] = entry
  }
  return out
}

const blockView = (block: BackendMetrics | null | undefined): Record<string, number | null> => ({ ...blockMetrics(block) })

const applyEvent = (job: JobDraft, event: DevBackendEvent): void => {
  job.updatedAt = event.receivedAt
  if (event.kind !== "log" && event.kind !== "validation") job.kind = event.operation
  switch (event.kind) {
    case "started": {
      job.status = "running"
      job.startedAt = Math.min(job.startedAt, event.receivedAt)
      if (event.operation === "training") {
        job.totalEpochs = event.body.total_epochs
        job.currentEpoch = 0
        job.progressPercent = 0
      }
      return
    }
    case "progress": {
      const body = event.body
      job.status = "running"
      job.currentEpoch = body.current_epoch
      job.totalEpochs = body.total_epochs
      job.progressPercent = given(body.progress_percent) ?? Math.min(100, (body.current_epoch / body.total_epochs) * 100)
      const metrics = blockMetrics(body.metrics)
      for (const name of Object.keys(metrics)) if (!job.metricNames.includes(name)) job.metricNames.push(name)
      job.epochs.set(body.current_epoch, { epoch: body.current_epoch, at: event.receivedAt, metrics })
      const left = body.total_epochs - body.current_epoch
      const perEpoch = given(body.epoch_duration_seconds) ??
        (body.current_epoch > 0 ? (event.receivedAt - job.startedAt) / 1000 / body.current_epoch : undefined)
      const seconds = given(body.estimated_time_remaining) ?? (perEpoch === undefined ? undefined : perEpoch * Math.max(0, left))
      job.estimate = seconds === undefined ? job.estimate : { at: event.receivedAt, seconds }
      for (const [type, uri] of [["checkpoint", given(body.checkpoint_path)], ["best", given(body.best_checkpoint_path)]] as const) {
        if (uri !== undefined) job.completionCheckpoints.push({ type, uri, metrics: blockView(body.metrics), at: event.receivedAt, source: "progress" })
      }
      return
    }
    case "validation": {
      const body = event.body
      job.primaryMetricName = given(body.primary_metric_name) ?? job.primaryMetricName
      // `is_best` is not in the backend's model: it is among the fields the dev backend dropped.
      job.validations.set(body.epoch, {
        epoch: body.epoch,
        value: given(body.primary_metric_value) ?? null,
        reportedBest: event.ignored["is_best"] === true
      })
      const perClass: Record<string, unknown> = { ...given(body.per_class_metrics) }
      const classNames = given(body.class_names) ?? []
      const ordered = [...classNames.filter((name) => name in perClass), ...Object.keys(perClass).filter((name) => !classNames.includes(name))]
      job.latestValidation = {
        epoch: body.epoch,
        taskType: body.task_type,
        primaryMetricName: given(body.primary_metric_name) ?? "",
        primaryMetricValue: given(body.primary_metric_value) ?? null,
        metrics: numericRecord(body.metrics),
        overallLoss: given(body.overall_loss) ?? null,
        classNames,
        perClassMetrics: ordered.map((className) => ({ className, metrics: numericRecord(perClass[className]) })),
        confusionMatrix: given(body.confusion_matrix) ?? null,
        visualizationUrls: given(body.visualization_urls) ?? {}
      }
      return
    }
    case "log": {
      const body = event.body
      const checkpoint = body.event_type === "checkpoint"
      const data = given(body.data) ?? {}
      const timestamp = given(body.timestamp) ?? ""
      // The backend's model takes any string here: one that is no date is never "late".
      const time = Date.parse(timestamp)
      const outOfOrder = time < job.latestLogTime
      if (time > job.latestLogTime) job.latestLogTime = time
      job.logs.push({
        sequence: event.sequence,
        at: event.receivedAt,
        level: body.level ?? "INFO",
        eventType: body.event_type,
        message: body.message,
        timestamp,
        data,
        checkpoint,
        outOfOrder
      })
      const uri = data["s3_uri"]
      if (checkpoint && typeof uri === "string") {
        const type = /^Saved (.+) checkpoint$/.exec(body.message)?.[1] ?? "checkpoint"
        job.checkpoints.push({ type, uri, metrics: numericRecord(data["metrics"]), at: event.receivedAt, source: "log" })
      }
      return
    }
    case "completed": {
      job.status = "completed"
      job.endedAt = event.receivedAt
      job.estimate = null
      switch (event.operation) {
        case "training": {
          const body = event.body
          const bestEpoch = given(body.best_epoch)
          const duration = given(body.total_duration_seconds)
          const mlflowRunId = given(body.mlflow_run_id)
          job.result = [
            { label: "epochs completed", value: String(body.total_epochs_completed) },
            ...(bestEpoch === undefined ? [] : [{ label: "best epoch", value: String(bestEpoch) }]),
            ...(duration === undefined ? [] : [{ label: "duration", value: `${duration} s` }]),
            ...(mlflowRunId === undefined ? [] : [{ label: "MLflow run", value: mlflowRunId }])
          ]
          const named: ReadonlyArray<readonly [string, string | undefined, BackendMetrics | null | undefined]> = [
            ["best", given(body.best_checkpoint_path), body.best_metrics],
            ["last", given(body.last_checkpoint_path), body.final_metrics],
            ["final", given(body.final_checkpoint_path), body.final_metrics],
            ["artifacts", given(body.model_artifacts_path), undefined]
          ]
          for (const [type, uri, block] of named) {
            if (uri !== undefined) {
              job.completionCheckpoints.push({ type, uri, metrics: blockView(block), at: event.receivedAt, source: "completion" })
            }
          }
          return
        }
        case "inference": {
          const body = event.body
          const results = given(body.results) ?? []
          const line = (label: string, value: number | null | undefined, unit = "") =>
            value === null || value === undefined ? [] : [{ label, value: `${value}${unit}` }]
          job.result = [
            ...line("images", given(body.total_images) ?? results.length),
            ...line("total inference time", body.total_inference_time_ms, " ms"),
            ...line("average per image", body.avg_inference_time_ms, " ms"),
            { label: "results", value: String(results.length) }
          ]
          return
        }
        case "export": {
          const body = event.body
          job.result = [
            { label: "format", value: given(body.export_format) ?? "" },
            { label: "output", value: given(body.output_s3_uri) ?? "" },
            { label: "size", value: `${given(body.file_size_bytes) ?? 0} bytes` }
          ]
          return
        }
        case "evaluation": {
          const body = event.body
          const metrics = numericRecord(body.metrics)
          const images = given(body.num_images)
          const predictions = given(body.predictions_json_uri)
          job.result = [
            { label: "task type", value: body.task_type },
            ...(images === undefined ? [] : [{ label: "images", value: String(images) }]),
            ...Object.entries(metrics).map(([label, value]) => ({ label, value: String(value) })),
            ...(predictions === undefined ? [] : [{ label: "predictions", value: predictions }])
          ]
          return
        }
      }
      return
    }
    case "failed": {
      job.status = "failed"
      job.endedAt = event.receivedAt
      job.estimate = null
      const message = given(event.body.error_message) ?? ""
      job.error = { type: errorTypeOf(message), message, traceback: given(event.body.traceback) ?? null }
      job.result = event.operation === "training"
        ? [{ label: "epochs completed", value: String(event.body.total_epochs_completed) }]
        : []
      return
    }
  }
}

const finish = (job: JobDraft, rejections: ReadonlyArray<DashboardRejection>): DashboardJob => {
  const validations = Array.from(job.validations.values()).sort((a, b) => a.epoch - b.epoch)
  let bestEpoch: DashboardJob["bestEpoch"] = null
  for (const point of validations) {
    if (point.value !== null && (bestEpoch === null || point.value > bestEpoch.value)) bestEpoch = { epoch: point.epoch, value: point.value }
  }
  // A checkpoint the completion or a progress report names is listed only when no upload
  // entry already showed that URI.
  const uploaded = new Set(job.checkpoints.map((checkpoint) => checkpoint.uri))
  const named = new Map<string, DashboardCheckpoint>()
  for (const checkpoint of job.completionCheckpoints) {
    if (!uploaded.has(checkpoint.uri) && !named.has(checkpoint.uri)) named.set(checkpoint.uri, checkpoint)
  }
  return {
    jobId: job.jobId,
    kind: job.kind,
    status: job.status,
    error: job.error,
    currentEpoch: job.currentEpoch,
    totalEpochs: job.totalEpochs,
    progressPercent: job.progressPercent,
    startedAt: job.startedAt,
    updatedAt: job.updatedAt,
    endedAt: job.endedAt,
    etaAt: job.status === "running" && job.estimate !== null ? job.estimate.at + job.estimate.seconds * 1000 : null,
    metricNames: chartOrder(job.metricNames),
    epochs: Array.from(job.epochs.values()).sort((a, b) => a.epoch - b.epoch),
    primaryMetricName: job.primaryMetricName,
    validations,
    bestEpoch,
    latestValidation: job.latestValidation,
    logs: job.logs.slice(-dashboardLogRowsKept),
    logsDropped: Math.max(0, job.logs.length - dashboardLogRowsKept),
    checkpoints: [...job.checkpoints, ...named.values()],
    result: job.result,
    rejections: rejections.filter((rejection) => rejection.jobId === job.jobId)
  }
}

/** The operation a refused request's path belongs to (`undefined` for the shared training paths of logs and validation). */
const rejectedOperation = (path: string): DevBackendOperation | undefined =>
  path.startsWith("/test_inference/inference/")
    ? "inference"
    : path.startsWith("/test_inference/test/")
    ? "evaluation"
    : path.startsWith("/export/")
    ? "export"
    : path.startsWith("/training/jobs/") && !path.endsWith("/logs")
    ? "training"
    : undefined

/** Projects what a dev backend recorded into the dashboard's state, at time `now`. */
export const projectDashboardState = (
  events: ReadonlyArray<DevBackendEvent>,
  rejections: ReadonlyArray<DevBackendRejection>,
  now: number
): DashboardState => {
  // Keyed by operation and id: a training job and an inference job may share a number.
  // Log and validation reports belong to training jobs; a refused request to its path's job.
  const jobs = new Map<string, JobDraft>()
  const draft = (key: string, jobId: number, at: number): JobDraft => {
    const existing = jobs.get(key)
    if (existing !== undefined) return existing
    const job: JobDraft = {
      jobId,
      kind: null,
      status: "waiting",
      error: null,
      currentEpoch: null,
      totalEpochs: null,
      progressPercent: null,
      startedAt: at,
      updatedAt: at,
      endedAt: null,
      estimate: null,
      epochs: new Map(),
      metricNames: [],
      primaryMetricName: null,
      validations: new Map(),
      latestValidation: null,
      logs: [],
      latestLogTime: Number.NEGATIVE_INFINITY,
      checkpoints: [],
      completionCheckpoints: [],
      result: []
    }
    jobs.set(key, job)
    return job
  }
  for (const event of events) applyEvent(draft(`${event.operation}:${event.jobId}`, event.jobId, event.receivedAt), event)
  // A job whose every request was refused still gets a view: showing why is the point of a dry run.
  for (const rejection of rejections) {
    if (rejection.jobId === undefined) continue
    const operation = rejectedOperation(rejection.path)
    const seen = Array.from(jobs.keys()).find((key) => key.endsWith(`:${rejection.jobId}`) && (operation === undefined || key.startsWith(`${operation}:`)))
    draft(seen ?? `${operation ?? "training"}:${rejection.jobId}`, rejection.jobId, rejection.receivedAt)
  }
  const refused = rejections.map(rejectionView)
  return {
    now,
    accepted: events.length,
    jobs: Array.from(jobs.values(), (job) => finish(job, refused)).sort((a, b) => a.startedAt - b.startedAt || a.jobId - b.jobId),
    rejections: refused
  }
}
