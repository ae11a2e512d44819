/**
 * The record kept beside a job's checkpoints in the internal store, so a restarted job (same
 * `JOB_ID`, e.g. after preemption) can find where to resume: one small JSON object per
 * checkpoint type under `checkpoints/{job_id}/resume/{type}.json` (a key no checkpoint can
 * have: checkpoint types contain no `/`), holding the checkpoint's URI, the epoch it was
 * taken at and its metrics.
 */
import type { FileSystem } from "@effect/platform"
import { Clock, Effect, Either, Schema, Stream } from "effect"
import { CheckpointError, type StorageError } from "../Errors.js"
import type { ObjectStore } from "../ObjectStore.js"
import { isoTimestamp, metricMap } from "./callbackReports.js"
import type { CheckpointRecord } from "../Storage.js"

const RecordJson = Schema.Struct({
  checkpoint_type: Schema.String,
  uri: Schema.String,
  epoch: Schema.NullOr(Schema.Int.pipe(Schema.nonNegative())),
  metrics: Schema.Record({ key: Schema.String, value: Schema.NullOr(Schema.Number) }),
  uploaded_at: Schema.String
})

const RecordFromJson = Schema.parseJson(RecordJson)

/** The prefix of a job's checkpoint records. */
export const checkpointRecordPrefix = (jobId: number): string => `checkpoints/${jobId}/resume/`

/** The key of the record of `checkpointType`. */
export const checkpointRecordKey = (jobId: number, checkpointType: string): string =>
  `${checkpointRecordPrefix(jobId)}${checkpointType}.json`

/** The record as stored (JSON text). */
export const encodeCheckpointRecord = (record: CheckpointRecord): string =>
  JSON.stringify({
    checkpoint_type: record.checkpointType,
    uri: record.uri,
    epoch: record.epoch ?? null,
    metrics: metricMap(record.metrics),
    uploaded_at: record.uploadedAt
  } satisfies typeof RecordJson.Type)

/** Parses a stored record; `undefined` for text that is not one. */
export const decodeCheckpointRecord = (text: string): CheckpointRecord | undefined =>
  Either.match(Schema.decodeUnknownEither(RecordFromJson)(text), {
    onLeft: () => undefined,
    onRight: (r) => ({
      checkpointType: r.checkpoint_type,
      uri: r.uri,
      epoch: r.epoch ?? undefined,
      metrics: r.metrics,
      uploadedAt: r.uploaded_at
    })
  })

/** The newest checkpoint first: highest epoch (unknown lowest), then the latest upload. */
export const newestFirst = (a: CheckpointRecord, b: CheckpointRecord): number =>
  (b.epoch ?? -1) - (a.epoch ?? -1) || b.uploadedAt.localeCompare(a.uploadedAt)

/** Reading and writing records in the internal store, through a local temp file. */
export const makeCheckpointRecords = (env: {
  readonly fs: FileSystem.FileSystem
  readonly internal: ObjectStore
  readonly jobId: number
}) => {
  const { fs, internal, jobId } = env
  const tempFile = Effect.acquireRelease(
    Effect.orDie(fs.makeTempFile({ prefix: "trainer-sdk-record-" })),
    (file) => Effect.ignore(fs.remove(file, { force: true }))
  )

  /** Stores the record of an uploaded checkpoint (replacing the type's previous one). */
  const write = (
    localPath: string,
    record: Omit<CheckpointRecord, "uploadedAt">
  ): Effect.Effect<void, CheckpointError> =>
    Effect.scoped(Effect.gen(function*() {
      const file = yield* tempFile
      const uploadedAt = isoTimestamp(yield* Clock.currentTimeMillis)
      yield* Effect.orDie(fs.writeFileString(file, encodeCheckpointRecord({ ...record, uploadedAt })))
      yield* internal.putFile(checkpointRecordKey(jobId, record.checkpointType), file, { contentType: "application/json" })
    })).pipe(
      Effect.mapError((error: StorageError) =>
        new CheckpointError({ reason: "Upload", path: localPath, detail: `resume record not stored: ${error.message}`, cause: error })
      )
    )

  /** Every readable record of the job, newest checkpoint first; an unreadable one is skipped with a warning. */
  const list: Effect.Effect<ReadonlyArray<CheckpointRecord>, StorageError> = Effect.gen(function*() {
    const objects = yield* Stream.runCollect(internal.list(checkpointRecordPrefix(jobId), { recursive: false }))
    const records: Array<CheckpointRecord> = []
    for (const object of objects) {
      if (!object.key.endsWith(".json")) continue
      const text = yield* Effect.scoped(Effect.flatMap(tempFile, (file) =>
        Effect.zipRight(internal.getToFile(object.key, file), Effect.orDie(fs.readFileString(file)))))
      const record = decodeCheckpointRecord(text)
      if (record === undefined) yield* Effect.logWarning(`Ignoring an unreadable checkpoint record: s3://${internal.bucket}/${object.key}`)
      else records.push(record)
    }
    return records.sort(newestFirst)
  })

  return { write, list }
}
