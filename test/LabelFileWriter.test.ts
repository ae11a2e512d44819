/**
 * The label file writer (`labelFileWriter`, run by the label writer thread): it writes only
 * below its staging directory, counts the batches it handled and answers once.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { makeLabelFileWriter } from "../src/internal/labelFileWriter.js"
import type { LabelWriterRequest } from "../src/internal/labelPrewrite.js"

/** A batch of files with their texts, as the proposer sends it. */
const batch = (files: ReadonlyArray<readonly [string, string]>): LabelWriterRequest => {
  const bytes = new TextEncoder().encode(files.map(([, text]) => text).join(""))
  const ends: Array<number> = []
  let at = 0
  for (const [, text] of files) ends.push(at += text.length)
  return { _tag: "Files", files: files.map(([file]) => file), bytes, ends }
}

layer(NodeContext.layer)("label file writer", (it) => {
  describe("makeLabelFileWriter", () => {
    it.scoped("writes each batch's files with their texts, counts the batches, answers Written", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const staging = `${yield* fs.makeTempDirectoryScoped()}/.labels.tmp-1`
        const progress = new SharedArrayBuffer(4)
        const write = makeLabelFileWriter(staging, progress)
        expect(write(batch([[`${staging}/0/a.txt`, "0 0.5 0.5 0.1 0.1\n"], [`${staging}/0/sub/b.txt`, ""]]))).toBeUndefined()
        expect(write(batch([[`${staging}/1/c.txt`, "1 0.2 0.2 0.1 0.1\n"]]))).toBeUndefined()
        expect(new Int32Array(progress)[0]).toBe(2)
        expect(write({ _tag: "End" })).toEqual({ _tag: "Written" })
        expect(yield* fs.readFileString(`${staging}/0/a.txt`)).toBe("0 0.5 0.5 0.1 0.1\n")
        expect(yield* fs.readFileString(`${staging}/0/sub/b.txt`)).toBe("")
        expect(yield* fs.readFileString(`${staging}/1/c.txt`)).toBe("1 0.2 0.2 0.1 0.1\n")
      }))

    for (const outside of ["/../escaped.txt", "/0/../../escaped.txt", "-sibling/x.txt", "/./0/x.txt", "//x.txt", "/0/..", "/"]) {
      it.scoped(`a file outside the staging directory (staging + "${outside}") is refused and named; nothing after it is written`, () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const root = yield* fs.makeTempDirectoryScoped()
          const staging = `${root}/.labels.tmp-1`
          const write = makeLabelFileWriter(staging, new SharedArrayBuffer(4))
          write(batch([[`${staging}/0/a.txt`, "a"], [`${staging}${outside}`, "x"], [`${staging}/0/b.txt`, "b"]]))
          write(batch([[`${staging}/0/c.txt`, "c"]]))
          expect(write({ _tag: "End" })).toEqual({
            _tag: "Failed",
            file: `${staging}${outside}`,
            message: "outside the staging directory"
          })
          expect((yield* fs.readDirectory(root)).sort()).toEqual([".labels.tmp-1"])
          expect(yield* fs.readDirectory(`${staging}/0`)).toEqual(["a.txt"])
        }))
    }
  })
})
