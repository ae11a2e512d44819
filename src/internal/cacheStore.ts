/**
 * The on-disk side of the dataset cache: entry directories and their completion markers,
 * the metadata file (read, rebuilt from the markers when lost or corrupt, rewritten
 * atomically under its cross-process lock), and the removal side: LRU eviction, removal of
 * one entry, and the trash that takes slow deletes out of every lock.
 */
import type { FileSystem, Path } from "@effect/platform"
import { Clock, Effect, Either, Option, Ref } from "effect"
import { CacheError } from "../Errors.js"
import { completeMarkerName, metadataFileName, metadataLockName, tempEntryName, validateCacheKey } from "./cacheKey.js"
import { type CacheCoordinator, cacheIoError, newCacheToken } from "./cacheLock.js"
import {
  type CacheEntryRecord,
  type CacheMetadataFile,
  decodeCacheMetadata,
  decodeEntryRecord,
  encodeCacheMetadata,
  planCacheEviction,
  toDatasetCacheEntry
} from "./cacheMetadata.js"
import { isNotFound, writeFileAtomically } from "./files.js"
import type { DatasetCacheEntry } from "../DatasetCache.js"

/** What the store works on. */
export interface CacheStoreEnv {
  readonly fs: FileSystem.FileSystem
  readonly path: Path.Path
  /** The cache directory (absolute). */
  readonly cacheDir: string
  readonly coordinator: CacheCoordinator
}

/**
 * The metadata without the records whose key is not a cache key: the file is written by
 * every job on the node, and a planted key such as `x/../../victim` must never become a
 * path that eviction or `prune` removes.
 */
const withValidKeys = (metadata: CacheMetadataFile): CacheMetadataFile => {
  const valid: Record<string, CacheEntryRecord> = {}
  for (const key of Object.keys(metadata)) if (Either.isRight(validateCacheKey(key))) valid[key] = metadata[key]!
  return valid
}

/** The current time as an ISO string, through `Clock`. */
export const cacheNowIso: Effect.Effect<string> = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())

/** Builds the store over `env.cacheDir` (its trash lives as long as the store). */
export const makeCacheStore = (env: CacheStoreEnv) =>
  Effect.gen(function*() {
    const { cacheDir, coordinator, fs, path } = env
    const metadataFile = path.join(cacheDir, metadataFileName)

    const entryDir = (key: string) => path.join(cacheDir, key)
    const markerOf = (key: string) => path.join(entryDir(key), completeMarkerName)
    const isComplete = (key: string) =>
      fs.exists(markerOf(key)).pipe(Effect.mapError(cacheIoError(markerOf(key), "cannot check", key)))

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
        Effect.mapError(cacheIoError(markerOf(key), "cannot read", key))
      )

    /** Rebuilds lost or corrupt metadata from the markers of the complete entries. */
    const rebuildMetadata = Effect.gen(function*() {
      const names = yield* fs.readDirectory(cacheDir).pipe(
        Effect.catchIf(isNotFound, () => Effect.succeed([] as Array<string>)),
        Effect.mapError(cacheIoError(cacheDir, "cannot list"))
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
        Effect.mapError(cacheIoError(metadataFile, "cannot read"))
      )
      if (Option.isNone(text)) return yield* rebuildMetadata
      return yield* Either.match(decodeCacheMetadata(text.value), {
        onLeft: () => rebuildMetadata,
        onRight: (metadata) => Effect.succeed(withValidKeys(metadata))
      })
    })

    /** Atomic write: a temporary file renamed over the metadata file. */
    const writeMetadata = (metadata: CacheMetadataFile) =>
      Effect.gen(function*() {
        yield* writeFileAtomically(fs, path, metadataFile, encodeCacheMetadata(metadata)).pipe(
          Effect.mapError(cacheIoError(metadataFile, "cannot write"))
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
          Effect.mapError(cacheIoError(dir, "cannot remove", key))
        )
        if (moved) yield* Ref.update(trash, (dirs) => [...dirs, aside])
        return moved
      })

    const emptyTrash = Effect.gen(function*() {
      const dirs = yield* Ref.getAndSet(trash, [])
      yield* Effect.forEach(
        dirs,
        (dir) => fs.remove(dir, { recursive: true, force: true }).pipe(Effect.mapError(cacheIoError(dir, "cannot remove"))),
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

    /**
     * Makes room on a full file system: evicts unleased entries (least recently accessed
     * first, never `keep`, never one another process holds) one by one, deleting each at once,
     * at least one and then until `enough` holds. The removed keys.
     */
    const evictForSpace = (keep: string, enough: Effect.Effect<boolean, CacheError>) =>
      updateMetadata((metadata) =>
        Effect.gen(function*() {
          let current: Record<string, CacheEntryRecord> = { ...metadata }
          const removed: Array<string> = []
          const order = planCacheEviction(current, -1, new Set([keep]))
          for (const key of order) {
            if (removed.length > 0 && (yield* enough)) break
            const outcome = yield* coordinator.tryWithLock(key, removeUnleased(key))
            if (Option.isSome(outcome) && Either.isRight(outcome.value)) {
              removed.push(key)
              const { [key]: _, ...rest } = current
              current = rest
              yield* emptyTrash
            }
          }
          return [removed as ReadonlyArray<string>, current as CacheMetadataFile] as const
        })
      )

    /**
     * Fails with `Unwritable`, naming the directory and what is wrong (read-only file system,
     * permission denied), when the cache directory cannot be created or written.
     */
    const checkWritable = fs.makeDirectory(cacheDir, { recursive: true }).pipe(
      Effect.zipRight(fs.access(cacheDir, { writable: true })),
      Effect.mapError((cause) => {
        const what = /EROFS/.test(cause.message)
          ? "read-only file system"
          : cause._tag === "SystemError" && cause.reason === "PermissionDenied"
          ? "permission denied"
          : "cannot be created or written"
        return new CacheError({
          reason: "Unwritable",
          path: cacheDir,
          detail: `the cache directory ${cacheDir} is not writable (${what}): ${cause.message}`,
          cause
        })
      })
    )

    /** The recorded entries, by key. */
    const entries: Effect.Effect<ReadonlyArray<DatasetCacheEntry>, CacheError> = Effect.map(
      readMetadata,
      (metadata) => Object.keys(metadata).sort().map((key) => toDatasetCacheEntry(key, metadata[key]!))
    )

    /** Evicts down to `limit` bytes; the removed keys. */
    const prune = (limit: number) => updateMetadata((metadata) => evict(metadata, limit, new Set())).pipe(Effect.zipLeft(emptyTrash))

    /** Removes one entry unless leased by a live process (`Lock`); `false` when there was none. */
    const remove = (key: string) =>
      coordinator.withLock(
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

    return {
      entryDir,
      isComplete,
      recordFromMarker,
      updateMetadata,
      removeDir,
      emptyTrash,
      evict,
      evictForSpace,
      checkWritable,
      entries,
      prune,
      remove
    }
  })

/** The store `makeCacheStore` builds. */
export type CacheStore = Effect.Effect.Success<ReturnType<typeof makeCacheStore>>
