/**
 * The S3 implementation of the object-store port on `@aws-sdk/client-s3`: path-style SigV4,
 * bodies piped straight from the socket to the file, multipart uploads with concurrent parts
 * through `@aws-sdk/lib-storage`, and every SDK failure mapped into `StorageError`.
 */
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig
} from "@aws-sdk/client-s3"
import { Upload } from "@aws-sdk/lib-storage"
import { Chunk, Effect, Option, Redacted, type Scope, Stream } from "effect"
import { createReadStream, createWriteStream } from "node:fs"
import { stat } from "node:fs/promises"
import * as http from "node:http"
import * as https from "node:https"
import type { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { StorageError, type StorageFailureReason } from "../Errors.js"
import type { ListObjectsOptions, ObjectInfo, ObjectStore, PutObjectOptions } from "../ObjectStore.js"

/** What an S3 client needs to reach one endpoint. */
export interface S3EndpointSettings {
  readonly endpoint: string
  readonly accessKey: string
  readonly secretKey: Redacted.Redacted<string>
  readonly region: string
  readonly requestChecksumCalculation: "WHEN_REQUIRED" | "WHEN_SUPPORTED"
  /** Sockets kept per host (default 64: above the default download concurrency of 32). */
  readonly maxSockets?: number
}

/**
 * The client configuration the spec asks for: path-style, region, SigV4 credentials,
 * `requestChecksumCalculation` (no `aws-chunked` uploads by default), and keep-alive agents
 * so that thousands of small GETs reuse their connections.
 */
export const s3ClientConfig = (settings: S3EndpointSettings): S3ClientConfig => {
  const maxSockets = settings.maxSockets ?? 64
  return {
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: true,
    credentials: { accessKeyId: settings.accessKey, secretAccessKey: Redacted.value(settings.secretKey) },
    requestChecksumCalculation: settings.requestChecksumCalculation,
    // Resolve the middleware stack once per command class rather than per request (about
    // 0.3 ms of CPU per small GET measured). The cached stack keeps the first request's
    // bucket, so a client must only ever address one bucket: see `s3ClientsScoped`.
    cacheMiddleware: true,
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
      connectionTimeout: 10_000,
      requestTimeout: 120_000
    }
  }
}

/** The S3 client for a bucket. */
export type S3ClientForBucket = (bucket: string) => S3Client

/**
 * S3 clients for one endpoint, one per bucket (created on first use, sharing the config's
 * keep-alive agents), all destroyed (sockets closed) when the scope closes.
 */
export const s3ClientsScoped = (config: S3ClientConfig): Effect.Effect<S3ClientForBucket, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => new Map<string, S3Client>()),
    (clients) => Effect.sync(() => clients.forEach((client) => client.destroy()))
  ).pipe(Effect.map((clients) => (bucket: string) => {
    const existing = clients.get(bucket)
    if (existing) return existing
    const client = new S3Client(config)
    clients.set(bucket, client)
    return client
  }))

/** Options of the S3 store. */
export interface S3ObjectStoreOptions {
  /** Files larger than this go through multipart upload (default 16 MiB). */
  readonly multipartThreshold?: number
  /** Multipart part size (default 8 MiB; S3's minimum is 5 MiB). */
  readonly partSize?: number
  /** Parts uploaded at the same time (default 4); memory used is about `partSize * queueSize`. */
  readonly queueSize?: number
}

const field = (u: unknown, name: string): unknown =>
  typeof u === "object" && u !== null ? (u as Record<string, unknown>)[name] : undefined

const statusOf = (error: unknown): number | undefined => {
  const status = field(field(error, "$metadata"), "httpStatusCode")
  return typeof status === "number" ? status : undefined
}

/** Maps an SDK, network or local-file failure into the port's reasons. */
export const classifyS3Failure = (error: unknown): StorageFailureReason => {
  const name = field(error, "name")
  const code = field(error, "code")
  const status = statusOf(error)
  if (typeof field(error, "path") === "string" && typeof field(error, "syscall") === "string") return "LocalIO"
  if (name === "NoSuchKey" || name === "NotFound" || name === "NoSuchBucket" || status === 404) return "NotFound"
  if (
    name === "AccessDenied" || name === "InvalidAccessKeyId" || name === "SignatureDoesNotMatch" || status === 403 ||
    status === 401
  ) return "AccessDenied"
  if (name === "TimeoutError" || name === "RequestTimeout" || code === "ETIMEDOUT" || status === 408) return "Timeout"
  return "Transport"
}

const describe = (error: unknown): string => {
  const status = statusOf(error)
  const name = field(error, "name")
  const message = field(error, "message")
  return [status === undefined ? "" : `HTTP ${status}`, typeof name === "string" ? name : "", typeof message === "string" ? message : String(error)]
    .filter((s) => s !== "").join(" ")
}

/** Builds a store for `bucket` on the clients of one endpoint (`s3ClientsScoped`). */
export const makeS3ObjectStore = (
  clients: S3ClientForBucket,
  bucket: string,
  options: S3ObjectStoreOptions = {}
): ObjectStore => {
  const client = clients(bucket)
  const multipartThreshold = options.multipartThreshold ?? 16 * 1024 * 1024
  const partSize = options.partSize ?? 8 * 1024 * 1024
  const queueSize = options.queueSize ?? 4

  const failure = (key: string) => (error: unknown) =>
    new StorageError({ reason: classifyS3Failure(error), bucket, key, detail: describe(error), cause: error })

  const head = (key: string): Effect.Effect<ObjectInfo, StorageError> =>
    Effect.tryPromise({
      try: (signal) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal }),
      catch: failure(key)
    }).pipe(Effect.map((out) => ({ key, size: out.ContentLength ?? 0 })))

  const getToFile = (key: string, path: string): Effect.Effect<number, StorageError> =>
    Effect.tryPromise({
      try: async (signal) => {
        // No per-call options, so the client's cached middleware stack is used (see
        // `cacheMiddleware`); an interruption aborts through the body stream instead.
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
        const body = out.Body as Readable | undefined
        if (signal.aborted) {
          body?.destroy()
          throw signal.reason
        }
        const file = createWriteStream(path)
        if (body === undefined) {
          await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => error ? reject(error) : resolve()))
        } else {
          await pipeline(body, file, { signal })
        }
        const expected = out.ContentLength
        if (expected !== undefined && file.bytesWritten !== expected) {
          throw new StorageError({
            reason: "Integrity",
            bucket,
            key,
            detail: `received ${file.bytesWritten} bytes, the object has ${expected}`
          })
        }
        return file.bytesWritten
      },
      catch: (error) => error instanceof StorageError ? error : failure(key)(error)
    })

  const putFile = (key: string, path: string, put: PutObjectOptions = {}): Effect.Effect<ObjectInfo, StorageError> =>
    Effect.gen(function*() {
      const size = yield* Effect.tryPromise({ try: () => stat(path), catch: failure(key) }).pipe(Effect.map((s) => s.size))
      const contentType = put.contentType ?? "application/octet-stream"
      yield* Effect.tryPromise({
        try: async (signal) => {
          const body = createReadStream(path)
          try {
            if (size <= multipartThreshold) {
              await client.send(
                new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: size, ContentType: contentType }),
                { abortSignal: signal }
              )
            } else {
              const upload = new Upload({
                client,
                params: { Bucket: bucket, Key: key, Body: body, ContentType: contentType },
                partSize,
                queueSize,
                leavePartsOnError: false
              })
              signal.addEventListener("abort", () => void upload.abort(), { once: true })
              await upload.done()
            }
          } finally {
            body.destroy()
          }
        },
        catch: failure(key)
      })
      const stored = yield* head(key)
      if (stored.size !== size) {
        return yield* new StorageError({
          reason: "Integrity",
          bucket,
          key,
          detail: `uploaded ${size} bytes from ${path}, the store holds ${stored.size}`
        })
      }
      return stored
    })

  const list = (prefix: string, listing: ListObjectsOptions = {}): Stream.Stream<ObjectInfo, StorageError> =>
    Stream.paginateChunkEffect(undefined as string | undefined, (token) =>
      Effect.tryPromise({
        try: (signal) =>
          client.send(
            new ListObjectsV2Command({
              Bucket: bucket,
              Prefix: prefix,
              ContinuationToken: token,
              ...(listing.recursive === false ? { Delimiter: "/" } : {})
            }),
            { abortSignal: signal }
          ),
        catch: failure(prefix)
      }).pipe(Effect.map((out) =>
        [
          Chunk.unsafeFromArray(
            (out.Contents ?? []).flatMap((o) => o.Key === undefined ? [] : [{ key: o.Key, size: o.Size ?? 0 }])
          ),
          out.IsTruncated && out.NextContinuationToken ? Option.some(out.NextContinuationToken) : Option.none()
        ] as const
      )))

  return {
    bucket,
    head,
    getToFile,
    putFile,
    list,
    withBucket: (other) => makeS3ObjectStore(clients, other, options)
  }
}
