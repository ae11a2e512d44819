/**
 * Dataset conversion: DICE (nested, flat COCO-style) and LabelMe v0.9 datasets into the
 * layouts trainers read — YOLO (detect, segment, pose, classify) and COCO instance files —
 * plus validation of a converted YOLO dataset.
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Context, Effect, Layer, Random, Ref } from "effect"
import * as YAML from "yaml"
import { DatasetError } from "./Errors.js"
import { cocoDocuments } from "./internal/cocoExport.js"
import {
  type DatasetSplit,
  decodeDice,
  type DiceDataset,
  diceAnnotationFileNames,
  parseJsonBytes
} from "./internal/diceModel.js"
import { normalizeTaskType } from "./internal/jobConfig.js"
import { decodeLabelMap, decodeLabelMeImage, labelmeDataset } from "./internal/labelmeDecode.js"
import { assignSplits, countSplits, type SplitOptions } from "./internal/splits.js"
import {
  classifyPlan,
  type ConverterTask,
  yoloContext,
  yoloDataYaml,
  yoloImageLines,
  yoloLabelPath
} from "./internal/yoloLabels.js"
import { writeLabelFiles } from "./internal/yoloLabelWriter.js"
import { checkYoloLabelText, type YoloValidation } from "./internal/yoloValidate.js"

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

/** Issues listed by `validateYolo` before the rest are only counted. */
const maxIssues = 200

/** Files touched at once (existence checks, label writes, links). */
const ioConcurrency = 64

const imageExtensions = new Set([".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".dng", ".mpo", ".pfm", ".heic"])

/** `storage_info.image_root` `datasets/{id}/images/` → the local root `images` (after two segments). */
const localImageRoot = (storageRoot: string | undefined): string | undefined => {
  if (storageRoot === undefined) return undefined
  const parts = storageRoot.replace(/\\/g, "/").split("/").filter((p) => p !== "" && p !== ".")
  return parts.length > 2 ? parts.slice(2).join("/") : undefined
}

const toTask = (raw: string | undefined): ConverterTask | undefined =>
  raw === undefined ? "detection" : normalizeTaskType(raw)

const make = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path

  const io = <A>(file: string, effect: Effect.Effect<A, PlatformError>) =>
    Effect.mapError(effect, (e) => new DatasetError({ reason: "Io", file, detail: e.message }))

  const tmpName = (file: string) =>
    Random.nextIntBetween(0, 2 ** 31).pipe(Effect.map((n) => `${file}.tmp-${n.toString(36)}`))

  const writeAtomic = (file: string, text: string) =>
    Effect.gen(function*() {
      const tmp = yield* tmpName(file)
      yield* io(file, fs.writeFileString(tmp, text)).pipe(
        Effect.zipRight(io(file, fs.rename(tmp, file))),
        Effect.tapError(() => Effect.ignore(fs.remove(tmp)))
      )
    })

  const readJson = (file: string) =>
    io(file, fs.readFile(file)).pipe(Effect.flatMap((bytes) => parseJsonBytes(file, bytes)))

  const firstExisting = (candidates: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      for (const c of candidates) if (yield* io(c, fs.exists(c))) return c
      return undefined
    })

  /** Whether a relative name (normalized) climbs out of its directory or is absolute. */
  const escapes = (name: string): boolean => name === ".." || name.startsWith("../") || path.isAbsolute(name)

  const loadDice = (dir: string, taskType: string | undefined) =>
    Effect.gen(function*() {
      const names = diceAnnotationFileNames(taskType)
      const file = yield* firstExisting(names.map((n) => path.join(dir, n)))
      if (file === undefined) {
        return yield* new DatasetError({
          reason: "AnnotationsNotFound",
          file: dir,
          paths: names.map((n) => path.join(dir, n)),
          detail: "no DICE annotation file found"
        })
      }
      const doc = yield* readJson(file)
      return { file, dataset: yield* decodeDice(file, doc) }
    })

  const loadLabelMe = (dir: string) =>
    Effect.gen(function*() {
      const mapFile = path.join(dir, "label_map.json")
      if (!(yield* io(mapFile, fs.exists(mapFile)))) {
        return yield* new DatasetError({
          reason: "AnnotationsNotFound",
          file: dir,
          paths: [mapFile],
          detail: "no LabelMe label_map.json found"
        })
      }
      const index = yield* decodeLabelMap(mapFile, yield* readJson(mapFile))
      const found = yield* Effect.forEach(index.entries, (e) => {
        const candidates = [path.join(dir, "labels", e.labelName), path.join(dir, e.labelName)]
        return Effect.map(firstExisting(candidates), (file) => ({ file, candidates }))
      }, { concurrency: ioConcurrency })
      const missing = found.filter((f) => f.file === undefined)
      if (missing.length > 0) {
        return yield* new DatasetError({
          reason: "AnnotationsNotFound",
          file: mapFile,
          paths: missing.flatMap((m) => m.candidates),
          detail: `${missing.length} LabelMe label file(s) listed in label_map.json not found`
        })
      }
      const decoded = yield* Effect.forEach(found, (f, i) =>
        readJson(f.file!).pipe(
          Effect.flatMap((doc) => decodeLabelMeImage(f.file!, doc, index, i + 1, index.entries[i]!.imageName))
        ), { concurrency: ioConcurrency })
      return { file: mapFile, dataset: labelmeDataset(index, decoded) }
    })

  /**
   * For each candidate list, the first path that exists. Checked by listing each directory
   * involved once (one `readDirectory` instead of a syscall per image), level by level so a
   * later candidate's directory is read only for images not found earlier; a directory that
   * cannot be listed falls back to per-path `exists`.
   */
  const findFirstExisting = (candidates: ReadonlyArray<ReadonlyArray<string>>) =>
    Effect.gen(function*() {
      const resolved = new Array<string | undefined>(candidates.length).fill(undefined)
      const listings = new Map<string, ReadonlySet<string> | undefined>()
      const depth = Math.max(0, ...candidates.map((c) => c.length))
      for (let level = 0; level < depth; level++) {
        const pending: Array<number> = []
        candidates.forEach((c, i) => {
          if (resolved[i] === undefined && level < c.length) pending.push(i)
        })
        const dirs = new Set(pending.map((i) => path.dirname(candidates[i]![level]!)))
        yield* Effect.forEach([...dirs].filter((d) => !listings.has(d)), (d) =>
          Effect.either(fs.readDirectory(d)).pipe(Effect.map((names) =>
            listings.set(
              d,
              names._tag === "Right"
                ? new Set(names.right)
                : names.left._tag === "SystemError" && names.left.reason === "NotFound"
                ? new Set()
                : undefined
            )
          )), { concurrency: 16, discard: true })
        const unlisted: Array<number> = []
        for (const i of pending) {
          const p = candidates[i]![level]!
          const listing = listings.get(path.dirname(p))
          if (listing === undefined) unlisted.push(i)
          else if (listing.has(path.basename(p))) resolved[i] = p
        }
        yield* Effect.forEach(unlisted, (i) => {
          const p = candidates[i]![level]!
          return Effect.map(io(p, fs.exists(p)), (ok) => {
            if (ok) resolved[i] = p
          })
        }, { concurrency: ioConcurrency, discard: true })
      }
      return resolved
    })

  /** Finds every image (spec order of candidates); all missing ones in one error. */
  const resolveImages = (dir: string, file: string, dataset: DiceDataset) =>
    Effect.gen(function*() {
      const root = localImageRoot(dataset.storageImageRoot)
      const prefix = dataset.storageImageRoot?.replace(/^\/+/, "")
      if (root !== undefined && escapes(root)) {
        return yield* new DatasetError({ reason: "PathEscape", file, jsonPath: "storage_info.image_root", detail: `"${root}" points outside the dataset directory` })
      }
      const candidates: Array<Array<string>> = new Array(dataset.images.length)
      for (let i = 0; i < dataset.images.length; i++) {
        let name = dataset.images[i]!.fileName.replace(/\\/g, "/")
        if (prefix && name.startsWith(prefix)) name = name.slice(prefix.length)
        name = path.normalize(name)
        if (escapes(name)) {
          return yield* new DatasetError({
            reason: "PathEscape",
            file,
            jsonPath: `images[${i}].file_name`,
            detail: `"${dataset.images[i]!.fileName}" points outside the dataset directory`
          })
        }
        candidates[i] = root ? [`${dir}/${root}/${name}`, `${dir}/images/${name}`, `${dir}/${name}`] : [`${dir}/images/${name}`, `${dir}/${name}`]
      }
      const resolved = yield* findFirstExisting(candidates)
      const missing = resolved.flatMap((r, i) => (r === undefined ? candidates[i]! : []))
      if (missing.length > 0) {
        const count = resolved.filter((r) => r === undefined).length
        return yield* new DatasetError({
          reason: "MissingImages",
          file,
          paths: missing,
          detail: `${count} of ${resolved.length} image(s) not found (paths tried listed)`
        })
      }
      return { paths: resolved as Array<string>, root }
    })

  /**
   * Removes stale Ultralytics `*.cache` files where Ultralytics writes them: next to each
   * label directory (`labels/a/x.txt` → `labels/a.cache`, `labels/x.txt` → `labels.cache`)
   * and in the dataset directory itself. Listing just those directories instead of walking
   * the whole tree keeps this cheap on datasets of many thousand images.
   */
  const removeCaches = (dirs: Iterable<string>) =>
    Effect.forEach(new Set(dirs), (d) =>
      Effect.option(fs.readDirectory(d)).pipe(Effect.flatMap((names) =>
        Effect.forEach(
          names._tag === "Some" ? names.value.filter((n) => n.endsWith(".cache")) : [],
          (n) => io(path.join(d, n), fs.remove(path.join(d, n))),
          { discard: true }
        )
      )), { concurrency: 16, discard: true })

  /** Symlink `target` → `source` (replacing an old link), falling back to a copy. */
  const linkImage = (source: string, target: string) =>
    Effect.gen(function*() {
      const existing = yield* Effect.option(fs.readLink(target))
      if (existing._tag === "Some") {
        if (existing.value === source) return
        yield* io(target, fs.remove(target))
      } else if (yield* io(target, fs.exists(target))) return
      yield* fs.symlink(source, target).pipe(
        Effect.orElse(() => fs.copyFile(source, target)),
        (e) => io(target, e)
      )
    })

  /**
   * Moves a freshly written tree `staged` to `target`. A previous tree holding only label
   * files is swapped out whole; a tree with other files (e.g. LabelMe JSON) keeps them: the
   * new files are moved in one by one and stale `.txt` files removed.
   */
  const installTree = (staged: string, target: string, newFiles: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      if (!(yield* io(target, fs.exists(target)))) return yield* io(target, fs.rename(staged, target))
      const old = yield* io(target, fs.readDirectory(target, { recursive: true }))
      const foreign = yield* Effect.filter(old, (e) =>
        e.endsWith(".txt") ? Effect.succeed(false) : io(e, fs.stat(path.join(target, e))).pipe(Effect.map((s) => s.type !== "Directory")))
      if (foreign.length === 0) {
        const aside = yield* tmpName(target)
        yield* io(target, fs.rename(target, aside))
        yield* io(target, fs.rename(staged, target))
        return yield* io(aside, fs.remove(aside, { recursive: true }))
      }
      const keep = new Set(newFiles)
      yield* Effect.forEach(old.filter((e) => e.endsWith(".txt") && !keep.has(e)), (e) =>
        io(e, fs.remove(path.join(target, e))), { concurrency: ioConcurrency, discard: true })
      const dirs = new Set(newFiles.map((f) => path.dirname(path.join(target, f))))
      yield* Effect.forEach(dirs, (d) => io(d, fs.makeDirectory(d, { recursive: true })), { discard: true })
      yield* Effect.forEach(newFiles, (f) =>
        io(f, fs.rename(path.join(staged, f), path.join(target, f))), { concurrency: ioConcurrency, discard: true })
      yield* io(staged, fs.remove(staged, { recursive: true }))
    })

  const writeSplitLists = (dir: string, imagePaths: ReadonlyArray<string>, splits: ReadonlyArray<DatasetSplit>) =>
    Effect.gen(function*() {
      const lists: Record<DatasetSplit, Array<string>> = { train: [], val: [], test: [] }
      splits.forEach((s, i) => lists[s].push(imagePaths[i]!))
      const outputs: Array<string> = []
      for (const s of ["train", "val", "test"] as const) {
        const file = path.join(dir, `${s}.txt`)
        if (s === "test" && lists.test.length === 0) {
          yield* io(file, fs.remove(file, { force: true }))
          continue
        }
        yield* writeAtomic(file, lists[s].length > 0 ? lists[s].join("\n") + "\n" : "")
        outputs.push(file)
      }
      return outputs
    })

  const toYolo = (dir: string, dataset: DiceDataset, task: ConverterTask, splits: Array<DatasetSplit>, images: Array<string>) =>
    Effect.gen(function*() {
      const ctx = yoloContext(dataset, task)
      if (task === "pose" && ctx.keypointCount === 0) {
        return yield* new DatasetError({ reason: "InvalidShape", file: dir, detail: "task pose but no annotation has keypoints" })
      }
      const skipped: Record<string, number> = { ...dataset.skipped }
      // Images outside an `images` folder are linked under dataset_dir/images/ for Ultralytics.
      const links: Array<readonly [string, string]> = []
      const imagePaths = images.map((p) => {
        const rel = p.slice(dir.length + 1)
        if (rel.startsWith("images/") || rel.lastIndexOf("/images/", rel.lastIndexOf("/")) >= 0) return p
        const target = path.join(dir, "images", rel)
        links.push([p, target])
        return target
      })
      const roots = new Map<string, Array<readonly [string, string]>>()
      let objects = 0, negatives = 0
      dataset.images.forEach((image, i) => {
        const lines = yoloImageLines(image, ctx, skipped)
        objects += lines.length
        if (lines.length === 0) negatives++
        const label = yoloLabelPath(imagePaths[i]!)
        const at = label.lastIndexOf("/labels/") + "/labels".length
        const root = label.slice(0, at)
        let files = roots.get(root)
        if (files === undefined) roots.set(root, files = [])
        files.push([label.slice(at + 1), lines.join("\n")])
      })
      const linkDirs = new Set(links.map(([, t]) => path.dirname(t)))
      yield* Effect.forEach(linkDirs, (d) => io(d, fs.makeDirectory(d, { recursive: true })), { discard: true })
      yield* Effect.forEach(links, ([s, t]) => linkImage(s, t), { concurrency: ioConcurrency, discard: true })
      const staging = yield* tmpName(path.join(dir, ".labels"))
      yield* Effect.gen(function*() {
        let n = 0
        for (const [root, files] of roots) {
          const staged = path.join(staging, String(n++))
          // Label names are plain `a/b.txt` paths built above, so string joins are enough here.
          const dirs = new Set<string>([staged])
          for (const [f] of files) {
            const slash = f.lastIndexOf("/")
            if (slash > 0) dirs.add(`${staged}/${f.slice(0, slash)}`)
          }
          yield* Effect.forEach(dirs, (d) => io(d, fs.makeDirectory(d, { recursive: true })), { discard: true })
          yield* writeLabelFiles(files.map(([f, text]) => [`${staged}/${f}`, text] as const))
          yield* installTree(staged, root, files.map(([f]) => f))
        }
      }).pipe(Effect.ensuring(Effect.ignore(fs.remove(staging, { recursive: true }))))
      const outputs = [...roots.keys()]
      outputs.push(...yield* writeSplitLists(dir, imagePaths, splits))
      const yamlFile = path.join(dir, "data.yaml")
      yield* writeAtomic(yamlFile, yoloDataYaml({
        path: dir,
        names: dataset.categories.map((c) => c.name),
        hasTest: splits.includes("test"),
        kptShape: task === "pose" ? [ctx.keypointCount, 3] : undefined
      }))
      outputs.unshift(yamlFile)
      const labelDirs = new Set<string>()
      for (const [root, files] of roots) for (const [f] of files) labelDirs.add(path.dirname(path.join(root, f)))
      yield* removeCaches([dir, ...[...labelDirs].map((d) => path.dirname(d))])
      return { objects, negatives, skipped, outputs }
    })

  const toClassifyFolders = (dir: string, dataset: DiceDataset, splits: Array<DatasetSplit>, images: Array<string>) =>
    Effect.gen(function*() {
      const ctx = yoloContext(dataset, "classification")
      const skipped: Record<string, number> = { ...dataset.skipped }
      const plan = classifyPlan(dataset, splits, ctx, skipped)
      const splitDirs = (["train", "val", "test"] as const).map((s) => path.join(dir, s))
      const clash = images.find((p) => splitDirs.some((d) => p.startsWith(d + path.sep)))
      if (clash !== undefined) {
        return yield* new DatasetError({
          reason: "InvalidShape",
          file: clash,
          detail: "source images live under dataset_dir/train|val|test, which the classification tree replaces"
        })
      }
      const staging = yield* tmpName(path.join(dir, ".classify"))
      yield* Effect.gen(function*() {
        const dirs = new Set(plan.map((l) => path.dirname(path.join(staging, l.target))))
        yield* Effect.forEach(dirs, (d) => io(d, fs.makeDirectory(d, { recursive: true })), { discard: true })
        yield* Effect.forEach(plan, (l) => linkImage(images[l.image]!, path.join(staging, l.target)), {
          concurrency: ioConcurrency,
          discard: true
        })
        for (const s of ["train", "val", "test"] as const) {
          const target = path.join(dir, s)
          const staged = path.join(staging, s)
          const aside = yield* tmpName(target)
          const hadOld = yield* io(target, fs.exists(target))
          if (hadOld) yield* io(target, fs.rename(target, aside))
          if (yield* io(staged, fs.exists(staged))) yield* io(target, fs.rename(staged, target))
          if (hadOld) yield* io(aside, fs.remove(aside, { recursive: true }))
        }
      }).pipe(Effect.ensuring(Effect.ignore(fs.remove(staging, { recursive: true }))))
      const yamlFile = path.join(dir, "data.yaml")
      yield* writeAtomic(yamlFile, yoloDataYaml({
        path: dir,
        names: dataset.categories.map((c) => c.name),
        hasTest: plan.some((l) => l.target.startsWith("test/")),
        folders: true
      }))
      const used = new Set(plan.map((l) => l.target.split("/")[0]!))
      yield* removeCaches([dir])
      return {
        objects: plan.length,
        negatives: 0,
        skipped,
        outputs: [yamlFile, ...splitDirs.filter((d) => used.has(path.basename(d)))]
      }
    })

  const toCoco = (dir: string, dataset: DiceDataset, splits: Array<DatasetSplit>, images: Array<string>, root: string | undefined) =>
    Effect.gen(function*() {
      const roots = [...(root ? [path.join(dir, root)] : []), path.join(dir, "images"), dir]
      const imageRoot = roots.find((r) => images.every((p) => p.startsWith(r + path.sep)))!
      const skipped: Record<string, number> = { ...dataset.skipped }
      const out = cocoDocuments(dataset, splits, images.map((p) => path.relative(imageRoot, p).split(path.sep).join("/")), skipped)
      const annDir = path.join(dir, "annotations")
      yield* io(annDir, fs.makeDirectory(annDir, { recursive: true }))
      const outputs: Array<string> = []
      for (const s of ["train", "val", "test"] as const) {
        const file = path.join(annDir, `instances_${s}.json`)
        const doc = out.splits[s]
        if (doc === undefined) yield* io(file, fs.remove(file, { force: true }))
        else {
          yield* writeAtomic(file, JSON.stringify(doc))
          outputs.push(file)
        }
      }
      const allFile = path.join(annDir, "instances_all.json")
      yield* writeAtomic(allFile, JSON.stringify(out.all))
      outputs.push(allFile)
      const negatives = out.all.images.length - new Set(out.all.annotations.map((a) => a.image_id)).size
      return { objects: out.all.annotations.length, negatives, skipped, outputs, imageRoot }
    })

  const convert = Effect.fn("Converter.convert")(function*(options: ConvertOptions) {
    const dir = path.resolve(options.datasetDir)
    const { dataset, file } = options.from === "labelme" ? yield* loadLabelMe(dir) : yield* loadDice(dir, options.taskType)
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
    const { paths, root } = yield* resolveImages(dir, file, dataset)
    const splits = assignSplits(dataset.images, options.split)
    const result = options.to === "coco"
      ? yield* toCoco(dir, dataset, splits, paths, root)
      : task === "classification"
      ? { ...yield* toClassifyFolders(dir, dataset, splits, paths), imageRoot: dir }
      : { ...yield* toYolo(dir, dataset, task, splits, paths), imageRoot: dir }
    return {
      to: options.to,
      taskType: task,
      images: dataset.images.length,
      objects: result.objects,
      negatives: result.negatives,
      classes: dataset.categories.map((c) => c.name),
      skipped: result.skipped,
      splits: countSplits(splits),
      outputs: result.outputs,
      imageRoot: result.imageRoot
    } satisfies ConversionReport
  })

  const listSplitImages = (base: string, entry: string) =>
    Effect.gen(function*() {
      const target = path.resolve(base, entry)
      if (entry.endsWith(".txt")) {
        if (!(yield* io(target, fs.exists(target)))) return { images: [] as Array<string>, missing: target }
        const text = yield* io(target, fs.readFileString(target))
        const images = text.split("\n").map((l) => l.trim()).filter((l) => l !== "")
          .map((l) => path.resolve(l.startsWith("./") ? base : "/", l))
        return { images, missing: undefined }
      }
      if (!(yield* io(target, fs.exists(target)))) return { images: [] as Array<string>, missing: target }
      const entries = yield* io(target, fs.readDirectory(target, { recursive: true }))
      return {
        images: entries.filter((e) => imageExtensions.has(path.extname(e).toLowerCase())).map((e) => path.join(target, e)),
        missing: undefined
      }
    })

  const validateYolo = Effect.fn("Converter.validateYolo")(function*(datasetDir: string, options?: ValidateYoloOptions) {
    const dir = path.resolve(datasetDir)
    const minImages = options?.minImages ?? 1
    const issues: Array<string> = []
    const yamlFile = path.join(dir, "data.yaml")
    const empty = { total_images: 0, total_labels: 0, classes: 0, class_distribution: {} }
    if (!(yield* io(yamlFile, fs.exists(yamlFile)))) {
      return { valid: false, issues: [`missing data.yaml in ${dir}`], stats: empty } satisfies YoloValidation
    }
    const text = yield* io(yamlFile, fs.readFileString(yamlFile))
    const data = yield* Effect.try({
      try: () => YAML.parse(text) as unknown,
      catch: (e) => new DatasetError({ reason: "InvalidJson", file: yamlFile, detail: `malformed YAML: ${String(e)}` })
    })
    const doc = (typeof data === "object" && data !== null ? data : {}) as Record<string, unknown>
    const names: Array<string> = Array.isArray(doc["names"])
      ? doc["names"].map(String)
      : typeof doc["names"] === "object" && doc["names"] !== null
      ? Object.values(doc["names"]).map(String)
      : []
    const nc = typeof doc["nc"] === "number" ? doc["nc"] : names.length
    if (names.length !== nc) issues.push(`data.yaml: nc is ${nc} but names has ${names.length} entries`)
    const kpt = doc["kpt_shape"]
    const kptShape = Array.isArray(kpt) && kpt.length === 2 ? [Number(kpt[0]), Number(kpt[1])] as const : undefined
    const base = typeof doc["path"] === "string" ? path.resolve(dir, doc["path"]) : dir
    const images = new Set<string>()
    for (const key of ["train", "val", "test"] as const) {
      const entry = doc[key]
      if (typeof entry !== "string") {
        if (key !== "test") issues.push(`data.yaml: no ${key} entry`)
        continue
      }
      const listed = yield* listSplitImages(base, entry)
      if (listed.missing !== undefined) issues.push(`data.yaml: ${key} points to missing ${listed.missing}`)
      for (const image of listed.images) images.add(image)
    }
    if (images.size < minImages) issues.push(`only ${images.size} image(s), fewer than the minimum ${minImages}`)
    const distribution: Record<string, number> = {}
    let totalLabels = 0
    let unlabelled = 0
    yield* Effect.forEach(images, (image) => {
      const label = yoloLabelPath(image)
      return Effect.option(fs.readFileString(label)).pipe(Effect.map((text) => {
        if (text._tag === "None") {
          unlabelled++
          if (unlabelled <= 20) issues.push(`image without label file: ${image} (expected ${label})`)
          return
        }
        for (const cls of checkYoloLabelText(label, text.value, { nc, kptShape }, issues)) {
          totalLabels++
          const name = names[cls] ?? String(cls)
          distribution[name] = (distribution[name] ?? 0) + 1
        }
      }))
    }, { concurrency: ioConcurrency, discard: true })
    if (unlabelled > 20) issues.push(`${unlabelled - 20} more image(s) without label file`)
    const shown = issues.length > maxIssues
      ? [...issues.slice(0, maxIssues), `and ${issues.length - maxIssues} more issue(s)`]
      : issues
    return {
      valid: issues.length === 0,
      issues: shown,
      stats: { total_images: images.size, total_labels: totalLabels, classes: nc, class_distribution: distribution }
    } satisfies YoloValidation
  })

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
