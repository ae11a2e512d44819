/**
 * The flows behind `Storage`: checkpoint upload and download, result-file upload, and the
 * three dataset downloads (whole prefix, selective, from annotation data). Each flow plans
 * its objects with `downloads.ts` (every local path checked before anything is written) and
 * runs the plan with its executor.
 *
 * The `CheckpointEvents` tag itself lives in `Storage.ts`; these flows receive the looked-up
 * service as a plain `Option`, so this module never imports the public one.
 */
import { FileSystem, Path } from "@effect/platform"
import { Chunk, Context, Effect, Either, Option, type Schedule, Stream } from "effect"
import type { CallbackMetrics } from "../Callback.js"
import { metricMap } from "./callbackReports.js"
import { makeCheckpointRecords } from "./checkpointRecords.js"
import { CheckpointError, DatasetError, type DownloadError, StorageError, thrownMessage } from "../Errors.js"
import type { ObjectInfo, ObjectStore } from "../ObjectStore.js"
import { baseName, isAnnotationKey, primaryAnnotation } from "./annotationNames.js"
import {
  annotationImageNames,
  annotationImageRoot,
  cocoImageUris,
  type ExecutorSettings,
  labelMeEntries,
  localIO,
  parseS3Uri,
  planItems,
  rewriteCocoFileNames,
  runDownloads
} from "./downloads.js"
import { writeFileAtomically } from "./files.js"
import { parseJsonBytes } from "./json.js"
import { isPlainFileName } from "./safeName.js"
import type { AnnotationDownloadReport, CheckpointEventsService, DatasetDownloadSummary, DownloadOptions, DownloadReport, S3Location, UploadCheckpointOptions, UploadFileOptions } from "../Storage.js"

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

/** A checkpoint type (`best`, `last`, `epoch-3`): a letter or digit, then letters, digits, `.`, `_`, `-`. */
export const checkpointTypePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
const datasetIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** Everything the flows run on, resolved once by `makeStorage`. */
export interface StorageFlowsEnv {
  readonly fs: FileSystem.FileSystem
  readonly path: Path.Path
  /** Datasets. */
  readonly external: ObjectStore
  /** Checkpoints and results. */
  readonly internal: ObjectStore
  /** The job whose checkpoints are stored; none: checkpoint uploads fail, no records. */
  readonly jobId: number | undefined
  /** Download concurrency when a call sets none. */
  readonly defaultConcurrency: number
  /** Per-object retry on transient failures. */
  readonly retry: Schedule.Schedule<unknown, StorageError>
  /** The `CheckpointEvents` service of the context `Storage` was built in, if any. */
  readonly events: Option.Option<CheckpointEventsService>
}

/**
 * `PathEscape` naming the first object whose last key segment cannot be a local file name
 * (before anything is written), or the pairs unchanged.
 */
const rejectUnusableNames = <P extends { readonly store: ObjectStore; readonly key: string }>(
  pairs: ReadonlyArray<P>
): Either.Either<ReadonlyArray<P>, DatasetError> => {
  const bad = pairs.find((pair) => !isPlainFileName(baseName(pair.key)))
  return bad === undefined
    ? Either.right(pairs)
    : Either.left(
      new DatasetError({
        reason: "PathEscape",
        paths: [`s3://${bad.store.bucket}/${bad.key}`],
        detail: "object name cannot be used as a local file name, nothing was written"
      })
    )
}

/** Downloads in flight at once: a whole number of at least 1; anything else (NaN, Infinity) gets the default, never unbounded I/O. */
export const boundedConcurrency = (requested: number | undefined, fallback: number): number =>
  requested !== undefined && Number.isFinite(requested) ? Math.max(1, Math.floor(requested)) : fallback

/** The storage flows over `env`, each traced as `Storage.<method>`. */
export const makeStorageFlows = (env: StorageFlowsEnv) => {
  const { external, fs, internal, jobId, path } = env
  const provide = Effect.provide(Context.make(FileSystem.FileSystem, fs).pipe(Context.add(Path.Path, path)))

  const settings = (options: DownloadOptions | undefined): ExecutorSettings => ({
    concurrency: boundedConcurrency(options?.concurrency, env.defaultConcurrency),
    retry: env.retry,
    ...(options?.onProgress ? { onProgress: options.onProgress } : {})
  })

  const listAll = (
    store: ObjectStore,
    prefix: string,
    recursive = true
  ): Effect.Effect<ReadonlyArray<ObjectInfo>, StorageError> =>
    Stream.runCollect(store.list(prefix, { recursive })).pipe(Effect.map(Chunk.toReadonlyArray))

  /** The external store, or the same endpoint on the bucket a location names. */
  const externalFor = (bucket: string): ObjectStore => bucket === external.bucket ? external : external.withBucket(bucket)

  const datasetPrefix = (datasetId: string): Effect.Effect<string, DatasetError> =>
    datasetIdPattern.test(datasetId) && !datasetId.includes("..")
      ? Effect.succeed(`datasets/${datasetId}/`)
      : Effect.fail(new DatasetError({ reason: "InvalidShape", detail: `invalid dataset id "${datasetId}"` }))

  /** Writes `text` to `file` through a temp name and a rename. */
  const writeAtomically = (file: string, text: string): Effect.Effect<void, StorageError> =>
    Effect.mapError(writeFileAtomically(fs, path, file, text), localIO(file, "cannot write"))

  /** Reads an annotation file: strict UTF-8, bounded nesting (see `parseJsonBytes`). */
  const readJson = (file: string): Effect.Effect<unknown, DatasetError> =>
    fs.readFile(file).pipe(
      Effect.mapError((cause) => new DatasetError({ reason: "Io", file, detail: `cannot read: ${cause.message}` })),
      Effect.flatMap((bytes) => parseJsonBytes(file, bytes))
    )

  const records = jobId === undefined ? undefined : makeCheckpointRecords({ fs, internal, jobId })

  const uploadCheckpoint = Effect.fn("Storage.uploadCheckpoint")(
    function*(localPath: string, checkpointType: string, metrics?: CallbackMetrics, options?: UploadCheckpointOptions) {
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
      if (jobId === undefined || records === undefined) {
        return yield* new CheckpointError({
          reason: "Upload",
          path: localPath,
          detail: "this storage has no job (none of JOB_ID, INFERENCE_JOB_ID, EXPORT_JOB_ID, TEST_RUN_ID was set): checkpoints are stored per job"
        })
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
      const epoch = options?.epoch !== undefined && Number.isSafeInteger(options.epoch) && options.epoch >= 0 ? options.epoch : undefined
      yield* records.write(localPath, { checkpointType, uri, epoch, metrics: metrics ?? {} })
      if (metrics !== undefined && Option.isSome(env.events)) {
        yield* env.events.value.checkpointSaved({ checkpointType, uri, metrics: metricMap(metrics) })
      }
      return uri
    }
  )

  const downloadCheckpoint = Effect.fn("Storage.downloadCheckpoint")(function*(uri: string, localPath: string) {
    const location = yield* parseS3Uri(uri)
    const dest = path.resolve(localPath)
    const store = internal.withBucket(location.bucket)
    const toCheckpointError = (error: StorageError | DownloadError) => {
      const reason = error._tag === "DownloadError"
        ? error.failures.some((f) => f.reason === "NotFound") ? "NotFound" : "Download"
        : error.reason === "NotFound"
        ? "NotFound"
        : "Download"
      return new CheckpointError({ reason, path: uri, detail: error.message, cause: error })
    }
    // The size from a HEAD: the body must match it as well as its own Content-Length.
    const info = yield* Effect.mapError(store.head(location.key), toCheckpointError)
    yield* runDownloads([{ store, key: location.key, dest, size: info.size }], settings(undefined)).pipe(
      provide,
      // A local write failure (e.g. ENOSPC) stays a `LocalIO` StorageError naming the path.
      Effect.mapError((error) => error._tag === "StorageError" && error.reason === "LocalIO" ? error : toCheckpointError(error))
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
      return (yield* provide(runDownloads(items, settings(options)))) satisfies DatasetDownloadSummary
    }
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
        ? yield* parseS3Uri(root)
        : { bucket: external.bucket, key: root }
      const store = externalFor(rootLocation.bucket)
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
      const store = (location: S3Location) => externalFor(location.bucket)
      if (format === "labelme") {
        const entries = yield* labelMeEntries(data)
        const images = entries.map((e) => ({ store: store(e.image), key: e.image.key, relative: `images/${baseName(e.image.key)}` }))
        const labels = entries.flatMap((e) =>
          e.label === undefined ? [] : [{ store: store(e.label), key: e.label.key, relative: `labels/${baseName(e.label.key)}` }]
        )
        const items = yield* planItems(destDir, path, yield* rejectUnusableNames([...images, ...labels]))
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
      const items = yield* planItems(path.join(path.resolve(destDir), "images"), path, yield* rejectUnusableNames(pairs))
      const annotationFile = path.join(path.resolve(destDir), "annotations.json")
      const rewritten = rewriteCocoFileNames(
        data as Record<string, unknown>,
        (uri) => `images/${baseName(Either.getOrThrow(parseS3Uri(uri)).key)}`
      )
      // Caller-built data may be cyclic or nested too deep to serialize: a typed error before
      // anything is downloaded, not a defect after.
      const text = yield* Effect.try({
        try: () => JSON.stringify(rewritten, null, 2),
        catch: (cause) =>
          new DatasetError({
            reason: "InvalidShape",
            file: annotationFile,
            detail: `annotation data cannot be written as JSON: ${thrownMessage(cause)}`
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
    checkpointRecords: records === undefined ? Effect.succeed([]) : records.list,
    downloadCheckpoint,
    uploadFile,
    downloadDataset,
    downloadDatasetSelective,
    downloadFromAnnotation,
    parseS3Uri: (uri: string) => Effect.suspend(() => parseS3Uri(uri))
  }
}
