/**
 * An example trainer, written the way the platform's trainers use the SDK: fetch the
 * dataset through the node cache, convert DICE to YOLO, train (simulated: no ML framework, a
 * few short epochs), report progress and validation each epoch, upload the best and last
 * checkpoints in the background, report completion. The runner (`runTrainer`) reports the
 * start; a job restarted after preemption resumes from its last uploaded checkpoint.
 */
import { FileSystem, Path } from "@effect/platform"
import { Duration, Effect, Option } from "effect"
import { type CallbackMetrics, TrainerError, TrainerSdk } from "../src/index.js"
/** How the simulation behaves. */
export interface ExampleTrainerOptions {
  /** Time one simulated epoch takes. Default 100 ms. */
  readonly epochDuration?: Duration.DurationInput
  /** Fail with a `FrameworkError` during this epoch (1-based), as a diverging run would. */
  readonly failAtEpoch?: number
}

/** Metrics of a run that converges: loss falls, mAP rises, the learning rate follows a cosine. */
export const simulatedMetrics = (epoch: number, epochs: number, lr0: number) => {
  const t = epoch / epochs
  return {
    loss: Number((1.2 * Math.exp(-2.5 * t) + 0.08).toFixed(4)),
    "mAP50": Number((0.25 + 0.6 * (1 - Math.exp(-3 * t))).toFixed(4)),
    "mAP50-95": Number((0.12 + 0.45 * (1 - Math.exp(-3 * t))).toFixed(4)),
    lr: Number((lr0 * 0.5 * (1 + Math.cos(Math.PI * t))).toFixed(6))
  }
}

/**
 * A validation pass of the simulated run: per-class AP (each class a little off the mean)
 * and a confusion matrix over `objectsPerClass` objects per class (rows true, columns
 * predicted) whose diagonal follows mAP50.
 */
export const simulatedValidation = (
  metrics: ReturnType<typeof simulatedMetrics>,
  classNames: ReadonlyArray<string>,
  objectsPerClass = 20
) => {
  const spread = (i: number) => (classNames.length <= 1 ? 0 : 0.1 * (i / (classNames.length - 1) - 0.5))
  const clamp = (x: number) => Number(Math.min(1, Math.max(0, x)).toFixed(4))
  const perClassMetrics = Object.fromEntries(classNames.map((name, i) => [name, {
    "AP50": clamp(metrics["mAP50"] + spread(i)),
    "AP50-95": clamp(metrics["mAP50-95"] + spread(i))
  }]))
  const confusionMatrix = classNames.map((_, row) => {
    const correct = Math.round(objectsPerClass * clamp(metrics["mAP50"] + spread(row)))
    // The misses spread evenly over the other classes, the first ones taking the remainder.
    const others = Math.max(1, classNames.length - 1)
    const missed = objectsPerClass - correct
    return classNames.map((__, column) => {
      if (column === row) return correct
      const rank = column < row ? column : column - 1
      return Math.floor(missed / others) + (rank < missed % others ? 1 : 0)
    })
  })
  return { perClassMetrics, confusionMatrix }
}

/** The trainer program: everything it needs comes from `TrainerSdk.layer` (or `layerTest`). */
export const exampleTrainer = (options: ExampleTrainerOptions = {}) =>
  Effect.gen(function*() {
    const sdk = yield* TrainerSdk
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const { basicConfig: config, modelName } = sdk.context
    const epochs = config.epochs

    // A job restarted after preemption continues after the epoch of its last checkpoint.
    const resumed = yield* sdk.resume
    const firstEpoch = Option.match(resumed, { onNone: () => 1, onSome: (point) => point.epoch + 1 })
    yield* Effect.logInfo(`Training ${modelName || "a simulated detector"} for ${epochs} epochs (imgsz ${config.imgsz})`)

    const datasetDir = yield* sdk.downloadDatasetWithCache()
    const dataset = yield* sdk.convertDataset({ datasetDir, from: "dice", to: "yolo" })
    yield* sdk.log("INFO", `Dataset ready: ${dataset.images} images, classes ${dataset.classes.join(", ")}`, {
      source: "training",
      data: { splits: dataset.splits, objects: dataset.objects }
    })

    const checkpointDir = path.join(sdk.workDir, "weights")
    yield* fs.makeDirectory(checkpointDir, { recursive: true })
    /** Writes the weights and queues their upload: the loop never waits for the network. */
    const saveCheckpoint = (name: string, epoch: number, metrics: CallbackMetrics) =>
      Effect.gen(function*() {
        const file = path.join(checkpointDir, `${name}.pt`)
        yield* fs.writeFileString(file, JSON.stringify({ model: modelName || "simulated", epoch, metrics }))
        return yield* sdk.enqueueCheckpoint(file, name, { metrics, epoch })
      })

    let best = { epoch: 0, score: -1, metrics: {} as CallbackMetrics }
    let last = simulatedMetrics(0, epochs, config.lr0)
    for (let epoch = firstEpoch; epoch <= epochs; epoch++) {
      yield* Effect.sleep(options.epochDuration ?? Duration.millis(100))
      if (epoch === options.failAtEpoch) {
        return yield* new TrainerError({
          errorType: "FrameworkError",
          message: `loss became NaN at epoch ${epoch} (simulated divergence)`
        })
      }
      last = simulatedMetrics(epoch, epochs, config.lr0)
      yield* sdk.reportProgress({ epoch, metrics: last }) // out of the start's total epochs
      const isBest = last["mAP50-95"] > best.score
      yield* sdk.reportValidation({
        epoch,
        primaryMetric: ["mAP50-95", last["mAP50-95"]],
        allMetrics: { "mAP50": last["mAP50"], "mAP50-95": last["mAP50-95"] },
        classNames: dataset.classes,
        ...simulatedValidation(last, dataset.classes),
        isBest
      })
      if (isBest) {
        best = { epoch, score: last["mAP50-95"], metrics: last }
        yield* saveCheckpoint("best", epoch, last) // every best is uploaded
      }
      yield* saveCheckpoint("last", epoch, last) // a newer last replaces one still queued
    }

    yield* Effect.logInfo(`Training done: best mAP50-95 ${best.score} at epoch ${best.epoch}`)
    // Waits for the queued uploads; the report carries their URIs (best and last).
    yield* sdk.reportCompleted({ finalMetrics: last, bestMetrics: best.metrics, bestEpoch: best.epoch })
  })
