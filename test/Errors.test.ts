import { assert, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, FiberId } from "effect"
import {
  CacheError,
  CallbackError,
  CheckpointError,
  classifyError,
  ConfigError,
  DatasetError,
  DownloadError,
  failureMessage,
  StorageError,
  TrainerError
} from "../src/index.js"
import { classifyCause } from "../src/Errors.js"

const systemError = (code: string) => Object.assign(new Error(`${code}: something went wrong`), { code })

describe("classifyError", () => {
  it("maps SDK errors by domain", () => {
    assert.strictEqual(classifyError(new ConfigError({ reason: "Missing", variable: "JOB_ID", detail: "" })), "ConfigError")
    assert.strictEqual(classifyError(new CallbackError({ reason: "Transient", path: "/x", detail: "down" })), "NetworkError")
    assert.strictEqual(classifyError(new CallbackError({ reason: "Invalid", path: "/x", detail: "total_epochs" })), "UnknownError")
    assert.strictEqual(classifyError(new StorageError({ reason: "Transport", bucket: "b", key: "k", detail: "reset" })), "NetworkError")
    assert.strictEqual(classifyError(new StorageError({ reason: "NotFound", bucket: "b", key: "k", detail: "" })), "DatasetError")
    assert.strictEqual(classifyError(new DownloadError({ failures: [], succeeded: 0 })), "DatasetError")
    assert.strictEqual(classifyError(new DatasetError({ reason: "InvalidJson", detail: "bad" })), "DatasetError")
    assert.strictEqual(classifyError(new CacheError({ reason: "Verify", detail: "missing image" })), "DatasetError")
    assert.strictEqual(classifyError(new CheckpointError({ reason: "Upload", path: "best.pt", detail: "x" })), "CheckpointError")
    assert.strictEqual(classifyError(new TrainerError({ errorType: "FrameworkError", message: "CUDA" })), "FrameworkError")
  })

  it("out-of-memory and ENOSPC defects are ResourceError", () => {
    assert.strictEqual(classifyError(new RangeError("Array buffer allocation failed")), "ResourceError")
    assert.strictEqual(classifyError(systemError("ENOSPC")), "ResourceError")
    assert.strictEqual(classifyError(new Error("write failed", { cause: systemError("ENOSPC") })), "ResourceError")
    assert.strictEqual(
      classifyError(new CacheError({ reason: "Io", detail: "copy failed", cause: systemError("ENOSPC") })),
      "ResourceError"
    )
  })

  it("connection errors are NetworkError; anything else UnknownError", () => {
    assert.strictEqual(classifyError(systemError("ECONNREFUSED")), "NetworkError")
    assert.strictEqual(classifyError(new Error("boom")), "UnknownError")
    assert.strictEqual(classifyError("a string"), "UnknownError")
    assert.strictEqual(classifyError(undefined), "UnknownError")
  })
})

describe("classifyCause", () => {
  it.effect("prefers the failure, then the defect; interruption is a ResourceError", () =>
    Effect.gen(function*() {
      const failed = yield* Effect.exit(new DatasetError({ reason: "Empty", detail: "no images" }))
      assert.isTrue(Exit.isFailure(failed))
      if (Exit.isFailure(failed)) {
        assert.strictEqual(classifyCause(failed.cause), "DatasetError")
        expect(failureMessage(failed.cause)).toBe("[DatasetError] no images")
      }
      assert.strictEqual(classifyCause(Cause.die(systemError("ENOMEM"))), "ResourceError")
      assert.strictEqual(classifyCause(Cause.interrupt(FiberId.none)), "ResourceError")
    }))
})

describe("messages name the culprit", () => {
  it("each error's message carries its key facts", () => {
    expect(new ConfigError({ reason: "Invalid", variable: "EPOCHS", detail: "expected an integer" }).message).toContain("EPOCHS")
    expect(new StorageError({ reason: "NotFound", bucket: "b", key: "datasets/1/x.jpg", detail: "" }).message)
      .toContain("s3://b/datasets/1/x.jpg")
    const rejected = new CallbackError({ reason: "Rejected", path: "/training/jobs/1/callback/progress", status: 422, body: "{\"detail\":\"bad\"}", detail: "" })
    expect(rejected.message).toContain("422")
    expect(rejected.message).toContain("bad")
    expect(new DatasetError({ reason: "InvalidShape", file: "annotations.json", jsonPath: "images[3].width", detail: "Expected number" }).message)
      .toContain("annotations.json at images[3].width")
    const many = new DownloadError({
      failures: Array.from({ length: 25 }, (_, i) => ({ bucket: "b", key: `k${i}`, reason: "NotFound" as const, detail: "" })),
      succeeded: 3
    })
    expect(many.message).toContain("25 object(s)")
    expect(many.message).toContain("s3://b/k0")
    expect(many.message).toContain("and 5 more")
  })
})
