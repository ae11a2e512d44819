/**
 * One conversion from start to end — load, settle the task and the splits, write the
 * requested layout — in whichever thread runs it (the caller's, or the conversion worker's).
 */
import * as Path from "@effect/platform/Path"
import { Effect, Either } from "effect"
import type { ConversionReport, ConverterTask, ConvertOptions, TrainerInput } from "../Converter.js"
import { DatasetError } from "../Errors.js"
import { annotationFileTaskType, normalizeTaskType } from "./annotationNames.js"
import { makeConverterReader } from "./converterRead.js"
import { makeConverterWriter } from "./converterWrite.js"
import { type CocoPrebuild, makeCocoPrebuild } from "./cocoPrebuild.js"
import type { DiceHeader } from "./diceModel.js"
import { type LabelPrewrite, makeLabelPrewrite } from "./labelPrewrite.js"
import type { ReadAhead } from "./readAhead.js"
import { isPlatformSplitConfig, planPlatformSplit, type SplitPlan } from "./splitConfig.js"
import { assignSplits, countSplits, emptyRequiredSplits } from "./splits.js"

/** A task type or alias as a converter task (`undefined` means detection; an unknown name gives `undefined`). */
const toTask = (raw: string | undefined): ConverterTask | undefined =>
  raw === undefined ? "detection" : normalizeTaskType(raw)

/** The task a conversion settles on: the option's, else the file's `task_type`, else the file name's. */
const settleTask = (optionTask: string | undefined, fileTask: string | undefined, file: string) =>
  toTask(optionTask ?? fileTask ?? annotationFileTaskType(file))

/** Work done on a second thread while the DICE file is parsed (see `labelPrewrite`, `cocoPrebuild`). */
interface Prework {
  readonly labels?: LabelPrewrite
  readonly coco?: CocoPrebuild
}

/**
 * The conversion on `@effect/platform`'s FileSystem: the reader loads the dataset, the task
 * and the splits are settled, and the images found go to the writer of the requested layout.
 * With `parallel` (the conversion worker, on Node's file system), a DICE file's output is
 * prepared on a thread of its own while the file is parsed: YOLO label files created
 * (`labelPrewrite`), COCO annotations printed (`cocoPrebuild`); their thread is `readAhead`'s
 * when the worker started one.
 */
export const makeConvertHere = (parallel = false) =>
  Effect.gen(function*() {
    const path = yield* Path.Path
    const reader = yield* makeConverterReader
    const writer = yield* makeConverterWriter
    const convert = convertWith(path, reader, writer)
    return (options: ConvertOptions, readAhead?: ReadAhead): Effect.Effect<ConversionReport, DatasetError> => {
      const taskOf = (header: DiceHeader, file: string) => settleTask(options.taskType, header.taskType, file)
      if (!parallel || options.from !== "dice") return convert(options, {})
      return Effect.scoped(
        options.to === "yolo"
          ? Effect.flatMap(makeLabelPrewrite(path.resolve(options.datasetDir), taskOf, readAhead), (labels) => convert(options, { labels }))
          : Effect.flatMap(makeCocoPrebuild(taskOf, undefined, readAhead), (coco) => convert(options, { coco }))
      )
    }
  })

const convertWith = (
  path: Path.Path,
  reader: Effect.Effect.Success<typeof makeConverterReader>,
  writer: Effect.Effect.Success<typeof makeConverterWriter>
) =>
(options: ConvertOptions, prework: Prework): Effect.Effect<ConversionReport, DatasetError> =>
    Effect.gen(function*() {
      const dir = path.resolve(options.datasetDir)
      const { dataset: loaded, file } = options.from === "labelme"
        ? yield* reader.loadLabelMe(dir)
        : yield* reader.loadDice(dir, options.taskType, (prework.labels ?? prework.coco)?.observerFor)
      const task = settleTask(options.taskType, loaded.taskType, file)
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
      const { paths, root } = yield* reader.resolveImages(dir, file, dataset, prework.labels?.listings, prework.labels?.known)
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
      const { coco, labels } = prework
      // Annotations are numbered through the images in order: `share` checks the plan kept them all.
      const sharing = coco?.share(task, dataset.images)
      const result = options.to === "coco"
        ? yield* writer.toCoco(dir, dataset, task as "detection" | "segmentation" | "pose", splits, paths, root, sharing)
        : task === "classification"
        ? { ...yield* writer.toClassifyFolders(dir, dataset, splits, paths, options.allowClassesWithoutTrainImages ?? false), imageRoot: dir }
        : { ...yield* writer.toYolo(dir, dataset, task, splits, paths, labels === undefined ? undefined : yield* labels.finish), imageRoot: dir }
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
