/**
 * Pure naming rules of the dataset cache: the entry key derived from a dataset version
 * hash, and the names of the files the cache keeps next to its entries.
 */
import { Either } from "effect"
import { CacheError } from "../Errors.js"

/** Length of a cache key: the first 16 characters of the dataset version hash. */
export const cacheKeyLength = 16

const hashPattern = /^[A-Za-z0-9_-]+$/
const keyPattern = /^[A-Za-z0-9_-]{1,16}$/

/**
 * The cache key of a dataset version: the first 16 characters of its hash. An empty hash,
 * or one holding anything but `[A-Za-z0-9_-]` (a path separator, `..`, whitespace), is an
 * `InvalidKey` error naming the value, never a key that could escape the cache directory.
 */
export const cacheKeyFromHash = (hash: string): Either.Either<string, CacheError> => {
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
  return Either.right(hash.slice(0, cacheKeyLength))
}

/** Checks a key given directly (e.g. to `remove`): 1 to 16 characters of `[A-Za-z0-9_-]`. */
export const validateCacheKey = (key: string): Either.Either<string, CacheError> =>
  keyPattern.test(key)
    ? Either.right(key)
    : Either.left(
      new CacheError({
        reason: "InvalidKey",
        key,
        detail: `${JSON.stringify(key)} is not a cache key (1 to 16 letters, digits, "_" or "-")`
      })
    )

/** The metadata file inside the cache directory. */
export const metadataFileName = ".cache_metadata.json"
/** The marker that makes an entry complete. */
export const completeMarkerName = ".complete"
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
