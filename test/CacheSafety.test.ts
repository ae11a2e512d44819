/**
 * File-system safety of the dataset cache and of everything that builds paths from input:
 * the one name rule, hostile names in every field the cache and the converter read, the
 * shared entry's immutability, whole-version keys and damaged entries.
 */
import { FileSystem, Path } from "@effect/platform"
import { SystemError } from "@effect/platform/Error"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Either, Exit, FastCheck as fc, Layer, Scope } from "effect"
import { Converter } from "../src/Converter.js"
import { cacheKeyOf, DatasetCache, type DatasetCacheOptions, type DatasetCacheService } from "../src/DatasetCache.js"
import { classifyError, ConfigError, type SdkError, StorageError } from "../src/Errors.js"
import { JobContext, type JobContextInput, makeJobContext } from "../src/JobContext.js"
import { isInside, normalizeRelativeName, resolveInside, temporarySibling } from "../src/internal/safeName.js"
import { StorageTest, Storage } from "../src/Storage.js"

const hash = "0123456789abcdef-version-1"
const keyOf = (datasetId: string, versionHash: string) => Either.getOrThrow(cacheKeyOf(datasetId, versionHash))

/** A nested DICE document over `names`, one box (and one polygon) per image. */
const diceDoc = (names: ReadonlyArray<string>, extra: Record<string, unknown> = {}) => ({
  format_version: "1.0",
  task_type: "object_detection",
  classes: [{ id: 0, name: "cat" }],
  ...extra,
  images: names.map((file_name, i) => ({
    id: i + 1,
    file_name,
    width: 10,
    height: 10,
    annotations: [{ id: i + 1, class_id: 0, bbox: [1, 1, 4, 4], segmentation: [[1, 1, 5, 1, 5, 5]] }]
  }))
})

/** Seeds `datasets/{id}/` with `diceDoc` over `images` and each image's bytes. */
const seed = (memory: StorageTest["Type"], datasetId: string, images: Record<string, string>) =>
  memory.seedDataset(datasetId, { images, annotations: { "annotations_detection.json": diceDoc(Object.keys(images)) } })

/** Every file under `dir` (links not followed) with its content, for before/after comparisons. */
const snapshot = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const out: Record<string, string> = {}
    for (const name of (yield* fs.readDirectory(dir, { recursive: true })).sort()) {
      const file = path.join(dir, name)
      const link = yield* Effect.either(fs.readLink(file))
      if (Either.isRight(link)) out[name] = `-> ${link.right}`
      else if ((yield* fs.stat(file)).type === "File") out[name] = yield* fs.readFileString(file)
      else out[name] = "<dir>"
    }
    return out
  })

/** A temp root with `cache/`, a `victim/` tree beside it, and the cache over in-memory storage. */
const harness = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const root = yield* fs.makeTempDirectoryScoped()
  const cacheDir = path.join(root, "cache")
  const victim = path.join(root, "victim")
  yield* fs.makeDirectory(path.join(victim, "images"), { recursive: true })
  yield* fs.makeDirectory(path.join(victim, "labels"), { recursive: true })
  yield* fs.writeFileString(path.join(victim, "images", "x.jpg"), "PRECIOUS")
  yield* fs.writeFileString(path.join(victim, "labels", "x.txt"), "0 0.5 0.5 0.1 0.1\n")
  yield* fs.writeFileString(path.join(victim, "labels.cache"), "CACHE")
  const victimBefore = yield* snapshot(victim)
  const storage = yield* Layer.build(Storage.layerTest())
  const memoryStorage = Context.get(storage, StorageTest)
  const memory = memoryStorage.external
  const cacheLayer = (options: Partial<DatasetCacheOptions> = {}, job: JobContextInput = {}) =>
    DatasetCache.layerConfig(
      makeJobContext({ datasetId: "ds1", snapshotId: "snap1", datasetVersionHash: hash, ...job }),
      { cacheDir, staleAfter: "2 seconds", heartbeatEvery: "100 millis", pollEvery: "20 millis", ...options }
    ).pipe(Layer.provide(Layer.succeedContext(storage)))
  const withCache = <A, E>(
    f: (cache: DatasetCacheService) => Effect.Effect<A, E>,
    options: Partial<DatasetCacheOptions> = {},
    job: JobContextInput = {}
  ) => Effect.flatMap(DatasetCache, f).pipe(Effect.provide(cacheLayer(options, job)))
  const assertVictimIntact = Effect.gen(function*() {
    assert.deepStrictEqual(yield* snapshot(victim), victimBefore)
    const stray = (yield* fs.readDirectory(root)).filter((n) => n !== "cache" && n !== "victim" && !n.startsWith("job"))
    assert.deepStrictEqual(stray, [], "nothing written beside the cache")
  })
  return { fs, path, root, cacheDir, victim, memory, memoryStorage, withCache, assertVictimIntact }
})

const ConverterLive = Converter.layer.pipe(Layer.provideMerge(NodeContext.layer))

describe("the name rule", () => {
  it("normalises the names every flow must agree on", () => {
    assert.deepStrictEqual(normalizeRelativeName("sub//a.jpg"), Either.right("sub/a.jpg"))
    assert.deepStrictEqual(normalizeRelativeName("sub\\a.jpg"), Either.right("sub/a.jpg"))
    assert.deepStrictEqual(normalizeRelativeName("c.jpg/"), Either.right("c.jpg"))
    assert.deepStrictEqual(normalizeRelativeName("./a/./b//c.jpg"), Either.right("a/b/c.jpg"))
    assert.deepStrictEqual(normalizeRelativeName(`${"n".repeat(251)}.jpg`), Either.right(`${"n".repeat(251)}.jpg`))
    for (const bad of ["../x", "a/../../x", "/etc/passwd", "\\\\server\\x", "C:\\x", "c:x", "..\\x", "", "./", "a\0b", `${"n".repeat(256)}`]) {
      assert(Either.isLeft(normalizeRelativeName(bad)), JSON.stringify(bad))
    }
  })

  it.prop("one rule for every name: the same result as splitting, filtering and joining (the short path for names already normal included)", [
    fc.oneof(
      fc.string({ unit: fc.constantFrom("a", "B", "/", "\\", ".", ":", " ", "~", "[", "]", "\0", "é", "\u{1F600}"), maxLength: 12 }),
      fc.tuple(fc.integer({ min: 250, max: 260 }), fc.constantFrom("", "a/", "./", "é")).map(([n, prefix]) => `${prefix}${"n".repeat(n)}`)
    )
  ], ([name]) => {
    const byParts = (raw: string): Either.Either<string, string> => {
      if (raw.includes("\0")) return Either.left("contains a NUL byte")
      const slashed = raw.replace(/\\/g, "/")
      if (slashed.startsWith("/")) return Either.left("is an absolute path")
      if (/^[A-Za-z]:/.test(slashed)) return Either.left("starts with a drive letter")
      const segments = slashed.split("/").filter((s) => s !== "" && s !== ".")
      if (segments.includes("..")) return Either.left("contains a '..' segment")
      if (segments.length === 0) return Either.left("is empty")
      if (segments.some((s) => Buffer.byteLength(s) > 255)) return Either.left("has a segment longer than 255 bytes")
      return Either.right(segments.join("/"))
    }
    assert.deepStrictEqual(normalizeRelativeName(name), byParts(name))
  }, { fastCheck: { numRuns: 3000 } })

  it("proves containment: nothing resolves to the root itself or outside it", () =>
    Effect.gen(function*() {
      const path = yield* Path.Path
      assert.deepStrictEqual(resolveInside(path, "/r/images", "a\\b.jpg"), Either.right("/r/images/a/b.jpg"))
      for (const bad of ["..", "../images2/x", "/r/images/x", "."]) assert(Either.isLeft(resolveInside(path, "/r/images", bad)), bad)
      expect(isInside(path, "/r", "/r2/x")).toBe(false)
      expect(isInside(path, "/r", "/r")).toBe(false)
      expect(isInside(path, "/r", "/r/..x")).toBe(true)
      const long = `/d/${"n".repeat(250)}`
      expect(Buffer.byteLength(path.basename(temporarySibling(path, long, "abc123")))).toBeLessThanOrEqual(255)
      expect(path.dirname(temporarySibling(path, long, "abc123"))).toBe("/d")
      expect(temporarySibling(path, "/d/a.jpg", "abc")).toBe("/d/a.jpg.tmp-abc")
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("path safety", () => {
  it.scopedLive("names download, verification and conversion must agree on, and a 250-byte name, are cached once", () =>
    Effect.gen(function*() {
      const { fs, memory, memoryStorage, path, root, withCache } = yield* harness
      const long = `${"n".repeat(246)}.jpg`
      seed(memoryStorage, "ds1", { "sub//a.jpg": "AAAA", "sub\\b.jpg": "BBBB", "c.jpg/": "CCCC", [long]: "LONG" })
      const view = yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job1") }))
      yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job2") }))
      expect(memory.getCount("datasets/ds1/annotations_detection.json")).toBe(1)
      expect(yield* fs.readFileString(path.join(view, "images", "sub", "a.jpg"))).toBe("AAAA")
      expect(yield* fs.readFileString(path.join(view, "images", "sub", "b.jpg"))).toBe("BBBB")
      expect(yield* fs.readFileString(path.join(view, "images", "c.jpg"))).toBe("CCCC")
      expect(yield* fs.readFileString(path.join(view, "images", long))).toBe("LONG")
      const report = yield* Effect.flatMap(Converter, (c) => c.convert({ datasetDir: view, from: "dice", to: "yolo" }))
        .pipe(Effect.provide(ConverterLive))
      expect(report.images).toBe(4)
      expect(yield* fs.exists(path.join(view, "labels", `${"n".repeat(246)}.txt`))).toBe(true)
    }).pipe(Effect.provide(NodeContext.layer)))

  for (const shape of ["nested", "flat"] as const) {
    it.scoped(`${shape} DICE: an image root with inner '..' segments is a PathEscape; the labels beside it are untouched`, () =>
      Effect.gen(function*() {
        const { assertVictimIntact, fs, path, root } = yield* harness
        const dir = path.join(root, "job", "datasets", "ds", "dataset")
        yield* fs.makeDirectory(path.join(dir, "images"), { recursive: true })
        yield* fs.writeFileString(path.join(dir, "images", "x.jpg"), "IMG")
        const imageRoot = "datasets/ds/images/../../../../victim/images"
        const nested = diceDoc(["x.jpg"], { storage_info: { image_root: imageRoot } })
        const doc = shape === "nested" ? nested : {
          storage_info: { image_root: imageRoot },
          images: [{ id: 1, file_name: "x.jpg", width: 10, height: 10 }],
          annotations: [{ id: 1, image_id: 1, category_id: 0, bbox: [1, 1, 2, 2] }],
          categories: [{ id: 0, name: "cat" }]
        }
        yield* fs.writeFileString(path.join(dir, "annotations_detection.json"), JSON.stringify(doc))
        for (const to of ["yolo", "coco"] as const) {
          const error = yield* Effect.flip(Effect.flatMap(Converter, (c) => c.convert({ datasetDir: dir, from: "dice", to })))
          expect(error.reason).toBe("PathEscape")
          expect(error.message).toContain("storage_info.image_root")
        }
        yield* assertVictimIntact
      }).pipe(Effect.provide(ConverterLive), Effect.provide(NodeContext.layer)))
  }

  it.scoped("duplicate image ids and two images naming one file are a Duplicate error naming both", () =>
    Effect.gen(function*() {
      const { fs, path, root } = yield* harness
      const dir = path.join(root, "job")
      yield* fs.makeDirectory(path.join(dir, "images"), { recursive: true })
      for (const name of ["a.jpg", "b.jpg"]) yield* fs.writeFileString(path.join(dir, "images", name), "IMG")
      const convert = (doc: unknown) =>
        Effect.gen(function*() {
          yield* fs.writeFileString(path.join(dir, "annotations_detection.json"), JSON.stringify(doc))
          return yield* Effect.flip(Effect.flatMap(Converter, (c) => c.convert({ datasetDir: dir, from: "dice", to: "yolo" })))
        })
      const flat = (images: ReadonlyArray<readonly [number, string]>) => ({
        images: images.map(([id, file_name]) => ({ id, file_name, width: 10, height: 10 })),
        annotations: [{ id: 1, image_id: 1, category_id: 0, bbox: [1, 1, 2, 2] }],
        categories: [{ id: 0, name: "cat" }]
      })
      const ids = yield* convert(flat([[1, "a.jpg"], [1, "b.jpg"]]))
      expect(ids.reason).toBe("Duplicate")
      expect(ids.message).toContain("images[1].id")
      expect(ids.message).toContain("a.jpg")
      expect(ids.message).toContain("b.jpg")
      for (const [first, second] of [["a.jpg", "a.jpg"], ["a.jpg", "./images/a.jpg"], ["sub/../a.jpg", "a.jpg"]] as const) {
        const names = yield* convert(flat([[1, first], [2, second]]))
        expect(names._tag).toBe("DatasetError")
        if (first.includes("..")) continue
        expect(names.reason).toBe("Duplicate")
        expect(names.message).toContain(second)
      }
      const nestedNames = yield* convert(diceDoc(["b.jpg", "b.jpg"]))
      expect(nestedNames.reason).toBe("Duplicate")
      expect(yield* fs.exists(path.join(dir, "labels"))).toBe(false)
    }).pipe(Effect.provide(ConverterLive), Effect.provide(NodeContext.layer)))

  it.scopedLive("a planted metadata key, marker fields and manifest paths never become paths outside the cache", () =>
    Effect.gen(function*() {
      const { assertVictimIntact, cacheDir, fs, memory, memoryStorage, path, root, withCache } = yield* harness
      seed(memoryStorage, "ds1", { "a.jpg": "AAAA" })
      seed(memoryStorage, "ds2", { "b.jpg": "BBBB" })
      yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job1") }))
      const key = keyOf("ds1", hash)
      const record = (id: string) => ({
        snapshot_id: "../../victim",
        dataset_id: id,
        dataset_version_hash: "../../victim",
        created_at: "2020-01-01T00:00:00.000Z",
        last_accessed: "2020-01-01T00:00:00.000Z",
        size_bytes: 1e12
      })
      // A marker naming hostile paths and a manifest listing files outside the entry: not served, rebuilt.
      yield* fs.writeFileString(path.join(cacheDir, key, ".complete"), JSON.stringify(record("ds1")))
      yield* fs.writeFileString(
        path.join(cacheDir, key, ".manifest.json"),
        JSON.stringify({ files: [["../../victim/images/x.jpg", 8], ["/etc/passwd", 1]] })
      )
      const view = yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job2") }))
      expect(yield* fs.readFileString(path.join(view, "images", "a.jpg"))).toBe("AAAA")
      expect(memory.getCount("datasets/ds1/annotations_detection.json")).toBe(2)
      yield* assertVictimIntact
      // Planted metadata keys, then an ordinary job's eviction (a tiny limit) and an explicit prune.
      const metadataFile = path.join(cacheDir, ".cache_metadata.json")
      const metadata = JSON.parse(yield* fs.readFileString(metadataFile))
      for (const planted of ["x/../../victim", "../victim", "..", `${root}/victim`, "victim/../../victim"]) {
        metadata[planted] = record("ds1")
      }
      yield* fs.writeFileString(metadataFile, JSON.stringify(metadata))
      yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job3"), datasetId: "ds2" }), { maxBytes: 1 })
      expect(yield* fs.exists(path.join(cacheDir, key))).toBe(false)
      yield* assertVictimIntact
      yield* fs.writeFileString(metadataFile, JSON.stringify({ ...JSON.parse(yield* fs.readFileString(metadataFile)), "x/../../victim": record("ds1") }))
      expect(yield* withCache((cache) => cache.prune({ maxBytes: 0 }))).toEqual([keyOf("ds2", hash)])
      expect(Object.keys(JSON.parse(yield* fs.readFileString(metadataFile)))).toEqual([])
      yield* assertVictimIntact
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("lock and lease files planted as links to outside files: only the links are ever removed", () =>
    Effect.gen(function*() {
      const { assertVictimIntact, cacheDir, fs, memoryStorage, path, root, victim, withCache } = yield* harness
      seed(memoryStorage, "ds1", { "a.jpg": "AAAA" })
      const key = keyOf("ds1", hash)
      const old = new Date(Date.now() - 3_600_000)
      yield* fs.utimes(path.join(victim, "images", "x.jpg"), old, old)
      yield* fs.utimes(path.join(victim, "labels"), old, old)
      yield* fs.makeDirectory(path.join(cacheDir, ".locks"), { recursive: true })
      yield* fs.makeDirectory(path.join(cacheDir, ".leases", key), { recursive: true })
      yield* fs.symlink(path.join(victim, "images", "x.jpg"), path.join(cacheDir, ".locks", `${key}.lock`))
      yield* fs.symlink(path.join(victim, "labels"), path.join(cacheDir, ".leases", key, "evil.lease"))
      yield* fs.symlink(path.join(victim, "labels.cache"), path.join(cacheDir, ".locks", "metadata.lock"))
      yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job1") }))
      expect(yield* withCache((cache) => cache.prune({ maxBytes: 0 }))).toEqual([key])
      yield* assertVictimIntact
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("the shared entry", () => {
  it.scopedLive("versions that share a hash prefix get their own entries; a marker of another version is rebuilt", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, memory, memoryStorage, path, root, withCache } = yield* harness
      seed(memoryStorage, "project7", { "v1.jpg": "V1" })
      const v1 = yield* withCache((cache) =>
        cache.ensure({ destDir: path.join(root, "job1"), datasetId: "project7", datasetVersionHash: "project7-dataset-v1" })
      )
      seed(memoryStorage, "project7", { "v2.jpg": "V2" })
      const v2 = yield* withCache((cache) =>
        cache.ensure({ destDir: path.join(root, "job2"), datasetId: "project7", datasetVersionHash: "project7-dataset-v2" })
      )
      expect(yield* fs.readDirectory(path.join(v1, "images"))).toEqual(["v1.jpg"])
      expect(yield* fs.readDirectory(path.join(v2, "images"))).toEqual(["v2.jpg"])

      // An entry whose marker names another dataset or version is not served.
      const v2Key = keyOf("project7", "project7-dataset-v2")
      const markerFile = path.join(cacheDir, v2Key, ".complete")
      const marker = JSON.parse(yield* fs.readFileString(markerFile))
      for (const forged of [{ dataset_id: "other" }, { dataset_version_hash: "project7-dataset-v1" }]) {
        yield* fs.writeFileString(markerFile, JSON.stringify({ ...marker, ...forged }))
        yield* fs.remove(path.join(cacheDir, v2Key, "images", "v2.jpg"))
        yield* fs.writeFileString(path.join(cacheDir, v2Key, "images", "v1.jpg"), "V1")
        const view = yield* withCache((cache) =>
          cache.ensure({ destDir: path.join(root, "job3"), datasetId: "project7", datasetVersionHash: "project7-dataset-v2" })
        )
        expect(yield* fs.readDirectory(path.join(view, "images"))).toEqual(["v2.jpg"])
      }
      expect(memory.getCount("datasets/project7/annotations_detection.json")).toBe(4)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a complete entry with a file deleted or truncated is rebuilt from storage, not served", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, memory, memoryStorage, path, root, withCache } = yield* harness
      seed(memoryStorage, "ds1", { "a.jpg": "AAAA", "sub/b.jpg": "BBBB" })
      const key = keyOf("ds1", hash)
      yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job1") }))
      const manifest = JSON.parse(yield* fs.readFileString(path.join(cacheDir, key, ".manifest.json")))
      expect(manifest.files).toEqual([["annotations_detection.json", expect.any(Number)], ["images/a.jpg", 4], ["images/sub/b.jpg", 4]])
      const damages = [
        () => fs.remove(path.join(cacheDir, key, "images", "a.jpg")),
        () => fs.writeFileString(path.join(cacheDir, key, "images", "sub", "b.jpg"), "BB"),
        () => fs.writeFileString(path.join(cacheDir, key, "annotations_detection.json"), "{}"),
        () => fs.remove(path.join(cacheDir, key, ".manifest.json"))
      ]
      for (const [i, damage] of damages.entries()) {
        yield* damage()
        const view = yield* withCache((cache) => cache.ensure({ destDir: path.join(root, `job${i + 2}`) }))
        expect(yield* fs.readFileString(path.join(view, "images", "a.jpg"))).toBe("AAAA")
        expect(yield* fs.readFileString(path.join(view, "images", "sub", "b.jpg"))).toBe("BBBB")
        expect(memory.getCount("datasets/ds1/annotations_detection.json")).toBe(i + 2)
      }
      // An intact entry is a plain hit.
      yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job9") }))
      expect(memory.getCount("datasets/ds1/annotations_detection.json")).toBe(damages.length + 1)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("two jobs converting one cached version with `images/` in its file names write only into their own views", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, memoryStorage, path, root, withCache } = yield* harness
      seed(memoryStorage, "ds1", { "train/images/x.jpg": "X", "val/images/y.jpg": "Y", "z.jpg": "Z" })
      const key = keyOf("ds1", hash)
      const views = yield* withCache((cache) =>
        Effect.all([cache.ensure({ destDir: path.join(root, "job1") }), cache.ensure({ destDir: path.join(root, "job2") })])
      )
      const entryBefore = yield* snapshot(path.join(cacheDir, key))
      // The second job converts for another task: its own copy of the annotation file under that task's name.
      yield* fs.copyFile(path.join(views[1], "annotations_detection.json"), path.join(views[1], "annotations_segmentation.json"))
      const converter = Effect.provide(Converter, ConverterLive)
      const first = yield* Effect.flatMap(converter, (c) => c.convert({ datasetDir: views[0], from: "dice", to: "yolo", taskType: "detection" }))
      const second = yield* Effect.flatMap(converter, (c) => c.convert({ datasetDir: views[1], from: "dice", to: "yolo", taskType: "segmentation" }))
      assert.deepStrictEqual(yield* snapshot(path.join(cacheDir, key)), entryBefore)
      for (const [view, report] of [[views[0], first], [views[1], second]] as const) {
        for (const output of report.outputs) expect(output.startsWith(`${view}/`)).toBe(true)
        const validation = yield* Effect.flatMap(converter, (c) => c.validateYolo(view))
        // The seeded images are placeholder bytes, not decodable images: only the label side is checked here.
        assert.deepStrictEqual(validation.issues.filter((issue) => !issue.includes("not an image Ultralytics reads")), [])
        expect(validation.stats.total_images).toBe(3)
      }
      const box = (yield* fs.readFileString(path.join(views[0], "train", "labels", "x.txt"))).trim().split(" ")
      const polygon = (yield* fs.readFileString(path.join(views[1], "train", "labels", "x.txt"))).trim().split(" ")
      expect(box).toHaveLength(5)
      expect(polygon).toHaveLength(7)
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("liveness", () => {
  const resolve = (env: Record<string, string>) =>
    Effect.either(JobContext).pipe(
      Effect.provide(JobContext.layer),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ CALLBACK_URL: "http://b/api", JOB_ID: "1", ...env }))))
    )

  it.effect("the stale threshold and the lock wait are configurable within bounds; a bad value names its variable", () =>
    Effect.gen(function*() {
      const defaults = Either.getOrThrow(yield* resolve({}))
      expect(Duration.toMillis(defaults.cacheStaleAfter)).toBe(30_000)
      expect(Duration.toMillis(defaults.cacheLockTimeout)).toBe(6 * 3_600_000)
      const set = Either.getOrThrow(yield* resolve({ DATASET_CACHE_STALE_SECONDS: "90", DATASET_CACHE_LOCK_TIMEOUT_SECONDS: "1.5" }))
      expect(Duration.toMillis(set.cacheStaleAfter)).toBe(90_000)
      expect(Duration.toMillis(set.cacheLockTimeout)).toBe(1_500)
      for (
        const [variable, value] of [
          ["DATASET_CACHE_STALE_SECONDS", "1"],
          ["DATASET_CACHE_STALE_SECONDS", "7200"],
          ["DATASET_CACHE_STALE_SECONDS", "soon"],
          ["DATASET_CACHE_LOCK_TIMEOUT_SECONDS", "0"],
          ["DATASET_CACHE_LOCK_TIMEOUT_SECONDS", "1e9"]
        ] as const
      ) {
        const error = yield* Effect.flip(Effect.flatten(resolve({ [variable]: value })))
        assert.instanceOf(error, ConfigError)
        expect(error.variable).toBe(variable)
        expect(error.message).toContain(variable)
      }
    }))

  it.scopedLive("a lock dated in the future is stale; the job's configured lock wait bounds a live holder", () =>
    Effect.gen(function*() {
      const { cacheDir, fs, memoryStorage, path, root, withCache } = yield* harness
      seed(memoryStorage, "ds1", { "a.jpg": "AAAA" })
      const key = keyOf("ds1", hash)
      const lockFile = path.join(cacheDir, ".locks", `${key}.lock`)
      yield* fs.makeDirectory(path.dirname(lockFile), { recursive: true })
      yield* fs.writeFileString(lockFile, JSON.stringify({ token: "skewed", pid: 1, host: "other-pod/", since: "2030-01-01T00:00:00Z" }))
      const future = new Date(Date.now() + 6 * 3_600_000)
      yield* fs.utimes(lockFile, future, future)
      // With the stale threshold and lock wait taken from the job context (no explicit options).
      const job = { cacheStaleAfter: Duration.seconds(2), cacheLockTimeout: Duration.seconds(20) }
      const view = yield* withCache((cache) => cache.ensure({ destDir: path.join(root, "job1") }), { staleAfter: undefined, lockTimeout: undefined }, job)
      expect(yield* fs.readFileString(path.join(view, "images", "a.jpg"))).toBe("AAAA")

      // A fresh lock of a live holder: the wait ends after the configured lock timeout, naming it.
      yield* fs.writeFileString(lockFile, JSON.stringify({ token: "live", pid: 1, host: "other-pod/", since: "2030-01-01T00:00:00Z" }))
      const error = yield* Effect.flip(
        withCache((cache) => cache.ensure({ destDir: path.join(root, "job2") }), { staleAfter: undefined, lockTimeout: undefined }, {
          ...job,
          cacheLockTimeout: Duration.millis(300)
        })
      )
      assert(error._tag === "CacheError")
      expect(error.reason).toBe("Lock")
      expect(error.message).toContain("timed out after 300ms")
    }).pipe(Effect.provide(NodeContext.layer)))
})

/** Bytes of the regular files under `dir`. */
const usage = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    let total = 0
    for (const name of yield* fs.readDirectory(dir, { recursive: true })) {
      const info = yield* Effect.option(fs.stat(path.join(dir, name)))
      if (info._tag === "Some" && info.value.type === "File") total += Number(info.value.size)
    }
    return total
  }).pipe(Effect.orDie)

describe("a full or read-only file system", () => {
  it.scopedLive("a full disk evicts unleased entries to make room; with nothing evictable it is a NoSpace resource error", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const root = yield* fs.makeTempDirectoryScoped()
      const cacheDir = path.join(root, "cache")
      const capacity = 10_000
      const used = Effect.provide(usage(cacheDir), NodeContext.layer)
      const storage = yield* Layer.build(Storage.layerTest())
      const memory = Context.get(storage, StorageTest)
      for (const id of ["dsA", "dsB", "dsC", "dsD"]) seed(memory, id, { [`${id}.jpg`]: "x".repeat(4_000) })
      // A file system of `capacity` bytes: a download that would not fit fails like a full disk does.
      const live = Context.get(storage, Storage)
      const full = Context.add(storage, Storage, {
        ...live,
        downloadDatasetSelective: (datasetId, destDir, options) =>
          Effect.flatMap(used, (bytes) =>
            bytes + 4_500 > capacity
              ? Effect.fail(
                new StorageError({
                  reason: "LocalIO",
                  bucket: "",
                  key: destDir,
                  detail: "ENOSPC: no space left on device, write",
                  cause: Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" })
                })
              )
              : live.downloadDatasetSelective(datasetId, destDir, options))
      })
      const cacheLayer = DatasetCache.layerConfig(makeJobContext({ datasetVersionHash: hash }), {
        cacheDir,
        maxBytes: 1 << 30,
        staleAfter: "2 seconds",
        heartbeatEvery: "100 millis",
        pollEvery: "20 millis",
        freeSpace: () => Effect.map(used, (bytes) => capacity - bytes)
      }).pipe(Layer.provide(Layer.succeedContext(full)))
      const ensure = (datasetId: string) => (cache: DatasetCacheService) =>
        cache.ensure({ datasetId, destDir: path.join(root, `job-${datasetId}`) })
      const run = <A, E>(f: (cache: DatasetCacheService) => Effect.Effect<A, E>) =>
        Effect.flatMap(DatasetCache, f).pipe(Effect.provide(cacheLayer))

      yield* run(ensure("dsA"))
      yield* run(ensure("dsB"))
      const view = yield* run(ensure("dsC"))
      expect(yield* fs.readDirectory(path.join(view, "images"))).toEqual(["dsC.jpg"])
      expect((yield* run((cache) => cache.entries)).map((e) => e.datasetId).sort()).toEqual(["dsB", "dsC"])

      // Both entries leased by a live job: nothing may be evicted, the job gets a resource error.
      const scope = yield* Scope.make()
      const leased = yield* Layer.buildWithScope(cacheLayer, scope)
      yield* Effect.flatMap(DatasetCache, (cache) => Effect.zipRight(ensure("dsB")(cache), ensure("dsC")(cache))).pipe(Effect.provide(leased))
      const error = yield* Effect.flip(run(ensure("dsD")))
      assert(error._tag === "CacheError")
      expect(error.reason).toBe("NoSpace")
      expect(error.message).toContain(cacheDir)
      expect(classifyError(error)).toBe("ResourceError")
      expect((yield* run((cache) => cache.entries)).map((e) => e.datasetId).sort()).toEqual(["dsB", "dsC"])
      yield* Scope.close(scope, Exit.void)
      yield* run(ensure("dsD"))
      expect((yield* run((cache) => cache.entries)).map((e) => e.datasetId)).toContain("dsD")
    }).pipe(Effect.provide(NodeContext.layer)))

  for (const [code, expected] of [["EROFS", "read-only file system"], ["EACCES", "permission denied"]] as const) {
    it.scopedLive(`a cache directory failing with ${code} is an Unwritable error naming the directory and the problem`, () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const path = yield* Path.Path
        const root = yield* fs.makeTempDirectoryScoped()
        const cacheDir = path.join(root, "cache")
        yield* fs.makeDirectory(cacheDir)
        const denied = (method: string, target: string) =>
          new SystemError({
            reason: code === "EACCES" ? "PermissionDenied" : "Unknown",
            module: "FileSystem",
            method,
            pathOrDescriptor: target,
            description: `${code}: ${expected}, ${method} '${target}'`
          })
        const inside = (target: unknown) => typeof target === "string" && path.resolve(target).startsWith(cacheDir)
        // The cache directory as a read-only mount shows it, even to root: reads work, writes fail.
        const readOnly: FileSystem.FileSystem = {
          ...fs,
          access: (target, options) =>
            inside(target) && options?.writable ? Effect.fail(denied("access", target)) : fs.access(target, options),
          makeDirectory: (target, options) =>
            inside(target) && !(options?.recursive && target === cacheDir)
              ? Effect.fail(denied("makeDirectory", target))
              : fs.makeDirectory(target, options),
          writeFileString: (target, data, options) =>
            inside(target) ? Effect.fail(denied("writeFile", target)) : fs.writeFileString(target, data, options)
        }
        const storage = yield* Layer.build(Storage.layerTest())
        seed(Context.get(storage, StorageTest), "ds1", { "a.jpg": "AAAA" })
        const cacheLayer = DatasetCache.layerConfig(makeJobContext({ datasetId: "ds1", datasetVersionHash: hash }), { cacheDir }).pipe(
          Layer.provide(Layer.merge(Layer.succeedContext(storage), Layer.succeed(FileSystem.FileSystem, readOnly)))
        )
        for (const op of ["ensure", "prune"] as const) {
          const error = yield* Effect.flip(
            Effect.flatMap(DatasetCache, (cache): Effect.Effect<unknown, SdkError> =>
              op === "ensure" ? cache.ensure({ destDir: path.join(root, "job") }) : cache.prune({ maxBytes: 0 })).pipe(
                Effect.provide(cacheLayer)
              )
          )
          assert(error._tag === "CacheError")
          expect(error.reason).toBe("Unwritable")
          expect(error.message).toContain(`the cache directory ${cacheDir} is not writable (${expected})`)
          expect(classifyError(error)).toBe("ResourceError")
        }
      }).pipe(Effect.provide(NodeContext.layer)))
  }
})
