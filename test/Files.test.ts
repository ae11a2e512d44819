import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { writeFilesAtomically } from "../src/internal/files.js"

describe("writeFilesAtomically", () => {
  it.scoped("writes each file from its interleaved pieces (across write batches) and gives the stream's result", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const dir = yield* fs.makeTempDirectoryScoped()
      const big = "x".repeat(300_000)
      function* pieces(): Generator<readonly ["a" | "b", string], number> {
        for (let i = 0; i < 10; i++) {
          yield ["a", `${i}${big}`]
          yield ["b", `${i};`]
        }
        return 42
      }
      const result = yield* writeFilesAtomically(fs, path, pieces(), (k) => path.join(dir, `${k}.txt`))
      expect(result).toBe(42)
      expect(yield* fs.readFileString(path.join(dir, "a.txt"))).toBe(Array.from({ length: 10 }, (_, i) => `${i}${big}`).join(""))
      expect(yield* fs.readFileString(path.join(dir, "b.txt"))).toBe("0;1;2;3;4;5;6;7;8;9;")
      expect((yield* fs.readDirectory(dir)).sort()).toEqual(["a.txt", "b.txt"])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("strings and bytes interleaved, bytes from a buffer the stream reuses, multi-byte text across batches, pieces beyond a batch", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const dir = yield* fs.makeTempDirectoryScoped()
      const encoder = new TextEncoder()
      const reused = new Uint8Array(64)
      const expected = { a: "", b: "" }
      function* pieces(): Generator<readonly ["a" | "b", string | Uint8Array], void> {
        for (let i = 0; i < 300; i++) {
          // Text of 1- to 4-byte characters, some pieces longer than a batch.
          const text = `${i}:é€𝄞`.repeat(i % 50 === 0 ? 90_000 : 1 + (i % 7))
          expected.a += text
          yield ["a", text]
          const bytes = encoder.encode(`<${i}>`)
          reused.fill(0)
          reused.set(bytes)
          expected.a += `<${i}>`
          yield ["a", reused.subarray(0, bytes.length)]
          expected.b += `[${i}]`
          yield ["b", i % 2 === 0 ? `[${i}]` : encoder.encode(`[${i}]`)]
        }
        const huge = "y".repeat(3_000_000)
        expected.b += huge
        yield ["b", encoder.encode(huge)]
      }
      yield* writeFilesAtomically(fs, path, pieces(), (k) => path.join(dir, `${k}.txt`))
      expect(yield* fs.readFileString(path.join(dir, "a.txt"))).toBe(expected.a)
      expect(yield* fs.readFileString(path.join(dir, "b.txt"))).toBe(expected.b)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a stream failing midway (after writes) renames nothing and leaves no temporary file: old files stay whole", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(path.join(dir, "a.txt"), "old a")
      function* pieces(): Generator<readonly ["a" | "b", string], void> {
        yield ["b", "y".repeat(2_000_000)]
        yield ["a", "z".repeat(2_000_000)]
        throw new Error("the source ran out")
      }
      const exit = yield* Effect.exit(writeFilesAtomically(fs, path, pieces(), (k) => path.join(dir, `${k}.txt`)))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(yield* fs.readFileString(path.join(dir, "a.txt"))).toBe("old a")
      expect(yield* fs.readDirectory(dir)).toEqual(["a.txt"])
    }).pipe(Effect.provide(NodeContext.layer)))
})
