/**
 * The bounded in-memory queue behind `LogBuffer`: entries keep their arrival order, and
 * when the queue is full the oldest DEBUG/INFO entry makes room first, then the oldest
 * entry of any level. Pure and synchronous so the Effect `Logger` bridge can append to it.
 */

/** The four log levels of the backend's log entries. */
export type LogBufferLevel = "DEBUG" | "INFO" | "WARNING" | "ERROR"

/** One log entry as buffered and shipped (the body adds `job_id`). */
export interface LogBufferEntry {
  readonly level: LogBufferLevel
  readonly message: string
  /** The backend's `event_type`: the entry's source or category (`trainer`, `checkpoint`, ...). */
  readonly source: string
  readonly data: Readonly<Record<string, unknown>>
  /** ISO-8601 UTC. */
  readonly timestamp: string
}

interface Sequenced {
  readonly seq: number
  readonly entry: LogBufferEntry
}

/** A FIFO with O(1) amortized push/shift (an array with a moving head, compacted lazily). */
class Fifo<A> {
  private items: Array<A> = []
  private head = 0
  get size(): number {
    return this.items.length - this.head
  }
  push(a: A): void {
    this.items.push(a)
  }
  peek(): A | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined
  }
  shift(): A | undefined {
    if (this.head >= this.items.length) return undefined
    const a = this.items[this.head]
    this.items[this.head] = undefined as unknown as A
    this.head++
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return a
  }
}

const isLowPriority = (level: LogBufferLevel): boolean => level === "DEBUG" || level === "INFO"

/**
 * A bounded log queue. DEBUG/INFO and WARNING/ERROR entries sit in two FIFOs tagged with
 * an arrival number, so dropping the oldest low-priority entry and taking entries in
 * arrival order are both cheap.
 */
export class BoundedLogQueue {
  private readonly low = new Fifo<Sequenced>()
  private readonly high = new Fifo<Sequenced>()
  private seq = 0
  private droppedCount = 0

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`LogBuffer capacity must be a positive integer, got ${capacity}`)
    }
  }

  /** Entries waiting to be shipped. */
  get size(): number {
    return this.low.size + this.high.size
  }

  /** Entries dropped so far to respect the capacity. */
  get dropped(): number {
    return this.droppedCount
  }

  /** Appends an entry; returns how many entries were dropped to make room (0 or 1). */
  offer(entry: LogBufferEntry): number {
    let dropped = 0
    if (this.size >= this.capacity) {
      if (this.low.size > 0) this.low.shift()
      else this.high.shift()
      dropped = 1
      this.droppedCount++
    }
    const item = { seq: this.seq++, entry }
    if (isLowPriority(entry.level)) this.low.push(item)
    else this.high.push(item)
    return dropped
  }

  /** Removes and returns up to `max` entries, oldest first. */
  take(max: number): Array<LogBufferEntry> {
    const out: Array<LogBufferEntry> = []
    while (out.length < max) {
      const low = this.low.peek()
      const high = this.high.peek()
      if (low === undefined && high === undefined) break
      const next = high === undefined || (low !== undefined && low.seq < high.seq) ? this.low.shift()! : this.high.shift()!
      out.push(next.entry)
    }
    return out
  }
}
