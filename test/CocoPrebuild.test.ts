/**
 * COCO annotations printed on two threads (`cocoPrebuild`, used by the conversion worker):
 * whatever share the text thread prints (from the back, each annotation but its id), in
 * whatever chunks, and whether or not it can be used, the COCO files are the caller thread's
 * byte for byte, with the same skip counts in the same order.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Either, FastCheck as fc } from "effect"
import { Converter } from "../src/Converter.js"
import { type CocoPrintSharing, numberBodies, printImageBodies, type PrintedBodies } from "../src/internal/cocoExport.js"
import { makeCocoPrebuild } from "../src/internal/cocoPrebuild.js"
import { makeConverterReader } from "../src/internal/converterRead.js"
import { makeConverterWriter } from "../src/internal/converterWrite.js"
import { startReadAhead } from "../src/internal/readAhead.js"
import type { DiceDataset } from "../src/internal/diceModel.js"
import { decodeDice } from "../src/internal/diceSchema.js"
import { assignSplits } from "../src/internal/splits.js"
import { yoloContext } from "../src/internal/yoloLabels.js"
import { cocoTexts } from "./support/coco.js"
import { recordReadAhead } from "./support/readAhead.js"
import { syntheticDice } from "./support/syntheticDice.js"

// ---------------------------------------------------------------------------------------------
// Pure: cocoFilePieces with a share printed elsewhere.

const around = (size: number) => fc.double({ min: -size / 2, max: 1.5 * size, noNaN: true })

/** RLE counts with characters of one to four UTF-8 bytes: their text is not ASCII. */
const rleCounts = fc.constantFrom("abc", "é€", "𝄞x", "plain")

/** Nested documents with wild geometry, crowd regions, RLE masks, duplicates and unknown classes. */
const wildDoc = fc.array(fc.tuple(fc.integer({ min: 1, max: 900 }), fc.integer({ min: 1, max: 900 })), { minLength: 1, maxLength: 14 })
  .chain((sizes) =>
    fc.tuple(...sizes.map(([w, h]) =>
      fc.array(
        fc.record({
          class_id: fc.integer({ min: 0, max: 4 }),
          bbox: fc.tuple(around(w), around(h), around(w), around(h)),
          segmentation: fc.oneof(
            fc.array(fc.array(fc.tuple(around(w), around(h)), { minLength: 2, maxLength: 5 }).map((ps) => ps.flat()), { maxLength: 2 }),
            rleCounts.map((counts) => ({ counts, size: [h, w] }))
          ),
          iscrowd: fc.constantFrom(0, 0, 1)
        }),
        { maxLength: 5 }
      ).map((annotations) => ({ w, h, annotations: annotations.length > 1 ? [...annotations, annotations[0]!] : annotations }))
    ))
  ).map((images) => ({
    classes: [{ id: 0, name: "__background__" }, { id: 1, name: "a" }, { id: 2, name: "b" }, { id: 3, name: "c" }],
    images: images.map((img, i) => ({ id: 100 + i, file_name: `${i}.png`, width: img.w, height: img.h, annotations: img.annotations }))
  }))

const decoded = (doc: unknown): DiceDataset => Either.getOrThrow(decodeDice("t.json", doc))

/**
 * A share as the text thread gives it: this thread claims `step` images at a time up to
 * `meet`; the rest is printed from the back in chunks of the sizes given (cycled), each with
 * its own skip counts; `usable: false` gives nothing (this thread then prints the rest).
 */
const shareAt = (
  dataset: DiceDataset,
  task: "detection" | "segmentation",
  meet: number,
  step: number,
  chunkSizes: ReadonlyArray<number>,
  usable: boolean
): CocoPrintSharing => ({
  claim: (from) => Math.min(meet, from + step),
  rest: (from) => {
    if (!usable) return undefined
    const ctx = yoloContext(dataset, task)
    const chunks: Array<PrintedBodies> = []
    for (let end = dataset.images.length, c = 0; end > from; c++) {
      const start = Math.max(from, end - chunkSizes[c % chunkSizes.length]!)
      const skipped = {}
      chunks.unshift({ from: start, ...printImageBodies(dataset.images.slice(start, end), ctx, task === "segmentation", skipped), skipped })
      end = start
    }
    return chunks
  }
})

describe("COCO printed in two shares (pure)", () => {
  it.prop(
    "the same files and the same skips (in the same order) wherever the shares meet, in whatever chunks",
    [wildDoc, fc.constantFrom("detection" as const, "segmentation" as const), fc.double({ min: 0, max: 1, noNaN: true }),
      fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }), fc.boolean()],
    ([doc, task, at, step, chunkSizes, usable]) => {
      const dataset = decoded(doc)
      const names = dataset.images.map((i) => i.fileName)
      const splits = dataset.images.map((_, i) => (i % 3 === 0 ? "val" as const : "train" as const))
      const alone: Record<string, number> = {}
      const shared: Record<string, number> = {}
      const expected = cocoTexts(dataset, task, splits, names, alone)
      const meet = Math.floor(at * dataset.images.length)
      const actual = cocoTexts(dataset, task, splits, names, shared, shareAt(dataset, task, meet, step, chunkSizes, usable))
      expect([...actual]).toEqual([...expected])
      expect(Object.entries(shared)).toEqual(Object.entries(alone))
    }
  )

  it("numbering bodies reuses the caller's buffer when it is big enough, and never writes past what it returns", () => {
    const dataset = decoded({
      classes: [{ id: 1, name: "a" }],
      images: [
        { id: 1, file_name: "a.png", width: 10, height: 10, annotations: [{ class_id: 1, bbox: [1, 1, 2, 2] }, { class_id: 1, bbox: [3, 3, 2, 2] }] },
        { id: 2, file_name: "b.png", width: 10, height: 10, annotations: [] },
        { id: 3, file_name: "c.png", width: 10, height: 10, annotations: [{ class_id: 1, bbox: [0, 0, 4, 4] }] }
      ]
    })
    const printed = { from: 0, ...printImageBodies(dataset.images, yoloContext(dataset, "detection"), false, {}), skipped: {} }
    const scratch = new Uint8Array(4096).fill(0x7e)
    const numbered = numberBodies(printed, 41, scratch)
    expect(numbered.bytes.buffer).toBe(scratch.buffer)
    const text = new TextDecoder().decode(numbered.bytes)
    const parts = [...numbered.ends].map((end, k) => text.slice(k === 0 ? 0 : numbered.ends[k - 1], end))
    expect(parts.map((p) => (p === "" ? [] : JSON.parse(`[${p}]`).map((a: { id: number }) => a.id)))).toEqual([[41, 42], [], [43]])
    expect(scratch[numbered.bytes.length]).toBe(0x7e)
    expect(numberBodies(printed, 1, new Uint8Array(8)).bytes.buffer).not.toBe(scratch.buffer)
  })
})

// ---------------------------------------------------------------------------------------------
// The text thread itself.

/** Every COCO file under `dir/annotations`, by name. */
const cocoFiles = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const out: Record<string, string> = {}
    for (const name of (yield* fs.readDirectory(`${dir}/annotations`)).sort()) out[name] = yield* fs.readFileString(`${dir}/annotations/${name}`)
    return out
  })

/** A synthetic nested dataset in a fresh directory, and its COCO files converted in the caller's thread. */
const setup = (task: "detection" | "segmentation") =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const root = yield* fs.makeTempDirectoryScoped()
    yield* Effect.promise(() => syntheticDice(`${root}/ds`, { images: 300, shape: "nested", task, seed: 5 }))
    yield* fs.copy(`${root}/ds`, `${root}/reference`)
    yield* Effect.flatMap(Converter, (c) => c.convert({ datasetDir: `${root}/reference`, from: "dice", to: "coco" })).pipe(
      Effect.provide(Converter.layerInProcess)
    )
    return { dir: `${root}/ds`, reference: yield* cocoFiles(`${root}/reference`) }
  })

layer(NodeContext.layer)("COCO annotations printed by the text thread", (it) => {
  for (const [task, ahead] of [["detection", false], ["segmentation", false], ["detection", true], ["segmentation", true]] as const) {
    const title = ahead ? " (the thread read and scanned the file ahead)" : ""
    it.scoped(`nested ${task}: both threads print a share; the files are the caller thread's byte for byte${title}`, () =>
      Effect.gen(function*() {
        const { dir, reference } = yield* setup(task)
        const reader = yield* makeConverterReader
        const writer = yield* makeConverterWriter
        const readAhead = ahead ? startReadAhead({ datasetDir: dir, from: "dice", to: "coco" }) : undefined
        expect(readAhead !== undefined).toBe(ahead)
        // Small chunks: the text thread answers chunk by chunk, so both sides get images.
        const prebuild = yield* makeCocoPrebuild(() => task, 4096, readAhead)
        const watched = recordReadAhead(prebuild.observerFor)
        const { dataset, file } = yield* reader.loadDice(dir, undefined, watched.observerFor)
        expect(watched.taken()).toBe(ahead)
        expect(yield* prebuild.printing).toBe(true)
        const { paths, root } = yield* reader.resolveImages(dir, file, dataset)
        const sharing = prebuild.share(task, dataset.images)
        expect(sharing).toBeDefined()
        let fromThread = 0
        const recorded: CocoPrintSharing = {
          claim: sharing!.claim,
          rest: (from) => {
            const chunks = sharing!.rest(from)
            fromThread = dataset.images.length - from
            expect(chunks?.reduce((n, c) => n + c.counts.length, 0)).toBe(fromThread)
            return chunks
          }
        }
        yield* writer.toCoco(dir, dataset, task, assignSplits(dataset.images, {}), paths, root, recorded)
        expect(fromThread).toBeGreaterThan(0)
        expect(yield* cocoFiles(dir)).toEqual(reference)
      }))
  }

  it.scoped("another task, or a plan leaving images out: no share is offered", () =>
    Effect.gen(function*() {
      const { dir } = yield* setup("detection")
      const reader = yield* makeConverterReader
      for (const [task, leaveOut] of [["segmentation", 0], ["detection", 1]] as const) {
        const prebuild = yield* makeCocoPrebuild(() => "detection", 4096)
        const { dataset } = yield* reader.loadDice(dir, undefined, prebuild.observerFor)
        expect(yield* prebuild.printing).toBe(true)
        expect(prebuild.share(task, dataset.images.slice(leaveOut))).toBeUndefined()
      }
    }))

  it.scoped("a task the thread does not print (pose): not started, no share", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* Effect.promise(() => syntheticDice(dir, { images: 20, shape: "nested", task: "pose", seed: 2 }))
      const reader = yield* makeConverterReader
      const prebuild = yield* makeCocoPrebuild(() => "pose")
      const { dataset } = yield* reader.loadDice(dir, undefined, prebuild.observerFor)
      expect(yield* prebuild.printing).toBe(false)
      expect(prebuild.share("pose", dataset.images)).toBeUndefined()
    }))
})
