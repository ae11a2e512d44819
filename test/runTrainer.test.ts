import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { makeBackendServer, type ReceivedRequest } from "./support/backendServer.js"
import { collectChild } from "./support/childRun.js"
import { compiledScript } from "./support/compiledScripts.js"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))

/** The job's environment only (no ClearML or storage settings leak in from the host). */
const jobEnv = (callbackUrl: string, cacheDir: string, extra: Record<string, string> = {}) => ({
  PATH: process.env["PATH"] ?? "",
  HOME: process.env["HOME"] ?? "",
  NO_COLOR: "1",
  CALLBACK_URL: callbackUrl,
  JOB_ID: "7",
  DATASET_CACHE_DIR: cacheDir,
  CALLBACK_RETRY_DELAY: "0.05",
  // The default work dir (and its outbox file) lives under the temp dir: one per test.
  TMPDIR: cacheDir,
  ...extra
})

/** Runs the trainer process; `onStdout` sees its output as it comes (e.g. to send a signal). */
const runTrainerProcess = (
  scenario: string,
  env: Record<string, string>,
  onStdout?: (text: string, kill: (signal: NodeJS.Signals) => void) => void
) =>
  collectChild(
    spawn(process.execPath, [compiledScript("test/support/trainerProcess.ts"), scenario], {
      cwd: repoRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    }),
    onStdout
  )

/** A temp cache directory removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(path.join(os.tmpdir(), "run-trainer-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

const body = (request: ReceivedRequest) => request.body as Record<string, unknown>
const completions = (requests: ReadonlyArray<ReceivedRequest>) =>
  requests.filter((r) => r.path === "/training/jobs/7/callback/completion")

describe("log memory (child process)", () => {
  it.scopedLive("1,500 log lines of 1 MiB with the backend down: RSS grows less than 64 MiB", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const workDir = yield* tempDir
      const run = yield* collectChild(spawn(
        process.execPath,
        ["--expose-gc", compiledScript("test/support/logFlood.ts"), `http://127.0.0.1:${port}/api/v1`, workDir],
        { cwd: repoRoot, env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "" }, stdio: ["ignore", "pipe", "pipe"] }
      ))
      expect(run.code, run.stderr).toBe(0)
      const result = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as {
        before: number
        after: number
        maxMemoryBytes: number
        droppedLogs: number
        spilled: number
      }
      expect(result.after - result.before, JSON.stringify(result)).toBeLessThan(64 * 1024 * 1024)
      // At most the 4 MiB cap plus one 1 MiB line being written.
      expect(result.maxMemoryBytes).toBeLessThanOrEqual(5 * 1024 * 1024 + 64)
      // The log budget (64 MiB) spilled to the outbox file; the rest was dropped and counted.
      expect(result.spilled).toBeGreaterThan(50)
      expect(result.droppedLogs).toBeGreaterThan(1400)
      expect(run.stderr).toMatch(/log entries dropped \(outbox full\)/)
    }), 120_000)
})

describe("runTrainer (child processes)", () => {
  it.scopedLive("success: started, progress and completion arrive; exit code 0", () =>
    Effect.gen(function*() {
      const backend = yield* makeBackendServer()
      const run = yield* runTrainerProcess("success", jobEnv(backend.baseUrl, yield* tempDir))
      expect(run.code, run.stderr).toBe(0)
      const received = yield* backend.received
      const done = completions(received)
      expect(done.map((r) => body(r)["status"])).toEqual(["completed"])
      expect(body(received[0]!)).toMatchObject({ job_id: 7, status: "running", current_epoch: 0, total_epochs: 2 })
      expect(received.filter((r) => body(r)["current_epoch"] === 0 && body(r)["status"] === "running")).toHaveLength(1)
    }))

  it.scopedLive("a failing program is reported failed with its error type and trace; exit code 1", () =>
    Effect.gen(function*() {
      const backend = yield* makeBackendServer()
      const run = yield* runTrainerProcess("dataset-error", jobEnv(backend.baseUrl, yield* tempDir))
      expect(run.code, run.stderr).toBe(1)
      const [failed, ...others] = completions(yield* backend.received)
      expect(others).toEqual([])
      expect(body(failed!)).toMatchObject({ job_id: 7, status: "failed", exit_code: 1, total_epochs_completed: 0 })
      expect(body(failed!)["error_message"]).toMatch(/^\[DatasetError\] /)
      expect(body(failed!)["error_message"]).toContain("no-such-dataset")
      expect(body(failed!)["traceback"]).toEqual(expect.any(String))
      expect(run.stderr + run.stdout).toContain("[DatasetError]")
    }))

  it.scopedLive("backend unreachable: the outcome cannot be delivered; exit code 2", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const run = yield* runTrainerProcess(
        "success",
        jobEnv(`http://127.0.0.1:${port}/api/v1`, yield* tempDir, { CALLBACK_SHUTDOWN_BUDGET: "2" })
      )
      expect(run.code, run.stderr).toBe(2)
      expect(run.stderr + run.stdout).toContain("not delivered")
      expect(run.stderr).toMatch(/not delivered to the backend: 1 started, 2 progress, the outcome/)
    }))

  for (const scenario of ["slow", "facade-slow"]) {
    it.scopedLive(`SIGTERM against a backend that accepts connections and never answers (${scenario}): exit 2 within the budget, stderr says what was not delivered`, () =>
      Effect.gen(function*() {
        const backend = yield* makeBackendServer()
        yield* backend.otherwise(() => "never")
        let signalledAt = 0
        const run = yield* runTrainerProcess(
          scenario,
          jobEnv(backend.baseUrl, yield* tempDir, { CALLBACK_SHUTDOWN_BUDGET: "3" }),
          (stdout, kill) => {
            if (signalledAt === 0 && stdout.includes("epoch 2\n")) {
              signalledAt = Date.now()
              kill("SIGTERM")
            }
          }
        )
        const elapsed = Date.now() - signalledAt
        expect(signalledAt).toBeGreaterThan(0)
        expect(run.code, run.stderr).toBe(2)
        // The budget ended the wait (the message says so; the backend never answers); the bound is
        // Kubernetes' 30 s grace period, loose enough for a loaded machine (3 s of budget when quiet).
        expect(run.stderr).toMatch(/shutdown budget of 3s ran out; not delivered to the backend: .*the outcome/)
        expect(elapsed).toBeLessThan(25_000)
      }))

    it.scopedLive(`SIGTERM mid-epoch (${scenario}): logs flushed and a failed report arrive before the process exits; exit code 1`, () =>
      Effect.gen(function*() {
        const backend = yield* makeBackendServer()
        let signalled = false
        const run = yield* runTrainerProcess(scenario, jobEnv(backend.baseUrl, yield* tempDir), (stdout, kill) => {
          if (!signalled && stdout.includes("epoch 3\n")) {
            signalled = true
            kill("SIGTERM")
            // A repeated signal must not cut the failure report short.
            setTimeout(() => kill("SIGTERM"), 20)
          }
        })
        expect(signalled).toBe(true)
        expect(run.code, run.stderr).toBe(1)
        // Everything below was received while the process was still alive (it exits last).
        const received = yield* backend.received
        const logs = received.filter((r) => r.path === "/training/jobs/7/callback/logs").map((r) => body(r)["message"])
        expect(logs).toEqual(expect.arrayContaining(["epoch 1 done", "epoch 2 done", "epoch 3 done"]))
        expect(logs.some((m) => typeof m === "string" && m.includes("Trainer stopped"))).toBe(true)
        const [failed, ...others] = completions(received)
        expect(others).toEqual([])
        expect(body(failed!)).toMatchObject({ status: "failed", exit_code: 1 })
        expect(body(failed!)["error_message"]).toMatch(/^\[ResourceError\] Interrupted/)
        expect(body(failed!)["total_epochs_completed"]).toBeGreaterThanOrEqual(3)
        // The run's logs reach the backend before its terminal status.
        const lastLog = received.findLastIndex((r) => r.path === "/training/jobs/7/callback/logs")
        expect(lastLog).toBeLessThan(received.indexOf(failed!))
      }))
  }
})
