/**
 * Cross-process coordination of the dataset cache: lock files created with `O_EXCL` and
 * lease files, both kept alive by a heartbeat in a worker thread (their mtime is refreshed
 * every few seconds, however long the main thread is blocked). A lock or lease whose mtime
 * is further than the stale threshold from now belongs to a dead holder, whatever container
 * wrote it; a PID is recorded too, and is trusted only as a fast path when the holder ran
 * in this very PID namespace on this host.
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Clock, Duration, Effect, Option, Ref, Schema, type Scope } from "effect"
import * as os from "node:os"
import { CacheError } from "../Errors.js"
import { startCacheHeartbeat } from "./cacheHeartbeat.js"
import { leasesDirName, locksDirName } from "./cacheKey.js"
import { isAlreadyExists, isNotFound } from "./files.js"

/** Who holds a lock or a lease; written as JSON into the file for diagnostics and the PID fast path. */
export const CacheHolder = Schema.Struct({
  token: Schema.String,
  pid: Schema.Number,
  /** Host name plus PID namespace: PIDs are comparable only when this matches. */
  host: Schema.String,
  since: Schema.String
})
/** @see CacheHolder */
export type CacheHolder = typeof CacheHolder.Type

/** This process as seen by the liveness rules. */
export interface LocalProcess {
  readonly host: string
  readonly pid: number
  readonly isPidAlive: (pid: number) => boolean
}

/** Timing of the coordination files. */
export interface CacheLockTiming {
  /** A lock or lease not refreshed for this long is stale. */
  readonly staleAfter: Duration.Duration
  /** How often held files are refreshed (well under `staleAfter`). */
  readonly heartbeatEvery: Duration.Duration
  /** How often a waiter re-checks a busy lock. */
  readonly pollEvery: Duration.Duration
  /** How long a waiter waits for a live holder before failing. */
  readonly lockTimeout: Duration.Duration
}

/**
 * Whether the holder of a lock or lease is gone: its file was not refreshed within
 * `staleAfter`, or its mtime lies more than `staleAfter` in the future (an implausible time,
 * e.g. written by a container with a skewed clock, must not block waiters for hours), or it
 * ran in this PID namespace on this host and its PID is dead.
 */
export const isHolderStale = (options: {
  readonly nowMs: number
  readonly mtimeMs: number
  readonly staleAfterMs: number
  readonly holder: CacheHolder | undefined
  readonly local: LocalProcess
}): boolean =>
  Math.abs(options.nowMs - options.mtimeMs) > options.staleAfterMs ||
  // The PID fast path only when the PID namespace is known: pods sharing a host name (e.g.
  // with hostNetwork) would otherwise compare each other's PIDs.
  (options.holder !== undefined && !options.local.host.endsWith("/") && options.holder.host === options.local.host &&
    options.holder.pid !== options.local.pid && !options.local.isPidAlive(options.holder.pid))

const decodeHolder = Schema.decodeUnknownOption(Schema.parseJson(CacheHolder))

/** Parses a holder file's text; a file being written (empty) or foreign reads as `undefined`. */
export const parseCacheHolder = (text: string): CacheHolder | undefined => Option.getOrUndefined(decodeHolder(text))

const isPidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** The local process identity: host name and PID namespace (from `/proc` where it exists). */
export const localProcess: Effect.Effect<LocalProcess, never, FileSystem.FileSystem> = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const namespace = yield* fs.readLink("/proc/self/ns/pid").pipe(Effect.orElseSucceed(() => ""))
  return { host: `${os.hostname()}/${namespace}`, pid: process.pid, isPidAlive }
})

const randomToken = (): string => `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 10)}`

/** A fresh random token (temporary names, holder identity). */
export const newCacheToken: Effect.Effect<string> = Effect.sync(randomToken)

/** Maps a file-system failure on `path` to a `CacheError` with reason `Io`. */
export const cacheIoError = (path: string, detail: string, key?: string) => (cause: PlatformError) =>
  new CacheError({ reason: "Io", path, key, detail: `${detail}: ${cause.message}`, cause })

/** The cross-process locks and leases of one cache directory, bound to this process. */
export interface CacheCoordinator {
  /** Runs `effect` holding the named lock, waiting (up to `lockTimeout`) while a live holder has it. */
  readonly withLock: <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CacheError, R>
  /** Runs `effect` holding the named lock if it is free (or stale) now; `None` when a live holder has it. */
  readonly tryWithLock: <A, E, R>(
    name: string,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<Option.Option<A>, E | CacheError, R>
  /** Records that this process uses entry `key` until the coordinator's scope closes (one lease per key). */
  readonly takeLease: (key: string) => Effect.Effect<void, CacheError>
  /** Live leases on `key` (of any process); stale lease files are removed on the way. */
  readonly liveLeaseCount: (key: string) => Effect.Effect<number, CacheError>
  /** Removes the lease directory of an entry (call holding the entry's lock, with no live lease). */
  readonly removeLeases: (key: string) => Effect.Effect<void, CacheError>
}

/**
 * Builds the coordinator for `cacheDir`: a heartbeat thread refreshes every held lock and
 * lease, and closing the scope removes this process's leases and stops the thread.
 */
export const makeCacheCoordinator = (
  cacheDir: string,
  timing: CacheLockTiming
): Effect.Effect<CacheCoordinator, never, FileSystem.FileSystem | Path.Path | Scope.Scope> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const local = yield* localProcess
    const locksDir = path.join(cacheDir, locksDirName)
    const leasesDir = path.join(cacheDir, leasesDirName)
    const staleAfterMs = Duration.toMillis(timing.staleAfter)

    /** Refreshes held locks and leases from a worker thread, whatever the main thread is doing. */
    const heartbeat = yield* startCacheHeartbeat(Duration.toMillis(timing.heartbeatEvery))
    /** This process's lease file per entry key. */
    const leases = yield* Ref.make(new Map<string, string>())

    const holderText = Effect.map(
      Effect.zip(newCacheToken, Clock.currentTimeMillis),
      ([token, now]): CacheHolder => ({ token, pid: local.pid, host: local.host, since: new Date(now).toISOString() })
    )

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const mine = yield* Ref.getAndSet(leases, new Map())
        yield* Effect.forEach(mine.values(), (p) => Effect.zipRight(heartbeat.remove(p), Effect.ignore(fs.remove(p))), {
          concurrency: 8,
          discard: true
        })
      })
    )

    /** Reads a holder file: `None` when it does not exist. */
    const inspect = (file: string) =>
      Effect.gen(function*() {
        const info = yield* fs.stat(file)
        const text = yield* fs.readFileString(file).pipe(Effect.orElseSucceed(() => ""))
        const nowMs = yield* Clock.currentTimeMillis
        const holder = parseCacheHolder(text)
        const mtimeMs = Option.match(info.mtime, { onNone: () => 0, onSome: (d) => d.getTime() })
        return Option.some({ holder, stale: isHolderStale({ nowMs, mtimeMs, staleAfterMs, holder, local }) })
      }).pipe(
        Effect.catchIf(isNotFound, () => Effect.succeed(Option.none())),
        Effect.mapError(cacheIoError(file, "cannot read"))
      )

    /**
     * Fails when `dir` is a symbolic link: a link planted as `.locks`, `.leases` or a lease
     * directory would make this process write its bookkeeping outside the cache directory.
     */
    const refuseLink = (dir: string) =>
      Effect.matchEffect(fs.readLink(dir), {
        onFailure: () => Effect.void,
        onSuccess: (target) =>
          Effect.fail(
            new CacheError({
              reason: "Corrupt",
              path: dir,
              detail: `is a symbolic link (to ${target}); the cache keeps its files inside its directory`
            })
          )
      })

    /**
     * Creates `file` exclusively with a fresh holder; `None` when it already exists. A missing
     * parent directory (a fresh cache) is created on the way; a linked one is refused.
     */
    const createExclusive = (file: string) =>
      Effect.flatMap(Effect.zipRight(refuseLink(path.dirname(file)), holderText), (holder) => {
        const write = fs.writeFileString(file, JSON.stringify(holder), { flag: "wx" })
        return write.pipe(
          Effect.catchIf(isNotFound, () =>
            fs.makeDirectory(path.dirname(file), { recursive: true }).pipe(Effect.zipRight(write))),
          Effect.as(Option.some(holder)),
          Effect.catchIf(isAlreadyExists, () => Effect.succeed(Option.none<CacheHolder>())),
          Effect.mapError(cacheIoError(file, "cannot create"))
        )
      })

    /**
     * Removes a stale lock under a second "breaker" lock, re-checking staleness there, so two
     * waiters that both saw the stale lock cannot remove a fresh one taken in between.
     */
    const breakStale = (lockFile: string) =>
      Effect.gen(function*() {
        const breaker = `${lockFile}.break`
        const taken = yield* createExclusive(breaker)
        if (Option.isNone(taken)) {
          const state = yield* inspect(breaker)
          if (Option.isSome(state) && state.value.stale) yield* Effect.ignore(fs.remove(breaker))
          return
        }
        yield* Effect.gen(function*() {
          const state = yield* inspect(lockFile)
          if (Option.isSome(state) && state.value.stale) {
            yield* fs.remove(lockFile).pipe(
              Effect.catchIf(isNotFound, () => Effect.void),
              Effect.mapError(cacheIoError(lockFile, "cannot remove stale lock"))
            )
          }
        }).pipe(Effect.ensuring(Effect.ignore(fs.remove(breaker))))
      })

    /** One attempt at the lock: the holder when taken, `None` when a live holder has it. */
    const attempt = (lockFile: string) =>
      Effect.gen(function*() {
        const taken = yield* createExclusive(lockFile)
        if (Option.isSome(taken)) return taken
        const state = yield* inspect(lockFile)
        if (Option.isSome(state) && !state.value.stale) return Option.none<CacheHolder>()
        if (Option.isSome(state)) yield* breakStale(lockFile)
        return yield* createExclusive(lockFile)
      })

    const release = (lockFile: string, holder: CacheHolder) =>
      Effect.gen(function*() {
        yield* heartbeat.remove(lockFile)
        const text = yield* fs.readFileString(lockFile).pipe(Effect.orElseSucceed(() => ""))
        if (parseCacheHolder(text)?.token === holder.token) yield* Effect.ignore(fs.remove(lockFile))
      })

    const hold = <A, E, R>(lockFile: string, holder: CacheHolder, effect: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(
        heartbeat.add(lockFile),
        () => effect,
        () => release(lockFile, holder)
      )

    const lockPath = (name: string) => path.join(locksDir, `${name}.lock`)

    const tryWithLock = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(attempt(lockPath(name)), (taken) =>
          Option.match(taken, {
            onNone: () => Effect.succeed(Option.none<A>()),
            onSome: (holder) => Effect.map(hold(lockPath(name), holder, restore(effect)), Option.some)
          }))
      )

    const withLock = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const lockFile = lockPath(name)
        const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(timing.lockTimeout)
        while (true) {
          const result = yield* tryWithLock(name, effect)
          if (Option.isSome(result)) return result.value
          if ((yield* Clock.currentTimeMillis) >= deadline) {
            const state = yield* inspect(lockFile)
            const holder = Option.flatMap(state, (s) => Option.fromNullable(s.holder))
            return yield* new CacheError({
              reason: "Lock",
              path: lockFile,
              detail: `timed out after ${Duration.format(timing.lockTimeout)} waiting for a live holder${
                Option.match(holder, {
                  onNone: () => "",
                  onSome: (h) => ` (pid ${h.pid} on ${h.host}, since ${h.since})`
                })
              }`
            })
          }
          yield* Effect.sleep(timing.pollEvery)
        }
      })

    const leaseDir = (key: string) => path.join(leasesDir, key)

    const takeLease = (key: string) =>
      Effect.gen(function*() {
        const current = (yield* Ref.get(leases)).get(key)
        if (current !== undefined && (yield* fs.exists(current).pipe(Effect.orElseSucceed(() => false)))) return
        const dir = leaseDir(key)
        yield* refuseLink(leasesDir)
        yield* refuseLink(dir)
        yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(cacheIoError(dir, "cannot create")))
        const token = yield* newCacheToken
        const file = path.join(dir, `${token}.lease`)
        const holder = yield* createExclusive(file)
        if (Option.isNone(holder)) {
          return yield* new CacheError({ reason: "Io", key, path: file, detail: "lease file name collision" })
        }
        yield* heartbeat.add(file)
        yield* Ref.update(leases, (m) => new Map(m).set(key, file))
      }).pipe(Effect.uninterruptible)

    const liveLeaseCount = (key: string) =>
      Effect.gen(function*() {
        const dir = leaseDir(key)
        const names = yield* fs.readDirectory(dir).pipe(
          Effect.catchIf(isNotFound, () => Effect.succeed([] as Array<string>)),
          Effect.mapError(cacheIoError(dir, "cannot list"))
        )
        let live = 0
        for (const name of names) {
          const file = path.join(dir, name)
          const state = yield* inspect(file)
          if (Option.isNone(state)) continue
          if (state.value.stale) yield* Effect.ignore(fs.remove(file))
          else live++
        }
        return live
      })

    const removeLeases = (key: string) =>
      fs.remove(leaseDir(key), { recursive: true }).pipe(
        Effect.catchIf(isNotFound, () => Effect.void),
        Effect.mapError(cacheIoError(leaseDir(key), "cannot remove"))
      )

    return { withLock, tryWithLock, takeLease, liveLeaseCount, removeLeases } satisfies CacheCoordinator
  })
