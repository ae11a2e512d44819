/**
 * Pure bookkeeping of the dataset cache: the metadata file's format (compatible with the
 * Python client's `.cache_metadata.json`), its conversion to typed entries, and the LRU
 * eviction plan.
 */
import { Either, Schema } from "effect"
import type { DatasetCacheEntry } from "../DatasetCache.js"

/** One entry as stored in `.cache_metadata.json` (snake_case, ISO timestamps). */
export const CacheEntryRecord = Schema.Struct({
  snapshot_id: Schema.String,
  dataset_id: Schema.String,
  dataset_version_hash: Schema.String,
  created_at: Schema.String,
  last_accessed: Schema.String,
  size_bytes: Schema.NonNegative
})
/** @see CacheEntryRecord */
export type CacheEntryRecord = typeof CacheEntryRecord.Type

/** The whole metadata file: cache key → entry record. */
export const CacheMetadataFile = Schema.Record({ key: Schema.String, value: CacheEntryRecord })
/** @see CacheMetadataFile */
export type CacheMetadataFile = typeof CacheMetadataFile.Type

const metadataJson = Schema.parseJson(CacheMetadataFile)
const recordJson = Schema.parseJson(CacheEntryRecord)

/** Parses the metadata file's text; an empty file is an empty cache. */
export const decodeCacheMetadata = (text: string): Either.Either<CacheMetadataFile, string> =>
  text.trim() === ""
    ? Either.right({})
    : Either.mapLeft(Schema.decodeUnknownEither(metadataJson)(text), (e) => e.message)

/** The metadata file's text (stable key order, pretty-printed like the Python client). */
export const encodeCacheMetadata = (metadata: CacheMetadataFile): string => {
  const sorted: Record<string, CacheEntryRecord> = {}
  for (const key of Object.keys(metadata).sort()) sorted[key] = metadata[key]!
  return `${JSON.stringify(sorted, null, 2)}\n`
}

/** Parses the record an entry's `.complete` marker holds (used to rebuild lost metadata). */
export const decodeEntryRecord = (text: string): Either.Either<CacheEntryRecord, string> =>
  Either.mapLeft(Schema.decodeUnknownEither(recordJson)(text), (e) => e.message)

const timeOf = (iso: string): number => {
  const ms = Date.parse(iso)
  return Number.isNaN(ms) ? 0 : ms
}

/** The typed view of one metadata record (an unreadable timestamp counts as the epoch). */
export const toDatasetCacheEntry = (key: string, record: CacheEntryRecord): DatasetCacheEntry => ({
  key,
  snapshotId: record.snapshot_id,
  datasetId: record.dataset_id,
  datasetVersionHash: record.dataset_version_hash,
  createdAt: new Date(timeOf(record.created_at)),
  lastAccessed: new Date(timeOf(record.last_accessed)),
  sizeBytes: record.size_bytes
})

/** Total recorded size of the cache in bytes. */
export const totalCacheBytes = (metadata: CacheMetadataFile): number =>
  Object.values(metadata).reduce((sum, record) => sum + record.size_bytes, 0)

/**
 * The entries to remove, least recently accessed first, so the recorded total drops to at
 * most `maxBytes`. Entries in `keep` (the one being returned, those with live leases) are
 * never planned, even when the limit cannot be reached without them; ties in access time
 * are broken by key so the plan is deterministic.
 */
export const planCacheEviction = (
  metadata: CacheMetadataFile,
  maxBytes: number,
  keep: ReadonlySet<string>
): ReadonlyArray<string> => {
  let total = totalCacheBytes(metadata)
  if (total <= maxBytes) return []
  const candidates = Object.keys(metadata)
    .filter((key) => !keep.has(key))
    .sort((a, b) => timeOf(metadata[a]!.last_accessed) - timeOf(metadata[b]!.last_accessed) || (a < b ? -1 : a > b ? 1 : 0))
  const plan: Array<string> = []
  for (const key of candidates) {
    if (total <= maxBytes) break
    plan.push(key)
    total -= metadata[key]!.size_bytes
  }
  return plan
}

/** An entry's manifest: every file's path relative to the entry and its size in bytes. */
export const EntryManifest = Schema.Struct({
  files: Schema.Array(Schema.Tuple(Schema.String, Schema.NonNegativeInt))
})
/** @see EntryManifest */
export type EntryManifest = typeof EntryManifest.Type

const manifestJson = Schema.parseJson(EntryManifest)

/** Parses a manifest file's text (untrusted: its paths still go through the name rule). */
export const decodeEntryManifest = (text: string): Either.Either<EntryManifest, string> =>
  Either.mapLeft(Schema.decodeUnknownEither(manifestJson)(text), (e) => e.message)

/** A manifest file's text, files sorted by path. */
export const encodeEntryManifest = (files: ReadonlyArray<readonly [string, number]>): string =>
  `${JSON.stringify({ files: [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) })}\n`
