/**
 * `JSON.stringify` of a large document in pieces: the same bytes, without ever holding the
 * whole text (a COCO file of 800,000 annotations is about 150 MB of text). Pure.
 */

/** Array elements serialized per piece by default. */
export const defaultElementsPerPiece = 5_000

/**
 * The text of `JSON.stringify(doc)` as a sequence of pieces, for an object whose members are
 * arrays or small values (a COCO document): long arrays are split into runs of elements,
 * everything else is stringified whole (`elementsPerPiece` elements per run). Concatenated, the pieces equal `JSON.stringify(doc)`.
 */
export function* jsonPieces(doc: object, elementsPerPiece: number = defaultElementsPerPiece): Generator<string> {
  let first = true
  yield "{"
  for (const key of Object.keys(doc)) {
    const value: unknown = (doc as Record<string, unknown>)[key]
    if (!Array.isArray(value) || value.length <= elementsPerPiece) {
      const text = JSON.stringify(value)
      // JSON.stringify leaves out members whose value has no JSON form (undefined, functions).
      if (text === undefined) continue
      yield `${first ? "" : ","}${JSON.stringify(key)}:${text}`
    } else {
      yield `${first ? "" : ","}${JSON.stringify(key)}:[`
      for (let at = 0; at < value.length; at += elementsPerPiece) {
        const run = JSON.stringify(value.slice(at, at + elementsPerPiece))
        yield `${at === 0 ? "" : ","}${run.slice(1, -1)}`
      }
      yield "]"
    }
    first = false
  }
  yield "}"
}
