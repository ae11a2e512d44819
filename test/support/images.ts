/**
 * Real, tiny image files for converter and validation tests: a solid-colour PNG of any
 * size, encoded by the example dataset's PNG writer.
 */
import { encodeRgbPng } from "../../examples/sampleDataset.js"

/** A solid-colour RGB PNG of `width` × `height` pixels. */
export const pngBytes = (width: number, height: number): Uint8Array =>
  encodeRgbPng(width, height, () => grey)

const grey = [0x80, 0x80, 0x80] as const
