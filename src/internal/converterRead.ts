/**
 * The reading side of the converter: loading a DICE or LabelMe dataset from its directory
 * and finding every image it names.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, Either } from "effect"
import { DatasetError } from "../Errors.js"
import { diceAnnotationFileNames } from "./annotationNames.js"
import type { DiceDataset, DiceImage, NestedDecodeObserver } from "./diceModel.js"
import { decodeDiceBytes } from "./diceSchema.js"
import { parseJsonBytes } from "./json.js"
import { defaultChunkBytes } from "./jsonChunks.js"
import { decodeLabelMap, decodeLabelMeImage, labelmeDataset } from "./labelmeDecode.js"
import { isPlainFileName, normalizeRelativeName } from "./safeName.js"
import { readSharedFile } from "./sharedWork.js"

/** Files touched at once (existence checks, label writes, links). */
export const ioConcurrency = 64

/**
 * The local image root of `storage_info.image_root`: its key (an `s3://bucket/` prefix
 * dropped) normalised by the shared name rule, and the part after `datasets/{id}/` that is
 * a folder of the dataset directory (`datasets/{id}/images/` → `images`). `Left` with the
 * reason for a root the name rule rejects (a `..` segment, a NUL byte).
 */
export const localImageRoot = (
  storageRoot: string | undefined
): Either.Either<{ readonly prefix: string; readonly root: string | undefined } | undefined, string> => {
  if (storageRoot === undefined) return Either.right(undefined)
  const key = storageRoot.replace(/^s3:\/\/[^/]*\//, "").replace(/^[\\/]+/, "")
  if (key.replace(/[\\/.]/g, "") === "") return Either.right(undefined)
  return Either.map(normalizeRelativeName(key), (normalized) => {
    const parts = normalized.split("/")
    return { prefix: `${normalized}/`, root: parts.length > 2 ? parts.slice(2).join("/") : undefined }
  })
}

/** Runs a file-system effect, turning its `PlatformError` into an `Io` `DatasetError` naming `file`. */
export const datasetIo = <A>(file: string, effect: Effect.Effect<A, PlatformError>): Effect.Effect<A, DatasetError> =>
  Effect.mapError(effect, (e) => new DatasetError({ reason: "Io", file, detail: e.message }))

/** An image as `resolveImages` finds it: its name (normalised, the image root's prefix dropped), its file and that file's candidate level. */
export interface ResolvedImage {
  readonly name: string
  readonly found: string
  readonly level: number
}

/**
 * Images already resolved by the same rules against the same listings (the label proposal
 * does, see `labelPrewrite`): for the dataset directory `base` (resolved) and the image
 * root `imageRoot` (`localImageRoot`'s), `of` gives what it found for an image object.
 */
export interface KnownImages {
  readonly base: string
  readonly imageRoot: { readonly prefix: string; readonly root: string | undefined } | undefined
  readonly of: (image: DiceImage) => ResolvedImage | undefined
}

/** A place an image may be: its absolute path, and that path's directory and base name. */
export interface Candidate {
  readonly path: string
  readonly dir: string
  readonly base: string
}

/**
 * The candidate `relative` under the absolute, resolved directory `root`. `relative` is a
 * name normalised by `normalizeRelativeName` (or two joined by `/`): relative, without empty,
 * `.` or `..` segments, so joining it to `root` stays inside `root` by construction — no
 * `path.resolve` needed per image.
 */
const candidateOf = (root: string, relative: string): Candidate => {
  const path = root.endsWith("/") ? `${root}${relative}` : `${root}/${relative}`
  const slash = path.lastIndexOf("/")
  return { path, dir: slash === 0 ? "/" : path.slice(0, slash), base: path.slice(slash + 1) }
}

/** How many places an image may be: under the local image root `root` (when there is one), under `images/`, under the base. */
export const candidateLevels = (root: string | undefined): number => (root ? 3 : 2)

/**
 * The `level`th place (0-based, below `candidateLevels`) an image named `name` (normalised,
 * the image root's prefix dropped) may be, in the spec's order: under the local image root
 * `root`, under `images/`, under `base` itself.
 */
export const imageCandidate = (base: string, root: string | undefined, name: string, level: number): Candidate => {
  const place = root ? level : level + 1
  return candidateOf(base, place === 0 ? `${root}/${name}` : place === 1 ? `images/${name}` : name)
}

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

  /** Loads the DICE file of `dir`; `observerFor` (given the file) watches nested images being decoded. */
  const loadDice = (dir: string, taskType: string | undefined, observerFor?: (file: string) => NestedDecodeObserver) =>
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
      const observer = observerFor?.(file)
      // Shared memory when another thread reads the bytes too: as already read by one, or read
      // here; a file that changes size or fails to read that way is read the plain way, which
      // reports any failure.
      const bytes = observer?.readAhead?.() ??
        (observer?.sharedBytes ? Either.getOrUndefined(Either.try(() => readSharedFile(file))) : undefined) ??
        (yield* datasetIo(file, fs.readFile(file)))
      return { file, dataset: yield* decodeDiceBytes(file, bytes, defaultChunkBytes, observer) }
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
      const unusable = index.entries.findIndex((e) => !isPlainFileName(e.labelName))
      if (unusable >= 0) {
        return yield* new DatasetError({
          reason: "PathEscape",
          file: mapFile,
          jsonPath: `data_summary[${unusable}].label_path`,
          detail: `label file name "${index.entries[unusable]!.labelName}" is not a usable file name`
        })
      }
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
   * For each of `count` images, the first of its candidates (`candidateAt(i, level)`, levels
   * below `levels`) that exists. Checked by listing each directory involved once (one
   * `readDirectory` instead of a syscall per image), level by level so a later candidate is
   * built and its directory read only for images not found earlier; a directory that cannot
   * be listed falls back to per-path `exists`. `resolvedAt(i)` is what was found for an
   * image already, by the same search.
   */
  const findFirstExisting = (
    count: number,
    levels: number,
    candidateAt: (i: number, level: number) => Candidate,
    known: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
    resolvedAt: (i: number) => ResolvedImage | undefined = () => undefined
  ) =>
    Effect.gen(function*() {
      const resolved = new Array<string | undefined>(count).fill(undefined)
      const listings = new Map<string, ReadonlySet<string> | undefined>(known)
      // The levels images were found at: one level for all means no two share a path (their names differ).
      const found = new Set<number>()
      for (let i = 0; i < count; i++) {
        const r = resolvedAt(i)
        if (r === undefined) continue
        resolved[i] = r.found
        found.add(r.level)
      }
      for (let level = 0; level < levels; level++) {
        const pending: Array<number> = []
        const candidates: Array<Candidate> = []
        const dirs = new Set<string>()
        for (let i = 0; i < count; i++) {
          if (resolved[i] !== undefined) continue
          const c = candidateAt(i, level)
          pending.push(i)
          candidates.push(c)
          dirs.add(c.dir)
        }
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
        for (let k = 0; k < pending.length; k++) {
          const c = candidates[k]!
          const listing = listings.get(c.dir)
          if (listing === undefined) unlisted.push(k)
          else if (listing.has(c.base)) {
            resolved[pending[k]!] = c.path
            found.add(level)
          }
        }
        yield* Effect.forEach(unlisted, (k) => {
          const p = candidates[k]!.path
          return Effect.map(datasetIo(p, fs.exists(p)), (ok) => {
            if (ok) {
              resolved[pending[k]!] = p
              found.add(level)
            }
          })
        }, { concurrency: ioConcurrency, discard: true })
      }
      return { resolved, oneLevel: found.size <= 1 }
    })

  /**
   * Finds every image (spec order of candidates); all missing ones in one error. Every name
   * goes through the shared name rule, so every candidate stays inside `dir` (see
   * `candidateOf`); two images naming one file are a `Duplicate` error naming both.
   * `listed` holds directory listings this conversion already made (by path), used instead
   * of listing those directories again; `known`, images already resolved against them.
   */
  const resolveImages = (
    dir: string,
    file: string,
    dataset: DiceDataset,
    listed?: ReadonlyMap<string, ReadonlySet<string>>,
    known?: KnownImages
  ) =>
    Effect.gen(function*() {
      const imageRoot = localImageRoot(dataset.storageImageRoot)
      if (Either.isLeft(imageRoot)) {
        return yield* new DatasetError({
          reason: "PathEscape",
          file,
          jsonPath: "storage_info.image_root",
          detail: `"${dataset.storageImageRoot}" ${imageRoot.left}: it could point outside the dataset directory`
        })
      }
      const { prefix, root } = imageRoot.right ?? { prefix: undefined, root: undefined }
      const base = path.resolve(dir)
      const names: Array<string> = new Array(dataset.images.length)
      const firstByName = new Map<string, number>()
      const same = known !== undefined && known.base === base && known.imageRoot?.prefix === prefix && known.imageRoot?.root === root
      const resolvedBefore: Array<ResolvedImage | undefined> = same ? dataset.images.map(known.of) : []
      for (let i = 0; i < dataset.images.length; i++) {
        const raw = dataset.images[i]!.fileName
        const before = resolvedBefore[i]
        if (before !== undefined) {
          const first = firstByName.get(before.name)
          if (first !== undefined) return yield* duplicateName(file, dataset, first, i, before.name)
          firstByName.set(before.name, i)
          names[i] = before.name
          continue
        }
        const normalized = normalizeRelativeName(raw)
        if (Either.isLeft(normalized)) {
          return yield* new DatasetError({
            reason: "PathEscape",
            file,
            jsonPath: `images[${i}].file_name`,
            detail: `"${raw}" ${normalized.left}: it could point outside the dataset directory`
          })
        }
        const name = prefix !== undefined && normalized.right.startsWith(prefix)
          ? normalized.right.slice(prefix.length)
          : normalized.right
        const first = firstByName.get(name)
        if (first !== undefined) return yield* duplicateName(file, dataset, first, i, name)
        firstByName.set(name, i)
        names[i] = name
      }
      const levels = candidateLevels(root)
      const { oneLevel, resolved } = yield* findFirstExisting(
        names.length,
        levels,
        (i, level) => imageCandidate(base, root, names[i]!, level),
        listed,
        (i) => resolvedBefore[i]
      )
      const missing: Array<string> = []
      let count = 0
      for (let i = 0; i < resolved.length; i++) {
        if (resolved[i] !== undefined) continue
        count++
        for (let level = 0; level < levels; level++) missing.push(imageCandidate(base, root, names[i]!, level).path)
      }
      if (missing.length > 0) {
        return yield* new DatasetError({
          reason: "MissingImages",
          file,
          paths: missing,
          detail: `${count} of ${resolved.length} image(s) not found (paths tried listed)`
        })
      }
      const byPath = new Map<string, number>()
      for (let i = 0; i < resolved.length && !oneLevel; i++) {
        const first = byPath.get(resolved[i]!)
        if (first !== undefined) {
          return yield* new DatasetError({
            reason: "Duplicate",
            file,
            jsonPath: `images[${i}].file_name`,
            paths: [dataset.images[first]!.fileName, dataset.images[i]!.fileName],
            detail: `images[${first}] and images[${i}] resolve to the same file ${resolved[i]}`
          })
        }
        byPath.set(resolved[i]!, i)
      }
      return { paths: resolved as Array<string>, root }
    })

  return { loadDice, loadLabelMe, resolveImages }
})

/** The error for `images[i]` naming the same file `name` as `images[first]`. */
const duplicateName = (file: string, dataset: DiceDataset, first: number, i: number, name: string) =>
  new DatasetError({
    reason: "Duplicate",
    file,
    jsonPath: `images[${i}].file_name`,
    paths: [dataset.images[first]!.fileName, dataset.images[i]!.fileName],
    detail: `images[${first}] and images[${i}] name the same file "${name}"`
  })
