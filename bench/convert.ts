/**
 * DICE conversion at COCO scale, measured side by side in one run:
 *
 * - a generated nested DICE detection set the size of COCO train2017 (118,000 images, about
 *   826,000 boxes, about 167 MB of JSON; `--images` changes the count) converted to YOLO and
 *   to COCO: wall time, peak RSS growth, and the longest event-loop stall of the calling
 *   thread (`perf_hooks.monitorEventLoopDelay`, 10 ms resolution);
 * - the floors of this machine in the same run: reading and parsing the annotation file with
 *   one `JSON.parse`, and creating as many label-sized files with plain synchronous writes;
 *   plus the stall an idle event loop shows (the noise under the stall figure);
 * - 20,000 images / 200,000 boxes to YOLO, best of 3, with the labels' digest checked
 *   against the baseline's output in the same run (byte-identical output);
 * - the same conversions by the converter before #17 (its sources taken from git: the parent
 *   of the commit adding `test/ConverterGolden.test.ts`, or `--baseline REV`; `--no-baseline`
 *   skips it), so speed-ups are ratios measured side by side.
 *
 * Every measurement runs in a fresh child process (its peak RSS is its own) executing this
 * file bundled by esbuild — built JavaScript, as a trainer runs it, with the conversion
 * worker as its own entry. Datasets are generated once and cached under
 * `$TMPDIR/trainer-sdk-bench/` (`--fresh` regenerates); each conversion writes into a fresh
 * directory linking the cached images and annotation file, removed at the end (on this
 * machine class's ext4, mounted with `discard`, deleting many files slows file creation for
 * seconds afterwards, so nothing is deleted between timed runs).
 *
 * Usage: `npx tsx bench/convert.ts [--images 118000] [--runs 3] [--fresh] [--prepare] [--no-baseline]` (`--prepare`
 * only generates the datasets).
 */
import { NodeContext } from "@effect/platform-node"
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { Layer, ManagedRuntime } from "effect"
import { Converter } from "../src/Converter.js"
import { mulberry32 } from "../test/support/syntheticDice.js"
import { numberFlag, report } from "./lib/report.js"

const benchRoot = path.join(os.tmpdir(), "trainer-sdk-bench")
const generatorVersion = 2

/**
 * The cached dataset of `images` images with `boxesPerImage` boxes on average (COCO-like
 * sizes and field precision, nested DICE v2 shape), generated on first use.
 */
const dataset = (images: number, boxesPerImage: number): string => {
  const dir = path.join(benchRoot, `dice-${images}-${boxesPerImage}-v${generatorVersion}`)
  const done = path.join(dir, ".complete")
  if (fs.existsSync(done) && !process.argv.includes("--fresh")) return dir
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(path.join(dir, "images"), { recursive: true })
  const random = mulberry32(images)
  const classes = Array.from({ length: 80 }, (_, i) => ({ id: i + 1, name: `class_${i}`, supercategory: "thing" }))
  const out = fs.openSync(path.join(dir, "annotations_detection.json"), "w")
  fs.writeSync(
    out,
    `{"format_version":"2.0","task_type":"object_detection","classes":${JSON.stringify(classes)},` +
      `"storage_info":{"image_root":"datasets/ds-bench/images/"},"images":[`
  )
  let annId = 1
  let pending: Array<string> = []
  const round2 = (v: number) => Math.round(v * 100) / 100
  for (let i = 0; i < images; i++) {
    const file = `${String(i + 1).padStart(12, "0")}.jpg`
    fs.writeFileSync(path.join(dir, "images", file), "")
    const [w, h] = random() < 0.7 ? [640, 480] : [480, 640]
    const count = Math.floor(random() * (2 * boxesPerImage + 1))
    const anns: Array<string> = []
    for (let b = 0; b < count; b++) {
      const x = round2(random() * w * 0.9), y = round2(random() * h * 0.9)
      const bw = round2(1 + random() * (w - x)), bh = round2(1 + random() * (h - y))
      const c = Math.floor(random() * 80)
      anns.push(
        `{"id":${annId++},"class_id":${c + 1},"class_name":"class_${c}","bbox":[${x},${y},${bw},${bh}],` +
          `"area":${bw * bh * (0.5 + random() / 2)},"iscrowd":0,"score":1.0,"attributes":{"occluded":${random() < 0.2},"truncated":false}}`
      )
    }
    pending.push(
      `${i === 0 ? "" : ","}{"id":${i + 1},"file_name":"datasets/ds-bench/images/${file}","width":${w},"height":${h},` +
        `"annotations":[${anns.join(",")}]}`
    )
    if (pending.length >= 1000) {
      fs.writeSync(out, pending.join(""))
      pending = []
    }
  }
  fs.writeSync(out, pending.join("") + "]}")
  fs.closeSync(out)
  fs.writeFileSync(done, "")
  spawnSync("sync")
  return dir
}

/** A fresh run directory linking a cached dataset's images and annotation file. */
const runDir = (source: string): string => {
  fs.mkdirSync(path.join(benchRoot, "runs"), { recursive: true })
  const dir = fs.mkdtempSync(path.join(benchRoot, "runs", "run-"))
  fs.symlinkSync(path.join(source, "images"), path.join(dir, "images"))
  fs.symlinkSync(path.join(source, "annotations_detection.json"), path.join(dir, "annotations_detection.json"))
  return dir
}

// ---------------------------------------------------------------------------------------------
// Child modes (one measurement each, printing one JSON line)

interface ConvertRun {
  readonly ms: number
  readonly growthMb: number
  readonly stallMs: number
  readonly images: number
  readonly objects: number
}

const stallMonitor = () => {
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  return () => {
    histogram.disable()
    return histogram.max / 1e6
  }
}

const childConvert = async (dir: string, to: "yolo" | "coco"): Promise<ConvertRun> => {
  const rssBefore = process.memoryUsage().rss
  const stall = stallMonitor()
  // The converter as a trainer has it when it converts: its layers built and its runtime
  // running long before (building them here took about 15 ms, the same for both converters).
  const runtime = ManagedRuntime.make(Layer.provideMerge(Converter.layer, NodeContext.layer))
  const converter = await runtime.runPromise(Converter)
  const started = performance.now()
  const r = await runtime.runPromise(converter.convert({ datasetDir: dir, from: "dice", to }))
  const ms = performance.now() - started
  await runtime.dispose()
  return {
    ms,
    growthMb: (process.resourceUsage().maxRSS * 1024 - rssBefore) / 2 ** 20,
    stallMs: stall(),
    images: r.images,
    objects: r.objects
  }
}

/** The JSON floor: reading the file and one `JSON.parse` of its text, with its RSS growth. */
const childParse = (file: string) => {
  const rssBefore = process.memoryUsage().rss
  const started = performance.now()
  const doc = JSON.parse(fs.readFileSync(file, "utf8")) as { images: Array<unknown> }
  const ms = performance.now() - started
  return { ms, growthMb: (process.resourceUsage().maxRSS * 1024 - rssBefore) / 2 ** 20, images: doc.images.length }
}

/** The file-creation floor: `count` label-sized files with plain synchronous writes. */
const childFiles = (dir: string, count: number) => {
  const text = "3 0.512345 0.412345 0.031250 0.041667\n".repeat(7)
  fs.mkdirSync(dir)
  const started = performance.now()
  for (let i = 0; i < count; i++) fs.writeFileSync(path.join(dir, `${String(i).padStart(12, "0")}.txt`), text)
  return { ms: performance.now() - started }
}

/** The stall an idle event loop shows over `ms` (scheduling noise of a loaded machine). */
const childIdle = (ms: number) =>
  new Promise<{ stallMs: number }>((resolve) => {
    const stall = stallMonitor()
    setTimeout(() => resolve({ stallMs: stall() }), ms)
  })

const runChild = async (args: ReadonlyArray<string>): Promise<unknown> => {
  switch (args[0]) {
    case "convert":
      return childConvert(args[1]!, args[2] as "yolo" | "coco")
    case "parse":
      return childParse(args[1]!)
    case "files":
      return childFiles(args[1]!, Number(args[2]))
    case "idle":
      return childIdle(Number(args[1]))
    default:
      throw new Error(`unknown child mode ${args[0]}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Parent

const here = fileURLToPath(import.meta.url)
const repoRoot = path.resolve(path.dirname(here), "..")

/**
 * Bundles this file into `outDir`: with the conversion worker as its own entry, or, given
 * `baselineSrc`, with the converter of that source tree (the converter before #17).
 */
const bundle = async (outDir: string, baselineSrc?: string): Promise<string> => {
  const { build } = await import("esbuild")
  await build({
    entryPoints: baselineSrc === undefined
      ? {
        "convert-bench": here,
        convertWorker: path.join(repoRoot, "src/internal/convertWorker.ts"),
        labelWriterThread: path.join(repoRoot, "src/internal/labelWriterThread.ts"),
        labelDecodeThread: path.join(repoRoot, "src/internal/labelDecodeThread.ts"),
        cocoTextThread: path.join(repoRoot, "src/internal/cocoTextThread.ts")
      }
      : { "convert-bench": here },
    bundle: true,
    splitting: baselineSrc === undefined,
    platform: "node",
    format: "esm",
    outdir: outDir,
    logLevel: "error",
    external: ["esbuild"],
    nodePaths: [path.join(repoRoot, "node_modules")],
    plugins: baselineSrc === undefined ? [] : [{
      name: "baseline-converter",
      setup: (build) => {
        build.onResolve({ filter: /\/src\/Converter\.js$/ }, () => ({ path: path.join(baselineSrc, "Converter.ts") }))
      }
    }],
    banner: { js: "import { createRequire as __cr } from \"node:module\"; const require = __cr(import.meta.url);" }
  })
  return path.join(outDir, "convert-bench.js")
}

/**
 * The source tree of the converter before #17 — the parent of the commit that added its
 * golden-output test (or `--baseline REV`) — extracted from git into `outDir`, or
 * `undefined` when git cannot give it (then no baseline is measured).
 */
const baselineSource = (outDir: string): { readonly rev: string; readonly src: string } | undefined => {
  const git = (...args: Array<string>) => spawnSync("git", ["-C", repoRoot, ...args], { encoding: "utf8", maxBuffer: 1 << 26 })
  const flag = process.argv.indexOf("--baseline")
  const rev = flag >= 0
    ? process.argv[flag + 1]!
    : `${git("log", "--diff-filter=A", "--format=%H", "--", "test/ConverterGolden.test.ts").stdout.trim().split("\n").pop()}^`
  const archive = spawnSync("git", ["-C", repoRoot, "archive", "--format=tar", rev, "src"], { maxBuffer: 1 << 28 })
  if (archive.status !== 0) return undefined
  fs.mkdirSync(outDir, { recursive: true })
  const untar = spawnSync("tar", ["-x", "-C", outDir], { input: archive.stdout })
  if (untar.status !== 0) return undefined
  return { rev: git("rev-parse", "--short", rev).stdout.trim(), src: path.join(outDir, "src") }
}

const child = <A>(script: string, ...args: Array<string>): A => {
  // Every measurement starts with the files of the one before on disk, not being written
  // back meanwhile (a conversion leaves up to 118,000 dirty files behind).
  spawnSync("sync")
  const result = spawnSync(process.execPath, [script, "--child", ...args], { encoding: "utf8", maxBuffer: 1 << 24 })
  if (result.status !== 0) throw new Error(`child ${args.join(" ")} failed: ${result.stderr}`)
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as A
}

/** Digest of a YOLO output (labels, split lists, data.yaml), the run directory written as `$DIR`. */
const yoloDigest = (dir: string): string => {
  const hash = createHash("sha256")
  const labels = fs.readdirSync(path.join(dir, "labels")).sort()
  for (const name of labels) hash.update(`${name}\n${fs.readFileSync(path.join(dir, "labels", name), "utf8")}\n`)
  for (const name of ["train.txt", "val.txt", "test.txt", "data.yaml"]) {
    const file = path.join(dir, name)
    if (fs.existsSync(file)) hash.update(`${name}\n${fs.readFileSync(file, "utf8").split(dir).join("$DIR")}\n`)
  }
  return hash.digest("hex")
}

/** A digest of the COCO files a conversion of `dir` wrote (`annotations/instances_*.json`, by name). */
const cocoDigest = (dir: string): string => {
  const hash = createHash("sha256")
  const annotations = path.join(dir, "annotations")
  for (const name of fs.readdirSync(annotations).sort()) hash.update(`${name}\n`).update(fs.readFileSync(path.join(annotations, name)))
  return hash.digest("hex")
}

const gb = (mb: number) => (mb / 1024).toFixed(2)

const main = async (): Promise<void> => {
  const images = numberFlag("images", 118_000)
  const runs = Math.max(1, numberFlag("runs", 3))
  const scriptDir = fs.mkdtempSync(path.join(os.tmpdir(), "convert-bench-script-"))
  const script = await bundle(path.join(scriptDir, "now"))
  const baseline = process.argv.includes("--no-baseline") ? undefined : baselineSource(path.join(scriptDir, "baseline-src"))
  const before = baseline === undefined ? undefined : await bundle(path.join(scriptDir, "before"), baseline.src)
  fs.rmSync(path.join(benchRoot, "runs"), { recursive: true, force: true })
  const large = dataset(images, 7)
  const small = dataset(20_000, 10)
  if (process.argv.includes("--prepare")) {
    console.log(`datasets ready: ${large}, ${small}`)
    return
  }
  const annotationMb = fs.statSync(path.join(large, "annotations_detection.json")).size / 2 ** 20
  spawnSync("sync")

  const idle = child<{ stallMs: number }>(script, "idle", "3000")
  const parse = child<{ ms: number; growthMb: number }>(script, "parse", path.join(large, "annotations_detection.json"))
  const files = child<{ ms: number }>(script, "files", path.join(runDir(large), "floor"), String(images))
  console.log(
    `floors: JSON.parse of ${annotationMb.toFixed(0)} MB ${parse.ms.toFixed(0)} ms (RSS +${parse.growthMb.toFixed(0)} MB); ` +
      `creating ${images} label files ${files.ms.toFixed(0)} ms; idle event-loop stall ${idle.stallMs.toFixed(0)} ms`
  )

  const smallRuns: Array<ConvertRun> = []
  const smallBefore: Array<ConvertRun> = []
  let digest = "", digestOfBaseline = ""
  for (let i = 0; i < runs; i++) {
    const dir = runDir(small)
    smallRuns.push(child<ConvertRun>(script, "convert", dir, "yolo"))
    if (i === 0) digest = yoloDigest(dir)
    console.log(`20k → YOLO run ${i + 1}: ${JSON.stringify(smallRuns[i])}`)
    if (before !== undefined) {
      const dirBefore = runDir(small)
      smallBefore.push(child<ConvertRun>(before, "convert", dirBefore, "yolo"))
      if (i === 0) digestOfBaseline = yoloDigest(dirBefore)
      console.log(`20k → YOLO run ${i + 1}, before #17: ${JSON.stringify(smallBefore[i])}`)
    }
  }
  const yolo = child<ConvertRun>(script, "convert", runDir(large), "yolo")
  console.log(`${images} → YOLO: ${JSON.stringify(yolo)}`)
  const yoloBefore = before === undefined ? undefined : child<ConvertRun>(before, "convert", runDir(large), "yolo")
  if (yoloBefore) console.log(`${images} → YOLO before #17: ${JSON.stringify(yoloBefore)}`)
  const cocoDir = runDir(large)
  const coco = child<ConvertRun>(script, "convert", cocoDir, "coco")
  console.log(`${images} → COCO: ${JSON.stringify(coco)}`)
  const cocoDirBefore = before === undefined ? undefined : runDir(large)
  const cocoBefore = cocoDirBefore === undefined ? undefined : child<ConvertRun>(before!, "convert", cocoDirBefore, "coco")
  if (cocoBefore) console.log(`${images} → COCO before #17: ${JSON.stringify(cocoBefore)}`)
  const cocoSame = cocoDirBefore !== undefined && cocoDigest(cocoDir) === cocoDigest(cocoDirBefore)

  const bestOf = (all: ReadonlyArray<ConvertRun>) => [...all].sort((a, b) => a.ms - b.ms)[0]!
  const best = bestOf(smallRuns)
  const identical = baseline !== undefined && digest === digestOfBaseline
  const versus = (now: ConvertRun, then: ConvertRun | undefined) =>
    then === undefined
      ? "no baseline measured"
      : `before #17 (${baseline!.rev}) in the same run: ${(then.ms / 1000).toFixed(2)} s, RSS growth ${gb(then.growthMb)} GB, ` +
        `stall ${then.stallMs.toFixed(0)} ms — now ${(then.ms / now.ms).toFixed(2)}x faster, ${
          (now.growthMb / then.growthMb).toFixed(2)
        }x the memory`
  const load = `load average ${os.loadavg().map((l) => l.toFixed(1)).join("/")} on ${os.cpus().length} cores`
  const floors = `floors in the same run: JSON.parse of the ${annotationMb.toFixed(0)} MB file ${
    (parse.ms / 1000).toFixed(2)
  } s (RSS +${gb(parse.growthMb)} GB), creating ${images} label-sized files ${(files.ms / 1000).toFixed(2)} s`
  const stallNote = `idle event loop in the same conditions: ${idle.stallMs.toFixed(0)} ms longest stall (scheduling noise)`
  // This machine class's ext4 has no journal: allocating an inode skips every inode freed in
  // the last 5 s, or 300 s once its inode-table block is dirty again (which creating files
  // next to it makes it), so for about five minutes after any mass deletion on the disk (a
  // test suite's, a previous run's) creating files is several times slower.
  const perFileUs = (files.ms * 1000) / images
  const diskNote = perFileUs > 2 * (2600 * 1000 / 118_000)
    ? `; file creation ran at ${perFileUs.toFixed(0)} µs per file, over twice the issue's 22 µs: recent mass deletions on this disk (ext4 without a journal skips inodes freed in the last 300 s) slow every figure that creates files`
    : ""
  for (
    const [name, run, then, wallTarget, rssTarget] of [["yolo", yolo, yoloBefore, 5, 0.6], ["coco", coco, cocoBefore, 6, 0.9]] as const
  ) {
    report({
      name: `convert-${images / 1000}k-${name}`,
      figure: `DICE → ${name.toUpperCase()}, ${run.images} images / ${run.objects} boxes: ${(run.ms / 1000).toFixed(2)} s wall, ` +
        `peak RSS growth ${gb(run.growthMb)} GB, longest event-loop stall ${run.stallMs.toFixed(0)} ms`,
      comparison: `${versus(run, then)}; ${floors}; wall / (parse + file floors) = ${
        (run.ms / (parse.ms + (name === "yolo" ? files.ms : 0))).toFixed(2)
      }x; RSS growth ${(run.growthMb / annotationMb).toFixed(2)}x the annotation file${
        name === "coco" && baseline !== undefined
          ? `; COCO files ${cocoSame ? "byte-identical to" : "DIFFERENT from"} the pre-#17 converter's in this run`
          : ""
      }`,
      target: `<= ${wallTarget} s wall, <= ${rssTarget} GB RSS growth, stall <= 100 ms`,
      met: run.ms <= wallTarget * 1000 && run.growthMb <= rssTarget * 1024 && run.stallMs <= 100,
      notes: `${stallNote}; ${load}; timed from the call to convert() to its report (process start excluded)${diskNote}`
    })
  }
  report({
    name: "convert-20k-yolo",
    figure: `DICE → YOLO, ${best.images} images / ${best.objects} boxes: best of ${runs} ${(best.ms / 1000).toFixed(2)} s ` +
      `(all: ${smallRuns.map((r) => (r.ms / 1000).toFixed(2)).join(", ")} s), peak RSS growth ${gb(best.growthMb)} GB, ` +
      `longest stall ${Math.max(...smallRuns.map((r) => r.stallMs)).toFixed(0)} ms`,
    comparison: `${versus(best, smallBefore.length > 0 ? bestOf(smallBefore) : undefined)} (best of ${runs} each); labels, ` +
      `split lists and data.yaml ${
        baseline === undefined ? "not compared (no baseline)" : identical ? "byte-identical to" : "DIFFERENT from"
      } the pre-#17 converter's in this run (sha256 ${digest.slice(0, 12)}); file-creation floor for 20k files ≈ ${
        (files.ms * 20_000 / images / 1000).toFixed(2)
      } s (scaled)`,
    target: "<= 0.9 s best of 3; byte-identical labels",
    met: best.ms <= 900 && identical,
    notes: `${load}${diskNote}`
  })
  fs.rmSync(path.join(benchRoot, "runs"), { recursive: true, force: true })
  fs.rmSync(scriptDir, { recursive: true, force: true })
}

const childAt = process.argv.indexOf("--child")
if (childAt >= 0) {
  void runChild(process.argv.slice(childAt + 1)).then((r) => {
    console.log(JSON.stringify(r))
    process.exit(0)
  })
} else void main()
