import { assert, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Option, Stream } from "effect"
import * as vm from "node:vm"
import {
  DevBackend,
  type DevBackendEvent,
  type DevBackendRejection
} from "../src/DevBackend.js"
import { decodeDevBackendRequest } from "../src/internal/devBackendEvents.js"
import { projectDashboardState } from "../src/internal/dashboardState.js"
import { dashboardCss, dashboardHtml, dashboardScript } from "../src/internal/dashboardAssets.js"
import { dashboardLogRowsKept } from "../src/internal/dashboardState.js"

const timestamp = "2026-01-02T03:04:05.678Z"

/** Records raw bodies the way the dev backend does: strictly decoded, numbered, timed. */
const recorder = () => {
  const events: Array<DevBackendEvent> = []
  const add = (at: number, path: string, body: unknown) => {
    const decoded = decodeDevBackendRequest(path, JSON.stringify(body))
    if (decoded._tag !== "Accepted") throw new Error(`test body refused: ${JSON.stringify(decoded)}`)
    events.push({
      ...decoded.payload,
      sequence: events.length + 1,
      receivedAt: at,
      path,
      endpoint: decoded.endpoint,
      jobId: decoded.jobId,
      ignored: decoded.ignored
    } as DevBackendEvent)
  }
  return { events, add }
}

interface Block {
  readonly loss: number | null
  readonly accuracy: number | null
  readonly learning_rate: number | null
  readonly extra_metrics: Record<string, number | null>
}
const block = (extra: Record<string, number | null>, loss: number | null = null): Block => ({
  loss,
  accuracy: null,
  learning_rate: null,
  extra_metrics: extra
})
const started = (job: number, total: number) => ({
  job_id: job, status: "running", current_epoch: 0, total_epochs: total, progress_percent: 0, metrics: null
})
const progress = (job: number, epoch: number, total: number, metrics: Block, more: object = {}) => ({
  job_id: job, status: "running", current_epoch: epoch, total_epochs: total, progress_percent: (epoch / total) * 100, metrics, ...more
})
const validation = (job: number, epoch: number, value: number | null, more: object = {}) => ({
  type: "validation", job_id: job, epoch, task_type: "detection", primary_metric_name: "mAP50-95",
  primary_metric_value: value, metrics: { "mAP50-95": value }, is_best: false, timestamp, ...more
})
const log = (job: number, message: string, level = "INFO", eventType = "trainer", data: object = {}) => ({
  job_id: job, event_type: eventType, message, level, data, timestamp
})
const progressPath = (job: number) => `/training/jobs/${job}/callback/progress`
const completionPath = (job: number) => `/training/jobs/${job}/callback/completion`

describe("projectDashboardState", () => {
  it("one point per epoch (a repeated epoch keeps its latest report), loss first and the learning rate last", () => {
    const { add, events } = recorder()
    add(1_000, progressPath(1), started(1, 3))
    add(2_000, progressPath(1), progress(1, 1, 3, block({ lr: 0.01, "mAP50": 0.2, loss: 0.9 })))
    add(3_000, progressPath(1), progress(1, 2, 3, block({ lr: 0.005, "mAP50": 0.3, loss: 0.7 })))
    add(3_500, progressPath(1), progress(1, 2, 3, block({ lr: 0.005, "mAP50": 0.35, loss: 0.6 })))
    const [job] = projectDashboardState(events, [], 4_000).jobs
    assert.deepStrictEqual(job!.metricNames, ["loss", "mAP50", "lr"])
    assert.deepStrictEqual(job!.epochs.map((p) => [p.epoch, p.metrics["mAP50"]]), [[1, 0.2], [2, 0.35]])
    expect(job).toMatchObject({ kind: "training", status: "running", currentEpoch: 2, totalEpochs: 3, startedAt: 1_000 })
  })

  it("the block's loss, accuracy and learning rate are charted under their own names when the extra metrics lack them", () => {
    const { add, events } = recorder()
    add(1_000, progressPath(2), progress(2, 1, 2, { loss: 0.5, accuracy: 0.25, learning_rate: 0.001, extra_metrics: { f1: 0.4 } }))
    const [job] = projectDashboardState(events, [], 1_000).jobs
    assert.deepStrictEqual(job!.metricNames, ["loss", "f1", "accuracy", "learning_rate"])
    assert.deepStrictEqual(job!.epochs[0]!.metrics, { f1: 0.4, loss: 0.5, accuracy: 0.25, learning_rate: 0.001 })
  })

  it("the best epoch is the highest primary metric (earliest on a tie), whatever the trainer's is_best says", () => {
    const { add, events } = recorder()
    add(1, "/validation/jobs/3/results", validation(3, 1, 0.4, { is_best: true }))
    add(2, "/validation/jobs/3/results", validation(3, 2, 0.6))
    add(3, "/validation/jobs/3/results", validation(3, 3, null, { is_best: true }))
    add(4, "/validation/jobs/3/results", validation(3, 4, 0.6, { is_best: true }))
    add(5, "/validation/jobs/3/results", validation(3, 5, 0.5))
    const [job] = projectDashboardState(events, [], 10).jobs
    assert.deepStrictEqual(job!.bestEpoch, { epoch: 2, value: 0.6 })
    assert.deepStrictEqual(job!.validations.map((v) => v.epoch), [1, 2, 3, 4, 5])
    // Only validation arrived: no status yet, as the platform shows it.
    expect(job).toMatchObject({ status: "waiting", kind: null, primaryMetricName: "mAP50-95" })
  })

  it("the latest validation keeps per-class metrics in class order and the confusion matrix", () => {
    const { add, events } = recorder()
    add(1, "/validation/jobs/4/results", validation(4, 1, 0.3))
    add(2, "/validation/jobs/4/results", validation(4, 2, 0.5, {
      class_names: ["cat", "dog"],
      per_class_metrics: { dog: { ap: 0.6 }, cat: { ap: 0.4 }, bird: { ap: null } },
      confusion_matrix: [[8, 2], [1, 9]]
    }))
    const latest = projectDashboardState(events, [], 3).jobs[0]!.latestValidation!
    assert.deepStrictEqual(latest.perClassMetrics.map((c) => c.className), ["cat", "dog", "bird"])
    assert.deepStrictEqual(latest.confusionMatrix, [[8, 2], [1, 9]])
    expect(latest).toMatchObject({ epoch: 2, primaryMetricValue: 0.5, classNames: ["cat", "dog"] })
  })

  it("checkpoint log entries are the uploads; completion paths are added only when not uploaded", () => {
    const { add, events } = recorder()
    const uri = (name: string) => `s3://training-checkpoints/checkpoints/5/${name}.pt`
    add(1, progressPath(5), started(5, 1))
    add(2, "/training/jobs/5/callback/logs", log(5, "Saved best checkpoint", "INFO", "checkpoint", { s3_uri: uri("best"), metrics: { loss: 0.2, tag: "x" } }))
    add(3, completionPath(5), {
      job_id: 5, status: "completed", total_epochs_completed: 1, final_metrics: block({ loss: 0.2 }, 0.2), exit_code: 0,
      best_checkpoint_path: uri("best"), last_checkpoint_path: uri("last"), best_epoch: 1
    })
    const [job] = projectDashboardState(events, [], 4).jobs
    assert.deepStrictEqual(job!.checkpoints.map((c) => [c.type, c.uri, c.source]), [
      ["best", uri("best"), "log"],
      ["last", uri("last"), "completion"]
    ])
    assert.deepStrictEqual(job!.checkpoints[0]!.metrics, { loss: 0.2 })
    assert.isTrue(job!.logs[0]!.checkpoint)
    expect(job).toMatchObject({ status: "completed", endedAt: 3, etaAt: null })
    assert.deepStrictEqual(job!.result.find((r) => r.label === "best epoch"), { label: "best epoch", value: "1" })
  })

  it("a failed job shows the error type, message and traceback", () => {
    const { add, events } = recorder()
    add(1, progressPath(6), started(6, 4))
    add(9, completionPath(6), {
      job_id: 6, status: "failed", total_epochs_completed: 2, error_message: "[FrameworkError] loss became NaN", exit_code: 1, traceback: "at epoch 3"
    })
    const [job] = projectDashboardState(events, [], 10).jobs
    expect(job).toMatchObject({
      status: "failed",
      endedAt: 9,
      error: { type: "FrameworkError", message: "[FrameworkError] loss became NaN", traceback: "at epoch 3" }
    })
  })

  it("ETA: the trainer's estimate when sent, else the mean epoch time so far; none once the job ended", () => {
    const { add, events } = recorder()
    add(10_000, progressPath(7), started(7, 4))
    add(14_000, progressPath(7), progress(7, 1, 4, block({ loss: 1 })))
    assert.strictEqual(projectDashboardState(events, [], 15_000).jobs[0]!.etaAt, 14_000 + 3 * 4_000)
    add(16_000, progressPath(7), progress(7, 2, 4, block({ loss: 1 }), { estimated_time_remaining: 30 }))
    assert.strictEqual(projectDashboardState(events, [], 17_000).jobs[0]!.etaAt, 46_000)
  })

  it("logs stay in arrival order; past the platform's 2,000 rows the oldest are counted, not shown", () => {
    const { add, events } = recorder()
    const total = dashboardLogRowsKept + 5
    for (let i = 0; i < total; i++) add(i, "/training/jobs/8/callback/logs", log(8, `line ${i}`, i % 2 === 0 ? "INFO" : "DEBUG"))
    const [job] = projectDashboardState(events, [], total).jobs
    assert.strictEqual(job!.logs.length, dashboardLogRowsKept)
    assert.strictEqual(job!.logsDropped, 5)
    assert.strictEqual(job!.logs[0]!.message, "line 5")
    assert.isTrue(job!.logs.every((entry, i) => i === 0 || entry.sequence > job!.logs[i - 1]!.sequence))
  })

  it("a log row whose timestamp is earlier than one that arrived before it is marked out of order", () => {
    const { add, events } = recorder()
    const at = (second: number) => ({ timestamp: `2026-01-02T03:04:0${second}.000Z` })
    add(1, "/training/jobs/9/callback/logs", { ...log(9, "a"), ...at(1) })
    add(2, "/training/jobs/9/callback/logs", { ...log(9, "c"), ...at(3) })
    add(3, "/training/jobs/9/callback/logs", { ...log(9, "b"), ...at(2) })
    add(4, "/training/jobs/9/callback/logs", { ...log(9, "d"), ...at(3) })
    add(5, "/training/jobs/9/callback/logs", { ...log(9, "e"), ...at(4) })
    const [job] = projectDashboardState(events, [], 6).jobs
    assert.deepStrictEqual(job!.logs.map((entry) => [entry.message, entry.outOfOrder]), [
      ["a", false],
      ["c", false],
      ["b", true],
      ["d", false],
      ["e", false]
    ])
  })

  it("rejections: listed globally in order, per job by path; a job with only rejected requests still has a view", () => {
    const { add, events } = recorder()
    add(1, progressPath(1), started(1, 2))
    const rejections: Array<DevBackendRejection> = [
      { receivedAt: 2, method: "POST", path: "/nowhere", status: 404, jobId: undefined, issues: [] },
      { receivedAt: 3, method: "POST", path: progressPath(9), status: 422, jobId: 9, issues: [{ field: "progress_percent", problem: "must be <= 100" }] },
      { receivedAt: 4, method: "POST", path: progressPath(1), status: 422, jobId: 1, issues: [{ field: "job_id", problem: "differs" }] }
    ]
    const state = projectDashboardState(events, rejections, 5)
    assert.deepStrictEqual(state.rejections.map((r) => r.status), [404, 422, 422])
    assert.deepStrictEqual(state.jobs.map((j) => [j.jobId, j.status, j.rejections.map((r) => r.issues[0]!.field)]), [
      [1, "running", ["job_id"]],
      [9, "waiting", ["progress_percent"]]
    ])
  })
})

describe("dashboard assets", () => {
  it("the browser script is valid JavaScript and the page references only the dev backend's own files", () => {
    assert.doesNotThrow(() => new vm.Script(dashboardScript))
    const html = dashboardHtml("http://127.0.0.1:1/api/v1?<x>")
    assert.include(html, "http://127.0.0.1:1/api/v1?&lt;x&gt;")
    const references = Array.from(html.matchAll(/(?:src|href)="([^"]*)"/g), (m) => m[1]!)
    assert.deepStrictEqual(references.filter((r) => !r.startsWith("/dashboard/") && r !== "data:,"), [])
    assert.notInclude(dashboardCss, "url(")
  })
})

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, type: response.headers.get("content-type") ?? "", text: await response.text() }
  })

describe("DevBackend dashboard routes", () => {
  it.scopedLive("serves the page, its script and style, uPlot from its npm package, and the state as JSON", () =>
    Effect.gen(function*() {
      const backend = yield* DevBackend.start()
      assert.strictEqual(backend.dashboardUrl, backend.url.replace(/api\/v1$/, ""))
      const page = yield* get(backend.dashboardUrl)
      expect(page).toMatchObject({ status: 200, type: expect.stringContaining("text/html") })
      assert.include(page.text, backend.url)
      const script = yield* get(`${backend.dashboardUrl}dashboard/app.js`)
      expect(script).toMatchObject({ status: 200, text: dashboardScript, type: expect.stringContaining("javascript") })
      const uplot = yield* get(`${backend.dashboardUrl}dashboard/vendor/uPlot.iife.min.js`)
      expect(uplot).toMatchObject({ status: 200, type: expect.stringContaining("javascript") })
      assert.include(uplot.text, "uPlot")
      const css = yield* get(`${backend.dashboardUrl}dashboard/vendor/uPlot.min.css`)
      expect(css).toMatchObject({ status: 200, type: expect.stringContaining("text/css") })
      // An unknown vendor file is a 404 like any unknown path, and recorded as one.
      for (const name of ["..%2Fpackage.json", "toString", "__proto__"]) {
        assert.strictEqual((yield* get(`${backend.dashboardUrl}dashboard/vendor/${name}`)).status, 404, name)
      }

      yield* Effect.promise(() =>
        fetch(`${backend.url}${progressPath(3)}`, { method: "POST", body: JSON.stringify(started(3, 2)) })
      )
      const state = JSON.parse((yield* get(`${backend.dashboardUrl}dashboard/state`)).text)
      expect(state).toMatchObject({ accepted: 1, jobs: [{ jobId: 3, kind: "training", status: "running", totalEpochs: 2 }] })
      assert.deepStrictEqual(state.rejections.map((r: { status: number }) => r.status), [404, 404, 404])
      // The endpoint serves exactly the handle's state.
      assert.deepStrictEqual(state, { ...JSON.parse(JSON.stringify(yield* backend.dashboard)), now: state.now })
      // The dashboard's GETs are not callback routes: a GET of a callback path stays a 404.
      assert.strictEqual((yield* get(`${backend.url}${progressPath(3)}`)).status, 404)
    }))

  it.scoped("the SSE stream sends the state at once and again after each recorded request", () =>
    Effect.gen(function*() {
      const backend = yield* DevBackend.start()
      const response = yield* Effect.acquireRelease(
        Effect.promise(() => fetch(`${backend.dashboardUrl}dashboard/stream`)),
        (response) => Effect.promise(() => response.body!.cancel())
      )
      assert.strictEqual(response.headers.get("content-type"), "text/event-stream")
      const decoder = new TextDecoder()
      const states = Stream.fromAsyncIterable(response.body!, (error) => error).pipe(
        Stream.map((bytes) => decoder.decode(bytes, { stream: true })),
        Stream.splitLines,
        Stream.filterMap((line) => line.startsWith("data: ") ? Option.some(JSON.parse(line.slice(6))) : Option.none())
      )
      const pull = yield* Stream.toPull(states)
      const first = yield* pull
      expect(Chunk.toReadonlyArray(first)[0]).toMatchObject({ accepted: 0, jobs: [] })
      yield* Effect.promise(() =>
        fetch(`${backend.url}${progressPath(4)}`, { method: "POST", body: JSON.stringify(started(4, 3)) })
      )
      let latest = Chunk.toReadonlyArray(first).at(-1) as { accepted: number }
      while (latest.accepted < 1) latest = Chunk.toReadonlyArray(yield* pull).at(-1) as { accepted: number }
      expect(latest).toMatchObject({ accepted: 1, jobs: [{ jobId: 4, status: "running" }] })
    }))
})
