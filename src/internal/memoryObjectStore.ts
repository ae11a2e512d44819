/**
 * The in-memory twin of an S3 bucket, for tests: objects live in a `Map`, files are read and
 * written through `FileSystem`, listings are paginated like S3's (1,000 keys a page by
 * default), and tests can seed, inspect, count GETs and make chosen keys fail.
 */
import { FileSystem } from "@effect/platform"
import { Chunk, Effect, Option, Stream } from "effect"
import { StorageError, type StorageFailureReason } from "../Errors.js"
import type {
  GetObjectOptions,
  ListObjectsOptions,
  MemoryObjectStore,
  MemoryObjectStoreOptions,
  ObjectInfo,
  PutObjectOptions
} from "../ObjectStore.js"

/** An injected failure: the reason, and how many more GETs/PUTs it applies to. */
interface InjectedFailure {
  readonly reason: StorageFailureReason
  remaining: number
}

interface StoredObject {
  readonly bytes: Uint8Array
  readonly contentType: string
}

interface BucketState {
  readonly objects: Map<string, StoredObject>
  readonly gets: Map<string, number>
  readonly failures: Map<string, InjectedFailure>
  listPages: number
}

const emptyBucket = (): BucketState => ({ objects: new Map(), gets: new Map(), failures: new Map(), listPages: 0 })

/** Creates an in-memory endpoint and returns its store for `bucket`. */
export const makeMemoryObjectStore = (
  bucket: string,
  options: MemoryObjectStoreOptions = {}
): Effect.Effect<MemoryObjectStore, never, FileSystem.FileSystem> =>
  Effect.map(FileSystem.FileSystem, (fs) => {
    const pageSize = options.pageSize ?? 1000
    const buckets = new Map<string, BucketState>()
    const stores = new Map<string, MemoryObjectStore>()
    const encoder = new TextEncoder()

    const storeFor = (name: string): MemoryObjectStore => {
      const existing = stores.get(name)
      if (existing) return existing
      const state = buckets.get(name) ?? emptyBucket()
      buckets.set(name, state)

      const fail = (key: string, reason: StorageFailureReason, detail: string) =>
        new StorageError({ reason, bucket: name, key, detail })

      /** Consumes one injected failure for `key`, if any. */
      const injected = (key: string): Option.Option<StorageFailureReason> => {
        const failure = state.failures.get(key)
        if (!failure || failure.remaining <= 0) return Option.none()
        failure.remaining -= 1
        return Option.some(failure.reason)
      }

      const localIO = (key: string, path: string) => (cause: unknown) =>
        new StorageError({ reason: "LocalIO", bucket: name, key, detail: `cannot access ${path}`, cause })

      const head = (key: string): Effect.Effect<ObjectInfo, StorageError> =>
        Effect.suspend(() => {
          const object = state.objects.get(key)
          return object
            ? Effect.succeed({ key, size: object.bytes.length })
            : Effect.fail(fail(key, "NotFound", "no such key"))
        })

      const getToFile = (key: string, path: string, get: GetObjectOptions = {}): Effect.Effect<number, StorageError> =>
        Effect.suspend(() => {
          state.gets.set(key, (state.gets.get(key) ?? 0) + 1)
          const object = state.objects.get(key)
          const failure = injected(key)
          if (Option.isSome(failure)) {
            const partial = object ? object.bytes.subarray(0, Math.floor(object.bytes.length / 2)) : new Uint8Array()
            return fs.writeFile(path, partial).pipe(
              Effect.mapError(localIO(key, path)),
              Effect.zipRight(Effect.fail(fail(key, failure.value, "injected failure")))
            )
          }
          if (!object) return Effect.fail(fail(key, "NotFound", "no such key"))
          return fs.writeFile(path, object.bytes).pipe(
            Effect.mapError(localIO(key, path)),
            Effect.zipRight(
              get.size === undefined || get.size === object.bytes.length
                ? Effect.succeed(object.bytes.length)
                : Effect.fail(
                  fail(key, "Transport", `short body: received ${object.bytes.length} bytes, the object has ${get.size} (listing)`)
                )
            )
          )
        })

      const putFile = (key: string, path: string, put: PutObjectOptions = {}): Effect.Effect<ObjectInfo, StorageError> =>
        Effect.suspend(() => {
          const failure = injected(key)
          if (Option.isSome(failure)) return Effect.fail(fail(key, failure.value, "injected failure"))
          return fs.readFile(path).pipe(
            Effect.mapError(localIO(key, path)),
            Effect.map((bytes) => {
              state.objects.set(key, { bytes, contentType: put.contentType ?? "application/octet-stream" })
              return { key, size: bytes.length }
            })
          )
        })

      const list = (prefix: string, listing: ListObjectsOptions = {}): Stream.Stream<ObjectInfo, StorageError> =>
        Stream.paginateChunkEffect(undefined as string | undefined, (after) =>
          Effect.sync(() => {
            state.listPages += 1
            const keys = [...state.objects.keys()].filter((k) =>
              k.startsWith(prefix) && (after === undefined || k > after) &&
              (listing.recursive !== false || !k.slice(prefix.length).includes("/"))
            )
              .sort()
            const page = keys.slice(0, pageSize)
            const infos = page.map((key) => ({ key, size: state.objects.get(key)!.bytes.length }))
            return [
              Chunk.unsafeFromArray(infos),
              keys.length > pageSize ? Option.some(page[page.length - 1]) : Option.none()
            ] as const
          }))

      const store: MemoryObjectStore = {
        bucket: name,
        head,
        getToFile,
        putFile,
        list,
        withBucket: storeFor,
        seed: (key, bytes, contentType = "application/octet-stream") => {
          state.objects.set(key, { bytes: typeof bytes === "string" ? encoder.encode(bytes) : bytes, contentType })
        },
        keys: () => [...state.objects.keys()].sort(),
        read: (key) => state.objects.get(key)?.bytes,
        contentTypeOf: (key) => state.objects.get(key)?.contentType,
        getCount: (key) => state.gets.get(key) ?? 0,
        listPageCount: () => state.listPages,
        failOn: (key, reason, times = Number.POSITIVE_INFINITY) => {
          state.failures.set(key, { reason, remaining: times })
        },
        clearFailures: () => state.failures.clear()
      }
      stores.set(name, store)
      return store
    }

    return storeFor(bucket)
  })
