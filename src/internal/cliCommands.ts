/**
 * The `trainer-sdk` command line: `convert`, `validate`, `download`, `cache list|prune` and
 * `dev-backend`, built with `@effect/cli` over the SDK's services. Output goes through the
 * `CliTerminal` service (the program edge, `src/cli.ts`, writes it to the process streams);
 * `runTrainerSdkCli` turns every outcome into an exit code: 0 success, 1 failure, 2 usage.
 */
import { Args, Command, Options, ValidationError } from "@effect/cli"
import * as HelpDoc from "@effect/cli/HelpDoc"
import { FileSystem } from "@effect/platform"
import { Cause, Console, Context, Data, Effect, Layer, Option } from "effect"
import { Converter } from "../Converter.js"
import { DatasetCache } from "../DatasetCache.js"
import { DatasetError } from "../Errors.js"
import { normalizeTaskType } from "../JobContext.js"
import { Storage } from "../Storage.js"
import {
  formatDevBackendEvent,
  formatDevBackendRejection,
  formatDevBackendSummary,
  startDevBackend
} from "../DevBackend.js"
import {
  formatBytes,
  formatCacheEntries,
  formatCliError,
  formatConversionReport,
  formatDownloadProgress,
  formatValidation
} from "./cliFormat.js"
import { parseJsonBytes } from "./json.js"
import { integerText, isPositiveInteger } from "./jobConfig.js"
import type { DownloadProgress } from "../Storage.js"

/** Where the CLI writes: stdout lines, stderr lines and a progress line on stderr. */
export interface CliTerminalShape {
  readonly out: (text: string) => Effect.Effect<void>
  readonly err: (text: string) => Effect.Effect<void>
  /** Shows `line` as the current progress (replacing the previous one on a terminal). */
  readonly progress: (line: string) => Effect.Effect<void>
  /** Ends the progress line, leaving the last one visible. */
  readonly endProgress: Effect.Effect<void>
  /** Whether output may carry ANSI colours (stdout is a terminal and `NO_COLOR` is unset). */
  readonly colour: boolean
}

/** The CLI's output service (the program edge provides one over the process streams). */
export class CliTerminal extends Context.Tag("trainer-sdk/CliTerminal")<CliTerminal, CliTerminalShape>() {}

/** A command line the CLI cannot act on (exit code 2). */
export class CliUsageError extends Data.TaggedError("CliUsageError")<{ readonly message: string }> {}

/** A check that ran and failed, its details already printed (exit code 1). */
export class CliCheckFailed extends Data.TaggedError("CliCheckFailed")<{ readonly message: string }> {}

/**
 * Storage for the storage and cache commands: `Storage.config` and `DatasetCache.config`
 * read only their own variables, so the rest of a trainer's environment (a job's
 * `CALLBACK_URL`, `JOB_ID`, hyper-parameters...) is ignored: an operator inspecting a
 * node's cache has no job. An invalid value of a variable they read is a `ConfigError` naming it.
 */
const trainerEnvironment = Storage.layerConfig(Storage.config)

const progressPrinter = (terminal: CliTerminalShape) => (progress: DownloadProgress) =>
  terminal.progress(formatDownloadProgress(progress))

const positiveInteger = (name: string, value: number): Effect.Effect<number, CliUsageError> =>
  isPositiveInteger(value)
    ? Effect.succeed(value)
    : Effect.fail(new CliUsageError({ message: `--${name} must be a positive integer, got ${value}` }))

/**
 * An option taking one of `choices`; a wrong value is a usage error naming the option
 * (`@effect/cli`'s own choice error does not say which option it is about).
 */
const choiceOption = <const C extends ReadonlyArray<string>>(name: string, choices: C): Options.Options<C[number]> =>
  Options.text(name).pipe(
    Options.withPseudoName(choices.join("|")),
    Options.mapEffect((value) =>
      choices.includes(value)
        ? Effect.succeed(value as C[number])
        : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${name} must be one of ${choices.join(", ")}, got "${value}"`)))
    )
  )

/**
 * A whole-number option. A wrong value is a usage error naming the option (`@effect/cli`'s
 * own message, `'abc' is not a integer`, does not).
 */
const integerOption = (name: string): Options.Options<number> =>
  Options.text(name).pipe(
    Options.withPseudoName("integer"),
    Options.mapEffect((value) => {
      const integer = integerText(value)
      return integer !== undefined
        ? Effect.succeed(integer)
        : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${name} must be an integer, got "${value}"`)))
    })
  )

/** The accepted `--task` values, as shown in help and errors. */
const taskChoices = "detection, classification, segmentation or pose (or an alias such as object_detection, cls)"

/** `--task`: one of the converter's tasks or an alias of one; anything else names the choices. */
const taskOption = Options.text("task").pipe(
  Options.withPseudoName("task"),
  Options.mapEffect((value) => {
    const task = normalizeTaskType(value)
    return task === undefined
      ? Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--task must be ${taskChoices}, got "${value}"`)))
      : Effect.succeed(task)
  })
)

// convert ---------------------------------------------------------------------------------

const convert = Command.make(
  "convert",
  {
    from: choiceOption("from", ["dice", "labelme"]).pipe(
      Options.withDescription("Annotation format of the dataset: DICE (annotations*.json) or LabelMe")
    ),
    to: choiceOption("to", ["yolo", "coco"]).pipe(Options.withDescription("Format to write")),
    task: taskOption.pipe(Options.withDescription(`${taskChoices} (default: the file's)`), Options.optional),
    seed: integerOption("seed").pipe(Options.withDescription("Seed of the random train/val split (default 42)"), Options.optional),
    valRatio: Options.float("val-ratio").pipe(
      Options.withDescription("Share of images in the validation split, in (0, 1) (default 0.2)"),
      Options.optional
    ),
    allowClasses: Options.boolean("allow-classes-without-train-images").pipe(
      Options.withDescription("Classification: leave out (and warn about) classes with no train image instead of failing")
    ),
    dir: Args.directory({ name: "DIR", exists: "yes" }).pipe(Args.withDescription("The dataset directory, converted in place"))
  },
  ({ allowClasses, dir, from, seed, task, to, valRatio }) =>
    Effect.gen(function*() {
      const terminal = yield* CliTerminal
      if (Option.isSome(valRatio) && !(valRatio.value > 0 && valRatio.value < 1)) {
        return yield* new CliUsageError({ message: `--val-ratio must be between 0 and 1 (exclusive), got ${valRatio.value}` })
      }
      const converter = yield* Converter
      yield* terminal.err(`converting ${dir} (${from} -> ${to})...`)
      const report = yield* converter.convert({
        datasetDir: dir,
        from,
        to,
        taskType: Option.getOrUndefined(task),
        split: {
          seed: Option.getOrUndefined(seed),
          ratios: Option.isSome(valRatio) ? { train: 1 - valRatio.value, val: valRatio.value } : undefined
        },
        allowClassesWithoutTrainImages: allowClasses
      })
      yield* terminal.out(formatConversionReport(dir, from, report))
    }).pipe(Effect.provide(Converter.layer))
).pipe(Command.withDescription("Convert a DICE or LabelMe dataset to YOLO or COCO, in place"))

// validate --------------------------------------------------------------------------------

const validate = Command.make(
  "validate",
  {
    minImages: integerOption("min-images").pipe(
      Options.withDescription("Fewer images than this is an issue (default 1)"),
      Options.optional
    ),
    task: taskOption.pipe(
      Options.withDescription("The dataset's task: segmentation requires a segmentation on every COCO annotation"),
      Options.optional
    ),
    dir: Args.directory({ name: "DIR", exists: "yes" }).pipe(
      Args.withDescription("A converted dataset (data.yaml and/or annotations/instances_*.json)")
    )
  },
  ({ dir, minImages, task }) =>
    Effect.gen(function*() {
      const terminal = yield* CliTerminal
      if (Option.isSome(minImages) && minImages.value < 0) {
        return yield* new CliUsageError({ message: `--min-images must be 0 or more, got ${minImages.value}` })
      }
      const converter = yield* Converter
      const validation = yield* converter.validate(dir, {
        minImages: Option.getOrUndefined(minImages),
        segmentation: Option.getOrUndefined(task) === "segmentation"
      })
      yield* terminal.out(formatValidation(dir, validation))
      if (!validation.valid) {
        return yield* new CliCheckFailed({ message: `${dir} is invalid: ${validation.issues.length} issue(s)` })
      }
    }).pipe(Effect.provide(Converter.layer))
).pipe(Command.withDescription("Check a converted YOLO and/or COCO dataset as its consumers read it; exit code 1 when it is invalid"))

// download --------------------------------------------------------------------------------

/** Reads annotation data from a local JSON file, naming the file on failure. */
const readAnnotationFile = (file: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const bytes = yield* fs.readFile(file).pipe(
      Effect.mapError((cause) => new DatasetError({ reason: "AnnotationsNotFound", file, detail: `cannot read the annotation file: ${cause.message}` }))
    )
    // The converter's own parser: strict UTF-8 and a nesting limit, errors naming the file.
    return yield* parseJsonBytes(file, bytes)
  })

/** `labelme` for annotation data with `data_summary`, `coco` for data with `images`. */
const detectAnnotationFormat = (file: string, data: unknown): Effect.Effect<"labelme" | "coco", CliUsageError> => {
  if (typeof data === "object" && data !== null) {
    if ("data_summary" in data) return Effect.succeed("labelme")
    if ("images" in data) return Effect.succeed("coco")
  }
  return Effect.fail(new CliUsageError({ message: `cannot tell the format of ${file} (no data_summary or images): pass --format labelme|coco` }))
}

const download = Command.make(
  "download",
  {
    datasetId: Args.text({ name: "DATASET_ID" }).pipe(
      Args.withDescription("Dataset id: downloads datasets/{id}/ from the external store (storage from the environment)"),
      Args.optional
    ),
    annotation: Options.file("annotation", { exists: "yes" }).pipe(
      Options.withDescription("Annotation data (LabelMe data_summary or COCO) naming the objects to fetch"),
      Options.optional
    ),
    format: choiceOption("format", ["labelme", "coco"]).pipe(
      Options.withDescription("Format of --annotation (default: detected)"),
      Options.optional
    ),
    all: Options.boolean("all").pipe(
      Options.withDescription("With DATASET_ID: every object under the prefix, not only the images the annotations reference")
    ),
    dest: Options.directory("dest").pipe(Options.withDescription("Destination directory")),
    concurrency: integerOption("concurrency").pipe(
      Options.withDescription("Objects fetched at the same time (default 32)"),
      Options.optional
    )
  },
  ({ all, annotation, concurrency, datasetId, dest, format }) =>
    Effect.gen(function*() {
      const terminal = yield* CliTerminal
      // The command line is checked before the environment is read: a usage error wins.
      if (Option.isSome(datasetId) === Option.isSome(annotation)) {
        return yield* new CliUsageError({ message: "download needs either a DATASET_ID or --annotation FILE (exactly one)" })
      }
      const options = {
        onProgress: progressPrinter(terminal),
        ...(Option.isSome(concurrency) ? { concurrency: yield* positiveInteger("concurrency", concurrency.value) } : {})
      }
      if (Option.isSome(annotation)) {
        const data = yield* readAnnotationFile(annotation.value)
        const resolved = Option.isSome(format) ? format.value : yield* detectAnnotationFormat(annotation.value, data)
        return yield* Effect.gen(function*() {
          const storage = yield* Storage
          yield* terminal.err(`downloading the objects named by ${annotation.value} (${resolved}) to ${dest}`)
          const report = yield* storage.downloadFromAnnotation(data, dest, resolved, options).pipe(
            Effect.ensuring(terminal.endProgress)
          )
          const labels = resolved === "labelme" ? `, ${report.labelCount} label files` : ""
          const written = Option.match(report.annotationFile, { onNone: () => "", onSome: (file) => `; annotations: ${file}` })
          yield* terminal.out(
            `downloaded ${report.files} files (${formatBytes(report.bytes)}): ${report.imageCount} images${labels} to ${dest}${written}`
          )
        }).pipe(Effect.provide(trainerEnvironment))
      }
      const id = Option.getOrThrow(datasetId)
      yield* Effect.gen(function*() {
        const storage = yield* Storage
        yield* terminal.err(`downloading dataset ${id}${all ? " (every object)" : ""} to ${dest}`)
        if (all) {
          const summary = yield* storage.downloadDataset(id, dest, options).pipe(Effect.ensuring(terminal.endProgress))
          yield* terminal.out(`downloaded ${summary.files} files (${formatBytes(summary.bytes)}) of dataset ${id} to ${dest}`)
          return
        }
        const report = yield* storage.downloadDatasetSelective(id, dest, options).pipe(Effect.ensuring(terminal.endProgress))
        yield* terminal.out(
          `downloaded ${report.files} files (${formatBytes(report.bytes)}) of dataset ${id} to ${dest}: ${report.imageCount} images; annotations: ${report.primaryAnnotationFile}`
        )
      }).pipe(Effect.provide(trainerEnvironment))
    })
).pipe(Command.withDescription("Download a dataset (by id) or the objects named by annotation data, with a progress bar"))

// cache -----------------------------------------------------------------------------------

const cacheEnvironment = Layer.provide(DatasetCache.layerConfig(DatasetCache.config), trainerEnvironment)

const cacheList = Command.make("list", {}, () =>
  Effect.gen(function*() {
    const terminal = yield* CliTerminal
    const cache = yield* DatasetCache
    yield* terminal.out(formatCacheEntries(cache.cacheDir, yield* cache.entries))
  }).pipe(Effect.provide(cacheEnvironment))).pipe(
    Command.withDescription("List the dataset cache (DATASET_CACHE_DIR): key, dataset, size, last accessed")
  )

const cachePrune = Command.make(
  "prune",
  {
    maxGb: Options.float("max-gb").pipe(
      Options.withDescription("Evict least recently used entries until the cache holds at most this many GiB (default DATASET_CACHE_MAX_GB)"),
      Options.optional
    )
  },
  ({ maxGb }) =>
    Effect.gen(function*() {
      const terminal = yield* CliTerminal
      if (Option.isSome(maxGb) && !(maxGb.value >= 0)) {
        return yield* new CliUsageError({ message: `--max-gb must be a number >= 0, got ${maxGb.value}` })
      }
      yield* Effect.gen(function*() {
        const cache = yield* DatasetCache
        const removed = yield* cache.prune(Option.isSome(maxGb) ? { maxBytes: Math.floor(maxGb.value * 1024 ** 3) } : {})
        const left = yield* cache.entries
        const total = formatBytes(left.reduce((sum, e) => sum + e.sizeBytes, 0))
        yield* terminal.out(
          removed.length === 0
            ? `nothing to evict; ${left.length} entries, ${total} in ${cache.cacheDir}`
            : `evicted ${removed.length} entries (${removed.join(", ")}); ${left.length} left, ${total} in ${cache.cacheDir}`
        )
      }).pipe(Effect.provide(cacheEnvironment))
    })
).pipe(Command.withDescription("Evict least recently used, unleased cache entries down to a size"))

const cache = Command.make("cache").pipe(
  Command.withDescription("Inspect or prune the local dataset cache"),
  Command.withSubcommands([cacheList, cachePrune])
)

// dev-backend -----------------------------------------------------------------------------

const devBackend = Command.make(
  "dev-backend",
  {
    port: integerOption("port").pipe(
      Options.withDescription("Port on 127.0.0.1 (0 picks a free one)"),
      Options.withDefault(8000)
    )
  },
  ({ port }) =>
    Effect.scoped(Effect.gen(function*() {
      const terminal = yield* CliTerminal
      if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
        return yield* new CliUsageError({ message: `--port must be an integer from 0 to 65535, got ${port}` })
      }
      const backend = yield* startDevBackend({
        port,
        onEvent: (event) => terminal.out(formatDevBackendEvent(event)),
        onRejected: (rejection) => terminal.out(formatDevBackendRejection(rejection))
      })
      yield* terminal.out(`dev backend listening on ${backend.url}  (CALLBACK_URL=${backend.url}; Ctrl-C to stop)`)
      yield* terminal.out(`dashboard: ${backend.dashboardUrl}  (open it in a browser to watch the jobs live)`)
      return yield* Effect.never.pipe(
        Effect.onInterrupt(() => Effect.flatMap(backend.summary, (summary) => terminal.out(formatDevBackendSummary(summary))))
      )
    }))
).pipe(Command.withDescription(
    "Run a local backend that validates every callback strictly, prints each event and serves a live dashboard"
  ))

// root ------------------------------------------------------------------------------------

const root = Command.make("trainer-sdk", {}, () =>
  Effect.fail(new CliUsageError({ message: "no command given; run trainer-sdk --help to list the commands" }))).pipe(
    Command.withDescription("Tools for trainer containers: dataset conversion and download, the dataset cache, a dev backend"),
    Command.withSubcommands([convert, validate, download, cache, devBackend])
  )

/** The CLI version shown by `--version`. */
export const trainerSdkCliVersion = "0.1.0"

const cli = Command.run(root, { name: "trainer-sdk", version: trainerSdkCliVersion })

const messageOf = (error: unknown): string =>
  ValidationError.isValidationError(error)
    ? "error" in error ? HelpDoc.toAnsiText(error.error) : "invalid command line"
    : typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? error.message
    : String(error)

const isUsageError = (error: unknown): boolean =>
  ValidationError.isValidationError(error) ||
  typeof error === "object" && error !== null && "_tag" in error && error._tag === "CliUsageError"

const commandNames = new Set(["convert", "validate", "download", "cache", "list", "prune", "dev-backend"])

// eslint-disable-next-line no-control-regex
const ansiCodes = /\u001b\[[0-9;]*[A-Za-z]/g

/**
 * `@effect/cli`'s help text as printed: a subcommand's usage line names the whole command
 * (`$ trainer-sdk cache list`, not `$ list`), and ANSI colours are dropped unless `colour`.
 */
const helpText = (argv: ReadonlyArray<string>, text: string, colour: boolean): string => {
  const path: Array<string> = []
  for (const arg of argv.slice(2)) {
    if (!commandNames.has(arg)) break
    path.push(arg)
  }
  const last = path[path.length - 1]
  const named = last === undefined
    ? text
    : text.replace(new RegExp(`^(\\$ )${last}(?=\\s|$)`, "gm"), `$1trainer-sdk ${path.join(" ")}`)
  return colour ? named : named.replace(ansiCodes, "")
}

/**
 * Runs the CLI on `argv` (`process.argv`: runtime and script first) and returns the exit
 * code: 0 on success, 1 when the command failed, 2 for a usage error. Every failure is
 * printed as one `error: ...` line on stderr; `@effect/cli`'s own multi-line parse reports
 * are replaced by that line (help and version output are kept).
 */
export const runTrainerSdkCli = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const terminal = yield* CliTerminal
    const console = yield* Effect.console
    // `@effect/cli` prints help, version and completions with `Console.log`: onto stdout
    // through the terminal, like every other line of the CLI.
    const helpOutput: Console.Console = {
      ...console,
      error: () => Effect.void,
      log: (...args) =>
        terminal.out(args.map((arg) => typeof arg === "string" ? helpText(argv, arg, terminal.colour) : String(arg)).join(" "))
    }
    return yield* cli(argv).pipe(
      Effect.withConsole(helpOutput),
      Effect.as(0),
      Effect.catchAllCause((cause) => {
        const failure = Cause.failureOption(cause)
        const [message, code] = Option.isSome(failure)
          ? [messageOf(failure.value), isUsageError(failure.value) ? 2 : 1]
          : [Cause.pretty(cause).split("\n")[0] ?? "unexpected failure", 1]
        return Effect.as(terminal.err(formatCliError(message)), code)
      })
    )
  })
