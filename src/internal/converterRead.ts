/**
 * The reading side of the converter: loading a DICE or LabelMe dataset from its directory,
 * finding every image it names, and validating a converted YOLO dataset on disk.
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect } from "effect"
import * as YAML from "yaml"
import type { ValidateYoloOptions } from "../Converter.js"
import { DatasetError } from "../Errors.js"
import { decodeDice, type DiceDataset, diceAnnotationFileNames, parseJsonBytes } from "./diceModel.js"
import { decodeLabelMap, decodeLabelMeImage, labelmeDataset } from "./labelmeDecode.js"
import { classFolderName, yoloLabelPath } from "./yoloLabels.js"
import { checkClassifySplits, checkYoloLabelText, type ClassifySplitListing, type YoloValidation } from "./yoloValidate.js"

/** Issues listed by `validateYolo` before the rest are only counted. */
const maxIssues = 200

/** The first `maxIssues` issues, and a count of the rest. */
const capIssues = (issues: ReadonlyArray<string>): ReadonlyArray<string> =>
  issues.length > maxIssues ? [...issues.slice(0, maxIssues), `and ${issues.length - maxIssues} more issue(s)`] : issues

/** Files touched at once (existence checks, label writes, links). */
export const ioConcurrency = 64

/** Extensions counted as images when a split entry of data.yaml is a folder. */
const imageExtensions = new Set([".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".dng", ".mpo", ".pfm", ".heic"])

/** `storage_info.image_root` `datasets/{id}/images/` → the local root `images` (after two segments). */
const localImageRoot = (storageRoot: string | undefined): string | undefined => {
  if (storageRoot === undefined) return undefined
  const parts = storageRoot.replace(/\\/g, "/").split("/").filter((p) => p !== "" && p !== ".")
  return parts.length > 2 ? parts.slice(2).join("/") : undefined
}

/** Runs a file-system effect, turning its `PlatformError` into an `Io` `DatasetError` naming `file`. */
export const datasetIo = <A>(file: string, effect: Effect.Effect<A, PlatformError>): Effect.Effect<A, DatasetError> =>
  Effect.mapError(effect, (e) => new DatasetError({ reason: "Io", file, detail: e.message }))

/**
 * The reader on `@effect/platform`'s FileSystem: `loadDice`/`loadLabelMe` decode a dataset
 * directory, `resolveImages` finds its images, `validateYolo` checks a converted YOLO dataset.
 */
export const makeConverterReader = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path

  const readJson = (file: string) =>
    datasetIo(file, fs.readFile(file)).pipe(Effect.flatMap((bytes) => parseJsonBytes(file, bytes)))

  const firstExisting = (candidates: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      for (const c of candidates) if (yield* datasetIo(c, fs.exists(c))) return c
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
      if (!(yield* datasetIo(mapFile, fs.exists(mapFile)))) {
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
          return Effect.map(datasetIo(p, fs.exists(p)), (ok) => {
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

  const listSplitImages = (base: string, entry: string) =>
    Effect.gen(function*() {
      const target = path.resolve(base, entry)
      if (entry.endsWith(".txt")) {
        if (!(yield* datasetIo(target, fs.exists(target)))) return { images: [] as Array<string>, missing: target }
        const text = yield* datasetIo(target, fs.readFileString(target))
        const images = text.split("\n").map((l) => l.trim()).filter((l) => l !== "")
          .map((l) => path.resolve(l.startsWith("./") ? base : "/", l))
        return { images, missing: undefined }
      }
      if (!(yield* datasetIo(target, fs.exists(target)))) return { images: [] as Array<string>, missing: target }
      const entries = yield* datasetIo(target, fs.readDirectory(target, { recursive: true }))
      return {
        images: entries.filter((e) => imageExtensions.has(path.extname(e).toLowerCase())).map((e) => path.join(target, e)),
        missing: undefined
      }
    })

  const isDirectory = (target: string) =>
    Effect.map(Effect.option(fs.stat(target)), (info) => info._tag === "Some" && info.value.type === "Directory")

  /**
   * Whether data.yaml's `train` entry is a classification split: a directory (not a `.txt`
   * list, no `images` segment, which would make it a detection image folder) holding class
   * folders and no images of its own.
   */
  const isClassifyLayout = (base: string, doc: Record<string, unknown>) =>
    Effect.gen(function*() {
      const entry = doc["train"]
      if (typeof entry !== "string" || entry.endsWith(".txt")) return false
      const target = path.resolve(base, entry)
      if (target.split(path.sep).includes("images") || !(yield* isDirectory(target))) return false
      const children = yield* datasetIo(target, fs.readDirectory(target))
      if (children.some((c) => imageExtensions.has(path.extname(c).toLowerCase()))) return false
      return yield* Effect.exists(children, (c) => isDirectory(path.join(target, c)))
    })

  /** One split directory of a classification dataset: its class folders and any loose images. */
  const listClassifySplit = (split: string, dir: string) =>
    Effect.gen(function*() {
      const children = (yield* datasetIo(dir, fs.readDirectory(dir))).sort()
      const folders: Array<{ name: string; images: Array<string> }> = []
      const looseImages: Array<string> = []
      for (const child of children) {
        const full = path.join(dir, child)
        if (yield* isDirectory(full)) {
          const inside = yield* datasetIo(full, fs.readDirectory(full, { recursive: true }))
          folders.push({
            name: child,
            images: inside.filter((e) => imageExtensions.has(path.extname(e).toLowerCase())).map((e) => path.join(full, e))
          })
        } else if (imageExtensions.has(path.extname(child).toLowerCase())) looseImages.push(full)
      }
      return { split, dir, folders, looseImages } satisfies ClassifySplitListing
    })

  const validateClassify = (base: string, doc: Record<string, unknown>, names: ReadonlyArray<string>, nc: number, minImages: number, issues: Array<string>) =>
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
      return checkClassifySplits(splits, names, nc, minImages, classFolderName, issues)
    })

  const validateYolo = (datasetDir: string, options?: ValidateYoloOptions) =>
    Effect.gen(function*() {
      const dir = path.resolve(datasetDir)
      const minImages = options?.minImages ?? 1
      const issues: Array<string> = []
      const yamlFile = path.join(dir, "data.yaml")
      const empty = { total_images: 0, total_labels: 0, classes: 0, class_distribution: {} }
      if (!(yield* datasetIo(yamlFile, fs.exists(yamlFile)))) {
        return { valid: false, issues: [`missing data.yaml in ${dir}`], stats: empty } satisfies YoloValidation
      }
      const text = yield* datasetIo(yamlFile, fs.readFileString(yamlFile))
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
      if (yield* isClassifyLayout(base, doc)) {
        const result = yield* validateClassify(base, doc, names, nc, minImages, issues)
        return { ...result, issues: capIssues(result.issues) } satisfies YoloValidation
      }
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
      return {
        valid: issues.length === 0,
        issues: capIssues(issues),
        stats: { total_images: images.size, total_labels: totalLabels, classes: nc, class_distribution: distribution }
      } satisfies YoloValidation
    })

  return { loadDice, loadLabelMe, resolveImages, validateYolo }
})
