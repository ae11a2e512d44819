/**
 * Label files written while the annotation file is still being parsed (conversion worker,
 * nested DICE to YOLO detection or segmentation). Creating 100,000+ small files costs about as
 * much as parsing the file they come from, and both are work for a core of their own: as
 * each chunk of images is decoded, their label texts are built and sent to a thread of its
 * own (`labelWriterThread`) that creates them in the staging directory `toYolo` will install,
 * while this thread parses the next chunk.
 *
 * Decoding is shared too: with the file in shared memory, a third thread
 * (`labelDecodeThread`) takes chunks from the back (through `sharedWork`'s claim word) while
 * this thread takes them from the front. It runs the decoder's own walk and the converter's
 * own label function on the same bytes, and hands back each image's fields but its
 * annotations, with its label text; those images decode their annotations from the bytes
 * only if something reads them (`deferredImages`). A chunk it fails on, or does not answer
 * within a timeout, is decoded here, so every error is this thread's own.
 *
 * The decode thread may have been started before this, reading the annotation file ahead
 * (`readAhead`): the reader then takes its bytes and their scan.
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
import { candidateLevels, imageCandidate, type KnownImages, localImageRoot, type ResolvedImage } from "./converterRead.js"
import {
  deferredImages,
  type DiceCategory,
  type DiceHeader,
  type DiceImage,
  type DiceImageHead,
  type NestedDecodeObserver,
  type NestedImagesLayout,
  type NestedImagesWalk
} from "./diceModel.js"
import { temporaryToken } from "./files.js"
import { adoptHelper, isReadAheadReply, type ReadAhead, type ReadAheadReply } from "./readAhead.js"
import { normalizeRelativeName } from "./safeName.js"
import { abandonHelper, awaitReplies, claimFront, claims, startThread, stuckMs, takeReplies } from "./sharedWork.js"
import {
  type ChunkLabels,
  chunkLabels,
  type ChunkTexts,
  type SkipCounts,
  headerContext,
  textBytesOf,
  yoloImagePlace,
  yoloLabelPlacer,
  type YoloContext,
  type YoloLabelPlace
} from "./yoloLabels.js"
import type { ConverterTask } from "../Converter.js"

/** What the conversion thread sends the label writer thread: files with their texts (`ChunkTexts`), or the end. */
export type LabelWriterRequest =
  | ({ readonly _tag: "Files"; readonly files: ReadonlyArray<string> } & ChunkTexts)
  | { readonly _tag: "End" }

/** What the conversion thread sends the label decode thread (once). */
export interface LabelDecodeRequest {
  readonly layout: NestedImagesLayout
  readonly task: "detection" | "segmentation"
  /** The entry each chunk starts at, then the entry count (the decoder's chunks). */
  readonly starts: ReadonlyArray<number>
}

/** The label decode thread's reply for each chunk it claimed: its images' heads and labels, or its failure. */
export type LabelDecodeReply =
  | ({ readonly _tag: "Decoded"; readonly chunk: number; readonly heads: Array<DiceImageHead> } & ChunkLabels)
  | { readonly _tag: "Failed"; readonly chunk: number; readonly message: string }

/** The label writer thread's one answer, once told the batches are over. */
export type LabelWriterReply =
  | { readonly _tag: "Written" }
  | { readonly _tag: "Failed"; readonly file: string; readonly message: string }

/**
 * One image's label file as proposed, with the image as the proposal resolved it (by the
 * reader's rules): the file found, where Ultralytics finds it (`yoloImagePlace`) and where
 * its label goes (`yoloLabelPlacer`, numbered by the proposal: the file is staged at
 * `{place.number}/{place.name}`).
 */
export interface PrewrittenLabel extends ResolvedImage {
  readonly placed: string
  readonly place: YoloLabelPlace
  /** The class index of each row of its text. */
  readonly classes: ReadonlyArray<number>
  /** What building the rows skipped, by reason (`undefined`: nothing). */
  readonly skipped: SkipCounts | undefined
}

/** The proposal, once the writer thread has created every file of it. */
export interface PrewrittenLabels {
  /** The dataset directory (absolute, resolved) the images were resolved in. */
  readonly dir: string
  readonly staging: string
  readonly task: ConverterTask
  /** The decoded categories the texts were built for (the dataset's own array). */
  readonly categories: ReadonlyArray<DiceCategory>
  readonly backgroundIds: ReadonlyArray<number>
  /** Per decoded image (the dataset's own objects). */
  readonly labels: ReadonlyMap<DiceImage, PrewrittenLabel>
  /** The number each label folder is staged under (`place.number` of its labels), by folder. */
  readonly roots: ReadonlyMap<string, number>
  /** Files created in the staging directory (one per entry of `labels`). */
  readonly files: number
  /** Of those, the files whose images the decode thread decoded and labelled. */
  readonly fromThread: number
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
  /** The images resolved while proposing (against `listings`): the conversion does not resolve them again. */
  readonly known: KnownImages
  /**
   * Waits until the writer thread has created every file sent: the proposal, or `undefined`
   * when nothing usable was written (the staging directory is then already gone).
   */
  readonly finish: Effect.Effect<PrewrittenLabels | undefined>
  /** Waits until the decode thread has started. For callers that would rather not race it (tests). */
  readonly ready: Effect.Effect<void>
}

/**
 * Messages (a chunk of images each) sent but not yet handled by the writer thread, at most:
 * past this the parsing thread waits (up to `stuckMs` for each), so label texts never pile
 * up in memory when writing is the slower side.
 */
const maxPending = 32

/**
 * The proposer for the dataset directory `dir` (absolute, resolved); `taskOf` settles the
 * task as the conversion will (from the options, the header, the file name). Its decode
 * thread is `readAhead`'s, when the conversion started one, else one started here. Closing
 * the scope stops the writer and decode threads and removes whatever staging is left.
 */
export const makeLabelPrewrite = (
  dir: string,
  taskOf: (header: DiceHeader, file: string) => ConverterTask | undefined,
  readAhead?: ReadAhead
): Effect.Effect<LabelPrewrite, never, Scope.Scope> =>
  Effect.gen(function*() {
    const staging = `${dir}/.labels.tmp-${yield* temporaryToken}`
    let stopped = false
    let task: "detection" | "segmentation" | undefined
    let header: DiceHeader | undefined
    const labels = new Map<DiceImage, PrewrittenLabel>()
    const roots = new Map<string, number>()
    const listings = new Map<string, ReadonlySet<string>>()
    const placeLabel = yoloLabelPlacer()
    let fromThread = 0

    const progress = new SharedArrayBuffer(4)
    const handled = new Int32Array(progress)
    let sent = 0
    // Both threads start at once, so they are ready when the bytes are. The writer's young
    // generation is small: its garbage (the texts it has written) dies young.
    const writer = startThread("labelWriterThread", { staging, progress }, { maxYoungGenerationSizeMb: 4 })
    // A thread that fails or ends early is noticed by `finish`.
    let writerGone: string | undefined
    writer.on("error", (e) => writerGone ??= String(e))
    writer.on("exit", (code) => writerGone ??= `writer thread exited (code ${code})`)
    const ahead = adoptHelper("labelDecodeThread", readAhead)
    const { link } = ahead

    const removeStaging = () => NodeFs.rmSync(staging, { recursive: true, force: true })

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        await Promise.all([ahead.stop(), writer.terminate()])
        removeStaging()
      })
    )

    /**
     * Sends files with their texts; `false` when the writer thread stopped handling messages.
     * The bytes are copied (a few MB per 20,000 images), not transferred: the first buffer a
     * thread detaches deoptimizes every function of it that reads typed arrays (see
     * `sharedWork.helperSide`).
     */
    const send = (files: ReadonlyArray<string>, texts: ChunkTexts): boolean => {
      for (;;) {
        const done = Atomics.load(handled, 0)
        if (sent - done < maxPending) break
        if (Atomics.wait(handled, 0, done, stuckMs) === "timed-out") return false
      }
      writer.postMessage({ _tag: "Files", files, bytes: texts.bytes, ends: texts.ends } satisfies LabelWriterRequest)
      sent++
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

    let setup: { readonly ctx: YoloContext; readonly imageRoot: KnownImages["imageRoot"] } | undefined

    /** Settles the task and the image root for the document's header: whether labels can be proposed. */
    const begin = (file: string, decoded: DiceHeader): boolean => {
      header = decoded
      const settled = taskOf(decoded, file)
      if (settled !== "detection" && settled !== "segmentation") return false
      task = settled
      const imageRoot = localImageRoot(decoded.storageImageRoot)
      if (imageRoot._tag === "Left") return false
      setup = { ctx: headerContext(decoded, task), imageRoot: imageRoot.right }
      return true
    }

    /**
     * Proposes the label file of each of `images`, whose labels are `labels`, unless proposing
     * has stopped; a surprise (or a throw) stops it.
     */
    const propose = (images: ReadonlyArray<DiceImage>, labels: ChunkLabels): void => {
      if (stopped) return
      try {
        stopped = !proposeAll(images, labels)
      } catch {
        stopped = true
      }
    }

    /** The proposing itself: `false` on a surprise. */
    const proposeAll = (images: ReadonlyArray<DiceImage>, chunk: ChunkLabels): boolean => {
      const files: Array<string> = []
      const prefix = setup!.imageRoot?.prefix, root = setup!.imageRoot?.root
      const levels = candidateLevels(root)
      for (let k = 0; k < images.length; k++) {
        const image = images[k]!
        const normalized = normalizeRelativeName(image.fileName)
        if (normalized._tag === "Left") return false
        const name = prefix !== undefined && normalized.right.startsWith(prefix)
          ? normalized.right.slice(prefix.length)
          : normalized.right
        // Two images naming (or resolving to) one file are a Duplicate error of the regular
        // path, which then fails the conversion: such a proposal is never installed.
        let found: string | undefined
        let level = 0
        for (; level < levels; level++) {
          const c = imageCandidate(dir, root, name, level)
          const known = listing(c.dir)
          if (known === undefined) return false
          if (known.has(c.base)) {
            found = c.path
            break
          }
        }
        if (found === undefined) return false
        const placed = yoloImagePlace(dir, found)
        const place = placeLabel(placed)
        roots.set(place.root, place.number)
        labels.set(image, { name, found, level, placed, place, classes: chunk.classes[k]!, skipped: chunk.skipped[k] })
        files.push(`${staging}/${place.number}/${place.name}`)
      }
      return files.length === 0 || send(files, chunk)
    }

    /**
     * Decodes the entries chunk by chunk, sharing the chunks with the decode thread when
     * labels are proposed and the bytes are shared.
     */
    const decodeImages = (file: string) => (layout: NestedImagesLayout, walk: NestedImagesWalk, starts: ReadonlyArray<number>) => {
      stopped = !begin(file, layout.header)
      const chunks = starts.length - 1
      const parts = new Array<Array<DiceImage> | undefined>(chunks)
      const shared = !stopped && !ahead.lost() && chunks > 1 && layout.bytes.buffer instanceof SharedArrayBuffer
      if (shared) {
        Atomics.store(link.claimed, 0, claims.pack(0, chunks))
        link.requests.postMessage({ layout, task: task!, starts } satisfies LabelDecodeRequest)
      } else abandonHelper(link)
      const deferred = deferredImages(layout)
      /** Proposes the labels of images decoded here; the images. */
      const proposeDecoded = (images: Array<DiceImage>, first: number): Array<DiceImage> => {
        const ctx = setup?.ctx
        if (ctx === undefined || stopped) return images
        const labels = chunkLabels(images, ctx, textBytesOf(layout, first, images.length))
        // Kept as the other thread's are (their annotations decoded again only if read), so
        // the dataset holds no annotation objects the conversion will not read.
        const light = images.map((image, k) => deferred(image, first + k))
        propose(light, labels)
        return light
      }
      let answered = 0
      const take = (reply: LabelDecodeReply | ReadAheadReply) => {
        // A read-ahead reply nobody took (the reader picked another file) is no chunk's.
        if (isReadAheadReply(reply)) return
        answered++
        if (reply._tag === "Failed") return
        const first = starts[reply.chunk]!
        const images = reply.heads.map((head, k) => deferred(head, first + k))
        parts[reply.chunk] = images
        fromThread += images.length
        propose(images, reply)
      }
      let front = 0
      for (; shared ? claimFront(link.claimed, front, 1) > front : front < chunks; front++) {
        const images = walk(starts[front]!, starts[front + 1]!)
        if (images === undefined) {
          abandonHelper(link)
          return undefined
        }
        parts[front] = proposeDecoded(images, starts[front]!)
        if (shared) takeReplies(link, take)
      }
      // The thread's claims are final once the two sides met: wait for its answer to each.
      if (shared && !awaitReplies(link, take, () => answered >= chunks - front)) abandonHelper(link)
      // Chunks the thread failed on (or never answered for) are decoded here, with this thread's errors.
      const out: Array<DiceImage> = []
      for (let c = 0; c < chunks; c++) {
        let images = parts[c]
        if (images === undefined) {
          const decoded = walk(starts[c]!, starts[c + 1]!)
          if (decoded === undefined) return undefined
          images = proposeDecoded(decoded, starts[c]!)
        }
        for (const image of images) out.push(image)
      }
      return out
    }

    const observerFor = (file: string): NestedDecodeObserver => ({
      sharedBytes: true,
      readAhead: () => ahead.bytesOf(file),
      scan: ahead.scan,
      decodeImages: decodeImages(file)
    })

    const finish = Effect.gen(function*() {
      const reply = sent === 0
        ? undefined
        : yield* Effect.async<LabelWriterReply>((resume) => {
          let answered = false
          const answer = (reply: LabelWriterReply) => {
            if (answered) return
            answered = true
            resume(Effect.succeed(reply))
          }
          const gone = () => answer({ _tag: "Failed", file: staging, message: writerGone ?? "writer thread ended" })
          if (writerGone !== undefined) return gone()
          writer.once("message", answer)
          writer.once("error", gone)
          writer.once("exit", gone)
          writer.postMessage({ _tag: "End" } satisfies LabelWriterRequest)
        })
      if (stopped || reply?._tag !== "Written" || header === undefined || task === undefined) {
        removeStaging()
        return undefined
      }
      return {
        dir,
        staging,
        task,
        categories: header.categories,
        backgroundIds: header.backgroundIds,
        labels,
        roots,
        files: labels.size,
        fromThread
      } satisfies PrewrittenLabels
    })

    const known: KnownImages = {
      base: dir,
      get imageRoot() {
        return setup?.imageRoot
      },
      of: (image) => labels.get(image)
    }
    return { observerFor, finish, listings, known, ready: Effect.promise(() => ahead.started) }
  })
