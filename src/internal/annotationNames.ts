/**
 * The one place for the names of tasks and annotation files: the aliases of each task type,
 * which files a DICE dataset directory is looked up by for a task type, which task a file's
 * name announces, which S3 keys of a dataset are its annotation files, and which of them is
 * the primary one. Free of `effect`: the conversion worker looks its file up before the
 * converter's modules have loaded (see `readAhead`).
 */
import type { TaskType } from "../JobContext.js"

const taskAliases: Record<string, TaskType> = {
  detection: "detection",
  object_detection: "detection",
  det: "detection",
  detect: "detection",
  classification: "classification",
  image_classification: "classification",
  cls: "classification",
  classify: "classification",
  segmentation: "segmentation",
  instance_segmentation: "segmentation",
  seg: "segmentation",
  segment: "segmentation",
  pose: "pose",
  pose_estimation: "pose",
  keypoint: "pose",
  keypoints: "pose"
}

/**
 * The converter task a task type or alias maps to (case-insensitive, `-` read as `_`), or
 * `undefined` when it maps to none (`open_vocabulary_detection`, `semantic_segmentation`,
 * `panoptic_segmentation`, or anything unknown).
 */
export const normalizeTaskType = (raw: string): TaskType | undefined =>
  taskAliases[raw.trim().toLowerCase().replace(/-/g, "_")]

/** The last segment of a key. */
export const baseName = (key: string): string => key.slice(key.lastIndexOf("/") + 1)

/** The four tasks' annotation files in lookup order when no task type is known. */
const everyTaskFile: ReadonlyArray<string> = [
  "annotations_detection.json",
  "annotations_segmentation.json",
  "annotations_pose.json",
  "annotations_classification.json"
]

/**
 * The annotation file names looked for in `dataset_dir` for a task type, in order (every
 * task's file when no task type is known), ending with the `annotations.json` fallback. A
 * task type or alias (`object_detection`, `cls`, `keypoints`, ...) names its task's file
 * (the aliases of `normalizeTaskType`); any other names `annotations_{type}.json`.
 */
export const diceAnnotationFileNames = (taskType: string | undefined): ReadonlyArray<string> => {
  const t = taskType?.trim().toLowerCase().replace(/-/g, "_")
  const named = t === undefined || t === "" ? everyTaskFile : [`annotations_${normalizeTaskType(t) ?? t}.json`]
  return [...named, "annotations.json"]
}

/** The task type an annotation file's name announces (`annotations_pose.json` → `pose`), if any. */
export const annotationFileTaskType = (file: string): string | undefined => /annotations_(\w+)\.json$/.exec(file)?.[1]

/** Whether a key directly under `prefix` is an annotation file (`annotations*.json`). */
export const isAnnotationKey = (prefix: string, key: string): boolean => {
  if (!key.startsWith(prefix)) return false
  const rest = key.slice(prefix.length)
  return !rest.includes("/") && rest.startsWith("annotations") && rest.endsWith(".json")
}

/** The primary annotation file: the first whose name (last segment) contains `detection`, else the first. */
export const primaryAnnotation = (names: ReadonlyArray<string>): string | undefined =>
  names.find((n) => baseName(n).includes("detection")) ?? names[0]
