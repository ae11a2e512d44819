/**
 * The writing side of the converter: YOLO label trees and split lists, the classification
 * ImageFolder tree, COCO instance files. Every output is staged (or written to a temporary
 * name) and moved into place, so nothing is left half-written on failure.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Effect } from "effect"
import { DatasetError } from "../Errors.js"
import { type CocoPrintSharing, type CocoFile, cocoFilePieces } from "./cocoExport.js"
import { datasetIo, ioConcurrency } from "./converterRead.js"
import type { DiceDataset } from "./diceModel.js"
import { temporaryToken, writeFileAtomically, writeFilesAtomically } from "./files.js"
import type { PrewrittenLabel, PrewrittenLabels } from "./labelPrewrite.js"
import { countSkip, flipIndex } from "./objectRules.js"
import { isInside } from "./safeName.js"
import {
  classifyPlan,
  yoloContext,
  yoloImageLabel,
  yoloImagePlace,
  yoloLabelPath,
  yoloLabelPlacer,
  yoloLabelRoot
} from "./yoloLabels.js"
import { yoloDataYaml } from "./dataYaml.js"
import { writeLabelFiles } from "./yoloLabelWriter.js"
import type { ConverterTask, DatasetSplit } from "../Converter.js"

/**
 * A split-file line for an image: `./` and the path relative to the dataset directory, which
 * Ultralytics resolves against the split file's directory (so a moved dataset still loads).
 * Ultralytics replaces every `./` of such a line, so a path that holds `./` elsewhere (a
 * folder name ending in `.`) is written absolute, as the second value says.
 */
export const splitFileLine = (dir: string, imagePath: string): readonly [string, boolean] => {
  const rel = imagePath.slice(dir.length + 1)
  return imagePath.startsWith(`${dir}/`) && !rel.includes("./") ? [`./${rel}`, true] : [imagePath, false]
}

/**
 * The pose warnings and `flip_idx` of a dataset: the keypoint names of its categories must
 * agree and number `k` for the pairing to be derived.
 */
export const poseFlip = (dataset: DiceDataset, k: number): { readonly flipIdx: Array<number> | undefined; readonly warning: string | undefined } => {
  const lists = dataset.categories.flatMap((c) => (c.keypointNames ? [c.keypointNames] : []))
  const noFlip = "Ultralytics turns horizontal-flip augmentation off without it"
  if (lists.length === 0) return { flipIdx: undefined, warning: `no flip_idx: the categories name no keypoints; ${noFlip}` }
  const names = lists[0]!
  if (lists.some((l) => l.length !== names.length || l.some((n, i) => n !== names[i])) || names.length !== k) {
    return { flipIdx: undefined, warning: `no flip_idx: the categories' keypoint names disagree or do not number ${k}; ${noFlip}` }
  }
  const flipIdx = flipIndex(names)
  return flipIdx === undefined
    ? { flipIdx, warning: `no flip_idx: the keypoint names do not pair up by left/right; ${noFlip}` }
    : { flipIdx, warning: undefined }
}

/**
 * The writer on `@effect/platform`'s FileSystem: `toYolo` (detect, segment, pose),
 * `toClassifyFolders` and `toCoco` each write one output layout of a decoded dataset whose
 * images were found at `images` (absolute paths, dataset order) and assigned `splits`.
 */
export const makeConverterWriter = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path

  const tmpName = (file: string) => Effect.map(temporaryToken, (token) => `${file}.tmp-${token}`)

  /** Writes a text to `file` atomically (see `writeFileAtomically`). */
  const writeAtomic = (file: string, text: string) => datasetIo(file, writeFileAtomically(fs, path, file, text))

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
          (n) => datasetIo(path.join(d, n), fs.remove(path.join(d, n))),
          { discard: true }
        )
      )), { concurrency: 16, discard: true })

  /** Symlink `target` → `source` (replacing an old link), falling back to a copy. */
  const linkImage = (source: string, target: string) =>
    Effect.gen(function*() {
      const existing = yield* Effect.option(fs.readLink(target))
      if (existing._tag === "Some") {
        if (existing.value === source) return
        yield* datasetIo(target, fs.remove(target))
      } else if (yield* datasetIo(target, fs.exists(target))) return
      yield* fs.symlink(source, target).pipe(
        Effect.orElse(() => fs.copyFile(source, target)),
        (e) => datasetIo(target, e)
      )
    })

  /**
   * Moves a freshly written tree `staged` to `target`. A previous tree holding only label
   * files is swapped out whole; a tree with other files (e.g. LabelMe JSON) keeps them: the
   * new files are moved in one by one and stale `.txt` files removed.
   */
  const installTree = (staged: string, target: string, newFiles: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      if (!(yield* datasetIo(target, fs.exists(target)))) return yield* datasetIo(target, fs.rename(staged, target))
      const old = yield* datasetIo(target, fs.readDirectory(target, { recursive: true }))
      const foreign = yield* Effect.filter(old, (e) =>
        e.endsWith(".txt") ? Effect.succeed(false) : datasetIo(e, fs.stat(path.join(target, e))).pipe(Effect.map((s) => s.type !== "Directory")))
      if (foreign.length === 0) {
        const aside = yield* tmpName(target)
        yield* datasetIo(target, fs.rename(target, aside))
        yield* datasetIo(target, fs.rename(staged, target))
        return yield* datasetIo(aside, fs.remove(aside, { recursive: true }))
      }
      const keep = new Set(newFiles)
      yield* Effect.forEach(old.filter((e) => e.endsWith(".txt") && !keep.has(e)), (e) =>
        datasetIo(e, fs.remove(path.join(target, e))), { concurrency: ioConcurrency, discard: true })
      const dirs = new Set(newFiles.map((f) => path.dirname(path.join(target, f))))
      yield* Effect.forEach(dirs, (d) => datasetIo(d, fs.makeDirectory(d, { recursive: true })), { discard: true })
      yield* Effect.forEach(newFiles, (f) =>
        datasetIo(f, fs.rename(path.join(staged, f), path.join(target, f))), { concurrency: ioConcurrency, discard: true })
      yield* datasetIo(staged, fs.remove(staged, { recursive: true }))
    })

  /** The real location of `target`: its nearest existing ancestor resolved through links, plus the rest. */
  const realLocation = (target: string) =>
    Effect.gen(function*() {
      const rest: Array<string> = []
      let existing = target
      while (true) {
        const real = yield* Effect.option(fs.realPath(existing))
        if (real._tag === "Some") return path.join(real.value, ...rest.reverse())
        const parent = path.dirname(existing)
        if (parent === existing) return target
        rest.push(path.basename(existing))
        existing = parent
      }
    })

  /**
   * A check (memoised per path) that writing at a path really writes inside `dir`: its real
   * location, through any links, is `dir`'s own or below it. A view's `images` link to a
   * shared cache entry fails it, so nothing is ever written into the entry.
   */
  const writableInside = (dir: string) =>
    Effect.gen(function*() {
      const realDir = yield* datasetIo(dir, fs.realPath(dir))
      const known = new Map<string, boolean>()
      return (target: string) =>
        Effect.gen(function*() {
          const cached = known.get(target)
          if (cached !== undefined) return cached
          const real = yield* realLocation(target)
          const ok = real === realDir || isInside(path, realDir, real)
          known.set(target, ok)
          return ok
        })
    })

  const writeSplitLists = (dir: string, imagePaths: ReadonlyArray<string>, splits: ReadonlyArray<DatasetSplit>) =>
    Effect.gen(function*() {
      const lists: Record<DatasetSplit, Array<string>> = { train: [], val: [], test: [] }
      let absolute = 0
      splits.forEach((s, i) => {
        const [line, relative] = splitFileLine(dir, imagePaths[i]!)
        if (!relative) absolute++
        lists[s].push(line)
      })
      const outputs: Array<string> = []
      for (const s of ["train", "val", "test"] as const) {
        const file = path.join(dir, `${s}.txt`)
        if (s === "test" && lists.test.length === 0) {
          yield* datasetIo(file, fs.remove(file, { force: true }))
          continue
        }
        yield* writeAtomic(file, lists[s].length > 0 ? lists[s].join("\n") + "\n" : "")
        outputs.push(file)
      }
      const warnings = absolute > 0
        ? [`${absolute} image path(s) hold "./" inside and are listed absolute: the dataset no longer loads once moved`]
        : []
      return { outputs, warnings }
    })

  const toYolo = (
    dir: string,
    dataset: DiceDataset,
    task: ConverterTask,
    splits: Array<DatasetSplit>,
    images: Array<string>,
    prewritten?: PrewrittenLabels | undefined
  ) =>
    Effect.gen(function*() {
      const ctx = yoloContext(dataset, task)
      const skipped: Record<string, number> = { ...dataset.skipped }
      const writable = yield* writableInside(dir)
      // The label proposal (see `labelPrewrite`), when it was made for this dataset, and each
      // image's proposed label when the proposal resolved the image to the same file: its
      // place and its label's place are then the proposal's (the same functions of that path).
      const proposal = prewritten !== undefined && prewritten.dir === dir && prewritten.task === task &&
          prewritten.categories === dataset.categories && prewritten.backgroundIds === dataset.backgroundIds &&
          prewritten.files === dataset.images.length
        ? prewritten
        : undefined
      const proposed = dataset.images.map((image, i): PrewrittenLabel | undefined => {
        const label = proposal?.labels.get(image)
        return label?.found === images[i] ? label : undefined
      })
      // Images outside an `images` folder are linked under dataset_dir/images/ for Ultralytics.
      const links: Array<readonly [string, string]> = []
      const imagePaths = images.map((p, i) => {
        const target = proposed[i]?.placed ?? yoloImagePlace(dir, p)
        if (target !== p) links.push([p, target])
        return target
      })
      // An image whose label folder would lie outside the dataset directory's real location
      // (`images/train/images/x.jpg` in a view whose `images` links to the shared cache entry)
      // is linked at `train/images/x.jpg` instead, so its labels land in this directory.
      // The image places taken: needed only once an image has to move (built then).
      let taken: Set<string> | undefined
      // Checked once per label folder (usually one for the whole dataset), not per image.
      const rootWritable = new Map<string, boolean>()
      for (let i = 0; i < imagePaths.length; i++) {
        const p = imagePaths[i]!
        const labelRoot = proposed[i]?.place.root ?? yoloLabelRoot(p)
        let ok = rootWritable.get(labelRoot)
        if (ok === undefined) rootWritable.set(labelRoot, ok = yield* writable(labelRoot))
        if (ok) continue
        const rel = p.slice(dir.length + 1)
        const target = rel.startsWith("images/") ? path.join(dir, rel.slice("images/".length)) : undefined
        if (target === undefined || !(yield* writable(yoloLabelRoot(target))) || !(yield* writable(path.dirname(target)))) {
          return yield* new DatasetError({
            reason: "PathEscape",
            file: p,
            detail: `its label file ${yoloLabelPath(p)} would be written outside the dataset directory ${dir}`
          })
        }
        taken ??= new Set(imagePaths)
        if (taken.has(target)) {
          return yield* new DatasetError({
            reason: "Duplicate",
            file: p,
            paths: [p, target],
            detail: `its labels would be written for ${target}, another image of the dataset`
          })
        }
        taken.add(target)
        links.push([p, target])
        imagePaths[i] = target
        proposed[i] = undefined
      }
      for (const [, target] of links) {
        if (!(yield* writable(path.dirname(target)))) {
          return yield* new DatasetError({
            reason: "PathEscape",
            file: target,
            detail: `an image link would be created outside the dataset directory ${dir}`
          })
        }
      }
      // Where each label file goes: label roots in order of first use, the file's path under it.
      // A proposal numbers its folders in the order it placed its images (not always file order).
      const placeLabel = yoloLabelPlacer()
      const roots = new Map<string, Array<string>>()
      const rootOf = new Array<Array<string>>(imagePaths.length)
      // Whether the proposal holds exactly these files, each where the loops below would
      // write it (every image has its proposed label, so its staged path is `{the proposal's
      // number for the root}/{name}`), with the text they would write (built from the same
      // image objects, task and categories): then its staging directory is installed as it is.
      let staged = proposal !== undefined
      for (let i = 0; i < imagePaths.length; i++) {
        const known = proposed[i]
        const { name, root } = known?.place ?? placeLabel(imagePaths[i]!)
        let files = roots.get(root)
        if (files === undefined) roots.set(root, files = [])
        files.push(name)
        rootOf[i] = files
        if (known === undefined) staged = false
      }
      let objects = 0, negatives = 0
      // Which classes have an object in the train split (for the warning below): counting
      // stops once every class has one, usually a few hundred images in.
      const inTrain = new Array<boolean>(dataset.categories.length).fill(false)
      let notInTrain = dataset.categories.length
      const countTrain = (classes: ReadonlyArray<number>) => {
        for (const c of classes) {
          if (inTrain[c]) continue
          inTrain[c] = true
          notInTrain--
        }
      }
      const texts = new Map<Array<string>, Array<string>>()
      dataset.images.forEach((image, i) => {
        const known = staged ? proposed[i] : undefined
        let rows: number
        if (known !== undefined) {
          rows = known.classes.length
          if (known.skipped !== undefined) for (const reason in known.skipped) countSkip(skipped, reason, known.skipped[reason]!)
          if (notInTrain > 0 && splits[i] === "train") countTrain(known.classes)
        } else {
          const label = yoloImageLabel(image, ctx, skipped)
          rows = label.classes.length
          if (notInTrain > 0 && splits[i] === "train") countTrain(label.classes)
          let rootTexts = texts.get(rootOf[i]!)
          if (rootTexts === undefined) texts.set(rootOf[i]!, rootTexts = [])
          rootTexts.push(label.text)
        }
        objects += rows
        if (rows === 0) negatives++
      })
      const linkDirs = new Set(links.map(([, t]) => path.dirname(t)))
      yield* Effect.forEach(linkDirs, (d) => datasetIo(d, fs.makeDirectory(d, { recursive: true })), { discard: true })
      yield* Effect.forEach(links, ([s, t]) => linkImage(s, t), { concurrency: ioConcurrency, discard: true })
      if (prewritten !== undefined && !staged) yield* Effect.ignore(fs.remove(prewritten.staging, { recursive: true }))
      const staging = staged ? proposal!.staging : yield* tmpName(path.join(dir, ".labels"))
      yield* Effect.gen(function*() {
        let n = 0
        for (const [root, files] of roots) {
          // An installed proposal keeps its own folder numbers; fresh labels are numbered here.
          const at = `${staging}/${staged ? proposal!.roots.get(root) : n++}`
          if (!staged) {
            // Label names are plain `a/b.txt` paths built above, so string joins are enough here.
            const dirs = new Set<string>([at])
            for (const f of files) {
              const slash = f.lastIndexOf("/")
              if (slash > 0) dirs.add(`${at}/${f.slice(0, slash)}`)
            }
            yield* Effect.forEach(dirs, (d) => datasetIo(d, fs.makeDirectory(d, { recursive: true })), { discard: true })
            const rootTexts = texts.get(files)!
            yield* writeLabelFiles(files.map((f, k) => [`${at}/${f}`, rootTexts[k]!] as const))
          }
          yield* installTree(at, root, files)
        }
      }).pipe(Effect.ensuring(Effect.ignore(fs.remove(staging, { recursive: true }))))
      const outputs = [...roots.keys()]
      const lists = yield* writeSplitLists(dir, imagePaths, splits)
      outputs.push(...lists.outputs)
      const warnings = [...lists.warnings]
      const flip = task === "pose" ? poseFlip(dataset, ctx.keypointCount) : undefined
      if (flip?.warning) warnings.push(flip.warning)
      dataset.categories.forEach((c, i) => {
        if (!inTrain[i]) warnings.push(`class ${JSON.stringify(c.name)} has no object in the train split`)
      })
      const yamlFile = path.join(dir, "data.yaml")
      yield* writeAtomic(yamlFile, yoloDataYaml({
        names: dataset.categories.map((c) => c.name),
        hasTest: splits.includes("test"),
        kptShape: task === "pose" ? [ctx.keypointCount, 3] : undefined,
        flipIdx: flip?.flipIdx
      }))
      outputs.unshift(yamlFile)
      // Each label file's folder's parent (where Ultralytics writes its `.cache`). Label names
      // are plain `a/b.txt` paths under their (normalised) root, so string joins are enough.
      const cacheDirs = new Set<string>([dir])
      for (const [root, files] of roots) {
        const folders = new Set<string>()
        for (const f of files) folders.add(f.slice(0, Math.max(0, f.lastIndexOf("/"))))
        for (const folder of folders) cacheDirs.add(path.dirname(folder === "" ? root : `${root}/${folder}`))
      }
      yield* removeCaches(cacheDirs)
      return { objects, negatives, skipped, outputs, warnings, classes: dataset.categories.map((c) => c.name) }
    })

  const toClassifyFolders = (
    dir: string,
    dataset: DiceDataset,
    splits: Array<DatasetSplit>,
    images: Array<string>,
    allowClassesWithoutTrainImages: boolean
  ) =>
    Effect.gen(function*() {
      const ctx = yoloContext(dataset, "classification")
      const skipped: Record<string, number> = { ...dataset.skipped }
      const { links: plan, names, warnings, withoutTrainImages } = classifyPlan(dataset, splits, ctx, skipped, allowClassesWithoutTrainImages)
      if (withoutTrainImages.length > 0 && !allowClassesWithoutTrainImages) {
        return yield* new DatasetError({
          reason: "ClassWithoutTrainImages",
          file: dir,
          paths: withoutTrainImages.map((n) => JSON.stringify(n)),
          detail: `${withoutTrainImages.length} class(es) have images but none in the train split; Ultralytics' classifier ` +
            `counts its classes from the train folders and fails on their val images (allow them to leave them out)`
        })
      }
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
        yield* Effect.forEach(dirs, (d) => datasetIo(d, fs.makeDirectory(d, { recursive: true })), { discard: true })
        yield* Effect.forEach(plan, (l) => linkImage(images[l.image]!, path.join(staging, l.target)), {
          concurrency: ioConcurrency,
          discard: true
        })
        for (const s of ["train", "val", "test"] as const) {
          const target = path.join(dir, s)
          const staged = path.join(staging, s)
          const aside = yield* tmpName(target)
          const hadOld = yield* datasetIo(target, fs.exists(target))
          if (hadOld) yield* datasetIo(target, fs.rename(target, aside))
          if (yield* datasetIo(staged, fs.exists(staged))) yield* datasetIo(target, fs.rename(staged, target))
          if (hadOld) yield* datasetIo(aside, fs.remove(aside, { recursive: true }))
        }
      }).pipe(Effect.ensuring(Effect.ignore(fs.remove(staging, { recursive: true }))))
      const yamlFile = path.join(dir, "data.yaml")
      yield* writeAtomic(yamlFile, yoloDataYaml({
        names,
        hasTest: plan.some((l) => l.target.startsWith("test/")),
        folders: true
      }))
      const used = new Set(plan.map((l) => l.target.split("/")[0]!))
      yield* removeCaches([dir])
      return {
        objects: plan.length,
        negatives: 0,
        skipped,
        outputs: [yamlFile, ...splitDirs.filter((d) => used.has(path.basename(d)))],
        warnings,
        classes: names
      }
    })

  const toCoco = (
    dir: string,
    dataset: DiceDataset,
    task: "detection" | "segmentation" | "pose",
    splits: Array<DatasetSplit>,
    images: Array<string>,
    root: string | undefined,
    sharing?: CocoPrintSharing
  ) =>
    Effect.gen(function*() {
      const roots = [...(root ? [path.join(dir, root)] : []), path.join(dir, "images"), dir]
      const imageRoot = roots.find((r) => images.every((p) => p.startsWith(r + path.sep)))!
      const skipped: Record<string, number> = { ...dataset.skipped }
      const annDir = path.join(dir, "annotations")
      yield* datasetIo(annDir, fs.makeDirectory(annDir, { recursive: true }))
      const fileOf = (f: CocoFile) => path.join(annDir, `instances_${f}.json`)
      const out = yield* datasetIo(
        annDir,
        writeFilesAtomically(
          fs,
          path,
          cocoFilePieces(
            dataset,
            task,
            splits,
            // Inside the root by the `find` above, and normalised (built from names the name rule accepted).
            images.map((p) => path.sep === "/" ? p.slice(imageRoot.length + 1) : path.relative(imageRoot, p).split(path.sep).join("/")),
            skipped,
            sharing
          ),
          fileOf
        )
      )
      for (const s of ["train", "val", "test"] as const) {
        if (!out.files.includes(s)) yield* datasetIo(fileOf(s), fs.remove(fileOf(s), { force: true }))
      }
      const outputs = out.files.map(fileOf)
      const warnings: Array<string> = []
      if (task === "pose") {
        const missing = out.categories.filter((c) => c.keypoints === undefined).map((c) => JSON.stringify(c.name))
        if (missing.length > 0) warnings.push(`categories without keypoint names: ${missing.join(", ")} (pose consumers take them from their config then)`)
      }
      return {
        objects: out.objects,
        negatives: out.negatives,
        skipped,
        outputs,
        imageRoot,
        warnings,
        classes: dataset.categories.map((c) => c.name)
      }
    })

  return { toYolo, toClassifyFolders, toCoco }
})
