/**
 * Upload of a large checkpoint to s3rver running in its own process: multipart (the SDK's
 * `uploadCheckpoint`, parts uploaded concurrently) against one single PUT, as MiB/s and the
 * peak RSS of this process during each upload (which must stay far below the file size).
 *
 *   npx tsx bench/upload.ts [--mib 1024]
 */
import { S3Client } from "@aws-sdk/client-s3"
import { NodeContext } from "@effect/platform-node"
import { Config, Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { open, mkdtemp, rm } from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { defaultS3Timeouts, makeS3ObjectStore, s3ClientConfig } from "../src/ObjectStore.js"
import { Storage } from "../src/Storage.js"
import { numberFlag, report } from "./lib/report.js"
import { startChildS3rver } from "./support/childS3rver.js"

const mib = numberFlag("mib", 1024)
const bucket = "training-checkpoints"
const MiB = 1024 * 1024

/** Runs `upload`, sampling this process's RSS every 20 ms; returns MiB/s and the peak RSS in MiB. */
const measure = async (upload: () => Promise<void>) => {
  let peak = process.memoryUsage().rss
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 20)
  const started = performance.now()
  try {
    await upload()
  } finally {
    clearInterval(sampler)
  }
  const seconds = (performance.now() - started) / 1000
  peak = Math.max(peak, process.memoryUsage().rss)
  return { mibPerSecond: mib / seconds, peakRssMiB: peak / MiB, seconds }
}

const dir = await mkdtemp(path.join(os.tmpdir(), "bench-upload-"))
const file = path.join(dir, "model.pt")
const handle = await open(file, "w")
const block = randomBytes(MiB)
for (let i = 0; i < mib; i++) await handle.write(block)
await handle.close()

const server = await startChildS3rver(["training-datasets", bucket])
const settings = { endpoint: server.endpoint, accessKey: "S3RVER", secretKey: Redacted.make("S3RVER") }
try {
  const StorageLive = Storage.layerConfig(Config.succeed({
    external: { ...settings, bucket: "training-datasets" },
    internal: { ...settings, bucket },
    region: "us-east-1",
    requestChecksumCalculation: "WHEN_REQUIRED",
    timeouts: defaultS3Timeouts
  }), { jobId: 1 }).pipe(Layer.provide(NodeContext.layer))
  const baselineMiB = process.memoryUsage().rss / MiB
  const multipart = await measure(() =>
    Effect.runPromise(Effect.flatMap(Storage, (s) => s.uploadCheckpoint(file, "best")).pipe(Effect.provide(StorageLive), Effect.asVoid))
  )

  const client = new S3Client(s3ClientConfig({ ...settings, region: "us-east-1", requestChecksumCalculation: "WHEN_REQUIRED" }))
  const single = makeS3ObjectStore(() => client, bucket, { multipartThreshold: Number.POSITIVE_INFINITY })
  const singlePut = await measure(() =>
    Effect.runPromise(single.putFile("checkpoints/1/single.pt", file, { contentType: "application/x-pytorch" })).then(() => undefined)
  )
  client.destroy()

  const limitMiB = mib / 4
  const growth = Math.max(multipart.peakRssMiB, singlePut.peakRssMiB) - baselineMiB
  report({
    name: "upload",
    figure: `multipart ${multipart.mibPerSecond.toFixed(0)} MiB/s (peak RSS ${multipart.peakRssMiB.toFixed(0)} MiB), ` +
      `single PUT ${singlePut.mibPerSecond.toFixed(0)} MiB/s (peak RSS ${singlePut.peakRssMiB.toFixed(0)} MiB); ${mib} MiB file`,
    comparison: `multipart is ${(multipart.mibPerSecond / singlePut.mibPerSecond).toFixed(2)}x single PUT; ` +
      `RSS before the uploads ${baselineMiB.toFixed(0)} MiB, so the uploads added at most ${growth.toFixed(0)} MiB`,
    target: `RSS growth during an upload far below the file size (< ${limitMiB.toFixed(0)} MiB, a quarter of it)`,
    met: growth < limitMiB,
    notes: `parts of 8 MiB, 4 at a time; s3rver in its own process writing to the same disk. Against s3rver ` +
      `multipart is slower than one PUT: the server concatenates all parts on CompleteMultipartUpload ` +
      `(about 3 s per 512 MiB measured) and the cores are shared; ` +
      `load average ${os.loadavg().map((l) => l.toFixed(1)).join("/")}`
  })
} finally {
  await server.stop()
  await rm(dir, { recursive: true, force: true })
}
