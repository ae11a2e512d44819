/**
 * Shared output of the benchmarks: a human-readable block and one machine-readable line
 * (`@@BENCH {json}`) that `bench/run.ts` gathers into `bench/RESULTS.md`.
 */
import * as os from "node:os"

/** One benchmark's outcome, measured in a single run. */
export interface BenchResult {
  /** Benchmark name, e.g. `download`. */
  readonly name: string
  /** The headline figure, e.g. `812 files/s (default concurrency 32)`. */
  readonly figure: string
  /** The comparison measured in the same run, e.g. `3.4x aws s3 cp (239 files/s)`. */
  readonly comparison: string
  /** The target from the issue, as text. */
  readonly target: string
  /** Whether the target was met in this run. */
  readonly met: boolean
  /** What limits the figure when not met, or other notes. */
  readonly notes?: string
}

/** The machine the benchmark ran on. */
export const machine = (): string =>
  `${os.cpus().length} cores, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.version}`

/** Prints the result for people and for `bench/run.ts`. */
export const report = (result: BenchResult): void => {
  console.log(`\n== ${result.name} (${machine()})`)
  console.log(`figure:     ${result.figure}`)
  console.log(`comparison: ${result.comparison}`)
  console.log(`target:     ${result.target} -> ${result.met ? "met" : "not met"}`)
  if (result.notes) console.log(`notes:      ${result.notes}`)
  console.log(`@@BENCH ${JSON.stringify({ ...result, machine: machine() })}`)
}

/** Reads `--name value` or `--name=value` from the command line as a number. */
export const numberFlag = (name: string, fallback: number): number => {
  const args = process.argv.slice(2)
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === `--${name}` && i + 1 < args.length) return Number(args[i + 1])
    if (arg.startsWith(`--${name}=`)) return Number(arg.slice(name.length + 3))
  }
  return fallback
}

/** Median of a non-empty list of numbers. */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** The p-th percentile (0..100) of a non-empty list, nearest-rank. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
