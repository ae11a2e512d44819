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
import type { TaskType } from "./JobContext.js"
import { makeConvertHere } from "./internal/converterRun.js"
import { convertOnWorker } from "./internal/converterThread.js"
import { makeDatasetValidator } from "./internal/datasetValidate.js"
import { diceAnnotationFileNames } from "./internal/annotationNames.js"


/** One of the three dataset splits. */
export type DatasetSplit = "train" | "val" | "test"

/** The four tasks the converter handles: the platform's task types (`JobContext`'s `TaskType`). */
export type ConverterTask = TaskType

/** Split ratios; normalized to sum 1. `test` defaults to 0. */
export interface SplitRatios {
  readonly train: number
  readonly val: number
  readonly test?: number | undefined
}

/** How to split a dataset. */
export interface SplitOptions {
  /** Explicit split per image id; wins over everything else for the images it names. */
  readonly assignments?: Readonly<Record<string | number, DatasetSplit>> | undefined
  /** Ratios for the random split (default train 0.8 / val 0.2). */
  readonly ratios?: SplitRatios | undefined
  /** Seed of the random split (default 42). */
  readonly seed?: number | undefined
}

/** `CONFIG.split_config` as the platform sends it (either shape). */
export interface PlatformSplitConfig {
  readonly method: string
  readonly default_ratio?: ReadonlyArray<number>
  readonly ratio?: ReadonlyArray<number>
  readonly seed?: number
  readonly splits?: Readonly<Record<string, string>>
  readonly custom_splits?: Readonly<Record<string, string>>
  readonly exclude_images?: ReadonlyArray<string | number>
  readonly [key: string]: unknown
}

/** The outcome of validating a converted dataset (YOLO, COCO or both). */
export interface YoloValidation {
  /** No issue: the consumer can use every image and label as written. */
  readonly valid: boolean
  /** What the consumer cannot use or reads differently from what was written. */
  readonly issues: ReadonlyArray<string>
  /** What the consumer tolerates or repairs (duplicate rows removed, a JPEG re-saved, a class without train objects). */
  readonly warnings: ReadonlyArray<string>
  readonly stats: {
    readonly total_images: number
    /** Label rows (objects) over all label files; for classification, images with a class. */
    readonly total_labels: number
    readonly classes: number
    /** Rows (classification: images) per class name. */
    readonly class_distribution: Readonly<Record<string, number>>
    /** Images without a label file or with an empty one: background images to Ultralytics. */
    readonly background_images: number
  }
}

/** Options of a validation. */
export interface ValidateOptions {
  /** Fewer images than this is an issue (default 1). */
  readonly minImages?: number | undefined
  /** COCO: every annotation must carry a segmentation (a segmentation dataset). */
  readonly segmentation?: boolean | undefined
  /** COCO: the image root `file_name`s are relative to (default `images/` when it holds them, else the dataset directory). */
  readonly imageRoot?: string | undefined
}

/** A validation of whichever outputs a dataset directory holds. */
export interface DatasetValidation extends YoloValidation {
  /** The outputs found and checked: `yolo` (data.yaml), `coco` (annotations/instances_*.json). */
  readonly formats: ReadonlyArray<"yolo" | "coco">
}

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

/** When `Converter.layer` moves a conversion to a worker thread. */
export interface OffThreadOptions {
  /**
   * Convert on a worker thread once the annotation input (the DICE file, or LabelMe's
   * `label_map.json` times 64) is at least this many bytes; `Infinity` never does.
   */
  readonly fromBytes: number
}

/** The default: a 1 MiB DICE file (about 10,000 boxes) or LabelMe index of about 3,000 images. */
export const defaultOffThread: OffThreadOptions = { fromBytes: 1 << 20 }

/**
 * The converter. A large conversion runs on a worker thread (its own Node file system,
 * the same code), so parsing and label writing never block the caller's event loop:
 * heartbeats, log shipping and progress reports keep flowing. Small ones run here, on the
 * provided FileSystem.
 */
export const makeConverter = (offThread: OffThreadOptions) =>
  Effect.gen(function*() {
    const here = yield* makeConvertHere()
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const validator = yield* makeDatasetValidator

    /** The size that decides where to convert: the annotation file's (LabelMe: 64 × the index's). */
    const inputBytes = (options: ConvertOptions) =>
      Effect.gen(function*() {
        const dir = path.resolve(options.datasetDir)
        const [names, scale] = options.from === "labelme"
          ? [["label_map.json"], 64]
          : [diceAnnotationFileNames(options.taskType), 1]
        for (const name of names) {
          const info = yield* Effect.option(fs.stat(path.join(dir, name)))
          if (info._tag === "Some") return Number(info.value.size) * scale
        }
        return 0
      })

    const convert = Effect.fn("Converter.convert")(function*(options: ConvertOptions) {
      const offThreadNow = Number.isFinite(offThread.fromBytes) && (yield* inputBytes(options)) >= offThread.fromBytes
      return yield* (offThreadNow ? convertOnWorker(options) : here(options))
    })

    const validateYolo = Effect.fn("Converter.validateYolo")(validator.validateYolo)
    const validateCoco = Effect.fn("Converter.validateCoco")(validator.validateCoco)
    const validate = Effect.fn("Converter.validate")(validator.validate)

    return Converter.of({ convert, validateYolo, validateCoco, validate })
  })

const make = makeConverter(defaultOffThread)

/** One conversion seen by `Converter.layerTest()`. */
export interface ConverterRun {
  readonly options: ConvertOptions
  readonly report: ConversionReport
}

/** Test handle of `Converter.layerTest()`: the successful conversions, in order. */
export class ConverterTest extends Context.Tag("trainer-sdk/ConverterTest")<ConverterTest, {
  readonly conversions: Effect.Effect<ReadonlyArray<ConverterRun>>
}>() {}

/** The converter service tag. */
export class Converter extends Context.Tag("trainer-sdk/Converter")<Converter, ConverterService>() {
  /**
   * The live converter on `@effect/platform`'s FileSystem; a large conversion runs on a
   * worker thread with Node's file system instead, off the caller's event loop (see
   * `makeConverter`).
   */
  static readonly layer: Layer.Layer<Converter, never, FileSystem.FileSystem | Path.Path> = Layer.effect(Converter, make)

  /**
   * The converter that always runs on the provided FileSystem, in the caller's thread (for a
   * FileSystem other than Node's). Large conversions then block the event loop while they
   * parse and write.
   */
  static readonly layerInProcess: Layer.Layer<Converter, never, FileSystem.FileSystem | Path.Path> = Layer.effect(
    Converter,
    makeConverter({ fromBytes: Infinity })
  )

  /**
   * The live converter plus a `ConverterTest` record of every successful conversion. A
   * conversion is local file work only (no network), so tests run it for real on a temp
   * dir; the record lets a trainer's test assert what it asked for and what came out.
   */
  static readonly layerTest = (): Layer.Layer<Converter | ConverterTest, never, FileSystem.FileSystem | Path.Path> => Converter.sharedTestLayer

  /** The one instance `layerTest()` returns, so a layer provided twice is built once. */
  private static readonly sharedTestLayer: Layer.Layer<Converter | ConverterTest, never, FileSystem.FileSystem | Path.Path> = Layer
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
