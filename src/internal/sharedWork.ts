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
import type { MessagePort } from "node:worker_threads"

/** The helper's state word: not started yet, working, or given up on by the conversion. */
export const threadState = { idle: 0, running: 1, abandoned: 2 } as const

/** Slots of the shared control array (Int32): the state word, the count of replies posted. */
export const controlSlot = { state: 0, posted: 1 } as const

/** Whether the helper may start: `false` when the conversion has given up on it already. */
export const startRunning = (control: Int32Array): boolean =>
  Atomics.compareExchange(control, controlSlot.state, threadState.idle, threadState.running) === threadState.idle

/** Posts a reply on `port` and counts it in `control`, waking a waiting conversion thread. */
export const postCounted = (port: MessagePort, control: Int32Array, reply: unknown, transfer: ReadonlyArray<ArrayBuffer> = []): void => {
  port.postMessage(reply, [...transfer])
  Atomics.add(control, controlSlot.posted, 1)
  Atomics.notify(control, controlSlot.posted)
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
