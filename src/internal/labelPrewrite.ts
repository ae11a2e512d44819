/**
 * Label files written while the annotation file is still being parsed (conversion worker,
 * nested DICE to YOLO detection or segmentation). Creating 100,000+ small files costs about as
 * much as parsing the file they come from, and both are work for a core of their own: as the
 * decoder hands over each chunk of images, their label texts are built here and sent to a
 * second thread (`labelWriterThread`) that creates them in the staging directory `toYolo`
 * will install, while this thread parses the next chunk.
 *
 * Nothing here decides anything: the document may still turn out invalid, an image missing,
 * the split configuration may leave images out. What was written is only a proposal that
 * `toYolo` adopts when the final plan, computed the usual way after every check, names
 * exactly the same files (same staged paths, texts built from the same images and classes);
 * otherwise the staging directory is removed and the labels written afresh. Any surprise
 * while proposing (an unlisted directory, a duplicate, a name the rules reject, a write
 * failing) just stops the proposing; the regular path then finds and reports it.
 */
import { Effect, type Scope } from "effect"
import * as NodeFs from "node:fs"
import type { Worker } from "node:worker_threads"
import { candidateLevels, imageCandidate, localImageRoot } from "./converterRead.js"
import { startThread } from "./converterThread.js"
import type { DiceCategory, DiceHeader, DiceImage, NestedDecodeObserver } from "./diceModel.js"
import { temporaryToken } from "./files.js"
import { normalizeRelativeName } from "./safeName.js"
import {
  type SkipCounts,
  headerContext,
  yoloImageLabel,
  yoloImagePlace,
  yoloLabelPlacer,
  type YoloContext
} from "./yoloLabels.js"
import type { ConverterTask } from "../Converter.js"

/** What the conversion thread sends the label writer thread. */
export type LabelWriterRequest =
  | { readonly _tag: "Files"; readonly files: ReadonlyArray<string>; readonly texts: ReadonlyArray<string> }
  | { readonly _tag: "End" }

/** The label writer thread's one answer, once told the batches are over. */
export type LabelWriterReply =
  | { readonly _tag: "Written" }
  | { readonly _tag: "Failed"; readonly file: string; readonly message: string }

/** One image's label file as proposed. */
export interface PrewrittenLabel {
  /** Its path under the staging directory: `{label root number}/{path under the root}`. */
  readonly staged: string
  /** The class index of each row of its text. */
  readonly classes: ReadonlyArray<number>
  /** What building the rows skipped, by reason (`undefined`: nothing). */
  readonly skipped: SkipCounts | undefined
}

/** The proposal, once the writer thread has created every file of it. */
export interface PrewrittenLabels {
  readonly staging: string
  readonly task: ConverterTask
  /** The decoded categories the texts were built for (the dataset's own array). */
  readonly categories: ReadonlyArray<DiceCategory>
  readonly backgroundIds: ReadonlyArray<number>
  /** Per decoded image (the dataset's own objects). */
  readonly labels: ReadonlyMap<DiceImage, PrewrittenLabel>
  /** Files created in the staging directory (one per entry of `labels`). */
  readonly files: number
}

/** The proposing side of one conversion. */
export interface LabelPrewrite {
  /** The decoder's observer for the annotation file `file`. */
  readonly observerFor: (file: string) => NestedDecodeObserver
  /**
   * The image directories listed while proposing (by path): the conversion finds its images
   * in them instead of listing them again.
   */
  readonly listings: ReadonlyMap<string, ReadonlySet<string>>
  /**
   * Waits until the writer thread has created every file sent: the proposal, or `undefined`
   * when nothing usable was written (the staging directory is then already gone).
   */
  readonly finish: Effect.Effect<PrewrittenLabels | undefined>
}

/** Files per message to the writer thread at most (each decoded chunk is sent as it is done). */
const batchSize = 1024

/**
 * Messages sent but not yet handled by the writer thread, at most: past this the parsing
 * thread waits, so label texts never pile up in memory when writing is the slower side.
 */
const maxPending = 4

/** How long the parsing thread waits for the writer thread to handle one message before giving up proposing. */
const stuckMs = 30_000

/**
 * The proposer for the dataset directory `dir` (absolute, resolved); `taskOf` settles the
 * task as the conversion will (from the options, the header, the file name). Closing the
 * scope stops the writer thread and removes whatever staging is left.
 */
export const makeLabelPrewrite = (
  dir: string,
  taskOf: (header: DiceHeader, file: string) => ConverterTask | undefined
): Effect.Effect<LabelPrewrite, never, Scope.Scope> =>
  Effect.gen(function*() {
    const staging = `${dir}/.labels.tmp-${yield* temporaryToken}`
    let worker: Worker | undefined
    let stopped = false
    let task: ConverterTask | undefined
    let header: DiceHeader | undefined
    const labels = new Map<DiceImage, PrewrittenLabel>()
    const listings = new Map<string, ReadonlySet<string>>()
    const placeLabel = yoloLabelPlacer()
    let files: Array<string> = []
    let texts: Array<string> = []

    const removeStaging = () => NodeFs.rmSync(staging, { recursive: true, force: true })

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        if (worker !== undefined) await worker.terminate()
        removeStaging()
      })
    )

    const progress = new SharedArrayBuffer(4)
    const handled = new Int32Array(progress)
    let sent = 0

    /** Sends the pending files; `false` when the writer thread stopped handling messages. */
    const flush = (): boolean => {
      if (files.length === 0) return true
      // A small young generation: the thread's garbage (the texts it has written) dies young.
      worker ??= startThread("labelWriterThread", { staging, progress }, { maxYoungGenerationSizeMb: 4 })
      for (;;) {
        const done = Atomics.load(handled, 0)
        if (sent - done < maxPending) break
        if (Atomics.wait(handled, 0, done, stuckMs) === "timed-out") return false
      }
      worker.postMessage({ _tag: "Files", files, texts } satisfies LabelWriterRequest)
      sent++
      files = []
      texts = []
      return true
    }

    const listing = (d: string): ReadonlySet<string> | undefined => {
      let known = listings.get(d)
      if (known === undefined) {
        try {
          known = new Set(NodeFs.readdirSync(d))
        } catch (cause) {
          if ((cause as NodeJS.ErrnoException).code !== "ENOENT") return undefined
          known = new Set()
        }
        listings.set(d, known)
      }
      return known
    }

    let setup: { readonly ctx: YoloContext; readonly prefix: string | undefined; readonly root: string | undefined } | undefined

    const propose = (file: string, decoded: DiceHeader, images: ReadonlyArray<DiceImage>): boolean => {
      if (setup === undefined) {
        header = decoded
        task = taskOf(decoded, file)
        if (task !== "detection" && task !== "segmentation") return false
        const imageRoot = localImageRoot(decoded.storageImageRoot)
        if (imageRoot._tag === "Left") return false
        setup = {
          ctx: headerContext(decoded, task),
          prefix: imageRoot.right?.prefix,
          root: imageRoot.right?.root
        }
      }
      const { ctx, prefix, root } = setup
      const levels = candidateLevels(root)
      for (const image of images) {
        const normalized = normalizeRelativeName(image.fileName)
        if (normalized._tag === "Left") return false
        const name = prefix !== undefined && normalized.right.startsWith(prefix)
          ? normalized.right.slice(prefix.length)
          : normalized.right
        // Two images naming (or resolving to) one file are a Duplicate error of the regular
        // path, which then fails the conversion: such a proposal is never installed.
        let found: string | undefined
        for (let level = 0; level < levels; level++) {
          const c = imageCandidate(dir, root, name, level)
          const known = listing(c.dir)
          if (known === undefined) return false
          if (known.has(c.base)) {
            found = c.path
            break
          }
        }
        if (found === undefined) return false
        const { name: labelName, number } = placeLabel(yoloImagePlace(dir, found))
        const skipped: SkipCounts = {}
        const { classes, text } = yoloImageLabel(image, ctx, skipped)
        let skips = false
        for (const _ in skipped) skips = true
        const label: PrewrittenLabel = {
          staged: `${number}/${labelName}`,
          classes,
          skipped: skips ? skipped : undefined
        }
        labels.set(image, label)
        files.push(`${staging}/${label.staged}`)
        texts.push(text)
        if (files.length >= batchSize && !flush()) return false
      }
      return flush()
    }

    const observerFor = (file: string): NestedDecodeObserver => ({
      decoded: (decoded, images) => {
        if (stopped) return
        try {
          stopped = !propose(file, decoded, images)
        } catch {
          stopped = true
        }
      }
    })

    const finish = Effect.gen(function*() {
      if (!stopped) stopped = !flush()
      const current = worker
      const reply = current === undefined
        ? undefined
        : yield* Effect.async<LabelWriterReply>((resume) => {
          let answered = false
          const answer = (reply: LabelWriterReply) => {
            if (answered) return
            answered = true
            resume(Effect.succeed(reply))
          }
          current.once("message", answer)
          current.once("error", (e) => answer({ _tag: "Failed", file: staging, message: String(e) }))
          current.once("exit", (code) => answer({ _tag: "Failed", file: staging, message: `writer thread exited (code ${code})` }))
          current.postMessage({ _tag: "End" } satisfies LabelWriterRequest)
        })
      if (stopped || reply?._tag !== "Written" || header === undefined || task === undefined) {
        removeStaging()
        return undefined
      }
      return {
        staging,
        task,
        categories: header.categories,
        backgroundIds: header.backgroundIds,
        labels,
        files: labels.size
      } satisfies PrewrittenLabels
    })

    return { observerFor, finish, listings }
  })
