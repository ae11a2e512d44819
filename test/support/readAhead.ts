/** Watching whether the reader took a read-ahead's bytes (see `internal/readAhead`). */
import type { NestedDecodeObserver } from "../../src/internal/diceModel.js"

/**
 * `observerFor` with each observer's `readAhead` recorded: `taken()` tells whether the last
 * call gave the reader bytes.
 */
export const recordReadAhead = (observerFor: (file: string) => NestedDecodeObserver) => {
  let taken = false
  return {
    observerFor: (file: string): NestedDecodeObserver => {
      const observer = observerFor(file)
      return {
        ...observer,
        readAhead: () => {
          const bytes = observer.readAhead?.()
          taken = bytes !== undefined
          return bytes
        }
      }
    },
    taken: (): boolean => taken
  }
}
