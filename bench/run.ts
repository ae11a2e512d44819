/**
 * Runs every benchmark under `bench/` (each in its own process, one after another so they
 * don't share the two cores), gathers their `@@BENCH` lines and writes `bench/RESULTS.md`.
 *
 * Usage: `npm run bench [-- name ...]` (names filter the benchmarks, e.g. `download cache`).
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type BenchResult, machine } from "./lib/report.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const only = process.argv.slice(2).filter((a) => !a.startsWith("-"))
const benches = fs.readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts")
  .filter((f) => only.length === 0 || only.some((name) => f.startsWith(name)))
  .sort()

interface Outcome {
  readonly file: string
  readonly results: ReadonlyArray<BenchResult>
  readonly exitCode: number | null
  readonly seconds: number
}

const runOne = (file: string): Promise<Outcome> =>
  new Promise((resolve) => {
    const started = Date.now()
    const results: Array<BenchResult> = []
    const child = spawn(process.execPath, ["--openssl-legacy-provider", "--import", "tsx", path.join(here, file)], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let pending = ""
    child.stdout.on("data", (chunk: Buffer) => {
      process.stdout.write(chunk)
      pending += chunk.toString("utf8")
      const lines = pending.split("\n")
      pending = lines.pop() ?? ""
      for (const line of lines) {
        if (line.startsWith("@@BENCH ")) results.push(JSON.parse(line.slice(8)) as BenchResult)
      }
    })
    child.on("close", (exitCode) => resolve({ file, results, exitCode, seconds: (Date.now() - started) / 1000 }))
  })

const outcomes: Array<Outcome> = []
for (const file of benches) {
  console.log(`\n### ${file}`)
  outcomes.push(await runOne(file))
}

const escape = (s: string) => s.replace(/\|/g, "\\|")
const lines = [
  "# Benchmark results",
  "",
  `Written by \`npm run bench\` on ${new Date().toISOString()} — ${machine()}.`,
  "Each figure and its comparison were measured in the same run; targets are the issues' own.",
  "",
  "| benchmark | figure | comparison (same run) | target | status | notes |",
  "|---|---|---|---|---|---|"
]
for (const outcome of outcomes) {
  if (outcome.results.length === 0) {
    lines.push(`| ${outcome.file} | (no result: exit code ${outcome.exitCode}) | | | not met | the benchmark did not finish |`)
  }
  for (const r of outcome.results) {
    lines.push(
      `| ${escape(r.name)} | ${escape(r.figure)} | ${escape(r.comparison)} | ${escape(r.target)} | ${r.met ? "met" : "not met"} | ${escape(r.notes ?? "")} |`
    )
  }
}
lines.push("", "Run times: " + outcomes.map((o) => `${o.file} ${o.seconds.toFixed(1)} s`).join(", "), "")
const target = path.join(here, only.length === 0 ? "RESULTS.md" : "RESULTS.partial.md")
fs.writeFileSync(target, lines.join("\n"))
console.log(`\nwrote ${path.relative(process.cwd(), target)}`)
