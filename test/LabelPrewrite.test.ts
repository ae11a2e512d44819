/**
 * Label files proposed while the DICE file is parsed (`labelPrewrite`, used by the conversion
 * worker): `toYolo` installs the proposal as it is only when it names exactly the files it
 * would write, otherwise writes them afresh; either way the outputs are the caller thread's,
 * byte for byte, and no staging directory is left behind. With the file in shared memory,
 * the decode thread decodes and labels chunks from the back: the dataset is still the
 * caller thread's, and its failures are this thread's errors.
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, layer } from "@effect/vitest"
import { Effect, Either, Exit, Scope } from "effect"
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads"
import { Converter } from "../src/Converter.js"
import { makeConverterReader } from "../src/internal/converterRead.js"
import { makeConverterWriter } from "../src/internal/converterWrite.js"
import type { DiceDataset, NestedDecodeObserver } from "../src/internal/diceModel.js"
import { decodeDiceBytes } from "../src/internal/diceSchema.js"
import { makeLabelPrewrite } from "../src/internal/labelPrewrite.js"
import { handOver, type ReadAhead, startReadAhead, takeOver } from "../src/internal/readAhead.js"
import { makeHelperLink, startThread } from "../src/internal/sharedWork.js"
import { assignSplits } from "../src/internal/splits.js"
import type { ConverterTask } from "../src/Converter.js"
import { recordReadAhead } from "./support/readAhead.js"
import { syntheticDice } from "./support/syntheticDice.js"

/** Every file under `dir` (sorted relative paths) with its text. */
const tree = (dir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const out: Record<string, string> = {}
    for (const entry of (yield* fs.readDirectory(dir, { recursive: true })).sort()) {
      if ((yield* fs.stat(`${dir}/${entry}`)).type === "File") out[entry] = yield* fs.readFileString(`${dir}/${entry}`)
    }
    return out
  })

/**
 * A synthetic nested dataset in a fresh directory (`arrange` may rework it), and a copy
 * converted in the caller's thread.
 */
const setup = (task: ConverterTask, arrange?: (dir: string, file: string) => Effect.Effect<void, unknown, FileSystem.FileSystem>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const root = yield* fs.makeTempDirectoryScoped()
    yield* Effect.promise(() => syntheticDice(`${root}/ds`, { images: 120, shape: "nested", task, seed: 11 }))
    if (arrange !== undefined) yield* Effect.orDie(arrange(`${root}/ds`, `${root}/ds/annotations_${task}.json`))
    yield* fs.copy(`${root}/ds`, `${root}/reference`)
    yield* Effect.flatMap(Converter, (c) => c.convert({ datasetDir: `${root}/reference`, from: "dice", to: "yolo" })).pipe(
      Effect.provide(Converter.layerInProcess)
    )
    return { dir: `${root}/ds`, reference: yield* tree(`${root}/reference/labels`), file: `${root}/ds/annotations_${task}.json` }
  })

/** The bytes in shared memory, as the conversion worker reads them. */
const sharedCopy = (bytes: Uint8Array): Uint8Array => {
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length))
  shared.set(bytes)
  return shared
}

/**
 * Decodes `file`'s bytes piece by piece (small chunks) with a proposer listening. `shared`:
 * in shared memory, with the decode thread started first and this thread pausing on its
 * first chunk, so the thread takes chunks from the back.
 */
const decodeWith = (dir: string, file: string, task: ConverterTask, shared: boolean) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const prewrite = yield* makeLabelPrewrite(dir, () => task)
    const bytes = yield* fs.readFile(file)
    if (shared) yield* prewrite.ready
    const observer = prewrite.observerFor(file)
    const paused: NestedDecodeObserver = {
      ...observer,
      decodeImages: (layout, walk, starts) =>
        observer.decodeImages!(layout, (first, end) => {
          if (first === 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300)
          return walk(first, end)
        }, starts)
    }
    return { decoded: decodeDiceBytes(file, shared ? sharedCopy(bytes) : bytes, 2048, shared ? paused : observer), prewrite }
  })

/** `decodeWith` of a valid file: the dataset and the proposer. */
const propose = (dir: string, file: string, task: ConverterTask, shared = false) =>
  Effect.map(decodeWith(dir, file, task, shared), ({ decoded, prewrite }) => ({ dataset: Either.getOrThrow(decoded), prewrite }))

/** `toYolo` as the conversion runs it, with the proposal (or none). */
const install = (dir: string, file: string, task: ConverterTask, dataset: DiceDataset, finish: Effect.Effect<unknown>) =>
  Effect.gen(function*() {
    const reader = yield* makeConverterReader
    const writer = yield* makeConverterWriter
    const { paths } = yield* reader.resolveImages(dir, file, dataset)
    const prewritten = (yield* finish) as Parameters<typeof writer.toYolo>[5]
    return yield* writer.toYolo(dir, dataset, task, assignSplits(dataset.images, {}), paths, prewritten)
  })

const stagingLeft = (dir: string) =>
  Effect.map(Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readDirectory(dir)), (names) => names.filter((n) => n.startsWith(".")))

layer(NodeContext.layer)("labels written while parsing", (it) => {
  describe("adopted when they are exactly what toYolo would write", () => {
    for (const [task, shared] of [["detection", false], ["segmentation", false], ["detection", true], ["segmentation", true]] as const) {
      it.scoped(`nested ${task}${shared ? ", decode thread" : ""}: the staging directory is installed as it is; the same bytes as the caller's thread`, () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const path = yield* Path.Path
          const { dir, file, reference } = yield* setup(task)
          const { dataset, prewrite } = yield* propose(dir, file, task, shared)
          const prewritten = yield* prewrite.finish
          expect(prewritten?.files).toBe(dataset.images.length)
          expect(prewritten!.fromThread > 0).toBe(shared)
          // Every proposed file holds the reference's text, in the place toYolo installs.
          const staged = yield* tree(prewritten!.staging)
          expect(Object.keys(staged).map((k) => k.replace(/^0\//, "")).sort()).toEqual(Object.keys(reference).sort())
          for (const [name, text] of Object.entries(staged)) expect(text).toBe(reference[name.replace(/^0\//, "")])
          // A marked file shows that the proposal itself is installed, not rewritten.
          const marked = path.join(prewritten!.staging, "0", "img_1.txt")
          yield* fs.writeFileString(marked, "marked")
          yield* install(dir, file, task, dataset, Effect.succeed(prewritten))
          const labels = yield* tree(`${dir}/labels`)
          expect(labels["img_1.txt"]).toBe("marked")
          expect({ ...labels, "img_1.txt": reference["img_1.txt"] }).toStrictEqual(reference)
          expect(yield* stagingLeft(dir)).toEqual([])
        }))
    }
  })

  it.scoped("with the decode thread: the images are the caller thread's, annotations included (decoded when read)", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { dir, file } = yield* setup("segmentation")
      const { dataset, prewrite } = yield* propose(dir, file, "segmentation", true)
      expect((yield* prewrite.finish)!.fromThread).toBeGreaterThan(0)
      const reference = Either.getOrThrow(decodeDiceBytes(file, yield* fs.readFile(file)))
      expect(dataset.images.map((image) => image.id)).toEqual(reference.images.map((image) => image.id))
      expect(dataset).toEqual(reference)
      // A spread copy (a plan dropping the images' splits) carries the annotations too.
      expect(dataset.images.map((image) => ({ ...image }))).toEqual(reference.images)
    }))

  it.scoped("label folders proposed out of file order (the decode thread's chunks first) are still installed as they are", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      // Two images in folders of their own, one mid-file and one near the end: each gets a label folder.
      const { dir, file, reference } = yield* setup("detection", (dir, file) =>
        Effect.gen(function*() {
          const doc = JSON.parse(yield* fs.readFileString(file)) as { images: Array<{ file_name: string }> }
          for (const [index, folder] of [[60, "mid"], [117, "end"]] as const) {
            const name = doc.images[index]!.file_name.slice("images/".length)
            yield* fs.makeDirectory(`${dir}/${folder}/images`, { recursive: true })
            yield* fs.rename(`${dir}/images/${name}`, `${dir}/${folder}/images/${name}`)
            doc.images[index]!.file_name = `${folder}/images/${name}`
          }
          yield* fs.writeFileString(file, JSON.stringify(doc))
        }))
      const { dataset, prewrite } = yield* propose(dir, file, "detection", true)
      const prewritten = yield* prewrite.finish
      expect(prewritten!.fromThread).toBeGreaterThan(0)
      // The thread's last chunk was placed before the middle one: "end" numbered before "mid".
      expect(prewritten!.roots.get(`${dir}/end/labels`)).toBeLessThan(prewritten!.roots.get(`${dir}/mid/labels`)!)
      const marked = `${prewritten!.staging}/${prewritten!.roots.get(`${dir}/labels`)}/img_1.txt`
      yield* fs.writeFileString(marked, "marked")
      yield* install(dir, file, "detection", dataset, Effect.succeed(prewritten))
      const labels = yield* tree(`${dir}/labels`)
      expect(labels["img_1.txt"]).toBe("marked")
      expect({ ...labels, "img_1.txt": reference["img_1.txt"] }).toStrictEqual(reference)
      for (const folder of ["mid", "end"]) {
        const [name] = Object.keys(yield* tree(`${dir}/${folder}/labels`))
        expect(name).toBeDefined()
      }
      expect(yield* stagingLeft(dir)).toEqual([])
    }))

  it.scoped("an entry the decode thread cannot decode is decoded here: the same DatasetError as without the thread", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { dir, file } = yield* setup("detection")
      const doc = JSON.parse(yield* fs.readFileString(file)) as { images: Array<Record<string, unknown>> }
      doc.images[doc.images.length - 3]!["width"] = -4
      yield* fs.writeFileString(file, JSON.stringify(doc))
      const { decoded } = yield* decodeWith(dir, file, "detection", true)
      const expected = decodeDiceBytes(file, yield* fs.readFile(file))
      assert(Either.isLeft(decoded) && Either.isLeft(expected))
      expect(decoded.left).toEqual(expected.left)
      expect(decoded.left.jsonPath).toBe(`images[${doc.images.length - 3}].width`)
    }))

  for (const shared of [false, true]) {
    it.scoped(`a proposal for other images (one left out later) is thrown away and the labels written afresh${shared ? " (decode thread)" : ""}`, () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { dir, file, reference } = yield* setup("detection")
      const { dataset, prewrite } = yield* propose(dir, file, "detection", shared)
      const prewritten = yield* prewrite.finish
      yield* fs.writeFileString(`${prewritten!.staging}/0/img_1.txt`, "marked")
      const fewer = { ...dataset, images: dataset.images.filter((image) => image.fileName !== "images/img_2.jpg") }
      yield* install(dir, file, "detection", fewer, Effect.succeed(prewritten))
      const labels = yield* tree(`${dir}/labels`)
      expect(labels["img_1.txt"]).toBe(reference["img_1.txt"])
      expect(labels["img_2.txt"]).toBeUndefined()
      expect(Object.keys(labels).length).toBe(Object.keys(reference).length - 1)
      expect(yield* stagingLeft(dir)).toEqual([])
    }))
  }

  it.scoped("a proposal that resolved an image to another file than the conversion is thrown away", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { dir, file, reference } = yield* setup("detection")
      const { dataset, prewrite } = yield* propose(dir, file, "detection")
      const prewritten = yield* prewrite.finish
      yield* fs.writeFileString(`${prewritten!.staging}/0/img_1.txt`, "marked")
      const first = dataset.images.find((image) => image.fileName === "images/img_1.jpg")!
      const labels = new Map(prewritten!.labels)
      labels.set(first, { ...labels.get(first)!, found: `${dir}/elsewhere/img_1.jpg` })
      yield* install(dir, file, "detection", dataset, Effect.succeed({ ...prewritten!, labels }))
      expect(yield* tree(`${dir}/labels`)).toEqual(reference)
      expect(yield* stagingLeft(dir)).toEqual([])
    }))

  it.scoped("the directories listed while proposing are where the conversion finds its images (they are not listed again)", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { dir, file } = yield* setup("detection")
      const { dataset, prewrite } = yield* propose(dir, file, "detection")
      yield* prewrite.finish
      const listed = [...prewrite.listings.keys()]
      expect(listed.length).toBeGreaterThan(0)
      for (const d of listed) expect(d.startsWith(`${dir}/`)).toBe(true)
      expect(prewrite.listings.get(`${dir}/images`)?.has("img_1.jpg")).toBe(true)
      // Taken away after the listing: found through the listing, missing without it.
      yield* fs.remove(`${dir}/images/img_1.jpg`)
      const reader = yield* makeConverterReader
      const { paths } = yield* reader.resolveImages(dir, file, dataset, prewrite.listings)
      expect(paths).toContain(`${dir}/images/img_1.jpg`)
      const missing = yield* Effect.flip(reader.resolveImages(dir, file, dataset))
      expect(missing.reason).toBe("MissingImages")
    }))

  it.scoped("the images resolved while proposing are not resolved again, and two of them naming one file are still a Duplicate", () =>
    Effect.gen(function*() {
      const { dir, file } = yield* setup("detection")
      const { dataset, prewrite } = yield* propose(dir, file, "detection")
      yield* prewrite.finish
      const reader = yield* makeConverterReader
      const afresh = yield* reader.resolveImages(dir, file, dataset)
      const reused = yield* reader.resolveImages(dir, file, dataset, prewrite.listings, prewrite.known)
      expect(reused).toEqual(afresh)
      // What was found is taken as it is, for this directory and image root only.
      const planted = { ...prewrite.known, of: () => ({ name: "planted.jpg", found: `${dir}/planted.jpg`, level: 0 }) }
      const one = { ...dataset, images: dataset.images.slice(0, 1) }
      expect((yield* reader.resolveImages(dir, file, one, prewrite.listings, planted)).paths).toEqual([`${dir}/planted.jpg`])
      const elsewhere = { ...planted, base: `${dir}/elsewhere` }
      expect((yield* reader.resolveImages(dir, file, one, prewrite.listings, elsewhere)).paths).toEqual(afresh.paths.slice(0, 1))
      const twice = { ...dataset, images: [...dataset.images, dataset.images[0]!] }
      const duplicate = yield* Effect.flip(reader.resolveImages(dir, file, twice, prewrite.listings, prewrite.known))
      expect(duplicate.reason).toBe("Duplicate")
      expect(duplicate.jsonPath).toBe(`images[${dataset.images.length}].file_name`)
    }))

  it.scoped("proposing stops at an image it cannot find: nothing is proposed and no staging directory is left", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { dir, file } = yield* setup("detection")
      yield* fs.remove(`${dir}/images/img_101.jpg`)
      const { prewrite } = yield* propose(dir, file, "detection")
      expect(yield* prewrite.finish).toBeUndefined()
      expect(yield* stagingLeft(dir)).toEqual([])
    }))

  it.scoped("pose and classification are not proposed; a conversion that fails leaves no staging directory", () =>
    Effect.gen(function*() {
      const { dir, file } = yield* setup("detection")
      const pose = yield* propose(dir, file, "pose")
      expect(yield* pose.prewrite.finish).toBeUndefined()
      const scope = yield* Scope.make()
      yield* Scope.extend(propose(dir, file, "detection"), scope)
      // The writer thread has started writing: its staging directory appears.
      let started: ReadonlyArray<string> = []
      for (let i = 0; i < 2000 && started.length === 0; i++) {
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        started = yield* stagingLeft(dir)
      }
      expect(started.length).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(yield* stagingLeft(dir)).toEqual([])
    }))

  describe("the decode thread reading the file ahead (started before the converter's modules load)", () => {
    /**
     * Loads `file`'s dataset as the conversion does, with a proposer on `readAhead`'s thread;
     * whether the bytes decoded were the read-ahead's, and the labels installed.
     */
    const loadWith = (dir: string, file: string, task: ConverterTask, readAhead: ReadAhead | undefined) =>
      Effect.gen(function*() {
        const prewrite = yield* makeLabelPrewrite(dir, () => task, readAhead)
        const recorded = recordReadAhead(prewrite.observerFor)
        const reader = yield* makeConverterReader
        const loaded = yield* Effect.either(reader.loadDice(dir, undefined, recorded.observerFor))
        if (Either.isLeft(loaded)) return { loaded, takenAhead: recorded.taken(), labels: undefined }
        const prewritten = yield* prewrite.finish
        yield* install(dir, file, task, loaded.right.dataset, Effect.succeed(prewritten))
        return { loaded, takenAhead: recorded.taken(), labels: yield* tree(`${dir}/labels`) }
      })

    /** A read-ahead of `file` whose thread reads `read` instead. */
    const readingOther = (file: string, read: string): ReadAhead => {
      const { link, transfer, workerData } = makeHelperLink()
      return { file, link, thread: startThread("labelDecodeThread", { ...workerData, readAheadFile: read }, undefined, transfer) }
    }

    for (const task of ["detection", "segmentation"] as const) {
      it.scoped(`nested ${task}: its bytes and scan are taken; the dataset and labels are the caller thread's`, () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const { dir, file, reference } = yield* setup(task)
          const readAhead = startReadAhead({ datasetDir: dir, from: "dice", to: "yolo" })
          expect(readAhead?.file).toBe(file)
          const { labels, loaded, takenAhead } = yield* loadWith(dir, file, task, readAhead)
          expect(takenAhead).toBe(true)
          expect(labels).toStrictEqual(reference)
          assert(Either.isRight(loaded))
          expect(loaded.right.dataset).toEqual(Either.getOrThrow(decodeDiceBytes(file, yield* fs.readFile(file))))
          expect(yield* stagingLeft(dir)).toEqual([])
        }))
    }

    it.scoped("handed over to another thread's conversion (ports and shared words through a message), its bytes are taken there", () =>
      Effect.gen(function*() {
        const { dir, file, reference } = yield* setup("detection")
        const started = startReadAhead({ datasetDir: dir, from: "dice", to: "yolo" })!
        yield* Effect.addFinalizer(() => Effect.promise(() => started.thread!.terminate()))
        // Across a message channel as the caller's thread hands it to the conversion worker.
        const { port1, port2 } = new MessageChannel()
        const { ahead, transfer } = handOver(started)
        port1.postMessage(ahead, [...transfer])
        const crossed = takeOver(receiveMessageOnPort(port2)!.message as typeof ahead)
        port1.close()
        expect(crossed.thread).toBeUndefined()
        const { labels, takenAhead } = yield* loadWith(dir, file, "detection", crossed)
        expect(takenAhead).toBe(true)
        expect(labels).toStrictEqual(reference)
        expect(yield* stagingLeft(dir)).toEqual([])
      }))

    it.scoped("no read-ahead for LabelMe, or a directory without an annotation file", () =>
      Effect.gen(function*() {
        const { dir } = yield* setup("detection")
        expect(startReadAhead({ datasetDir: dir, from: "labelme", to: "yolo" })).toBeUndefined()
        expect(startReadAhead({ datasetDir: `${dir}/images`, from: "dice", to: "yolo" })).toBeUndefined()
      }))

    it.scoped("a read-ahead of another file is not taken: the reader reads its own", () =>
      Effect.gen(function*() {
        const { dir, file, reference } = yield* setup("detection")
        const fs = yield* FileSystem.FileSystem
        // Another dataset's file: fewer images, so taking its bytes would show.
        const other = yield* setup("detection", (_, f) =>
          Effect.gen(function*() {
            const doc = JSON.parse(yield* fs.readFileString(f)) as { images: Array<unknown> }
            yield* fs.writeFileString(f, JSON.stringify({ ...doc, images: doc.images.slice(0, 50) }))
          }))
        const { labels, takenAhead } = yield* loadWith(dir, file, "detection", readingOther(other.file, other.file))
        expect(takenAhead).toBe(false)
        expect(labels).toStrictEqual(reference)
      }))

    it.scoped("a thread that could not read the file leaves the reading to the reader", () =>
      Effect.gen(function*() {
        const { dir, file, reference } = yield* setup("detection")
        const { labels, takenAhead } = yield* loadWith(dir, file, "detection", readingOther(file, `${file}.missing`))
        expect(takenAhead).toBe(false)
        expect(labels).toStrictEqual(reference)
      }))

    for (const [name, corrupt] of [
      ["an invalid entry", (text: string) => text.replace(/"width":\s*\d+/, '"width": -4')],
      ["malformed JSON", (text: string) => text.slice(0, Math.floor(text.length / 2))],
      ["a number out of range", (text: string) => text.replace(/"bbox":\s*\[\s*[\d.]+/, '"bbox": [1e999')]
    ] as const) {
      it.scoped(`${name}: the same DatasetError as the caller thread's`, () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const { dir, file } = yield* setup("detection")
          yield* fs.writeFileString(file, corrupt(yield* fs.readFileString(file)))
          const { loaded, takenAhead } = yield* loadWith(dir, file, "detection", startReadAhead({ datasetDir: dir, from: "dice", to: "yolo" }))
          expect(takenAhead).toBe(true)
          const expected = decodeDiceBytes(file, yield* fs.readFile(file))
          assert(Either.isLeft(loaded) && Either.isLeft(expected))
          expect(loaded.left).toEqual(expected.left)
        }))
    }
  })
})
