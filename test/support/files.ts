/** File-tree helpers shared by the tests. */
import { FileSystem, Path } from "@effect/platform"
import { Effect } from "effect"

/** Every regular file under `dir` (links not followed), as sorted `/`-separated relative paths. */
export const filesUnder = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const entries = yield* fs.readDirectory(dir, { recursive: true })
    const files: Array<string> = []
    for (const entry of entries) {
      const info = yield* fs.stat(path.join(dir, entry))
      if (info.type === "File") files.push(entry.split(path.sep).join("/"))
    }
    return files.sort()
  })
