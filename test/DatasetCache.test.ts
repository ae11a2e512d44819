import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Exit, Layer, Ref, Scope, TestClock } from "effect"
import { cacheKeyOf, DatasetCache, type DatasetCacheOptions, type DatasetCacheService } from "../src/DatasetCache.js"
import { type JobContextInput, makeJobContext } from "../src/JobContext.js"
import { StorageTest, Storage } from "../src/Storage.js"

const hashA = "aaaaaaaaaaaaaaaa-version-a"
const hashB = "bbbbbbbbbbbbbbbb-version-b"
const hashC = "cccccccccccccccc-version-c"
const keyOf = (datasetId: string, hash: string) => Either.getOrThrow(cacheKeyOf(datasetId, hash))
const keyA = keyOf("ds1", hashA)

const annotationKey = (datasetId: string) => `datasets/${datasetId}/annotations_detection.json`

/**
 * A temp cache dir over one in-memory storage, and a way to run with a fresh cache layer (its
 * own lease scope); `defaults` are options of every layer.
 */
const harnessWith = (defaults: Partial<DatasetCacheOptions>) => Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const root = yield* fs.makeTempDirectoryScoped()
  const cacheDir = path.join(root, "cache")
  const storage = yield* Layer.build(Storage.layerTest())
  const { external: memory, seedDataset } = Context.get(storage, StorageTest)
  const cacheLayer = (options: Partial<DatasetCacheOptions> = {}, job: JobContextInput = {}) =>
    DatasetCache.layerConfig(makeJobContext({ datasetId: "ds1", snapshotId: "snap1", datasetVersionHash: hashA, ...job }), {
      cacheDir,
      staleAfter: "2 seconds",
      heartbeatEvery: "100 millis",
      pollEvery: "20 millis",
      ...defaults,
      ...options
    }).pipe(Layer.provide(Layer.succeedContext(storage)))
  const withCache = <A, E>(
    f: (cache: DatasetCacheService) => Effect.Effect<A, E>,
    options: Partial<DatasetCacheOptions> = {},
    job: JobContextInput = {}
  ) => Effect.flatMap(DatasetCache, f).pipe(Effect.provide(cacheLayer(options, job)))
  return { fs, path, root, cacheDir, memory, seedDataset, cacheLayer, withCache }
})

const harness = harnessWith({})

/**
 * For tests on `TestClock`: the clock set to the wall clock (lock and lease files carry real
 * modification times, which the cache compares with its `Clock`), and leases live for as long
 * as their holder (the test's clock moves on without real time passing).
 */
const harnessOnTestClock = Effect.zipRight(
  Effect.suspend(() => TestClock.setTime(Date.now())),
  harnessWith({ staleAfter: "1 hour" })
)

describe("DatasetCache", () => {
  it.scoped("a miss downloads once, a hit materializes a fresh view without downloading", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, memory, path, root, withCache, seedDataset } = yield* harnessOnTestClock
      // A second annotation file: every annotation file is copied into each view.
      seedDataset("ds1", {
        images: { "a.jpg": "AAAA", "sub/b.jpg": "BB" },
        files: [{ key: "annotations_extra.json", bytes: JSON.stringify({ images: [] }) }]
      })
      const progress = yield* Ref.make(0)
      const [first, second, entries] = yield* withCache((cache) =>
        Effect.gen(function*() {
          const first = yield* cache.ensure({
            destDir: path.join(root, "job1"),
            onProgress: () => Ref.update(progress, (n) => n + 1)
          })
          const before = (yield* cache.entries)[0]!
          yield* TestClock.adjust("1 second")
          const second = yield* cache.ensure({ destDir: path.join(root, "job2") })
          const after = (yield* cache.entries)[0]!
          expect(after.lastAccessed.getTime() - before.lastAccessed.getTime()).toBe(1000)
          return [first, second, yield* cache.entries] as const
        })
      )
      expect(first).toBe(path.join(root, "job1", "dataset"))
      expect(second).toBe(path.join(root, "job2", "dataset"))
      expect(memory.getCount(annotationKey("ds1"))).toBe(1)
      expect(memory.getCount("datasets/ds1/images/a.jpg")).toBe(1)
      expect(yield* Ref.get(progress)).toBeGreaterThan(0)

      for (const view of [first, second]) {
        expect((yield* fs.readDirectory(view)).sort()).toEqual(["annotations_detection.json", "annotations_extra.json", "images"])
        expect(yield* fs.readLink(path.join(view, "images"))).toBe(path.join(cacheDir, keyA, "images"))
        expect(yield* fs.readFileString(path.join(view, "images", "sub", "b.jpg"))).toBe("BB")
      }
      // The annotation files are copies: a job editing its own leaves the entry and other jobs untouched.
      yield* fs.writeFileString(path.join(first, "annotations_detection.json"), "{}")
      expect(yield* fs.readFileString(path.join(second, "annotations_detection.json"))).toContain("sub/b.jpg")
      expect(yield* fs.readFileString(path.join(cacheDir, keyA, "annotations_detection.json"))).toContain("sub/b.jpg")

      expect(entries).toHaveLength(1)
      const datasetBytes = ["annotations_detection.json", "annotations_extra.json", "images/a.jpg", "images/sub/b.jpg"]
        .reduce((sum, name) => sum + memory.read(`datasets/ds1/${name}`)!.length, 0)
      expect(entries[0]).toMatchObject({ key: keyA, snapshotId: "snap1", datasetId: "ds1", datasetVersionHash: hashA, sizeBytes: datasetBytes })
      const metadata = JSON.parse(yield* fs.readFileString(path.join(cacheDir, ".cache_metadata.json")))
      expect(Object.keys(metadata)).toEqual([keyA])
      expect(Object.keys(metadata[keyA]).sort()).toEqual(
        ["created_at", "dataset_id", "dataset_version_hash", "last_accessed", "size_bytes", "snapshot_id"]
      )
      expect(yield* fs.exists(path.join(cacheDir, keyA, ".complete"))).toBe(true)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a hit replaces an earlier view in the same job directory", () =>
    Effect.gen(function*() {
      const { fs, path, root, withCache, seedDataset } = yield* harness
      seedDataset("ds1", { images: { "a.jpg": "AAAA" } })
      const view = yield* withCache((cache) =>
        Effect.zipRight(
          cache.ensure({ destDir: path.join(root, "job") }),
          cache.ensure({ destDir: path.join(root, "job") })
        )
      )
      expect((yield* fs.readDirectory(path.join(root, "job"))).sort()).toEqual(["dataset"])
      expect(yield* fs.readFileString(path.join(view, "images", "a.jpg"))).toBe("AAAA")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("an empty or unsafe version hash is an InvalidKey error, not a cache key", () =>
    Effect.gen(function*() {
      const { memory, root, withCache, seedDataset } = yield* harness
      seedDataset("ds1", { images: { "a.jpg": "A" } })
      const empty = yield* withCache((cache) => Effect.flip(cache.ensure({ destDir: root })), {}, { datasetVersionHash: "" })
      expect(empty._tag).toBe("CacheError")
      assert(empty._tag === "CacheError")
      expect(empty.reason).toBe("InvalidKey")
      expect(empty.message).toContain("DATASET_VERSION_HASH")
      const escape = yield* withCache((cache) => Effect.flip(cache.ensure({ destDir: root, datasetVersionHash: "../../etc" })))
      assert(escape._tag === "CacheError")
      expect(escape.message).toContain("../../etc")
      expect(memory.getCount(annotationKey("ds1"))).toBe(0)
      const removeBad = yield* withCache((cache) => Effect.flip(cache.remove("../x")))
      expect(removeBad.reason).toBe("InvalidKey")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("eviction removes the least recently used entry, never the one returned nor a leased one", () =>
    Effect.gen(function*() {
      const { cacheDir, cacheLayer, fs, path, root, withCache, seedDataset } = yield* harnessOnTestClock
      seedDataset("dsA", { images: { "a.jpg": "x".repeat(100) } })
      seedDataset("dsB", { images: { "b.jpg": "x".repeat(100) } })
      seedDataset("dsC", { images: { "c.jpg": "x".repeat(100) } })
      const [keyA, keyB, keyC] = [keyOf("dsA", hashA), keyOf("dsB", hashB), keyOf("dsC", hashC)]
      const ensure = (datasetId: string, datasetVersionHash: string, job: string) => (cache: DatasetCacheService) =>
        cache.ensure({ datasetId, datasetVersionHash, destDir: path.join(root, job) })
      yield* withCache(ensure("dsA", hashA, "j1"))
      // The three entries are the same size; the limit keeps two.
      const entrySize = (yield* withCache((cache) => cache.entries))[0]!.sizeBytes
      const limit = { maxBytes: Math.floor(entrySize * 2.5) }
      yield* TestClock.adjust("1 second")
      yield* withCache(ensure("dsB", hashB, "j2"), limit)
      yield* TestClock.adjust("1 second")
      yield* withCache(ensure("dsA", hashA, "j3"), limit) // A is now more recent than B
      yield* TestClock.adjust("1 second")
      yield* withCache(ensure("dsC", hashC, "j4"), limit)
      expect((yield* withCache((cache) => cache.entries)).map((e) => e.key)).toEqual([keyA, keyC].sort())
      expect(yield* fs.exists(path.join(cacheDir, keyB))).toBe(false)

      // A live lease (a still-open cache scope that used A) protects A although it is now the LRU entry.
      const scope = yield* Scope.make()
      const leased = yield* Layer.buildWithScope(cacheLayer(limit), scope)
      yield* Effect.flatMap(DatasetCache, ensure("dsA", hashA, "j5")).pipe(Effect.provide(leased))
      yield* TestClock.adjust("1 second")
      const afterB = yield* withCache((cache) => Effect.zipRight(ensure("dsB", hashB, "j6")(cache), cache.entries), limit)
      expect(afterB.map((e) => e.key)).toEqual([keyA, keyB].sort())
      expect(yield* withCache((cache) => cache.prune({ maxBytes: 0 }))).toEqual([keyB])
      expect(yield* fs.exists(path.join(cacheDir, keyA, ".complete"))).toBe(true)
      const busy = yield* withCache((cache) => Effect.flip(cache.remove(keyA)))
      expect(busy.reason).toBe("Lock")
      expect(busy.message).toContain("live process lease")

      // Once the lease holder's scope closes, nothing protects A any more.
      yield* Scope.close(scope, Exit.void)
      expect(yield* withCache((cache) => cache.prune({ maxBytes: 0 }))).toEqual([keyA])
      expect(yield* withCache((cache) => cache.entries)).toEqual([])
      expect((yield* fs.readDirectory(cacheDir)).filter((name) => !name.startsWith("."))).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a failed download leaves no complete entry, and the next call recovers", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, memory, path, root, withCache, seedDataset } = yield* harness
      seedDataset("ds1", { images: { "a.jpg": "AAAA", "b.jpg": "BBBB" } })
      memory.failOn("datasets/ds1/images/b.jpg", "AccessDenied")
      const failure = yield* withCache((cache) => Effect.flip(cache.ensure({ destDir: path.join(root, "job") })))
      expect(failure._tag).not.toBe("CacheError")
      const left = (yield* fs.readDirectory(cacheDir)).filter((name) => name !== ".locks" && name !== ".leases")
      expect(left).toEqual([])
      expect(yield* fs.exists(path.join(root, "job", "dataset"))).toBe(false)

      memory.clearFailures()
      const view = yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job") }))
      expect(yield* fs.readFileString(path.join(view, "images", "b.jpg"))).toBe("BBBB")
      expect(yield* fs.exists(path.join(cacheDir, keyA, ".complete"))).toBe(true)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("garbage from an interrupted download (no .complete, temp dirs) is removed before downloading again", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, memory, path, root, withCache, seedDataset } = yield* harness
      seedDataset("ds1", { images: { "a.jpg": "AAAA" } })
      yield* fs.makeDirectory(path.join(cacheDir, keyA, "images"), { recursive: true })
      yield* fs.writeFileString(path.join(cacheDir, keyA, "images", "stale.jpg"), "half")
      yield* fs.makeDirectory(path.join(cacheDir, `.tmp-${keyA}-dead`), { recursive: true })
      const view = yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job") }))
      expect(yield* fs.readDirectory(path.join(view, "images"))).toEqual(["a.jpg"])
      expect((yield* fs.readDirectory(cacheDir)).sort()).toEqual([".cache_metadata.json", ".leases", ".locks", keyA])
      expect(memory.getCount(annotationKey("ds1"))).toBe(1)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("an image listed but empty after download fails verification, naming it", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, path, root, withCache, seedDataset } = yield* harness
      seedDataset("ds1", { images: { "a.jpg": "AAAA", "empty.jpg": "" } })
      const failure = yield* withCache((cache) => Effect.flip(cache.ensure({ destDir: path.join(root, "job") })))
      assert(failure._tag === "CacheError")
      expect(failure.reason).toBe("Verify")
      expect(failure.message).toContain("empty.jpg")
      expect(failure.message).toContain("1 of 2")
      expect(yield* fs.exists(path.join(cacheDir, keyA))).toBe(false)
      expect(yield* withCache((cache) => cache.entries)).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("lost or corrupt metadata is rebuilt from the entries' markers", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, memory, path, root, withCache, seedDataset } = yield* harness
      seedDataset("ds1", { images: { "a.jpg": "AAAA" } })
      yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job") }))
      const [entry] = yield* withCache((cache) => cache.entries)
      yield* fs.writeFileString(path.join(cacheDir, ".cache_metadata.json"), "{ truncated")
      const rebuilt = yield* withCache((cache) => cache.entries)
      expect(rebuilt).toHaveLength(1)
      expect(rebuilt[0]).toMatchObject({ key: keyA, datasetId: "ds1", sizeBytes: entry!.sizeBytes })
      yield* fs.remove(path.join(cacheDir, ".cache_metadata.json"))
      yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job2") }))
      expect(memory.getCount(annotationKey("ds1"))).toBe(1)
      const metadata = JSON.parse(yield* fs.readFileString(path.join(cacheDir, ".cache_metadata.json")))
      expect(metadata[keyA].size_bytes).toBe(entry!.sizeBytes)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("removing an entry removes a symlink inside it, not what the link points to", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, path, root, withCache, seedDataset } = yield* harness
      seedDataset("ds1", { images: { "a.jpg": "AAAA" } })
      const outside = path.join(root, "precious")
      yield* fs.makeDirectory(outside)
      yield* fs.writeFileString(path.join(outside, "keep.txt"), "keep")
      yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job") }))
      yield* fs.symlink(outside, path.join(cacheDir, keyA, "images", "link"))
      expect(yield* withCache((cache) => cache.remove(keyA))).toBe(true)
      expect(yield* fs.exists(path.join(cacheDir, keyA))).toBe(false)
      expect(yield* fs.readFileString(path.join(outside, "keep.txt"))).toBe("keep")
      expect(yield* withCache((cache) => cache.entries)).toEqual([])
      expect(yield* withCache((cache) => cache.remove(keyA))).toBe(false)
    }).pipe(Effect.provide(NodeContext.layer)))
})
