/**
 * The label file writer (`labelFileWriter`): on its own thread or on the caller's side of the
 * conversion worker's port, it writes only below its staging directory, counts the batches it
 * handled, answers once, and once closed writes nothing more and leaves no staging behind.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { MessageChannel, type MessagePort } from "node:worker_threads"
import { makeLabelFileWriter, serveLabelWrites } from "../src/internal/labelFileWriter.js"
import type { LabelWriterReply, LabelWriterRequest } from "../src/internal/labelPrewrite.js"

/** A batch of files with their texts, as the proposer sends it. */
const batch = (files: ReadonlyArray<readonly [string, string]>): LabelWriterRequest => {
  const bytes = new TextEncoder().encode(files.map(([, text]) => text).join(""))
  const ends: Array<number> = []
  let at = 0
  for (const [, text] of files) ends.push(at += text.length)
  return { _tag: "Files", files: files.map(([file]) => file), bytes, ends }
}

/** The next message on `port`. */
const nextMessage = (port: MessagePort) => Effect.promise(() => new Promise<unknown>((resolve) => port.once("message", resolve)))

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

  describe("serveLabelWrites (the caller's side of the conversion worker's port)", () => {
    it.scoped("writes where the first message says, answers End on the port", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const staging = `${yield* fs.makeTempDirectoryScoped()}/.labels.tmp-1`
        const { port1, port2 } = new MessageChannel()
        const served = serveLabelWrites(port1)
        yield* Effect.addFinalizer(() => Effect.sync(() => port2.close()))
        const progress = new SharedArrayBuffer(4)
        port2.postMessage({ _tag: "Open", staging, progress })
        port2.postMessage(batch([[`${staging}/0/a.txt`, "a"]]))
        port2.postMessage({ _tag: "End" })
        expect(yield* nextMessage(port2)).toEqual({ _tag: "Written" } satisfies LabelWriterReply)
        expect(new Int32Array(progress)[0]).toBe(1)
        expect(yield* fs.readFileString(`${staging}/0/a.txt`)).toBe("a")
        served.close()
      }))

    it.scoped("batches that arrive together are written one per turn of the event loop (the caller's loop keeps turning)", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const staging = `${yield* fs.makeTempDirectoryScoped()}/.labels.tmp-1`
        const { port1, port2 } = new MessageChannel()
        const served = serveLabelWrites(port1)
        const progress = new SharedArrayBuffer(4)
        port2.postMessage({ _tag: "Open", staging, progress })
        for (let b = 0; b < 4; b++) port2.postMessage(batch([[`${staging}/0/${b}.txt`, `${b}`]]))
        // A callback on every turn of the loop sees the count of batches written grow by one at most.
        const steps = yield* Effect.promise(() =>
          new Promise<Array<number>>((resolve) => {
            const seen: Array<number> = []
            let last = 0
            const turn = () => {
              const now = Atomics.load(new Int32Array(progress), 0)
              seen.push(now - last)
              last = now
              if (now >= 4) resolve(seen)
              else setImmediate(turn)
            }
            setImmediate(turn)
          })
        )
        expect(Math.max(...steps)).toBe(1)
        served.close()
        port2.close()
      }))

    it.scoped("once closed (the worker has ended), later batches are not written and the staging directory is gone", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const root = yield* fs.makeTempDirectoryScoped()
        const staging = `${root}/.labels.tmp-1`
        const { port1, port2 } = new MessageChannel()
        const served = serveLabelWrites(port1)
        port2.postMessage({ _tag: "Open", staging, progress: new SharedArrayBuffer(4) })
        port2.postMessage(batch([[`${staging}/0/a.txt`, "a"]]))
        port2.postMessage({ _tag: "End" })
        yield* nextMessage(port2)
        expect(yield* fs.exists(`${staging}/0/a.txt`)).toBe(true)
        served.close()
        port2.postMessage(batch([[`${staging}/0/late.txt`, "late"]]))
        // Real time (the test clock does not move on its own): the late message has arrived by then.
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
        expect(yield* fs.readDirectory(root)).toEqual([])
        port2.close()
      }))
  })
})
