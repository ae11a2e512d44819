/**
 * The node-wide dataset cache: one complete copy of each dataset version in
 * `DATASET_CACHE_DIR`, shared by every job (and every rank) on the node. Exactly one
 * process downloads a missing version while the others wait on a cross-process lock;
 * each job gets its own view (`destDir/dataset`: copied annotation files, `images`
 * linked to the entry) in constant time whatever the number of images.
 *
 * The implementation is in `internal/cacheStore.ts` (metadata, eviction, removal) and
 * `internal/cacheEnsure.ts` (hit, miss and the job's view); this module holds the service
 * interface, the tag, `makeDatasetCache` and the layers.
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import { Config, Context, Duration, Effect, type Either, Layer, Option, type Scope } from "effect"
import * as NodeFs from "node:fs/promises"
import { CacheError, type ConfigError, type DatasetError, type DownloadError, type StorageError } from "./Errors.js"
import { cacheSectionConfig, datasetSectionConfig, settingsLayer } from "./internal/envSections.js"
import type { SettingsError } from "./JobContext.js"
import { makeCacheEnsure } from "./internal/cacheEnsure.js"
import { cacheKeyOf as cacheKey, validateCacheKey } from "./internal/cacheKey.js"
import { makeCacheCoordinator } from "./internal/cacheLock.js"
import { makeCacheStore } from "./internal/cacheStore.js"
import { type DownloadProgress, Storage } from "./Storage.js"

/**
 * The cache key of a dataset version (the entry's directory name): the first 32 hex
 * characters of the SHA-256 of its dataset id and its whole version hash. An empty hash, or
 * one holding anything but `[A-Za-z0-9_-]`, is an `InvalidKey` error naming the value.
 */
export const cacheKeyOf = (datasetId: string, hash: string): Either.Either<string, CacheError> => cacheKey(datasetId, hash)

/** A cache entry as the service reports it. */
export interface DatasetCacheEntry {
  /** The entry's key (a digest of dataset id and version hash) and directory name. */
  readonly key: string
  readonly snapshotId: string
  readonly datasetId: string
  readonly datasetVersionHash: string
  readonly createdAt: Date
  readonly lastAccessed: Date
  /** Bytes downloaded into the entry. */
  readonly sizeBytes: number
}

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

/** Options of the cache; a value set here replaces the setting it names, unset ones keep the settings' or the defaults below. */
export interface DatasetCacheOptions {
  /** Cache directory (default `DATASET_CACHE_DIR`). */
  readonly cacheDir?: string
  /** Size limit in bytes (default `DATASET_CACHE_MAX_GB` GiB). */
  readonly maxBytes?: number
  /**
   * A lock or lease not refreshed for this long (or dated further than this in the future)
   * belongs to a dead process (default `DATASET_CACHE_STALE_SECONDS`, 30 s).
   */
  readonly staleAfter?: Duration.DurationInput
  /** How often held locks and leases are refreshed (default 5 s; at most a third of `staleAfter`). */
  readonly heartbeatEvery?: Duration.DurationInput
  /** How often a waiting process re-checks a busy lock (default 250 ms). */
  readonly pollEvery?: Duration.DurationInput
  /**
   * How long to wait for a live lock holder (e.g. another process downloading) before
   * failing (default `DATASET_CACHE_LOCK_TIMEOUT_SECONDS`, 6 h).
   */
  readonly lockTimeout?: Duration.DurationInput
  /** Parallel object downloads on a miss (default: the storage's). */
  readonly downloadConcurrency?: number
  /**
   * Free bytes on the file system holding a directory (default: `statfs`, the space an
   * unprivileged process may use); a full disk evicts unleased entries until there is room.
   */
  readonly freeSpace?: (dir: string) => Effect.Effect<number, CacheError>
}

/** Free bytes on the file system holding `dir`, as `statfs` reports them to unprivileged processes. */
const statfsFreeSpace = (dir: string): Effect.Effect<number, CacheError> =>
  Effect.tryPromise({
    try: () => NodeFs.statfs(dir),
    catch: (cause) =>
      new CacheError({ reason: "Io", path: dir, detail: `cannot read the free space: ${String(cause)}`, cause })
  }).pipe(Effect.map((stats) => stats.bavail * stats.bsize))

/**
 * What the cache reads from the environment (`DatasetCache.config`; the job context
 * composes the same section): where the cache is, its limits, and the job's dataset that
 * `ensure` defaults to.
 */
export interface DatasetCacheSettings {
  /** `DATASET_CACHE_DIR` (default `/tmp/datasets`). */
  readonly cacheDir: string
  /** `DATASET_CACHE_MAX_GB` GiB (default 50). */
  readonly cacheMaxBytes: number
  /** `DATASET_CACHE_STALE_SECONDS` (5 to 3600, default 30). */
  readonly cacheStaleAfter: Duration.Duration
  /** `DATASET_CACHE_LOCK_TIMEOUT_SECONDS` (1 to 86400, default 21600). */
  readonly cacheLockTimeout: Duration.Duration
  /** `DATASET_ID` (default empty). */
  readonly datasetId: string
  /** `SNAPSHOT_ID` (default empty). */
  readonly snapshotId: string
  /** `DATASET_VERSION_HASH` (default empty). */
  readonly datasetVersionHash: string
}

/** The cache variables (and the job's dataset ids) through `Config`. */
const datasetCacheConfig: Config.Config<DatasetCacheSettings> = Config.all([cacheSectionConfig, datasetSectionConfig]).pipe(
  Config.map(([cache, dataset]) => ({ ...cache, ...dataset }))
)

/** Builds the cache service over `settings`, `options` first (scoped: leases and heartbeats live in the scope). */
export const makeDatasetCache = (
  ctx: DatasetCacheSettings,
  options: DatasetCacheOptions = {}
): Effect.Effect<DatasetCacheService, never, Storage | FileSystem.FileSystem | Path.Path | Scope.Scope> =>
  Effect.gen(function*() {
    const storage = yield* Storage
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const cacheDir = path.resolve(options.cacheDir ?? ctx.cacheDir)
    const maxBytes = options.maxBytes ?? ctx.cacheMaxBytes
    const staleAfter = options.staleAfter === undefined ? ctx.cacheStaleAfter : Duration.decode(options.staleAfter)
    const coordinator = yield* makeCacheCoordinator(cacheDir, {
      staleAfter,
      // A heartbeat slower than a third of the threshold would let live holders look dead.
      heartbeatEvery: Duration.min(
        Duration.decode(options.heartbeatEvery ?? "5 seconds"),
        Option.getOrElse(Duration.divide(staleAfter, 3), () => staleAfter)
      ),
      pollEvery: Duration.decode(options.pollEvery ?? "250 millis"),
      lockTimeout: options.lockTimeout === undefined ? ctx.cacheLockTimeout : Duration.decode(options.lockTimeout)
    })
    const store = yield* makeCacheStore({ fs, path, cacheDir, coordinator })
    const ensureEntry = makeCacheEnsure({
      fs,
      path,
      cacheDir,
      coordinator,
      store,
      maxBytes,
      downloadConcurrency: options.downloadConcurrency,
      downloadDatasetSelective: storage.downloadDatasetSelective,
      freeSpace: options.freeSpace ?? statfsFreeSpace
    })

    const ensure = Effect.fn("DatasetCache.ensure")(function*(request: EnsureDatasetOptions) {
      const ids = {
        snapshotId: request.snapshotId ?? ctx.snapshotId,
        datasetId: request.datasetId ?? ctx.datasetId,
        hash: request.datasetVersionHash ?? ctx.datasetVersionHash
      }
      const key = yield* cacheKeyOf(ids.datasetId, ids.hash)
      yield* Effect.annotateCurrentSpan({ key, datasetId: ids.datasetId })
      return yield* ensureEntry(key, ids, request.destDir, request.onProgress)
    })

    const prune = Effect.fn("DatasetCache.prune")(function*(pruneOptions?: { readonly maxBytes?: number }) {
      yield* store.checkWritable
      return yield* store.prune(pruneOptions?.maxBytes ?? maxBytes)
    })

    const remove = Effect.fn("DatasetCache.remove")(function*(rawKey: string) {
      const key = yield* validateCacheKey(rawKey)
      yield* store.checkWritable
      return yield* store.remove(key)
    })

    return {
      cacheDir,
      ensure,
      entries: store.entries.pipe(Effect.withSpan("DatasetCache.entries")),
      prune,
      remove
    } satisfies DatasetCacheService
  })

/** The dataset cache: `const cache = yield* DatasetCache`. */
export class DatasetCache extends Context.Tag("trainer-sdk/DatasetCache")<DatasetCache, DatasetCacheService>() {
  /** Builds the service (see `makeDatasetCache`). */
  static readonly make = makeDatasetCache

  /** The cache variables (`DATASET_CACHE_*`) and the job's dataset ids through `Config`. */
  static readonly config: Config.Config<DatasetCacheSettings> = datasetCacheConfig

  /**
   * The cache with `settings` (values, e.g. a job context, or a `Config`, where an invalid
   * value is a `ConfigError` naming the variable), `options` first (tests, tools: directory,
   * size limit, lock timing); leases this process holds are released when its scope closes.
   */
  static readonly layerConfig = <S extends DatasetCacheSettings | Config.Config<DatasetCacheSettings>>(
    settings: S,
    options: DatasetCacheOptions = {}
  ): Layer.Layer<DatasetCache, SettingsError<S>, Storage | FileSystem.FileSystem | Path.Path> =>
    settingsLayer(DatasetCache, settings, (resolved: DatasetCacheSettings) => makeDatasetCache(resolved, options))

  /**
   * `layerConfig(DatasetCache.config)`: the cache configured from its own variables (no job
   * variable is read).
   */
  static readonly layer: Layer.Layer<DatasetCache, ConfigError, Storage | FileSystem.FileSystem | Path.Path> = DatasetCache
    .layerConfig(datasetCacheConfig)
}
