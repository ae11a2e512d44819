import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer } from "effect"
import { fileURLToPath } from "node:url"
import { cacheKeyOf, DatasetCache } from "../src/DatasetCache.js"
import { makeJobContext } from "../src/JobContext.js"
import { StorageTest, Storage } from "../src/Storage.js"
import { formatCacheEntries, formatCliError, formatDownloadProgress } from "../src/internal/cliFormat.js"
import { repoRoot, runCliInProcess as runCli, runCliProcess, spawnCli } from "./support/cli.js"
import { startS3rver } from "./support/s3rver.js"

const cliKey = Either.getOrThrow(cacheKeyOf("ds-cats", "0123456789abcdef-v1"))
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/datasets/${name}`, import.meta.url))

const stripAnsi = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, "")
const lines = (text: string) => text.split("\n").filter((line) => line.trim() !== "")

/** A temp dir holding a copy of a dataset fixture. */
const datasetCopy = (name: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const root = yield* fs.makeTempDirectoryScoped()
    const dir = path.join(root, name)
    yield* fs.copy(fixture(name), dir)
    return { fs, path, root, dir }
  })

/**
 * A fresh cache directory holding one entry (ds-cats, snapshot snap-9) filled from in-memory
 * storage, as a trainer would have left it, and an operator's environment pointing at it: no
 * job (CALLBACK_URL unset, a stray JOB_ID, neither of which may matter).
 */
const filledCache = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const root = yield* fs.makeTempDirectoryScoped()
  const cacheDir = path.join(root, "cache")
  const destDir = path.join(root, "job")
  const storage = yield* Layer.build(Storage.layerTest())
  Context.get(storage, StorageTest).seedDataset("ds-cats", { images: { "a.jpg": "x".repeat(3000) } })
  yield* Effect.scoped(Effect.flatMap(DatasetCache, (cache) => cache.ensure({ destDir })).pipe(
    Effect.provide(DatasetCache.layerConfig(
      makeJobContext({ datasetId: "ds-cats", snapshotId: "snap-9", datasetVersionHash: "0123456789abcdef-v1" }),
      { cacheDir }
    ).pipe(Layer.provide(Layer.succeedContext(storage))))
  ))
  return { cacheDir, env: { CALLBACK_URL: "", JOB_ID: "not-a-job", DATASET_CACHE_DIR: cacheDir } }
})


/**
 * A local S3 server holding `training-datasets/coco/{key}` (body `image {key}`) for each key,
 * a temp dir with `coco.json` listing them by `s3://` URI, and the environment pointing the
 * CLI's external storage at the server.
 */
const cocoImagesOnS3 = (keys: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const s3 = yield* startS3rver(["training-datasets"])
    const client = new S3Client(s3.clientConfig)
    yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
    yield* Effect.promise(() =>
      Promise.all(keys.map((key) =>
        client.send(new PutObjectCommand({ Bucket: "training-datasets", Key: `coco/${key}`, Body: `image ${key}` }))
      ))
    )
    const root = yield* fs.makeTempDirectoryScoped()
    const annotation = path.join(root, "coco.json")
    yield* fs.writeFileString(annotation, JSON.stringify({
      images: keys.map((key, index) => ({ id: index + 1, file_name: `s3://training-datasets/coco/${key}` })),
      annotations: [],
      categories: [{ id: 1, name: "cat" }]
    }))
    const env = {
      EXTERNAL_STORAGE_ENDPOINT: s3.endpoint,
      EXTERNAL_STORAGE_ACCESS_KEY: s3.accessKey,
      EXTERNAL_STORAGE_SECRET_KEY: "S3RVER"
    }
    return { annotation, env, root }
  })

describe("trainer-sdk CLI", () => {
  it.live("--help lists every command", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["--help"])
      assert.strictEqual(run.code, 0)
      const help = stripAnsi(run.stdout)
      for (const command of ["convert", "validate", "download", "cache list", "cache prune", "dev-backend"]) {
        assert.include(help, `- ${command}`)
      }
    }))

  it.scopedLive("convert DICE -> YOLO writes data.yaml and labels and prints the report; validate accepts it, rejects a broken copy", () =>
    Effect.gen(function*() {
      const { dir, fs, path, root } = yield* datasetCopy("nested-detection")
      const converted = yield* runCli(["convert", "--from", "dice", "--to", "yolo", "--task", "detection", "--seed", "7", dir])
      assert.strictEqual(converted.code, 0, converted.stderr)
      assert.isTrue(yield* fs.exists(path.join(dir, "data.yaml")))
      const labels = yield* fs.readDirectory(path.join(dir, "labels"), { recursive: true })
      assert.isTrue(labels.some((file) => file.endsWith(".txt")))
      const report = lines(converted.stdout)
      assert.match(report[0]!, /^converted \d+ images \(dice -> yolo, detection\)/)
      assert.isTrue(report.some((line) => line.trim().startsWith("classes") && line.includes("cat")))
      assert.isTrue(report.some((line) => line.trim().startsWith("written") && line.includes("data.yaml")))

      const broken = path.join(root, "broken")
      yield* fs.copy(dir, broken)
      // data.yaml and the split lists name their own directory: point the copy at itself, then break one label row.
      for (const file of ["data.yaml", "train.txt", "val.txt", "test.txt"]) {
        const text = yield* fs.readFileString(path.join(dir, file))
        yield* fs.writeFileString(path.join(broken, file), text.replaceAll(dir, broken))
      }
      const someLabel = labels.find((file) => file.endsWith(".txt") && !file.endsWith("classes.txt"))!
      yield* fs.writeFileString(path.join(broken, "labels", someLabel), "9 0.5 0.5 2.0 0.1\n")

      const [valid, invalid] = yield* Effect.all([runCli(["validate", dir]), runCli(["validate", broken])], { concurrency: 2 })
      assert.strictEqual(valid.code, 0, valid.stderr)
      assert.include(valid.stdout, "is a valid YOLO dataset")
      assert.strictEqual(invalid.code, 1)
      assert.include(invalid.stdout, "is not a valid YOLO dataset")
      assert.isTrue(lines(invalid.stdout).some((line) => line.startsWith("  - ")))
      expect(lines(invalid.stderr)).toEqual([expect.stringMatching(/^error: .*broken is invalid: \d+ issue\(s\)$/)])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.live("a bad argument is one error line naming the option and exit code 2", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["convert", "--from", "dice", "--to", "yaml", repoRoot])
      assert.strictEqual(run.code, 2)
      assert.deepStrictEqual(lines(run.stderr), ["error: --to must be one of yolo, coco, got \"yaml\""])
      assert.strictEqual(run.stdout, "")
    }))

  it.live("usage errors name the option: an unknown task, a negative minimum, a non-integer; help without colours names the whole command", () =>
    Effect.gen(function*() {
      const [task, minImages, seed, help, colourHelp] = yield* Effect.all([
        runCli(["convert", "--from", "dice", "--to", "yolo", "--task", "banana", repoRoot]),
        runCli(["validate", "--min-images", "-3", repoRoot]),
        runCli(["convert", "--from", "dice", "--to", "yolo", "--seed", "abc", repoRoot]),
        runCli(["cache", "list", "--help"]),
        runCli(["cache", "list", "--help"], {}, { colour: true })
      ])
      assert.strictEqual(task.code, 2)
      assert.deepStrictEqual(lines(task.stderr), [
        "error: --task must be detection, classification, segmentation or pose (or an alias such as object_detection, cls), got \"banana\""
      ])
      assert.strictEqual(minImages.code, 2)
      assert.deepStrictEqual(lines(minImages.stderr), ["error: --min-images must be 0 or more, got -3"])
      assert.strictEqual(seed.code, 2)
      assert.deepStrictEqual(lines(seed.stderr), ["error: --seed must be an integer, got \"abc\""])
      assert.strictEqual(help.code, 0)
      assert.notInclude(help.stdout, "\u001b[")
      assert.include(lines(help.stdout), "$ trainer-sdk cache list")
      // The colours are dropped by the CLI, not missing from @effect/cli's help.
      assert.strictEqual(colourHelp.code, 0)
      assert.include(colourHelp.stdout, "\u001b[")
      assert.strictEqual(stripAnsi(colourHelp.stdout), help.stdout)
    }))

  it.live("storage and cache commands: argument errors first, then one line naming a bad variable they read", () =>
    Effect.gen(function*() {
      const noJob = { CALLBACK_URL: "", JOB_ID: "" }
      const [usage, badMax, badEndpoint] = yield* Effect.all([
        runCli(["download", "--dest", "d"], { ...noJob, DATASET_CACHE_MAX_GB: "lots" }),
        runCli(["cache", "list"], { ...noJob, DATASET_CACHE_MAX_GB: "lots" }),
        runCli(["download", "ds-1", "--dest", repoRoot], { ...noJob, EXTERNAL_STORAGE_ENDPOINT: "ftp://store" })
      ], { concurrency: 3 })
      assert.strictEqual(usage.code, 2)
      assert.deepStrictEqual(lines(usage.stderr), ["error: download needs either a DATASET_ID or --annotation FILE (exactly one)"])
      assert.strictEqual(badMax.code, 1)
      assert.deepStrictEqual(lines(badMax.stderr), ["error: DATASET_CACHE_MAX_GB is invalid: expected a number, got \"lots\""])
      assert.strictEqual(badEndpoint.code, 1)
      assert.deepStrictEqual(lines(badEndpoint.stderr), [
        "error: EXTERNAL_STORAGE_ENDPOINT is invalid: expected an http(s) URL, got \"ftp://store\""
      ])
    }))

  it.scopedLive("cache list shows the entries of DATASET_CACHE_DIR; cache prune --max-gb 0 evicts them", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      // An operator on a node has no job: CALLBACK_URL unset and a stray JOB_ID do not matter.
      const { cacheDir, env } = yield* filledCache
      const listed = yield* runCli(["cache", "list"], env)
      assert.strictEqual(listed.code, 0, listed.stderr)
      const table = lines(listed.stdout)
      assert.match(table[0]!, /^KEY\s+DATASET\s+SNAPSHOT\s+SIZE\s+LAST ACCESSED$/)
      assert.match(table[1]!, new RegExp(`^${cliKey}\\s+ds-cats\\s+snap-9\\s+\\d+(\\.\\d+)? KiB\\s+\\d{4}-\\d{2}-\\d{2}T`))
      assert.include(table[2]!, `1 entries`)

      const pruned = yield* runCli(["cache", "prune", "--max-gb", "0"], env)
      assert.strictEqual(pruned.code, 0, pruned.stderr)
      assert.include(pruned.stdout, `evicted 1 entries (${cliKey}); 0 left`)
      assert.isFalse(yield* fs.exists(path.join(cacheDir, cliKey)))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("download --annotation fetches the COCO images from S3 with progress, and a missing object fails with exit 1", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const { annotation, env, root } = yield* cocoImagesOnS3(["x/1.jpg", "y/2.jpg"])
      const missing = path.join(root, "missing.json")
      yield* fs.writeFileString(missing, JSON.stringify({ images: [{ id: 1, file_name: "s3://training-datasets/coco/none.jpg" }] }))
      const dest = path.join(root, "out")
      const [ok, failed] = yield* Effect.all([
        runCli(["download", "--annotation", annotation, "--dest", dest, "--concurrency", "2"], env),
        runCli(["download", "--annotation", missing, "--dest", path.join(root, "out2")], env)
      ], { concurrency: 2 })

      assert.strictEqual(ok.code, 0, ok.stderr)
      assert.match(ok.stdout, /^downloaded 3 files \(.+\): 2 images to .+out; annotations: .+annotations\.json\n$/)
      assert.include(ok.stderr, "[########################] 100%  2/2 files")
      const images = yield* fs.readDirectory(dest, { recursive: true })
      assert.includeMembers(images, ["annotations.json"])
      assert.strictEqual(images.filter((file) => file.endsWith(".jpg")).length, 2)

      assert.strictEqual(failed.code, 1)
      const errorLines = lines(failed.stderr).filter((line) => line.startsWith("error: "))
      assert.strictEqual(errorLines.length, 1)
      assert.include(errorLines[0], "s3://training-datasets/coco/none.jpg")
    }).pipe(Effect.provide(NodeContext.layer)))
})

/**
 * The program edge (`src/cli.ts`): one spawned run per command, checking what only a real
 * process shows: the output on the process streams, the colour choice on a pipe, the exit
 * code and, for dev-backend, Ctrl-C.
 */
describe("trainer-sdk CLI as a process", () => {
  it.live("--help on a pipe lists every command without colours even when NO_COLOR is unset; exit code 0", () =>
    Effect.gen(function*() {
      const run = yield* runCliProcess(["--help"], { NO_COLOR: "" })
      assert.strictEqual(run.code, 0, run.stderr)
      assert.notInclude(run.stdout, "\u001b[")
      for (const command of ["convert", "validate", "download", "cache list", "cache prune", "dev-backend"]) {
        assert.include(run.stdout, `- ${command}`)
      }
      assert.strictEqual(run.stderr, "")
    }))

  it.scopedLive("convert writes the YOLO dataset and prints the report; validate of a broken copy prints the issues and exits 1", () =>
    Effect.gen(function*() {
      const { dir, fs, path, root } = yield* datasetCopy("nested-detection")
      const converted = yield* runCliProcess(["convert", "--from", "dice", "--to", "yolo", "--seed", "7", dir])
      assert.strictEqual(converted.code, 0, converted.stderr)
      assert.match(lines(converted.stdout)[0]!, /^converted \d+ images \(dice -> yolo, detection\)/)
      assert.deepStrictEqual(lines(converted.stderr), [`converting ${dir} (dice -> yolo)...`])
      assert.isTrue(yield* fs.exists(path.join(dir, "data.yaml")))

      const broken = path.join(root, "broken")
      yield* fs.copy(dir, broken)
      yield* fs.writeFileString(path.join(broken, "data.yaml"), "names: [cat\n")
      const invalid = yield* runCliProcess(["validate", broken])
      assert.strictEqual(invalid.code, 1)
      assert.include(invalid.stdout, "is not a valid YOLO dataset")
      expect(lines(invalid.stderr)).toEqual([expect.stringMatching(/^error: .*broken is invalid: \d+ issue\(s\)$/)])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("download --annotation fetches the images from S3, the progress bar ends at 100% on stderr", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const { annotation, env, root } = yield* cocoImagesOnS3(["x/1.jpg"])
      const dest = path.join(root, "out")
      const run = yield* runCliProcess(["download", "--annotation", annotation, "--dest", dest], env)
      assert.strictEqual(run.code, 0, run.stderr)
      assert.match(run.stdout, /^downloaded 2 files \(.+\): 1 images to .+out; annotations: .+annotations\.json\n$/)
      assert.strictEqual(lines(run.stderr).at(-1), "[########################] 100%  1/1 files  13 B / 13 B")
      assert.strictEqual(yield* fs.readFileString(path.join(dest, "images", "1.jpg")), "image x/1.jpg")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("cache list and cache prune read DATASET_CACHE_DIR from the environment, without a job", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const { cacheDir, env } = yield* filledCache
      const listed = yield* runCliProcess(["cache", "list"], env)
      assert.strictEqual(listed.code, 0, listed.stderr)
      assert.match(lines(listed.stdout)[1]!, new RegExp(`^${cliKey}\\s+ds-cats\\s+snap-9\\s`))
      const pruned = yield* runCliProcess(["cache", "prune", "--max-gb", "0"], env)
      assert.strictEqual(pruned.code, 0, pruned.stderr)
      assert.include(pruned.stdout, `evicted 1 entries (${cliKey}); 0 left`)
      assert.isFalse(yield* fs.exists(path.join(cacheDir, cliKey)))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("dev-backend accepts a valid callback, rejects an invalid body with a 422 naming the field, prints both", () =>
    Effect.gen(function*() {
      const child = spawnCli(["dev-backend", "--port", "0"], {})
      let stdout = ""
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
      let stderr = ""
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
      const exited = new Promise<number | null>((resolve) => child.on("close", resolve))
      // No time limit of its own (a loaded machine starts it slowly); a process that ends first fails the test.
      const url = yield* Effect.async<string, Error>((resume) => {
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString()
          const match = /listening on (http:\/\/127\.0\.0\.1:\d+\/api\/v1)/.exec(stdout)
          if (match) resume(Effect.succeed(match[1]!))
        })
        void exited.then((code) => resume(Effect.fail(new Error(`dev-backend exited (${code}) before listening: ${stdout}${stderr}`))))
      }).pipe(Effect.orDie)

      const post = (body: unknown) =>
        Effect.promise(async () => {
          const response = await fetch(`${url}/training/jobs/4/callback/logs`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body)
          })
          return { status: response.status, body: await response.json() as Record<string, unknown> }
        })
      const entry = { job_id: 4, event_type: "trainer", message: "hello", level: "INFO", data: {}, timestamp: "2026-01-02T03:04:05.678Z" }
      const accepted = yield* post(entry)
      assert.strictEqual(accepted.status, 200)
      assert.strictEqual(accepted.body.success, true)
      const rejected = yield* post({ ...entry, event_type: "preprocessing" })
      assert.strictEqual(rejected.status, 422)
      assert.strictEqual(rejected.body.success, false)
      assert.include(String(rejected.body.message), "event_type")
      expect(rejected.body.errors).toEqual([{ field: "event_type", problem: expect.stringContaining("10 characters") }])
      // The dashboard it announces shows both.
      const dashboard = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/) /.exec(stdout)?.[1]
      assert.strictEqual(dashboard, url.replace(/api\/v1$/, ""))
      const state = yield* Effect.promise(() => fetch(`${dashboard}dashboard/state`).then((r) => r.json()))
      expect(state).toMatchObject({ accepted: 1, jobs: [{ jobId: 4, logs: [{ message: "hello" }] }], rejections: [{ status: 422 }] })

      child.kill("SIGINT")
      const code = yield* Effect.promise(() => exited)
      assert.strictEqual(code, 0)
      const printed = lines(stdout)
      assert.include(printed, "[job 4] log         INFO     trainer: hello")
      assert.isTrue(printed.some((line) => line.startsWith("[job 4] REJECTED") && line.includes("event_type")))
      assert.isTrue(printed.some((line) => line.startsWith("1 callbacks accepted, 1 rejected")))
    }))
})

describe("CLI output formatting", () => {
  it("the progress bar fills with the bytes done", () => {
    assert.strictEqual(
      formatDownloadProgress({ files: 1, totalFiles: 4, bytes: 1024, totalBytes: 4096 }, 8),
      "[##------]  25%  1/4 files  1.00 KiB / 4.00 KiB"
    )
    assert.strictEqual(formatDownloadProgress({ files: 0, totalFiles: 0, bytes: 0, totalBytes: 0 }, 4), "[####] 100%  0/0 files  0 B / 0 B")
  })

  it("an empty cache and a multi-line error", () => {
    assert.strictEqual(formatCacheEntries("/tmp/c", []), "dataset cache /tmp/c is empty")
    assert.strictEqual(formatCliError("\u001b[31mbad\u001b[0m\n  thing "), "error: bad thing")
  })
})
