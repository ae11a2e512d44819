import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { type Config, ConfigProvider, Effect, Either, Layer, Option, Redacted } from "effect"
import { Callback } from "../src/Callback.js"
import { ClearML } from "../src/ClearML.js"
import { DatasetCache } from "../src/DatasetCache.js"
import type { ConfigError } from "../src/Errors.js"
import { JobContext, type JobContextShape } from "../src/JobContext.js"
import { LogBuffer } from "../src/LogBuffer.js"
import { ReportOutbox } from "../src/Outbox.js"
import { Storage } from "../src/Storage.js"
import { toSdkConfigError } from "../src/internal/envSections.js"
import { TrainerSdk } from "../src/TrainerSdk.js"

/** Reads `config` from exactly `env`, as the SDK's `ConfigError`. */
const read = <A>(config: Config.Config<A>, env: Record<string, string>): Effect.Effect<Either.Either<A, ConfigError>> =>
  Effect.either(Effect.mapError(config, toSdkConfigError)).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

const failure = <A>(config: Config.Config<A>, env: Record<string, string>) =>
  Effect.flatMap(read(config, env), Either.match({ onLeft: Effect.succeed, onRight: () => Effect.die("expected a ConfigError") }))

const value = <A>(config: Config.Config<A>, env: Record<string, string>) =>
  Effect.flatMap(read(config, env), Either.match({ onLeft: Effect.die, onRight: Effect.succeed }))

const reveal = (secrets: ReadonlyArray<Redacted.Redacted<string>>) => secrets.map(Redacted.value)

/** Environments of every kind, with ClearML, ranks, secrets and training variables set. */
const environments: ReadonlyArray<Record<string, string>> = [
  { CALLBACK_URL: "http://backend/api", JOB_ID: "3" },
  {
    CALLBACK_URL: "http://backend/api",
    JOB_ID: "12",
    RANK: "0",
    TASK_TYPE: "segmentation",
    CONFIG: JSON.stringify({ epochs: 40 }),
    CALLBACK_MAX_RETRIES: "5",
    CALLBACK_RETRY_DELAY: "0.5",
    CALLBACK_SHUTDOWN_BUDGET: "40",
    CALLBACK_OUTBOX_MEMORY_MB: "8",
    EXTERNAL_STORAGE_SECRET_KEY: "external-secret",
    INTERNAL_STORAGE_SECRET_KEY: "internal-secret",
    CLEARML_API_HOST: "http://clearml:8008",
    CLEARML_API_ACCESS_KEY: "key",
    CLEARML_API_SECRET_KEY: "clearml-secret",
    DATASET_CACHE_DIR: "/data/cache",
    DATASET_CACHE_MAX_GB: "2",
    DATASET_ID: "ds-1",
    SNAPSHOT_ID: "snap-1",
    DATASET_VERSION_HASH: "abc-1"
  },
  {
    CALLBACK_URL: "http://backend/api",
    INFERENCE_JOB_ID: "4",
    CHECKPOINT_S3_URI: "s3://training-checkpoints/checkpoints/31/best.pt",
    IMAGES_S3_URI: "s3://inference-images/jobs/4/",
    LOCAL_RANK: "2",
    EPOCHS: "7",
    CLEARML_API_SECRET_KEY: "not-on-without-a-host"
  }
]

describe("Each service reads its own section, and the job context composes the same values", () => {
  it.effect("every service's config equals the job context's fields over the same environment", () =>
    Effect.gen(function*() {
      for (const env of environments) {
        const ctx: JobContextShape = yield* value(JobContext.config, env)
        const outbox = yield* value(ReportOutbox.config, env)
        expect({ ...outbox, secrets: reveal(outbox.secrets) }).toEqual({
          callbackUrl: ctx.callbackUrl,
          callbackMaxRetries: ctx.callbackMaxRetries,
          callbackRetryDelay: ctx.callbackRetryDelay,
          callbackShutdownBudget: ctx.callbackShutdownBudget,
          outboxMemoryBytes: ctx.outboxMemoryBytes,
          kind: ctx.kind,
          jobId: ctx.jobId,
          isPrimary: ctx.isPrimary,
          secrets: reveal(ctx.secrets)
        })
        expect(yield* value(Callback.config, env)).toEqual({
          kind: ctx.kind,
          jobId: ctx.jobId,
          isPrimary: ctx.isPrimary,
          taskType: ctx.taskType,
          basicConfig: { epochs: ctx.basicConfig.epochs }
        })
        expect(yield* value(LogBuffer.config, env)).toEqual({ kind: ctx.kind, jobId: ctx.jobId, isPrimary: ctx.isPrimary })
        expect(yield* value(ClearML.config, env)).toEqual({ clearml: ctx.clearml, isPrimary: ctx.isPrimary })
        expect(yield* value(DatasetCache.config, env)).toEqual({
          cacheDir: ctx.cacheDir,
          cacheMaxBytes: ctx.cacheMaxBytes,
          cacheStaleAfter: ctx.cacheStaleAfter,
          cacheLockTimeout: ctx.cacheLockTimeout,
          datasetId: ctx.datasetId,
          snapshotId: ctx.snapshotId,
          datasetVersionHash: ctx.datasetVersionHash
        })
      }
    }))

  it.effect("the secrets masked: both storage keys (their default when unset) and the ClearML secret only when tracking is on", () =>
    Effect.gen(function*() {
      const [plain, full, inference] = environments
      expect(reveal((yield* value(ReportOutbox.config, plain!)).secrets)).toEqual(["minioadmin", "minioadmin"])
      expect(reveal((yield* value(ReportOutbox.config, full!)).secrets)).toEqual(["external-secret", "internal-secret", "clearml-secret"])
      expect(reveal((yield* value(ReportOutbox.config, inference!)).secrets)).toEqual(["minioadmin", "minioadmin"])
    }))
})

describe("A service needs no other service's variables", () => {
  /** Variables every other section rejects: none of them may matter to a section that does not read them. */
  const foreign = {
    CALLBACK_URL: "not a url",
    CALLBACK_MAX_RETRIES: "many",
    IMGSZ: "huge",
    ADVANCED_CONFIG: "[1]",
    AWS_REQUEST_CHECKSUM_CALCULATION: "SOMETIMES",
    DATASET_CACHE_MAX_GB: "lots",
    CHECKPOINT_S3_URI: "http://not-s3",
    CLEARML_API_HOST: "clearml:8008"
  }

  it.effect("DatasetCache: no CALLBACK_URL, no job; an invalid cache variable names itself", () =>
    Effect.gen(function*() {
      expect(yield* value(DatasetCache.config, { DATASET_CACHE_DIR: "/d", JOB_ID: "seven", CALLBACK_URL: "x" })).toMatchObject({
        cacheDir: "/d",
        datasetId: ""
      })
      expect(yield* failure(DatasetCache.config, foreign)).toMatchObject({ variable: "DATASET_CACHE_MAX_GB", reason: "Invalid" })
    }))

  it.effect("ClearML: off without its variables (no job needed); the job only names the default task", () =>
    Effect.gen(function*() {
      const { CLEARML_API_HOST: _, ...withoutClearml } = foreign
      expect(yield* value(ClearML.config, withoutClearml)).toEqual({ clearml: Option.none(), isPrimary: true })
      const api = { CLEARML_API_HOST: "http://clearml:8008", CLEARML_API_ACCESS_KEY: "k", CLEARML_API_SECRET_KEY: "secret" }
      const named = yield* value(ClearML.config, { ...api, CLEARML_TASK_NAME: "run-1", CALLBACK_URL: "x" })
      expect(Option.map(named.clearml, (s) => s.taskName)).toEqual(Option.some("run-1"))
      expect(yield* failure(ClearML.config, api)).toMatchObject({ variable: "JOB_ID", reason: "Missing" })
      const byJob = yield* value(ClearML.config, { ...api, EXPORT_JOB_ID: "5", RANK: "1" })
      expect(Option.map(byJob.clearml, (s) => s.taskName)).toEqual(Option.some("export-5"))
      assert.isFalse(byJob.isPrimary)
      expect(yield* failure(ClearML.config, { ...foreign, CLEARML_API_ACCESS_KEY: "k", CLEARML_API_SECRET_KEY: "s" })).toMatchObject({
        variable: "CLEARML_API_HOST"
      })
    }))

  it.effect("Callback and LogBuffer: the job's id, rank and (Callback) task type and epochs; no CALLBACK_URL", () =>
    Effect.gen(function*() {
      const env = { ...foreign, INFERENCE_JOB_ID: "9", EPOCHS: "12", TASK_TYPE: "pose" }
      expect(yield* value(Callback.config, env)).toEqual({
        kind: "inference",
        jobId: 9,
        isPrimary: true,
        taskType: "pose",
        basicConfig: { epochs: 12 }
      })
      expect(yield* value(LogBuffer.config, env)).toEqual({ kind: "inference", jobId: 9, isPrimary: true })
      expect(yield* failure(Callback.config, { ...env, CONFIG: JSON.stringify({ epochs: 0 }), EPOCHS: "" })).toMatchObject({
        variable: "CONFIG.epochs"
      })
      expect(yield* failure(LogBuffer.config, { JOB_ID: "1", RANK: "-1" })).toMatchObject({ variable: "RANK" })
      expect(yield* failure(Callback.config, {})).toMatchObject({ variable: "JOB_ID", reason: "Missing" })
    }))

  it.effect("ReportOutbox: the delivery variables and the job's id; not the kind's other variables or the stores'", () =>
    Effect.gen(function*() {
      const env = { ...foreign, CALLBACK_URL: "http://backend/api", CALLBACK_MAX_RETRIES: "2", INFERENCE_JOB_ID: "9" }
      expect(yield* value(ReportOutbox.config, env)).toMatchObject({ callbackUrl: "http://backend/api", kind: "inference", jobId: 9 })
      expect(yield* failure(ReportOutbox.config, { JOB_ID: "1" })).toMatchObject({ variable: "CALLBACK_URL", reason: "Missing" })
    }))

  it.scoped("DatasetCache.layer builds from its own variables alone", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "service-config-" })
      const cache = yield* DatasetCache.pipe(
        Effect.provide(DatasetCache.layer.pipe(Layer.provide(Storage.layerTest()), Layer.provide(NodeContext.layer))),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATASET_CACHE_DIR", dir], ["CALLBACK_URL", "x"]])))
      )
      assert.strictEqual(cache.cacheDir, dir)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.live("TrainerSdk.layer still fails with the job context's first error, whatever a service's own section says", () =>
    Effect.gen(function*() {
      const build = (env: Record<string, string>) =>
        Effect.flip(Layer.build(TrainerSdk.layer)).pipe(
          Effect.scoped,
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      // DatasetCache's section alone would name DATASET_CACHE_MAX_GB, Storage's AWS_REQUEST_CHECKSUM_CALCULATION.
      expect(yield* build({ JOB_ID: "1", DATASET_CACHE_MAX_GB: "lots", AWS_REQUEST_CHECKSUM_CALCULATION: "x" })).toMatchObject({
        _tag: "ConfigError",
        variable: "CALLBACK_URL"
      })
      expect(yield* build({ CALLBACK_URL: "http://b/api", JOB_ID: "1", EPOCHS: "many", AWS_REQUEST_CHECKSUM_CALCULATION: "x" }))
        .toMatchObject({ variable: "EPOCHS" })
    }))
})
