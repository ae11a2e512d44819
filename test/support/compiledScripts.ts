/**
 * Where the tests find the scripts they start as processes: compiled once per test run by
 * test/support/compileScripts.ts (vitest's global setup), which says why.
 */
import { join } from "node:path"
import { inject } from "vitest"

declare module "vitest" {
  export interface ProvidedContext {
    /** The temporary directory holding the compiled `src/` and `test/support/`. */
    readonly compiledRoot: string
  }
}

/** The compiled copy of `file` (a `.ts` path relative to the repository root), to run with `node`. */
export const compiledScript = (file: string): string => join(inject("compiledRoot"), file.replace(/\.ts$/, ".js"))
