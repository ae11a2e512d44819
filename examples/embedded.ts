/**
 * Embedded mode of the example: everything the trainer talks to runs in this process on
 * 127.0.0.1 — the SDK's dev backend (strict callback validation) and a local S3 server
 * (`s3rver`, a dev dependency loaded only here) holding a generated sample dataset. The
 * trainer runs against them through a `ConfigProvider` (the real environment is left
 * alone), then a summary of what the backend received is printed. The dev backend's
 * dashboard (its root URL) shows the run live; it can stay up after the run (`linger`).
 */
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { ConfigProvider, Console, Duration, Effect, type Scope } from "effect"
import {
  DevBackend,
  type DevBackendHandle,
  formatDevBackendEvent,
  formatDevBackendRejection,
  formatDevBackendSummary,
  runTrainerEffect,
  TrainerSdk,
  type TrainerServices
} from "../src/index.js"
import { s3rverAccessKey, startLocalS3Server } from "./localS3.js"
import { sampleDiceDataset } from "./sampleDataset.js"

const datasetsBucket = "training-datasets"
const checkpointsBucket = "training-checkpoints"
const datasetId = "sample-detection"
/** A local S3 server on 127.0.0.1 with both buckets, stopped with the scope. */
const startLocalS3 = (directory: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => startLocalS3Server(directory, [datasetsBucket, checkpointsBucket])),
    (server) => Effect.promise(server.close)
  ).pipe(Effect.map((server) => server.endpoint))

/** Runs `use` with an S3 client of the local server at `endpoint`, destroyed afterwards. */
const withLocalS3Client = <A, E, R>(endpoint: string, use: (client: S3Client) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() =>
      new S3Client({
        endpoint,
        region: "us-east-1",
        forcePathStyle: true,
        credentials: { accessKeyId: s3rverAccessKey, secretAccessKey: s3rverAccessKey }
      })
    ),
    use,
    (client) => Effect.sync(() => client.destroy())
  )

/** Uploads the generated sample dataset to `datasets/{datasetId}/` of the datasets bucket. */
const seedSampleDataset = (endpoint: string) =>
  withLocalS3Client(
    endpoint,
    (client) =>
      Effect.forEach(
        sampleDiceDataset(),
        (file) =>
          Effect.promise(() =>
            client.send(
              new PutObjectCommand({
                Bucket: datasetsBucket,
                Key: `datasets/${datasetId}/${file.key}`,
                Body: file.bytes,
                ContentType: file.contentType
              })
            )
          ),
        { concurrency: 4, discard: true }
      )
  )

/** Uploads a stand-in checkpoint for the example inference job to read. */
const seedCheckpoint = (endpoint: string, key: string) =>
  withLocalS3Client(
    endpoint,
    (client) =>
      Effect.promise(() =>
        client.send(new PutObjectCommand({ Bucket: checkpointsBucket, Key: key, Body: new TextEncoder().encode("simulated weights") }))
      )
  )

/** Options of `runEmbedded`. */
export interface EmbeddedOptions {
  /**
   * The kind of job to start (default `training`): its id variable and its own variables
   * are set as the platform's launcher sets them (`inference`: `INFERENCE_JOB_ID`,
   * `CHECKPOINT_S3_URI` of a seeded checkpoint, `IMAGES_S3_URI` of the sample images).
   */
  readonly kind?: "training" | "inference"
  /** Report to this dev backend instead of starting (and printing) one. */
  readonly backend?: DevBackendHandle
  /** Variables that win over the environment and the defaults, e.g. `EPOCHS`. */
  readonly variables?: Readonly<Record<string, string>>
  /** Keep the dev backend (and its dashboard) up this long after the run, or until interrupted. */
  readonly linger?: Duration.DurationInput | "until-interrupted"
  /** Called with the trainer's exit code as soon as it is known (before any linger). */
  readonly onExitCode?: (exitCode: number) => void
}

/**
 * Runs `program` against in-process stand-ins of the platform and returns the trainer's
 * exit code. The connection settings are fixed; other variables (`EPOCHS`, `MODEL_NAME`,
 * ...) may still come from the real environment, with small defaults otherwise.
 */
export const runEmbedded = <A, E>(
  program: Effect.Effect<A, E, TrainerServices>,
  options: EmbeddedOptions = {}
): Effect.Effect<number> =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const root = yield* fs.makeTempDirectoryScoped({ prefix: "trainer-sdk-example-" })
    yield* Effect.all([fs.makeDirectory(`${root}/s3`), fs.makeDirectory(`${root}/cache`), fs.makeDirectory(`${root}/work`)])

    const backend = options.backend ?? (yield* DevBackend.start({
      onEvent: (event) => Console.log(formatDevBackendEvent(event)),
      onRejected: (rejection) => Console.error(formatDevBackendRejection(rejection))
    }))
    const s3Endpoint = yield* startLocalS3(`${root}/s3`)
    yield* seedSampleDataset(s3Endpoint)
    yield* Console.log(`Embedded platform: backend ${backend.url}, S3 ${s3Endpoint}, dataset ${datasetId}`)
    yield* Console.log(`Dashboard: ${backend.dashboardUrl}  (open it in a browser to watch the run)\n`)

    const checkpointKey = "checkpoints/1/best.pt"
    if (options.kind === "inference") yield* seedCheckpoint(s3Endpoint, checkpointKey)
    const jobVariables: ReadonlyArray<readonly [string, string]> = options.kind === "inference"
      ? [
        ["INFERENCE_JOB_ID", "1"],
        ["CHECKPOINT_S3_URI", `s3://${checkpointsBucket}/${checkpointKey}`],
        ["IMAGES_S3_URI", `s3://${datasetsBucket}/datasets/${datasetId}/images/`],
        ["TRAINING_JOB_ID", "1"]
      ]
      : [["JOB_ID", "1"]]
    const connection = new Map([
      ["CALLBACK_URL", backend.url],
      ...jobVariables,
      ["EXTERNAL_STORAGE_ENDPOINT", s3Endpoint],
      ["EXTERNAL_STORAGE_ACCESS_KEY", s3rverAccessKey],
      ["EXTERNAL_STORAGE_SECRET_KEY", s3rverAccessKey],
      ["EXTERNAL_BUCKET_DATASETS", datasetsBucket],
      ["INTERNAL_STORAGE_ENDPOINT", s3Endpoint],
      ["INTERNAL_STORAGE_ACCESS_KEY", s3rverAccessKey],
      ["INTERNAL_STORAGE_SECRET_KEY", s3rverAccessKey],
      ["INTERNAL_BUCKET_CHECKPOINTS", checkpointsBucket],
      ["DATASET_ID", datasetId],
      ["DATASET_VERSION_HASH", "sample0001"],
      ["DATASET_CACHE_DIR", `${root}/cache`]
    ])
    const defaults = new Map([
      ["EPOCHS", "5"],
      ["MODEL_NAME", "yolo11n"],
      ["FRAMEWORK", "simulated"],
      ["CALLBACK_RETRY_DELAY", "0.2"]
    ])
    const provider = ConfigProvider.fromMap(new Map([...connection, ...Object.entries(options.variables ?? {})])).pipe(
      ConfigProvider.orElse(() => ConfigProvider.fromEnv()),
      ConfigProvider.orElse(() => ConfigProvider.fromMap(defaults))
    )

    const outcome = yield* runTrainerEffect(program, { layer: TrainerSdk.layerConfig({ workDir: `${root}/work` }) }).pipe(
      Effect.withConfigProvider(provider)
    )
    yield* Console.log(`\nWhat the backend received:\n${formatDevBackendSummary(yield* backend.summary)}`)
    yield* Console.log(
      `Trainer exit code ${outcome.exitCode} (${outcome.status}${outcome.message === undefined ? "" : `: ${outcome.message}`})`
    )
    options.onExitCode?.(outcome.exitCode)
    if (options.linger === "until-interrupted") {
      yield* Console.log(`\nDashboard stays up at ${backend.dashboardUrl} until Ctrl-C`)
      yield* Effect.never
    } else if (options.linger !== undefined && Duration.toMillis(options.linger) > 0) {
      yield* Console.log(
        `\nDashboard stays up at ${backend.dashboardUrl} for ${Duration.format(options.linger)} (--serve: until Ctrl-C; Ctrl-C ends it now)`
      )
      yield* Effect.sleep(options.linger)
    }
    return outcome.exitCode
  })).pipe(
    Effect.catchAll((error) => Effect.as(Console.error(`Embedded platform failed to start: ${error.message}`), 2)),
    Effect.provide(NodeContext.layer)
  )
