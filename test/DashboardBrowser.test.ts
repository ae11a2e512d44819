/**
 * The dev backend's dashboard in a real browser: Debian's Chromium, headless, driven by
 * playwright-core. The example trainer runs against a dev backend while the page is open;
 * the page must follow it live (no reload) to completion. Skipped, saying why, when
 * Chromium is not installed (`apt-get install chromium`; `.ci/run` installs it).
 */
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { existsSync } from "node:fs"
import * as path from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import { runEmbedded } from "../examples/embedded.js"
import { exampleTrainer } from "../examples/trainer.js"
import { DevBackend, type DevBackendEvent } from "../src/DevBackend.js"

const chromiumPath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const hasChromium = existsSync(chromiumPath)
const skipNote = `SKIPPED: no Chromium at ${chromiumPath} (apt-get install -y chromium, or set CHROMIUM_PATH)`
if (!hasChromium) console.warn(`DashboardBrowser.test.ts: ${skipNote}`)

/** The flags this machine needs (no GPU, no sandbox as root, no network of its own). */
const chromiumFlags = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage"
]

/** A headless Chromium with a fresh profile (playwright makes one per launch), closed with the scope. */
const launchChromium = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags })),
  (browser: Browser) => Effect.promise(() => browser.close())
)

const epochs = 5
const job = (jobId: number) => `section.job[data-job-id="${jobId}"]`
const attr = (page: Page, selector: string, name: string) => Effect.promise(() => page.getAttribute(selector, name))
const texts = (page: Page, selector: string) => Effect.promise(() => page.locator(selector).allTextContents())

describe("dev backend dashboard in Chromium", () => {
  it.scopedLive.skipIf(!hasChromium)(
    hasChromium
      ? "follows the example trainer live to completion: status, one chart point per epoch, best epoch, logs, checkpoints, a 422"
      : `follows the example trainer live — ${skipNote}`,
    () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        // Kept after the run (one small PNG) so a failure can be looked at.
        const screenshotDir = yield* fs.makeTempDirectory({ prefix: "trainer-sdk-dashboard-test-" })
        const screenshot = path.join(screenshotDir, "dashboard.png")

        const backend = yield* DevBackend.start()
        const browser = yield* launchChromium
        const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1280, height: 900 } }))
        const pageErrors: Array<string> = []
        page.on("pageerror", (error) => pageErrors.push(error.message))
        page.on("console", (message) => message.type() === "error" && pageErrors.push(message.text()))
        const requested: Array<string> = []
        page.on("request", (request) => requested.push(request.url()))

        yield* Effect.promise(() => page.goto(backend.dashboardUrl))
        yield* Effect.promise(() => page.waitForSelector("#connection[data-state='live']"))
        // Every status the page shows for job 1, as it changes, and a marker a reload would erase.
        yield* Effect.promise(() =>
          page.evaluate(`(() => {
            window.seen = []
            window.marker = true
            new MutationObserver(() => {
              const status = document.querySelector("section.job[data-job-id='1']")?.getAttribute("data-status")
              if (status && window.seen.at(-1) !== status) window.seen.push(status)
            }).observe(document.body, { subtree: true, childList: true, attributes: true })
          })()`)
        )

        const exitCode = yield* runEmbedded(exampleTrainer({ epochDuration: Duration.millis(250) }), {
          backend,
          variables: { EPOCHS: String(epochs), MODEL_NAME: "yolo11n", CALLBACK_RETRY_DELAY: "0.05" }
        })
        assert.strictEqual(exitCode, 0)

        // A body the platform would refuse: progress above 100 %.
        const refused = yield* Effect.promise(() =>
          fetch(`${backend.url}/training/jobs/1/callback/progress`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              job_id: 1,
              status: "running",
              current_epoch: 6,
              total_epochs: 5,
              progress_percent: 120,
              metrics: { loss: 0.1, accuracy: null, learning_rate: null, extra_metrics: {} }
            })
          })
        )
        assert.strictEqual(refused.status, 422)

        const checks = Effect.gen(function*() {
          yield* Effect.promise(() => page.waitForSelector(`${job(1)}[data-status='completed']`))
          yield* Effect.promise(() => page.waitForSelector("#all-rejections tr[data-status='422'][data-field='progress_percent']"))
          const seen = yield* Effect.promise(() => page.evaluate<ReadonlyArray<string>>("window.seen"))
          const marker = yield* Effect.promise(() => page.evaluate<boolean | undefined>("window.marker"))
          assert.isTrue(marker, "the page was reloaded")
          expect(seen, "statuses shown live").toEqual(["running", "completed"])

          // The summary.
          assert.deepStrictEqual(yield* texts(page, `${job(1)} [data-field='kind']`), ["training"])
          assert.deepStrictEqual(yield* texts(page, `${job(1)} [data-field='epoch']`), [`epoch ${epochs} of ${epochs}`])
          assert.deepStrictEqual(yield* texts(page, `${job(1)} [data-field='eta']`), ["done"])
          assert.match((yield* texts(page, `${job(1)} [data-field='elapsed']`))[0]!, /^(\d+h )?(\d+m )?\d+s$/)
          assert.strictEqual(yield* attr(page, `${job(1)} .bar`, "aria-valuenow"), "100")

          // Charts: every progress metric and the primary validation metric, one point per epoch.
          const state = yield* backend.dashboard
          const [jobState] = state.jobs
          const metricKeys = yield* Effect.promise(() =>
            page.locator(`${job(1)} .chart`).evaluateAll((cards) => cards.map((card) => card.getAttribute("data-metric")))
          )
          expect(metricKeys).toEqual([
            "validation:mAP50-95",
            ...jobState!.metricNames.map((name) => `progress:${name}`)
          ])
          expect(jobState!.metricNames).toEqual(["loss", "mAP50", "mAP50-95", "lr"])
          for (const key of metricKeys) {
            const card = `${job(1)} .chart[data-metric='${key}']`
            assert.strictEqual(yield* attr(page, card, "data-points"), String(epochs), key!)
            assert.strictEqual(yield* attr(page, card, "data-epochs"), "1,2,3,4,5", key!)
          }
          assert.deepStrictEqual(yield* texts(page, `${job(1)} [data-metric='progress:lr'] h3`), ["learning rate (lr)"])

          // The best epoch: the highest mAP50-95 the trainer reported, marked on its chart.
          const validations = (yield* backend.events).filter((e): e is Extract<DevBackendEvent, { kind: "validation" }> =>
            e.kind === "validation"
          )
          const best = validations.reduce((a, b) => (b.body.primary_metric_value! > a.body.primary_metric_value! ? b : a))
          const primary = `${job(1)} .chart[data-metric='validation:mAP50-95']`
          assert.strictEqual(yield* attr(page, primary, "data-best-epoch"), String(best.body.epoch))
          assert.include((yield* texts(page, `${primary} .best`))[0], `best: epoch ${best.body.epoch}`)

          // The latest validation: per-class table and confusion matrix heat map.
          const latest = validations.at(-1)!.body
          assert.deepStrictEqual(yield* texts(page, `${job(1)} [data-field='per-class'] tbody th`), latest.class_names)
          const cells = (yield* texts(page, `${job(1)} [data-field='confusion-matrix'] tbody td`)).map(Number)
          assert.deepStrictEqual(cells, latest.confusion_matrix!.flat())

          // Logs: exactly the log entries received, in arrival order; checkpoint entries highlighted.
          const logEvents = (yield* backend.events).filter((e): e is Extract<DevBackendEvent, { kind: "log" }> => e.kind === "log")
          const sequences = yield* Effect.promise(() =>
            page.locator(`${job(1)} table.logs tbody tr`).evaluateAll((rows) => rows.map((row) => Number(row.getAttribute("data-sequence"))))
          )
          assert.deepStrictEqual(sequences, logEvents.map((e) => e.sequence))
          assert.deepStrictEqual(
            (yield* texts(page, `${job(1)} table.logs tbody td.message`)).map((text) => text.split("  {")[0]),
            logEvents.map((e) => e.body.message)
          )
          const checkpointLogs = logEvents.filter((e) => e.body.event_type === "checkpoint")
          assert.isAbove(checkpointLogs.length, 1)
          assert.deepStrictEqual(
            yield* Effect.promise(() =>
              page.locator(`${job(1)} table.logs tbody tr.checkpoint`).evaluateAll((rows) => rows.map((row) => Number(row.getAttribute("data-sequence"))))
            ),
            checkpointLogs.map((e) => e.sequence)
          )
          // Rows that arrived after a row logged later are marked, as the platform would show them out of place.
          const late = logEvents.filter((e, i) => logEvents.slice(0, i).some((before) => Date.parse(before.body.timestamp ?? "") > Date.parse(e.body.timestamp ?? "")))
          assert.deepStrictEqual(
            yield* Effect.promise(() =>
              page.locator(`${job(1)} table.logs tbody tr.out-of-order`).evaluateAll((rows) => rows.map((row) => Number(row.getAttribute("data-sequence"))))
            ),
            late.map((e) => e.sequence)
          )
          const lateNote = yield* texts(page, `${job(1)} [data-field='late-logs']`)
          assert.deepStrictEqual(lateNote.map((text) => parseInt(text, 10)), late.length === 0 ? [] : [late.length])
          // Filtering by level: without INFO only the other levels remain.
          yield* Effect.promise(() => page.locator(`${job(1)} input[data-level='INFO']`).uncheck())
          const levelsShown = yield* Effect.promise(() =>
            page.locator(`${job(1)} table.logs tbody tr`).evaluateAll((rows) => rows.map((row) => row.getAttribute("data-level")))
          )
          assert.deepStrictEqual(levelsShown, logEvents.filter((e) => e.body.level !== "INFO").map((e) => e.body.level))
          yield* Effect.promise(() => page.locator(`${job(1)} input[data-level='INFO']`).check())

          // Checkpoints uploaded: type and URI of each upload.
          const rows = yield* Effect.promise(() =>
            page.locator(`${job(1)} .checkpoint-list tbody tr`).evaluateAll((trs) =>
              trs.map((tr) => [tr.getAttribute("data-type"), tr.querySelector("code")?.textContent])
            )
          )
          assert.deepStrictEqual(rows, checkpointLogs.map((e) => [/^Saved (\w+) checkpoint$/.exec(e.body.message)![1], e.body.data?.["s3_uri"]]))

          // The rejected request, with its field, in the job's own list too.
          assert.deepStrictEqual(yield* texts(page, `${job(1)} .job-rejections td.field`), ["progress_percent"])

          // Offline: the page asked only the dev backend.
          const origin = new URL(backend.dashboardUrl).origin
          assert.deepStrictEqual(requested.filter((url) => !url.startsWith(origin)), [])
          assert.deepStrictEqual(pageErrors, [])
        })
        yield* checks.pipe(
          // Whatever happened, the picture is kept.
          Effect.ensuring(Effect.promise(() => page.screenshot({ path: screenshot, fullPage: true })))
        )
        assert.isAbove(Number((yield* fs.stat(screenshot)).size), 10_000)
        const copyTo = process.env["DASHBOARD_SCREENSHOT"]
        if (copyTo) yield* fs.copyFile(screenshot, copyTo)

        // A second job gets its own view, reached through its tab.
        yield* Effect.promise(() =>
          fetch(`${backend.url}/training/jobs/2/callback/progress`, {
            method: "POST",
            body: JSON.stringify({ job_id: 2, status: "running", current_epoch: 0, total_epochs: 3, progress_percent: 0, metrics: null })
          })
        )
        yield* Effect.promise(() => page.click("nav button[data-job-id='2']"))
        yield* Effect.promise(() => page.waitForSelector(`${job(2)}[data-status='running']:not([hidden])`))
        assert.deepStrictEqual(yield* texts(page, `${job(2)} [data-field='epoch']`), ["epoch 0 of 3"])
        assert.isTrue(yield* Effect.promise(() => page.locator(job(1)).isHidden()))
      }).pipe(Effect.provide(NodeContext.layer)),
    120_000
  )
})
