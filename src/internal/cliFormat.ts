/**
 * What the `trainer-sdk` CLI prints, as pure functions of the services' results: the
 * conversion report, a validation outcome, the cache listing, the download progress bar
 * and the one-line error.
 */
import type { ConversionReport, DatasetValidation } from "../Converter.js"
import type { DownloadProgress } from "../Storage.js"
import type { DatasetCacheEntry } from "../DatasetCache.js"

/** A byte count for humans: `512 B`, `3.1 KiB`, `7.0 MiB`, `1.25 GiB`. */
export const formatBytes = (bytes: number): string => {
  if (bytes < 1024) return `${bytes} B`
  const units = ["KiB", "MiB", "GiB", "TiB"]
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${units[unit]}`
}

/** Paths relative to `root` when inside it, with `/` separators. */
const relativeTo = (root: string, path: string): string => {
  const base = root.endsWith("/") ? root : `${root}/`
  return path.startsWith(base) ? path.slice(base.length) : path
}

/** The conversion report as a few aligned lines. */
export const formatConversionReport = (datasetDir: string, from: string, report: ConversionReport): string => {
  const skipped = Object.entries(report.skipped).filter(([, n]) => n > 0)
  const splits = Object.entries(report.splits).map(([split, n]) => `${split} ${n}`).join(", ")
  const shown = report.outputs.slice(0, 8).map((path) => relativeTo(datasetDir, path))
  const more = report.outputs.length > shown.length ? `, and ${report.outputs.length - shown.length} more` : ""
  return [
    `converted ${report.images} images (${from} -> ${report.to}, ${report.taskType}) in ${datasetDir}`,
    `  objects  ${report.objects} (${report.negatives} images without objects)`,
    `  classes  ${report.classes.length}: ${report.classes.join(", ")}`,
    `  splits   ${splits}`,
    `  skipped  ${skipped.length === 0 ? "none" : skipped.map(([reason, n]) => `${reason} ${n}`).join(", ")}`,
    `  written  ${shown.join(", ")}${more}`,
    report.trainerInput.kind === "cocoAnnotations"
      ? `  train with  ${report.trainerInput.path}/instances_{split}.json`
      : `  train with  data=${report.trainerInput.path}${report.trainerInput.kind === "directory" ? " (a directory: Ultralytics takes a classification dataset as one)" : ""}`,
    `  image root  ${report.imageRoot}`,
    ...report.warnings.map((warning) => `  warning  ${warning}`)
  ].join("\n")
}

/** A validation outcome: a summary line, then every issue (or the class distribution), then the warnings. */
export const formatValidation = (datasetDir: string, validation: DatasetValidation): string => {
  const { stats } = validation
  const kind = validation.formats.length === 0 ? "" : `${validation.formats.map((f) => f.toUpperCase()).join(" and ")} `
  const counts = `${stats.total_images} images, ${stats.total_labels} labels, ${stats.classes} classes, ${stats.background_images} background images`
  const warnings = validation.warnings.map((warning) => `  warning  ${warning}`)
  if (!validation.valid) {
    return [
      `${datasetDir} is not a valid ${kind}dataset (${counts}); ${validation.issues.length} issue(s):`,
      ...validation.issues.map((issue) => `  - ${issue}`),
      ...warnings
    ].join("\n")
  }
  const distribution = Object.entries(stats.class_distribution).map(([name, n]) => `${name} ${n}`).join(", ")
  return [`${datasetDir} is a valid ${kind}dataset (${counts})`, `  labels per class: ${distribution || "none"}`, ...warnings].join("\n")
}

/** The cache listing as a table (key, dataset, size, last accessed), newest access first. */
export const formatCacheEntries = (cacheDir: string, entries: ReadonlyArray<DatasetCacheEntry>): string => {
  if (entries.length === 0) return `dataset cache ${cacheDir} is empty`
  const sorted = [...entries].sort((a, b) => b.lastAccessed.getTime() - a.lastAccessed.getTime())
  const rows = [
    ["KEY", "DATASET", "SNAPSHOT", "SIZE", "LAST ACCESSED"],
    ...sorted.map((e) => [
      e.key,
      e.datasetId || "-",
      e.snapshotId || "-",
      formatBytes(e.sizeBytes),
      e.lastAccessed.toISOString()
    ])
  ]
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  const lines = rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd())
  const total = entries.reduce((sum, e) => sum + e.sizeBytes, 0)
  return [...lines, `${entries.length} entries, ${formatBytes(total)} in ${cacheDir}`].join("\n")
}

/** A download progress bar: `[########------------]  40%  4/10 files  1.20 MiB / 3.00 MiB`. */
export const formatDownloadProgress = (progress: DownloadProgress, width = 24): string => {
  const ratio = progress.totalFiles === 0
    ? 1
    : progress.totalBytes > 0 && progress.bytes <= progress.totalBytes
    ? progress.bytes / progress.totalBytes
    : progress.files / progress.totalFiles
  const clamped = Math.min(1, Math.max(0, ratio))
  const filled = Math.round(clamped * width)
  const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`
  const percent = `${Math.floor(clamped * 100)}%`.padStart(4)
  return `${bar} ${percent}  ${progress.files}/${progress.totalFiles} files  ${formatBytes(progress.bytes)} / ${
    formatBytes(progress.totalBytes)
  }`
}

// eslint-disable-next-line no-control-regex
const ansi = /\u001b\[[0-9;]*[A-Za-z]/g

/** Any message as one line: ANSI codes removed, whitespace runs (newlines included) collapsed. */
export const oneLine = (text: string): string => text.replace(ansi, "").replace(/\s+/g, " ").trim()

/** The CLI's error line. */
export const formatCliError = (message: string): string => `error: ${oneLine(message) || "unknown failure"}`
