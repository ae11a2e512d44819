/**
 * The job context: everything the platform passes to a trainer through environment
 * variables, read once, validated and typed.
 *
 * @since 0.1.0
 */
import { Config, ConfigError as EffectConfigError, Context, Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import { ConfigError } from "./Errors.js"
import {
  basicConfigVariables,
  detectJobKind,
  type EnvLookup,
  atLeast,
  normalizeTaskType as normalizeTask,
  parseInteger,
  within,
  parseJsonObject,
  parseNumber,
  parseS3Uri,
  resolveAdvancedConfig,
  resolveBasicConfig,
  resolvePrimaryMetric
} from "./internal/jobConfig.js"
import { maskUrlValue } from "./internal/redact.js"

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

/** The resolved job context of a trainer process. */
export interface JobContextShape {
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
}

const plainVariables = [
  "CALLBACK_URL",
  "JOB_ID",
  "INFERENCE_JOB_ID",
  "EXPORT_JOB_ID",
  "TEST_RUN_ID",
  "TRAINING_JOB_ID",
  "CHECKPOINT_S3_URI",
  "IMAGES_S3_URI",
  "DATASET_S3_URI",
  "EXPORT_FORMAT",
  "TASK_TYPE",
  "MODEL_NAME",
  "FRAMEWORK",
  "DATASET_ID",
  "SNAPSHOT_ID",
  "DATASET_VERSION_HASH",
  "EXTERNAL_STORAGE_ENDPOINT",
  "EXTERNAL_STORAGE_ACCESS_KEY",
  "EXTERNAL_BUCKET_DATASETS",
  "INTERNAL_STORAGE_ENDPOINT",
  "INTERNAL_STORAGE_ACCESS_KEY",
  "INTERNAL_BUCKET_CHECKPOINTS",
  "AWS_REGION",
  "AWS_REQUEST_CHECKSUM_CALCULATION",
  "DATASET_CACHE_DIR",
  "DATASET_CACHE_MAX_GB",
  "DATASET_CACHE_STALE_SECONDS",
  "DATASET_CACHE_LOCK_TIMEOUT_SECONDS",
  "CALLBACK_MAX_RETRIES",
  "CALLBACK_RETRY_DELAY",
  "CALLBACK_SHUTDOWN_BUDGET",
  "CALLBACK_OUTBOX_MEMORY_MB",
  "RANK",
  "LOCAL_RANK",
  "CONFIG",
  "ADVANCED_CONFIG",
  "CLEARML_API_HOST",
  "CLEARML_API_ACCESS_KEY",
  "CLEARML_WEB_HOST",
  "CLEARML_PROJECT",
  "CLEARML_TASK_NAME",
  "CLEARML_TASK_ID",
  ...basicConfigVariables
] as const

const secretVariables = [
  "EXTERNAL_STORAGE_SECRET_KEY",
  "INTERNAL_STORAGE_SECRET_KEY",
  "CLEARML_API_SECRET_KEY"
] as const

type SecretName = typeof secretVariables[number]

/** The raw environment as seen through `Config`: plain values and secrets, empties dropped. */
export interface RawEnvironment {
  readonly plain: EnvLookup
  readonly secret: (name: SecretName) => Redacted.Redacted<string> | undefined
}

const nonEmpty = <A>(value: Option.Option<A>, text: (a: A) => string): A | undefined =>
  Option.isSome(value) && text(value.value).trim() !== "" ? value.value : undefined

/** Reads every variable the SDK knows through `Config` (so any `ConfigProvider` works). */
export const rawEnvironment: Config.Config<RawEnvironment> = Config.all([
  Config.all(Object.fromEntries(plainVariables.map((name) => [name, Config.option(Config.string(name))]))),
  Config.all(Object.fromEntries(secretVariables.map((name) => [name, Config.option(Config.redacted(name))])))
]).pipe(Config.map(([plain, secrets]) => ({
  plain: (name: string) => {
    const value = (plain as Record<string, Option.Option<string> | undefined>)[name]
    return value === undefined ? undefined : nonEmpty(value, (s) => s)
  },
  secret: (name: SecretName) => nonEmpty(secrets[name]!, (r) => Redacted.value(r))
})))

const required = (env: RawEnvironment, variable: string): Either.Either<string, ConfigError> => {
  const value = env.plain(variable)
  return value === undefined
    ? Either.left(new ConfigError({ reason: "Missing", variable, detail: "" }))
    : Either.right(value)
}

const optionalWith = <A>(
  env: RawEnvironment,
  variable: string,
  fallback: A,
  parse: (variable: string, raw: string) => Either.Either<A, ConfigError>
): Either.Either<A, ConfigError> => {
  const raw = env.plain(variable)
  return raw === undefined ? Either.right(fallback) : parse(variable, raw)
}

const parseUrl = (variable: string, raw: string): Either.Either<string, ConfigError> => {
  const invalid = () =>
    Either.left(
      new ConfigError({ reason: "Invalid", variable, detail: `expected an http(s) URL, got "${maskUrlValue(raw)}"` })
    )
  try {
    const url = new URL(raw.trim())
    return url.protocol === "http:" || url.protocol === "https:" ? Either.right(raw.trim()) : invalid()
  } catch {
    return invalid()
  }
}

const text = (_variable: string, raw: string) => Either.right(raw.trim())

const storageEndpoint = (env: RawEnvironment, prefix: "EXTERNAL" | "INTERNAL", bucketVariable: string, defaults: {
  endpoint: string
  bucket: string
}) =>
  Either.gen(function*() {
    return {
      endpoint: yield* optionalWith(env, `${prefix}_STORAGE_ENDPOINT`, defaults.endpoint, parseUrl),
      accessKey: yield* optionalWith(env, `${prefix}_STORAGE_ACCESS_KEY`, "minioadmin", text),
      secretKey: env.secret(`${prefix}_STORAGE_SECRET_KEY`) ?? Redacted.make("minioadmin"),
      bucket: yield* optionalWith(env, bucketVariable, defaults.bucket, text)
    } satisfies StorageEndpoint
  })

/** A number of seconds within `[min, max]` as a duration; outside the bounds names the variable. */
const secondsWithin = (variable: string, min: number, max: number) => (value: number): Either.Either<Duration.Duration, ConfigError> =>
  value >= min && value <= max
    ? Either.right(Duration.millis(Math.round(value * 1000)))
    : Either.left(new ConfigError({ reason: "Invalid", variable, detail: `must be between ${min} and ${max} seconds, got ${value}` }))

const optionalInteger = (env: RawEnvironment, variable: string): Either.Either<Option.Option<number>, ConfigError> => {
  const raw = env.plain(variable)
  return raw === undefined ? Either.right(Option.none()) : Either.map(parseInteger(variable, raw), Option.some)
}

const requiredS3Uri = (env: RawEnvironment, variable: string, object: boolean) =>
  Either.flatMap(required(env, variable), (raw) => parseS3Uri(variable, raw, { object }))

/**
 * The kind of job (from which id variable is set) and the kind's own variables, typed: ids
 * are integers, `s3://` URIs parsed; a variable the kind's launcher always sets is required.
 */
export const resolveJobVariables = (env: RawEnvironment): Either.Either<JobVariables, ConfigError> =>
  Either.gen(function*() {
    const { kind, raw, variable } = yield* detectJobKind(env.plain)
    const id = yield* parseInteger(variable, raw)
    switch (kind) {
      case "training": {
        const dataset = env.plain("DATASET_S3_URI")
        return {
          kind,
          jobId: id,
          datasetS3Uri: dataset === undefined
            ? Option.none()
            : Option.some(yield* parseS3Uri("DATASET_S3_URI", dataset))
        } satisfies TrainingJobVariables
      }
      case "inference":
        return {
          kind,
          inferenceJobId: id,
          checkpointS3Uri: yield* requiredS3Uri(env, "CHECKPOINT_S3_URI", true),
          imagesS3Uri: yield* requiredS3Uri(env, "IMAGES_S3_URI", false),
          trainingJobId: yield* optionalInteger(env, "TRAINING_JOB_ID")
        } satisfies InferenceJobVariables
      case "export":
        return {
          kind,
          exportJobId: id,
          trainingJobId: yield* Either.flatMap(required(env, "TRAINING_JOB_ID"), (r) => parseInteger("TRAINING_JOB_ID", r)),
          checkpointS3Uri: yield* requiredS3Uri(env, "CHECKPOINT_S3_URI", true),
          exportFormat: (yield* required(env, "EXPORT_FORMAT")).trim()
        } satisfies ExportJobVariables
      case "evaluation":
        return {
          kind,
          testRunId: id,
          checkpointS3Uri: yield* requiredS3Uri(env, "CHECKPOINT_S3_URI", true),
          datasetS3Uri: yield* requiredS3Uri(env, "DATASET_S3_URI", false),
          trainingJobId: yield* optionalInteger(env, "TRAINING_JOB_ID")
        } satisfies EvaluationJobVariables
    }
  })

/** Resolves and validates the whole job context from the raw environment (pure). */
export const resolveJobContext = (env: RawEnvironment): Either.Either<JobContextShape, ConfigError> =>
  Either.gen(function*() {
    const callbackUrl = yield* required(env, "CALLBACK_URL").pipe(Either.flatMap((raw) => parseUrl("CALLBACK_URL", raw)))
    const job = yield* resolveJobVariables(env)
    const jobId = jobIdOf(job)
    const taskType = env.plain("TASK_TYPE")?.trim() ?? "detection"
    const cacheMaxGb = yield* optionalWith(env, "DATASET_CACHE_MAX_GB", 50, parseNumber).pipe(
      Either.flatMap(atLeast("DATASET_CACHE_MAX_GB", 0))
    )
    const cacheStaleAfter = yield* optionalWith(env, "DATASET_CACHE_STALE_SECONDS", 30, parseNumber).pipe(
      Either.flatMap(secondsWithin("DATASET_CACHE_STALE_SECONDS", 5, 3600))
    )
    const cacheLockTimeout = yield* optionalWith(env, "DATASET_CACHE_LOCK_TIMEOUT_SECONDS", 6 * 3600, parseNumber).pipe(
      Either.flatMap(secondsWithin("DATASET_CACHE_LOCK_TIMEOUT_SECONDS", 1, 86400))
    )
    const callbackMaxRetries = yield* optionalWith(env, "CALLBACK_MAX_RETRIES", 3, parseInteger).pipe(
      Either.flatMap(within("CALLBACK_MAX_RETRIES", 0, 10))
    )
    const callbackRetryDelay = yield* optionalWith(env, "CALLBACK_RETRY_DELAY", 2, parseNumber).pipe(
      Either.flatMap(within("CALLBACK_RETRY_DELAY", 0.01, 60, " seconds"))
    )
    const callbackShutdownBudget = yield* optionalWith(env, "CALLBACK_SHUTDOWN_BUDGET", 25, parseNumber).pipe(
      Either.flatMap(within("CALLBACK_SHUTDOWN_BUDGET", 1, 3600, " seconds"))
    )
    const outboxMemoryMb = yield* optionalWith(env, "CALLBACK_OUTBOX_MEMORY_MB", 4, parseNumber).pipe(
      Either.flatMap(within("CALLBACK_OUTBOX_MEMORY_MB", 0.0625, 1024, " MiB"))
    )
    const rankVariable = env.plain("RANK") !== undefined ? "RANK" : "LOCAL_RANK"
    const rank = yield* optionalWith(env, rankVariable, 0, parseInteger).pipe(Either.flatMap(atLeast(rankVariable, 0)))
    const checksum = yield* optionalWith(
      env,
      "AWS_REQUEST_CHECKSUM_CALCULATION",
      "WHEN_REQUIRED" as const,
      (variable, raw) => {
        const value = raw.trim().toUpperCase()
        return value === "WHEN_REQUIRED" || value === "WHEN_SUPPORTED"
          ? Either.right(value)
          : Either.left(new ConfigError({ reason: "Invalid", variable, detail: `expected WHEN_REQUIRED or WHEN_SUPPORTED, got "${raw}"` }))
      }
    )
    const configJson = yield* optionalWith(env, "CONFIG", {} as Record<string, unknown>, parseJsonObject)
    const basicConfig = yield* resolveBasicConfig(env.plain, configJson)
    const advancedConfig = yield* resolveAdvancedConfig(configJson, env.plain("ADVANCED_CONFIG"))
    const primaryMetric = yield* resolvePrimaryMetric(configJson)
    const clearmlHost = env.plain("CLEARML_API_HOST")
    const clearmlKey = env.plain("CLEARML_API_ACCESS_KEY")
    const clearmlSecret = env.secret("CLEARML_API_SECRET_KEY")
    const clearml = clearmlHost !== undefined && clearmlKey !== undefined && clearmlSecret !== undefined
      ? Option.some<ClearMLSettings>({
        apiHost: yield* parseUrl("CLEARML_API_HOST", clearmlHost),
        accessKey: clearmlKey.trim(),
        secretKey: clearmlSecret,
        webHost: Option.fromNullable(env.plain("CLEARML_WEB_HOST")),
        project: env.plain("CLEARML_PROJECT") ?? "trainer-sdk",
        taskName: env.plain("CLEARML_TASK_NAME") ?? (job.kind === "training" ? `job-${jobId}` : `${job.kind}-${jobId}`),
        taskId: Option.fromNullable(env.plain("CLEARML_TASK_ID")?.trim())
      })
      : Option.none()
    return {
      callbackUrl,
      kind: job.kind,
      job,
      jobId,
      taskType,
      converterTask: Option.fromNullable(normalizeTaskType(taskType)),
      modelName: env.plain("MODEL_NAME") ?? "",
      framework: env.plain("FRAMEWORK") ?? "",
      datasetId: env.plain("DATASET_ID") ?? "",
      snapshotId: env.plain("SNAPSHOT_ID") ?? "",
      datasetVersionHash: env.plain("DATASET_VERSION_HASH") ?? "",
      externalStorage: yield* storageEndpoint(env, "EXTERNAL", "EXTERNAL_BUCKET_DATASETS", {
        endpoint: "http://localhost:9000",
        bucket: "training-datasets"
      }),
      internalStorage: yield* storageEndpoint(env, "INTERNAL", "INTERNAL_BUCKET_CHECKPOINTS", {
        endpoint: "http://localhost:9002",
        bucket: "training-checkpoints"
      }),
      region: env.plain("AWS_REGION") ?? "us-east-1",
      requestChecksumCalculation: checksum,
      cacheDir: env.plain("DATASET_CACHE_DIR") ?? "/tmp/datasets",
      cacheMaxBytes: Math.floor(cacheMaxGb * 1024 ** 3),
      cacheStaleAfter,
      cacheLockTimeout,
      callbackMaxRetries,
      callbackRetryDelay: Duration.millis(Math.round(callbackRetryDelay * 1000)),
      callbackShutdownBudget: Duration.millis(Math.round(callbackShutdownBudget * 1000)),
      outboxMemoryBytes: Math.floor(outboxMemoryMb * 1024 * 1024),
      rank,
      isPrimary: rank === 0,
      basicConfig,
      advancedConfig,
      config: configJson,
      primaryMetric: Option.fromNullable(primaryMetric.name),
      primaryMetricMode: primaryMetric.mode,
      clearml
    } satisfies JobContextShape
  })

/** Turns an Effect `ConfigError` (a provider that failed to read) into the SDK's, naming the path. */
const fromEffectConfigError = (error: EffectConfigError.ConfigError): ConfigError => {
  const first = (e: EffectConfigError.ConfigError): ConfigError => {
    switch (e._op) {
      case "And":
      case "Or":
        return first(e.left)
      case "MissingData":
        return new ConfigError({ reason: "Missing", variable: e.path.join("."), detail: "" })
      default:
        return new ConfigError({
          reason: "Invalid",
          variable: "path" in e ? e.path.join(".") : "environment",
          detail: "message" in e ? e.message : "unreadable"
        })
    }
  }
  return first(error)
}

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

/** The job context as resolved from the given plain values on top of the spec's defaults. */
export const makeJobContext = (input: JobContextInput = {}): JobContextShape => {
  const defaults = Either.getOrThrow(resolveJobContext({
    plain: (name) => ({ CALLBACK_URL: "http://127.0.0.1:8000/api/v1", JOB_ID: "1" } as Record<string, string>)[name],
    secret: () => undefined
  }))
  const rank = input.rank ?? defaults.rank
  const job: JobVariables = input.job ??
    (input.jobId === undefined ? defaults.job : { kind: "training", jobId: input.jobId, datasetS3Uri: Option.none() })
  const taskType = input.taskType ?? defaults.taskType
  return {
    ...defaults,
    ...input,
    kind: job.kind,
    job,
    jobId: jobIdOf(job),
    taskType,
    converterTask: input.converterTask ?? Option.fromNullable(normalizeTaskType(taskType)),
    rank,
    isPrimary: input.isPrimary ?? rank === 0,
    externalStorage: { ...defaults.externalStorage, ...input.externalStorage },
    internalStorage: { ...defaults.internalStorage, ...input.internalStorage },
    basicConfig: { ...defaults.basicConfig, ...input.basicConfig }
  }
}

/** The job context service: `const ctx = yield* JobContext`. */
export class JobContext extends Context.Tag("trainer-sdk/JobContext")<JobContext, JobContextShape>() {
  /** Reads and validates the environment through `Config` (the current `ConfigProvider`). */
  static readonly layer: Layer.Layer<JobContext, ConfigError> = Layer.effect(
    JobContext,
    Effect.flatMap(
      Effect.mapError(rawEnvironment, fromEffectConfigError),
      (env) => Effect.suspend(() => resolveJobContext(env))
    )
  )

  /** A job context built from plain values, for tests and examples. */
  static readonly layerTest = (input: JobContextInput = {}): Layer.Layer<JobContext> =>
    Layer.succeed(JobContext, makeJobContext(input))
}
