/**
 * The object-store port: the few operations the SDK needs on one bucket of one
 * S3-compatible endpoint (head, streamed get to a file, put from a file, paginated list),
 * with an S3 implementation (`@aws-sdk/client-s3`) and an in-memory twin for tests.
 *
 * @since 0.1.0
 */
import type { Effect, Stream } from "effect"
import type { StorageError } from "./Errors.js"

/** One stored object as seen by a listing or a HEAD. */
export interface ObjectInfo {
  readonly key: string
  /** Size in bytes. */
  readonly size: number
}

/** Options of `ObjectStore.putFile`. */
export interface PutObjectOptions {
  /** The object's `Content-Type`; `application/octet-stream` when absent. */
  readonly contentType?: string
}

/** Options of `ObjectStore.getToFile`. */
export interface GetObjectOptions {
  /**
   * The object's size as a listing or HEAD gave it: a body of any other length is a failed
   * attempt, even when it matches the response's own `Content-Length`.
   */
  readonly size?: number
}

/** Options of `ObjectStore.list`. */
export interface ListObjectsOptions {
  /**
   * `false` lists only the objects directly under the prefix (a `/`-delimited listing, one
   * cheap request however many objects lie deeper). Default `true`.
   */
  readonly recursive?: boolean
}

/** One bucket on one S3-compatible endpoint. Every failure is a `StorageError` naming bucket and key. */
export interface ObjectStore {
  /** The bucket this store reads and writes. */
  readonly bucket: string
  /** Size of one object; `NotFound` when it does not exist. */
  readonly head: (key: string) => Effect.Effect<ObjectInfo, StorageError>
  /**
   * One attempt at streaming one object into the file at `path` (created or truncated; the
   * parent must exist), never holding it whole in memory. The bytes written must match both
   * the response's length and `options.size` (or a HEAD when the response has no length):
   * a short body fails with `Transport`, a failure to write the file with `LocalIO` naming
   * the path. Returns the number of bytes written. On failure the file may hold a prefix of
   * the object: callers write to a temporary name and retry.
   */
  readonly getToFile: (key: string, path: string, options?: GetObjectOptions) => Effect.Effect<number, StorageError>
  /** Uploads the file at `path` as `key` and checks the stored size. */
  readonly putFile: (key: string, path: string, options?: PutObjectOptions) => Effect.Effect<ObjectInfo, StorageError>
  /**
   * Every object under `prefix`, page after page (listings are paginated, never cut at
   * 1,000); a page that says it is truncated but gives no continuation token fails with
   * `Integrity` naming the prefix.
   */
  readonly list: (prefix: string, options?: ListObjectsOptions) => Stream.Stream<ObjectInfo, StorageError>
  /** The same endpoint and credentials, another bucket (a URI names the bucket it means). */
  readonly withBucket: (bucket: string) => ObjectStore
}

export {
  type MemoryObjectStore,
  makeMemoryObjectStore
} from "./internal/memoryObjectStore.js"
export {
  defaultS3Retry,
  defaultS3Timeouts,
  makeS3ObjectStore,
  type S3ClientForBucket,
  s3ClientConfig,
  s3ClientsScoped,
  type S3EndpointSettings,
  type S3ObjectStoreOptions,
  type S3Timeouts,
  s3TimeoutsConfig
} from "./internal/s3ObjectStore.js"
