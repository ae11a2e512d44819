import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, FastCheck, Fiber, Layer, Option, Redacted, Schedule, TestClock, TestServices } from "effect"
import { ClearML, type ClearMLOptions, ClearMLTest } from "../src/ClearML.js"
import { TrainerError } from "../src/Errors.js"
import { clearmlMetricName, escapeRegex, jwtExpiryMillis, splitIntoBatches } from "../src/internal/clearmlEvents.js"
import { makeJobContext } from "../src/JobContext.js"
import { type FakeClearmlState, startFakeClearml } from "./support/fakeClearml.js"
import { captureWarnings } from "./support/logs.js"

const settings = (apiHost: string, project = "trainer-sdk") => ({
  apiHost,
  accessKey: "key",
  secretKey: Redacted.make("secret"),
  webHost: Option.some("http://web.example/"),
  project,
  taskName: "job-42",
  taskId: Option.none<string>()
})

const clearmlLayer = (
  apiHost: string,
  options: ClearMLOptions = {},
  extra: { project?: string; rank?: number; taskId?: string } = {}
) =>
  ClearML.layerConfig(
    makeJobContext({
      jobId: 42,
      rank: extra.rank ?? 0,
      clearml: Option.some({ ...settings(apiHost, extra.project), taskId: Option.fromNullable(extra.taskId) })
    }),
    { worker: "test-host", flushEvery: "1 hour", retrySchedule: Schedule.recurs(1), ...options }
  ).pipe(Layer.provide(NodeHttpClient.layerUndici))

const eventually = (check: () => boolean) =>
  Effect.repeat(Effect.sync(check), { until: (ok) => ok, schedule: Schedule.spaced("20 millis") }).pipe(
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("condition not reached in 30 s") })
  )

const scalars = (fake: FakeClearmlState) =>
  fake.events.filter((e) => e["type"] === "training_stats_scalar").map((e) => [e["metric"], e["variant"], e["iter"], e["value"]])

const onlyTask = (fake: FakeClearmlState) => {
  assert.strictEqual(fake.tasks.size, 1)
  const [id, task] = [...fake.tasks][0]!
  return { id, task }
}

describe("ClearML naming and batching", () => {
  it("splits metric keys at the first slash", () => {
    assert.deepStrictEqual(clearmlMetricName("val/mAP50"), { series: "val", title: "mAP50" })
    assert.deepStrictEqual(clearmlMetricName("val/box/loss"), { series: "val", title: "box/loss" })
    assert.deepStrictEqual(clearmlMetricName("loss"), { series: "train", title: "loss" })
  })

  it.prop("escaped project names match only themselves", [FastCheck.string()], ([name]) => {
    const pattern = new RegExp(`^${escapeRegex(name)}$`)
    assert.isTrue(pattern.test(name))
    assert.isFalse(pattern.test(`${name}x`))
  })

  it.prop(
    "batches stay under the cap, keep order, and have no trailing newline",
    [FastCheck.array(FastCheck.string({ minLength: 0, maxLength: 60 }), { maxLength: 80 }), FastCheck.integer({ min: 1, max: 200 })],
    ([lines, cap]) => {
      const { bodies, counts, oversized } = splitIntoBatches(lines, cap)
      const fits = lines.filter((l) => new TextEncoder().encode(l).length <= cap)
      assert.strictEqual(oversized, lines.length - fits.length)
      assert.deepStrictEqual(counts.reduce((a, b) => a + b, 0), fits.length)
      for (const body of bodies) assert.isAtMost(new TextEncoder().encode(body).length, cap)
      assert.deepStrictEqual(bodies.flatMap((body, i) => counts[i] === 1 ? [body] : body.split("\n")), fits)
    }
  )

  it("reads the JWT expiry", () => {
    const payload = Buffer.from(JSON.stringify({ exp: 1_700_000_000 })).toString("base64url")
    assert.strictEqual(jwtExpiryMillis(`h.${payload}.s`), 1_700_000_000_000)
    assert.isUndefined(jwtExpiryMillis("not-a-jwt"))
  })
})

describe("ClearML against a fake server", () => {
  it.live("reports scalars and text, refreshes a revoked token, and completes the task", () =>
    Effect.gen(function*() {
      const fake = yield* startFakeClearml({ revokeFirstTokenAfter: 2 })
      const { lines, logger } = yield* captureWarnings
      const project = "vision (v2).*"
      const result = yield* Effect.gen(function*() {
        const clearml = yield* ClearML
        yield* clearml.started
        yield* clearml.reportMetrics({ loss: 0.25, "val/mAP50": 0.5, accuracy: 0 }, 3)
        yield* clearml.reportScalar("loss", "train", Number.NaN, 4)
        yield* clearml.reportScalar("loss", "train", Number.POSITIVE_INFINITY, 4)
        yield* clearml.reportText("epoch 3 done")
        yield* clearml.reportHyperParams({ lr: 0.001, optimizer: "SGD" })
        yield* clearml.flush
        return { link: yield* clearml.webLink, stats: yield* clearml.stats }
      }).pipe(Effect.provide(clearmlLayer(fake.url, {}, { project })), Effect.provide(logger))

      assert.deepStrictEqual(fake.violations, [])
      assert.strictEqual(fake.logins, 2)
      assert.strictEqual(fake.unauthorized, 1)
      assert.deepStrictEqual([...fake.workers], ["test-host"])
      const projectId = fake.projects.get(project)!
      const { id, task } = onlyTask(fake)
      assert.strictEqual(task.project, projectId)
      assert.strictEqual(task.name, "job-42")
      assert.strictEqual(task.status, "completed")
      assert.deepStrictEqual(task.hyperparams, [
        { section: "General", name: "lr", value: "0.001" },
        { section: "General", name: "optimizer", value: "SGD" }
      ])
      assert.deepStrictEqual(scalars(fake), [["loss", "train", 3, 0.25], ["mAP50", "val", 3, 0.5], ["accuracy", "train", 3, 0]])
      const text = fake.events.find((e) => e["type"] === "log")!
      assert.deepStrictEqual([text["msg"], text["level"], text["worker"], text["task"]], ["epoch 3 done", "info", "test-host", id])
      assert.deepStrictEqual(result.link, Option.some(`http://web.example/projects/${projectId}/experiments/${id}/output/log`))
      assert.deepStrictEqual(result.stats, { queued: 0, sent: 4, skipped: 2, undelivered: 0 })
      assert.strictEqual(lines.length, 1)
      assert.include(lines[0], "NaN/Infinity")
    }).pipe(Effect.scoped))

  it.live("with CLEARML_TASK_ID it reports into the backend's task: no project or task created, status left to the backend", () =>
    Effect.gen(function*() {
      const fake = yield* startFakeClearml()
      fake.projects.set("platform", "project-backend")
      fake.tasks.set("backend-task-7", { name: "job-42", project: "project-backend", type: "training", status: "in_progress", hyperparams: [] })
      const link = yield* Effect.gen(function*() {
        const clearml = yield* ClearML
        yield* clearml.started
        yield* clearml.reportMetrics({ loss: 0.5 }, 1)
        yield* clearml.reportText("epoch 1 done")
        yield* clearml.completed
        return yield* clearml.webLink
      }).pipe(Effect.provide(clearmlLayer(fake.url, {}, { taskId: "backend-task-7" })))

      assert.deepStrictEqual(fake.violations, [])
      assert.strictEqual(fake.tasks.size, 1)
      assert.isFalse(fake.calls.some((c) => c.startsWith("projects.") || c === "tasks.create"))
      assert.isFalse(fake.calls.some((c) => ["tasks.started", "tasks.completed", "tasks.failed", "tasks.stopped"].includes(c)))
      assert.strictEqual(fake.tasks.get("backend-task-7")!.status, "in_progress")
      assert.deepStrictEqual(scalars(fake), [["loss", "train", 1, 0.5]])
      assert.isTrue(fake.events.every((e) => e["task"] === "backend-task-7"))
      assert.deepStrictEqual(link, Option.some("http://web.example/projects/project-backend/experiments/backend-task-7/output/log"))
    }).pipe(Effect.scoped))

  it.live("ends the task failed with the classified reason when the program fails", () =>
    Effect.gen(function*() {
      const fake = yield* startFakeClearml()
      const exit = yield* Effect.gen(function*() {
        const clearml = yield* ClearML
        yield* clearml.started
        yield* clearml.reportMetrics({ loss: 1.5 }, 1)
        return yield* new TrainerError({ errorType: "DatasetError", message: "annotations.json is missing" })
      }).pipe(Effect.provide(clearmlLayer(fake.url)), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      assert.deepStrictEqual(fake.violations, [])
      const { task } = onlyTask(fake)
      assert.strictEqual(task.status, "failed")
      assert.strictEqual(task.statusReason, "[DatasetError] annotations.json is missing")
      assert.deepStrictEqual(scalars(fake), [["loss", "train", 1, 1.5]])
    }).pipe(Effect.scoped))

  it.live("ends the task stopped when interrupted, and keeps an explicit outcome", () =>
    Effect.gen(function*() {
      const fake = yield* startFakeClearml()
      const ready = yield* Deferred.make<void>()
      const fiber = yield* Effect.gen(function*() {
        yield* Effect.flatMap(ClearML, (c) => c.started)
        yield* Deferred.succeed(ready, undefined)
        return yield* Effect.never
      }).pipe(Effect.provide(clearmlLayer(fake.url)), Effect.fork)
      yield* Deferred.await(ready)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(onlyTask(fake).task.status, "stopped")

      const fake2 = yield* startFakeClearml()
      yield* Effect.flatMap(ClearML, (c) => c.failed("CUDA out of memory")).pipe(Effect.provide(clearmlLayer(fake2.url)))
      assert.strictEqual(onlyTask(fake2).task.status, "failed")
      assert.strictEqual(onlyTask(fake2).task.statusReason, "CUDA out of memory")
      assert.deepStrictEqual([...fake.violations, ...fake2.violations], [])
    }).pipe(Effect.scoped))

  it.live("flushes at 100 events and never sends a batch over the size cap", () =>
    Effect.gen(function*() {
      const cap = 2048
      const fake = yield* startFakeClearml({ maxBatchBytes: cap })
      yield* Effect.gen(function*() {
        const clearml = yield* ClearML
        for (let i = 0; i < 99; i++) yield* clearml.reportScalar("loss", "train", i / 10, i)
        yield* Effect.sleep("300 millis")
        assert.strictEqual(fake.events.length, 0)
        yield* clearml.reportScalar("loss", "train", 9.9, 99)
        yield* eventually(() => fake.events.length === 100)
        for (let i = 100; i < 250; i++) yield* clearml.reportScalar("loss", "train", i / 10, i)
        yield* clearml.flush
      }).pipe(Effect.provide(clearmlLayer(fake.url, { maxRequestBytes: cap })))
      assert.deepStrictEqual(fake.violations, [])
      assert.deepStrictEqual(scalars(fake).map(([, , iter]) => iter), Array.from({ length: 250 }, (_, i) => i))
      assert.isAbove(fake.batches.length, 2)
      for (const batch of fake.batches) assert.isAtMost(batch.bytes, cap)
    }).pipe(Effect.scoped))

  it.live("looks the project up again when someone else created it meanwhile", () =>
    Effect.gen(function*() {
      const fake = yield* startFakeClearml({ projectCreateRace: true })
      yield* Effect.flatMap(ClearML, (c) => c.started).pipe(Effect.provide(clearmlLayer(fake.url)))
      assert.deepStrictEqual(fake.violations, [])
      assert.strictEqual(onlyTask(fake).task.project, "project-by-someone-else")
    }).pipe(Effect.scoped))

  it.scoped("logs in again before the token expires, and pings a silent task", () =>
    Effect.gen(function*() {
      // The fake signs and expires tokens on the test's clock: a 2 s token issued at 0.
      const clock = yield* Effect.clock
      const fake = yield* startFakeClearml({ tokenLifetimeSeconds: 2, now: () => clock.unsafeCurrentTimeMillis() })
      yield* Effect.gen(function*() {
        const clearml = yield* ClearML
        yield* clearml.started
        assert.strictEqual(fake.logins, 1)
        // Nothing sent for 400 ms: a ping, still with the first token.
        yield* TestClock.adjust("500 millis")
        yield* TestServices.provideLive(eventually(() => fake.pings >= 1))
        assert.strictEqual(fake.logins, 1)
        // Past half the token's life, before its end: the next call logs in first.
        yield* TestClock.adjust("1 second")
        yield* clearml.reportText("later")
        yield* clearml.flush
        assert.strictEqual(fake.logins, 2)
      }).pipe(Effect.provide(clearmlLayer(fake.url, { pingEvery: "400 millis" })))
      assert.deepStrictEqual(fake.violations, [])
      // No call ever carried an expired (or unknown) token.
      assert.strictEqual(fake.unauthorized, 0)
      assert.strictEqual(fake.events.filter((e) => e["type"] === "log").length, 1)
      assert.strictEqual(onlyTask(fake).task.status, "completed")
    }))

  it.scoped("a token that expired while nothing was sent is replaced before the next call", () =>
    Effect.gen(function*() {
      const clock = yield* Effect.clock
      const fake = yield* startFakeClearml({ tokenLifetimeSeconds: 2, now: () => clock.unsafeCurrentTimeMillis() })
      yield* Effect.gen(function*() {
        const clearml = yield* ClearML
        yield* clearml.started
        yield* TestClock.adjust("5 seconds")
        yield* clearml.reportText("much later")
        yield* clearml.flush
      }).pipe(Effect.provide(clearmlLayer(fake.url, { pingEvery: "1 hour" })))
      assert.deepStrictEqual(fake.violations, [])
      assert.strictEqual(fake.logins, 2)
      assert.strictEqual(fake.unauthorized, 0)
      assert.strictEqual(onlyTask(fake).task.status, "completed")
    }))

  it.live("an unreachable server never fails training and warns once", () =>
    Effect.gen(function*() {
      const { lines, logger } = yield* captureWarnings
      const stats = yield* Effect.gen(function*() {
        const clearml = yield* ClearML
        yield* clearml.started
        yield* clearml.reportMetrics({ loss: 1 }, 1)
        yield* clearml.flush
        yield* clearml.completed
        return yield* clearml.stats
      }).pipe(Effect.provide(clearmlLayer("http://127.0.0.1:1")), Effect.provide(logger))
      assert.strictEqual(stats.undelivered, 1)
      assert.strictEqual(lines.length, 1)
      assert.include(lines[0], "ClearML")
    }))

  it.live("is a no-op without ClearML settings and on secondary ranks", () =>
    Effect.gen(function*() {
      const fake = yield* startFakeClearml()
      const report = Effect.flatMap(ClearML, (c) => Effect.zipRight(c.reportMetrics({ loss: 1 }, 1), c.flush))
      yield* report.pipe(Effect.provide(clearmlLayer(fake.url, {}, { rank: 1 })))
      yield* report.pipe(Effect.provide(
        ClearML.layerConfig(makeJobContext({ clearml: Option.none() })).pipe(Layer.provide(NodeHttpClient.layerUndici))
      ))
      assert.deepStrictEqual(fake.calls, [])
    }).pipe(Effect.scoped))

  it.effect("layerTest records scalars, text and lifecycle", () =>
    Effect.gen(function*() {
      const clearml = yield* ClearML
      yield* clearml.started
      yield* clearml.reportMetrics({ "val/mAP50": 0.4, loss: Number.NaN }, 2)
      yield* clearml.reportText("hello", "warning")
      yield* clearml.failed("boom")
      const recorded = yield* ClearMLTest
      assert.deepStrictEqual(yield* recorded.scalars, [{ title: "mAP50", series: "val", value: 0.4, iteration: 2 }])
      assert.deepStrictEqual(yield* recorded.texts, [{ message: "hello", level: "warning" }])
      assert.deepStrictEqual(yield* recorded.lifecycle, [{ step: "started" }, { step: "failed", reason: "boom" }])
      assert.strictEqual((yield* clearml.stats).skipped, 1)
    }).pipe(Effect.provide(ClearML.layerTest())))
})
