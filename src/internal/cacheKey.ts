/**
 * Pure naming rules of the dataset cache: the entry key derived from a dataset version
 * (dataset id and whole hash), and the names of the files the cache keeps next to its entries.
 */
import { Either } from "effect"
import { createHash } from "node:crypto"
import { CacheError } from "../Errors.js"

/** Length of a cache key: hex characters of a SHA-256 digest of the dataset id and the whole version hash. */
export const cacheKeyLength = 32

const hashPattern = /^[A-Za-z0-9_-]+$/
const keyPattern = /^[A-Za-z0-9_-]{1,64}$/

/**
 * The cache key of a dataset version: the first 32 hex characters of the SHA-256 of its
 * dataset id and its whole version hash, so two versions never share an entry however
 * alike their hashes are. An empty hash, or one holding anything but `[A-Za-z0-9_-]`, is an
 * `InvalidKey` error naming the value.
 */
export const cacheKeyOf = (datasetId: string, hash: string): Either.Either<string, CacheError> => {
  if (hash.trim() === "") {
    return Either.left(
      new CacheError({
        reason: "InvalidKey",
        detail: "the dataset version hash is empty (set DATASET_VERSION_HASH or pass datasetVersionHash)"
      })
    )
  }
  if (!hashPattern.test(hash)) {
    return Either.left(
      new CacheError({
        reason: "InvalidKey",
        key: hash,
        detail: `the dataset version hash ${JSON.stringify(hash)} may only hold letters, digits, "_" and "-"`
      })
    )
  }
  const digest = createHash("sha256").update(JSON.stringify([datasetId, hash])).digest("hex")
  return Either.right(digest.slice(0, cacheKeyLength))
}

/**
 * Checks a key given directly (e.g. to `remove`) or read from the cache directory (metadata
 * keys, entry names): 1 to 64 characters of `[A-Za-z0-9_-]`, so it names a directory right
 * inside the cache and nothing else.
 */
export const validateCacheKey = (key: string): Either.Either<string, CacheError> =>
  keyPattern.test(key)
    ? Either.right(key)
    : Either.left(
      new CacheError({
        reason: "InvalidKey",
        key,
        detail: `${JSON.stringify(key)} is not a cache key (1 to 64 letters, digits, "_" or "-")`
      })
    )

/** The metadata file inside the cache directory. */
export const metadataFileName = ".cache_metadata.json"
/** The marker that makes an entry complete (holds the entry's record: dataset id, full hash). */
export const completeMarkerName = ".complete"
/** The entry's manifest: relative path and size of every file, written before the marker. */
export const manifestFileName = ".manifest.json"
/** Directory holding the cross-process lock files. */
export const locksDirName = ".locks"
/** Directory holding one sub-directory of lease files per entry. */
export const leasesDirName = ".leases"
/** Prefix of the temporary directories downloads are written into. */
export const tempEntryPrefix = ".tmp-"
/** Lock name guarding the metadata file. */
export const metadataLockName = "metadata"

/** The temporary download directory name of an entry for one attempt. */
export const tempEntryName = (key: string, token: string): string => `${tempEntryPrefix}${key}-${token}`

/** Whether a name in the cache directory is a leftover temporary directory of `key`. */
export const isTempEntryOf = (key: string, name: string): boolean => name.startsWith(`${tempEntryPrefix}${key}-`)

/** Whether a file name is one of the annotation files the job's view receives a copy of. */
export const isAnnotationFileName = (name: string): boolean => name.startsWith("annotations") && name.endsWith(".json")
