/**
 * An example inference job, written the way the platform's inference scripts use the SDK:
 * the pod gets `INFERENCE_JOB_ID`, `CHECKPOINT_S3_URI` and `IMAGES_S3_URI`; the program
 * downloads the checkpoint, lists the images under the URI, runs the model on each
 * (simulated: deterministic boxes, no ML framework) and reports the per-image results.
 * `runTrainer` reports the start to the inference endpoint before the program runs.
 */
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import { Path } from "@effect/platform"
import { Clock, Effect, Redacted } from "effect"
import { type CallbackInferenceResult, type S3Uri, type StorageEndpoint, TrainerError, TrainerSdk } from "../src/index.js"

const imageExtensions = /\.(jpe?g|png|bmp|webp|tiff?)$/i

/** The image keys under `uri` (every page of the listing), in key order. */
const listImages = (store: StorageEndpoint, region: string, uri: S3Uri) =>
  Effect.acquireUseRelease(
    Effect.sync(() =>
      new S3Client({
        endpoint: store.endpoint,
        region,
        forcePathStyle: true,
        credentials: { accessKeyId: store.accessKey, secretAccessKey: Redacted.value(store.secretKey) }
      })
    ),
    (client) =>
      Effect.tryPromise({
        try: async () => {
          const keys: Array<string> = []
          let token: string | undefined
          do {
            const page = await client.send(
              new ListObjectsV2Command({ Bucket: uri.bucket, Prefix: uri.key, ContinuationToken: token })
            )
            for (const object of page.Contents ?? []) if (object.Key && imageExtensions.test(object.Key)) keys.push(object.Key)
            token = page.IsTruncated ? page.NextContinuationToken : undefined
          } while (token !== undefined)
          return keys.sort()
        },
        catch: (cause) =>
          new TrainerError({ errorType: "NetworkError", message: `cannot list the images under ${uri.uri}`, cause })
      }),
    (client) => Effect.sync(() => client.destroy())
  )

/** A stand-in for a detector: the same key always gives the same boxes. */
const simulatedPredictions = (key: string) => {
  let seed = 0
  for (const char of key) seed = (seed * 31 + char.charCodeAt(0)) >>> 0
  const count = 1 + (seed % 3)
  return Array.from({ length: count }, (_, i) => {
    const x = ((seed >> (i * 3)) % 50) + 5
    return {
      class_id: (seed + i) % 2,
      class_name: (seed + i) % 2 === 0 ? "cat" : "dog",
      confidence: Number((0.5 + ((seed >> i) % 50) / 100).toFixed(2)),
      bbox: [x, x + 4, x + 30, x + 26]
    }
  })
}

/** The inference program: everything it needs comes from `TrainerSdk.layer` (or `layerTest`). */
export const exampleInference = Effect.gen(function*() {
  const sdk = yield* TrainerSdk
  const path = yield* Path.Path
  const job = sdk.context.job
  if (job.kind !== "inference") {
    return yield* new TrainerError({ errorType: "ConfigError", message: `an inference job needs INFERENCE_JOB_ID; this is a ${job.kind} job` })
  }
  const weights = yield* sdk.storage.downloadCheckpoint(job.checkpointS3Uri.uri, path.join(sdk.workDir, "model.pt"))
  yield* Effect.logInfo(`Model ${job.checkpointS3Uri.uri} downloaded to ${weights}`)
  const keys = yield* listImages(sdk.context.externalStorage, sdk.context.region, job.imagesS3Uri)
  yield* Effect.logInfo(`${keys.length} images under ${job.imagesS3Uri.uri}`)

  const results: Array<CallbackInferenceResult> = []
  for (const key of keys) {
    const started = yield* Clock.currentTimeMillis
    const predictions = simulatedPredictions(key) // your model on `weights` here
    yield* Effect.sleep("5 millis")
    const finished = yield* Clock.currentTimeMillis
    results.push({
      imagePath: `s3://${job.imagesS3Uri.bucket}/${key}`,
      imageName: path.basename(key),
      predictions,
      inferenceTimeMs: finished - started
    })
  }
  yield* sdk.reportInferenceCompleted({ results })
  yield* Effect.logInfo(`Reported ${results.length} results`)
})
