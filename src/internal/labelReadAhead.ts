/**
 * The first step of a DICE to YOLO conversion on the conversion worker, taken before the
 * converter's modules load (`convertWorker` loads them afterwards: about 100 ms of a core).
 * The label decode thread (`labelDecodeThread`) starts at once with the annotation file the
 * conversion will look up, reads it into shared memory and scans it meanwhile; `labelPrewrite`
 * then takes the bytes and the scan instead of reading and scanning, and the same thread for
 * decoding. Nothing is decided here: the reader still looks the file up itself and only takes
 * the bytes of the same file, and a thread that could not read it leaves the reading to it.
 * Free of `effect`.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import type { Worker } from "node:worker_threads"
import type { ConvertOptions } from "../Converter.js"
import { diceAnnotationFileNames } from "./annotationNames.js"
import type { ScannedMember } from "./jsonChunks.js"
import { type HelperLink, makeHelperLink, startThread } from "./sharedWork.js"

/** The decode thread's first reply when it reads ahead: the bytes with their scan, or nothing read. */
export type ReadAheadReply =
  | {
    readonly _tag: "Scanned"
    readonly bytes: Uint8Array
    /** `scanDiceMembers` of the bytes. */
    readonly members: ReadonlyArray<ScannedMember> | undefined
  }
  | { readonly _tag: "Unread" }

/** A decode thread reading a conversion's annotation file ahead. */
export interface LabelReadAhead {
  /** The annotation file it reads (absolute). */
  readonly file: string
  readonly decoder: Worker
  readonly link: HelperLink
}

/**
 * Starts the decode thread reading ahead for a DICE to YOLO conversion: the file is the one
 * the reader would pick now (the first of the task's annotation files that exists), or
 * `undefined` (another conversion, or no such file) when there is nothing to read ahead.
 */
export const startLabelReadAhead = (options: ConvertOptions): LabelReadAhead | undefined => {
  if (options.from !== "dice" || options.to !== "yolo") return undefined
  const dir = NodePath.resolve(options.datasetDir)
  const file = diceAnnotationFileNames(options.taskType).map((name) => NodePath.join(dir, name)).find((f) => NodeFs.existsSync(f))
  if (file === undefined) return undefined
  const link = makeHelperLink()
  const decoder = startThread("labelDecodeThread", { ...link.workerData, readAheadFile: file }, undefined, link.transfer)
  return { file, decoder, link }
}
