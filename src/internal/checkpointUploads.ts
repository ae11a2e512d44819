/**
 * Background checkpoint uploads: `enqueue` snapshots the file into the work directory (so the
 * trainer may overwrite it at the next epoch) and returns a handle at once; a fiber per
 * checkpoint type uploads the snapshots in order, at most one per type in flight. A newer
 * `last` replaces a `last` that has not started; every other type (`best`, any named one) is
 * uploaded in full. Failed uploads are retried, then logged and kept for the completion report.
 */
import { Cause, Deferred, Duration, Effect, Exit, type Fiber, Runtime, Schedule, type Scope } from "effect"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import { CheckpointError, thrownMessage } from "../Errors.js"
import { checkpointTypePattern } from "./storageFlows.js"
import type { CallbackCompletionReport, CallbackMetrics } from "../Callback.js"
import type {
  CheckpointUpload,
  CheckpointUploadFailure,
  CheckpointUploadStatus,
  CheckpointUploadsSummary,
  EnqueueCheckpointOptions
} from "../TrainerSdk.js"

/** The queue behind `TrainerSdk.enqueueCheckpoint`. */
export interface CheckpointUploadQueue {
  /** Snapshots the file (without blocking the event loop) and queues its upload. */
  readonly enqueue: (
    localPath: string,
    checkpointType: string,
    options: EnqueueCheckpointOptions & { readonly epoch: number | undefined }
  ) => Effect.Effect<CheckpointUpload, CheckpointError>
  /** The same from synchronous code: the snapshot is a synchronous copy; throws the `CheckpointError`. */
  readonly enqueueSync: (
    localPath: string,
    checkpointType: string,
    options: EnqueueCheckpointOptions & { readonly epoch: number | undefined }
  ) => CheckpointUpload
  /** Waits for every upload queued so far, at most `timeout`; never fails. */
  readonly awaitAll: (timeout: Duration.DurationInput) => Effect.Effect<CheckpointUploadsSummary>
}

/** The one checkpoint type whose queued upload a newer one replaces. */
const supersedable = (checkpointType: string) => checkpointType === "last"

interface Job {
  readonly seq: number
  readonly checkpointType: string
  readonly localPath: string
  readonly snapshot: string
  readonly metrics: CallbackMetrics | undefined
  readonly epoch: number | undefined
  readonly done: Deferred.Deferred<string, CheckpointError>
  status: CheckpointUploadStatus
}

const snapshotError = (localPath: string, cause: unknown): CheckpointError => {
  const code = (cause as { readonly code?: unknown } | null)?.code
  return code === "ENOENT" || code === "EISDIR"
    ? new CheckpointError({ reason: "NotFound", path: localPath, detail: "no such file" })
    : new CheckpointError({
      reason: "Upload",
      path: localPath,
      detail: `cannot snapshot the checkpoint: ${thrownMessage(cause)}`,
      cause
    })
}

/**
 * Builds the queue. `upload` is `Storage.uploadCheckpoint` (with the epoch option);
 * snapshots live in `snapshotDir` (removed with the scope).
 */
export const makeCheckpointUploadQueue = (options: {
  readonly snapshotDir: string
  readonly upload: (
    snapshot: string,
    checkpointType: string,
    metrics: CallbackMetrics | undefined,
    epoch: number | undefined
  ) => Effect.Effect<string, CheckpointError>
  /** Retries of a failed upload (default: 3 more attempts, exponential from 2 s, jittered). */
  readonly retry?: Schedule.Schedule<unknown, CheckpointError>
}): Effect.Effect<CheckpointUploadQueue, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const runtime: Runtime.Runtime<never> = yield* Effect.runtime<never>()
    const retry = options.retry ??
      Schedule.exponential("2 seconds").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(3)))
    const lanes = new Map<string, { running: Fiber.RuntimeFiber<void> | undefined; readonly pending: Array<Job> }>()
    const jobs: Array<Job> = []
    const uploaded: Record<string, string> = {}
    const failed: Array<CheckpointUploadFailure> = []
    let seq = 0

    // Closing the scope interrupts the lanes: whoever still waits on a handle hears of it.
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        Effect.forEach(jobs, (job) => Deferred.interrupt(job.done), { discard: true }),
        Effect.sync(() => nodeFs.rmSync(options.snapshotDir, { recursive: true, force: true }))
      )
    )

    const removeSnapshot = (job: Job) => Effect.sync(() => nodeFs.rmSync(job.snapshot, { force: true }))

    const uploadOne = (job: Job): Effect.Effect<void> =>
      Effect.gen(function*() {
        job.status = "uploading"
        const exit = yield* Effect.exit(
          options.upload(job.snapshot, job.checkpointType, job.metrics, job.epoch).pipe(
            Effect.retry({ schedule: retry, while: (error) => error.reason !== "NotFound" })
          )
        )
        yield* removeSnapshot(job)
        if (Exit.isSuccess(exit)) {
          job.status = "uploaded"
          uploaded[job.checkpointType] = exit.value
          yield* Deferred.succeed(job.done, exit.value)
          return
        }
        job.status = "failed"
        const error = Cause.squash(exit.cause)
        const message = thrownMessage(error)
        failed.push({ checkpointType: job.checkpointType, epoch: job.epoch, localPath: job.localPath, error: message })
        yield* Effect.logError(`Checkpoint upload failed (${job.checkpointType}, epoch ${job.epoch ?? "?"}): ${message}`).pipe(
          Effect.annotateLogs({ event_type: "checkpoint" })
        )
        yield* Deferred.failCause(job.done, exit.cause)
      })

    /** Uploads the lane's jobs one after the other until it is empty. */
    const drainLane = (checkpointType: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const lane = lanes.get(checkpointType)!
        const next = lane.pending.shift()
        if (next === undefined) {
          lane.running = undefined
          return Effect.void
        }
        return Effect.zipRight(uploadOne(next), drainLane(checkpointType))
      })

    /** Queues a job whose snapshot exists; runs synchronously (no async step). */
    const schedule = (job: Job): Effect.Effect<CheckpointUpload> =>
      Effect.gen(function*() {
        const lane = lanes.get(job.checkpointType) ?? { running: undefined, pending: [] }
        lanes.set(job.checkpointType, lane)
        if (supersedable(job.checkpointType)) {
          for (const older of lane.pending.splice(0)) {
            older.status = "superseded"
            yield* removeSnapshot(older)
            yield* Deferred.completeWith(older.done, Deferred.await(job.done))
          }
        }
        lane.pending.push(job)
        jobs.push(job)
        if (lane.running === undefined) lane.running = yield* Effect.forkIn(drainLane(job.checkpointType), scope)
        return {
          checkpointType: job.checkpointType,
          epoch: job.epoch,
          status: Effect.sync(() => job.status),
          result: Deferred.await(job.done)
        }
      })

    const prepare = (localPath: string, checkpointType: string) =>
      Effect.gen(function*() {
        if (!checkpointTypePattern.test(checkpointType)) {
          return yield* new CheckpointError({
            reason: "Upload",
            path: localPath,
            detail: `invalid checkpoint type "${checkpointType}" (letters, digits, '.', '_', '-')`
          })
        }
        seq += 1
        const snapshot = nodePath.join(options.snapshotDir, `${seq}-${nodePath.basename(localPath)}`)
        return { seq, snapshot, done: yield* Deferred.make<string, CheckpointError>() }
      })

    const jobOf = (
      prepared: { readonly seq: number; readonly snapshot: string; readonly done: Deferred.Deferred<string, CheckpointError> },
      localPath: string,
      checkpointType: string,
      enqueueOptions: EnqueueCheckpointOptions & { readonly epoch: number | undefined }
    ): Job => ({
      ...prepared,
      checkpointType,
      localPath,
      metrics: enqueueOptions.metrics,
      epoch: enqueueOptions.epoch,
      status: "queued"
    })

    const enqueue: CheckpointUploadQueue["enqueue"] = (localPath, checkpointType, enqueueOptions) =>
      Effect.gen(function*() {
        const prepared = yield* prepare(localPath, checkpointType)
        yield* Effect.tryPromise({
          try: async () => {
            await nodeFs.promises.mkdir(options.snapshotDir, { recursive: true })
            await nodeFs.promises.copyFile(localPath, prepared.snapshot, nodeFs.constants.COPYFILE_FICLONE)
          },
          catch: (cause) => snapshotError(localPath, cause)
        })
        return yield* schedule(jobOf(prepared, localPath, checkpointType, enqueueOptions))
      }).pipe(Effect.withSpan("TrainerSdk.enqueueCheckpoint", { attributes: { checkpointType } }))

    const enqueueSync: CheckpointUploadQueue["enqueueSync"] = (localPath, checkpointType, enqueueOptions) => {
      const program = Effect.gen(function*() {
        const prepared = yield* prepare(localPath, checkpointType)
        yield* Effect.try({
          try: () => {
            nodeFs.mkdirSync(options.snapshotDir, { recursive: true })
            nodeFs.copyFileSync(localPath, prepared.snapshot, nodeFs.constants.COPYFILE_FICLONE)
          },
          catch: (cause) => snapshotError(localPath, cause)
        })
        return yield* schedule(jobOf(prepared, localPath, checkpointType, enqueueOptions))
      })
      const exit = Runtime.runSyncExit(runtime)(program)
      if (Exit.isSuccess(exit)) return exit.value
      throw Cause.squash(exit.cause)
    }

    const awaitAll = (timeout: Duration.DurationInput): Effect.Effect<CheckpointUploadsSummary> =>
      Effect.gen(function*() {
        const waiting = jobs.filter((job) => job.status === "queued" || job.status === "uploading")
        yield* Effect.forEach(waiting, (job) => Effect.exit(Deferred.await(job.done)), { discard: true }).pipe(
          Effect.timeout(timeout),
          Effect.ignore
        )
        const unfinished = jobs.filter((job) => job.status === "queued" || job.status === "uploading")
        return {
          uploaded: { ...uploaded },
          failed: [
            ...failed,
            ...unfinished.map((job) => ({
              checkpointType: job.checkpointType,
              epoch: job.epoch,
              localPath: job.localPath,
              error: `still ${job.status} after ${Duration.format(Duration.decode(timeout))}`
            }))
          ]
        }
      })

    return { enqueue, enqueueSync, awaitAll }
  })

/**
 * `report` carrying the background uploads: `checkpoints.best` / `.last` default to the
 * uploaded ones, `extra_data.checkpoints` maps every uploaded type to its URI and
 * `extra_data.checkpoint_upload_failures` lists the failed uploads.
 */
export const completionWithUploads = (report: CallbackCompletionReport, uploads: CheckpointUploadsSummary): CallbackCompletionReport => {
  if (Object.keys(uploads.uploaded).length === 0 && uploads.failed.length === 0) return report
  const best = report.checkpoints?.best ?? uploads.uploaded["best"]
  const last = report.checkpoints?.last ?? uploads.uploaded["last"]
  return {
    ...report,
    checkpoints: { ...(best === undefined ? {} : { best }), ...(last === undefined ? {} : { last }) },
    extraData: {
      ...report.extraData,
      checkpoints: { ...uploads.uploaded },
      ...(uploads.failed.length === 0 ? {} : {
        checkpoint_upload_failures: uploads.failed.map((f) => ({
          checkpoint_type: f.checkpointType,
          epoch: f.epoch ?? null,
          local_path: f.localPath,
          error: f.error
        }))
      })
    }
  }
}
