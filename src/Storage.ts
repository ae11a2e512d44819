/**
 * The storage service: checkpoints to and from the internal store, result files, and the
 * four dataset download flows from the external store, all with bounded concurrency,
 * per-object retry, temp file + rename, progress and path-traversal checks.
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import { Chunk, Context, Effect, Either, Layer, Option, Random, Schedule, Stream } from "effect"
import { CheckpointError, DatasetError, DownloadError, StorageError } from "./Errors.js"
import { JobContext, type StorageEndpoint } from "./JobContext.js"
import type { ObjectInfo, ObjectStore } from "./ObjectStore.js"
import {
  annotationImageNames,
  annotationImageRoot,
  baseName,
  cocoImageUris,
  type DownloadOptions,
  type ExecutorSettings,
  isAnnotationKey,
  labelMeEntries,
  parseS3Uri as parseS3UriEither,
  planItems,
  primaryAnnotation,
  rewriteCocoFileNames,
  runDownloads,
  type S3Location
} from "./internal/downloads.js"
import { parseJsonBytes } from "./internal/diceModel.js"
import { makeMemoryObjectStore, type MemoryObjectStore } from "./internal/memoryObjectStore.js"
import { makeS3ObjectStore, s3ClientConfig, s3ClientsScoped } from "./internal/s3ObjectStore.js"

export { type DownloadOptions, type DownloadProgress, type S3Location } from "./internal/downloads.js"

/** Parses `s3://bucket/key` strictly; `StorageError` with reason `InvalidUri` naming the URI otherwise. */
export const parseS3Uri = (uri: string): Either.Either<S3Location, StorageError> => parseS3UriEither(uri)

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

/** The storage service. */
export interface StorageService {
  /**
   * Uploads a checkpoint as `checkpoints/{job_id}/{type}.pt` (`.pt`/`.pth` files) or
   * `{type}{ext}` (other files) to the internal store, verifies the stored size, and returns
   * its `s3://` URI. With metrics, a checkpoint event is recorded (see `CheckpointEvents`).
   */
  readonly uploadCheckpoint: (
    localPath: string,
    checkpointType: string,
    metrics?: Record<string, number>
  ) => Effect.Effect<string, CheckpointError>
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

/** A saved checkpoint, as the log shipper records it. */
export interface CheckpointSaved {
  readonly checkpointType: string
  readonly uri: string
  readonly metrics: Record<string, number>
}

/**
 * Where checkpoint events go (the log shipper provides it). Optional: `Storage` uses it
 * when present in the context it is built in, and records nothing otherwise.
 */
export class CheckpointEvents extends Context.Tag("trainer-sdk/CheckpointEvents")<CheckpointEvents, {
  readonly checkpointSaved: (event: CheckpointSaved) => Effect.Effect<void>
}>() {}

/** What `Storage.make` is built from. */
export interface StorageConfig {
  /** Datasets. */
  readonly external: ObjectStore
  /** Checkpoints and results. */
  readonly internal: ObjectStore
  readonly jobId: number
  /** Default download concurrency (32). */
  readonly concurrency?: number
  /** Per-object retry on transient failures (default: 4 attempts, exponential from 200 ms, jittered). */
  readonly retry?: Schedule.Schedule<unknown, StorageError>
}

const defaultRetry: Schedule.Schedule<unknown, StorageError> = Schedule.exponential("200 millis").pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(3))
)

const checkpointTypePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
const datasetIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** The object key of a checkpoint (see the storage spec's key table). */
export const checkpointKey = (jobId: number, checkpointType: string, fileName: string): string => {
  const dot = fileName.lastIndexOf(".")
  const ext = dot > 0 ? fileName.slice(dot).toLowerCase() : ""
  const suffix = ext === ".pt" || ext === ".pth" ? ".pt" : dot > 0 ? fileName.slice(dot) : ""
  return `checkpoints/${jobId}/${checkpointType}${suffix}`
}

/** The content type of a checkpoint file. */
export const checkpointContentType = (fileName: string): string =>
  /\.(pt|pth)$/i.test(fileName) ? "application/x-pytorch" : "application/octet-stream"

/** Builds the service over two stores. */
export const makeStorage = (config: StorageConfig): Effect.Effect<StorageService, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const events = yield* Effect.serviceOption(CheckpointEvents)
    const { external, internal, jobId } = config
    const retry = config.retry ?? defaultRetry
    const defaultConcurrency = config.concurrency ?? 32
    const provide = Effect.provide(Context.make(FileSystem.FileSystem, fs).pipe(Context.add(Path.Path, path)))

    const settings = (options: DownloadOptions | undefined): ExecutorSettings => ({
      concurrency: Math.max(1, options?.concurrency ?? defaultConcurrency),
      retry,
      ...(options?.onProgress ? { onProgress: options.onProgress } : {})
    })

    const listAll = (
      store: ObjectStore,
      prefix: string,
      recursive = true
    ): Effect.Effect<ReadonlyArray<ObjectInfo>, StorageError> =>
      Stream.runCollect(store.list(prefix, { recursive })).pipe(Effect.map(Chunk.toReadonlyArray))

    const datasetPrefix = (datasetId: string): Effect.Effect<string, DatasetError> =>
      datasetIdPattern.test(datasetId) && !datasetId.includes("..")
        ? Effect.succeed(`datasets/${datasetId}/`)
        : Effect.fail(new DatasetError({ reason: "InvalidShape", detail: `invalid dataset id "${datasetId}"` }))

    const localIO = (file: string, detail: string) => (cause: unknown) =>
      new StorageError({ reason: "LocalIO", bucket: "", key: file, detail, cause })

    /** Writes `text` to `file` through a temp name and a rename. */
    const writeAtomically = (file: string, text: string): Effect.Effect<void, StorageError> =>
      Effect.flatMap(Random.nextInt, (n) => {
        const tmp = `${file}.tmp-${(n >>> 0).toString(36)}`
        return fs.writeFileString(tmp, text).pipe(
          Effect.zipRight(fs.rename(tmp, file)),
          Effect.mapError(localIO(file, "cannot write")),
          Effect.onError(() => Effect.ignore(fs.remove(tmp, { force: true })))
        )
      })

    const uploadCheckpoint = Effect.fn("Storage.uploadCheckpoint")(
      function*(localPath: string, checkpointType: string, metrics?: Record<string, number>) {
        if (!checkpointTypePattern.test(checkpointType)) {
          return yield* new CheckpointError({
            reason: "Upload",
            path: localPath,
            detail: `invalid checkpoint type "${checkpointType}" (letters, digits, '.', '_', '-')`
          })
        }
        const info = yield* Effect.option(fs.stat(localPath))
        if (Option.isNone(info) || info.value.type !== "File") {
          return yield* new CheckpointError({ reason: "NotFound", path: localPath, detail: "no such file" })
        }
        const key = checkpointKey(jobId, checkpointType, path.basename(localPath))
        yield* internal.putFile(key, localPath, { contentType: checkpointContentType(localPath) }).pipe(
          Effect.mapError((error) =>
            new CheckpointError({
              reason: error.reason === "Integrity" ? "Integrity" : "Upload",
              path: localPath,
              detail: error.message,
              cause: error
            })
          )
        )
        const uri = `s3://${internal.bucket}/${key}`
        if (metrics !== undefined && Option.isSome(events)) {
          yield* events.value.checkpointSaved({ checkpointType, uri, metrics })
        }
        return uri
      }
    )

    const downloadCheckpoint = Effect.fn("Storage.downloadCheckpoint")(function*(uri: string, localPath: string) {
      const location = yield* parseS3UriEither(uri)
      const dest = path.resolve(localPath)
      yield* runDownloads([{ store: internal.withBucket(location.bucket), key: location.key, dest }], settings(undefined))
        .pipe(
          provide,
          Effect.mapError((error) => {
            const reason = error._tag === "DownloadError" && error.failures.some((f) => f.reason === "NotFound")
              ? "NotFound"
              : "Download"
            return new CheckpointError({ reason, path: uri, detail: error.message, cause: error })
          })
        )
      return localPath
    })

    const uploadFile = Effect.fn("Storage.uploadFile")(function*(localPath: string, key: string, options?: UploadFileOptions) {
      const store = options?.store === "external" ? external : internal
      if (key === "" || key.startsWith("/")) {
        return yield* new StorageError({ reason: "InvalidUri", bucket: store.bucket, key, detail: "a key must be non-empty and relative" })
      }
      yield* store.putFile(key, localPath, options?.contentType ? { contentType: options.contentType } : {})
      return `s3://${store.bucket}/${key}`
    })

    const downloadDataset = Effect.fn("Storage.downloadDataset")(
      function*(datasetId: string, destDir: string, options?: DownloadOptions) {
        const prefix = yield* datasetPrefix(datasetId)
        const objects = (yield* listAll(external, prefix)).filter((o) => !o.key.endsWith("/"))
        if (objects.length === 0) {
          return yield* new DatasetError({ reason: "Empty", detail: `no objects under s3://${external.bucket}/${prefix}` })
        }
        const items = yield* planItems(
          destDir,
          path,
          objects.map((o) => ({ store: external, key: o.key, relative: o.key.slice(prefix.length), size: o.size }))
        )
        return yield* provide(runDownloads(items, settings(options)))
      }
    )

    /** Reads an annotation file: strict UTF-8, bounded nesting (see `parseJsonBytes`). */
    const readJson = (file: string): Effect.Effect<unknown, DatasetError> =>
      fs.readFile(file).pipe(
        Effect.mapError((cause) => new DatasetError({ reason: "Io", file, detail: `cannot read: ${cause.message}` })),
        Effect.flatMap((bytes) => parseJsonBytes(file, bytes))
      )

    const downloadDatasetSelective = Effect.fn("Storage.downloadDatasetSelective")(
      function*(datasetId: string, destDir: string, options?: DownloadOptions) {
        const prefix = yield* datasetPrefix(datasetId)
        // Only the top level: the annotation files. Image sizes are learned as they arrive,
        // so a dataset of 100,000 images costs no 100-page listing before the first byte.
        const objects = yield* listAll(external, prefix, false)
        const annotationKeys = objects.map((o) => o.key).filter((key) => isAnnotationKey(prefix, key)).sort()
        const primaryKey = primaryAnnotation(annotationKeys)
        if (primaryKey === undefined) {
          return yield* new DatasetError({
            reason: "AnnotationsNotFound",
            paths: [`s3://${external.bucket}/${prefix}annotations*.json`],
            detail: "no annotation file in the dataset"
          })
        }
        const sizes = new Map(objects.map((o) => [o.key, o.size]))
        const annotationItems = yield* planItems(
          destDir,
          path,
          annotationKeys.map((key) => ({ store: external, key, relative: baseName(key), size: sizes.get(key) ?? 0 }))
        )
        const base = settings(options)
        const first = yield* provide(runDownloads(annotationItems, base))
        const primaryFile = path.join(path.resolve(destDir), baseName(primaryKey))
        const doc = yield* readJson(primaryFile)
        const names = yield* annotationImageNames(doc, primaryFile)
        const root = annotationImageRoot(doc)
        const rootLocation = root === undefined
          ? { bucket: external.bucket, key: `${prefix}images/` }
          : root.startsWith("s3://")
          ? yield* parseS3UriEither(root)
          : { bucket: external.bucket, key: root }
        const store = rootLocation.bucket === external.bucket ? external : external.withBucket(rootLocation.bucket)
        const imageItems = yield* planItems(
          path.join(path.resolve(destDir), "images"),
          path,
          names.map((name) => ({ store, key: `${rootLocation.key}${name}`, relative: name }))
        )
        const second = yield* provide(runDownloads(imageItems, {
          ...base,
          offset: {
            files: first.files,
            bytes: first.bytes,
            totalFiles: annotationItems.length,
            totalBytes: annotationItems.reduce((sum, item) => sum + (item.size ?? 0), 0)
          }
        }))
        return {
          files: first.files + second.files,
          bytes: first.bytes + second.bytes,
          annotationFiles: annotationItems.map((item) => item.dest),
          primaryAnnotationFile: primaryFile,
          imageCount: imageItems.length
        } satisfies DownloadReport
      }
    )

    const downloadFromAnnotation = Effect.fn("Storage.downloadFromAnnotation")(
      function*(data: unknown, destDir: string, format: "labelme" | "coco", options?: DownloadOptions) {
        const store = (location: S3Location) =>
          location.bucket === external.bucket ? external : external.withBucket(location.bucket)
        if (format === "labelme") {
          const entries = yield* labelMeEntries(data)
          const images = entries.map((e) => ({ store: store(e.image), key: e.image.key, relative: `images/${baseName(e.image.key)}` }))
          const labels = entries.flatMap((e) =>
            e.label === undefined ? [] : [{ store: store(e.label), key: e.label.key, relative: `labels/${baseName(e.label.key)}` }]
          )
          for (const pair of [...images, ...labels]) {
            const name = baseName(pair.key)
            if (name === "" || name === "." || name === ".." || name.includes("\\")) {
              return yield* new DatasetError({
                reason: "PathEscape",
                paths: [`s3://${pair.store.bucket}/${pair.key}`],
                detail: "object name cannot be used as a local file name, nothing was written"
              })
            }
          }
          const items = yield* planItems(destDir, path, [...images, ...labels])
          const result = yield* provide(runDownloads(items, settings(options)))
          return {
            ...result,
            imageCount: new Set(images.map((i) => i.relative)).size,
            labelCount: new Set(labels.map((l) => l.relative)).size,
            annotationFile: Option.none()
          } satisfies AnnotationDownloadReport
        }
        const uris = yield* cocoImageUris(data)
        const pairs = uris.map((u) => ({ store: store(u), key: u.key, relative: baseName(u.key) }))
        for (const pair of pairs) {
          if (pair.relative === "" || pair.relative === "." || pair.relative === ".." || pair.relative.includes("\\")) {
            return yield* new DatasetError({
              reason: "PathEscape",
              paths: [`s3://${pair.store.bucket}/${pair.key}`],
              detail: "object name cannot be used as a local file name, nothing was written"
            })
          }
        }
        const items = yield* planItems(path.join(path.resolve(destDir), "images"), path, pairs)
        const annotationFile = path.join(path.resolve(destDir), "annotations.json")
        const rewritten = rewriteCocoFileNames(
          data as Record<string, unknown>,
          (uri) => `images/${baseName(Either.getOrThrow(parseS3UriEither(uri)).key)}`
        )
        // Caller-built data may be cyclic or nested too deep to serialize: a typed error before
        // anything is downloaded, not a defect after.
        const text = yield* Effect.try({
          try: () => JSON.stringify(rewritten, null, 2),
          catch: (cause) =>
            new DatasetError({
              reason: "InvalidShape",
              file: annotationFile,
              detail: `annotation data cannot be written as JSON: ${cause instanceof Error ? cause.message : String(cause)}`
            })
        })
        const result = yield* provide(runDownloads(items, settings(options)))
        yield* writeAtomically(annotationFile, text)
        return {
          ...result,
          files: result.files + 1,
          imageCount: items.length,
          labelCount: 0,
          annotationFile: Option.some(annotationFile)
        } satisfies AnnotationDownloadReport
      }
    )

    return {
      uploadCheckpoint,
      downloadCheckpoint,
      uploadFile,
      downloadDataset,
      downloadDatasetSelective,
      downloadFromAnnotation,
      parseS3Uri: (uri: string) => Effect.suspend(() => parseS3UriEither(uri))
    } satisfies StorageService
  })

/** The in-memory stores behind `Storage.layerMemory`, for tests to seed, inspect and break. */
export class MemoryStorage extends Context.Tag("trainer-sdk/MemoryStorage")<MemoryStorage, {
  readonly external: MemoryObjectStore
  readonly internal: MemoryObjectStore
}>() {}

/** Options of `Storage.layerMemoryWith`. */
export interface MemoryStorageOptions {
  readonly jobId?: number
  readonly externalBucket?: string
  readonly internalBucket?: string
  readonly concurrency?: number
  /** Keys per listing page (1,000). */
  readonly pageSize?: number
}

const clientFor = (ctx: { readonly region: string; readonly requestChecksumCalculation: "WHEN_REQUIRED" | "WHEN_SUPPORTED" }, endpoint: StorageEndpoint) =>
  s3ClientsScoped(s3ClientConfig({ ...endpoint, region: ctx.region, requestChecksumCalculation: ctx.requestChecksumCalculation }))

/** The storage service: `const storage = yield* Storage`. */
export class Storage extends Context.Tag("trainer-sdk/Storage")<Storage, StorageService>() {
  /** Builds the service over two stores (see `StorageConfig`). */
  static readonly make = makeStorage

  /** Two S3 stores from the job context (external = datasets, internal = checkpoints); clients closed with the scope. */
  static readonly layer: Layer.Layer<Storage, never, JobContext | FileSystem.FileSystem | Path.Path> = Layer.scoped(
    Storage,
    Effect.gen(function*() {
      const ctx = yield* JobContext
      const external = makeS3ObjectStore(yield* clientFor(ctx, ctx.externalStorage), ctx.externalStorage.bucket)
      const internal = makeS3ObjectStore(yield* clientFor(ctx, ctx.internalStorage), ctx.internalStorage.bucket)
      return yield* makeStorage({ external, internal, jobId: ctx.jobId })
    })
  )

  /** In-memory stores with options; see `MemoryStorage` for the test controls. */
  static readonly layerMemoryWith = (
    options: MemoryStorageOptions = {}
  ): Layer.Layer<Storage | MemoryStorage, never, FileSystem.FileSystem | Path.Path> =>
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
      return Context.make(Storage, service).pipe(Context.add(MemoryStorage, { external, internal }))
    }))

  /** In-memory stores (buckets `training-datasets` / `training-checkpoints`, job 1). */
  static readonly layerMemory: Layer.Layer<Storage | MemoryStorage, never, FileSystem.FileSystem | Path.Path> = Storage
    .layerMemoryWith()
}
