/**
 * The object-store port: the few operations the SDK needs on one bucket of one
 * S3-compatible endpoint (head, streamed get to a file, put from a file, paginated list),
 * with an S3 implementation (`@aws-sdk/client-s3`) and an in-memory twin for tests.
 *
 * @since 0.1.0
 */
import type { S3Client } from "@aws-sdk/client-s3"
import type { Duration, Effect, Redacted, Schedule, Stream } from "effect"
import type { StorageError, StorageFailureReason } from "./Errors.js"

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

/** An `ObjectStore` held in memory, with test controls (all synchronous). */
export interface MemoryObjectStore extends ObjectStore {
  /** Stores an object directly (no counters touched). */
  readonly seed: (key: string, bytes: Uint8Array | string, contentType?: string) => void
  /** Every key in the bucket, sorted. */
  readonly keys: () => ReadonlyArray<string>
  /** An object's bytes, `undefined` when absent. */
  readonly read: (key: string) => Uint8Array | undefined
  /** An object's content type, `undefined` when absent. */
  readonly contentTypeOf: (key: string) => string | undefined
  /** How many GETs (`getToFile`) were attempted for `key`, failed ones included. */
  readonly getCount: (key: string) => number
  /** How many listing pages were served. */
  readonly listPageCount: () => number
  /**
   * Makes the next `times` GETs and PUTs of `key` fail with `reason` (default: always).
   * A failing GET first writes half the object to the target file, like a broken stream.
   */
  readonly failOn: (key: string, reason: StorageFailureReason, times?: number) => void
  /** Removes every injected failure. */
  readonly clearFailures: () => void
  /** The twin of another bucket on the same in-memory endpoint. */
  readonly withBucket: (bucket: string) => MemoryObjectStore
}

/** Options of the in-memory store. */
export interface MemoryObjectStoreOptions {
  /** Keys per listing page (S3's maximum, 1,000, by default). */
  readonly pageSize?: number
}

/** How long one S3 request may take; see the README's "Storage timeouts". */
export interface S3Timeouts {
  /** Establishing a TCP connection (`S3_CONNECT_TIMEOUT`, default 10 s). */
  readonly connect: Duration.Duration
  /**
   * One attempt of one request, from sending it (an upload's body included: at most one part
   * or one file below the multipart threshold) until its response arrives
   * (`S3_REQUEST_TIMEOUT`, default 60 s). A download's body is bounded by `idle` instead.
   */
  readonly request: Duration.Duration
  /** No byte sent or received on an attempt's connection, bodies included (`S3_IDLE_TIMEOUT`, default 30 s). */
  readonly idle: Duration.Duration
}

/** What an S3 client needs to reach one endpoint. */
export interface S3EndpointSettings {
  readonly endpoint: string
  readonly accessKey: string
  readonly secretKey: Redacted.Redacted<string>
  readonly region: string
  readonly requestChecksumCalculation: "WHEN_REQUIRED" | "WHEN_SUPPORTED"
  /** Sockets kept per host (default 64: above the default download concurrency of 32). */
  readonly maxSockets?: number
  /** Connection, request and idle limits (default `defaultS3Timeouts`). */
  readonly timeouts?: S3Timeouts
}

/** The S3 client for a bucket. */
export type S3ClientForBucket = (bucket: string) => S3Client

/** Options of the S3 store. */
export interface S3ObjectStoreOptions {
  /** Files larger than this go through multipart upload (default 16 MiB). */
  readonly multipartThreshold?: number
  /** Multipart part size (default 8 MiB; S3's minimum is 5 MiB). */
  readonly partSize?: number
  /** Parts uploaded at the same time (default 4); memory used is about `partSize * queueSize`. */
  readonly queueSize?: number
  /** The deadlines of each attempt (default `defaultS3Timeouts`; give the client the same, see `s3ClientConfig`). */
  readonly timeouts?: S3Timeouts
  /**
   * Retry of every request but `getToFile` (whose caller retries whole downloads), on
   * transient failures (`Transport`, `Timeout`). Default: 4 attempts, exponential from
   * 200 ms, jittered.
   */
  readonly retry?: Schedule.Schedule<unknown, StorageError>
  /** The checksum setting of the client (multipart uploads declare it; default `WHEN_REQUIRED`). */
  readonly requestChecksumCalculation?: "WHEN_REQUIRED" | "WHEN_SUPPORTED"
}

export { makeMemoryObjectStore } from "./internal/memoryObjectStore.js"
export {
  defaultS3Retry,
  defaultS3Timeouts,
  makeS3ObjectStore,
  s3ClientConfig,
  s3ClientsScoped,
  s3TimeoutsConfig
} from "./internal/s3ObjectStore.js"
