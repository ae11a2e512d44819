/**
 * Dataset conversion: DICE (nested, flat COCO-style) and LabelMe v0.9 datasets into the
 * layouts trainers read — YOLO (detect, segment, pose, classify) and COCO instance files —
 * plus validation of a converted YOLO dataset.
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import { Context, Effect, Either, Layer, Ref } from "effect"
import { DatasetError } from "./Errors.js"
import { makeConverterReader } from "./internal/converterRead.js"
import { makeConverterWriter } from "./internal/converterWrite.js"
import { type DatasetValidation, makeDatasetValidator, type ValidateOptions } from "./internal/datasetValidate.js"
import type { DatasetSplit } from "./internal/diceModel.js"
import { normalizeTaskType } from "./internal/jobConfig.js"
import { isPlatformSplitConfig, type PlatformSplitConfig, planPlatformSplit, type SplitPlan } from "./internal/splitConfig.js"
import { assignSplits, countSplits, emptyRequiredSplits, type SplitOptions } from "./internal/splits.js"
import type { ConverterTask } from "./internal/yoloLabels.js"
import type { YoloValidation } from "./internal/yoloValidate.js"

export type { DatasetSplit } from "./internal/diceModel.js"
export type { PlatformSplitConfig } from "./internal/splitConfig.js"
export type { SplitOptions, SplitRatios } from "./internal/splits.js"
export type { ConverterTask } from "./internal/yoloLabels.js"
export type { DatasetValidation, ValidateOptions } from "./internal/datasetValidate.js"
export type { YoloValidation } from "./internal/yoloValidate.js"

/** What to convert. */
export interface ConvertOptions {
  /** The dataset directory (annotation files and images). Outputs are written into it. */
  readonly datasetDir: string
  readonly from: "dice" | "labelme"
  readonly to: "yolo" | "coco"
  /** Task type or alias (`object_detection`, `seg`, ...); default: the file's, else detection. */
  readonly taskType?: string | undefined
  /**
   * How to split: the converter's own options, or the platform's `CONFIG.split_config` as
   * it arrives (either of its shapes: `{method: "manual"|"auto"|"partial", default_ratio,
   * seed, splits}` or `{method: "use_dataset"|"auto"|"custom", ratio, seed, custom_splits,
   * exclude_images}`; map keys are image ids as strings).
   */
  readonly split?: SplitOptions | PlatformSplitConfig | undefined
  /**
   * Classification: a class whose images are all outside the train split is an error
   * (Ultralytics' classifier counts its classes from the train folders and fails on such a
   * class's val images). `true` leaves such classes out instead, with their images, and warns.
   */
  readonly allowClassesWithoutTrainImages?: boolean | undefined
}

/**
 * What to hand the training framework: Ultralytics' `data=` is `data.yaml` for detect,
 * segment and pose, but the dataset directory for classify (it never takes a yaml file for
 * a classification dataset); COCO consumers take the annotation files of `annotations/`
 * with `imageRoot` as the data prefix.
 */
export type TrainerInput =
  | { readonly kind: "dataYaml"; readonly path: string }
  | { readonly kind: "directory"; readonly path: string }
  | { readonly kind: "cocoAnnotations"; readonly path: string }

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
  /**
   * Class names in class-index order (classification: Ultralytics' order, the sorted class
   * folder names, and only classes with training images).
   */
  readonly classes: ReadonlyArray<string>
  /** Skipped annotations (or polygon parts, images without class) by reason. */
  readonly skipped: Readonly<Record<string, number>>
  /** Images per split. */
  readonly splits: Readonly<Record<DatasetSplit, number>>
  /** Things a trainer should know before training, e.g. a class without training objects. */
  readonly warnings: ReadonlyArray<string>
  /** Absolute paths written: data.yaml, split files, label trees, COCO files, class folders. */
  readonly outputs: ReadonlyArray<string>
  /** Absolute image root: COCO `file_name`s are relative to it (the data prefix). */
  readonly imageRoot: string
  /** What to pass the framework (see `TrainerInput`). */
  readonly trainerInput: TrainerInput
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
  /**
   * Checks a converted YOLO dataset as Ultralytics reads it: data.yaml under YAML 1.1
   * (PyYAML), split lists, image headers (missing, empty, undecodable, under 10 pixels),
   * label rows; an image without a label file is a background image, not an issue.
   */
  readonly validateYolo: (
    datasetDir: string,
    options?: ValidateYoloOptions
  ) => Effect.Effect<YoloValidation, DatasetError>
  /**
   * Checks the COCO instance files of a dataset (`annotations/instances_*.json`) as
   * pycocotools and MMDetection load them: ids, references, boxes inside their image,
   * segmentation where needed, and the images they name (header, size as annotated).
   */
  readonly validateCoco: (datasetDir: string, options?: ValidateOptions) => Effect.Effect<YoloValidation, DatasetError>
  /** Checks whichever outputs the directory holds (data.yaml, COCO instance files, or both). */
  readonly validate: (datasetDir: string, options?: ValidateOptions) => Effect.Effect<DatasetValidation, DatasetError>
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
  const validator = yield* makeDatasetValidator

  const convert = Effect.fn("Converter.convert")(function*(options: ConvertOptions) {
    const dir = path.resolve(options.datasetDir)
    const { dataset: loaded, file } = options.from === "labelme"
      ? yield* reader.loadLabelMe(dir)
      : yield* reader.loadDice(dir, options.taskType)
    const fromFileName = /annotations_(\w+)\.json$/.exec(file)?.[1]
    const task = toTask(options.taskType ?? loaded.taskType ?? fromFileName)
    if (task === undefined) {
      return yield* new DatasetError({
        reason: "InvalidShape",
        file,
        jsonPath: options.taskType === undefined ? "task_type" : "",
        detail: `the converter has no task for task type "${options.taskType ?? loaded.taskType}" (it converts detection, classification, segmentation and pose, and their aliases such as object_detection)`
      })
    }
    if (loaded.images.length === 0) {
      return yield* new DatasetError({ reason: "Empty", file, jsonPath: "images", detail: "the dataset has no images" })
    }
    const plan: SplitPlan = isPlatformSplitConfig(options.split)
      ? yield* Either.match(planPlatformSplit(options.split, loaded.images), {
        onLeft: (detail) => Effect.fail(new DatasetError({ reason: "InvalidShape", file: "CONFIG", jsonPath: "split_config", detail })),
        onRight: Effect.succeed
      })
      : { split: options.split ?? {}, ignoreImageSplits: false, exclude: new Set<number>(), warnings: [] }
    const dataset = plan.exclude.size === 0 && !plan.ignoreImageSplits ? loaded : {
      ...loaded,
      images: loaded.images
        .filter((image) => !plan.exclude.has(image.id))
        .map((image) => (plan.ignoreImageSplits ? { ...image, split: undefined } : image))
    }
    if (dataset.images.length === 0) {
      return yield* new DatasetError({ reason: "Empty", file, jsonPath: "images", detail: "split_config.exclude_images leaves no image" })
    }
    if (options.to === "coco" && task === "classification") {
      return yield* new DatasetError({
        reason: "Unsupported",
        file,
        detail: "classification has no COCO instance form: convert it to YOLO (an ImageFolder tree) instead"
      })
    }
    if (task === "pose" && !dataset.images.some((i) => i.annotations.some((a) => a.keypoints !== undefined && a.keypoints.length >= 3))) {
      return yield* new DatasetError({ reason: "InvalidShape", file, detail: "task pose but no annotation has keypoints" })
    }
    const { paths, root } = yield* reader.resolveImages(dir, file, dataset)
    const splits = assignSplits(dataset.images, plan.split)
    const splitCounts = countSplits(splits)
    const empty = emptyRequiredSplits(splitCounts)
    if (empty.length > 0) {
      return yield* new DatasetError({
        reason: "EmptySplit",
        file,
        detail: `the ${empty.join(" and ")} split${empty.length > 1 ? "s are" : " is"} empty (train ${splitCounts.train}, val ${splitCounts.val}, ` +
          `test ${splitCounts.test}): trainers need both; give the images a split field, pass split assignments or ratios, or add images`
      })
    }
    const result = options.to === "coco"
      ? yield* writer.toCoco(dir, dataset, task as "detection" | "segmentation" | "pose", splits, paths, root)
      : task === "classification"
      ? { ...yield* writer.toClassifyFolders(dir, dataset, splits, paths, options.allowClassesWithoutTrainImages ?? false), imageRoot: dir }
      : { ...yield* writer.toYolo(dir, dataset, task, splits, paths), imageRoot: dir }
    const trainerInput: TrainerInput = options.to === "coco"
      ? { kind: "cocoAnnotations", path: path.join(dir, "annotations") }
      : task === "classification"
      ? { kind: "directory", path: dir }
      : { kind: "dataYaml", path: path.join(dir, "data.yaml") }
    return {
      to: options.to,
      taskType: task,
      images: dataset.images.length,
      objects: result.objects,
      negatives: result.negatives,
      classes: result.classes,
      skipped: result.skipped,
      splits: splitCounts,
      warnings: [...plan.warnings, ...result.warnings],
      outputs: result.outputs,
      imageRoot: result.imageRoot,
      trainerInput
    } satisfies ConversionReport
  })

  const validateYolo = Effect.fn("Converter.validateYolo")(validator.validateYolo)
  const validateCoco = Effect.fn("Converter.validateCoco")(validator.validateCoco)
  const validate = Effect.fn("Converter.validate")(validator.validate)

  return Converter.of({ convert, validateYolo, validateCoco, validate })
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
