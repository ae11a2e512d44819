/**
 * The storage service: checkpoints to and from the internal store, result files, and the
 * four dataset download flows from the external store, all with bounded concurrency,
 * per-object retry, temp file + rename, progress and path-traversal checks.
 *
 * The flows themselves are in `internal/storageFlows.ts`; this module holds the service
 * interface, the tags, `makeStorage` and the layers.
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import { Config, Context, Effect, type Either, Layer, Option, Schedule } from "effect"
import type { CallbackMetrics } from "./Callback.js"
import type { CheckpointError, ConfigError, DatasetError, DownloadError, StorageError } from "./Errors.js"
import { jobIdOptionConfig, settingsLayer, storageSectionConfig, toSdkConfigError } from "./internal/envSections.js"
import type { SettingsError, StorageEndpoint } from "./JobContext.js"
import type { MemoryObjectStore, ObjectStore, S3Timeouts } from "./ObjectStore.js"
import { parseS3Uri as parseS3UriEither } from "./internal/downloads.js"
import { makeMemoryObjectStore } from "./internal/memoryObjectStore.js"
import {
  defaultS3Retry,
  makeS3ObjectStore,
  s3ClientConfig,
  s3ClientsScoped,
  s3TimeoutsConfig
} from "./internal/s3ObjectStore.js"
import { makeStorageFlows } from "./internal/storageFlows.js"


/** A bucket and key named by an `s3://bucket/key` URI. */
export interface S3Location {
  readonly bucket: string
  readonly key: string
}

/**
 * Progress of a download flow. Totals can grow while a flow runs: the selective flow learns
 * its image list from the annotation file it fetched first.
 */
export interface DownloadProgress {
  /** Files completed. */
  readonly files: number
  readonly totalFiles: number
  /** Bytes of completed files. */
  readonly bytes: number
  /** Sizes known so far: from listings up front, otherwise learned as each file completes. */
  readonly totalBytes: number
}

/** Options of every download flow. */
export interface DownloadOptions {
  /** Objects fetched at the same time (default 32). */
  readonly concurrency?: number
  /** Called after each completed file. */
  readonly onProgress?: (progress: DownloadProgress) => Effect.Effect<void>
}

/** What a selective dataset download produced. */
export interface DownloadReport {
  /** Files written (annotation files and images). */
  readonly files: number
  readonly bytes: number
  /** Local paths of the annotation files. */
  readonly annotationFiles: ReadonlyArray<string>
  /** Local path of the primary annotation file. */
  readonly primaryAnnotationFile: string
  /** Images downloaded (distinct `images[].file_name`). */
  readonly imageCount: number
}

/** What a whole-prefix dataset download produced. */
export interface DatasetDownloadSummary {
  readonly files: number
  readonly bytes: number
}

/** What a download from annotation data produced. */
export interface AnnotationDownloadReport {
  readonly files: number
  readonly bytes: number
  readonly imageCount: number
  /** LabelMe label files downloaded (0 for COCO). */
  readonly labelCount: number
  /** COCO: the written `dest_dir/annotations.json` with local file names. */
  readonly annotationFile: Option.Option<string>
}

/** Options of `uploadFile`. */
export interface UploadFileOptions {
  readonly contentType?: string
  /** Which store receives the file (default `internal`). */
  readonly store?: "internal" | "external"
}

/** A saved checkpoint, as the log shipper records it. */
export interface CheckpointSaved {
  readonly checkpointType: string
  readonly uri: string
  readonly metrics: CallbackMetrics
}

/** Options of `uploadCheckpoint`. */
export interface UploadCheckpointOptions {
  /** Epochs completed when the checkpoint was taken: recorded for resuming (see `latestCheckpoint`). */
  readonly epoch?: number
}

/** The shape of the `CheckpointEvents` service. */
export interface CheckpointEventsService {
  readonly checkpointSaved: (event: CheckpointSaved) => Effect.Effect<void>
}

/** What the store remembers of one uploaded checkpoint. */
export interface CheckpointRecord {
  readonly checkpointType: string
  /** `s3://bucket/key` of the checkpoint. */
  readonly uri: string
  /** Epochs completed when the checkpoint was taken (`undefined` when unknown). */
  readonly epoch: number | undefined
  /** Its metrics (non-finite values as `null`). */
  readonly metrics: CallbackMetrics
  /** When the upload finished (ISO-8601 UTC). */
  readonly uploadedAt: string
}

/** Parses `s3://bucket/key` strictly; `StorageError` with reason `InvalidUri` naming the URI otherwise. */
export const parseS3Uri = (uri: string): Either.Either<S3Location, StorageError> => parseS3UriEither(uri)

/** The storage service. */
export interface StorageService {
  /**
   * Uploads a checkpoint as `checkpoints/{job_id}/{type}.pt` (`.pt`/`.pth` files) or
   * `{type}{ext}` (other files) to the internal store, verifies the stored size, and returns
   * its `s3://` URI. Beside it, `checkpoints/{job_id}/resume/{type}.json` records the URI,
   * the epoch and the metrics, for a restarted job to resume from (see `checkpointRecords`).
   * With metrics, a checkpoint event is recorded too (see `CheckpointEvents`).
   */
  readonly uploadCheckpoint: (
    localPath: string,
    checkpointType: string,
    metrics?: CallbackMetrics,
    options?: UploadCheckpointOptions
  ) => Effect.Effect<string, CheckpointError>
  /** The job's recorded checkpoints (one per type), newest first: highest epoch, then latest upload. */
  readonly checkpointRecords: Effect.Effect<ReadonlyArray<CheckpointRecord>, StorageError>
  /** Downloads a checkpoint from the internal endpoint (the URI's bucket) to `localPath`, atomically. */
  readonly downloadCheckpoint: (uri: string, localPath: string) => Effect.Effect<string, StorageError | CheckpointError>
  /** Uploads any file under the caller's key; returns its `s3://` URI. */
  readonly uploadFile: (localPath: string, key: string, options?: UploadFileOptions) => Effect.Effect<string, StorageError>
  /** Downloads every object under `datasets/{datasetId}/` to `destDir`, keeping relative paths. */
  readonly downloadDataset: (
    datasetId: string,
    destDir: string,
    options?: DownloadOptions
  ) => Effect.Effect<DatasetDownloadSummary, StorageError | DownloadError | DatasetError>
  /** Downloads the annotation files and only the images the primary one references. */
  readonly downloadDatasetSelective: (
    datasetId: string,
    destDir: string,
    options?: DownloadOptions
  ) => Effect.Effect<DownloadReport, StorageError | DownloadError | DatasetError>
  /** Downloads the objects named by LabelMe (`data_summary`) or COCO (`images[].file_name`) annotation data. */
  readonly downloadFromAnnotation: (
    data: unknown,
    destDir: string,
    format: "labelme" | "coco",
    options?: DownloadOptions
  ) => Effect.Effect<AnnotationDownloadReport, StorageError | DownloadError | DatasetError>
  /** `parseS3Uri` as an Effect. */
  readonly parseS3Uri: (uri: string) => Effect.Effect<S3Location, StorageError>
}

/**
 * Where checkpoint events go (the log shipper provides it). Optional: `Storage` uses it
 * when present in the context it is built in, and records nothing otherwise.
 */
export class CheckpointEvents
  extends Context.Tag("trainer-sdk/CheckpointEvents")<CheckpointEvents, CheckpointEventsService>()
{}

/** What `Storage.make` is built from. */
export interface StorageConfig {
  /** Datasets. */
  readonly external: ObjectStore
  /** Checkpoints and results. */
  readonly internal: ObjectStore
  /**
   * The job whose checkpoints it uploads and lists (`checkpoints/{jobId}/`). Without one
   * (a command-line tool has no job) `uploadCheckpoint` fails and `checkpointRecords` is empty.
   */
  readonly jobId?: number | undefined
  /** Default download concurrency (32). */
  readonly concurrency?: number
  /** Per-object retry on transient failures (default: 4 attempts, exponential from 200 ms, jittered). */
  readonly retry?: Schedule.Schedule<unknown, StorageError>
}

const defaultRetry: Schedule.Schedule<unknown, StorageError> = defaultS3Retry

/** Builds the service over two stores. */
export const makeStorage = (config: StorageConfig): Effect.Effect<StorageService, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const service: StorageService = makeStorageFlows({
      fs: yield* FileSystem.FileSystem,
      path: yield* Path.Path,
      external: config.external,
      internal: config.internal,
      jobId: config.jobId,
      defaultConcurrency: config.concurrency ?? 32,
      retry: config.retry ?? defaultRetry,
      events: yield* Effect.serviceOption(CheckpointEvents)
    })
    return service
  })

/**
 * A dataset for `StorageTest`'s `seedDataset`: its images, its annotation files and any
 * other files, stored under `datasets/{dataset_id}/` as the platform lays a dataset out.
 */
export interface DatasetSeed {
  /** Image bytes by file name, stored as `images/{file_name}` (names kept verbatim, hostile ones too). */
  readonly images?: Readonly<Record<string, Uint8Array | string>>
  /**
   * Annotation files by name (`annotations_detection.json`, ...): text or bytes as given, any
   * other value as its JSON. Default: `annotations_detection.json`, a nested DICE detection
   * document listing every image of `images` (640x480, no objects).
   */
  readonly annotations?: Readonly<Record<string, unknown>>
  /** Further files by key under the dataset's prefix (e.g. `examples/sampleDataset.ts`'s files). */
  readonly files?: ReadonlyArray<{ readonly key: string; readonly bytes: Uint8Array | string; readonly contentType?: string }>
}

/** The in-memory stores behind `Storage.layerTest()`, for tests to seed, inspect and break. */
export class StorageTest extends Context.Tag("trainer-sdk/StorageTest")<StorageTest, {
  readonly external: MemoryObjectStore
  readonly internal: MemoryObjectStore
  /** Puts a dataset into the external (datasets) store under `datasets/{datasetId}/`. */
  readonly seedDataset: (datasetId: string, dataset: DatasetSeed) => void
}>() {}

/** The nested DICE detection document `seedDataset` writes when no annotation file is given. */
const defaultDiceDocument = (imageNames: ReadonlyArray<string>) => ({
  format_version: "1.0",
  task_type: "object_detection",
  classes: [{ id: 0, name: "object" }],
  images: imageNames.map((file_name, i) => ({ id: i + 1, file_name, width: 640, height: 480, annotations: [] }))
})

/** `seedDataset` over the external store. */
const datasetSeeder = (external: MemoryObjectStore) => (datasetId: string, dataset: DatasetSeed): void => {
  const prefix = `datasets/${datasetId}/`
  const images = dataset.images ?? {}
  const annotations = dataset.annotations ?? { "annotations_detection.json": defaultDiceDocument(Object.keys(images)) }
  for (const [name, content] of Object.entries(annotations)) {
    external.seed(
      `${prefix}${name}`,
      typeof content === "string" || content instanceof Uint8Array ? content : JSON.stringify(content),
      "application/json"
    )
  }
  for (const [name, bytes] of Object.entries(images)) external.seed(`${prefix}images/${name}`, bytes)
  for (const file of dataset.files ?? []) external.seed(`${prefix}${file.key}`, file.bytes, file.contentType)
}

/** Options of `Storage.layerMemoryWith`. */
export interface StorageTestOptions {
  readonly jobId?: number
  readonly externalBucket?: string
  readonly internalBucket?: string
  readonly concurrency?: number
  /** Keys per listing page (1,000). */
  readonly pageSize?: number
}

/** Where the storage service connects: the two stores, the region, the checksum setting and the request limits. */
export interface StorageSettings {
  /** Datasets (`EXTERNAL_STORAGE_*`, `EXTERNAL_BUCKET_DATASETS`). */
  readonly external: StorageEndpoint
  /** Checkpoints and results (`INTERNAL_STORAGE_*`, `INTERNAL_BUCKET_CHECKPOINTS`). */
  readonly internal: StorageEndpoint
  /** `AWS_REGION`, default `us-east-1`. */
  readonly region: string
  /** `AWS_REQUEST_CHECKSUM_CALCULATION`, default `WHEN_REQUIRED`. */
  readonly requestChecksumCalculation: "WHEN_REQUIRED" | "WHEN_SUPPORTED"
  /** `S3_CONNECT_TIMEOUT`, `S3_REQUEST_TIMEOUT`, `S3_IDLE_TIMEOUT` (see `s3TimeoutsConfig`). */
  readonly timeouts: S3Timeouts
}

/** The storage variables (and nothing else: no job variable) through `Config`. */
const storageConfig: Config.Config<StorageSettings> = Config.all([storageSectionConfig, s3TimeoutsConfig]).pipe(
  Config.map(([section, timeouts]) => ({
    external: section.externalStorage,
    internal: section.internalStorage,
    region: section.region,
    requestChecksumCalculation: section.requestChecksumCalculation,
    timeouts
  }))
)

/** The S3 store of one endpoint: clients closed with the scope, the timeouts on both client and store. */
const s3Store = (settings: StorageSettings, endpoint: StorageEndpoint) =>
  Effect.map(
    s3ClientsScoped(s3ClientConfig({
      ...endpoint,
      region: settings.region,
      requestChecksumCalculation: settings.requestChecksumCalculation,
      timeouts: settings.timeouts
    })),
    (clients) =>
      makeS3ObjectStore(clients, endpoint.bucket, {
        timeouts: settings.timeouts,
        retry: defaultRetry,
        requestChecksumCalculation: settings.requestChecksumCalculation
      })
  )

/** The storage service: `const storage = yield* Storage`. */
export class Storage extends Context.Tag("trainer-sdk/Storage")<Storage, StorageService>() {
  /** Builds the service over two stores (see `StorageConfig`). */
  static readonly make = makeStorage

  /** The storage variables (stores, region, checksum setting, request limits) through `Config`. */
  static readonly config: Config.Config<StorageSettings> = storageConfig

  /**
   * Two S3 stores (external = datasets, internal = checkpoints) from `config` (settings as
   * values, or a `Config`, where an invalid value is a `ConfigError` naming the variable),
   * clients closed with the scope; checkpoints go under the given job's prefix. Without a
   * job the dataset transfers work and checkpoint uploads fail (see `StorageConfig.jobId`).
   */
  static readonly layerConfig = <S extends StorageSettings | Config.Config<StorageSettings>>(
    config: S,
    options: { readonly jobId?: number | undefined } = {}
  ): Layer.Layer<Storage, SettingsError<S>, FileSystem.FileSystem | Path.Path> =>
    settingsLayer(Storage, config, (settings: StorageSettings) =>
      Effect.gen(function*() {
        const external = yield* s3Store(settings, settings.external)
        const internal = yield* s3Store(settings, settings.internal)
        return yield* makeStorage({ external, internal, jobId: options.jobId })
      }))

  /**
   * `layerConfig(Storage.config)` for the job whose id variable is set (`JOB_ID`,
   * `INFERENCE_JOB_ID`, `EXPORT_JOB_ID` or `TEST_RUN_ID`; none set: no job). Needs no other
   * job variable: `CALLBACK_URL` and the rest are the other services' business.
   */
  static readonly layer: Layer.Layer<Storage, ConfigError, FileSystem.FileSystem | Path.Path> = Layer.unwrapEffect(
    Effect.map(
      Effect.mapError(jobIdOptionConfig, toSdkConfigError),
      (jobId) => Storage.layerConfig(storageConfig, { jobId: Option.getOrUndefined(jobId) })
    )
  )

  /**
   * In-memory stores (by default buckets `training-datasets` / `training-checkpoints`, job 1);
   * see `StorageTest` for the test controls. Without options every call returns the same
   * layer, so one provided twice is built once.
   */
  static readonly layerTest = (
    options?: StorageTestOptions
  ): Layer.Layer<Storage | StorageTest, never, FileSystem.FileSystem | Path.Path> =>
    options === undefined ? Storage.sharedTestLayer : storageTestLayer(options)

  /** The one instance `layerTest()` returns. */
  private static readonly sharedTestLayer: Layer.Layer<Storage | StorageTest, never, FileSystem.FileSystem | Path.Path> =
    Layer.suspend(() => storageTestLayer({}))
}

/** In-memory stores with `options` (see `Storage.layerTest`). */
const storageTestLayer = (
  options: StorageTestOptions
): Layer.Layer<Storage | StorageTest, never, FileSystem.FileSystem | Path.Path> =>
  Layer.effectContext(Effect.gen(function*() {
    const pageSize = options.pageSize === undefined ? {} : { pageSize: options.pageSize }
    const external = yield* makeMemoryObjectStore(options.externalBucket ?? "training-datasets", pageSize)
    const internal = yield* makeMemoryObjectStore(options.internalBucket ?? "training-checkpoints", pageSize)
    const service = yield* makeStorage({
      external,
      internal,
      jobId: options.jobId ?? 1,
      // In memory there is no transport to wait for: retry at once, so TestClock never blocks.
      retry: Schedule.recurs(2),
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency })
    })
    return Context.make(Storage, service).pipe(
      Context.add(StorageTest, { external, internal, seedDataset: datasetSeeder(external) })
    )
  }))
