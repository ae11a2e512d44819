/**
 * The COCO documents of a dataset as objects, read back from the converter's streamed text
 * (`cocoFilePieces`): for property tests over small datasets.
 */
import type { DatasetSplit } from "../../src/Converter.js"
import { type CocoDocument, type CocoFile, cocoFilePieces } from "../../src/internal/cocoExport.js"
import type { DiceDataset } from "../../src/internal/diceModel.js"
import type { SkipCounts } from "../../src/internal/objectRules.js"

const decoder = new TextDecoder()

/** Every COCO file's text, by file (pieces given as bytes are read at once, as the writer does). */
export const cocoTexts = (...args: Parameters<typeof cocoFilePieces>): Map<CocoFile, string> => {
  const texts = new Map<CocoFile, string>()
  for (const [file, piece] of { [Symbol.iterator]: () => cocoFilePieces(...args) }) {
    texts.set(file, (texts.get(file) ?? "") + (typeof piece === "string" ? piece : decoder.decode(piece)))
  }
  return texts
}

/** The `all` document and one per split present, parsed from their texts. */
export const cocoDocuments = (
  dataset: DiceDataset,
  task: "detection" | "segmentation" | "pose",
  splits: ReadonlyArray<DatasetSplit>,
  fileNames: ReadonlyArray<string>,
  skipped: SkipCounts
): { readonly all: CocoDocument; readonly splits: Partial<Record<DatasetSplit, CocoDocument>> } => {
  const texts = cocoTexts(dataset, task, splits, fileNames, skipped)
  const parsed: Partial<Record<DatasetSplit, CocoDocument>> = {}
  for (const [file, text] of texts) if (file !== "all") parsed[file] = JSON.parse(text) as CocoDocument
  return { all: JSON.parse(texts.get("all")!) as CocoDocument, splits: parsed }
}
