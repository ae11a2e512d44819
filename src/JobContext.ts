/**
 * The job context: everything the platform passes to a trainer through environment
 * variables, read once, validated and typed. Each service's own variables are its section
 * (`Storage.config`, `DatasetCache.config`, `ClearML.config`, `ReportOutbox.config`,
 * `Callback.config`, `LogBuffer.config`; the rules in `internal/envSections.ts`), which its
 * live layer reads; the job context composes them with its own, so its shape can build any
 * service (`Callback.layerConfig(ctx)`).
 *
 * @since 0.1.0
 */
import { Config, ConfigProvider, Context, type Duration, Effect, Either, Layer, Option, type Redacted } from "effect"
import type { CallbackSettings } from "./Callback.js"
import type { ClearMLServiceSettings } from "./ClearML.js"
import type { DatasetCacheSettings } from "./DatasetCache.js"
import type { ConfigError } from "./Errors.js"
import {
  cacheSectionConfig,
  clearmlSectionConfig,
  datasetSectionConfig,
  deliveryConfig,
  envSection,
  jobVariablesConfig,
  optionalWith,
  processSecrets,
  rankConfig,
  resolveTaskType,
  storageSectionConfig,
  toSdkConfigError
} from "./internal/envSections.js"
import {
  basicConfigVariables,
  parseJsonObject,
  resolveAdvancedConfig,
  resolveBasicConfig,
  resolvePrimaryMetric
} from "./internal/jobConfig.js"
import { normalizeTaskType as normalizeTask } from "./internal/annotationNames.js"
import type { LogBufferSettings } from "./LogBuffer.js"
import type { ReportOutboxSettings } from "./Outbox.js"

/**
 * The converter task a task type or alias maps to (case-insensitive, `-` read as `_`), or
 * `undefined` when it maps to none (`open_vocabulary_detection`, `semantic_segmentation`,
 * `panoptic_segmentation`, or anything unknown).
 */
export const normalizeTaskType = (raw: string): TaskType | undefined => normalizeTask(raw)

/** The converter's four tasks; every task type the platform sends maps to one of them or to none. */
export type TaskType = "detection" | "classification" | "segmentation" | "pose"

/** The kinds of platform job, each started with its own job id variable. */
export type JobKind = "training" | "inference" | "export" | "evaluation"

/** An `s3://bucket/key` URI, parsed. */
export interface S3Uri {
  /** The URI as given (trimmed). */
  readonly uri: string
  readonly bucket: string
  /** The object key or prefix (no leading `/`; may be empty for a whole bucket). */
  readonly key: string
}

/** The two modes of `CONFIG.primary_metric_mode`. */
export type PrimaryMetricMode = "max" | "min"

/** The typed training hyper-parameters ("basic config") of the spec. */
export interface BasicConfig {
  readonly imgsz: number
  readonly epochs: number
  readonly batch: number
  readonly lr0: number
  readonly optimizer: string
  readonly augment: boolean
  readonly device: string
  readonly workers: number
  readonly patience: number
}

/** A training job (`JOB_ID`); its other variables are the context's common fields. */
export interface TrainingJobVariables {
  readonly kind: "training"
  /** `JOB_ID`. */
  readonly jobId: number
  /** `DATASET_S3_URI`, when set. */
  readonly datasetS3Uri: Option.Option<S3Uri>
}

/** An inference job (`INFERENCE_JOB_ID`). */
export interface InferenceJobVariables {
  readonly kind: "inference"
  /** `INFERENCE_JOB_ID`. */
  readonly inferenceJobId: number
  /** `CHECKPOINT_S3_URI` (required): the model to run. */
  readonly checkpointS3Uri: S3Uri
  /** `IMAGES_S3_URI` (required): the images to run it on (usually a prefix). */
  readonly imagesS3Uri: S3Uri
  /** `TRAINING_JOB_ID`, when known. */
  readonly trainingJobId: Option.Option<number>
}

/** An export job (`EXPORT_JOB_ID`). */
export interface ExportJobVariables {
  readonly kind: "export"
  /** `EXPORT_JOB_ID`. */
  readonly exportJobId: number
  /** `TRAINING_JOB_ID` (required): the training job whose model is exported. */
  readonly trainingJobId: number
  /** `CHECKPOINT_S3_URI` (required). */
  readonly checkpointS3Uri: S3Uri
  /** `EXPORT_FORMAT` (required), e.g. `onnx`. */
  readonly exportFormat: string
}

/** An evaluation (test run) job (`TEST_RUN_ID`). */
export interface EvaluationJobVariables {
  readonly kind: "evaluation"
  /** `TEST_RUN_ID`. */
  readonly testRunId: number
  /** `CHECKPOINT_S3_URI` (required): the model to evaluate. */
  readonly checkpointS3Uri: S3Uri
  /** `DATASET_S3_URI` (required): the labelled dataset to evaluate it on. */
  readonly datasetS3Uri: S3Uri
  /** `TRAINING_JOB_ID`, when known. */
  readonly trainingJobId: Option.Option<number>
}

/** The kind of job with its own typed variables (a discriminated union on `kind`). */
export type JobVariables = TrainingJobVariables | InferenceJobVariables | ExportJobVariables | EvaluationJobVariables

/** The id of a job of any kind (`JOB_ID`, `INFERENCE_JOB_ID`, `EXPORT_JOB_ID` or `TEST_RUN_ID`). */
export const jobIdOf = (job: JobVariables): number => {
  switch (job.kind) {
    case "training":
      return job.jobId
    case "inference":
      return job.inferenceJobId
    case "export":
      return job.exportJobId
    case "evaluation":
      return job.testRunId
  }
}

/** The job a service addresses: its kind and its id (the value of the kind's id variable). */
export interface JobIdentity {
  /** The kind of job, from which id variable is set (`JOB_ID` means training). */
  readonly kind: JobKind
  /** The job id under its kind's variable (`JOB_ID`, `INFERENCE_JOB_ID`, `EXPORT_JOB_ID`, `TEST_RUN_ID`). */
  readonly jobId: number
}

/** This process's rank (`RANK`, else `LOCAL_RANK`, else 0); only rank 0 talks to the backend and ClearML. */
export interface ProcessRank {
  readonly rank: number
  /** Whether this process talks to the backend (rank 0). */
  readonly isPrimary: boolean
}

/**
 * What building a service from `settings` may fail with: a `ConfigError` (naming the
 * variable) when they are read through `Config`, nothing when they are given as values.
 */
export type SettingsError<Settings> = Settings extends Config.Config<unknown> ? ConfigError : never

/** One S3-compatible store: endpoint, credentials and bucket. */
export interface StorageEndpoint {
  readonly endpoint: string
  readonly accessKey: string
  readonly secretKey: Redacted.Redacted<string>
  readonly bucket: string
}

/** ClearML credentials and naming, present only when the three API variables are set. */
export interface ClearMLSettings {
  readonly apiHost: string
  readonly accessKey: string
  readonly secretKey: Redacted.Redacted<string>
  readonly webHost: Option.Option<string>
  readonly project: string
  readonly taskName: string
  /**
   * `CLEARML_TASK_ID`: the task the backend already created for this job. When set, the SDK
   * reports into it instead of creating a second one.
   */
  readonly taskId: Option.Option<string>
}

/**
 * The resolved job context of a trainer process: every service's settings composed
 * (`ReportOutbox`, `Callback`, `LogBuffer`, `ClearML`, `DatasetCache`; storage's as
 * `externalStorage`, `internalStorage`, `region`), so a context can build any of them
 * (`Callback.layerConfig(ctx)`).
 */
export interface JobContextShape
  extends ReportOutboxSettings, CallbackSettings, LogBufferSettings, ClearMLServiceSettings, DatasetCacheSettings, ProcessRank
{
  /** Backend API base URL (`CALLBACK_URL`). */
  readonly callbackUrl: string
  /** The kind of job, from which id variable is set (`JOB_ID` means training). */
  readonly kind: JobKind
  /** The kind with its own typed variables (`CHECKPOINT_S3_URI`, `IMAGES_S3_URI`, ...). */
  readonly job: JobVariables
  /** The job id under its kind's variable (`JOB_ID`, `INFERENCE_JOB_ID`, `EXPORT_JOB_ID`, `TEST_RUN_ID`). */
  readonly jobId: number
  /** The task type as given (`TASK_TYPE`, trimmed; default `detection`); reported as is. */
  readonly taskType: string
  /** The converter task `taskType` maps to (its aliases included), if any. */
  readonly converterTask: Option.Option<TaskType>
  readonly modelName: string
  readonly framework: string
  readonly datasetId: string
  readonly snapshotId: string
  readonly datasetVersionHash: string
  /** Datasets store (`EXTERNAL_STORAGE_*`, `EXTERNAL_BUCKET_DATASETS`). */
  readonly externalStorage: StorageEndpoint
  /** Checkpoints store (`INTERNAL_STORAGE_*`, `INTERNAL_BUCKET_CHECKPOINTS`). */
  readonly internalStorage: StorageEndpoint
  /** S3 region (`AWS_REGION`, default `us-east-1`). */
  readonly region: string
  /** `AWS_REQUEST_CHECKSUM_CALCULATION`, default `WHEN_REQUIRED` (see the storage spec). */
  readonly requestChecksumCalculation: "WHEN_REQUIRED" | "WHEN_SUPPORTED"
  /** Node-wide dataset cache directory (`DATASET_CACHE_DIR`). */
  readonly cacheDir: string
  /** Cache size limit in bytes (`DATASET_CACHE_MAX_GB` GiB). */
  readonly cacheMaxBytes: number
  /** A cache lock or lease not refreshed for this long is stale (`DATASET_CACHE_STALE_SECONDS`, 5 to 3600, default 30). */
  readonly cacheStaleAfter: Duration.Duration
  /** How long to wait for a live cache lock holder (`DATASET_CACHE_LOCK_TIMEOUT_SECONDS`, 1 to 86400, default 21600). */
  readonly cacheLockTimeout: Duration.Duration
  /** Retries after the first attempt (`CALLBACK_MAX_RETRIES`). */
  readonly callbackMaxRetries: number
  /** Base backoff delay (`CALLBACK_RETRY_DELAY` seconds). */
  readonly callbackRetryDelay: Duration.Duration
  /**
   * Time allowed for the outcome report and the final deliveries when the job ends
   * (`CALLBACK_SHUTDOWN_BUDGET` seconds, default 25; under SIGTERM it counts from the signal).
   */
  readonly callbackShutdownBudget: Duration.Duration
  /** Bytes of reports the outbox holds in memory before spilling to its file (`CALLBACK_OUTBOX_MEMORY_MB`, default 4 MiB). */
  readonly outboxMemoryBytes: number
  /** Process rank (`RANK`, else `LOCAL_RANK`, else 0). */
  readonly rank: number
  /** Whether this process talks to the backend (rank 0). */
  readonly isPrimary: boolean
  /** Training hyper-parameters. */
  readonly basicConfig: BasicConfig
  /** Framework-specific config (`CONFIG.advanced_config` or `ADVANCED_CONFIG`). */
  readonly advancedConfig: Record<string, unknown>
  /** The parsed `CONFIG` object as the platform sent it (`{}` when unset): every key, framework keys included. */
  readonly config: Record<string, unknown>
  /** `CONFIG.primary_metric`, when set. */
  readonly primaryMetric: Option.Option<string>
  /** `CONFIG.primary_metric_mode` (default `max`). */
  readonly primaryMetricMode: PrimaryMetricMode
  /** ClearML settings, when enabled. */
  readonly clearml: Option.Option<ClearMLSettings>
  /**
   * The secret values that never leave the process (both storage secret keys, the ClearML
   * secret when tracking is on): masked in every report the SDK sends.
   */
  readonly secrets: ReadonlyArray<Redacted.Redacted<string>>
}

/**
 * The training section, the job context's own: task, model and framework names,
 * `CONFIG` (with the basic config's direct and legacy variables), `ADVANCED_CONFIG`.
 */
const trainingSectionConfig = envSection(
  ["TASK_TYPE", "MODEL_NAME", "FRAMEWORK", "CONFIG", "ADVANCED_CONFIG", ...basicConfigVariables],
  [],
  (env) =>
    Either.gen(function*() {
      const taskType = resolveTaskType(env)
      const configJson = yield* optionalWith(env, "CONFIG", {} as Record<string, unknown>, parseJsonObject)
      const basicConfig = yield* resolveBasicConfig(env.plain, configJson)
      const advancedConfig = yield* resolveAdvancedConfig(configJson, env.plain("ADVANCED_CONFIG"))
      const primaryMetric = yield* resolvePrimaryMetric(configJson)
      return {
        taskType,
        converterTask: Option.fromNullable(normalizeTask(taskType)),
        modelName: env.plain("MODEL_NAME") ?? "",
        framework: env.plain("FRAMEWORK") ?? "",
        basicConfig,
        advancedConfig,
        config: configJson,
        primaryMetric: Option.fromNullable(primaryMetric.name),
        primaryMetricMode: primaryMetric.mode
      }
    })
)

/**
 * The whole job context through `Config`, composed of every service's section (delivery,
 * the job's kind and variables, dataset cache, dataset ids, rank, training, ClearML,
 * storage); the first rule broken, in that order, is the error.
 */
export const jobContextConfig: Config.Config<JobContextShape> = Config.all([
  deliveryConfig,
  jobVariablesConfig,
  cacheSectionConfig,
  datasetSectionConfig,
  rankConfig,
  trainingSectionConfig,
  clearmlSectionConfig,
  storageSectionConfig
]).pipe(Config.map(([delivery, job, cache, dataset, rank, training, clearml, storage]): JobContextShape => ({
  ...delivery,
  kind: job.kind,
  job,
  jobId: jobIdOf(job),
  ...rank,
  ...training,
  ...dataset,
  ...storage,
  ...cache,
  clearml,
  secrets: processSecrets(storage.externalStorage.secretKey, storage.internalStorage.secretKey, clearml)
})))

/**
 * Plain values for `JobContext.layerTest`; everything but what a test cares about defaults.
 * `job` sets the kind, its variables and the `jobId` (a `jobId` alone means a training job);
 * `taskType` also sets `converterTask`, unless given.
 */
export type JobContextInput = Partial<Omit<JobContextShape, "externalStorage" | "internalStorage" | "basicConfig" | "kind">> & {
  readonly externalStorage?: Partial<StorageEndpoint>
  readonly internalStorage?: Partial<StorageEndpoint>
  readonly basicConfig?: Partial<BasicConfig>
}

/** The context of an environment holding only `CALLBACK_URL` and `JOB_ID` (every other value its default). */
const defaultContext: JobContextShape = Effect.runSync(
  Effect.withConfigProvider(
    Effect.orDie(jobContextConfig),
    ConfigProvider.fromMap(new Map([["CALLBACK_URL", "http://127.0.0.1:8000/api/v1"], ["JOB_ID", "1"]]))
  )
)

/** The job context as resolved from the given plain values on top of the spec's defaults. */
export const makeJobContext = (input: JobContextInput = {}): JobContextShape => {
  const defaults = defaultContext
  const rank = input.rank ?? defaults.rank
  const job: JobVariables = input.job ??
    (input.jobId === undefined ? defaults.job : { kind: "training", jobId: input.jobId, datasetS3Uri: Option.none() })
  const taskType = input.taskType ?? defaults.taskType
  const externalStorage = { ...defaults.externalStorage, ...input.externalStorage }
  const internalStorage = { ...defaults.internalStorage, ...input.internalStorage }
  return {
    ...defaults,
    ...input,
    kind: job.kind,
    job,
    jobId: jobIdOf(job),
    taskType,
    converterTask: input.converterTask ?? Option.fromNullable(normalizeTask(taskType)),
    rank,
    isPrimary: input.isPrimary ?? rank === 0,
    externalStorage,
    internalStorage,
    basicConfig: { ...defaults.basicConfig, ...input.basicConfig },
    secrets: input.secrets ??
      processSecrets(externalStorage.secretKey, internalStorage.secretKey, input.clearml ?? defaults.clearml)
  }
}

/** The job context service: `const ctx = yield* JobContext`. */
export class JobContext extends Context.Tag("trainer-sdk/JobContext")<JobContext, JobContextShape>() {
  /** Every variable the job context composes, as one `Config` (see `jobContextConfig`). */
  static readonly config = jobContextConfig

  /** Reads and validates the environment through `Config` (the current `ConfigProvider`). */
  static readonly layer: Layer.Layer<JobContext, ConfigError> = Layer.effect(
    JobContext,
    Effect.mapError(jobContextConfig, toSdkConfigError)
  )

  /** A job context built from plain values, for tests and examples. */
  static readonly layerTest = (input: JobContextInput = {}): Layer.Layer<JobContext> =>
    Layer.succeed(JobContext, makeJobContext(input))
}
