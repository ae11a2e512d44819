/**
 * COCO annotations printed on two cores (conversion worker, nested DICE to COCO detection or
 * segmentation). Printing 800,000 annotations costs about as much as parsing the file they
 * come from. So a thread of its own (`cocoTextThread`) decodes the same bytes (shared
 * memory) from the last image backwards and prints their annotations, each but its id, while
 * this thread parses the whole file, settles the plan and writes the image entries. When the
 * annotations are due, this thread prints from the first image on, as usual, until the two
 * meet; the text thread's images are then numbered on from there and written.
 *
 * The images still to print are shared out through one word of shared memory
 * (`sharedWork`), claimed from either end, so every image is printed by exactly one side.
 *
 * Nothing is decided early: the text thread runs the same decoder and the same printing
 * function on the same bytes, header and task, so its text is the text this thread would
 * print. It is used only for the task the conversion settled on, for a plan that keeps every
 * image, and for images whose ids match; anything else (the thread failing, hanging past a
 * timeout, never started) means this thread prints those images itself.
 *
 * The text thread may have been started before this, reading the annotation file ahead
 * (`readAhead`): the reader then takes its bytes and their scan.
 */
import { Effect, type Scope } from "effect"
import type { ConverterTask } from "../Converter.js"
import type { CocoPrintSharing, PrintedBodies } from "./cocoExport.js"
import type { DiceHeader, DiceImage, NestedDecodeObserver, NestedImagesLayout } from "./diceModel.js"
import { adoptHelper, isReadAheadReply, type ReadAhead, type ReadAheadReply } from "./readAhead.js"
import { abandonHelper, awaitReplies, claimFront, claims, controlSlot, type HelperLink, stuckMs, threadState } from "./sharedWork.js"

/** What the conversion thread sends the COCO text thread (once). */
export interface CocoTextRequest {
  readonly layout: NestedImagesLayout
  readonly task: "detection" | "segmentation"
  readonly chunkBytes: number
}

/** What the COCO text thread answers: printed chunks (last images first), then `Done` or `Failed`. */
export type CocoTextReply =
  | ({ readonly _tag: "Printed"; readonly ids: Float64Array } & PrintedBodies)
  | { readonly _tag: "Done" }
  | { readonly _tag: "Failed"; readonly message: string }

/** The proposing side of one conversion. */
export interface CocoPrebuild {
  /** The decoder's observer for the annotation file `file` (it asks for the bytes in shared memory). */
  readonly observerFor: (file: string) => NestedDecodeObserver
  /**
   * The printing of `images` (the decoded images, none left out) under `task` shared with
   * the text thread, or `undefined` when its work is unusable (it is then stopped).
   */
  readonly share: (task: ConverterTask, images: ReadonlyArray<DiceImage>) => CocoPrintSharing | undefined
  /**
   * Waits until the text thread has answered (printed its first chunk, or ended): `false`
   * when it was not started for this file. For callers that would rather not race it (tests).
   */
  readonly printing: Effect.Effect<boolean>
}

/** Bytes of image entries the text thread decodes and prints at a time (a chunk). */
const printChunkBytes = 1 << 20

/** Images this thread claims at a time. */
const claimImages = 64

/**
 * The proposer of one conversion; `taskOf` settles the task as the conversion will (from
 * the options, the header, the file name); `chunkBytes` sets the text thread's chunk size
 * (tests use tiny ones). The text thread is `readAhead`'s, when the conversion started one,
 * else one started at once, so it is ready when the bytes are; closing the scope stops it.
 */
export const makeCocoPrebuild = (
  taskOf: (header: DiceHeader, file: string) => ConverterTask | undefined,
  chunkBytes: number = printChunkBytes,
  readAhead?: ReadAhead
): Effect.Effect<CocoPrebuild, never, Scope.Scope> =>
  Effect.gen(function*() {
    const ahead = adoptHelper("cocoTextThread", readAhead)
    const { link } = ahead
    const { claimed, control } = link
    yield* Effect.addFinalizer(() => Effect.promise(ahead.stop))
    /** The task and image count the thread was asked to print for, and its replies posted by then. */
    let started: { readonly task: ConverterTask; readonly images: number; readonly posted: number } | undefined

    const observerFor = (file: string): NestedDecodeObserver => ({
      sharedBytes: true,
      readAhead: () => ahead.bytesOf(file),
      scan: ahead.scan,
      located: (layout) => {
        const task = taskOf(layout.header, file)
        if ((task !== "detection" && task !== "segmentation") || ahead.lost() || !(layout.bytes.buffer instanceof SharedArrayBuffer)) return
        const images = layout.elements.length / 2
        started = { task, images, posted: Atomics.load(control, controlSlot.posted) }
        Atomics.store(claimed, 0, claims.pack(0, images))
        link.requests.postMessage({ layout, task, chunkBytes } satisfies CocoTextRequest)
      }
    })

    const abandon = () => {
      abandonHelper(link)
      return undefined
    }

    const claim = (from: number): number => claimFront(claimed, from, claimImages)

    const rest = (images: ReadonlyArray<DiceImage>) => (from: number): ReadonlyArray<PrintedBodies> | undefined => {
      const chunks = collect(link)
      if (chunks === undefined) return abandon()
      chunks.reverse()
      let next = from
      for (const chunk of chunks) {
        if (chunk.from !== next) return undefined
        for (const id of chunk.ids) if (images[next++]?.id !== id) return undefined
      }
      return next === images.length ? chunks : undefined
    }

    const share = (task: ConverterTask, images: ReadonlyArray<DiceImage>): CocoPrintSharing | undefined => {
      const before = Atomics.compareExchange(control, controlSlot.state, threadState.idle, threadState.abandoned)
      if (before !== threadState.running || started?.task !== task || started.images !== images.length) return abandon()
      return { claim, rest: rest(images) }
    }

    const printing = Effect.suspend(() =>
      started === undefined
        ? Effect.succeed(false)
        : Effect.promise(async () => {
          await Atomics.waitAsync(control, controlSlot.posted, started!.posted, stuckMs).value
          return true
        })
    )

    return { observerFor, share, printing }
  })

/** The text thread's printed chunks, once it is done, or `undefined` when it failed or hung. */
const collect = (link: HelperLink) => {
  const printed: Array<Extract<CocoTextReply, { _tag: "Printed" }>> = []
  let end: CocoTextReply["_tag"] | undefined
  const take = (reply: CocoTextReply | ReadAheadReply) => {
    // A read-ahead reply nobody took (the reader picked another file) is no printing's.
    if (end !== undefined || isReadAheadReply(reply)) return
    if (reply._tag === "Printed") printed.push(reply)
    else end = reply._tag
  }
  return awaitReplies(link, take, () => end !== undefined) && end === "Done" ? printed : undefined
}
