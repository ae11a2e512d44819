/**
 * The `ensure` path of the dataset cache: under the entry's cross-process lock, a hit takes
 * a lease and records the access; a miss downloads into a temporary directory, verifies
 * every listed image, writes the completion marker, renames the entry into place and
 * evicts down to the size limit. Either way the job gets its own view of the entry.
 */
import type { FileSystem, Path } from "@effect/platform"
import { Effect, Either, Option } from "effect"
import { CacheError, isNoSpaceError } from "../Errors.js"
import type { StorageService } from "../Storage.js"
import { completeMarkerName, isAnnotationFileName, isTempEntryOf, manifestFileName, tempEntryName } from "./cacheKey.js"
import { type CacheCoordinator, cacheIoError, newCacheToken } from "./cacheLock.js"
import { type CacheEntryRecord, decodeEntryManifest, decodeEntryRecord, encodeEntryManifest } from "./cacheMetadata.js"
import { cacheNowIso, type CacheStore } from "./cacheStore.js"
import { isNotFound } from "./files.js"
import { annotationImageNames } from "./downloads.js"
import { resolveInside } from "./safeName.js"
import type { DownloadOptions, DownloadProgress, DownloadReport } from "../Storage.js"

/** The ids a cache entry records. */
export interface CacheEntryIds {
  readonly snapshotId: string
  readonly datasetId: string
  readonly hash: string
}

/** What `ensure` works on. */
export interface CacheEnsureEnv {
  readonly fs: FileSystem.FileSystem
  readonly path: Path.Path
  /** The cache directory (absolute). */
  readonly cacheDir: string
  readonly coordinator: CacheCoordinator
  readonly store: CacheStore
  /** The size limit a miss evicts down to. */
  readonly maxBytes: number
  /** Parallel object downloads on a miss (the storage's default when undefined). */
  readonly downloadConcurrency: number | undefined
  readonly downloadDatasetSelective: StorageService["downloadDatasetSelective"]
  /** Free bytes on the file system holding `dir`. */
  readonly freeSpace: (dir: string) => Effect.Effect<number, CacheError>
}

/** Download attempts of one entry on a full file system, each after evicting to make room. */
const maxNoSpaceAttempts = 8

/**
 * The `ensure` path over `env`: makes the entry `key` complete and leased by this process,
 * then builds the job's view at `destDir/dataset` and returns its path.
 */
export const makeCacheEnsure = (env: CacheEnsureEnv) => {
  const { cacheDir, coordinator, fs, path, store } = env

  /** Every image the primary annotation file lists must exist under `images/` with a non-zero size. */
  const verify = (key: string, dir: string, report: DownloadReport) =>
    Effect.gen(function*() {
      const annotationFile = path.resolve(dir, report.primaryAnnotationFile)
      const text = yield* fs.readFileString(annotationFile).pipe(
        Effect.mapError(cacheIoError(annotationFile, "cannot read the primary annotation file", key))
      )
      const names = yield* Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (e) => new CacheError({ reason: "Verify", key, path: annotationFile, detail: `malformed JSON: ${String(e)}` })
      }).pipe(
        Effect.flatMap((json) =>
          Either.mapLeft(annotationImageNames(json, annotationFile), (error) =>
            new CacheError({ reason: "Verify", key, path: annotationFile, detail: error.message }))
        )
      )
      const imagesDir = path.join(dir, "images")
      const missing: Array<string> = []
      yield* Effect.forEach(names, (name) =>
        Either.match(resolveInside(path, imagesDir, name), {
          onLeft: () => Effect.sync(() => void missing.push(name)),
          onRight: (file) =>
            fs.stat(file).pipe(
              Effect.map((info) => info.type === "File" && info.size > 0n),
              Effect.orElseSucceed(() => false),
              Effect.map((ok) => {
                if (!ok) missing.push(name)
              })
            )
        }), { concurrency: 32, discard: true })
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

  /** Writes the manifest of a downloaded entry: relative path and size of every file in it. */
  const writeManifest = (key: string, dir: string) =>
    Effect.gen(function*() {
      const names = yield* fs.readDirectory(dir, { recursive: true }).pipe(
        Effect.mapError(cacheIoError(dir, "cannot list the download", key))
      )
      const files: Array<readonly [string, number]> = []
      yield* Effect.forEach(names, (name) =>
        fs.stat(path.join(dir, name)).pipe(
          Effect.mapError(cacheIoError(path.join(dir, name), "cannot stat", key)),
          Effect.map((info) => {
            if (info.type === "File") files.push([name.split(path.sep).join("/"), Number(info.size)])
          })
        ), { concurrency: 64, discard: true })
      const file = path.join(dir, manifestFileName)
      yield* fs.writeFileString(file, encodeEntryManifest(files)).pipe(Effect.mapError(cacheIoError(file, "cannot write", key)))
    })

  /**
   * Why a complete entry cannot be served for `ids`, or `None` when it can: the entry must be
   * a real directory (not a link), its marker must name this dataset id and full version
   * hash, and every file of its manifest must be there with its recorded size. Everything
   * read here was written by some job on the node, so manifest paths go through the name rule.
   */
  const damage = (key: string, ids: CacheEntryIds) =>
    Effect.gen(function*() {
      const dir = store.entryDir(key)
      if (Option.isSome(yield* Effect.option(fs.readLink(dir)))) return Option.some("the entry is a symbolic link")
      const marker = yield* Effect.option(fs.readFileString(path.join(dir, completeMarkerName)))
      const record = Option.flatMap(marker, (text) => Option.getRight(decodeEntryRecord(text)))
      if (Option.isNone(record)) return Option.some("its marker is unreadable")
      if (record.value.dataset_id !== ids.datasetId || record.value.dataset_version_hash !== ids.hash) {
        return Option.some(
          `it holds dataset ${JSON.stringify(record.value.dataset_id)} version ${
            JSON.stringify(record.value.dataset_version_hash)
          }, not ${JSON.stringify(ids.datasetId)} version ${JSON.stringify(ids.hash)}`
        )
      }
      const manifestText = yield* Effect.option(fs.readFileString(path.join(dir, manifestFileName)))
      const manifest = Option.flatMap(manifestText, (text) => Option.getRight(decodeEntryManifest(text)))
      if (Option.isNone(manifest)) return Option.some("its manifest is missing or unreadable")
      const problems: Array<string> = []
      yield* Effect.forEach(manifest.value.files, ([name, size]) =>
        Either.match(resolveInside(path, dir, name), {
          onLeft: (why) => Effect.sync(() => void problems.push(`${JSON.stringify(name)} ${why}`)),
          onRight: (file) =>
            Effect.option(fs.stat(file)).pipe(Effect.map((info) => {
              if (Option.isNone(info) || info.value.type !== "File") problems.push(`${name} is missing`)
              else if (Number(info.value.size) !== size) problems.push(`${name} has ${info.value.size} bytes, not ${size}`)
            }))
        }), { concurrency: 64, discard: true })
      return problems.length === 0
        ? Option.none()
        : Option.some(`${problems.length} file(s) damaged: ${problems.slice(0, 5).join(", ")}${problems.length > 5 ? ", ..." : ""}`)
    })

  /** The miss path (holding the entry's lock): clean leftovers, download, verify, mark, rename into place. */
  const download = (
    key: string,
    ids: CacheEntryIds,
    onProgress: DownloadOptions["onProgress"]
  ) =>
    Effect.gen(function*() {
      yield* store.removeDir(store.entryDir(key), key)
      const names = yield* fs.readDirectory(cacheDir).pipe(Effect.mapError(cacheIoError(cacheDir, "cannot list")))
      yield* Effect.forEach(
        names.filter((name) => isTempEntryOf(key, name)),
        (name) => fs.remove(path.join(cacheDir, name), { recursive: true, force: true }).pipe(
          Effect.mapError(cacheIoError(path.join(cacheDir, name), "cannot remove a leftover download", key))
        ),
        { discard: true }
      )
      const temp = path.join(cacheDir, tempEntryName(key, yield* newCacheToken))
      return yield* Effect.gen(function*() {
        yield* fs.makeDirectory(temp).pipe(Effect.mapError(cacheIoError(temp, "cannot create", key)))
        const report = yield* env.downloadDatasetSelective(ids.datasetId, temp, {
          ...(env.downloadConcurrency === undefined ? {} : { concurrency: env.downloadConcurrency }),
          ...(onProgress === undefined ? {} : { onProgress })
        })
        yield* verify(key, temp, report)
        yield* writeManifest(key, temp)
        const now = yield* cacheNowIso
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
          Effect.mapError(cacheIoError(marker, "cannot write", key))
        )
        // Only a holder whose lock was broken while it stalled can find the entry already in place.
        return yield* fs.rename(temp, store.entryDir(key)).pipe(
          Effect.as(record),
          Effect.mapError(cacheIoError(store.entryDir(key), "cannot move into place", key)),
          Effect.catchAll((error) =>
            Effect.flatMap(store.isComplete(key), (complete) => complete ? store.recordFromMarker(key) : Effect.fail(error))
          )
        )
      }).pipe(Effect.onExit(() => Effect.ignore(fs.remove(temp, { recursive: true }))))
    })

  /**
   * The miss path on a file system that may be full: a download failing with `ENOSPC` (or
   * `EDQUOT`) evicts unleased entries, least recently used first, until the free space is
   * at least twice what the failed attempt wrote, and tries again; with nothing left to
   * evict it is a `NoSpace` error (a resource error) naming the cache directory.
   */
  const downloadMakingRoom = (key: string, ids: CacheEntryIds, onProgress: DownloadOptions["onProgress"]) => {
    const attempt = (
      round: number
    ): Effect.Effect<CacheEntryRecord, Effect.Effect.Error<ReturnType<typeof download>> | CacheError> =>
      Effect.gen(function*() {
        let wanted = 1
        const progress = (p: DownloadProgress) => {
          wanted = Math.max(wanted, 2 * p.bytes, p.totalBytes)
          return onProgress === undefined ? Effect.void : onProgress(p)
        }
        const result = yield* Effect.either(download(key, ids, progress))
        if (Either.isRight(result)) return result.right
        if (!isNoSpaceError(result.left)) return yield* Effect.fail(result.left)
        const removed = round < maxNoSpaceAttempts
          ? yield* store.evictForSpace(key, Effect.map(env.freeSpace(cacheDir), (free) => free >= wanted))
          : []
        if (removed.length === 0) {
          return yield* new CacheError({
            reason: "NoSpace",
            key,
            path: cacheDir,
            detail: `no space left on the file system of ${cacheDir} for dataset ${ids.datasetId} version ${ids.hash}${
              round > 1 ? ` after evicting for ${round - 1} attempt(s)` : ""
            }, and no entry left that no live job uses: ${result.left.message}`,
            cause: result.left
          })
        }
        yield* Effect.logWarning(`Dataset cache: file system full, evicted ${removed.join(", ")} to make room for ${key}`)
        return yield* attempt(round + 1)
      })
    return attempt(1)
  }

  /** The job's view: copied annotation files and a link to the entry's images, swapped in atomically. */
  const materialize = (key: string, destDir: string) =>
    Effect.gen(function*() {
      const source = store.entryDir(key)
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
        Effect.mapError(cacheIoError(view, "cannot materialize the job's dataset view", key))
      )
      return view
    })

  return (
    key: string,
    ids: CacheEntryIds,
    destDir: string,
    onProgress: DownloadOptions["onProgress"]
  ) =>
    Effect.gen(function*() {
      yield* store.checkWritable
      const hit = yield* coordinator.withLock(
        key,
        Effect.gen(function*() {
          if (yield* store.isComplete(key)) {
            const damaged = yield* damage(key, ids)
            if (Option.isNone(damaged)) {
              yield* coordinator.takeLease(key)
              return true
            }
            yield* Effect.logWarning(`Dataset cache: entry ${key} is rebuilt, ${damaged.value}`)
          }
          const record = yield* downloadMakingRoom(key, ids, onProgress)
          yield* coordinator.takeLease(key)
          yield* store.updateMetadata((metadata) => store.evict({ ...metadata, [key]: record }, env.maxBytes, new Set([key])))
          return false
        })
      )
      if (hit) {
        yield* store.updateMetadata((metadata) =>
          Effect.gen(function*() {
            const record = metadata[key] ?? (yield* store.recordFromMarker(key))
            return [undefined, { ...metadata, [key]: { ...record, last_accessed: yield* cacheNowIso } }] as const
          })
        )
      }
      // Deleting evicted entries is clean-up: a failure there must not fail a ready dataset.
      yield* store.emptyTrash.pipe(
        Effect.catchAll((error) => Effect.logWarning("Dataset cache: evicted entries not removed yet", error.message))
      )
      return yield* materialize(key, path.resolve(destDir))
    })
}
