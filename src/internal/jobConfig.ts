/**
 * Pure parsing of the job's environment into typed values. Each function names the
 * variable at fault; none ever echoes a secret.
 */
import { Either } from "effect"
import { ConfigError, thrownMessage } from "../Errors.js"
import type { BasicConfig, JobKind, PrimaryMetricMode, S3Uri } from "../JobContext.js"

const invalid = (variable: string, detail: string) => new ConfigError({ reason: "Invalid", variable, detail })

/** The job id variable of each kind (platform-behaviour.md: "How each kind of job is started"). */
export const jobIdVariables: ReadonlyArray<{ readonly kind: JobKind; readonly variable: string }> = [
  { kind: "training", variable: "JOB_ID" },
  { kind: "inference", variable: "INFERENCE_JOB_ID" },
  { kind: "export", variable: "EXPORT_JOB_ID" },
  { kind: "evaluation", variable: "TEST_RUN_ID" }
]

/**
 * The kind of job and its id variable, from which id variable is set: exactly one of
 * `JOB_ID`, `INFERENCE_JOB_ID`, `EXPORT_JOB_ID`, `TEST_RUN_ID` must be.
 */
export const detectJobKind = (
  env: EnvLookup
): Either.Either<{ readonly kind: JobKind; readonly variable: string; readonly raw: string }, ConfigError> => {
  const set = jobIdVariables.flatMap(({ kind, variable }) => {
    const raw = env(variable)
    return raw === undefined ? [] : [{ kind, variable, raw }]
  })
  if (set.length === 1) return Either.right(set[0]!)
  const names = jobIdVariables.map((v) => v.variable).join(", ")
  return set.length === 0
    ? Either.left(
      new ConfigError({
        reason: "Missing",
        variable: "JOB_ID",
        detail: `one of ${names} is required (the job id under the name of its kind)`
      })
    )
    : Either.left(invalid(set.map((s) => s.variable).join("+"), `set only one of ${names}: the variable decides the kind of job`))
}

/**
 * Parses an `s3://bucket/key` URI: the scheme must be `s3`, the bucket a valid S3 bucket
 * name; `object: true` requires a key (a checkpoint names an object, not a bucket).
 */
export const parseS3Uri = (
  variable: string,
  raw: string,
  options: { readonly object?: boolean } = {}
): Either.Either<S3Uri, ConfigError> => {
  const uri = raw.trim()
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(uri)
  if (match === null) return Either.left(invalid(variable, `expected an s3://bucket/key URI, got "${raw}"`))
  const bucket = match[1]!
  const key = match[2] ?? ""
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    return Either.left(invalid(variable, `"${bucket}" is not a valid bucket name (in "${raw}")`))
  }
  if (options.object === true && (key === "" || key.endsWith("/"))) {
    return Either.left(invalid(variable, `expected the URI of an object, got "${raw}" (no object key)`))
  }
  return Either.right({ uri, bucket, key })
}

/** Reads `CONFIG.primary_metric` and `CONFIG.primary_metric_mode` (default `max`). */
export const resolvePrimaryMetric = (
  config: Record<string, unknown>
): Either.Either<{ readonly name: string | undefined; readonly mode: PrimaryMetricMode }, ConfigError> => {
  const name = config["primary_metric"]
  const mode = config["primary_metric_mode"]
  if (name !== undefined && name !== null && typeof name !== "string") {
    return Either.left(invalid("CONFIG.primary_metric", `expected a string, got ${JSON.stringify(name)}`))
  }
  if (mode !== undefined && mode !== null && mode !== "max" && mode !== "min") {
    return Either.left(invalid("CONFIG.primary_metric_mode", `expected "max" or "min", got ${JSON.stringify(mode)}`))
  }
  return Either.right({
    name: typeof name === "string" && name.trim() !== "" ? name.trim() : undefined,
    mode: mode === "min" ? "min" : "max"
  })
}

/** A whole decimal integer written as text ("12", " -1 "), or `undefined` ("1.5", "12abc", "", beyond 2^53). */
export const integerText = (raw: string): number | undefined => {
  const text = raw.trim()
  return /^[+-]?\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : undefined
}

/** Whether a number is a whole number of at least 1 (a count, a size, a concurrency). */
export const isPositiveInteger = (value: number): boolean => Number.isInteger(value) && value >= 1

/** Parses a whole decimal integer ("12", "-1"); rejects "1.5", "12abc", "". */
export const parseInteger = (variable: string, raw: string): Either.Either<number, ConfigError> => {
  const value = integerText(raw)
  return value !== undefined ? Either.right(value) : Either.left(invalid(variable, `expected an integer, got "${raw}"`))
}

/** Parses a finite decimal number. */
export const parseNumber = (variable: string, raw: string): Either.Either<number, ConfigError> => {
  const text = raw.trim()
  const value = Number(text)
  return text !== "" && Number.isFinite(value)
    ? Either.right(value)
    : Either.left(invalid(variable, `expected a number, got "${raw}"`))
}

/** Checks a lower bound on an already-parsed number. */
export const atLeast = (variable: string, min: number) => (value: number): Either.Either<number, ConfigError> =>
  value >= min ? Either.right(value) : Either.left(invalid(variable, `must be >= ${min}, got ${value}`))

/** Checks that an already-parsed number lies within `[min, max]` (the unit is named in the message). */
export const within = (variable: string, min: number, max: number, unit = "") => (value: number): Either.Either<number, ConfigError> =>
  value >= min && value <= max
    ? Either.right(value)
    : Either.left(invalid(variable, `must be between ${min} and ${max}${unit}, got ${value}`))

/** Parses a JSON object; anything else (bad JSON, an array, a scalar) names the variable. */
export const parseJsonObject = (
  variable: string,
  raw: string
): Either.Either<Record<string, unknown>, ConfigError> => {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch (e) {
    return Either.left(invalid(variable, `malformed JSON: ${thrownMessage(e)}`))
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? Either.right(value as Record<string, unknown>)
    : Either.left(invalid(variable, `expected a JSON object, got ${Array.isArray(value) ? "an array" : typeof value}`))
}

type Kind = "int" | "float" | "string" | "bool"

/** One key of the basic config: its direct and legacy variables, its `CONFIG` key, type, default and lower bound. */
export interface BasicKey {
  readonly key: keyof BasicConfig
  readonly direct: string
  readonly configKey: string
  readonly legacy: string
  readonly kind: Kind
  readonly fallback: number | string | boolean
  readonly min?: number
}

/** The resolution table of the basic config, in the spec's order. */
export const basicConfigKeys: ReadonlyArray<BasicKey> = [
  { key: "imgsz", direct: "IMGSZ", configKey: "imgsz", legacy: "CONFIG_IMGSZ", kind: "int", fallback: 640, min: 1 },
  { key: "epochs", direct: "EPOCHS", configKey: "epochs", legacy: "CONFIG_EPOCHS", kind: "int", fallback: 100, min: 1 },
  { key: "batch", direct: "BATCH_SIZE", configKey: "batch", legacy: "CONFIG_BATCH", kind: "int", fallback: 16 },
  { key: "lr0", direct: "LEARNING_RATE", configKey: "learning_rate", legacy: "CONFIG_LR0", kind: "float", fallback: 0.01 },
  { key: "optimizer", direct: "OPTIMIZER", configKey: "optimizer", legacy: "CONFIG_OPTIMIZER", kind: "string", fallback: "auto" },
  { key: "augment", direct: "AUGMENT", configKey: "augment", legacy: "CONFIG_AUGMENT", kind: "bool", fallback: true },
  { key: "device", direct: "DEVICE", configKey: "device", legacy: "CONFIG_DEVICE", kind: "string", fallback: "0" },
  { key: "workers", direct: "WORKERS", configKey: "workers", legacy: "CONFIG_WORKERS", kind: "int", fallback: 8, min: 0 },
  { key: "patience", direct: "PATIENCE", configKey: "patience", legacy: "CONFIG_PATIENCE", kind: "int", fallback: 50, min: 0 }
]

/** Every environment variable the basic config may read. */
export const basicConfigVariables: ReadonlyArray<string> = basicConfigKeys.flatMap((k) => [k.direct, k.legacy])

const parseText = (variable: string, kind: Kind, raw: string): Either.Either<number | string | boolean, ConfigError> => {
  switch (kind) {
    case "int":
      return parseInteger(variable, raw)
    case "float":
      return parseNumber(variable, raw)
    case "bool":
      return Either.right(raw.trim().toLowerCase() === "true")
    case "string":
      return Either.right(raw)
  }
}

const parseJsonValue = (
  variable: string,
  kind: Kind,
  value: unknown
): Either.Either<number | string | boolean, ConfigError> => {
  if (typeof value === "string") return parseText(variable, kind, value)
  switch (kind) {
    case "int":
      return typeof value === "number" && Number.isSafeInteger(value)
        ? Either.right(value)
        : Either.left(invalid(variable, `expected an integer, got ${JSON.stringify(value)}`))
    case "float":
      return typeof value === "number" && Number.isFinite(value)
        ? Either.right(value)
        : Either.left(invalid(variable, `expected a number, got ${JSON.stringify(value)}`))
    case "bool":
      return typeof value === "boolean"
        ? Either.right(value)
        : Either.left(invalid(variable, `expected a boolean, got ${JSON.stringify(value)}`))
    case "string":
      return typeof value === "number" || typeof value === "boolean"
        ? Either.right(String(value))
        : Array.isArray(value) && value.every((v) => typeof v === "number" || typeof v === "string")
        ? Either.right(value.join(","))
        : Either.left(invalid(variable, `expected a string, got ${JSON.stringify(value)}`))
  }
}

/** Looks up an environment variable; empty values count as unset. */
export type EnvLookup = (name: string) => string | undefined

/**
 * One key of the basic config with the priority direct env > `CONFIG` key > legacy env >
 * default, validating the value's type and naming the variable (or `CONFIG.key`) at fault.
 */
export const resolveBasicValue = (
  env: EnvLookup,
  config: Record<string, unknown>,
  k: BasicKey
): Either.Either<number | string | boolean, ConfigError> => {
  const direct = env(k.direct)
  const legacy = env(k.legacy)
  const fromConfig = config[k.configKey]
  const parsed = direct !== undefined
    ? parseText(k.direct, k.kind, direct).pipe(Either.map((v) => [k.direct, v] as const))
    : fromConfig !== undefined && fromConfig !== null
    ? parseJsonValue(`CONFIG.${k.configKey}`, k.kind, fromConfig).pipe(Either.map((v) => [`CONFIG.${k.configKey}`, v] as const))
    : legacy !== undefined
    ? parseText(k.legacy, k.kind, legacy).pipe(Either.map((v) => [k.legacy, v] as const))
    : Either.right(["", k.fallback] as const)
  return Either.flatMap(parsed, ([variable, value]) =>
    k.min !== undefined && typeof value === "number" && value < k.min
      ? Either.left(invalid(variable, `must be >= ${k.min}, got ${value}`))
      : Either.right(value))
}

/** Resolves every key of the basic config (see `resolveBasicValue`), the first failure in the spec's order. */
export const resolveBasicConfig = (
  env: EnvLookup,
  config: Record<string, unknown>
): Either.Either<BasicConfig, ConfigError> => {
  const out: Record<string, number | string | boolean> = {}
  for (const k of basicConfigKeys) {
    const value = resolveBasicValue(env, config, k)
    if (Either.isLeft(value)) return Either.left(value.left)
    out[k.key] = value.right
  }
  return Either.right(out as unknown as BasicConfig)
}

/**
 * Resolves the advanced (framework-specific) config: `CONFIG.advanced_config` when
 * present, else the JSON object in `ADVANCED_CONFIG`, else `{}`.
 */
export const resolveAdvancedConfig = (
  config: Record<string, unknown>,
  advancedRaw: string | undefined
): Either.Either<Record<string, unknown>, ConfigError> => {
  const inConfig = config["advanced_config"]
  if (inConfig !== undefined && inConfig !== null) {
    return typeof inConfig === "object" && !Array.isArray(inConfig)
      ? Either.right(inConfig as Record<string, unknown>)
      : Either.left(invalid("CONFIG.advanced_config", `expected a JSON object, got ${JSON.stringify(inConfig)}`))
  }
  return advancedRaw === undefined ? Either.right({}) : parseJsonObject("ADVANCED_CONFIG", advancedRaw)
}
