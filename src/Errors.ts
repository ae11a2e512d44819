/**
 * The SDK's typed failures, one `Schema.TaggedError` per failure domain, and the
 * classification of any failure into the platform's eight error types.
 *
 * @since 0.1.0
 */
import { Cause, Chunk, Option, Schema } from "effect"
import { field } from "./internal/json.js"

/** A bad or missing environment variable or training-config key. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  reason: Schema.Literal("Missing", "Invalid"),
  /** The environment variable (or `CONFIG.key` JSON path) at fault. */
  variable: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return this.reason === "Missing"
      ? `${this.variable} is required but not set${this.detail ? `: ${this.detail}` : ""}`
      : `${this.variable} is invalid: ${this.detail}`
  }
}

/**
 * A callback to the platform backend that did not arrive: `Rejected` for a 4xx (never
 * retried; status and response text kept), `Transient` once the retry budget for 5xx,
 * network errors and timeouts is spent, `Invalid` when the report itself breaks the
 * wire contract (nothing is sent; `detail` names the field).
 */
export class CallbackError extends Schema.TaggedError<CallbackError>()("CallbackError", {
  reason: Schema.Literal("Rejected", "Transient", "Invalid"),
  /** The request path relative to `CALLBACK_URL`. */
  path: Schema.String,
  status: Schema.optional(Schema.Number),
  body: Schema.optional(Schema.String),
  detail: Schema.String
}) {
  override get message(): string {
    const status = this.status === undefined ? "" : ` (HTTP ${this.status})`
    const body = this.body ? `: ${this.body.slice(0, 500)}` : ""
    return this.reason === "Rejected"
      ? `Backend rejected POST ${this.path}${status}${body}`
      : this.reason === "Invalid"
      ? `Invalid report for POST ${this.path}: ${this.detail}`
      : `Backend unreachable for POST ${this.path}${status}: ${this.detail}`
  }
}

/** Why a storage operation failed. */
export const StorageFailureReason = Schema.Literal(
  "NotFound",
  "AccessDenied",
  "Transport",
  "Timeout",
  "Integrity",
  "PathEscape",
  "InvalidUri",
  "LocalIO"
)
/** @see StorageFailureReason */
export type StorageFailureReason = typeof StorageFailureReason.Type

/** One object-store operation that failed, naming the bucket and key. */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  reason: StorageFailureReason,
  bucket: Schema.String,
  key: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    const where = this.bucket ? `s3://${this.bucket}/${this.key}` : this.key
    return `${this.reason}: ${where}${this.detail ? ` (${this.detail})` : ""}`
  }
}

/** One failed object inside a batch download. */
export const FailedObject = Schema.Struct({
  bucket: Schema.String,
  key: Schema.String,
  reason: StorageFailureReason,
  detail: Schema.String
})
/** @see FailedObject */
export type FailedObject = typeof FailedObject.Type

/** A batch download in which some objects failed: every failed key is listed. */
export class DownloadError extends Schema.TaggedError<DownloadError>()("DownloadError", {
  failures: Schema.Array(FailedObject),
  succeeded: Schema.Number
}) {
  override get message(): string {
    const shown = this.failures.slice(0, 20).map((f) => `s3://${f.bucket}/${f.key} (${f.reason}: ${f.detail})`)
    const more = this.failures.length > 20 ? `, and ${this.failures.length - 20} more` : ""
    return `${this.failures.length} object(s) failed to download: ${shown.join(", ")}${more}`
  }
}

/** A dataset that cannot be read or converted: names the file and, where known, the JSON path. */
export class DatasetError extends Schema.TaggedError<DatasetError>()("DatasetError", {
  reason: Schema.Literal(
    "AnnotationsNotFound",
    "InvalidJson",
    "InvalidShape",
    "MissingImages",
    "UnknownCategory",
    "PathEscape",
    "Duplicate",
    "Empty",
    "EmptySplit",
    "ClassWithoutTrainImages",
    "Unsupported",
    "Io"
  ),
  /** The file at fault. */
  file: Schema.optional(Schema.String),
  /** The JSON path at fault, e.g. `images[3].width`. */
  jsonPath: Schema.optional(Schema.String),
  /** Paths involved (missing images, names looked for). */
  paths: Schema.optional(Schema.Array(Schema.String)),
  detail: Schema.String
}) {
  override get message(): string {
    const at = [this.file, this.jsonPath].filter((s) => s !== undefined && s !== "").join(" at ")
    const paths = this.paths && this.paths.length > 0
      ? ` [${this.paths.slice(0, 20).join(", ")}${this.paths.length > 20 ? `, and ${this.paths.length - 20} more` : ""}]`
      : ""
    return `${this.detail}${at ? ` (${at})` : ""}${paths}`
  }
}

/** A checkpoint that could not be uploaded or downloaded. */
export class CheckpointError extends Schema.TaggedError<CheckpointError>()("CheckpointError", {
  reason: Schema.Literal("NotFound", "Upload", "Download", "Integrity"),
  path: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    return `Checkpoint ${this.reason.toLowerCase()} failed for ${this.path}: ${this.detail}`
  }
}

/**
 * A dataset-cache failure (lock, verification, bookkeeping), naming the entry or path.
 * `NoSpace` (the file system is full even after evicting every unleased entry) and
 * `Unwritable` (a read-only or permission-denied cache directory) are resource errors.
 */
export class CacheError extends Schema.TaggedError<CacheError>()("CacheError", {
  reason: Schema.Literal("InvalidKey", "Lock", "Verify", "Io", "Corrupt", "NoSpace", "Unwritable"),
  key: Schema.optional(Schema.String),
  path: Schema.optional(Schema.String),
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    const at = [this.key && `entry ${this.key}`, this.path].filter(Boolean).join(", ")
    return `Dataset cache ${this.reason}: ${this.detail}${at ? ` (${at})` : ""}`
  }
}

/** The local dev backend could not listen on its address (e.g. the port is already in use). */
export class DevBackendError extends Schema.TaggedError<DevBackendError>()("DevBackendError", {
  host: Schema.String,
  port: Schema.Number,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    return `Dev backend cannot listen on ${this.host}:${this.port}: ${this.detail}`
  }
}

/** The eight error types the platform understands (the bracketed prefix of a failure report). */
export const ErrorType = Schema.Literal(
  "DatasetError",
  "CheckpointError",
  "ConfigError",
  "ResourceError",
  "NetworkError",
  "FrameworkError",
  "ValidationError",
  "UnknownError"
)
/** @see ErrorType */
export type ErrorType = typeof ErrorType.Type

/**
 * A failure a trainer raises itself with an explicit platform error type, e.g.
 * `new TrainerError({ errorType: "FrameworkError", message: "CUDA error: device-side assert" })`.
 */
export class TrainerError extends Schema.TaggedError<TrainerError>()("TrainerError", {
  errorType: ErrorType,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** Every typed error the SDK's services can fail with. */
export type SdkError =
  | ConfigError
  | CallbackError
  | StorageError
  | DownloadError
  | DatasetError
  | CheckpointError
  | CacheError
  | TrainerError

const resourceCodes = new Set(["ENOSPC", "ENOMEM", "EMFILE", "ENFILE", "EDQUOT", "ERR_OUT_OF_MEMORY"])
const networkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET"
])


/** Error codes found on a value and along its `cause` chain (bounded depth). */
const errorCodes = (u: unknown): ReadonlyArray<string> => {
  const codes: Array<string> = []
  let current: unknown = u
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    const code = field(current, "code")
    if (typeof code === "string") codes.push(code)
    const message = field(current, "message")
    if (typeof message === "string") {
      for (const c of resourceCodes) if (message.includes(c)) codes.push(c)
    }
    current = field(current, "cause")
  }
  return codes
}

const isOutOfMemory = (u: unknown): boolean => {
  const message = field(u, "message")
  return u instanceof RangeError && typeof message === "string" &&
      /allocation failed|out of memory|Invalid array length|Invalid typed array length/i.test(message) ||
    typeof message === "string" && /out of memory|heap limit/i.test(message)
}

/** Whether a failure (or anything on its `cause` chain) is a full disk or an exhausted quota (`ENOSPC`, `EDQUOT`). */
export const isNoSpaceError = (error: unknown): boolean => errorCodes(error).some((c) => c === "ENOSPC" || c === "EDQUOT")

/** Classifies one failure or defect value into a platform error type. */
export const classifyError = (error: unknown): ErrorType => {
  const tag = field(error, "_tag")
  switch (tag) {
    case "TrainerError":
      return (error as TrainerError).errorType
    case "ConfigError":
      return "ConfigError"
    case "CallbackError":
      // An `Invalid` report is the trainer's own bug (nothing was sent), not a network fault.
      return (error as CallbackError).reason === "Invalid" ? "UnknownError" : "NetworkError"
    case "StorageError": {
      const reason = (error as StorageError).reason
      return reason === "Transport" || reason === "Timeout" ? "NetworkError" :
        reason === "LocalIO" && errorCodes(error).some((c) => resourceCodes.has(c)) ? "ResourceError" :
        "DatasetError"
    }
    case "CacheError": {
      const reason = (error as CacheError).reason
      if (reason === "NoSpace" || reason === "Unwritable") return "ResourceError"
      return errorCodes(error).some((c) => resourceCodes.has(c)) ? "ResourceError" : "DatasetError"
    }
    case "DownloadError":
    case "DatasetError":
      return errorCodes(error).some((c) => resourceCodes.has(c)) ? "ResourceError" : "DatasetError"
    case "CheckpointError":
      return "CheckpointError"
    case "RequestError":
    case "ResponseError":
      return "NetworkError"
  }
  const codes = errorCodes(error)
  if (isOutOfMemory(error) || codes.some((c) => resourceCodes.has(c))) return "ResourceError"
  if (codes.some((c) => networkCodes.has(c))) return "NetworkError"
  return "UnknownError"
}

/**
 * Classifies a whole `Cause`: its first failure, else its first defect; an
 * interruption alone (the pod being stopped) is a `ResourceError`.
 */
export const classifyCause = (cause: Cause.Cause<unknown>): ErrorType => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return classifyError(failure.value)
  const defects = Cause.defects(cause)
  if (Chunk.isNonEmpty(defects)) return classifyError(Chunk.headNonEmpty(defects))
  return Cause.isInterruptedOnly(cause) ? "ResourceError" : "UnknownError"
}

/** The message of a thrown value: an `Error`'s `message`, anything else as a string. */
export const thrownMessage = (thrown: unknown): string => thrown instanceof Error ? thrown.message : String(thrown)

/** A one-line description of a cause's main failure, for failure reports. */
export const describeCause = (cause: Cause.Cause<unknown>): string => {
  const first = Option.orElse(Cause.failureOption(cause), () => Chunk.head(Cause.defects(cause)))
  if (Option.isNone(first)) return Cause.isInterruptedOnly(cause) ? "Interrupted (the job was stopped)" : "Unknown failure"
  const value = first.value
  const message = field(value, "message")
  if (typeof message === "string" && message !== "") return message
  return typeof value === "string" ? value : String(value)
}

/** The platform's failure message: `[ErrorType] message`. */
export const failureMessage = (cause: Cause.Cause<unknown>): string =>
  `[${classifyCause(cause)}] ${describeCause(cause)}`
