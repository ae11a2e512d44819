/**
 * Dataset conversion: DICE (nested, flat COCO-style) and LabelMe v0.9 datasets into the
 * layouts trainers read — YOLO (detect, segment, pose, classify) and COCO instance files —
 * plus validation of a converted YOLO dataset.
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import { Context, Effect, Layer, Ref } from "effect"
import { DatasetError } from "./Errors.js"
import { makeConverterReader } from "./internal/converterRead.js"
import { makeConverterWriter } from "./internal/converterWrite.js"
import type { DatasetSplit } from "./internal/diceModel.js"
import { normalizeTaskType } from "./internal/jobConfig.js"
import { assignSplits, countSplits, type SplitOptions, splitWarnings } from "./internal/splits.js"
import type { ConverterTask } from "./internal/yoloLabels.js"
import type { YoloValidation } from "./internal/yoloValidate.js"

export type { DatasetSplit } from "./internal/diceModel.js"
export type { SplitOptions, SplitRatios } from "./internal/splits.js"
export type { ConverterTask } from "./internal/yoloLabels.js"
export type { YoloValidation } from "./internal/yoloValidate.js"

/** What to convert. */
export interface ConvertOptions {
  /** The dataset directory (annotation files and images). Outputs are written into it. */
  readonly datasetDir: string
  readonly from: "dice" | "labelme"
  readonly to: "yolo" | "coco"
  /** Task type or alias (`object_detection`, `seg`, ...); default: the file's, else detection. */
  readonly taskType?: string | undefined
  readonly split?: SplitOptions | undefined
}

/** What a conversion did. */
export interface ConversionReport {
  readonly to: "yolo" | "coco"
  readonly taskType: ConverterTask
  /** Images converted. */
  readonly images: number
  /** Objects written (label rows, COCO annotations, or labelled images for classification). */
  readonly objects: number
  /** Images without any object (empty label files). */
  readonly negatives: number
  /** Class names in class-index order. */
  readonly classes: ReadonlyArray<string>
  /** Skipped annotations (or polygon parts, images without class) by reason. */
  readonly skipped: Readonly<Record<string, number>>
  /** Images per split. */
  readonly splits: Readonly<Record<DatasetSplit, number>>
  /** Things a trainer should know before training, e.g. an empty val split. */
  readonly warnings: ReadonlyArray<string>
  /** Absolute paths written: data.yaml, split files, label trees, COCO files, class folders. */
  readonly outputs: ReadonlyArray<string>
  /** Absolute image root: COCO `file_name`s are relative to it (the data prefix). */
  readonly imageRoot: string
}

/** Options of `validateYolo`. */
export interface ValidateYoloOptions {
  /** Fewer images than this is an issue (default 1). */
  readonly minImages?: number | undefined
}

/** The converter service. */
export interface ConverterService {
  /** Converts a dataset in place; nothing is left half-written on failure. */
  readonly convert: (options: ConvertOptions) => Effect.Effect<ConversionReport, DatasetError>
  /** Checks a converted YOLO dataset (data.yaml, split lists, label files). */
  readonly validateYolo: (
    datasetDir: string,
    options?: ValidateYoloOptions
  ) => Effect.Effect<YoloValidation, DatasetError>
}

/** A task type or alias as a converter task (`undefined` means detection; an unknown name gives `undefined`). */
const toTask = (raw: string | undefined): ConverterTask | undefined =>
  raw === undefined ? "detection" : normalizeTaskType(raw)

/**
 * The converter: `convert` loads the dataset (reader), settles the task and the splits, and
 * hands the images found to the writer of the requested layout.
 */
const make = Effect.gen(function*() {
  const path = yield* Path.Path
  const reader = yield* makeConverterReader
  const writer = yield* makeConverterWriter

  const convert = Effect.fn("Converter.convert")(function*(options: ConvertOptions) {
    const dir = path.resolve(options.datasetDir)
    const { dataset, file } = options.from === "labelme"
      ? yield* reader.loadLabelMe(dir)
      : yield* reader.loadDice(dir, options.taskType)
    const fromFileName = /annotations_(\w+)\.json$/.exec(file)?.[1]
    const task = toTask(options.taskType ?? dataset.taskType ?? fromFileName)
    if (task === undefined) {
      return yield* new DatasetError({
        reason: "InvalidShape",
        file,
        jsonPath: options.taskType === undefined ? "task_type" : "",
        detail: `unknown task type "${options.taskType ?? dataset.taskType}"`
      })
    }
    if (dataset.images.length === 0) {
      return yield* new DatasetError({ reason: "Empty", file, jsonPath: "images", detail: "the dataset has no images" })
    }
    const { paths, root } = yield* reader.resolveImages(dir, file, dataset)
    const splits = assignSplits(dataset.images, options.split)
    const splitCounts = countSplits(splits)
    const result = options.to === "coco"
      ? yield* writer.toCoco(dir, dataset, splits, paths, root)
      : task === "classification"
      ? { ...yield* writer.toClassifyFolders(dir, dataset, splits, paths), imageRoot: dir }
      : { ...yield* writer.toYolo(dir, dataset, task, splits, paths), imageRoot: dir }
    return {
      to: options.to,
      taskType: task,
      images: dataset.images.length,
      objects: result.objects,
      negatives: result.negatives,
      classes: dataset.categories.map((c) => c.name),
      skipped: result.skipped,
      splits: splitCounts,
      warnings: splitWarnings(splitCounts),
      outputs: result.outputs,
      imageRoot: result.imageRoot
    } satisfies ConversionReport
  })

  const validateYolo = Effect.fn("Converter.validateYolo")(reader.validateYolo)

  return Converter.of({ convert, validateYolo })
})

/** One conversion seen by `Converter.layerTest`. */
export interface ConverterRun {
  readonly options: ConvertOptions
  readonly report: ConversionReport
}

/** Test handle of `Converter.layerTest`: the successful conversions, in order. */
export class ConverterTest extends Context.Tag("trainer-sdk/ConverterTest")<ConverterTest, {
  readonly conversions: Effect.Effect<ReadonlyArray<ConverterRun>>
}>() {}

/** The converter service tag. */
export class Converter extends Context.Tag("trainer-sdk/Converter")<Converter, ConverterService>() {
  /** The live converter on `@effect/platform`'s FileSystem. */
  static readonly layer: Layer.Layer<Converter, never, FileSystem.FileSystem | Path.Path> = Layer.effect(Converter, make)

  /**
   * The live converter plus a `ConverterTest` record of every successful conversion. A
   * conversion is local file work only (no network), so tests run it for real on a temp
   * dir; the record lets a trainer's test assert what it asked for and what came out.
   */
  static readonly layerTest: Layer.Layer<Converter | ConverterTest, never, FileSystem.FileSystem | Path.Path> = Layer
    .effectContext(Effect.gen(function*() {
      const live = yield* make
      const runs = yield* Ref.make<ReadonlyArray<ConverterRun>>([])
      return Context.make(Converter, {
        ...live,
        convert: (options) =>
          Effect.tap(live.convert(options), (report) => Ref.update(runs, (all) => [...all, { options, report }]))
      }).pipe(Context.add(ConverterTest, { conversions: Ref.get(runs) }))
    }))
}
