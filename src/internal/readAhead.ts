/**
 * The first step of a DICE conversion on the conversion worker, taken by the caller's thread
 * as it starts the worker (`converterThread`), so it runs while the worker starts and loads
 * the converter's modules (about 0.1 s of a core). The conversion's helper thread starts at
 * once with the annotation file the conversion will look up: `labelDecodeThread` for YOLO,
 * `cocoTextThread` for COCO. It reads the file into shared memory and scans it meanwhile
 * (`readAheadIfAsked`); the worker is handed the link to it (`handOver`, `takeOver`), and the
 * conversion (`labelPrewrite`, `cocoPrebuild`) adopts the same thread for its work and takes
 * the bytes and the scan instead of reading and scanning (`adoptHelper`).
 *
 * Nothing is decided here: the reader still looks the file up itself and only takes the
 * bytes of the same file, and a thread that could not read it leaves the reading to it.
 * Free of `effect`.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import type { MessagePort, Worker } from "node:worker_threads"
import type { ConvertOptions } from "../Converter.js"
import { diceAnnotationFileNames } from "./annotationNames.js"
import { scanDiceMembers } from "./diceModel.js"
import type { ScannedMember } from "./jsonChunks.js"
import { abandonHelper, awaitReplies, type HelperLink, makeHelperLink, readSharedFile, startThread } from "./sharedWork.js"

/** The helper thread's first reply when it reads ahead: the bytes with their scan, or nothing read. */
export type ReadAheadReply =
  | {
    readonly _tag: "Scanned"
    readonly bytes: Uint8Array
    /** `scanDiceMembers` of the bytes. */
    readonly members: ReadonlyArray<ScannedMember> | undefined
  }
  | { readonly _tag: "Unread" }

/** Whether a helper's reply is its read-ahead reply (which is no part of its other work). */
export const isReadAheadReply = (reply: { readonly _tag: string }): reply is ReadAheadReply =>
  reply._tag === "Scanned" || reply._tag === "Unread"

/** A helper thread reading a conversion's annotation file ahead. */
export interface ReadAhead {
  /** The annotation file it reads (absolute). */
  readonly file: string
  readonly link: HelperLink
  /** The thread, when this thread started it (otherwise the thread that started it owns it and stops it). */
  readonly thread: Worker | undefined
}

/** The helper threads of a conversion on the worker: YOLO's and COCO's. */
export type HelperName = "labelDecodeThread" | "cocoTextThread"

/** Starts the helper thread `name` with a fresh link; with `readAheadFile`, it reads that file ahead first. */
const startHelper = (name: HelperName, readAheadFile?: string): { readonly link: HelperLink; readonly thread: Worker } => {
  const { link, transfer, workerData } = makeHelperLink()
  return { link, thread: startThread(name, { ...workerData, readAheadFile }, undefined, transfer) }
}

/**
 * Starts the helper thread of a DICE conversion reading ahead: the file is the one the
 * reader would pick now (the first of the task's annotation files that exists), or
 * `undefined` (LabelMe, or no such file) when there is nothing to read ahead.
 */
export const startReadAhead = (options: ConvertOptions): ReadAhead | undefined => {
  if (options.from !== "dice") return undefined
  const dir = NodePath.resolve(options.datasetDir)
  const file = diceAnnotationFileNames(options.taskType).map((name) => NodePath.join(dir, name)).find((f) => NodeFs.existsSync(f))
  if (file === undefined) return undefined
  return { file, ...startHelper(options.to === "yolo" ? "labelDecodeThread" : "cocoTextThread", file) }
}

/** A read-ahead as it crosses to the conversion worker (its link's ports in `transfer`), without its thread. */
export const handOver = (ahead: ReadAhead): { readonly ahead: Omit<ReadAhead, "thread">; readonly transfer: ReadonlyArray<MessagePort> } => ({
  ahead: { file: ahead.file, link: ahead.link },
  transfer: [ahead.link.replies, ahead.link.requests]
})

/** A read-ahead handed over by the thread that started it (which stops its thread). */
export const takeOver = (ahead: Omit<ReadAhead, "thread">): ReadAhead => ({ ...ahead, thread: undefined })

/** The file read into shared memory and scanned, or unread (the reader then reads it). */
const readAndScan = (file: string): ReadAheadReply => {
  try {
    const bytes = readSharedFile(file)
    return bytes === undefined ? { _tag: "Unread" } : { _tag: "Scanned", bytes, members: scanDiceMembers(bytes) }
  } catch {
    return { _tag: "Unread" }
  }
}

/**
 * The helper thread's side: when it was started to read a file ahead (its `workerData`
 * says which), reads and scans it and posts the reply, its first.
 */
export const readAheadIfAsked = (workerData: unknown, post: (reply: ReadAheadReply) => void): void => {
  const file = (workerData as { readonly readAheadFile?: string }).readAheadFile
  if (file !== undefined) post(readAndScan(file))
}

/**
 * The conversion thread's helper thread `name` and its link: `readAhead`'s, when one was
 * started, else one started now. With the reader's hooks that take the read-ahead's bytes
 * and their scan, and whether the thread stopped answering them (it is then not asked for
 * anything more).
 */
export const adoptHelper = (name: HelperName, readAhead: ReadAhead | undefined) => {
  const { link, thread } = readAhead ?? startHelper(name)
  let reply: ReadAheadReply | undefined
  let lost = false
  // Its failures come back as replies; a thread that dies is only waited for up to the timeout.
  thread?.on("error", () => undefined)
  return {
    link,
    /** Once the thread has started (at once for a thread another thread started and owns). */
    started: thread === undefined ? Promise.resolve() : new Promise<void>((resolve) => {
      thread.once("message", () => resolve())
      thread.once("exit", () => resolve())
    }),
    /** Stops the thread, or, when another thread owns it, closes this side of the link (the owner stops it). */
    stop: async (): Promise<void> => {
      link.replies.close()
      link.requests.close()
      await thread?.terminate()
    },
    /** The bytes it read of `file`, once it posts them: `undefined` when it read another file, or none. */
    bytesOf: (file: string): Uint8Array | undefined => {
      if (readAhead === undefined || file !== readAhead.file) return undefined
      if (reply === undefined && !lost && !awaitReplies<ReadAheadReply>(link, (r) => reply = r, () => reply !== undefined)) {
        lost = true
        abandonHelper(link)
      }
      return reply?._tag === "Scanned" ? reply.bytes : undefined
    },
    /** The scan of `bytes`: the read-ahead's when they are its bytes. */
    scan: (bytes: Uint8Array): ReadonlyArray<ScannedMember> | undefined =>
      reply?._tag === "Scanned" && bytes === reply.bytes ? reply.members : scanDiceMembers(bytes),
    lost: (): boolean => lost
  }
}
