/**
 * SIGTERM during S3 transfers, in child processes (`support/transferProcess.ts`) whose
 * storage endpoints are a double on 127.0.0.1 (`support/s3Double.ts`) observed from the test:
 * a multipart checkpoint upload is aborted on the server before the process exits (through
 * `runTrainer` and through the Promise facade), and a facade download in flight is
 * interrupted so that its cache lock and temp directory are gone when the process exits.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import type * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { makeBackendServer, type ReceivedRequest } from "./support/backendServer.js"
import { compiledScript } from "./support/compiledScripts.js"
import { drain, listPage, multipart, type S3Double, sendObject, sendXml, startS3Double } from "./support/s3Double.js"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))

interface ChildRun {
  readonly code: number | null
  readonly stderr: string
  /** When the test saw the process end (`performance.now()`). */
  readonly exitedAt: number
}

/** Runs a transfer scenario; SIGTERM once `ready()` holds after it printed `transferring`. */
const runTransfer = (scenario: string, env: Record<string, string>, ready: () => boolean) =>
  Effect.async<ChildRun & { readonly signalled: boolean }>((resume) => {
    const child = spawn(process.execPath, [compiledScript("test/support/transferProcess.ts"), scenario], {
      cwd: repoRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let signalled = false
    const poll = setInterval(() => {
      if (!signalled && stdout.includes("transferring\n") && ready()) {
        signalled = true
        child.kill("SIGTERM")
      }
    }, 20)
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("close", (code) => {
      clearInterval(poll)
      resume(Effect.succeed({ code, stderr: stderr + stdout, exitedAt: performance.now(), signalled }))
    })
    return Effect.sync(() => {
      clearInterval(poll)
      child.kill("SIGKILL")
    })
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(path.join(os.tmpdir(), "s3-signals-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** The job's environment with both stores at the double (bucket `b`). */
const jobEnv = (callbackUrl: string, double: S3Double, dir: string, extra: Record<string, string> = {}) => ({
  PATH: process.env["PATH"] ?? "",
  HOME: process.env["HOME"] ?? "",
  NO_COLOR: "1",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  CALLBACK_URL: callbackUrl,
  JOB_ID: "7",
  CALLBACK_RETRY_DELAY: "0.05",
  DATASET_CACHE_DIR: path.join(dir, "cache"),
  DEST_DIR: path.join(dir, "work"),
  EXTERNAL_STORAGE_ENDPOINT: double.endpoint,
  EXTERNAL_BUCKET_DATASETS: "b",
  INTERNAL_STORAGE_ENDPOINT: double.endpoint,
  INTERNAL_BUCKET_CHECKPOINTS: "b",
  ...extra
})

const body = (request: ReceivedRequest) => request.body as Record<string, unknown>
const failedReports = (requests: ReadonlyArray<ReceivedRequest>) =>
  requests.filter((r) => r.path === "/training/jobs/7/callback/completion" && body(r)["status"] === "failed")

/** A multipart server whose parts are read and never answered; aborts are recorded. */
const hangingMultipart = () => {
  const aborted: Array<{ readonly uploadId: string; readonly at: number }> = []
  return Effect.map(
    startS3Double((req, res, seen) => {
      const url = new URL(req.url ?? "/", "http://x")
      if (req.method === "POST" && url.searchParams.has("uploads")) return drain(req, () => multipart.initiate(res, "up-7"))
      if (req.method === "PUT" && url.searchParams.has("partNumber")) return void req.resume()
      if (req.method === "DELETE" && url.searchParams.has("uploadId")) {
        aborted.push({ uploadId: url.searchParams.get("uploadId")!, at: seen.at })
        return multipart.aborted(res)
      }
      sendXml(res, "<Error><Code>InternalError</Code></Error>", 500)
    }),
    (double) => ({ double, aborted })
  )
}

describe("SIGTERM during S3 transfers (child processes)", () => {
  for (const scenario of ["runner-upload", "facade-upload"]) {
    it.scopedLive(`${scenario}: the multipart upload is aborted on the server before the process exits; exit code 1`, () =>
      Effect.gen(function*() {
        const backend = yield* makeBackendServer()
        const { aborted, double } = yield* hangingMultipart()
        const dir = yield* tempDir
        const checkpoint = path.join(dir, "best.pt")
        // Above the 16 MiB multipart threshold: three parts of 8 MiB.
        writeFileSync(checkpoint, Buffer.alloc(20 * 1024 * 1024, 7))
        const run = yield* runTransfer(
          scenario,
          jobEnv(backend.baseUrl, double, dir, { CHECKPOINT_FILE: checkpoint }),
          () => double.count("PUT", "partNumber") >= 1
        )
        expect(run.signalled, run.stderr).toBe(true)
        expect(run.code, run.stderr).toBe(1)
        expect(aborted.map((a) => a.uploadId)).toEqual(["up-7"])
        expect(aborted[0]!.at).toBeLessThan(run.exitedAt)
        expect(double.count("POST", "uploadId=")).toBe(0) // never completed
        const [failed, ...others] = failedReports(yield* backend.received)
        expect(others).toEqual([])
        expect(body(failed!)["error_message"]).toMatch(/^\[ResourceError\] Interrupted/)
      }))
  }

  it.scopedLive("facade-download: the download in flight is interrupted; no cache lock or temp directory is left; exit code 1", () =>
    Effect.gen(function*() {
      const backend = yield* makeBackendServer()
      const annotations = JSON.stringify({ images: [{ id: 1, file_name: "a.jpg" }], annotations: [], categories: [] })
      let imageClosed = false
      const double = yield* startS3Double((req: http.IncomingMessage, res: http.ServerResponse) => {
        const url = req.url ?? "/"
        if (url.includes("list-type=2")) {
          return sendXml(res, listPage([{ key: "datasets/ds1/annotations_detection.json", size: annotations.length }]))
        }
        if (url.startsWith("/b/datasets/ds1/annotations_detection.json")) return sendObject(res, Buffer.from(annotations))
        // The image: accepted, never answered.
        req.on("close", () => (imageClosed = true))
      })
      const dir = yield* tempDir
      const run = yield* runTransfer(
        "facade-download",
        jobEnv(backend.baseUrl, double, dir, { DATASET_ID: "ds1", DATASET_VERSION_HASH: "f".repeat(64), SNAPSHOT_ID: "s1" }),
        () => double.count("GET", "/b/datasets/ds1/images/a.jpg") >= 1
      )
      expect(run.signalled, run.stderr).toBe(true)
      expect(run.code, run.stderr).toBe(1)
      expect(run.stderr).not.toContain("transfer finished")
      // Nothing of the interrupted miss is left in the cache: no lock, no temp entry.
      const left = readdirSync(path.join(dir, "cache"), { recursive: true }).map(String)
      expect(left.filter((name) => name !== ".cache_metadata.json" && name !== ".locks")).toEqual([])
      yield* Effect.suspend(() => imageClosed ? Effect.void : Effect.fail("open")).pipe(
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.intersect(Schedule.recurs(50)))),
        Effect.orDie
      )
      const [failed, ...others] = failedReports(yield* backend.received)
      expect(others).toEqual([])
      expect(body(failed!)["error_message"]).toMatch(/^\[ResourceError\] Interrupted/)
    }))
})
