/**
 * The node-wide dataset cache: one complete copy of each dataset version in
 * `DATASET_CACHE_DIR`, shared by every job (and every rank) on the node. Exactly one
 * process downloads a missing version while the others wait on a cross-process lock;
 * each job gets its own view (`destDir/dataset`: copied annotation files, `images`
 * linked to the entry) in constant time whatever the number of images.
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Clock, Context, Duration, Effect, Either, Layer, Option, Ref, type Scope } from "effect"
import { CacheError, type DatasetError, type DownloadError, type StorageError } from "./Errors.js"
import { JobContext } from "./JobContext.js"
import {
  cacheKeyFromHash,
  completeMarkerName,
  isAnnotationFileName,
  isTempEntryOf,
  metadataFileName,
  metadataLockName,
  tempEntryName,
  validateCacheKey
} from "./internal/cacheKey.js"
import { type CacheCoordinator, makeCacheCoordinator, newCacheToken } from "./internal/cacheLock.js"
import {
  annotationImageFileNames,
  type CacheEntryRecord,
  type CacheMetadataFile,
  type DatasetCacheEntry,
  decodeCacheMetadata,
  decodeEntryRecord,
  encodeCacheMetadata,
  isContainedImageName,
  planCacheEviction,
  toDatasetCacheEntry
} from "./internal/cacheMetadata.js"
import { type DownloadProgress, type DownloadReport, Storage } from "./Storage.js"

export { cacheKeyFromHash, type DatasetCacheEntry }

/** What `DatasetCache.ensure` materializes; unset ids default to the job context's. */
export interface EnsureDatasetOptions {
  readonly snapshotId?: string
  readonly datasetId?: string
  readonly datasetVersionHash?: string
  /** The job's directory: the view is created at `destDir/dataset`. */
  readonly destDir: string
  /** Download progress on a miss (a hit reports nothing). */
  readonly onProgress?: (progress: DownloadProgress) => Effect.Effect<void>
}

/** The dataset cache service: `const cache = yield* DatasetCache`. */
export interface DatasetCacheService {
  /** The cache directory in use (absolute). */
  readonly cacheDir: string
  /**
   * Makes the dataset version available as `destDir/dataset` (returned), downloading it
   * into the cache on a miss. The entry stays leased by this process (never evicted)
   * until the layer's scope closes.
   */
  readonly ensure: (
    options: EnsureDatasetOptions
  ) => Effect.Effect<string, CacheError | StorageError | DownloadError | DatasetError>
  /** The recorded entries, by key. */
  readonly entries: Effect.Effect<ReadonlyArray<DatasetCacheEntry>, CacheError>
  /**
   * Evicts least recently accessed entries without a live lease until the recorded total
   * is at most `maxBytes` (default: the configured limit). Returns the removed keys.
   */
  readonly prune: (options?: { readonly maxBytes?: number }) => Effect.Effect<ReadonlyArray<string>, CacheError>
  /**
   * Removes one entry; `false` when there was none. An entry leased by a live process is
   * not removed (`CacheError` with reason `Lock`).
   */
  readonly remove: (key: string) => Effect.Effect<boolean, CacheError>
}

/** Settings of the cache; unset values come from the job context or the defaults below. */
export interface DatasetCacheOptions {
  /** Cache directory (default `DATASET_CACHE_DIR`). */
  readonly cacheDir?: string
  /** Size limit in bytes (default `DATASET_CACHE_MAX_GB` GiB). */
  readonly maxBytes?: number
  /** A lock or lease not refreshed for this long belongs to a dead process (default 30 s). */
  readonly staleAfter?: Duration.DurationInput
  /** How often held locks and leases are refreshed (default 5 s; at most a third of `staleAfter`). */
  readonly heartbeatEvery?: Duration.DurationInput
  /** How often a waiting process re-checks a busy lock (default 250 ms). */
  readonly pollEvery?: Duration.DurationInput
  /** How long to wait for a live lock holder (e.g. another process downloading) before failing (default 6 h). */
  readonly lockTimeout?: Duration.DurationInput
  /** Parallel object downloads on a miss (default: the storage's). */
  readonly downloadConcurrency?: number
}

const ioError = (path: string, detail: string, key?: string) => (cause: PlatformError) =>
  new CacheError({ reason: "Io", path, key, detail: `${detail}: ${cause.message}`, cause })

const isNotFound = (e: PlatformError): boolean => e._tag === "SystemError" && e.reason === "NotFound"

/** Builds the cache service for the given settings (scoped: leases and heartbeats live in the scope). */
export const makeDatasetCache = (
  options: DatasetCacheOptions = {}
): Effect.Effect<
  DatasetCacheService,
  never,
  JobContext | Storage | FileSystem.FileSystem | Path.Path | Scope.Scope
> =>
  Effect.gen(function*() {
    const ctx = yield* JobContext
    const storage = yield* Storage
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const cacheDir = path.resolve(options.cacheDir ?? ctx.cacheDir)
    const maxBytes = options.maxBytes ?? ctx.cacheMaxBytes
    const metadataFile = path.join(cacheDir, metadataFileName)
    const staleAfter = Duration.decode(options.staleAfter ?? "30 seconds")
    const coordinator: CacheCoordinator = yield* makeCacheCoordinator(cacheDir, {
      staleAfter,
      // A heartbeat slower than a third of the threshold would let live holders look dead.
      heartbeatEvery: Duration.min(
        Duration.decode(options.heartbeatEvery ?? "5 seconds"),
        Option.getOrElse(Duration.divide(staleAfter, 3), () => staleAfter)
      ),
      pollEvery: Duration.decode(options.pollEvery ?? "250 millis"),
      lockTimeout: Duration.decode(options.lockTimeout ?? "6 hours")
    })

    const nowIso = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())
    const entryDir = (key: string) => path.join(cacheDir, key)
    const markerOf = (key: string) => path.join(entryDir(key), completeMarkerName)
    const isComplete = (key: string) =>
      fs.exists(markerOf(key)).pipe(Effect.mapError(ioError(markerOf(key), "cannot check", key)))

    /** The record an entry's marker holds; a foreign marker yields a record of unknown size. */
    const recordFromMarker = (key: string) =>
      fs.readFileString(markerOf(key)).pipe(
        Effect.map((text) =>
          Either.getOrElse(decodeEntryRecord(text), (): CacheEntryRecord => ({
            snapshot_id: "",
            dataset_id: "",
            dataset_version_hash: key,
            created_at: new Date(0).toISOString(),
            last_accessed: new Date(0).toISOString(),
            size_bytes: 0
          }))
        ),
        Effect.mapError(ioError(markerOf(key), "cannot read", key))
      )

    /** Rebuilds lost or corrupt metadata from the markers of the complete entries. */
    const rebuildMetadata = Effect.gen(function*() {
      const names = yield* fs.readDirectory(cacheDir).pipe(
        Effect.catchIf(isNotFound, () => Effect.succeed([] as Array<string>)),
        Effect.mapError(ioError(cacheDir, "cannot list"))
      )
      const metadata: Record<string, CacheEntryRecord> = {}
      for (const name of names) {
        if (Either.isLeft(validateCacheKey(name)) || !(yield* isComplete(name))) continue
        metadata[name] = yield* recordFromMarker(name)
      }
      return metadata as CacheMetadataFile
    })

    const readMetadata = Effect.gen(function*() {
      const text = yield* fs.readFileString(metadataFile).pipe(
        Effect.map(Option.some),
        Effect.catchIf(isNotFound, () => Effect.succeed(Option.none<string>())),
        Effect.mapError(ioError(metadataFile, "cannot read"))
      )
      if (Option.isNone(text)) return yield* rebuildMetadata
      return yield* Either.match(decodeCacheMetadata(text.value), {
        onLeft: () => rebuildMetadata,
        onRight: Effect.succeed
      })
    })

    /** Atomic write: a temporary file renamed over the metadata file. */
    const writeMetadata = (metadata: CacheMetadataFile) =>
      Effect.gen(function*() {
        const temp = `${metadataFile}.tmp-${yield* newCacheToken}`
        yield* fs.writeFileString(temp, encodeCacheMetadata(metadata)).pipe(
          Effect.zipRight(fs.rename(temp, metadataFile)),
          Effect.tapError(() => Effect.ignore(fs.remove(temp))),
          Effect.mapError(ioError(metadataFile, "cannot write"))
        )
      })

    /** Read-modify-write of the metadata under its cross-process lock. */
    const updateMetadata = <A, E>(
      f: (metadata: CacheMetadataFile) => Effect.Effect<readonly [A, CacheMetadataFile], E>
    ) =>
      coordinator.withLock(
        metadataLockName,
        Effect.gen(function*() {
          const [result, next] = yield* f(yield* readMetadata)
          yield* writeMetadata(next)
          return result
        })
      )

    /** Directories renamed aside under a lock, deleted later by `emptyTrash` outside every lock. */
    const trash = yield* Ref.make<ReadonlyArray<string>>([])

    /**
     * Takes a directory out of the cache at once (an atomic rename aside); the slow recursive
     * delete, which never follows links, happens in `emptyTrash` after the locks are released.
     */
    const removeDir = (dir: string, key: string) =>
      Effect.gen(function*() {
        const aside = path.join(cacheDir, tempEntryName(key, yield* newCacheToken))
        const moved = yield* fs.rename(dir, aside).pipe(
          Effect.as(true),
          Effect.catchIf(isNotFound, () => Effect.succeed(false)),
          Effect.mapError(ioError(dir, "cannot remove", key))
        )
        if (moved) yield* Ref.update(trash, (dirs) => [...dirs, aside])
        return moved
      })

    const emptyTrash = Effect.gen(function*() {
      const dirs = yield* Ref.getAndSet(trash, [])
      yield* Effect.forEach(
        dirs,
        (dir) => fs.remove(dir, { recursive: true, force: true }).pipe(Effect.mapError(ioError(dir, "cannot remove"))),
        { discard: true }
      )
    })

    /** Removes an entry unless a live process leases it; call holding the entry's lock. */
    const removeUnleased = (key: string) =>
      Effect.gen(function*() {
        const live = yield* coordinator.liveLeaseCount(key)
        if (live > 0) return Either.left(live)
        const existed = yield* removeDir(entryDir(key), key)
        yield* coordinator.removeLeases(key)
        return Either.right(existed)
      })

    /** LRU eviction down to `limit`, never touching `keep`, a leased entry or one locked by another process. */
    const evict = (metadata: CacheMetadataFile, limit: number, keep: ReadonlySet<string>) =>
      Effect.gen(function*() {
        let current: Record<string, CacheEntryRecord> = { ...metadata }
        const skip = new Set(keep)
        const removed: Array<string> = []
        let plan = planCacheEviction(current, limit, skip)
        while (plan.length > 0) {
          for (const key of plan) {
            const outcome = yield* coordinator.tryWithLock(key, removeUnleased(key))
            if (Option.isSome(outcome) && Either.isRight(outcome.value)) {
              removed.push(key)
              const { [key]: _, ...rest } = current
              current = rest
            } else {
              skip.add(key)
            }
          }
          plan = planCacheEviction(current, limit, skip)
        }
        return [removed as ReadonlyArray<string>, current as CacheMetadataFile] as const
      })

    /** Every image the primary annotation file lists must exist under `images/` with a non-zero size. */
    const verify = (key: string, dir: string, report: DownloadReport) =>
      Effect.gen(function*() {
        const annotationFile = path.resolve(dir, report.primaryAnnotationFile)
        const text = yield* fs.readFileString(annotationFile).pipe(
          Effect.mapError(ioError(annotationFile, "cannot read the primary annotation file", key))
        )
        const names = yield* Effect.try({
          try: () => JSON.parse(text) as unknown,
          catch: (e) => new CacheError({ reason: "Verify", key, path: annotationFile, detail: `malformed JSON: ${String(e)}` })
        }).pipe(
          Effect.flatMap((json) =>
            Either.mapLeft(annotationImageFileNames(json), (detail) =>
              new CacheError({ reason: "Verify", key, path: annotationFile, detail }))
          )
        )
        const missing: Array<string> = []
        yield* Effect.forEach(names, (name) =>
          isContainedImageName(name)
            ? fs.stat(path.join(dir, "images", name)).pipe(
              Effect.map((info) => info.type === "File" && info.size > 0n),
              Effect.orElseSucceed(() => false),
              Effect.map((ok) => {
                if (!ok) missing.push(name)
              })
            )
            : Effect.sync(() => missing.push(name)), { concurrency: 32, discard: true })
        if (missing.length > 0) {
          const shown = missing.slice(0, 10).join(", ")
          return yield* new CacheError({
            reason: "Verify",
            key,
            path: annotationFile,
            detail: `${missing.length} of ${names.length} listed image(s) missing, empty or outside images/ after download: ${shown}${
              missing.length > 10 ? ", ..." : ""
            }`
          })
        }
      })

    /** The miss path (holding the entry's lock): clean leftovers, download, verify, mark, rename into place. */
    const download = (
      key: string,
      ids: { readonly snapshotId: string; readonly datasetId: string; readonly hash: string },
      onProgress: EnsureDatasetOptions["onProgress"]
    ) =>
      Effect.gen(function*() {
        yield* removeDir(entryDir(key), key)
        const names = yield* fs.readDirectory(cacheDir).pipe(Effect.mapError(ioError(cacheDir, "cannot list")))
        yield* Effect.forEach(
          names.filter((name) => isTempEntryOf(key, name)),
          (name) => fs.remove(path.join(cacheDir, name), { recursive: true, force: true }).pipe(
            Effect.mapError(ioError(path.join(cacheDir, name), "cannot remove a leftover download", key))
          ),
          { discard: true }
        )
        const temp = path.join(cacheDir, tempEntryName(key, yield* newCacheToken))
        return yield* Effect.gen(function*() {
          yield* fs.makeDirectory(temp).pipe(Effect.mapError(ioError(temp, "cannot create", key)))
          const report = yield* storage.downloadDatasetSelective(ids.datasetId, temp, {
            ...(options.downloadConcurrency === undefined ? {} : { concurrency: options.downloadConcurrency }),
            ...(onProgress === undefined ? {} : { onProgress })
          })
          yield* verify(key, temp, report)
          const now = yield* nowIso
          const record: CacheEntryRecord = {
            snapshot_id: ids.snapshotId,
            dataset_id: ids.datasetId,
            dataset_version_hash: ids.hash,
            created_at: now,
            last_accessed: now,
            size_bytes: report.bytes
          }
          const marker = path.join(temp, completeMarkerName)
          yield* fs.writeFileString(marker, `${JSON.stringify(record)}\n`).pipe(
            Effect.mapError(ioError(marker, "cannot write", key))
          )
          // Only a holder whose lock was broken while it stalled can find the entry already in place.
          return yield* fs.rename(temp, entryDir(key)).pipe(
            Effect.as(record),
            Effect.mapError(ioError(entryDir(key), "cannot move into place", key)),
            Effect.catchAll((error) =>
              Effect.flatMap(isComplete(key), (complete) => complete ? recordFromMarker(key) : Effect.fail(error))
            )
          )
        }).pipe(Effect.onExit(() => Effect.ignore(fs.remove(temp, { recursive: true }))))
      })

    /** The job's view: copied annotation files and a link to the entry's images, swapped in atomically. */
    const materialize = (key: string, destDir: string) =>
      Effect.gen(function*() {
        const source = entryDir(key)
        const view = path.join(destDir, "dataset")
        const staging = path.join(destDir, `.dataset-tmp-${yield* newCacheToken}`)
        const build = Effect.gen(function*() {
          yield* fs.makeDirectory(staging, { recursive: true })
          const names = yield* fs.readDirectory(source)
          yield* Effect.forEach(
            names.filter(isAnnotationFileName),
            (name) => fs.copyFile(path.join(source, name), path.join(staging, name)),
            { concurrency: 4, discard: true }
          )
          const images = path.join(source, "images")
          if (yield* fs.exists(images)) {
            yield* fs.symlink(images, path.join(staging, "images")).pipe(
              Effect.catchAll(() => fs.copy(images, path.join(staging, "images")))
            )
          } else {
            yield* fs.makeDirectory(path.join(staging, "images"))
          }
          yield* fs.remove(view, { recursive: true }).pipe(Effect.catchIf(isNotFound, () => Effect.void))
          yield* fs.rename(staging, view)
        })
        yield* build.pipe(
          Effect.tapError(() => Effect.ignore(fs.remove(staging, { recursive: true }))),
          Effect.mapError(ioError(view, "cannot materialize the job's dataset view", key))
        )
        return view
      })

    const ensure = Effect.fn("DatasetCache.ensure")(function*(request: EnsureDatasetOptions) {
      const hash = request.datasetVersionHash ?? ctx.datasetVersionHash
      const key = yield* cacheKeyFromHash(hash)
      const ids = {
        snapshotId: request.snapshotId ?? ctx.snapshotId,
        datasetId: request.datasetId ?? ctx.datasetId,
        hash
      }
      yield* Effect.annotateCurrentSpan({ key, datasetId: ids.datasetId })
      const hit = yield* coordinator.withLock(
        key,
        Effect.gen(function*() {
          if (yield* isComplete(key)) {
            yield* coordinator.takeLease(key)
            return true
          }
          const record = yield* download(key, ids, request.onProgress)
          yield* coordinator.takeLease(key)
          yield* updateMetadata((metadata) => evict({ ...metadata, [key]: record }, maxBytes, new Set([key])))
          return false
        })
      )
      if (hit) {
        yield* updateMetadata((metadata) =>
          Effect.gen(function*() {
            const record = metadata[key] ?? (yield* recordFromMarker(key))
            return [undefined, { ...metadata, [key]: { ...record, last_accessed: yield* nowIso } }] as const
          })
        )
      }
      yield* emptyTrash
      return yield* materialize(key, path.resolve(request.destDir))
    })

    const entries = Effect.map(
      readMetadata,
      (metadata) => Object.keys(metadata).sort().map((key) => toDatasetCacheEntry(key, metadata[key]!))
    ).pipe(Effect.withSpan("DatasetCache.entries"))

    const prune = Effect.fn("DatasetCache.prune")(function*(pruneOptions?: { readonly maxBytes?: number }) {
      return yield* updateMetadata((metadata) => evict(metadata, pruneOptions?.maxBytes ?? maxBytes, new Set())).pipe(
        Effect.zipLeft(emptyTrash)
      )
    })

    const remove = Effect.fn("DatasetCache.remove")(function*(rawKey: string) {
      const key = yield* validateCacheKey(rawKey)
      return yield* coordinator.withLock(
        key,
        Effect.gen(function*() {
          const outcome = yield* removeUnleased(key)
          if (Either.isLeft(outcome)) {
            return yield* new CacheError({
              reason: "Lock",
              key,
              path: entryDir(key),
              detail: `in use by ${outcome.left} live process lease(s)`
            })
          }
          const recorded = yield* updateMetadata((metadata) => {
            const { [key]: record, ...rest } = metadata
            return Effect.succeed([record !== undefined, rest] as const)
          })
          return outcome.right || recorded
        })
      ).pipe(Effect.zipLeft(emptyTrash))
    })

    return { cacheDir, ensure, entries, prune, remove } satisfies DatasetCacheService
  })

/** The dataset cache: `const cache = yield* DatasetCache`. */
export class DatasetCache extends Context.Tag("trainer-sdk/DatasetCache")<DatasetCache, DatasetCacheService>() {
  /** Builds the service (see `makeDatasetCache`). */
  static readonly make = makeDatasetCache

  /** The cache configured from the job context; leases this process holds are released when its scope closes. */
  static readonly layer: Layer.Layer<DatasetCache, never, JobContext | Storage | FileSystem.FileSystem | Path.Path> =
    Layer.scoped(DatasetCache, makeDatasetCache())

  /** The cache with explicit settings (tests, tools): directory, size limit, lock timing. */
  static readonly layerWith = (
    options: DatasetCacheOptions
  ): Layer.Layer<DatasetCache, never, JobContext | Storage | FileSystem.FileSystem | Path.Path> =>
    Layer.scoped(DatasetCache, makeDatasetCache(options))
}
