/**
 * The download machinery behind `Storage`: the pure planning of the four dataset flows
 * (which object goes to which local path, with every path checked before anything is
 * written) and one executor that runs a plan with bounded concurrency, per-object retry,
 * temp file + rename, progress, and all failures gathered into one `DownloadError`.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Effect, Either, Schedule } from "effect"
import { DatasetError, DownloadError, type FailedObject, StorageError } from "../Errors.js"
import type { ObjectStore } from "../ObjectStore.js"
import { temporaryToken } from "./files.js"
import { isRecord } from "./json.js"
import { resolveInside, temporarySibling } from "./safeName.js"
import type { DownloadProgress, S3Location } from "../Storage.js"

/** Parses `s3://bucket/key` strictly: the scheme, a non-empty bucket and a non-empty key. */
export const parseS3Uri = (uri: string): Either.Either<S3Location, StorageError> => {
  const invalid = (detail: string) => Either.left(new StorageError({ reason: "InvalidUri", bucket: "", key: uri, detail }))
  if (!uri.startsWith("s3://")) return invalid("expected s3://bucket/key")
  const rest = uri.slice("s3://".length)
  const slash = rest.indexOf("/")
  if (slash < 0) return invalid("no key after the bucket")
  const bucket = rest.slice(0, slash)
  const key = rest.slice(slash + 1)
  if (bucket === "") return invalid("empty bucket")
  if (key === "") return invalid("empty key")
  if (!/^[A-Za-z0-9][A-Za-z0-9.\-_]*$/.test(bucket)) return invalid(`invalid bucket name "${bucket}"`)
  return Either.right({ bucket, key })
}


/** `images[].file_name` of a COCO-style annotation document, deduplicated in order. */
export const annotationImageNames = (doc: unknown, file: string): Either.Either<ReadonlyArray<string>, DatasetError> => {
  if (!isRecord(doc)) {
    return Either.left(new DatasetError({ reason: "InvalidShape", file, jsonPath: "$", detail: "expected a JSON object" }))
  }
  const images = doc["images"]
  if (!Array.isArray(images)) {
    return Either.left(new DatasetError({ reason: "InvalidShape", file, jsonPath: "images", detail: "expected an array of images" }))
  }
  const names: Array<string> = []
  const seen = new Set<string>()
  for (let i = 0; i < images.length; i++) {
    const name = isRecord(images[i]) ? (images[i] as Record<string, unknown>)["file_name"] : undefined
    if (typeof name !== "string" || name === "") {
      return Either.left(
        new DatasetError({ reason: "InvalidShape", file, jsonPath: `images[${i}].file_name`, detail: "expected a file name" })
      )
    }
    if (!seen.has(name)) {
      seen.add(name)
      names.push(name)
    }
  }
  return Either.right(names)
}

/** `storage_info.image_root` when present (non-empty string), with a trailing `/`. */
export const annotationImageRoot = (doc: unknown): string | undefined => {
  const info = isRecord(doc) ? doc["storage_info"] : undefined
  const root = isRecord(info) ? info["image_root"] : undefined
  if (typeof root !== "string" || root === "") return undefined
  return root.endsWith("/") ? root : `${root}/`
}

/** One LabelMe pair from `data_summary`. */
export interface LabelMeEntry {
  readonly image: S3Location
  readonly label: S3Location | undefined
}

const uriAt = (value: unknown, jsonPath: string): Either.Either<S3Location, DatasetError> =>
  typeof value === "string"
    ? Either.mapLeft(parseS3Uri(value), (e) =>
      new DatasetError({ reason: "InvalidShape", jsonPath, detail: `expected an s3://bucket/key URI: ${e.message}` }))
    : Either.left(new DatasetError({ reason: "InvalidShape", jsonPath, detail: "expected an s3:// URI string" }))

/** The entries of LabelMe annotation data; an empty or missing `data_summary` is an error. */
export const labelMeEntries = (data: unknown): Either.Either<ReadonlyArray<LabelMeEntry>, DatasetError> =>
  Either.gen(function*() {
    const summary = isRecord(data) ? data["data_summary"] : undefined
    if (!Array.isArray(summary) || summary.length === 0) {
      return yield* Either.left(
        new DatasetError({
          reason: "Empty",
          jsonPath: "data_summary",
          detail: summary === undefined ? "annotation data has no data_summary" : "data_summary must be a non-empty array"
        })
      )
    }
    const entries: Array<LabelMeEntry> = []
    for (let i = 0; i < summary.length; i++) {
      const item: unknown = summary[i]
      if (!isRecord(item)) {
        return yield* Either.left(
          new DatasetError({ reason: "InvalidShape", jsonPath: `data_summary[${i}]`, detail: "expected an object" })
        )
      }
      const image = yield* uriAt(item["img_path"], `data_summary[${i}].img_path`)
      const label = item["label_path"] === undefined || item["label_path"] === null
        ? undefined
        : yield* uriAt(item["label_path"], `data_summary[${i}].label_path`)
      entries.push({ image, label })
    }
    return entries
  })

/** The `images[].file_name` URIs of COCO annotation data. */
export const cocoImageUris = (data: unknown): Either.Either<ReadonlyArray<S3Location>, DatasetError> =>
  Either.flatMap(annotationImageNames(data, "annotation data"), (names) =>
    Either.all(names.map((name, i) => uriAt(name, `images[${i}].file_name`))))

/** COCO annotation data with every `images[].file_name` URI replaced by its local relative path. */
export const rewriteCocoFileNames = (data: Record<string, unknown>, localName: (uri: string) => string): Record<string, unknown> => ({
  ...data,
  images: (data["images"] as ReadonlyArray<Record<string, unknown>>).map((image) => ({
    ...image,
    file_name: localName(image["file_name"] as string)
  }))
})

/** One object to fetch and the absolute local path it must end up at. */
export interface DownloadItem {
  readonly store: ObjectStore
  readonly key: string
  readonly dest: string
  /** Size when known from a listing (for progress totals). */
  readonly size?: number
}

/** A name that would escape the destination, or two objects aiming at one path. */
interface RejectedName {
  readonly name: string
  readonly why: string
}

/** Turns `(object, relative local name)` pairs into items under `destDir`, rejecting escapes and collisions. */
export const planItems = (
  destDir: string,
  path: Path.Path,
  pairs: ReadonlyArray<{ readonly store: ObjectStore; readonly key: string; readonly relative: string; readonly size?: number }>
): Either.Either<ReadonlyArray<DownloadItem>, DatasetError> => {
  const root = path.resolve(destDir)
  const rejected: Array<RejectedName & { readonly collision: boolean }> = []
  const byDest = new Map<string, DownloadItem>()
  for (const pair of pairs) {
    const resolved = resolveInside(path, root, pair.relative)
    if (Either.isLeft(resolved)) {
      rejected.push({ name: pair.relative, why: resolved.left, collision: false })
      continue
    }
    const dest = resolved.right
    const previous = byDest.get(dest)
    if (previous && (previous.key !== pair.key || previous.store.bucket !== pair.store.bucket)) {
      rejected.push({
        name: pair.relative,
        why: `both s3://${previous.store.bucket}/${previous.key} and s3://${pair.store.bucket}/${pair.key} map to it`,
        collision: true
      })
      continue
    }
    byDest.set(dest, { store: pair.store, key: pair.key, dest, ...(pair.size === undefined ? {} : { size: pair.size }) })
  }
  if (rejected.length > 0) {
    return Either.left(
      new DatasetError({
        reason: rejected.every((r) => r.collision) ? "InvalidShape" : "PathEscape",
        file: root,
        paths: rejected.map((r) => `${r.name} (${r.why})`),
        detail: `${rejected.length} file name(s) rejected, nothing was written`
      })
    )
  }
  return Either.right([...byDest.values()])
}

/** What the executor needs besides the items. */
export interface ExecutorSettings {
  readonly concurrency: number
  /** Retry policy per object, applied to transient failures only. */
  readonly retry: Schedule.Schedule<unknown, StorageError>
  readonly onProgress?: (progress: DownloadProgress) => Effect.Effect<void>
  /** Files and bytes already done by an earlier phase of the same flow (progress offsets). */
  readonly offset?: { readonly files: number; readonly bytes: number; readonly totalFiles: number; readonly totalBytes: number }
}

/** Files and bytes a batch wrote. */
export interface BatchResult {
  readonly files: number
  readonly bytes: number
}

/** Whether a storage failure is worth another attempt (a short body counts as `Transport`). */
export const isTransientStorageError = (error: StorageError): boolean =>
  error.reason === "Transport" || error.reason === "Timeout"

/** Maps a local file-system failure on `path` to a `StorageError` with reason `LocalIO`. */
export const localIO = (path: string, detail: string) => (cause: unknown) =>
  new StorageError({ reason: "LocalIO", bucket: "", key: path, detail, cause })

/**
 * Runs a plan: parent directories first, then every object into `dest.tmp-<random>` and
 * renamed into place, `concurrency` at a time, each retried on transient failures. Temp
 * files of failed or interrupted objects are removed. Fails with one `DownloadError`
 * listing every failed object, after all others have completed; except that a local write
 * failure (`ENOSPC`, a read-only or unwritable directory) stops the batch at once with a
 * `LocalIO` error naming the destination path: the next file would fail the same way.
 */
export const runDownloads = (
  items: ReadonlyArray<DownloadItem>,
  settings: ExecutorSettings
): Effect.Effect<BatchResult, DownloadError | StorageError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dirs = [...new Set(items.map((item) => path.dirname(item.dest)))]
    yield* Effect.forEach(
      dirs,
      (dir) => Effect.mapError(fs.makeDirectory(dir, { recursive: true }), localIO(dir, "cannot create directory")),
      { concurrency: 8, discard: true }
    )
    const offset = settings.offset ?? { files: 0, bytes: 0, totalFiles: 0, totalBytes: 0 }
    let files = offset.files
    let bytes = offset.bytes
    let totalBytes = offset.totalBytes + items.reduce((sum, item) => sum + (item.size ?? 0), 0)
    const totalFiles = offset.totalFiles + items.length
    const onProgress = settings.onProgress

    const fetchOne = (item: DownloadItem): Effect.Effect<number, StorageError> =>
      Effect.flatMap(temporaryToken, (token) => {
        const tmp = temporarySibling(path, item.dest, token)
        return item.store.getToFile(item.key, tmp, item.size === undefined ? {} : { size: item.size }).pipe(
          Effect.retry({ schedule: settings.retry, while: isTransientStorageError }),
          Effect.mapError((error) =>
            error.reason === "LocalIO"
              ? new StorageError({
                reason: "LocalIO",
                bucket: "",
                key: item.dest,
                detail: `cannot write the download of s3://${item.store.bucket}/${item.key}: ${error.detail}`,
                ...(error.cause === undefined ? {} : { cause: error.cause })
              })
              : error
          ),
          Effect.tap(() => Effect.mapError(fs.rename(tmp, item.dest), localIO(item.dest, `cannot rename ${tmp}`))),
          Effect.onError(() => Effect.ignore(fs.remove(tmp, { force: true })))
        )
      }).pipe(
        Effect.tap((written) => {
          files += 1
          bytes += written
          if (item.size === undefined) totalBytes += written
          return onProgress ? onProgress({ files, totalFiles, bytes, totalBytes }) : Effect.void
        })
      )

    const outcomes = yield* Effect.forEach(
      items,
      (item) =>
        fetchOne(item).pipe(
          Effect.map(Either.right),
          Effect.catchIf((error) => error.reason !== "LocalIO", (error) => Effect.succeed(Either.left(error)))
        ),
      { concurrency: settings.concurrency }
    )
    const failures: Array<FailedObject> = []
    let written = 0
    let succeeded = 0
    outcomes.forEach((outcome, i) => {
      if (Either.isRight(outcome)) {
        succeeded += 1
        written += outcome.right
      } else {
        const error = outcome.left
        failures.push({ bucket: items[i]!.store.bucket, key: items[i]!.key, reason: error.reason, detail: error.detail })
      }
    })
    if (failures.length > 0) return yield* new DownloadError({ failures, succeeded })
    return { files: succeeded, bytes: written }
  })
