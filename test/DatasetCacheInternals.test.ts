import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Either, Exit, FastCheck, Fiber, Option, Ref, Scope } from "effect"
import { cacheKeyOf, validateCacheKey } from "../src/internal/cacheKey.js"
import { type CacheHolder, isHolderStale, makeCacheCoordinator, parseCacheHolder } from "../src/internal/cacheLock.js"
import {
  type CacheMetadataFile,
  decodeCacheMetadata,
  encodeCacheMetadata,
  planCacheEviction,
  totalCacheBytes
} from "../src/internal/cacheMetadata.js"

const record = (lastAccessed: string, size: number) => ({
  snapshot_id: "s",
  dataset_id: "d",
  dataset_version_hash: "h",
  created_at: "2026-01-01T00:00:00.000Z",
  last_accessed: lastAccessed,
  size_bytes: size
})

describe("cache keys", () => {
  it("identifies the whole version: dataset id and every character of the hash", () => {
    const key = Either.getOrThrow(cacheKeyOf("ds", "0123456789abcdef0123"))
    expect(key).toMatch(/^[0-9a-f]{32}$/)
    assert.deepStrictEqual(cacheKeyOf("ds", "0123456789abcdef0123"), Either.right(key))
    // Versions sharing a 16-character prefix (the old key) and one hash under two datasets differ.
    expect(Either.getOrThrow(cacheKeyOf("project7", "project7-dataset-v1")))
      .not.toBe(Either.getOrThrow(cacheKeyOf("project7", "project7-dataset-v2")))
    expect(Either.getOrThrow(cacheKeyOf("a", "same-hash"))).not.toBe(Either.getOrThrow(cacheKeyOf("b", "same-hash")))
  })

  it("rejects an empty hash with a message naming DATASET_VERSION_HASH", () => {
    const result = cacheKeyOf("ds", "  ")
    assert(Either.isLeft(result))
    expect(result.left.reason).toBe("InvalidKey")
    expect(result.left.message).toContain("DATASET_VERSION_HASH")
  })

  it("rejects separators, dots and other characters, naming the value", () => {
    for (const bad of ["../etc", "a/b", "a\\b", "..", "abc def", "x.y", "ab\u0000"]) {
      const result = cacheKeyOf("ds", bad)
      assert(Either.isLeft(result), bad)
      expect(result.left.message).toContain(JSON.stringify(bad))
    }
    assert(Either.isLeft(validateCacheKey("0".repeat(65))))
    for (const bad of [".locks", "x/../../victim", "..", "", "a b"]) assert(Either.isLeft(validateCacheKey(bad)), bad)
    assert(Either.isRight(validateCacheKey("0123456789abcdef")))
  })

  it.prop("every accepted hash yields a valid key", [FastCheck.string({ maxLength: 40 }), FastCheck.string()], ([hash, id]) => {
    const result = cacheKeyOf(id, hash)
    if (Either.isRight(result)) assert(Either.isRight(validateCacheKey(result.right)))
    else expect(/^[A-Za-z0-9_-]+$/.test(hash)).toBe(false)
  })
})

describe("metadata", () => {
  it("round-trips the file format and rejects a malformed file", () => {
    const metadata: CacheMetadataFile = { b: record("2026-01-02T00:00:00.000Z", 5), a: record("2026-01-01T00:00:00.000Z", 7) }
    const text = encodeCacheMetadata(metadata)
    expect(text.indexOf("\"a\"")).toBeLessThan(text.indexOf("\"b\""))
    assert.deepStrictEqual(decodeCacheMetadata(text), Either.right(metadata))
    assert.deepStrictEqual(decodeCacheMetadata(""), Either.right({}))
    assert(Either.isLeft(decodeCacheMetadata("{\"a\": {\"size_bytes\": 1}}")))
    assert(Either.isLeft(decodeCacheMetadata("{not json")))
    expect(totalCacheBytes(metadata)).toBe(12)
  })

  it("plans eviction least recently accessed first, down to the limit, skipping kept entries", () => {
    const metadata: CacheMetadataFile = {
      old: record("2026-01-01T00:00:00.000Z", 40),
      mid: record("2026-01-02T00:00:00.000Z", 40),
      new: record("2026-01-03T00:00:00.000Z", 40)
    }
    assert.deepStrictEqual(planCacheEviction(metadata, 120, new Set()), [])
    assert.deepStrictEqual(planCacheEviction(metadata, 80, new Set()), ["old"])
    assert.deepStrictEqual(planCacheEviction(metadata, 50, new Set()), ["old", "mid"])
    assert.deepStrictEqual(planCacheEviction(metadata, 50, new Set(["old"])), ["mid", "new"])
    assert.deepStrictEqual(planCacheEviction(metadata, 0, new Set(["new"])), ["old", "mid"])
  })

  it.prop(
    "an eviction plan never names a kept entry and reaches the limit whenever the kept entries allow it",
    [
      FastCheck.array(FastCheck.tuple(FastCheck.integer({ min: 0, max: 1e6 }), FastCheck.integer({ min: 0, max: 100 }), FastCheck.boolean()), {
        maxLength: 12
      }),
      FastCheck.integer({ min: 0, max: 600 })
    ],
    ([rows, limit]) => {
      const metadata: Record<string, ReturnType<typeof record>> = {}
      const keep = new Set<string>()
      rows.forEach(([t, size, kept], i) => {
        metadata[`k${i}`] = record(new Date(t * 1000).toISOString(), size)
        if (kept) keep.add(`k${i}`)
      })
      const plan = planCacheEviction(metadata, limit, keep)
      expect(plan.some((key) => keep.has(key))).toBe(false)
      const left = totalCacheBytes(metadata) - plan.reduce((sum, key) => sum + metadata[key]!.size_bytes, 0)
      const keptBytes = [...keep].reduce((sum, key) => sum + metadata[key]!.size_bytes, 0)
      if (keptBytes <= limit) expect(left).toBeLessThanOrEqual(Math.max(limit, 0))
      const times = plan.map((key) => Date.parse(metadata[key]!.last_accessed))
      expect([...times].sort((a, b) => a - b)).toEqual(times)
    }
  )
})

describe("holder liveness", () => {
  const local = { host: "node-a/pid:[1]", pid: 100, isPidAlive: (pid: number) => pid === 100 || pid === 200 }
  const holder = (host: string, pid: number): CacheHolder => ({ token: "t", pid, host, since: "" })

  it("treats a file not refreshed within the threshold as stale, whoever wrote it", () => {
    expect(isHolderStale({ nowMs: 10_000, mtimeMs: 9_000, staleAfterMs: 5_000, holder: holder("other/pid:[9]", 1), local })).toBe(false)
    expect(isHolderStale({ nowMs: 10_000, mtimeMs: 4_000, staleAfterMs: 5_000, holder: holder("other/pid:[9]", 1), local })).toBe(true)
    expect(isHolderStale({ nowMs: 10_000, mtimeMs: 4_000, staleAfterMs: 5_000, holder: undefined, local })).toBe(true)
  })

  it("trusts a dead PID only from the same host and PID namespace", () => {
    expect(isHolderStale({ nowMs: 10_000, mtimeMs: 10_000, staleAfterMs: 5_000, holder: holder(local.host, 300), local })).toBe(true)
    expect(isHolderStale({ nowMs: 10_000, mtimeMs: 10_000, staleAfterMs: 5_000, holder: holder(local.host, 200), local })).toBe(false)
    expect(isHolderStale({ nowMs: 10_000, mtimeMs: 10_000, staleAfterMs: 5_000, holder: holder("node-a/pid:[2]", 300), local })).toBe(false)
  })

  it("never trusts a PID when the PID namespace is unknown (only the heartbeat counts)", () => {
    const unknown = { ...local, host: "node-a/" }
    expect(isHolderStale({ nowMs: 10_000, mtimeMs: 10_000, staleAfterMs: 5_000, holder: holder("node-a/", 300), local: unknown })).toBe(false)
    expect(isHolderStale({ nowMs: 10_000, mtimeMs: 4_000, staleAfterMs: 5_000, holder: holder("node-a/", 300), local: unknown })).toBe(true)
  })

  it("parses holder files and ignores partial or foreign ones", () => {
    assert.deepStrictEqual(parseCacheHolder(JSON.stringify(holder("h", 3))), holder("h", 3))
    expect(parseCacheHolder("")).toBeUndefined()
    expect(parseCacheHolder("{\"pid\": 3}")).toBeUndefined()
  })
})

const coordinatorIn = (dir: string, lockTimeout: Duration.DurationInput = "5 seconds", staleAfter: Duration.DurationInput = "2 seconds") =>
  makeCacheCoordinator(dir, {
    staleAfter: Duration.decode(staleAfter),
    heartbeatEvery: Duration.millis(50),
    pollEvery: Duration.millis(20),
    lockTimeout: Duration.decode(lockTimeout)
  })

const foreignHolder = (pid: number) => JSON.stringify({ token: "foreign", pid, host: "another-pod/pid:[42]", since: "" })

describe("locks and leases", () => {
  it.scopedLive("a fresh lock held elsewhere blocks; a stale one is broken", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const dir = yield* fs.makeTempDirectoryScoped()
      const coordinator = yield* coordinatorIn(dir)
      const lockFile = path.join(dir, ".locks", "k.lock")
      yield* fs.makeDirectory(path.join(dir, ".locks"), { recursive: true })
      yield* fs.writeFileString(lockFile, foreignHolder(1))
      assert.deepStrictEqual(yield* coordinator.tryWithLock("k", Effect.succeed(1)), Option.none())
      const old = new Date(Date.now() - 10_000)
      yield* fs.utimes(lockFile, old, old)
      assert.deepStrictEqual(yield* coordinator.tryWithLock("k", Effect.succeed(2)), Option.some(2))
      expect(yield* fs.exists(lockFile)).toBe(false)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("withLock waits for the holder and times out naming it", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const coordinator = yield* coordinatorIn(dir)
      const inside = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const critical = Effect.gen(function*() {
        const n = yield* Ref.updateAndGet(inside, (x) => x + 1)
        yield* Ref.update(peak, (p) => Math.max(p, n))
        yield* Effect.sleep("30 millis")
        yield* Ref.update(inside, (x) => x - 1)
      })
      yield* Effect.forEach([1, 2, 3, 4], () => coordinator.withLock("k", critical), { concurrency: "unbounded", discard: true })
      expect(yield* Ref.get(peak)).toBe(1)

      const held = yield* Deferred.make<void>()
      const holder = yield* coordinator.withLock("k", Effect.zipRight(Deferred.succeed(held, undefined), Effect.never)).pipe(Effect.fork)
      yield* Deferred.await(held)
      const quick = yield* coordinatorIn(dir, "200 millis", "30 seconds")
      const exit = yield* Effect.exit(quick.withLock("k", Effect.void))
      assert(Exit.isFailure(exit))
      expect(String(exit.cause)).toContain(`pid ${process.pid}`)
      yield* Fiber.interrupt(holder)
      assert.deepStrictEqual(yield* quick.tryWithLock("k", Effect.succeed("free")), Option.some("free"))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("leases stay live through the heartbeat, stale ones are dropped, and scope close removes them", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const dir = yield* fs.makeTempDirectoryScoped()
      const scope = yield* Scope.make()
      const coordinator = yield* coordinatorIn(dir).pipe(Scope.extend(scope))
      yield* coordinator.takeLease("k")
      yield* coordinator.takeLease("k")
      expect(yield* fs.readDirectory(path.join(dir, ".leases", "k"))).toHaveLength(1)
      // Longer than the stale threshold: only the heartbeat keeps the lease live.
      yield* Effect.sleep("2500 millis")
      expect(yield* coordinator.liveLeaseCount("k")).toBe(1)

      const stale = path.join(dir, ".leases", "k", "dead.lease")
      yield* fs.writeFileString(stale, foreignHolder(1))
      const old = new Date(Date.now() - 10_000)
      yield* fs.utimes(stale, old, old)
      expect(yield* coordinator.liveLeaseCount("k")).toBe(1)
      expect(yield* fs.exists(stale)).toBe(false)

      yield* Scope.close(scope, Exit.void)
      expect(yield* fs.readDirectory(path.join(dir, ".leases", "k"))).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))
})
