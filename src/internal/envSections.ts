/**
 * The environment, one section per service: each section reads only its own variables
 * through `Config` (so any `ConfigProvider` works) and resolves them with the pure rules of
 * `jobConfig.ts`. A service's `config` is its section; `JobContext` composes all of them;
 * the runner's setup-failure report reads single settings from the same definitions. A
 * rule broken fails with `ConfigError` naming the variable (see `toSdkConfigError`).
 */
import {
  Config,
  ConfigError as EffectConfigError,
  type Context,
  Duration,
  Effect,
  Either,
  Layer,
  Option,
  Redacted,
  type Scope
} from "effect"
import { ConfigError } from "../Errors.js"
import type { CallbackSettings } from "../Callback.js"
import type { ClearMLServiceSettings } from "../ClearML.js"
import type {
  ClearMLSettings,
  EvaluationJobVariables,
  ExportJobVariables,
  InferenceJobVariables,
  JobIdentity,
  JobVariables,
  ProcessRank,
  SettingsError,
  StorageEndpoint,
  TrainingJobVariables
} from "../JobContext.js"
import type { LogBufferSettings } from "../LogBuffer.js"
import type { DeliverySettings, ReportOutboxSettings } from "../Outbox.js"
import {
  atLeast,
  basicConfigKeys,
  detectJobKind,
  type EnvLookup,
  jobIdVariables,
  parseInteger,
  parseJsonObject,
  parseNumber,
  parseS3Uri,
  resolveBasicValue,
  within
} from "./jobConfig.js"
import { maskUrlValue } from "./redact.js"

/** Variables of a section as seen through `Config`: plain values and secrets, empty values dropped. */
export interface SectionEnvironment {
  readonly plain: EnvLookup
  readonly secret: (name: string) => Redacted.Redacted<string> | undefined
}

const nonEmpty = <A>(value: Option.Option<A>, text: (a: A) => string): A | undefined =>
  Option.isSome(value) && text(value.value).trim() !== "" ? value.value : undefined

/** Marks the message of a `MissingData` this module raised, so the SDK error keeps its detail. */
const missingPrefix = "trainer-sdk: "

/** One optional `Config` per name, as a record (`Config.all` of no entries is not defined). */
const variables = <A>(names: ReadonlyArray<string>, read: (name: string) => Config.Config<A>): Config.Config<Record<string, A>> =>
  names.length === 0 ? Config.succeed({}) : Config.all(Object.fromEntries(names.map((name) => [name, read(name)])))

/**
 * A section of the environment as a `Config`: reads `plain` and `secret` variables (nothing
 * else), then resolves them with `resolve`; the SDK's `ConfigError` travels as Effect's
 * `MissingData` / `InvalidData` at the variable's path.
 */
export const envSection = <A>(
  plain: ReadonlyArray<string>,
  secret: ReadonlyArray<string>,
  resolve: (env: SectionEnvironment) => Either.Either<A, ConfigError>
): Config.Config<A> =>
  Config.all([
    variables(plain, (name) => Config.option(Config.string(name))),
    variables(secret, (name) => Config.option(Config.redacted(name)))
  ]).pipe(Config.mapOrFail(([plainValues, secretValues]) => {
    const env: SectionEnvironment = {
      plain: (name) => {
        const value = (plainValues as Record<string, Option.Option<string> | undefined>)[name]
        return value === undefined ? undefined : nonEmpty(value, (s) => s)
      },
      secret: (name) => {
        const value = (secretValues as Record<string, Option.Option<Redacted.Redacted<string>> | undefined>)[name]
        return value === undefined ? undefined : nonEmpty(value, (r) => Redacted.value(r))
      }
    }
    return Either.mapLeft(resolve(env), (error) =>
      error.reason === "Missing"
        ? EffectConfigError.MissingData([error.variable], `${missingPrefix}${error.detail}`)
        : EffectConfigError.InvalidData([error.variable], error.detail))
  }))

/** Turns an Effect `ConfigError` (a section's rule, or a provider that failed to read) into the SDK's, naming the variable. */
export const toSdkConfigError = (error: EffectConfigError.ConfigError): ConfigError => {
  const first = (e: EffectConfigError.ConfigError): ConfigError => {
    switch (e._op) {
      case "And":
      case "Or":
        return first(e.left)
      case "MissingData":
        return new ConfigError({
          reason: "Missing",
          variable: e.path.join("."),
          detail: e.message.startsWith(missingPrefix) ? e.message.slice(missingPrefix.length) : ""
        })
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
 * A service's settings given as values (used as they are), or as a `Config` (read through
 * the current `ConfigProvider`; a rule broken fails with the SDK's `ConfigError`).
 */
const resolveSettings = <S>(settings: S | Config.Config<S>): Effect.Effect<S, ConfigError> =>
  Config.isConfig(settings) ? Effect.mapError(settings as Config.Config<S>, toSdkConfigError) : Effect.succeed(settings as S)

/**
 * A service's `layerConfig`: the service `make` builds with `settings` (values, or a `Config`
 * whose broken rule is the layer's `ConfigError`), scoped so that what it acquires is
 * released with the layer.
 */
export const settingsLayer = <I, A, S, R, C extends S | Config.Config<S>>(
  tag: Context.Tag<I, A>,
  settings: C,
  make: (settings: S) => Effect.Effect<A, never, R>
): Layer.Layer<I, SettingsError<C>, Exclude<R, Scope.Scope>> =>
  Layer.scoped(tag, Effect.flatMap(resolveSettings<S>(settings), make)) as Layer.Layer<I, SettingsError<C>, Exclude<R, Scope.Scope>>

// Single-variable rules --------------------------------------------------------------------

/** A required variable. */
export const required = (env: SectionEnvironment, variable: string): Either.Either<string, ConfigError> => {
  const value = env.plain(variable)
  return value === undefined
    ? Either.left(new ConfigError({ reason: "Missing", variable, detail: "" }))
    : Either.right(value)
}

/** An optional variable parsed by `parse`, `fallback` when unset. */
export const optionalWith = <A>(
  env: SectionEnvironment,
  variable: string,
  fallback: A,
  parse: (variable: string, raw: string) => Either.Either<A, ConfigError>
): Either.Either<A, ConfigError> => {
  const raw = env.plain(variable)
  return raw === undefined ? Either.right(fallback) : parse(variable, raw)
}

/** An http(s) URL (trimmed); the message masks credentials in the value. */
export const parseUrl = (variable: string, raw: string): Either.Either<string, ConfigError> => {
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

/** A number of seconds within `[min, max]` as a duration; outside the bounds names the variable. */
const secondsWithin = (variable: string, min: number, max: number) => (value: number): Either.Either<Duration.Duration, ConfigError> =>
  value >= min && value <= max
    ? Either.right(Duration.millis(Math.round(value * 1000)))
    : Either.left(new ConfigError({ reason: "Invalid", variable, detail: `must be between ${min} and ${max} seconds, got ${value}` }))

const optionalInteger = (env: SectionEnvironment, variable: string): Either.Either<Option.Option<number>, ConfigError> => {
  const raw = env.plain(variable)
  return raw === undefined ? Either.right(Option.none()) : Either.map(parseInteger(variable, raw), Option.some)
}

const requiredS3Uri = (env: SectionEnvironment, variable: string, object: boolean) =>
  Either.flatMap(required(env, variable), (raw) => parseS3Uri(variable, raw, { object }))

// Report delivery (Callback, LogBuffer, ReportOutbox) --------------------------------------

/** `CALLBACK_URL` (required, http(s)). */
export const callbackUrlConfig: Config.Config<string> = envSection(
  ["CALLBACK_URL"],
  [],
  (env) => Either.flatMap(required(env, "CALLBACK_URL"), (raw) => parseUrl("CALLBACK_URL", raw))
)

/** `CALLBACK_MAX_RETRIES`: retries after the first attempt, 0 to 10 (default 3). */
export const callbackMaxRetriesConfig: Config.Config<number> = envSection(
  ["CALLBACK_MAX_RETRIES"],
  [],
  (env) => optionalWith(env, "CALLBACK_MAX_RETRIES", 3, parseInteger).pipe(Either.flatMap(within("CALLBACK_MAX_RETRIES", 0, 10)))
)

/** `CALLBACK_RETRY_DELAY`: the base backoff, 0.01 to 60 seconds (default 2). */
export const callbackRetryDelayConfig: Config.Config<Duration.Duration> = envSection(
  ["CALLBACK_RETRY_DELAY"],
  [],
  (env) =>
    optionalWith(env, "CALLBACK_RETRY_DELAY", 2, parseNumber).pipe(
      Either.flatMap(within("CALLBACK_RETRY_DELAY", 0.01, 60, " seconds")),
      Either.map((seconds) => Duration.millis(Math.round(seconds * 1000)))
    )
)

/** `CALLBACK_SHUTDOWN_BUDGET`: time for the outcome and the final deliveries, 1 to 3600 seconds (default 25). */
export const callbackShutdownBudgetConfig: Config.Config<Duration.Duration> = envSection(
  ["CALLBACK_SHUTDOWN_BUDGET"],
  [],
  (env) =>
    optionalWith(env, "CALLBACK_SHUTDOWN_BUDGET", 25, parseNumber).pipe(
      Either.flatMap(within("CALLBACK_SHUTDOWN_BUDGET", 1, 3600, " seconds")),
      Either.map((seconds) => Duration.millis(Math.round(seconds * 1000)))
    )
)

/** `CALLBACK_OUTBOX_MEMORY_MB`: report bytes held in memory before spilling, 1/16 to 1024 MiB (default 4). */
export const outboxMemoryBytesConfig: Config.Config<number> = envSection(
  ["CALLBACK_OUTBOX_MEMORY_MB"],
  [],
  (env) =>
    optionalWith(env, "CALLBACK_OUTBOX_MEMORY_MB", 4, parseNumber).pipe(
      Either.flatMap(within("CALLBACK_OUTBOX_MEMORY_MB", 0.0625, 1024, " MiB")),
      Either.map((mb) => Math.floor(mb * 1024 * 1024))
    )
)

/** The delivery section: every `CALLBACK_*` variable. */
export const deliveryConfig: Config.Config<DeliverySettings> = Config.all({
  callbackUrl: callbackUrlConfig,
  callbackMaxRetries: callbackMaxRetriesConfig,
  callbackRetryDelay: callbackRetryDelayConfig,
  callbackShutdownBudget: callbackShutdownBudgetConfig,
  outboxMemoryBytes: outboxMemoryBytesConfig
})

// The job's kind and id ---------------------------------------------------------------------

/** The job id variables, read by every section that needs the job's identity. */
const jobIdVariableNames = jobIdVariables.map((v) => v.variable)

/** Every variable that names the job or its kind's inputs. */
export const jobVariableNames = [
  ...jobIdVariableNames,
  "TRAINING_JOB_ID",
  "CHECKPOINT_S3_URI",
  "IMAGES_S3_URI",
  "DATASET_S3_URI",
  "EXPORT_FORMAT"
] as const

/**
 * The kind of job (from which id variable is set) and the kind's own variables, typed: ids
 * are integers, `s3://` URIs parsed; a variable the kind's launcher always sets is required.
 */
export const resolveJobVariables = (env: SectionEnvironment): Either.Either<JobVariables, ConfigError> =>
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

/** The job's kind and its own variables (see `resolveJobVariables`). */
export const jobVariablesConfig: Config.Config<JobVariables> = envSection(jobVariableNames, [], resolveJobVariables)

/** The job's kind and id (exactly one id variable, an integer), for rules that only need those. */
const resolveJobIdentity = (env: SectionEnvironment): Either.Either<JobIdentity, ConfigError> =>
  Either.flatMap(detectJobKind(env.plain), ({ kind, raw, variable }) =>
    Either.map(parseInteger(variable, raw), (jobId) => ({ kind, jobId })))

/**
 * Only the job's kind and id, by the same rule (exactly one id variable, an integer): what
 * the services that address the job need, and a setup failure report when the kind's other
 * variables are unusable.
 */
export const jobIdentityConfig: Config.Config<JobIdentity> = envSection(jobIdVariableNames, [], resolveJobIdentity)

/** The job's id when an id variable is set (by the same rule), none without a job. */
export const jobIdOptionConfig: Config.Config<Option.Option<number>> = envSection(
  jobIdVariableNames,
  [],
  (env) =>
    jobIdVariables.some((v) => env.plain(v.variable) !== undefined)
      ? Either.map(resolveJobIdentity(env), (job) => Option.some(job.jobId))
      : Either.right(Option.none())
)

/** `TASK_TYPE`, trimmed (default `detection`); reported as given. */
export const resolveTaskType = (env: SectionEnvironment): string => env.plain("TASK_TYPE")?.trim() ?? "detection"

/** `TASK_TYPE` through `Config` (see `resolveTaskType`). */
export const taskTypeConfig: Config.Config<string> = envSection(["TASK_TYPE"], [], (env) => Either.right(resolveTaskType(env)))

/** `RANK`, else `LOCAL_RANK`, else 0 (an integer >= 0); only rank 0 talks to the backend and ClearML. */
export const rankConfig: Config.Config<ProcessRank> = envSection(
  ["RANK", "LOCAL_RANK"],
  [],
  (env) => {
    const variable = env.plain("RANK") !== undefined ? "RANK" : "LOCAL_RANK"
    return optionalWith(env, variable, 0, parseInteger).pipe(
      Either.flatMap(atLeast(variable, 0)),
      Either.map((rank) => ({ rank, isPrimary: rank === 0 }))
    )
  }
)

/** The basic config's `epochs` key (see `basicConfigKeys`). */
const epochsKey = basicConfigKeys.find((k) => k.key === "epochs")!

/**
 * The planned number of epochs by the basic config's rule (`EPOCHS` > `CONFIG.epochs` >
 * `CONFIG_EPOCHS` > 100), reading only those variables.
 */
const plannedEpochsConfig: Config.Config<number> = envSection(
  [epochsKey.direct, epochsKey.legacy, "CONFIG"],
  [],
  (env) =>
    Either.flatMap(
      optionalWith(env, "CONFIG", {} as Record<string, unknown>, parseJsonObject),
      (config) => resolveBasicValue(env.plain, config, epochsKey) as Either.Either<number, ConfigError>
    )
)

/** The callback section: the job's identity, the rank, `TASK_TYPE` and the planned epochs. */
export const callbackSectionConfig: Config.Config<CallbackSettings> = Config.all([
  jobIdentityConfig,
  rankConfig,
  taskTypeConfig,
  plannedEpochsConfig
]).pipe(Config.map(([job, rank, taskType, epochs]) => ({ ...job, isPrimary: rank.isPrimary, taskType, basicConfig: { epochs } })))

/** The log buffer section: the job's identity and the rank. */
export const logBufferSectionConfig: Config.Config<LogBufferSettings> = Config.all([jobIdentityConfig, rankConfig]).pipe(
  Config.map(([job, rank]) => ({ ...job, isPrimary: rank.isPrimary }))
)

// Storage -----------------------------------------------------------------------------------

/** Where the two S3-compatible stores are and how the client talks to them. */
export interface StorageSection {
  readonly externalStorage: StorageEndpoint
  readonly internalStorage: StorageEndpoint
  readonly region: string
  readonly requestChecksumCalculation: "WHEN_REQUIRED" | "WHEN_SUPPORTED"
}

/** The storage secret key of an endpoint whose `*_SECRET_KEY` is unset. */
export const defaultStorageSecretKey: Redacted.Redacted<string> = Redacted.make("minioadmin")

const storageEndpoint = (env: SectionEnvironment, prefix: "EXTERNAL" | "INTERNAL", bucketVariable: string, defaults: {
  endpoint: string
  bucket: string
}) =>
  Either.gen(function*() {
    return {
      endpoint: yield* optionalWith(env, `${prefix}_STORAGE_ENDPOINT`, defaults.endpoint, parseUrl),
      accessKey: yield* optionalWith(env, `${prefix}_STORAGE_ACCESS_KEY`, "minioadmin", text),
      secretKey: env.secret(`${prefix}_STORAGE_SECRET_KEY`) ?? defaultStorageSecretKey,
      bucket: yield* optionalWith(env, bucketVariable, defaults.bucket, text)
    } satisfies StorageEndpoint
  })

/** The storage section: `EXTERNAL_*`, `INTERNAL_*`, `AWS_REGION`, `AWS_REQUEST_CHECKSUM_CALCULATION`. */
export const storageSectionConfig: Config.Config<StorageSection> = envSection(
  [
    "EXTERNAL_STORAGE_ENDPOINT",
    "EXTERNAL_STORAGE_ACCESS_KEY",
    "EXTERNAL_BUCKET_DATASETS",
    "INTERNAL_STORAGE_ENDPOINT",
    "INTERNAL_STORAGE_ACCESS_KEY",
    "INTERNAL_BUCKET_CHECKPOINTS",
    "AWS_REGION",
    "AWS_REQUEST_CHECKSUM_CALCULATION"
  ],
  ["EXTERNAL_STORAGE_SECRET_KEY", "INTERNAL_STORAGE_SECRET_KEY"],
  (env) =>
    Either.gen(function*() {
      const requestChecksumCalculation = yield* optionalWith(
        env,
        "AWS_REQUEST_CHECKSUM_CALCULATION",
        "WHEN_REQUIRED" as const,
        (variable, raw) => {
          const value = raw.trim().toUpperCase()
          return value === "WHEN_REQUIRED" || value === "WHEN_SUPPORTED"
            ? Either.right(value)
            : Either.left(
              new ConfigError({ reason: "Invalid", variable, detail: `expected WHEN_REQUIRED or WHEN_SUPPORTED, got "${raw}"` })
            )
        }
      )
      return {
        externalStorage: yield* storageEndpoint(env, "EXTERNAL", "EXTERNAL_BUCKET_DATASETS", {
          endpoint: "http://localhost:9000",
          bucket: "training-datasets"
        }),
        internalStorage: yield* storageEndpoint(env, "INTERNAL", "INTERNAL_BUCKET_CHECKPOINTS", {
          endpoint: "http://localhost:9002",
          bucket: "training-checkpoints"
        }),
        region: env.plain("AWS_REGION") ?? "us-east-1",
        requestChecksumCalculation
      } satisfies StorageSection
    })
)

// Dataset cache -----------------------------------------------------------------------------

/** Where the node-wide dataset cache is and its limits. */
export interface CacheSection {
  readonly cacheDir: string
  readonly cacheMaxBytes: number
  readonly cacheStaleAfter: Duration.Duration
  readonly cacheLockTimeout: Duration.Duration
}

/** The cache section: `DATASET_CACHE_DIR`, `_MAX_GB`, `_STALE_SECONDS`, `_LOCK_TIMEOUT_SECONDS`. */
export const cacheSectionConfig: Config.Config<CacheSection> = envSection(
  ["DATASET_CACHE_DIR", "DATASET_CACHE_MAX_GB", "DATASET_CACHE_STALE_SECONDS", "DATASET_CACHE_LOCK_TIMEOUT_SECONDS"],
  [],
  (env) =>
    Either.gen(function*() {
      const cacheMaxGb = yield* optionalWith(env, "DATASET_CACHE_MAX_GB", 50, parseNumber).pipe(
        Either.flatMap(atLeast("DATASET_CACHE_MAX_GB", 0))
      )
      return {
        cacheDir: env.plain("DATASET_CACHE_DIR") ?? "/tmp/datasets",
        cacheMaxBytes: Math.floor(cacheMaxGb * 1024 ** 3),
        cacheStaleAfter: yield* optionalWith(env, "DATASET_CACHE_STALE_SECONDS", 30, parseNumber).pipe(
          Either.flatMap(secondsWithin("DATASET_CACHE_STALE_SECONDS", 5, 3600))
        ),
        cacheLockTimeout: yield* optionalWith(env, "DATASET_CACHE_LOCK_TIMEOUT_SECONDS", 6 * 3600, parseNumber).pipe(
          Either.flatMap(secondsWithin("DATASET_CACHE_LOCK_TIMEOUT_SECONDS", 1, 86400))
        )
      } satisfies CacheSection
    })
)

/** The dataset the job names (`DATASET_ID`, `SNAPSHOT_ID`, `DATASET_VERSION_HASH`; empty when unset). */
export interface DatasetSection {
  readonly datasetId: string
  readonly snapshotId: string
  readonly datasetVersionHash: string
}

/** The job's dataset ids. */
export const datasetSectionConfig: Config.Config<DatasetSection> = envSection(
  ["DATASET_ID", "SNAPSHOT_ID", "DATASET_VERSION_HASH"],
  [],
  (env) =>
    Either.right({
      datasetId: env.plain("DATASET_ID") ?? "",
      snapshotId: env.plain("SNAPSHOT_ID") ?? "",
      datasetVersionHash: env.plain("DATASET_VERSION_HASH") ?? ""
    })
)

// ClearML -----------------------------------------------------------------------------------

/** Whether ClearML tracking is on: the three `CLEARML_API_*` variables are set. */
const clearmlEnabled = (env: SectionEnvironment): boolean =>
  env.plain("CLEARML_API_HOST") !== undefined && env.plain("CLEARML_API_ACCESS_KEY") !== undefined &&
  env.secret("CLEARML_API_SECRET_KEY") !== undefined

/**
 * ClearML settings from their variables (pure), `None` unless tracking is on; the default
 * task name follows the job (`job-7`, `inference-3`), so only then is the job's id read.
 */
const resolveClearML = (env: SectionEnvironment): Either.Either<Option.Option<ClearMLSettings>, ConfigError> =>
  !clearmlEnabled(env) ? Either.right(Option.none()) : Either.gen(function*() {
    const apiHost = yield* parseUrl("CLEARML_API_HOST", env.plain("CLEARML_API_HOST")!)
    const taskName = env.plain("CLEARML_TASK_NAME") ??
      (yield* Either.map(resolveJobIdentity(env), (job) => `${job.kind === "training" ? "job" : job.kind}-${job.jobId}`))
    return Option.some<ClearMLSettings>({
      apiHost,
      accessKey: env.plain("CLEARML_API_ACCESS_KEY")!.trim(),
      secretKey: env.secret("CLEARML_API_SECRET_KEY")!,
      webHost: Option.fromNullable(env.plain("CLEARML_WEB_HOST")),
      project: env.plain("CLEARML_PROJECT") ?? "trainer-sdk",
      taskName,
      taskId: Option.fromNullable(env.plain("CLEARML_TASK_ID")?.trim())
    })
  })

/** The ClearML variables; the job id variables only for the default task name. */
const clearmlVariables = [
  ...jobIdVariableNames,
  "CLEARML_API_HOST",
  "CLEARML_API_ACCESS_KEY",
  "CLEARML_WEB_HOST",
  "CLEARML_PROJECT",
  "CLEARML_TASK_NAME",
  "CLEARML_TASK_ID"
]

/** The ClearML section: settings when the three `CLEARML_API_*` variables are set (the default task name follows the job). */
export const clearmlSectionConfig: Config.Config<Option.Option<ClearMLSettings>> = envSection(
  clearmlVariables,
  ["CLEARML_API_SECRET_KEY"],
  resolveClearML
)

/** What the live ClearML service reads: its section and the rank. */
export const clearmlServiceConfig: Config.Config<ClearMLServiceSettings> = Config.all([clearmlSectionConfig, rankConfig]).pipe(
  Config.map(([clearml, rank]) => ({ clearml, isPrimary: rank.isPrimary }))
)

// Secrets and the report outbox --------------------------------------------------------------

/**
 * The secret values that must never leave the process: both storage secret keys (their
 * defaults when unset) and the ClearML secret when tracking is on.
 */
export const processSecrets = (
  externalSecretKey: Redacted.Redacted<string>,
  internalSecretKey: Redacted.Redacted<string>,
  clearml: Option.Option<Pick<ClearMLSettings, "secretKey">>
): ReadonlyArray<Redacted.Redacted<string>> => [
  externalSecretKey,
  internalSecretKey,
  ...(Option.isSome(clearml) ? [clearml.value.secretKey] : [])
]

/** The secrets section (see `processSecrets`): reads the secret variables, and whether ClearML is on. */
export const secretsConfig: Config.Config<ReadonlyArray<Redacted.Redacted<string>>> = envSection(
  ["CLEARML_API_HOST", "CLEARML_API_ACCESS_KEY"],
  ["EXTERNAL_STORAGE_SECRET_KEY", "INTERNAL_STORAGE_SECRET_KEY", "CLEARML_API_SECRET_KEY"],
  (env) =>
    Either.right(processSecrets(
      env.secret("EXTERNAL_STORAGE_SECRET_KEY") ?? defaultStorageSecretKey,
      env.secret("INTERNAL_STORAGE_SECRET_KEY") ?? defaultStorageSecretKey,
      clearmlEnabled(env) ? Option.some({ secretKey: env.secret("CLEARML_API_SECRET_KEY")! }) : Option.none()
    ))
)

/** The report outbox section: delivery, the job's identity, the rank and the secrets to mask. */
export const reportOutboxConfig: Config.Config<ReportOutboxSettings> = Config.all([
  deliveryConfig,
  jobIdentityConfig,
  rankConfig,
  secretsConfig
]).pipe(Config.map(([delivery, job, rank, secrets]) => ({ ...delivery, ...job, isPrimary: rank.isPrimary, secrets })))
