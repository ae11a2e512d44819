/**
 * The S3 implementation of the object-store port on `@aws-sdk/client-s3`: path-style SigV4,
 * bodies piped straight from the socket to the file, multipart uploads with concurrent parts
 * read from the file a part at a time, and every SDK failure mapped into `StorageError`.
 *
 * Every request ends: each attempt has a deadline for its response (`S3_REQUEST_TIMEOUT`) and
 * an idle limit on its connection (`S3_IDLE_TIMEOUT`, bodies included), both enforced by
 * destroying the request, so the retry schedule, the only retry policy (the AWS SDK's own
 * retries are off), takes over. An interrupted or failed multipart upload is aborted on the
 * server before the effect ends.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompletedPart,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { Chunk, Config, Duration, Effect, Option, Redacted, Schedule, type Scope, Stream } from "effect"
import { createReadStream, createWriteStream } from "node:fs"
import { open, stat } from "node:fs/promises"
import * as http from "node:http"
import * as https from "node:https"
import type { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { StorageError, type StorageFailureReason } from "../Errors.js"
import type {
  GetObjectOptions,
  ListObjectsOptions,
  ObjectInfo,
  ObjectStore,
  PutObjectOptions,
  S3ClientForBucket,
  S3EndpointSettings,
  S3ObjectStoreOptions,
  S3Timeouts
} from "../ObjectStore.js"
import { field } from "./json.js"

/** The default timeouts: connect 10 s, request 60 s, idle 30 s. */
export const defaultS3Timeouts: S3Timeouts = {
  connect: Duration.seconds(10),
  request: Duration.seconds(60),
  idle: Duration.seconds(30)
}

/** The longest an `AbortMultipartUpload` may hold up an interruption (the shutdown budget's share). */
const abortBudget = Duration.seconds(5)

const positiveSeconds = (name: string, fallback: Duration.Duration): Config.Config<Duration.Duration> =>
  Config.number(name).pipe(
    Config.validate({ message: "expected a number of seconds greater than 0", validation: (s) => Number.isFinite(s) && s > 0 }),
    Config.map((s) => Duration.millis(Math.max(1, Math.round(s * 1000)))),
    Config.withDefault(fallback)
  )

/** `S3_CONNECT_TIMEOUT`, `S3_REQUEST_TIMEOUT`, `S3_IDLE_TIMEOUT` (seconds, > 0), each defaulting as in `defaultS3Timeouts`. */
export const s3TimeoutsConfig: Config.Config<S3Timeouts> = Config.all({
  connect: positiveSeconds("S3_CONNECT_TIMEOUT", defaultS3Timeouts.connect),
  request: positiveSeconds("S3_REQUEST_TIMEOUT", defaultS3Timeouts.request),
  idle: positiveSeconds("S3_IDLE_TIMEOUT", defaultS3Timeouts.idle)
})

/**
 * The client configuration the spec asks for: path-style, region, SigV4 credentials,
 * `requestChecksumCalculation` (no `aws-chunked` uploads by default), keep-alive agents so
 * that thousands of small GETs reuse their connections, and request limits that really
 * destroy the request (`throwOnRequestTimeout`; a socket idle timeout that also covers
 * bodies). The SDK's own retries are off: the store's retry schedule is the one policy.
 */
export const s3ClientConfig = (settings: S3EndpointSettings): S3ClientConfig => {
  const maxSockets = settings.maxSockets ?? 64
  const timeouts = settings.timeouts ?? defaultS3Timeouts
  return {
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: true,
    credentials: { accessKeyId: settings.accessKey, secretAccessKey: Redacted.value(settings.secretKey) },
    requestChecksumCalculation: settings.requestChecksumCalculation,
    maxAttempts: 1,
    // Resolve the middleware stack once per command class rather than per request (about
    // 0.3 ms of CPU per small GET measured). The cached stack keeps the first request's
    // bucket, so a client must only ever address one bucket: see `s3ClientsScoped`. Only
    // calls without per-call options use the cache: GETs pass no abort signal for that reason.
    cacheMiddleware: true,
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
      connectionTimeout: Duration.toMillis(timeouts.connect),
      requestTimeout: Duration.toMillis(timeouts.request),
      throwOnRequestTimeout: true,
      socketTimeout: Duration.toMillis(timeouts.idle)
    }
  }
}

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

/** The default retry of a store request: 4 attempts, exponential from 200 ms, jittered. */
export const defaultS3Retry: Schedule.Schedule<unknown, StorageError> = Schedule.exponential("200 millis").pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(3))
)


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

/** Whether a store request is worth another attempt. */
const isTransient = (error: StorageError): boolean => error.reason === "Transport" || error.reason === "Timeout"

const seconds = (d: Duration.Duration): string => `${Duration.toMillis(d) / 1000} s`

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
  const timeouts = options.timeouts ?? defaultS3Timeouts
  const retrySchedule = options.retry ?? defaultS3Retry
  const idleMillis = Duration.toMillis(timeouts.idle)

  const failure = (key: string) => (error: unknown) =>
    error instanceof StorageError
      ? error
      : new StorageError({ reason: classifyS3Failure(error), bucket, key, detail: describe(error), cause: error })

  /** The attempt deadline: no response within `timeouts.request` is a `Timeout` (the request is aborted). */
  const deadline = (key: string, what: string, limit: Duration.Duration = timeouts.request) =>
    Effect.timeoutFail({
      duration: limit,
      onTimeout: () =>
        new StorageError({
          reason: "Timeout",
          bucket,
          key,
          detail: `${what}: no response within ${seconds(limit)} (S3_REQUEST_TIMEOUT)`
        })
    })

  /** One request with an abort signal, its deadline, and the store's retry on transient failures. */
  const request = <A>(key: string, what: string, send: (signal: AbortSignal) => Promise<A>): Effect.Effect<A, StorageError> =>
    Effect.tryPromise({ try: send, catch: failure(key) }).pipe(
      deadline(key, what),
      Effect.retry({ schedule: retrySchedule, while: isTransient })
    )

  const head = (key: string): Effect.Effect<ObjectInfo, StorageError> =>
    request(key, "HEAD", (signal) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal }))
      .pipe(Effect.map((out) => ({ key, size: out.ContentLength ?? 0 })))

  /**
   * The GET's response (headers), within the attempt deadline. No per-call options, so the
   * client's cached middleware stack is used (see `cacheMiddleware`); a response that arrives
   * after an interruption or the deadline has its body destroyed, and the request handler's
   * own deadline (the same `request` timeout) destroys one that never answers.
   */
  const getResponse = (key: string): Effect.Effect<GetObjectCommandOutput, StorageError> =>
    Effect.async<GetObjectCommandOutput, StorageError>((resume, signal) => {
      client.send(new GetObjectCommand({ Bucket: bucket, Key: key })).then(
        (out) => {
          if (signal.aborted) (out.Body as Readable | undefined)?.destroy()
          else resume(Effect.succeed(out))
        },
        (error) => resume(Effect.fail(failure(key)(error)))
      )
    }).pipe(deadline(key, "GET"))

  /** Streams a body into `path` with an idle limit between chunks; the bytes written. */
  const bodyToFile = (key: string, body: Readable | undefined, path: string): Effect.Effect<number, StorageError> =>
    Effect.tryPromise({
      try: async (signal) => {
        const file = createWriteStream(path)
        let fileError: unknown
        file.once("error", (error) => (fileError = error))
        let idle: NodeJS.Timeout | undefined
        try {
          if (body === undefined) {
            await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => error ? reject(error) : resolve()))
          } else {
            idle = setTimeout(() =>
              body.destroy(Object.assign(
                new Error(`the body stalled: no byte for ${seconds(timeouts.idle)} (S3_IDLE_TIMEOUT)`),
                { name: "TimeoutError" }
              )), idleMillis)
            const timer = idle
            const piped = pipeline(body, file, { signal })
            body.on("data", () => timer.refresh())
            await piped
          }
        } catch (error) {
          if (fileError !== undefined) {
            throw new StorageError({
              reason: "LocalIO",
              bucket,
              key,
              detail: `cannot write ${path}: ${describe(fileError)}`,
              cause: fileError
            })
          }
          throw error
        } finally {
          clearTimeout(idle)
        }
        return file.bytesWritten
      },
      catch: failure(key)
    })

  const shortBody = (key: string, detail: string) => new StorageError({ reason: "Transport", bucket, key, detail })

  const getToFile = (key: string, path: string, get: GetObjectOptions = {}): Effect.Effect<number, StorageError> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(restore(getResponse(key)), (out) => {
        const body = out.Body as Readable | undefined
        return restore(bodyToFile(key, body, path)).pipe(
          Effect.ensuring(Effect.sync(() => body?.destroy())),
          Effect.map((written) => ({ written, response: out.ContentLength }))
        )
      })
    ).pipe(
      Effect.tap(({ response, written }) => checkLength(key, written, response, get.size)),
      Effect.map(({ written }) => written)
    )

  /**
   * A body is complete only when its bytes match both the response's `Content-Length` and
   * the size the listing gave; with neither known (a close-delimited body), a HEAD gives the
   * size. Otherwise the attempt failed (`Transport`, retried by the caller).
   */
  const checkLength = (key: string, written: number, response: number | undefined, listed: number | undefined) =>
    Effect.gen(function*() {
      if (response !== undefined && written !== response) {
        return yield* shortBody(key, `short body: received ${written} bytes, the response's Content-Length is ${response}`)
      }
      const expected = listed ?? (response === undefined ? (yield* head(key)).size : undefined)
      if (expected !== undefined && written !== expected) {
        return yield* shortBody(
          key,
          `short body: received ${written} bytes, the object has ${expected} (${listed === undefined ? "HEAD" : "listing"})`
        )
      }
    })

  /** Creates, fills and completes a multipart upload; aborted on the server when anything fails or interrupts it. */
  const multipartUpload = (key: string, path: string, size: number, contentType: string) =>
    Effect.gen(function*() {
      const checksummed = options.requestChecksumCalculation === "WHEN_SUPPORTED"
      const created = yield* request(key, "CreateMultipartUpload", (signal) =>
        client.send(
          new CreateMultipartUploadCommand({
            Bucket: bucket,
            Key: key,
            ContentType: contentType,
            ...(checksummed ? { ChecksumAlgorithm: "CRC32" } : {})
          }),
          { abortSignal: signal }
        ))
      const uploadId = created.UploadId
      if (uploadId === undefined) {
        return yield* new StorageError({ reason: "Transport", bucket, key, detail: "CreateMultipartUpload returned no UploadId" })
      }
      const abort = Effect.tryPromise({
        try: (signal) =>
          client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal: signal }),
        catch: failure(key)
      }).pipe(
        deadline(key, "AbortMultipartUpload", Duration.min(timeouts.request, abortBudget)),
        Effect.catchAll((error) => Effect.logWarning(`Multipart upload ${uploadId} of s3://${bucket}/${key} not aborted`, error.message))
      )
      const parts = yield* Effect.acquireUseRelease(
        Effect.tryPromise({ try: () => open(path, "r"), catch: failure(key) }),
        (handle) =>
          Effect.forEach(
            Array.from({ length: Math.ceil(size / partSize) }, (_, i) => i + 1),
            (partNumber) => {
              const offset = (partNumber - 1) * partSize
              const length = Math.min(partSize, size - offset)
              return request(key, `UploadPart ${partNumber}`, async (signal): Promise<CompletedPart> => {
                const data = Buffer.allocUnsafe(length)
                const { bytesRead } = await handle.read(data, 0, length, offset)
                if (bytesRead !== length) {
                  throw new StorageError({ reason: "LocalIO", bucket, key, detail: `${path} shrank while it was being uploaded` })
                }
                const out = await client.send(
                  new UploadPartCommand({
                    Bucket: bucket,
                    Key: key,
                    UploadId: uploadId,
                    PartNumber: partNumber,
                    Body: data,
                    ContentLength: length
                  }),
                  { abortSignal: signal }
                )
                if (out.ETag === undefined) throw new Error(`part ${partNumber}: no ETag in the UploadPart response`)
                return {
                  PartNumber: partNumber,
                  ETag: out.ETag,
                  ...(out.ChecksumCRC32 === undefined ? {} : { ChecksumCRC32: out.ChecksumCRC32 })
                }
              })
            },
            { concurrency: queueSize }
          ),
        (handle) => Effect.promise(() => handle.close())
      ).pipe(Effect.onError(() => abort))
      yield* request(key, "CompleteMultipartUpload", (signal) =>
        client.send(
          new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
          { abortSignal: signal }
        )).pipe(Effect.onError(() => abort))
    })

  const putFile = (key: string, path: string, put: PutObjectOptions = {}): Effect.Effect<ObjectInfo, StorageError> =>
    Effect.gen(function*() {
      const size = yield* Effect.tryPromise({ try: () => stat(path), catch: failure(key) }).pipe(Effect.map((s) => s.size))
      const contentType = put.contentType ?? "application/octet-stream"
      if (size <= multipartThreshold) {
        yield* request(key, "PUT", async (signal) => {
          const body = createReadStream(path)
          try {
            return await client.send(
              new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: size, ContentType: contentType }),
              { abortSignal: signal }
            )
          } finally {
            body.destroy()
          }
        })
      } else {
        yield* multipartUpload(key, path, size, contentType)
      }
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
    Stream.paginateChunkEffect({ token: undefined as string | undefined, page: 1 }, ({ page, token }) =>
      request(prefix, `ListObjectsV2 page ${page}`, (signal) =>
        client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ContinuationToken: token,
            ...(listing.recursive === false ? { Delimiter: "/" } : {})
          }),
          { abortSignal: signal }
        )).pipe(Effect.flatMap((out) => {
          const objects = Chunk.unsafeFromArray(
            (out.Contents ?? []).flatMap((o) => o.Key === undefined ? [] : [{ key: o.Key, size: o.Size ?? 0 }])
          )
          if (out.IsTruncated !== true) return Effect.succeed([objects, Option.none()] as const)
          const next = out.NextContinuationToken
          return next === undefined || next === ""
            ? Effect.fail(
              new StorageError({
                reason: "Integrity",
                bucket,
                key: prefix,
                detail: `listing page ${page} of prefix "${prefix}" is truncated (IsTruncated) but has no continuation token`
              })
            )
            : Effect.succeed([objects, Option.some({ token: next, page: page + 1 })] as const)
        })))

  return {
    bucket,
    head,
    getToFile,
    putFile,
    list,
    withBucket: (other) => makeS3ObjectStore(clients, other, options)
  }
}
