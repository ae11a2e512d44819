/**
 * The environment, one section per service: each section reads only its own variables
 * through `Config` (so any `ConfigProvider` works) and resolves them with the pure rules of
 * `jobConfig.ts`. A service's `config` is its section; `JobContext` composes all of them;
 * the runner's setup-failure report reads single settings from the same definitions. A
 * rule broken fails with `ConfigError` naming the variable (see `toSdkConfigError`).
 */
import { Config, ConfigError as EffectConfigError, Duration, Either, Option, Redacted } from "effect"
import { ConfigError } from "../Errors.js"
import type {
  ClearMLSettings,
  EvaluationJobVariables,
  ExportJobVariables,
  InferenceJobVariables,
  JobVariables,
  StorageEndpoint,
  TrainingJobVariables
} from "../JobContext.js"
import type { DeliverySettings } from "../Outbox.js"
import {
  atLeast,
  detectJobKind,
  type EnvLookup,
  jobIdVariables,
  parseInteger,
  parseNumber,
  parseS3Uri,
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

/** Every variable that names the job or its kind's inputs. */
export const jobVariableNames = [
  ...jobIdVariables.map((v) => v.variable),
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
const resolveJobIdentity = (env: SectionEnvironment) =>
  Either.flatMap(detectJobKind(env.plain), ({ kind, raw, variable }) =>
    Either.map(parseInteger(variable, raw), (id) => ({ kind, id })))

/**
 * Only the job's kind and id, by the same rule (exactly one id variable, an integer), for a
 * report that must go out when the kind's other variables are unusable.
 */
export const jobIdentityConfig: Config.Config<{ readonly kind: JobVariables["kind"]; readonly id: number }> = envSection(
  jobIdVariables.map((v) => v.variable),
  [],
  (env) => resolveJobIdentity(env)
)

/** The job's id when an id variable is set (by the same rule), none without a job. */
export const jobIdOptionConfig: Config.Config<Option.Option<number>> = envSection(
  jobIdVariables.map((v) => v.variable),
  [],
  (env) =>
    jobIdVariables.some((v) => env.plain(v.variable) !== undefined)
      ? Either.map(resolveJobIdentity(env), (job) => Option.some(job.id))
      : Either.right(Option.none())
)

/** `TASK_TYPE`, trimmed (default `detection`); reported as given. */
export const taskTypeConfig: Config.Config<string> = envSection(
  ["TASK_TYPE"],
  [],
  (env) => Either.right(env.plain("TASK_TYPE")?.trim() ?? "detection")
)

// Storage -----------------------------------------------------------------------------------

/** Where the two S3-compatible stores are and how the client talks to them. */
export interface StorageSection {
  readonly externalStorage: StorageEndpoint
  readonly internalStorage: StorageEndpoint
  readonly region: string
  readonly requestChecksumCalculation: "WHEN_REQUIRED" | "WHEN_SUPPORTED"
}

const storageEndpoint = (env: SectionEnvironment, prefix: "EXTERNAL" | "INTERNAL", bucketVariable: string, defaults: {
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

/** The ClearML section: settings when the three `CLEARML_API_*` variables are set (the default task name follows the job). */
export const clearmlSectionConfig: Config.Config<Option.Option<ClearMLSettings>> = envSection(
  [
    ...jobIdVariables.map((v) => v.variable),
    "CLEARML_API_HOST",
    "CLEARML_API_ACCESS_KEY",
    "CLEARML_WEB_HOST",
    "CLEARML_PROJECT",
    "CLEARML_TASK_NAME",
    "CLEARML_TASK_ID"
  ],
  ["CLEARML_API_SECRET_KEY"],
  (env) => Either.flatMap(resolveJobIdentity(env), (job) => resolveClearML(env, job))
)

/** ClearML settings from their variables (pure); the default task name follows the job (`job-7`, `inference-3`). */
export const resolveClearML = (
  env: SectionEnvironment,
  job: { readonly kind: JobVariables["kind"]; readonly id: number }
): Either.Either<Option.Option<ClearMLSettings>, ConfigError> => {
  const host = env.plain("CLEARML_API_HOST")
  const key = env.plain("CLEARML_API_ACCESS_KEY")
  const secret = env.secret("CLEARML_API_SECRET_KEY")
  if (host === undefined || key === undefined || secret === undefined) return Either.right(Option.none())
  const jobId = job.id
  return Either.map(parseUrl("CLEARML_API_HOST", host), (apiHost) =>
    Option.some<ClearMLSettings>({
      apiHost,
      accessKey: key.trim(),
      secretKey: secret,
      webHost: Option.fromNullable(env.plain("CLEARML_WEB_HOST")),
      project: env.plain("CLEARML_PROJECT") ?? "trainer-sdk",
      taskName: env.plain("CLEARML_TASK_NAME") ?? (job.kind === "training" ? `job-${jobId}` : `${job.kind}-${jobId}`),
      taskId: Option.fromNullable(env.plain("CLEARML_TASK_ID")?.trim())
    }))
}
