/**
 * Validation of a converted dataset as its consumer checks it: a YOLO dataset the way
 * Ultralytics reads it (data.yaml through PyYAML's YAML 1.1 rules, split lists, image
 * headers, label rows) and COCO instance files the way pycocotools and MMDetection load
 * them. Reads files only; the rules are the pure checks of `yoloValidate`, `cocoValidate`,
 * `imageHeader` and `yaml11`.
 */
import { FileSystem, Path } from "@effect/platform"
import { Effect, Option } from "effect"
import { checkCocoDocument } from "./cocoValidate.js"
import { datasetIo, ioConcurrency } from "./converterRead.js"
import { parseJsonBytes } from "./json.js"
import {
  headerPrefixBytes,
  headerTailBytes,
  type ImageHeader,
  imageProblem,
  readImageHeader,
  ultralyticsImageExtensions
} from "./imageHeader.js"
import { readYaml11 } from "./yaml11.js"
import { classFolderName, compareCodePoints, yoloLabelPath } from "./yoloLabels.js"
import { checkClassifySplits, checkYoloLabelText, type ClassifySplitListing } from "./yoloValidate.js"
import type { DatasetValidation, ValidateOptions, YoloValidation } from "../Converter.js"

/** Issues listed before the rest are only counted. */
const maxIssues = 200

const capped = (items: ReadonlyArray<string>): ReadonlyArray<string> =>
  items.length > maxIssues ? [...items.slice(0, maxIssues), `and ${items.length - maxIssues} more`] : items

const extensionOf = (file: string): string => {
  const base = file.slice(file.lastIndexOf("/") + 1)
  const dot = base.lastIndexOf(".")
  return dot < 0 ? "" : base.slice(dot + 1).toLowerCase()
}

const emptyStats = { total_images: 0, total_labels: 0, classes: 0, class_distribution: {}, background_images: 0 }

/** The validator on `@effect/platform`'s FileSystem. */
export const makeDatasetValidator = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path

  /** The header of an image file (`Bad` when missing or unreadable). */
  const imageHeader = (file: string): Effect.Effect<ImageHeader> =>
    Effect.scoped(Effect.gen(function*() {
      const handle = yield* fs.open(file, { flag: "r" })
      const size = Number((yield* handle.stat).size)
      if (size === 0) return readImageHeader(new Uint8Array(), new Uint8Array(), 0)
      const readAt = (offset: number, length: number) =>
        handle.seek(offset, "start").pipe(
          Effect.zipRight(handle.readAlloc(length)),
          Effect.map(Option.getOrElse(() => new Uint8Array()))
        )
      const tail = yield* readAt(Math.max(0, size - headerTailBytes), Math.min(size, headerTailBytes))
      let head = yield* readAt(0, Math.min(size, headerPrefixBytes))
      let header = readImageHeader(head, tail, size)
      if (header._tag === "NeedMore" && head.length < size) {
        head = yield* readAt(0, size)
        header = readImageHeader(head, tail, size)
      }
      return header
    })).pipe(
      Effect.catchAll((e) =>
        Effect.succeed<ImageHeader>({
          _tag: "Bad",
          reason: e._tag === "SystemError" && e.reason === "NotFound" ? "missing file" : `unreadable: ${e.message}`
        })
      )
    )

  /** Checks images as Ultralytics does; problems go to `issues`, tolerated oddities to `warnings`. */
  const checkImages = (images: Iterable<string>, issues: Array<string>, warnings: Array<string>) =>
    Effect.forEach(images, (image) =>
      Effect.gen(function*() {
        if (!ultralyticsImageExtensions.has(extensionOf(image))) {
          issues.push(`${image}: extension not among Ultralytics' image formats (it skips the file)`)
          return
        }
        const header = yield* imageHeader(image)
        const problem = imageProblem(header)
        if (problem !== undefined) issues.push(`${image}: ${problem}`)
        else if (header._tag === "Image" && header.warning) warnings.push(`${image}: ${header.warning}`)
      }), { concurrency: 16, discard: true })

  const isDirectory = (target: string) =>
    Effect.map(Effect.option(fs.stat(target)), (info) => info._tag === "Some" && info.value.type === "Directory")

  const isImageName = (name: string) => ultralyticsImageExtensions.has(extensionOf(name))

  /**
   * The images of one data.yaml split entry, as Ultralytics lists them: a `.txt` file's lines
   * (a line starting with `./` is relative to the file's directory, every `./` in it replaced
   * as Ultralytics does; another relative line is relative to the trainer's working
   * directory: an issue), or the images under a directory.
   */
  const listSplitImages = (base: string, key: string, entry: string, issues: Array<string>) =>
    Effect.gen(function*() {
      const target = path.resolve(base, entry)
      if (!(yield* datasetIo(target, fs.exists(target)))) {
        issues.push(`data.yaml: ${key} points to missing ${target}`)
        return [] as Array<string>
      }
      if (!(yield* isDirectory(target))) {
        const parent = path.dirname(target) + path.sep
        const lines = (yield* datasetIo(target, fs.readFileString(target))).trim().split(/\r?\n/).filter((l) => l !== "")
        let cwdRelative = 0
        const images = lines.map((line) => {
          if (line.startsWith("./")) return line.replaceAll("./", parent)
          if (!path.isAbsolute(line)) cwdRelative++
          return path.resolve(base, line)
        })
        if (cwdRelative > 0) {
          issues.push(`${target}: ${cwdRelative} relative line(s) without "./": Ultralytics resolves them against its working directory`)
        }
        return images
      }
      const entries = yield* datasetIo(target, fs.readDirectory(target, { recursive: true }))
      return entries.filter(isImageName).map((e) => path.join(target, e))
    })

  /**
   * Whether data.yaml's `train` entry is a classification split: a directory (not a `.txt`
   * list, no `images` segment, which would make it a detection image folder) holding class
   * folders and no images of its own.
   */
  const isClassifyLayout = (base: string, doc: Readonly<Record<string, unknown>>) =>
    Effect.gen(function*() {
      const entry = doc["train"]
      if (typeof entry !== "string" || entry.endsWith(".txt")) return false
      const target = path.resolve(base, entry)
      if (target.split(path.sep).includes("images") || !(yield* isDirectory(target))) return false
      const children = yield* datasetIo(target, fs.readDirectory(target))
      if (children.some(isImageName)) return false
      return yield* Effect.exists(children, (c) => isDirectory(path.join(target, c)))
    })

  /** One split directory of a classification dataset: its class folders and any loose images. */
  const listClassifySplit = (split: string, dir: string) =>
    Effect.gen(function*() {
      const children = (yield* datasetIo(dir, fs.readDirectory(dir))).sort(compareCodePoints)
      const folders: Array<{ name: string; images: Array<string> }> = []
      const looseImages: Array<string> = []
      for (const child of children) {
        const full = path.join(dir, child)
        if (yield* isDirectory(full)) {
          const inside = yield* datasetIo(full, fs.readDirectory(full, { recursive: true }))
          folders.push({ name: child, images: inside.filter(isImageName).map((e) => path.join(full, e)) })
        } else if (isImageName(child)) looseImages.push(full)
      }
      return { split, dir, folders, looseImages } satisfies ClassifySplitListing
    })

  const validateClassify = (
    base: string,
    doc: Readonly<Record<string, unknown>>,
    names: ReadonlyArray<string>,
    minImages: number,
    issues: Array<string>,
    warnings: Array<string>
  ) =>
    Effect.gen(function*() {
      const splits: Array<ClassifySplitListing> = []
      for (const key of ["train", "val", "test"] as const) {
        const entry = doc[key]
        if (typeof entry !== "string") {
          if (key !== "test") issues.push(`data.yaml: no ${key} entry`)
          continue
        }
        const target = path.resolve(base, entry)
        if (!(yield* isDirectory(target))) {
          issues.push(`data.yaml: ${key} points to missing directory ${target}`)
          continue
        }
        splits.push(yield* listClassifySplit(key, target))
      }
      const images = splits.flatMap((s) => s.folders.flatMap((f) => f.images))
      yield* checkImages(images, issues, warnings)
      return checkClassifySplits(splits, names, minImages, classFolderName, compareCodePoints, issues, warnings)
    })

  /** Checks a converted YOLO dataset as Ultralytics reads it. */
  const validateYolo = (datasetDir: string, options?: Pick<ValidateOptions, "minImages">) =>
    Effect.gen(function*() {
      const dir = path.resolve(datasetDir)
      const minImages = options?.minImages ?? 1
      const issues: Array<string> = []
      const warnings: Array<string> = []
      const yamlFile = path.join(dir, "data.yaml")
      if (!(yield* datasetIo(yamlFile, fs.exists(yamlFile)))) {
        return { valid: false, issues: [`missing data.yaml in ${dir}`], warnings, stats: emptyStats } satisfies YoloValidation
      }
      const reading = readYaml11(yield* datasetIo(yamlFile, fs.readFileString(yamlFile)))
      issues.push(...reading.issues)
      const doc = reading.doc
      const names = reading.names ?? []
      if (reading.names === undefined && typeof doc["nc"] !== "number") issues.push("data.yaml: neither names nor nc")
      if (typeof doc["nc"] === "number" && reading.names !== undefined && doc["nc"] !== names.length) {
        issues.push(`data.yaml: nc is ${doc["nc"]} but names has ${names.length} entries`)
      }
      if (names[0]?.startsWith("n0")) {
        issues.push(`data.yaml: the first class ${JSON.stringify(names[0])} starts with "n0": Ultralytics takes the names for ImageNet codes and renames them`)
      }
      const nc = reading.names !== undefined ? names.length : typeof doc["nc"] === "number" ? doc["nc"] : 0
      const kpt = doc["kpt_shape"]
      const kptShape = Array.isArray(kpt) && kpt.length === 2 ? [Number(kpt[0]), Number(kpt[1])] as const : undefined
      let base = dir
      const rootEntry = doc["path"]
      if (typeof rootEntry === "string") {
        if (!path.isAbsolute(rootEntry)) {
          issues.push(`data.yaml: relative path ${JSON.stringify(rootEntry)} is resolved against Ultralytics' datasets directory, not data.yaml's: leave path out`)
        } else if (!(yield* isDirectory(rootEntry))) issues.push(`data.yaml: path ${rootEntry} is no directory (moved dataset?)`)
        base = path.resolve(dir, rootEntry)
      }
      if (yield* isClassifyLayout(base, doc)) {
        const result = yield* validateClassify(base, doc, reading.names ?? [], minImages, issues, warnings)
        return { ...result, issues: capped(result.issues), warnings: capped(result.warnings) } satisfies YoloValidation
      }
      const bySplit = new Map<string, Array<string>>()
      for (const key of ["train", "val", "test"] as const) {
        const entry = doc[key]
        if (typeof entry !== "string") {
          if (key !== "test") issues.push(`data.yaml: no ${key} entry`)
          continue
        }
        const listed = yield* listSplitImages(base, key, entry, issues)
        if (listed.length === 0 && key !== "test") issues.push(`the ${key} split has no images (Ultralytics refuses to train)`)
        bySplit.set(key, listed)
      }
      const images = new Set([...bySplit.values()].flat())
      if (images.size < minImages) issues.push(`only ${images.size} image(s), fewer than the minimum ${minImages}`)
      yield* checkImages(images, issues, warnings)
      const train = new Set(bySplit.get("train") ?? [])
      const distribution: Record<string, number> = {}
      const trainRows = new Array<number>(nc).fill(0)
      let totalLabels = 0
      let backgrounds = 0
      yield* Effect.forEach(images, (image) => {
        const label = yoloLabelPath(image)
        return Effect.option(fs.readFileString(label)).pipe(Effect.map((text) => {
          if (text._tag === "None") {
            backgrounds++
            return
          }
          const classes = checkYoloLabelText(label, text.value, { nc, kptShape }, issues, warnings)
          if (classes.length === 0) backgrounds++
          for (const cls of classes) {
            totalLabels++
            if (train.has(image)) trainRows[cls]!++
            const name = names[cls] ?? String(cls)
            distribution[name] = (distribution[name] ?? 0) + 1
          }
        }))
      }, { concurrency: ioConcurrency, discard: true })
      if (train.size > 0) {
        trainRows.forEach((n, cls) => {
          if (n === 0) warnings.push(`class ${cls} ${JSON.stringify(names[cls] ?? String(cls))} has no object in the train split`)
        })
      }
      return {
        valid: issues.length === 0,
        issues: capped(issues),
        warnings: capped(warnings),
        stats: { total_images: images.size, total_labels: totalLabels, classes: nc, class_distribution: distribution, background_images: backgrounds }
      } satisfies YoloValidation
    })

  /** The COCO instance files of a dataset directory (`annotations/instances_*.json`). */
  const cocoFiles = (dir: string) =>
    Effect.gen(function*() {
      const annDir = path.join(dir, "annotations")
      const names = yield* Effect.orElseSucceed(fs.readDirectory(annDir), () => [] as Array<string>)
      return names.filter((n) => /^instances_.+\.json$/.test(n)).sort().map((n) => path.join(annDir, n))
    })

  /** Checks COCO instance files as pycocotools and MMDetection load them, and the images they name. */
  const validateCoco = (datasetDir: string, options?: ValidateOptions) =>
    Effect.gen(function*() {
      const dir = path.resolve(datasetDir)
      const issues: Array<string> = []
      const warnings: Array<string> = []
      const files = yield* cocoFiles(dir)
      if (files.length === 0) {
        return { valid: false, issues: [`no COCO instance files (annotations/instances_*.json) in ${dir}`], warnings, stats: emptyStats } satisfies YoloValidation
      }
      const checks = []
      for (const file of files) {
        const doc = yield* datasetIo(file, fs.readFile(file)).pipe(Effect.flatMap((bytes) => parseJsonBytes(file, bytes)), Effect.either)
        if (doc._tag === "Left") {
          issues.push(doc.left.message)
          continue
        }
        checks.push({ file, check: checkCocoDocument(path.basename(file), doc.right, options?.segmentation ?? false, issues) })
      }
      const main = checks.find((c) => c.file.endsWith("instances_all.json")) ?? checks[0]
      const images = new Map(checks.flatMap((c) => c.check.images.map((i) => [i.file_name, i] as const)))
      const candidates = options?.imageRoot !== undefined ? [path.resolve(dir, options.imageRoot)] : [path.join(dir, "images"), dir]
      const first = images.keys().next()
      let root = candidates[0]!
      if (!first.done) {
        for (const c of candidates) {
          if (yield* Effect.orElseSucceed(fs.exists(path.join(c, first.value)), () => false)) {
            root = c
            break
          }
        }
      }
      yield* Effect.forEach(images.values(), (image) =>
        Effect.gen(function*() {
          const file = path.join(root, image.file_name)
          const header = yield* imageHeader(file)
          const problem = imageProblem(header)
          if (problem !== undefined) issues.push(`${file}: ${problem}`)
          else if (header._tag === "Image" && (header.width !== image.width || header.height !== image.height)) {
            issues.push(`${file}: annotated as ${image.width}x${image.height} but the image is ${header.width}x${header.height}`)
          }
        }), { concurrency: 16, discard: true })
      if (images.size < (options?.minImages ?? 1)) issues.push(`only ${images.size} image(s), fewer than the minimum ${options?.minImages ?? 1}`)
      return {
        valid: issues.length === 0,
        issues: capped(issues),
        warnings: capped(warnings),
        stats: {
          total_images: images.size,
          total_labels: main?.check.annotations ?? 0,
          classes: main?.check.categories ?? 0,
          class_distribution: main?.check.distribution ?? {},
          background_images: 0
        }
      } satisfies YoloValidation
    })

  /** Validates whichever outputs the directory holds: YOLO (data.yaml), COCO (instance files), or both. */
  const validate = (datasetDir: string, options?: ValidateOptions) =>
    Effect.gen(function*() {
      const dir = path.resolve(datasetDir)
      const hasYolo = yield* datasetIo(path.join(dir, "data.yaml"), fs.exists(path.join(dir, "data.yaml")))
      const hasCoco = (yield* cocoFiles(dir)).length > 0
      if (!hasYolo && !hasCoco) {
        return {
          valid: false,
          issues: [`neither data.yaml nor annotations/instances_*.json in ${dir}: nothing converted to validate`],
          warnings: [],
          stats: emptyStats,
          formats: []
        } satisfies DatasetValidation
      }
      const yolo = hasYolo ? yield* validateYolo(dir, options) : undefined
      const coco = hasCoco ? yield* validateCoco(dir, options) : undefined
      const parts = [yolo, coco].filter((v): v is YoloValidation => v !== undefined)
      return {
        valid: parts.every((p) => p.valid),
        issues: parts.flatMap((p) => p.issues),
        warnings: parts.flatMap((p) => p.warnings),
        stats: (yolo ?? coco)!.stats,
        formats: [...(yolo ? ["yolo" as const] : []), ...(coco ? ["coco" as const] : [])]
      } satisfies DatasetValidation
    })

  return { validateYolo, validateCoco, validate, imageHeader }
})
