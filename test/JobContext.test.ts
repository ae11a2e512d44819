import { assert, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either, Layer, Logger, Option, Redacted } from "effect"
import { ConfigError, JobContext, normalizeTaskType } from "../src/index.js"
import { makeJobContext } from "../src/JobContext.js"

const base = { CALLBACK_URL: "http://backend:8000/api/v1", JOB_ID: "123" }
const common = { CALLBACK_URL: "http://backend:8000/api/v1" }
const inference = {
  ...common,
  INFERENCE_JOB_ID: "4",
  CHECKPOINT_S3_URI: "s3://training-checkpoints/checkpoints/31/best.pt",
  IMAGES_S3_URI: "s3://inference-images/jobs/4/",
  TRAINING_JOB_ID: "31"
}
const exportEnv = {
  ...common,
  EXPORT_JOB_ID: "5",
  TRAINING_JOB_ID: "31",
  CHECKPOINT_S3_URI: "s3://training-checkpoints/checkpoints/31/best.pt",
  EXPORT_FORMAT: "onnx"
}
const evaluation = {
  ...common,
  TEST_RUN_ID: "6",
  CHECKPOINT_S3_URI: "s3://training-checkpoints/checkpoints/31/best.pt",
  DATASET_S3_URI: "s3://training-datasets/datasets/ds-9"
}
const omit = (env: Record<string, string>, name: string): Record<string, string> => {
  const { [name]: _, ...rest } = env
  return rest
}

/** Resolves the job context from a map of environment variables. */
const resolve = (env: Record<string, string>) =>
  Effect.flatMap(JobContext, Effect.succeed).pipe(
    Effect.provide(JobContext.layer),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
    Effect.either
  )

const resolveOk = (env: Record<string, string>) =>
  resolve({ ...base, ...env }).pipe(Effect.flatMap((e) => Either.isRight(e) ? Effect.succeed(e.right) : Effect.die(e.left)))

const resolveErr = (env: Record<string, string>) =>
  resolve(env).pipe(Effect.flatMap((e) => Either.isLeft(e) ? Effect.succeed(e.left) : Effect.die("expected a ConfigError")))

describe("JobContext", () => {
  it.effect("resolves the spec's defaults", () =>
    Effect.gen(function*() {
      const ctx = yield* resolveOk({})
      assert.strictEqual(ctx.callbackUrl, "http://backend:8000/api/v1")
      assert.strictEqual(ctx.jobId, 123)
      assert.strictEqual(ctx.taskType, "detection")
      assert.strictEqual(ctx.modelName, "")
      assert.strictEqual(ctx.framework, "")
      assert.strictEqual(ctx.datasetId, "")
      assert.strictEqual(ctx.snapshotId, "")
      assert.strictEqual(ctx.datasetVersionHash, "")
      assert.deepStrictEqual(
        { ...ctx.externalStorage, secretKey: Redacted.value(ctx.externalStorage.secretKey) },
        { endpoint: "http://localhost:9000", accessKey: "minioadmin", secretKey: "minioadmin", bucket: "training-datasets" }
      )
      assert.deepStrictEqual(
        { ...ctx.internalStorage, secretKey: Redacted.value(ctx.internalStorage.secretKey) },
        { endpoint: "http://localhost:9002", accessKey: "minioadmin", secretKey: "minioadmin", bucket: "training-checkpoints" }
      )
      assert.strictEqual(ctx.region, "us-east-1")
      assert.strictEqual(ctx.requestChecksumCalculation, "WHEN_REQUIRED")
      assert.strictEqual(ctx.cacheDir, "/tmp/datasets")
      assert.strictEqual(ctx.cacheMaxBytes, 50 * 1024 ** 3)
      assert.strictEqual(ctx.callbackMaxRetries, 3)
      assert.strictEqual(Duration.toMillis(ctx.callbackRetryDelay), 2000)
      assert.strictEqual(ctx.rank, 0)
      assert.isTrue(ctx.isPrimary)
      assert.deepStrictEqual(ctx.basicConfig, {
        imgsz: 640,
        epochs: 100,
        batch: 16,
        lr0: 0.01,
        optimizer: "auto",
        augment: true,
        device: "0",
        workers: 8,
        patience: 50
      })
      assert.deepStrictEqual(ctx.advancedConfig, {})
      assert.isTrue(Option.isNone(ctx.clearml))
    }))

  it.effect("reads every job, storage, cache and callback variable", () =>
    Effect.gen(function*() {
      const ctx = yield* resolveOk({
        TASK_TYPE: "pose",
        MODEL_NAME: "yolo11n",
        FRAMEWORK: "ultralytics",
        DATASET_ID: "ds-1",
        SNAPSHOT_ID: "snap-1",
        DATASET_VERSION_HASH: "abcdef0123456789ffff",
        EXTERNAL_STORAGE_ENDPOINT: "http://minio-ext:9000",
        EXTERNAL_STORAGE_ACCESS_KEY: "ext-key",
        EXTERNAL_STORAGE_SECRET_KEY: "ext-secret",
        EXTERNAL_BUCKET_DATASETS: "datasets-b",
        INTERNAL_STORAGE_ENDPOINT: "https://minio-int:9002",
        INTERNAL_STORAGE_ACCESS_KEY: "int-key",
        INTERNAL_STORAGE_SECRET_KEY: "int-secret",
        INTERNAL_BUCKET_CHECKPOINTS: "ckpt-b",
        AWS_REGION: "eu-west-1",
        AWS_REQUEST_CHECKSUM_CALCULATION: "when_supported",
        DATASET_CACHE_DIR: "/cache",
        DATASET_CACHE_MAX_GB: "0.5",
        CALLBACK_MAX_RETRIES: "5",
        CALLBACK_RETRY_DELAY: "0.25"
      })
      assert.strictEqual(ctx.taskType, "pose")
      assert.strictEqual(ctx.modelName, "yolo11n")
      assert.strictEqual(ctx.framework, "ultralytics")
      assert.strictEqual(ctx.datasetId, "ds-1")
      assert.strictEqual(ctx.snapshotId, "snap-1")
      assert.strictEqual(ctx.datasetVersionHash, "abcdef0123456789ffff")
      assert.strictEqual(ctx.externalStorage.endpoint, "http://minio-ext:9000")
      assert.strictEqual(ctx.externalStorage.accessKey, "ext-key")
      assert.strictEqual(Redacted.value(ctx.externalStorage.secretKey), "ext-secret")
      assert.strictEqual(ctx.externalStorage.bucket, "datasets-b")
      assert.strictEqual(ctx.internalStorage.endpoint, "https://minio-int:9002")
      assert.strictEqual(ctx.internalStorage.accessKey, "int-key")
      assert.strictEqual(Redacted.value(ctx.internalStorage.secretKey), "int-secret")
      assert.strictEqual(ctx.internalStorage.bucket, "ckpt-b")
      assert.strictEqual(ctx.region, "eu-west-1")
      assert.strictEqual(ctx.requestChecksumCalculation, "WHEN_SUPPORTED")
      assert.strictEqual(ctx.cacheDir, "/cache")
      assert.strictEqual(ctx.cacheMaxBytes, 512 * 1024 ** 2)
      assert.strictEqual(ctx.callbackMaxRetries, 5)
      assert.strictEqual(Duration.toMillis(ctx.callbackRetryDelay), 250)
    }))

  it.effect("keeps every task type as given and maps the known aliases to the converter's tasks", () =>
    Effect.gen(function*() {
      // Every task type the platform's trainers declare (platform-behaviour.md), and a few spellings.
      const cases: Array<[string, string, string | undefined]> = [
        ["detection", "detection", "detection"],
        ["object_detection", "object_detection", "detection"],
        ["open_vocabulary_detection", "open_vocabulary_detection", undefined],
        ["classification", "classification", "classification"],
        ["image_classification", "image_classification", "classification"],
        ["segmentation", "segmentation", "segmentation"],
        ["instance_segmentation", "instance_segmentation", "segmentation"],
        ["semantic_segmentation", "semantic_segmentation", undefined],
        ["panoptic_segmentation", "panoptic_segmentation", undefined],
        ["pose", "pose", "pose"],
        ["pose_estimation", "pose_estimation", "pose"],
        ["Detection", "Detection", "detection"],
        ["  segmentation ", "segmentation", "segmentation"],
        ["depth_estimation", "depth_estimation", undefined]
      ]
      for (const [raw, given, task] of cases) {
        const ctx = yield* resolveOk({ TASK_TYPE: raw })
        assert.strictEqual(ctx.taskType, given, raw)
        assert.deepStrictEqual(Option.getOrUndefined(ctx.converterTask), task, raw)
      }
      assert.isUndefined(normalizeTaskType("depth"))
    }))

  it.effect("ranks: RANK, then LOCAL_RANK; non-zero is secondary", () =>
    Effect.gen(function*() {
      assert.isFalse((yield* resolveOk({ RANK: "2" })).isPrimary)
      assert.isFalse((yield* resolveOk({ LOCAL_RANK: "1" })).isPrimary)
      const both = yield* resolveOk({ RANK: "0", LOCAL_RANK: "3" })
      assert.strictEqual(both.rank, 0)
      assert.isTrue(both.isPrimary)
    }))

  it.effect("ClearML is enabled only when all three variables are set", () =>
    Effect.gen(function*() {
      const partial = yield* resolveOk({ CLEARML_API_HOST: "http://clearml:8008", CLEARML_API_ACCESS_KEY: "k" })
      assert.isTrue(Option.isNone(partial.clearml))
      const full = yield* resolveOk({
        CLEARML_API_HOST: "http://clearml:8008",
        CLEARML_API_ACCESS_KEY: "k",
        CLEARML_API_SECRET_KEY: "s",
        JOB_ID: "77"
      })
      const clearml = Option.getOrThrow(full.clearml)
      assert.strictEqual(clearml.apiHost, "http://clearml:8008")
      assert.strictEqual(clearml.project, "trainer-sdk")
      assert.strictEqual(clearml.taskName, "job-77")
      assert.strictEqual(Redacted.value(clearml.secretKey), "s")
      assert.isTrue(Option.isNone(clearml.taskId))
      const borrowed = yield* resolveOk({
        CLEARML_API_HOST: "http://clearml:8008",
        CLEARML_API_ACCESS_KEY: "k",
        CLEARML_API_SECRET_KEY: "s",
        CLEARML_TASK_ID: " 4f2a9c "
      })
      assert.deepStrictEqual(Option.getOrThrow(borrowed.clearml).taskId, Option.some("4f2a9c"))
    }))

  describe("basic config priority: direct env > CONFIG key > legacy env > default", () => {
    const table = [
      { key: "imgsz", direct: "IMGSZ", configKey: "imgsz", legacy: "CONFIG_IMGSZ", values: ["320", 416, "512"], expect: [320, 416, 512] },
      { key: "epochs", direct: "EPOCHS", configKey: "epochs", legacy: "CONFIG_EPOCHS", values: ["10", 20, "30"], expect: [10, 20, 30] },
      { key: "batch", direct: "BATCH_SIZE", configKey: "batch", legacy: "CONFIG_BATCH", values: ["-1", 8, "4"], expect: [-1, 8, 4] },
      { key: "lr0", direct: "LEARNING_RATE", configKey: "learning_rate", legacy: "CONFIG_LR0", values: ["0.1", 0.2, "0.3"], expect: [0.1, 0.2, 0.3] },
      { key: "optimizer", direct: "OPTIMIZER", configKey: "optimizer", legacy: "CONFIG_OPTIMIZER", values: ["SGD", "Adam", "AdamW"], expect: ["SGD", "Adam", "AdamW"] },
      { key: "augment", direct: "AUGMENT", configKey: "augment", legacy: "CONFIG_AUGMENT", values: ["TRUE", false, "false"], expect: [true, false, false] },
      { key: "device", direct: "DEVICE", configKey: "device", legacy: "CONFIG_DEVICE", values: ["cpu", 1, "2"], expect: ["cpu", "1", "2"] },
      { key: "workers", direct: "WORKERS", configKey: "workers", legacy: "CONFIG_WORKERS", values: ["0", 4, "2"], expect: [0, 4, 2] },
      { key: "patience", direct: "PATIENCE", configKey: "patience", legacy: "CONFIG_PATIENCE", values: ["5", 6, "7"], expect: [5, 6, 7] }
    ] as const
    for (const row of table) {
      it.effect(row.key, () =>
        Effect.gen(function*() {
          const [directValue, configValue, legacyValue] = row.values
          const config = JSON.stringify({ [row.configKey]: configValue })
          const all = yield* resolveOk({ [row.direct]: String(directValue), CONFIG: config, [row.legacy]: String(legacyValue) })
          assert.deepStrictEqual(all.basicConfig[row.key], row.expect[0])
          const noDirect = yield* resolveOk({ CONFIG: config, [row.legacy]: String(legacyValue) })
          assert.deepStrictEqual(noDirect.basicConfig[row.key], row.expect[1])
          const legacyOnly = yield* resolveOk({ [row.legacy]: String(legacyValue) })
          assert.deepStrictEqual(legacyOnly.basicConfig[row.key], row.expect[2])
        }))
    }

    it.effect("augment: only \"true\" in any case is true", () =>
      Effect.gen(function*() {
        assert.isTrue((yield* resolveOk({ AUGMENT: "True" })).basicConfig.augment)
        assert.isFalse((yield* resolveOk({ AUGMENT: "yes" })).basicConfig.augment)
        assert.isFalse((yield* resolveOk({ AUGMENT: "0" })).basicConfig.augment)
      }))

    it.effect("empty variables count as unset", () =>
      Effect.gen(function*() {
        const ctx = yield* resolveOk({ EPOCHS: "", CONFIG_EPOCHS: "12", TASK_TYPE: "" })
        assert.strictEqual(ctx.basicConfig.epochs, 12)
        assert.strictEqual(ctx.taskType, "detection")
      }))
  })

  describe("advanced config", () => {
    it.effect("CONFIG.advanced_config wins over ADVANCED_CONFIG", () =>
      Effect.gen(function*() {
        const ctx = yield* resolveOk({
          CONFIG: JSON.stringify({ advanced_config: { mosaic: 0.5 } }),
          ADVANCED_CONFIG: JSON.stringify({ mosaic: 1 })
        })
        assert.deepStrictEqual(ctx.advancedConfig, { mosaic: 0.5 })
      }))
    it.effect("ADVANCED_CONFIG when CONFIG has none", () =>
      Effect.gen(function*() {
        const ctx = yield* resolveOk({ CONFIG: "{}", ADVANCED_CONFIG: JSON.stringify({ mixup: 0.1 }) })
        assert.deepStrictEqual(ctx.advancedConfig, { mixup: 0.1 })
      }))
  })

  describe("the kind of job follows from which id variable is set", () => {
    const uri = (value: string) => {
      const [bucket, ...key] = value.slice("s3://".length).split("/")
      return { uri: value, bucket: bucket!, key: key.join("/") }
    }
    it.effect("training (JOB_ID), with DATASET_S3_URI parsed when set", () =>
      Effect.gen(function*() {
        const ctx = yield* resolveOk({ DATASET_S3_URI: "s3://training-datasets/datasets/ds-1" })
        assert.strictEqual(ctx.kind, "training")
        assert.deepStrictEqual(ctx.job, {
          kind: "training",
          jobId: 123,
          datasetS3Uri: Option.some(uri("s3://training-datasets/datasets/ds-1"))
        })
        assert.deepStrictEqual((yield* resolveOk({})).job, { kind: "training", jobId: 123, datasetS3Uri: Option.none() })
      }))
    it.effect("inference (INFERENCE_JOB_ID): checkpoint and images URIs, TRAINING_JOB_ID when known", () =>
      Effect.gen(function*() {
        const ctx = yield* Effect.flatMap(resolve(inference), Effect.orDie)
        assert.strictEqual(ctx.kind, "inference")
        assert.strictEqual(ctx.jobId, 4)
        assert.deepStrictEqual(ctx.job, {
          kind: "inference",
          inferenceJobId: 4,
          checkpointS3Uri: uri("s3://training-checkpoints/checkpoints/31/best.pt"),
          imagesS3Uri: uri("s3://inference-images/jobs/4/"),
          trainingJobId: Option.some(31)
        })
        const unknownTraining = yield* Effect.flatMap(resolve(omit(inference, "TRAINING_JOB_ID")), Effect.orDie)
        assert.deepStrictEqual(unknownTraining.job.kind === "inference" && unknownTraining.job.trainingJobId, Option.none())
        assert.strictEqual(unknownTraining.taskType, "detection")
      }))
    it.effect("export (EXPORT_JOB_ID): training job, checkpoint and format", () =>
      Effect.gen(function*() {
        const ctx = yield* Effect.flatMap(resolve(exportEnv), Effect.orDie)
        assert.deepStrictEqual(ctx.job, {
          kind: "export",
          exportJobId: 5,
          trainingJobId: 31,
          checkpointS3Uri: uri("s3://training-checkpoints/checkpoints/31/best.pt"),
          exportFormat: "onnx"
        })
        assert.strictEqual(ctx.jobId, 5)
      }))
    it.effect("evaluation (TEST_RUN_ID): checkpoint and dataset URIs", () =>
      Effect.gen(function*() {
        const ctx = yield* Effect.flatMap(resolve(evaluation), Effect.orDie)
        assert.deepStrictEqual(ctx.job, {
          kind: "evaluation",
          testRunId: 6,
          checkpointS3Uri: uri("s3://training-checkpoints/checkpoints/31/best.pt"),
          datasetS3Uri: uri("s3://training-datasets/datasets/ds-9"),
          trainingJobId: Option.none()
        })
        assert.strictEqual(ctx.jobId, 6)
      }))
    it.effect("the raw CONFIG object, primary metric and mode are reachable", () =>
      Effect.gen(function*() {
        const config = {
          epochs: 3,
          primary_metric: "mAP50-95",
          primary_metric_mode: "min",
          split_config: { method: "auto", default_ratio: [0.7, 0.3], seed: 7 },
          mosaic: 0.5
        }
        const ctx = yield* resolveOk({ CONFIG: JSON.stringify(config) })
        assert.deepStrictEqual(ctx.config, config)
        assert.deepStrictEqual(ctx.primaryMetric, Option.some("mAP50-95"))
        assert.strictEqual(ctx.primaryMetricMode, "min")
        const plain = yield* resolveOk({})
        assert.deepStrictEqual(plain.config, {})
        assert.isTrue(Option.isNone(plain.primaryMetric))
        assert.strictEqual(plain.primaryMetricMode, "max")
      }))
  })

  describe("bad input is a ConfigError naming the variable", () => {
    const cases: Array<[string, Record<string, string>, string, "Missing" | "Invalid"]> = [
      ["missing CALLBACK_URL", { JOB_ID: "1" }, "CALLBACK_URL", "Missing"],
      ["missing JOB_ID", { CALLBACK_URL: "http://b/api" }, "JOB_ID", "Missing"],
      ["non-integer JOB_ID", { ...base, JOB_ID: "12a" }, "JOB_ID", "Invalid"],
      ["fractional JOB_ID", { ...base, JOB_ID: "1.5" }, "JOB_ID", "Invalid"],
      ["malformed CONFIG", { ...base, CONFIG: "{epochs: 3" }, "CONFIG", "Invalid"],
      ["CONFIG not an object", { ...base, CONFIG: "[1,2]" }, "CONFIG", "Invalid"],
      ["malformed ADVANCED_CONFIG", { ...base, ADVANCED_CONFIG: "{\"a\":" }, "ADVANCED_CONFIG", "Invalid"],
      ["non-numeric EPOCHS", { ...base, EPOCHS: "ten" }, "EPOCHS", "Invalid"],
      ["zero EPOCHS", { ...base, EPOCHS: "0" }, "EPOCHS", "Invalid"],
      ["non-numeric CONFIG.epochs", { ...base, CONFIG: "{\"epochs\":\"x\"}" }, "CONFIG.epochs", "Invalid"],
      ["non-numeric legacy CONFIG_BATCH", { ...base, CONFIG_BATCH: "big" }, "CONFIG_BATCH", "Invalid"],
      ["negative cache size", { ...base, DATASET_CACHE_MAX_GB: "-1" }, "DATASET_CACHE_MAX_GB", "Invalid"],
      ["bad callback URL", { ...base, CALLBACK_URL: "backend:8000" }, "CALLBACK_URL", "Invalid"],
      ["negative retries", { ...base, CALLBACK_MAX_RETRIES: "-2" }, "CALLBACK_MAX_RETRIES", "Invalid"],
      ["non-numeric retry delay", { ...base, CALLBACK_RETRY_DELAY: "soon" }, "CALLBACK_RETRY_DELAY", "Invalid"],
      // Retry settings within sane ranges: a huge delay would make SIGTERM ineffective.
      ["retry delay of 1e9 s", { ...base, CALLBACK_RETRY_DELAY: "1e9" }, "CALLBACK_RETRY_DELAY", "Invalid"],
      ["zero retry delay", { ...base, CALLBACK_RETRY_DELAY: "0" }, "CALLBACK_RETRY_DELAY", "Invalid"],
      ["11 retries", { ...base, CALLBACK_MAX_RETRIES: "11" }, "CALLBACK_MAX_RETRIES", "Invalid"],
      ["zero shutdown budget", { ...base, CALLBACK_SHUTDOWN_BUDGET: "0" }, "CALLBACK_SHUTDOWN_BUDGET", "Invalid"],
      ["non-numeric shutdown budget", { ...base, CALLBACK_SHUTDOWN_BUDGET: "soon" }, "CALLBACK_SHUTDOWN_BUDGET", "Invalid"],
      ["zero outbox memory", { ...base, CALLBACK_OUTBOX_MEMORY_MB: "0" }, "CALLBACK_OUTBOX_MEMORY_MB", "Invalid"],
      ["non-integer RANK", { ...base, RANK: "first" }, "RANK", "Invalid"],
      ["no job id of any kind", { CALLBACK_URL: "http://b/api", TEST_RUN: "3" }, "JOB_ID", "Missing"],
      ["two job ids", { ...base, INFERENCE_JOB_ID: "4" }, "JOB_ID+INFERENCE_JOB_ID", "Invalid"],
      ["non-integer INFERENCE_JOB_ID", { ...inference, INFERENCE_JOB_ID: "4x" }, "INFERENCE_JOB_ID", "Invalid"],
      ["inference without CHECKPOINT_S3_URI", omit(inference, "CHECKPOINT_S3_URI"), "CHECKPOINT_S3_URI", "Missing"],
      ["inference without IMAGES_S3_URI", omit(inference, "IMAGES_S3_URI"), "IMAGES_S3_URI", "Missing"],
      ["a checkpoint URI naming no object", { ...inference, CHECKPOINT_S3_URI: "s3://ckpt/" }, "CHECKPOINT_S3_URI", "Invalid"],
      ["an images URI that is not s3://", { ...inference, IMAGES_S3_URI: "/data/images" }, "IMAGES_S3_URI", "Invalid"],
      ["a bucket name S3 refuses", { ...inference, IMAGES_S3_URI: "s3://Bad_Bucket/x" }, "IMAGES_S3_URI", "Invalid"],
      ["non-integer TRAINING_JOB_ID", { ...inference, TRAINING_JOB_ID: "abc" }, "TRAINING_JOB_ID", "Invalid"],
      ["export without TRAINING_JOB_ID", omit(exportEnv, "TRAINING_JOB_ID"), "TRAINING_JOB_ID", "Missing"],
      ["export without EXPORT_FORMAT", omit(exportEnv, "EXPORT_FORMAT"), "EXPORT_FORMAT", "Missing"],
      ["evaluation without DATASET_S3_URI", omit(evaluation, "DATASET_S3_URI"), "DATASET_S3_URI", "Missing"],
      ["a training DATASET_S3_URI that is not s3://", { ...base, DATASET_S3_URI: "http://x/y" }, "DATASET_S3_URI", "Invalid"],
      ["primary_metric_mode other than max/min", { ...base, CONFIG: "{\"primary_metric_mode\":\"up\"}" }, "CONFIG.primary_metric_mode", "Invalid"]
    ]
    for (const [name, env, variable, reason] of cases) {
      it.effect(name, () =>
        Effect.gen(function*() {
          const error = yield* resolveErr(env)
          assert.instanceOf(error, ConfigError)
          assert.strictEqual(error.variable, variable)
          assert.strictEqual(error.reason, reason)
          expect(error.message).toContain(variable)
        }))
    }
  })

  it.effect("no secret value appears in errors, logs or string forms", () =>
    Effect.gen(function*() {
      const secrets = {
        EXTERNAL_STORAGE_SECRET_KEY: "ext-SECRET-value-1",
        INTERNAL_STORAGE_SECRET_KEY: "int-SECRET-value-2",
        CLEARML_API_SECRET_KEY: "clearml-SECRET-value-3"
      }
      const urlPassword = "url-SECRET-value-4"
      const lines: Array<string> = []
      const logger = Logger.make(({ message }) => lines.push(JSON.stringify(message)))
      const ctx = yield* resolveOk({ ...secrets, CLEARML_API_HOST: "http://c:8008", CLEARML_API_ACCESS_KEY: "k" })
      yield* Effect.log(ctx).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      const error = yield* resolveErr({ ...secrets, JOB_ID: "oops", CALLBACK_URL: "http://b/api" })
      const urlError = yield* resolveErr({ ...base, EXTERNAL_STORAGE_ENDPOINT: `ftp://minio:${urlPassword}@minio:9000` })
      assert.strictEqual(urlError.variable, "EXTERNAL_STORAGE_ENDPOINT")
      expect(urlError.message).toContain("ftp://***@minio:9000")
      // Unescaped base64 passwords hold `/` (and `+`, `=`): the URL does not even parse, and is still masked.
      const slashPassword = "s3Cr/t+Pa55=="
      const slashError = yield* resolveErr({ ...base, CALLBACK_URL: `http://trainer:${slashPassword}@backend:8000/api/v1` })
      assert.strictEqual(slashError.variable, "CALLBACK_URL")
      expect(slashError.message).toContain("http://***@backend:8000/api/v1")
      expect(slashError.message).not.toContain("s3Cr")
      const rendered = [
        JSON.stringify(ctx),
        String(ctx.externalStorage.secretKey),
        JSON.stringify(error),
        error.message,
        urlError.message,
        slashError.message,
        String(error),
        ...lines
      ].join("\n")
      for (const secret of [...Object.values(secrets), urlPassword, slashPassword]) {
        expect(rendered).not.toContain(secret)
      }
    }))

  it.effect("layerTest builds a context from plain values over the defaults", () =>
    Effect.gen(function*() {
      const ctx = yield* JobContext
      assert.strictEqual(ctx.jobId, 9)
      assert.strictEqual(ctx.taskType, "segmentation")
      assert.strictEqual(ctx.basicConfig.epochs, 3)
      assert.strictEqual(ctx.basicConfig.imgsz, 640)
      assert.strictEqual(ctx.externalStorage.bucket, "training-datasets")
    }).pipe(Effect.provide(JobContext.layerTest({ jobId: 9, taskType: "segmentation", basicConfig: { epochs: 3 } }))))

  it("makeJobContext derives isPrimary from rank", () => {
    assert.isFalse(makeJobContext({ rank: 1 }).isPrimary)
    assert.isTrue(makeJobContext().isPrimary)
  })

  it.effect("JobContext.layer composes with other layers", () =>
    Effect.gen(function*() {
      const ctx = yield* JobContext
      assert.strictEqual(ctx.jobId, 5)
    }).pipe(
      Effect.provide(Layer.provide(JobContext.layer, Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["CALLBACK_URL", "http://x/api"], ["JOB_ID", "5"]])))))
    ))
})
