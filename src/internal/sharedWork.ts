/**
 * Work shared between the conversion thread and a helper thread (`cocoTextThread`,
 * `labelDecodeThread`) through shared memory.
 *
 * The items still unclaimed, `[front, back)`, are one 64-bit word: the conversion thread
 * takes from the front, the helper from the back, each by compare-and-swap, so every item
 * goes to exactly one of them; once the two meet, nothing is left to claim. Storing `0n`
 * (`[0, 0)`) stops the back's claiming.
 *
 * A control array (Int32) holds the helper's state and the count of replies it has posted,
 * so the conversion thread can wait for replies (`Atomics.wait`) and take them
 * (`receiveMessageOnPort`) without going back to its event loop.
 */
import * as NodeFs from "node:fs"
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import {
  MessageChannel,
  type MessagePort,
  receiveMessageOnPort,
  type ResourceLimits,
  type Transferable,
  Worker
} from "node:worker_threads"

/**
 * Starts a thread running the module `name` (`convertWorker`, `labelWriterThread`,
 * `labelDecodeThread`, `cocoTextThread`) that sits next to this one. From compiled JavaScript it is `{name}.js`;
 * from TypeScript sources (tests, `tsx`) the thread first registers tsx's loader.
 * `resourceLimits` bound its heap; `transferList` names what `workerData` hands over (ports).
 */
export const startThread = (
  name: string,
  workerData?: unknown,
  resourceLimits?: ResourceLimits,
  transferList?: ReadonlyArray<Transferable>
): Worker => {
  const here = import.meta.url
  const transfer = transferList === undefined ? {} : { transferList: [...transferList] }
  if (!here.endsWith(".ts")) return new Worker(new URL(`./${name}.js`, here), { workerData, resourceLimits, ...transfer })
  const api = pathToFileURL(createRequire(here).resolve("tsx/esm/api").replace(/\.cjs$/, ".mjs")).href
  const entry = new URL(`./${name}.ts`, here).href
  return new Worker(
    `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}) })`,
    { eval: true, workerData, resourceLimits, ...transfer }
  )
}

/** Bytes per read call when reading a file into shared memory (well below the 2 GiB a read takes). */
const sharedReadBytes = 1 << 26

/**
 * The file's bytes in memory other threads can share (a `SharedArrayBuffer`), read with
 * plain synchronous calls, or `undefined` when it changed size while being read; throws what
 * reading throws.
 */
export const readSharedFile = (file: string): Uint8Array | undefined => {
  const fd = NodeFs.openSync(file, "r")
  try {
    const size = NodeFs.fstatSync(fd).size
    const bytes = new Uint8Array(new SharedArrayBuffer(size))
    let filled = 0
    while (filled < size) {
      const read = NodeFs.readSync(fd, bytes, filled, Math.min(size - filled, sharedReadBytes), null)
      if (read === 0) return undefined
      filled += read
    }
    return NodeFs.readSync(fd, new Uint8Array(1), 0, 1, null) === 0 ? bytes : undefined
  } finally {
    NodeFs.closeSync(fd)
  }
}

/** The helper's state word: not started yet, working, or given up on by the conversion. */
export const threadState = { idle: 0, running: 1, abandoned: 2 } as const

/** Slots of the shared control array (Int32): the state word, the count of replies posted. */
export const controlSlot = { state: 0, posted: 1 } as const

/** Whether the helper may start: `false` when the conversion has given up on it already. */
export const startRunning = (control: Int32Array): boolean =>
  Atomics.compareExchange(control, controlSlot.state, threadState.idle, threadState.running) === threadState.idle

/** How long the conversion thread waits for a helper's next reply before giving up on it. */
export const stuckMs = 30_000

/** What a helper thread is started with (its `workerData`). */
interface HelperData {
  readonly control: SharedArrayBuffer
  readonly claimed: SharedArrayBuffer
  readonly replies: MessagePort
  readonly requests: MessagePort
}

/**
 * The conversion thread's side of its link to one helper thread: the shared words, and the
 * ports its requests leave by and its replies arrive at. It may cross to another thread (the
 * thread that started the helper hands it to the conversion worker; the ports are then in the
 * transfer list).
 */
export interface HelperLink {
  readonly control: Int32Array
  readonly claimed: BigInt64Array
  readonly replies: MessagePort
  readonly requests: MessagePort
}

/** A fresh link, with the helper's `workerData` and what it hands over (`transferList`). */
export const makeHelperLink = (): {
  readonly link: HelperLink
  readonly workerData: HelperData
  readonly transfer: ReadonlyArray<MessagePort>
} => {
  const control = new Int32Array(new SharedArrayBuffer(8))
  const claimed = new BigInt64Array(new SharedArrayBuffer(8))
  const { port1: replies, port2: threadReplies } = new MessageChannel()
  const { port1: requests, port2: threadRequests } = new MessageChannel()
  return {
    link: { control, claimed, replies, requests },
    workerData: {
      control: control.buffer as SharedArrayBuffer,
      claimed: claimed.buffer as SharedArrayBuffer,
      replies: threadReplies,
      requests: threadRequests
    },
    transfer: [threadReplies, threadRequests]
  }
}

/** Gives up on the helper: it is stopped at its next claim, nothing being left to claim. */
export const abandonHelper = (link: Pick<HelperLink, "control" | "claimed">): void => {
  Atomics.store(link.control, controlSlot.state, threadState.abandoned)
  Atomics.store(link.claimed, 0, 0n)
}

/** Takes every reply the helper has posted so far, in order, without the event loop. */
export const takeReplies = <R>(link: Pick<HelperLink, "replies">, take: (reply: R) => void): void => {
  for (let r = receiveMessageOnPort(link.replies); r !== undefined; r = receiveMessageOnPort(link.replies)) take(r.message as R)
}

/**
 * Takes the helper's replies until `done()`, waiting up to `stuckMs` for each next one:
 * `false` when the helper did not answer in time.
 */
export const awaitReplies = <R>(link: Pick<HelperLink, "control" | "replies">, take: (reply: R) => void, done: () => boolean): boolean => {
  for (;;) {
    // Counted before taking: a reply posted meanwhile ends the wait at once.
    const posted = Atomics.load(link.control, controlSlot.posted)
    takeReplies(link, take)
    if (done()) return true
    if (Atomics.wait(link.control, controlSlot.posted, posted, stuckMs) === "timed-out") return false
  }
}

/**
 * The helper thread's side of its link, from its `workerData`: the control and claim words,
 * the port its requests arrive at, and `post`, which sends a reply and counts it, waking a
 * waiting conversion thread.
 *
 * Replies are copied, never transferred: transferring an `ArrayBuffer` detaches it, and the
 * first detach in a thread makes V8 throw away every optimized function that reads a typed
 * array (the scan, the label printer) and compile them again (measured in `bench/RESULTS.md`, #17).
 */
export const helperSide = <R>(workerData: unknown) => {
  const data = workerData as HelperData
  const control = new Int32Array(data.control)
  return {
    control,
    claimed: new BigInt64Array(data.claimed),
    requests: data.requests,
    post: (reply: R): void => {
      data.replies.postMessage(reply)
      Atomics.add(control, controlSlot.posted, 1)
      Atomics.notify(control, controlSlot.posted)
    }
  }
}

/** Packing and unpacking the word. */
export const claims = {
  pack: (front: number, back: number): bigint => (BigInt(front) << 32n) | BigInt(back),
  front: (word: bigint): number => Number(word >> 32n),
  back: (word: bigint): number => Number(word & 0xffffffffn)
} as const

/**
 * The front's claim of up to `count` items from `from` (where its previous claim ended), or
 * fewer, up to the back's claims: where the claim ends (`from` when nothing was left).
 */
export const claimFront = (word: BigInt64Array, from: number, count: number): number => {
  for (;;) {
    const current = Atomics.load(word, 0)
    const end = Math.min(claims.back(current), from + count)
    if (claims.front(current) !== from || end <= from) return from
    if (Atomics.compareExchange(word, 0, current, claims.pack(end, claims.back(current))) === current) return end
  }
}

/**
 * The back's claim of the items `from` up to `to` (where its previous claim started), or
 * fewer, down to the front's claims: where the claim starts (`to` when nothing was left).
 */
export const claimBack = (word: BigInt64Array, from: number, to: number): number => {
  for (;;) {
    const current = Atomics.load(word, 0)
    const start = Math.max(from, claims.front(current))
    if (claims.back(current) !== to || start >= to) return to
    if (Atomics.compareExchange(word, 0, current, claims.pack(claims.front(current), start)) === current) return start
  }
}
