/**
 * Selective download of 2,000 images of 20 KiB from s3rver running in its own process:
 * files/s of the SDK at concurrency 8 and at the default, of the old Python client's flow
 * re-created with boto3 (`support/python_selective_download.py`, 8 threads) when Python and
 * boto3 are installed, and of `aws s3 cp --recursive` when the aws CLI is, all against the
 * same server in the same run.
 *
 *   npx tsx bench/download.ts [--files 2000] [--kib 20] [--rounds 3]
 */
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { NodeContext } from "@effect/platform-node"
import { Config, Effect, Layer, Redacted } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtemp, readdir, rm } from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { defaultS3Timeouts, s3ClientConfig } from "../src/ObjectStore.js"
import { Storage } from "../src/Storage.js"
import { median, numberFlag, report } from "./lib/report.js"
import { startChildS3rver } from "./support/childS3rver.js"

const files = numberFlag("files", 2000)
const kib = numberFlag("kib", 20)
const rounds = numberFlag("rounds", 3)
const bucket = "training-datasets"
const prefix = "datasets/bench/"
/** The old Python client's rate measured once on a quiet machine, used only when boto3 cannot run here. */
const pythonReferenceFilesPerSecond = 175

const server = await startChildS3rver([bucket, "training-checkpoints"])
const secretKey = Redacted.make("S3RVER")
const settings = { endpoint: server.endpoint, accessKey: "S3RVER", secretKey }

try {
  // Seed the dataset: nested image folders and a detection annotation file.
  const seedClient = new S3Client(s3ClientConfig({ ...settings, region: "us-east-1", requestChecksumCalculation: "WHEN_REQUIRED" }))
  const names = Array.from({ length: files }, (_, i) => `part${i % 10}/img_${String(i).padStart(5, "0")}.jpg`)
  const payload = randomBytes(kib * 1024)
  let next = 0
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < names.length) {
      const name = names[next++]!
      await seedClient.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}images/${name}`, Body: payload }))
    }
  }))
  await seedClient.send(new PutObjectCommand({
    Bucket: bucket,
    Key: `${prefix}annotations_detection.json`,
    Body: JSON.stringify({ images: names.map((file_name, id) => ({ id, file_name })), annotations: [], categories: [] })
  }))
  seedClient.destroy()

  const StorageLive = Storage.layerConfig(Config.succeed({
    external: { ...settings, bucket },
    internal: { ...settings, bucket: "training-checkpoints" },
    region: "us-east-1",
    requestChecksumCalculation: "WHEN_REQUIRED",
    timeouts: defaultS3Timeouts
  }), { jobId: 1 }).pipe(Layer.provide(NodeContext.layer))

  /** One timed selective download into a fresh directory; files/s of images + annotation file. */
  const sdkRun = (concurrency: number | undefined) =>
    Effect.gen(function*() {
      const storage = yield* Storage
      const dest = yield* Effect.promise(() => mkdtemp(path.join(os.tmpdir(), "bench-dl-")))
      const started = performance.now()
      const cpuBefore = process.cpuUsage()
      const result = yield* storage.downloadDatasetSelective("bench", dest, concurrency === undefined ? {} : { concurrency })
      const seconds = (performance.now() - started) / 1000
      yield* Effect.promise(() => rm(dest, { recursive: true, force: true }))
      if (result.imageCount !== files) return yield* Effect.die(new Error(`expected ${files} images, got ${result.imageCount}`))
      const cpu = process.cpuUsage(cpuBefore)
      console.log(
        `run concurrency=${concurrency ?? "default"}: ${(result.files / seconds).toFixed(0)} files/s, ` +
          `${((cpu.user + cpu.system) / result.files).toFixed(0)} µs client CPU per file`
      )
      return result.files / seconds
    })

  const { at8, atDefault } = await Effect.runPromise(
    Effect.gen(function*() {
      yield* sdkRun(undefined) // warm-up (connections, JIT)
      const at8: Array<number> = []
      const atDefault: Array<number> = []
      for (let r = 0; r < rounds; r++) {
        at8.push(yield* sdkRun(8))
        atDefault.push(yield* sdkRun(undefined))
      }
      return { at8: median(at8), atDefault: median(atDefault) }
    }).pipe(Effect.provide(StorageLive))
  )

  const awsAvailable = spawnSync("aws", ["--version"], { stdio: "ignore" }).status === 0
  let awsFilesPerSecond: number | undefined
  if (awsAvailable) {
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "S3RVER",
      AWS_DEFAULT_REGION: "us-east-1",
      AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED"
    }
    const runs: Array<number> = []
    for (let r = 0; r < Math.min(rounds, 2); r++) {
      const dest = await mkdtemp(path.join(os.tmpdir(), "bench-aws-"))
      const started = performance.now()
      execFileSync("aws", ["s3", "cp", "--recursive", "--quiet", "--endpoint-url", server.endpoint, `s3://${bucket}/${prefix}`, dest], { env, stdio: "inherit" })
      const seconds = (performance.now() - started) / 1000
      const copied = (await readdir(dest, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length
      await rm(dest, { recursive: true, force: true })
      runs.push(copied / seconds)
    }
    awsFilesPerSecond = median(runs)
  }

  const pythonScript = fileURLToPath(new URL("./support/python_selective_download.py", import.meta.url))
  const pythonAvailable = spawnSync("python3", ["-c", "import boto3"], { stdio: "ignore" }).status === 0
  let pythonFilesPerSecond: number | undefined
  if (pythonAvailable) {
    const runs: Array<number> = []
    for (let r = 0; r < Math.min(rounds, 2); r++) {
      const dest = await mkdtemp(path.join(os.tmpdir(), "bench-py-"))
      const out = execFileSync("python3", [pythonScript, server.endpoint, bucket, prefix, dest], {
        env: { ...process.env, AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED" },
        encoding: "utf8"
      })
      await rm(dest, { recursive: true, force: true })
      const result = JSON.parse(out.trim().split("\n").pop()!) as { files: number; seconds: number }
      if (result.files !== files + 1) throw new Error(`python client: expected ${files + 1} files, got ${result.files}`)
      console.log(`python client (8 threads): ${(result.files / result.seconds).toFixed(0)} files/s`)
      runs.push(result.files / result.seconds)
    }
    pythonFilesPerSecond = median(runs)
  }

  const python = pythonFilesPerSecond ?? pythonReferenceFilesPerSecond
  const pythonRatio = atDefault / python
  const ratio = awsFilesPerSecond === undefined ? undefined : atDefault / awsFilesPerSecond
  report({
    name: "download",
    figure: `${atDefault.toFixed(0)} files/s (default concurrency 32), ${at8.toFixed(0)} files/s (concurrency 8); ${files} x ${kib} KiB, median of ${rounds}`,
    comparison: [
      pythonFilesPerSecond === undefined
        ? `${pythonRatio.toFixed(2)}x the old Python client's 175 files/s (reference figure: boto3 not installed here)`
        : `${pythonRatio.toFixed(2)}x the old Python client re-created with boto3, 8 threads (${pythonFilesPerSecond.toFixed(0)} files/s, median of ${Math.min(rounds, 2)})`,
      awsFilesPerSecond === undefined
        ? "aws CLI not installed"
        : `${ratio!.toFixed(2)}x aws s3 cp --recursive (${awsFilesPerSecond.toFixed(0)} files/s); concurrency 8 is ${(at8 / awsFilesPerSecond).toFixed(2)}x`
    ].join("; "),
    target: ">= 2.5x the old Python client in the same run (and >= 1.9x aws s3 cp)",
    met: pythonRatio >= 2.5 && (ratio === undefined || ratio >= 1.9),
    notes: `s3rver in its own process, ${os.cpus().length} cores shared by server, client and aws CLI; ` +
      `load average ${os.loadavg().map((l) => l.toFixed(1)).join("/")} at the end (other processes compete for the cores)`
  })
} finally {
  await server.stop()
}
