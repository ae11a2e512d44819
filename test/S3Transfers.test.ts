/**
 * S3 transfers against misbehaving endpoints (`support/s3Double.ts` on 127.0.0.1): a server
 * that accepts and never answers, one that stops mid-body, short bodies with and without
 * `Content-Length`, a truncated listing without a continuation token, multipart uploads
 * that fail or are interrupted, and a disk that is full. Every attempt must end (short
 * timeouts here, so each test takes about a second), failed attempts are retried, and
 * nothing is accepted as complete that is not.
 */
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Redacted, Schedule } from "effect"
import { randomBytes } from "node:crypto"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import type * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { classifyError, StorageError } from "../src/Errors.js"
import { makeS3ObjectStore, type ObjectStore, s3ClientConfig, s3ClientsScoped, type S3Timeouts } from "../src/ObjectStore.js"
import { Storage } from "../src/Storage.js"
import { filesUnder } from "./support/files.js"
import {
  drain,
  listPage,
  multipart,
  type S3Double,
  sendHead,
  sendObject,
  sendXml,
  startS3Double
} from "./support/s3Double.js"

// Short enough to keep each test near a second, long enough that a loaded machine does not
// turn a healthy answer of the double into a timeout.
const timeouts = { connect: Duration.millis(1000), request: Duration.millis(600), idle: Duration.millis(600) }
const MiB = 1024 * 1024

/** A store on the double with the short timeouts (unless given) and 3 attempts per request. */
const storeOn = (double: S3Double, limits: S3Timeouts = timeouts) =>
  Effect.map(
    s3ClientsScoped(s3ClientConfig({
      endpoint: double.endpoint,
      accessKey: "key",
      secretKey: Redacted.make("secret"),
      region: "us-east-1",
      requestChecksumCalculation: "WHEN_REQUIRED",
      timeouts: limits
    })),
    (clients) =>
      makeS3ObjectStore(clients, "b", {
        timeouts: limits,
        retry: Schedule.recurs(2),
        multipartThreshold: 5 * MiB,
        partSize: 5 * MiB
      })
  )

/** `Storage` over one store (both roles), 3 attempts per object. */
const storageOn = (store: ObjectStore) => Storage.make({ external: store, internal: store, jobId: 7, retry: Schedule.recurs(2) })

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(path.join(os.tmpdir(), "s3-transfers-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const isList = (req: http.IncomingMessage) => req.method === "GET" && (req.url ?? "").includes("list-type=2")

/** A double serving a listing of `objects` under `datasets/d/` and each GET through `onGet` (attempt numbers from 1). */
const datasetDouble = (
  objects: ReadonlyArray<{ readonly name: string; readonly body: Uint8Array }>,
  onGet: (attempt: number, body: Uint8Array, req: http.IncomingMessage, res: http.ServerResponse) => void
) => {
  const attempts = new Map<string, number>()
  return startS3Double((req, res) => {
    const url = req.url ?? "/"
    if (isList(req)) return sendXml(res, listPage(objects.map((o) => ({ key: `datasets/d/${o.name}`, size: o.body.length }))))
    const object = objects.find((o) => url.split("?")[0] === `/b/datasets/d/${o.name}`)
    if (object === undefined) return sendXml(res, "<Error><Code>NoSuchKey</Code></Error>", 404)
    if (req.method === "HEAD") return sendHead(res, object.body.length)
    const attempt = (attempts.get(object.name) ?? 0) + 1
    attempts.set(object.name, attempt)
    onGet(attempt, object.body, req, res)
  })
}

/** Writes a raw close-delimited response (no `Content-Length`, no chunking) and closes the connection. */
const closeDelimited = (req: http.IncomingMessage, bytes: Uint8Array) => {
  req.socket.end(Buffer.concat([
    Buffer.from("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"),
    bytes
  ]))
}

/** Waits (polling, at most 10 s on a loaded machine) until `condition` holds. */
const eventually = (condition: () => boolean) =>
  Effect.suspend(() => condition() ? Effect.void : Effect.fail("not yet")).pipe(
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.intersect(Schedule.recurs(1500)))),
    Effect.orDie
  )

describe("S3 requests always end", () => {
  it.scopedLive("a GET that is accepted and never answered: every attempt is aborted at the deadline, retried, then reported", () =>
    Effect.gen(function*() {
      let closed = 0
      const body = randomBytes(4096)
      const double = yield* datasetDouble([{ name: "a.bin", body }], (_attempt, _body, req) => {
        req.on("close", () => closed++)
      })
      const storage = yield* storageOn(yield* storeOn(double))
      const dest = yield* tempDir
      const error = yield* Effect.flip(storage.downloadDataset("d", dest))
      assert.strictEqual(error._tag, "DownloadError")
      if (error._tag !== "DownloadError") return
      assert.deepStrictEqual(error.failures.map((f) => [f.key, f.reason]), [["datasets/d/a.bin", "Timeout"]])
      assert.include(error.message, "S3_REQUEST_TIMEOUT")
      assert.strictEqual(double.count("GET", "/b/datasets/d/a.bin"), 3)
      // The requests were really aborted: the server saw each connection close.
      yield* eventually(() => closed === 3)
      assert.deepStrictEqual(yield* filesUnder(dest), [])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a listing, a HEAD and a PUT that are never answered each end in Timeout after three attempts", () =>
    Effect.gen(function*() {
      const double = yield* startS3Double(() => {})
      const storage = yield* storageOn(yield* storeOn(double))
      const dir = yield* tempDir
      yield* Effect.promise(() => writeFile(`${dir}/r.json`, "{}"))

      const listing = yield* Effect.flip(storage.downloadDataset("d", `${dir}/out`))
      assert.strictEqual(listing._tag, "StorageError")
      if (listing._tag === "StorageError") assert.strictEqual(listing.reason, "Timeout")
      assert.strictEqual(double.count("GET", "list-type=2"), 3)

      const checkpoint = yield* Effect.flip(storage.downloadCheckpoint("s3://b/checkpoints/7/best.pt", `${dir}/best.pt`))
      assert.strictEqual(checkpoint._tag, "CheckpointError")
      assert.include(checkpoint.message, "Timeout")
      assert.strictEqual(double.count("HEAD"), 3)

      const put = yield* Effect.flip(storage.uploadFile(`${dir}/r.json`, "results/r.json"))
      assert.strictEqual(put.reason, "Timeout")
      assert.strictEqual(double.count("PUT", "/b/results/r.json"), 3)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a body that stops mid-way fails the attempt after the idle timeout; the retry delivers the whole object", () =>
    Effect.gen(function*() {
      const body = randomBytes(4096)
      const double = yield* datasetDouble([{ name: "a.bin", body }], (attempt, bytes, _req, res) => {
        if (attempt === 3) return sendObject(res, bytes)
        res.writeHead(200, { "content-length": bytes.length })
        res.write(bytes.subarray(0, 1000)) // ... and nothing more, the connection left open
      })
      const storage = yield* storageOn(yield* storeOn(double))
      const dest = yield* tempDir
      const result = yield* storage.downloadDataset("d", dest)
      assert.deepStrictEqual(result, { files: 1, bytes: 4096 })
      assert.isTrue((yield* Effect.promise(() => readFile(`${dest}/a.bin`))).equals(body))
      assert.strictEqual(double.count("GET", "/b/datasets/d/a.bin"), 3)
      assert.deepStrictEqual(yield* filesUnder(dest), ["a.bin"])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a body that always stalls is reported as a Timeout naming the idle limit", () =>
    Effect.gen(function*() {
      const double = yield* datasetDouble([{ name: "a.bin", body: randomBytes(4096) }], (_attempt, bytes, _req, res) => {
        res.writeHead(200, { "content-length": bytes.length })
        res.write(bytes.subarray(0, 1000))
      })
      const storage = yield* storageOn(yield* storeOn(double))
      const dest = yield* tempDir
      const error = yield* Effect.flip(storage.downloadDataset("d", dest))
      assert.strictEqual(error._tag, "DownloadError")
      if (error._tag !== "DownloadError") return
      assert.strictEqual(error.failures[0]?.reason, "Timeout")
      assert.strictEqual(double.count("GET", "/b/datasets/d/a.bin"), 3)
      assert.deepStrictEqual(yield* filesUnder(dest), [])
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("short bodies are failed attempts", () => {
  it.scopedLive("a close-delimited body of 100 of 4,096 bytes: retried, never stored, then reported", () =>
    Effect.gen(function*() {
      const double = yield* datasetDouble([{ name: "a.bin", body: randomBytes(4096) }], (_attempt, bytes, req) => {
        closeDelimited(req, bytes.subarray(0, 100))
      })
      const storage = yield* storageOn(yield* storeOn(double))
      const dest = yield* tempDir
      const error = yield* Effect.flip(storage.downloadDataset("d", dest))
      assert.strictEqual(error._tag, "DownloadError")
      if (error._tag !== "DownloadError") return
      assert.strictEqual(error.failures[0]?.reason, "Transport")
      assert.include(error.failures[0]?.detail, "received 100 bytes, the object has 4096 (listing)")
      assert.strictEqual(double.count("GET", "/b/datasets/d/a.bin"), 3)
      assert.deepStrictEqual(yield* filesUnder(dest), [])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a close-delimited body with no listed size is checked against a HEAD; a later whole body is accepted", () =>
    Effect.gen(function*() {
      const body = randomBytes(4096)
      const double = yield* datasetDouble([{ name: "a.bin", body }], (attempt, bytes, req) => {
        closeDelimited(req, attempt === 1 ? bytes.subarray(0, 100) : bytes)
      })
      const store = yield* storeOn(double)
      const dir = yield* tempDir
      const short = yield* Effect.flip(store.getToFile("datasets/d/a.bin", `${dir}/a.bin`))
      assert.strictEqual(short.reason, "Transport")
      assert.include(short.detail, "received 100 bytes, the object has 4096 (HEAD)")
      assert.strictEqual(yield* store.getToFile("datasets/d/a.bin", `${dir}/a.bin`), 4096)
      assert.isTrue((yield* Effect.promise(() => readFile(`${dir}/a.bin`))).equals(body))
      assert.strictEqual(double.count("HEAD"), 2)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a Content-Length that is itself too small: the listing's size wins, the attempt is retried", () =>
    Effect.gen(function*() {
      const body = randomBytes(4096)
      const double = yield* datasetDouble([{ name: "a.bin", body }], (attempt, bytes, _req, res) => {
        sendObject(res, attempt < 3 ? bytes.subarray(0, 100) : bytes)
      })
      const storage = yield* storageOn(yield* storeOn(double))
      const dest = yield* tempDir
      assert.deepStrictEqual(yield* storage.downloadDataset("d", dest), { files: 1, bytes: 4096 })
      assert.isTrue((yield* Effect.promise(() => readFile(`${dest}/a.bin`))).equals(body))
      assert.strictEqual(double.count("GET", "/b/datasets/d/a.bin"), 3)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a checkpoint whose every body is short: CheckpointError, nothing at the destination", () =>
    Effect.gen(function*() {
      const double = yield* startS3Double((req, res) => {
        if (req.method === "HEAD") return sendHead(res, 4096)
        sendObject(res, randomBytes(100))
      })
      const storage = yield* storageOn(yield* storeOn(double))
      const dir = yield* tempDir
      const error = yield* Effect.flip(storage.downloadCheckpoint("s3://b/checkpoints/7/best.pt", `${dir}/best.pt`))
      assert.strictEqual(error._tag, "CheckpointError")
      if (error._tag === "CheckpointError") assert.strictEqual(error.reason, "Download")
      assert.include(error.message, "received 100 bytes, the object has 4096")
      assert.strictEqual(double.count("GET"), 3)
      assert.deepStrictEqual(yield* filesUnder(dir), [])
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("listings", () => {
  it.scopedLive("a page with IsTruncated and no continuation token is an error naming the prefix, not the end", () =>
    Effect.gen(function*() {
      const objects = Array.from({ length: 10 }, (_, i) => ({ key: `datasets/d/f${i}.bin`, size: 1 }))
      const double = yield* startS3Double((req, res) => {
        if (isList(req)) return sendXml(res, listPage(objects, { truncated: true }))
        sendObject(res, Buffer.from("x"))
      })
      const storage = yield* storageOn(yield* storeOn(double))
      const dest = yield* tempDir
      const error = yield* Effect.flip(storage.downloadDataset("d", dest))
      assert.strictEqual(error._tag, "StorageError")
      if (error._tag !== "StorageError") return
      assert.strictEqual(error.reason, "Integrity")
      assert.strictEqual(error.key, "datasets/d/")
      assert.include(error.message, "s3://b/datasets/d/")
      assert.include(error.message, "no continuation token")
      assert.strictEqual(double.count("GET", "list-type=2"), 1)
      assert.strictEqual(double.count("GET", "f0.bin"), 0)
      assert.deepStrictEqual(yield* filesUnder(dest), [])
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("multipart uploads", () => {
  /** A multipart server whose parts go through `onPart`; aborted upload ids are recorded. */
  const multipartDouble = (onPart: (req: http.IncomingMessage, res: http.ServerResponse) => void) => {
    const aborted: Array<string> = []
    return Effect.map(
      startS3Double((req, res) => {
        const url = new URL(req.url ?? "/", "http://x")
        if (req.method === "POST" && url.searchParams.has("uploads")) return drain(req, () => multipart.initiate(res, "up-1"))
        if (req.method === "PUT" && url.searchParams.has("partNumber")) return onPart(req, res)
        if (req.method === "DELETE" && url.searchParams.has("uploadId")) {
          aborted.push(url.searchParams.get("uploadId")!)
          return multipart.aborted(res)
        }
        sendXml(res, "<Error><Code>InternalError</Code></Error>", 500)
      }),
      (double) => ({ double, aborted })
    )
  }

  const checkpointFile = (dir: string, bytes: number) =>
    Effect.promise(async () => {
      const file = `${dir}/best.pt`
      await writeFile(file, randomBytes(bytes))
      return file
    })

  it.scopedLive("interrupted mid-upload: in-flight parts are aborted and AbortMultipartUpload reaches the server before the interruption ends", () =>
    Effect.gen(function*() {
      let partsClosed = 0
      const { aborted, double } = yield* multipartDouble((req) => {
        req.resume()
        req.on("close", () => partsClosed++)
      })
      // Limits far beyond the test: the parts hang until the interruption, never retried.
      const patient = { connect: Duration.seconds(30), request: Duration.seconds(30), idle: Duration.seconds(30) }
      const storage = yield* storageOn(yield* storeOn(double, patient))
      const dir = yield* tempDir
      const file = yield* checkpointFile(dir, 12 * MiB)
      const fiber = yield* Effect.fork(storage.uploadCheckpoint(file, "best"))
      yield* eventually(() => double.count("PUT", "partNumber") >= 3)
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      // Already there when the interruption returned: no waiting.
      assert.deepStrictEqual(aborted, ["up-1"])
      yield* eventually(() => partsClosed === 3)
      const parts = double.requests().filter((r) => r.method === "PUT")
      assert.strictEqual(parts.length, 3)
      const abort = double.requests().find((r) => r.method === "DELETE")!
      assert.isTrue(parts.every((p) => p.at < abort.at))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a part that is never answered: three attempts, then Timeout and the upload aborted", () =>
    Effect.gen(function*() {
      const { aborted, double } = yield* multipartDouble((req, res) => {
        const part = new URL(req.url ?? "/", "http://x").searchParams.get("partNumber")
        if (part === "2") return req.resume()
        drain(req, () => multipart.part(res, `etag-${part}`))
      })
      const storage = yield* storageOn(yield* storeOn(double))
      const dir = yield* tempDir
      const file = yield* checkpointFile(dir, 12 * MiB)
      const error = yield* Effect.flip(storage.uploadCheckpoint(file, "best"))
      assert.strictEqual(error.reason, "Upload")
      assert.include(error.message, "Timeout")
      assert.strictEqual(double.count("PUT", "partNumber=2"), 3)
      assert.deepStrictEqual(aborted, ["up-1"])
      assert.strictEqual(double.count("POST", "uploadId="), 0) // never completed
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a part refused (403): no retry, the upload aborted, AccessDenied reported", () =>
    Effect.gen(function*() {
      const { aborted, double } = yield* multipartDouble((req, res) =>
        drain(req, () => sendXml(res, "<Error><Code>AccessDenied</Code><Message>no</Message></Error>", 403))
      )
      const storage = yield* storageOn(yield* storeOn(double))
      const dir = yield* tempDir
      const file = yield* checkpointFile(dir, 6 * MiB)
      const error = yield* Effect.flip(storage.uploadCheckpoint(file, "best"))
      assert.include(error.message, "AccessDenied")
      assert.strictEqual(double.count("PUT", "partNumber=1"), 1)
      assert.deepStrictEqual(aborted, ["up-1"])
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("local write failures", () => {
  it.scopedLive("ENOSPC while writing a download: a LocalIO error naming the path, not retried, the batch stopped", () =>
    Effect.gen(function*() {
      const objects = Array.from({ length: 3 }, (_, i) => ({ name: `f${i}.bin`, body: randomBytes(64 * 1024) }))
      const double = yield* datasetDouble(objects, (_attempt, bytes, _req, res) => sendObject(res, bytes))
      const store = yield* storeOn(double)
      // Every write lands on /dev/full, which fails with ENOSPC like a full disk.
      const full: ObjectStore = { ...store, getToFile: (key, _path, options) => store.getToFile(key, "/dev/full", options) }
      const storage = yield* storageOn(full)
      const dest = yield* tempDir
      const error = yield* Effect.flip(storage.downloadDataset("d", dest, { concurrency: 1 }))
      assert.instanceOf(error, StorageError)
      if (!(error instanceof StorageError)) return
      assert.strictEqual(error.reason, "LocalIO")
      assert.strictEqual(error.key, `${dest}/f0.bin`)
      assert.include(error.message, "ENOSPC")
      assert.strictEqual(classifyError(error), "ResourceError")
      assert.strictEqual(double.count("GET", "/b/datasets/d/"), 1)
      assert.deepStrictEqual(yield* filesUnder(dest), [])
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("timeouts from the environment", () => {
  // Storage reads only its own variables: the stores' endpoints and the timeouts.
  const storageLayer = (double: S3Double, env: Record<string, string>) =>
    Storage.layer.pipe(
      Layer.provide(NodeContext.layer),
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({
        EXTERNAL_STORAGE_ENDPOINT: double.endpoint,
        EXTERNAL_BUCKET_DATASETS: "b",
        INTERNAL_STORAGE_ENDPOINT: double.endpoint,
        INTERNAL_BUCKET_CHECKPOINTS: "b",
        ...env
      })))))
    )

  it.scopedLive("S3_REQUEST_TIMEOUT bounds each attempt of Storage.layer's stores", () =>
    Effect.gen(function*() {
      const double = yield* startS3Double(() => {})
      const error = yield* Effect.flip(
        Effect.flatMap(Storage, (storage) => storage.downloadDataset("d", os.tmpdir())).pipe(
          Effect.provide(storageLayer(double, { S3_REQUEST_TIMEOUT: "0.5", S3_IDLE_TIMEOUT: "0.5" }))
        )
      )
      assert.strictEqual(error._tag, "StorageError")
      assert.include(error.message, "0.5 s (S3_REQUEST_TIMEOUT)")
      // Four attempts of 0.5 s and the default backoff between them.
      assert.strictEqual(double.count("GET", "list-type=2"), 4)
    }))

  it.scopedLive("an invalid timeout is a ConfigError naming the variable", () =>
    Effect.gen(function*() {
      const double = yield* startS3Double(() => {})
      const error = yield* Effect.flip(Layer.build(storageLayer(double, { S3_IDLE_TIMEOUT: "-1" })))
      assert.strictEqual(error._tag, "ConfigError")
      assert.strictEqual(error.variable, "S3_IDLE_TIMEOUT")
    }))
})
