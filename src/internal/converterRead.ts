/**
 * The reading side of the converter: loading a DICE or LabelMe dataset from its directory
 * and finding every image it names.
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect } from "effect"
import { DatasetError } from "../Errors.js"
import { decodeDice, type DiceDataset, diceAnnotationFileNames, parseJsonBytes } from "./diceModel.js"
import { decodeLabelMap, decodeLabelMeImage, labelmeDataset } from "./labelmeDecode.js"

/** Files touched at once (existence checks, label writes, links). */
export const ioConcurrency = 64

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
 * directory, `resolveImages` finds its images.
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

  return { loadDice, loadLabelMe, resolveImages }
})
