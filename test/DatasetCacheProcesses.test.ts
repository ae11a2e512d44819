import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer, Schedule } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { cacheKeyOf, DatasetCache } from "../src/DatasetCache.js"
import { makeJobContext } from "../src/JobContext.js"
import { storageLayerFrom, storageVariables } from "./support/storageEnv.js"
import type { CacheWorkerArgs } from "./support/cacheWorker.js"
import { compiledScript } from "./support/compiledScripts.js"
import { startFaultProxy } from "./support/faultProxy.js"
import { startS3rver } from "./support/s3rver.js"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const bucket = "training-datasets"
const datasetId = "shared-ds"
const hash = "0123456789abcdef-shared"
const key = Either.getOrThrow(cacheKeyOf(datasetId, hash))
const annotationPath = `/${bucket}/datasets/${datasetId}/annotations_detection.json`
const imageNames = Array.from({ length: 24 }, (_, i) => `img_${String(i).padStart(3, "0")}.jpg`)
const staleAfterMs = 3_000
const heartbeatMs = 250

/** One s3rver holding the dataset, behind a proxy that counts GETs of the primary annotation file. */
const server = Effect.gen(function*() {
  const s3 = yield* startS3rver([bucket])
  const client = new S3Client(s3.clientConfig)
  yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
  const annotation = JSON.stringify({
    images: imageNames.map((file_name, id) => ({ id, file_name, width: 4, height: 4 })),
    annotations: [],
    categories: [{ id: 1, name: "thing" }]
  })
  yield* Effect.promise(() =>
    Promise.all([
      client.send(new PutObjectCommand({ Bucket: bucket, Key: `datasets/${datasetId}/annotations_detection.json`, Body: annotation })),
      ...imageNames.map((name, i) =>
        client.send(new PutObjectCommand({ Bucket: bucket, Key: `datasets/${datasetId}/images/${name}`, Body: "x".repeat(100 + i) }))
      )
    ])
  )
  let annotationGets = 0
  const proxy = yield* startFaultProxy({
    target: s3.endpoint,
    rates: {},
    eligible: ({ method, url }) => {
      if (method === "GET" && url.split("?")[0] === annotationPath) annotationGets++
      return false
    }
  })
  return { endpoint: proxy.url, annotationGets: () => annotationGets }
})

interface RunningWorker {
  readonly child: ChildProcess
  readonly output: () => string
}

/** Starts a worker process; killed (SIGKILL) if still running when the scope closes. */
const spawnWorker = (args: CacheWorkerArgs) =>
  Effect.acquireRelease(
    Effect.sync((): RunningWorker => {
      const child = spawn(process.execPath, [compiledScript("test/support/cacheWorker.ts"), JSON.stringify(args)], {
        cwd: repoRoot,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
      return { child, output: () => output }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

/** Waits for a worker to exit; its exit code (or the signal that ended it). */
const exitOf = (worker: RunningWorker) =>
  Effect.async<number | NodeJS.Signals>((resume) => {
    const done = () => resume(Effect.succeed(worker.child.exitCode ?? worker.child.signalCode ?? -1))
    if (worker.child.exitCode !== null || worker.child.signalCode !== null) done()
    else worker.child.once("exit", done)
  })

/** Waits until the worker printed `line`, failing with its output after `ms`. */
const waitForLine = (worker: RunningWorker, line: string, ms = 90_000) =>
  Effect.sync(() => worker.output().split("\n").includes(line)).pipe(
    Effect.repeat({ until: (seen) => seen, schedule: Schedule.spaced("50 millis") }),
    Effect.timeoutFail({ duration: ms, onTimeout: () => new Error(`no "${line}" from worker: ${worker.output()}`) })
  )

const resultOf = (worker: RunningWorker) => {
  const line = worker.output().split("\n").find((l) => l.startsWith("RESULT "))
  assert(line !== undefined, `worker printed no result: ${worker.output()}`)
  return JSON.parse(line.slice("RESULT ".length)) as { view: string; images: Array<string>; annotations: string }
}

const expectedImages = imageNames.map((name, i) => `${name}:${100 + i}`).sort()

/** The cache in this (test) process, against the same server and cache directory. */
const localCache = (endpoint: string, cacheDir: string, staleAfter: Duration.DurationInput = staleAfterMs) =>
  DatasetCache.layerConfig(
    makeJobContext({ datasetId, snapshotId: "snapshot", datasetVersionHash: hash }),
    { cacheDir, staleAfter, heartbeatEvery: heartbeatMs, pollEvery: 50 }
  ).pipe(
    Layer.provideMerge(storageLayerFrom(storageVariables({ endpoint, accessKey: "S3RVER", secretKey: "S3RVER" }, { external: bucket })))
  )

describe("DatasetCache across processes", () => {
  it.scopedLive("six processes asking for the same uncached version: one download, six identical complete views", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const { annotationGets, endpoint } = yield* server
      const root = yield* fs.makeTempDirectoryScoped()
      const cacheDir = path.join(root, "cache")
      const workers = yield* Effect.forEach(Array.from({ length: 6 }, (_, i) => i), (i) =>
        spawnWorker({
          mode: "ensure",
          endpoint,
          bucket,
          cacheDir,
          destDir: path.join(root, `job${i}`),
          datasetId,
          datasetVersionHash: hash,
          staleAfterMs,
          heartbeatMs
        }))
      const exits = yield* Effect.forEach(workers, exitOf, { concurrency: "unbounded" })
      expect(exits, workers.map((w) => w.output()).join("\n")).toEqual([0, 0, 0, 0, 0, 0])
      expect(annotationGets()).toBe(1)
      const results = workers.map(resultOf)
      for (const [i, result] of results.entries()) {
        expect(result.view).toBe(path.join(root, `job${i}`, "dataset"))
        expect(result.images).toEqual(expectedImages)
        expect(result.annotations).toBe(results[0]!.annotations)
        expect(yield* fs.readLink(path.join(result.view, "images"))).toBe(path.join(cacheDir, key, "images"))
      }
      expect((yield* fs.readDirectory(cacheDir)).sort()).toEqual([".cache_metadata.json", ".leases", ".locks", key])
      expect(Object.keys(JSON.parse(yield* fs.readFileString(path.join(cacheDir, ".cache_metadata.json"))))).toEqual([key])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a process killed with SIGKILL mid-download while holding the lock: the next caller recovers promptly", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const { annotationGets, endpoint } = yield* server
      const root = yield* fs.makeTempDirectoryScoped()
      const cacheDir = path.join(root, "cache")
      const crashing = yield* spawnWorker({
        mode: "crash",
        endpoint,
        bucket,
        cacheDir,
        destDir: path.join(root, "crashed"),
        datasetId,
        datasetVersionHash: hash,
        staleAfterMs,
        heartbeatMs
      })
      yield* waitForLine(crashing, "DOWNLOADING")
      expect(yield* fs.exists(path.join(cacheDir, ".locks", `${key}.lock`))).toBe(true)
      crashing.child.kill("SIGKILL")
      expect(yield* exitOf(crashing)).toBe("SIGKILL")
      expect((yield* fs.readDirectory(cacheDir)).some((name) => name.startsWith(`.tmp-${key}-`))).toBe(true)

      // Promptly: a dead holder's lock is broken at once, not after the stale threshold (an hour here).
      const view = yield* Effect.flatMap(DatasetCache, (cache) => cache.ensure({ destDir: path.join(root, "next") })).pipe(
        Effect.provide(localCache(endpoint, cacheDir, "1 hour"))
      )
      expect(annotationGets()).toBe(2)
      expect((yield* fs.readDirectory(path.join(view, "images"))).sort()).toEqual(imageNames)
      expect((yield* fs.readDirectory(cacheDir)).sort()).toEqual([".cache_metadata.json", ".leases", ".locks", key])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a holder whose main thread is blocked longer than the stale threshold keeps its lease while another process evicts", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const { endpoint } = yield* server
      const root = yield* fs.makeTempDirectoryScoped()
      const cacheDir = path.join(root, "cache")
      const blockMs = staleAfterMs * 2 + 1_000
      const holder = yield* spawnWorker({
        mode: "block",
        endpoint,
        bucket,
        cacheDir,
        destDir: path.join(root, "holder"),
        datasetId,
        datasetVersionHash: hash,
        staleAfterMs,
        heartbeatMs,
        blockMs
      })
      yield* waitForLine(holder, "BLOCKING")
      const cache = localCache(endpoint, cacheDir)
      // Well past the stale threshold with the holder's main thread blocked all along.
      yield* Effect.sleep(staleAfterMs + 1_000)
      expect(holder.output()).not.toContain("UNBLOCKED")
      const whileBlocked = yield* Effect.flatMap(DatasetCache, (c) =>
        Effect.all([c.prune({ maxBytes: 0 }), Effect.flip(c.remove(key))])).pipe(Effect.provide(cache))
      expect(holder.output()).not.toContain("UNBLOCKED")
      expect(whileBlocked[0]).toEqual([])
      expect(whileBlocked[1].reason).toBe("Lock")
      expect(yield* fs.exists(path.join(cacheDir, key, ".complete"))).toBe(true)
      yield* waitForLine(holder, "UNBLOCKED")

      // The lease dies with the process: a dead holder on this host is stale at once.
      holder.child.kill("SIGKILL")
      yield* exitOf(holder)
      expect(yield* Effect.flatMap(DatasetCache, (c) => c.prune({ maxBytes: 0 })).pipe(Effect.provide(cache))).toEqual([key])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("eviction never removes an entry leased by a live process, and reclaims it once that process is gone", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const { endpoint } = yield* server
      const root = yield* fs.makeTempDirectoryScoped()
      const cacheDir = path.join(root, "cache")
      const holder = yield* spawnWorker({
        mode: "hold",
        endpoint,
        bucket,
        cacheDir,
        destDir: path.join(root, "holder"),
        datasetId,
        datasetVersionHash: hash,
        staleAfterMs,
        heartbeatMs
      })
      yield* waitForLine(holder, "READY")
      // Longer than the stale threshold: only the holder's heartbeat keeps its lease live.
      yield* Effect.sleep(staleAfterMs + 500)
      const cache = localCache(endpoint, cacheDir)
      const whileHeld = yield* Effect.flatMap(DatasetCache, (c) =>
        Effect.all([c.prune({ maxBytes: 0 }), Effect.flip(c.remove(key))])).pipe(Effect.provide(cache))
      expect(whileHeld[0]).toEqual([])
      expect(whileHeld[1].reason).toBe("Lock")
      expect(yield* fs.exists(path.join(cacheDir, key, ".complete"))).toBe(true)

      holder.child.kill("SIGKILL")
      yield* exitOf(holder)
      const afterKill = yield* Effect.flatMap(DatasetCache, (c) => c.prune({ maxBytes: 0 })).pipe(Effect.provide(cache))
      expect(afterKill).toEqual([key])
      expect(yield* fs.exists(path.join(cacheDir, key))).toBe(false)
    }).pipe(Effect.provide(NodeContext.layer)))
})

