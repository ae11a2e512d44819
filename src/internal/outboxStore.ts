/**
 * The storage half of the report outbox: one FIFO of reports in the order they were
 * queued, bounded in memory by bytes. Beyond the memory cap a report's body goes to an
 * append-only journal file (its place in the FIFO is kept, so order never changes); log
 * entries beyond their own byte budget are dropped and counted, every other report is kept.
 *
 * Synchronous on purpose (node:fs, no Effect): reports are queued from framework hooks and
 * `Logger`s that cannot run an effect, and queueing must never wait on the network.
 *
 * Journal format, one JSON object per line:
 * - a report `{"s":seq,"k":kind,"p":path,"d":drop,"b":<body JSON>}`
 * - an acknowledgement `{"a":seq}` once the report is settled (delivered or rejected).
 * Lines are written in batches, each batch followed by `fdatasync`. A restart of the same
 * job (same directory) finds the reports without an acknowledgement and queues them first,
 * in their original order.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import type { OutboxDropClass } from "../Outbox.js"
import { thrownMessage } from "../Errors.js"

/** One report to queue: its kind (`progress`, `log`, `outcome`, ...), path and JSON body text. */
export interface OutboxReport {
  readonly kind: string
  readonly path: string
  readonly body: string
  readonly drop: OutboxDropClass
}

/** A queued report. */
export interface OutboxEntry {
  readonly seq: number
  readonly kind: string
  readonly path: string
  readonly drop: OutboxDropClass
  /** Size of the body in bytes (UTF-8). */
  readonly bytes: number
  /** The body while it is held in memory. */
  body: string | undefined
  /** Where the body starts in the journal, once spilled. */
  offset: number
  /** Whether the entry came from the journal of an earlier process (a restart). */
  readonly replayed: boolean
}

/** Options of `OutboxStore`. */
export interface OutboxStoreOptions {
  /** Bytes of bodies held in memory before spilling to the journal. */
  readonly memoryBytes: number
  /** Bytes of log entries queued (memory and journal) before `low` entries are dropped. */
  readonly logBytes: number
  /** The journal file; without one, nothing spills (log entries are dropped at the memory cap). */
  readonly journalPath?: string
}

/** Counters of the store. */
export interface OutboxStoreStats {
  /** Reports queued, by kind. */
  readonly queued: Readonly<Record<string, number>>
  /** Bytes of bodies held in memory now (a journal batch not yet written included). */
  readonly memoryBytes: number
  /** The most bytes ever held in memory. */
  readonly maxMemoryBytes: number
  /** Reports whose body is in the journal now. */
  readonly spilled: number
  /** Log entries dropped under pressure (all time). */
  readonly droppedLogs: number
  /** Reports replayed from the journal of an earlier process. */
  readonly replayed: number
  /** The last problem with the journal (writes then stay in memory), if any. */
  readonly journalError: string | undefined
}

/** Journal writes are batched up to this many bytes before a write and `fdatasync`. */
const batchBytes = 256 * 1024

/** A FIFO with O(1) amortized push/shift (an array with a moving head, compacted lazily). */
class Fifo<A> {
  private items: Array<A | undefined> = []
  private head = 0
  get size(): number {
    return this.items.length - this.head
  }
  push(a: A): void {
    this.items.push(a)
  }
  peek(): A | undefined {
    return this.items[this.head]
  }
  shift(): A | undefined {
    if (this.head >= this.items.length) return undefined
    const a = this.items[this.head]
    this.items[this.head] = undefined
    this.head++
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return a
  }
  has(a: A): boolean {
    for (let i = this.head; i < this.items.length; i++) if (this.items[i] === a) return true
    return false
  }
  *[Symbol.iterator](): IterableIterator<A> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!
  }
}

/** The ordered, byte-bounded report queue with its journal (see the module comment). */
export class OutboxStore {
  private readonly fifo = new Fifo<OutboxEntry>()
  private readonly queuedByKind: Record<string, number> = {}
  private nextSeq = 1
  private memory = 0
  private maxMemory = 0
  private logBytesQueued = 0
  private spilledCount = 0
  private dropped = 0
  private replayedCount = 0
  private fd: number | undefined
  private fileSize = 0
  private pending: Array<string> = []
  private pendingBytes = 0
  private pendingEntries: Array<OutboxEntry> = []
  private journalError: string | undefined

  constructor(readonly options: OutboxStoreOptions) {}

  /**
   * Opens the journal (creating its directory) and queues the reports an earlier process
   * left in it, oldest first. A journal that cannot be opened leaves the store memory-only
   * (the reason is in `stats.journalError`).
   */
  open(): void {
    const file = this.options.journalPath
    if (file === undefined) return
    try {
      fs.mkdirSync(nodePath.dirname(file), { recursive: true })
      this.fd = fs.openSync(file, "a+")
      this.fileSize = fs.fstatSync(this.fd).size
      this.replay()
    } catch (e) {
      this.journalError = `cannot use the outbox file ${file}: ${thrownMessage(e)}`
      this.closeFd()
    }
  }

  /** Scans the journal: unacknowledged reports become the head of the queue, in sequence order. */
  private replay(): void {
    if (this.fd === undefined || this.fileSize === 0) return
    const records = new Map<number, { kind: string; path: string; drop: OutboxDropClass; offset: number; bytes: number }>()
    let maxSeq = 0
    const chunk = Buffer.alloc(1024 * 1024)
    let carry = Buffer.alloc(0)
    let position = 0
    let lineStart = 0
    while (position < this.fileSize) {
      const read = fs.readSync(this.fd, chunk, 0, chunk.length, position)
      if (read === 0) break
      position += read
      let data = Buffer.concat([carry, chunk.subarray(0, read)])
      let from = 0
      for (let nl = data.indexOf(10, from); nl >= 0; nl = data.indexOf(10, from)) {
        this.replayLine(data.subarray(from, nl), lineStart, records, (seq) => (maxSeq = Math.max(maxSeq, seq)))
        lineStart += nl - from + 1
        from = nl + 1
      }
      carry = Buffer.from(data.subarray(from))
      data = Buffer.alloc(0)
    }
    // A torn last line (the process died mid-write) is ignored; later writes start on a new line.
    if (carry.length > 0) this.appendLine("")
    this.nextSeq = maxSeq + 1
    for (const [seq, record] of [...records].sort(([a], [b]) => a - b)) {
      this.enqueue({ seq, ...record, body: undefined, replayed: true })
      this.spilledCount++
      this.replayedCount++
    }
    if (records.size === 0) this.truncate()
  }

  private replayLine(
    line: Buffer,
    lineStart: number,
    records: Map<number, { kind: string; path: string; drop: OutboxDropClass; offset: number; bytes: number }>,
    sawSeq: (seq: number) => void
  ): void {
    if (line.length === 0) return
    const text = line.toString("utf8")
    if (text.startsWith("{\"a\":")) {
      const seq = Number(text.slice(5, -1))
      if (Number.isSafeInteger(seq)) records.delete(seq)
      return
    }
    const bodyMarker = line.indexOf(",\"b\":")
    if (bodyMarker < 0) return
    try {
      const header = JSON.parse(`${line.subarray(0, bodyMarker).toString("utf8")}}`) as {
        s: number
        k: string
        p: string
        d: OutboxDropClass
      }
      const body = line.subarray(bodyMarker + 5, line.length - 1)
      JSON.parse(body.toString("utf8")) // a damaged record is skipped, not sent
      sawSeq(header.s)
      records.set(header.s, { kind: header.k, path: header.p, drop: header.d, offset: lineStart + bodyMarker + 5, bytes: body.length })
    } catch {
      // Not a record this version wrote; skipped.
    }
  }

  private enqueue(entry: OutboxEntry): void {
    this.fifo.push(entry)
    this.queuedByKind[entry.kind] = (this.queuedByKind[entry.kind] ?? 0) + 1
    if (entry.drop !== "never") this.logBytesQueued += entry.bytes
  }

  /** Reports queued. */
  get size(): number {
    return this.fifo.size
  }

  /** The oldest queued report. */
  peek(): OutboxEntry | undefined {
    return this.fifo.peek()
  }

  /** Whether a report of `kind` is queued. */
  has(kind: string): boolean {
    return (this.queuedByKind[kind] ?? 0) > 0
  }

  /** The sequence number of the newest report queued so far (0 when none ever was). */
  get lastSeq(): number {
    return this.nextSeq - 1
  }

  /** Whether a log entry of at least `bytes` bytes would be dropped now (counting it as dropped when so). */
  dropsAtLeast(drop: OutboxDropClass, bytes: number): boolean {
    if (drop === "never") return false
    const budget = this.canSpill() ? this.options.logBytes : this.options.memoryBytes
    const limit = drop === "high" ? budget * 1.25 : budget
    if (this.logBytesQueued + bytes <= limit) return false
    this.dropped++
    return true
  }

  /**
   * Queues a report and returns its sequence number, or `undefined` when a log entry was
   * dropped because log entries already hold their byte budget.
   */
  offer(report: OutboxReport): number | undefined {
    const bytes = Buffer.byteLength(report.body)
    if (this.dropsAtLeast(report.drop, bytes)) return undefined
    const entry: OutboxEntry = {
      seq: this.nextSeq++,
      kind: report.kind,
      path: report.path,
      drop: report.drop,
      bytes,
      body: report.body,
      offset: -1,
      replayed: false
    }
    this.enqueue(entry)
    if (this.memory + bytes > this.options.memoryBytes && this.canSpill()) this.spill(entry)
    else this.holdInMemory(entry)
    return entry.seq
  }

  private holdInMemory(entry: OutboxEntry): void {
    this.memory += entry.bytes
    this.maxMemory = Math.max(this.maxMemory, this.memory)
  }

  private canSpill(): boolean {
    return this.fd !== undefined && this.journalError === undefined
  }

  /**
   * Appends an entry's record to the journal batch. Its body stays in memory until the
   * batch is written (so a failed write loses nothing); a full batch is written at once.
   */
  private spill(entry: OutboxEntry): void {
    const header = `{"s":${entry.seq},"k":${JSON.stringify(entry.kind)},"p":${JSON.stringify(entry.path)},"d":"${entry.drop}","b":`
    entry.offset = this.fileSize + this.pendingBytes + Buffer.byteLength(header)
    this.appendLine(`${header}${entry.body}}`)
    this.pendingEntries.push(entry)
    this.spilledCount++
    if (this.pendingBytes >= batchBytes) this.flush()
  }

  private appendLine(line: string): void {
    const text = `${line}\n`
    this.pending.push(text)
    this.pendingBytes += Buffer.byteLength(text)
    this.maxMemory = Math.max(this.maxMemory, this.memory + this.pendingBytes)
  }

  /** Writes the batched journal lines, syncs them to disk, and frees the bodies written. */
  flush(): void {
    if (this.pending.length === 0 || this.fd === undefined) return
    const data = this.pending.join("")
    const bytes = this.pendingBytes
    const written = this.pendingEntries
    this.pending = []
    this.pendingBytes = 0
    this.pendingEntries = []
    try {
      fs.writeSync(this.fd, data)
      fs.fdatasyncSync(this.fd)
      this.fileSize += bytes
      for (const entry of written) entry.body = undefined
    } catch (e) {
      this.journalError = `writing the outbox file ${this.options.journalPath} failed: ${thrownMessage(e)}`
      // The batch's bodies are still in memory: they stay there, and nothing spills any more.
      for (const entry of written) {
        if (entry.offset < 0) continue
        entry.offset = -1
        this.spilledCount--
        if (this.fifo.has(entry)) this.holdInMemory(entry)
      }
    }
  }

  private closeFd(): void {
    if (this.fd === undefined) return
    try {
      fs.closeSync(this.fd)
    } catch {
      // Already unusable.
    }
    this.fd = undefined
  }

  /**
   * The body of an entry: from memory, or read back from the journal. `undefined` when its
   * record cannot be read back.
   */
  body(entry: OutboxEntry): string | undefined {
    if (entry.body !== undefined) return entry.body
    if (entry.offset < 0 || this.fd === undefined) return undefined
    try {
      const buffer = Buffer.alloc(entry.bytes)
      const read = fs.readSync(this.fd, buffer, 0, entry.bytes, entry.offset)
      return read === entry.bytes ? buffer.toString("utf8") : undefined
    } catch (e) {
      this.journalError = `reading the outbox file ${this.options.journalPath} failed: ${thrownMessage(e)}`
      return undefined
    }
  }

  /** Removes the oldest entry once it is settled; a journal entry's acknowledgement is journaled. */
  settle(entry: OutboxEntry): void {
    if (this.fifo.peek() !== entry) return
    this.fifo.shift()
    this.queuedByKind[entry.kind] = (this.queuedByKind[entry.kind] ?? 1) - 1
    if (entry.drop !== "never") this.logBytesQueued -= entry.bytes
    if (entry.offset < 0) {
      this.memory -= entry.bytes
    } else {
      this.spilledCount--
      if (this.spilledCount === 0) this.truncate()
      else this.acknowledge(entry.seq)
    }
    entry.body = undefined
  }

  /**
   * Journals a settled report's acknowledgement at once, after its record. Without
   * `fdatasync`: the page cache outlives a restarted process (only a lost node would
   * forget it, and with it the whole pod), and a sync per report would slow the sender.
   */
  private acknowledge(seq: number): void {
    if (this.fd === undefined || this.journalError !== undefined) return
    this.flush()
    const line = `{"a":${seq}}\n`
    try {
      fs.writeSync(this.fd, line)
      this.fileSize += Buffer.byteLength(line)
    } catch (e) {
      this.journalError = `writing the outbox file ${this.options.journalPath} failed: ${thrownMessage(e)}`
    }
  }

  /** Empties the journal once nothing queued lives in it. */
  private truncate(): void {
    if (this.fd === undefined) return
    for (const entry of this.pendingEntries) entry.offset = -1
    this.pending = []
    this.pendingBytes = 0
    this.pendingEntries = []
    try {
      fs.ftruncateSync(this.fd, 0)
      this.fileSize = 0
    } catch (e) {
      this.journalError = `truncating the outbox file ${this.options.journalPath} failed: ${thrownMessage(e)}`
    }
  }

  /**
   * On shutdown: writes the bodies still only in memory (except those of `keepOut` kinds) to
   * the journal so a restart of the job delivers them, then closes it (removing it when
   * nothing is left in it). Returns how many reports the journal keeps.
   */
  persistAndClose(keepOut: ReadonlyArray<string>): number {
    for (const entry of this.fifo) {
      if (entry.offset < 0 && !keepOut.includes(entry.kind) && this.canSpill()) {
        this.memory -= entry.bytes
        this.spill(entry)
      }
    }
    this.flush()
    let kept = 0
    for (const entry of this.fifo) {
      if (entry.offset < 0) continue
      // A report of a kept-out kind that had spilled is acknowledged, so a restart skips it.
      if (keepOut.includes(entry.kind)) this.acknowledge(entry.seq)
      else kept++
    }
    if (kept === 0) this.truncate()
    this.closeFd()
    if (kept === 0 && this.options.journalPath !== undefined && this.journalError === undefined) {
      try {
        fs.rmSync(this.options.journalPath, { force: true })
      } catch {
        // An empty journal left behind is harmless.
      }
    }
    return kept
  }

  /** The store's counters. */
  stats(): OutboxStoreStats {
    const queued: Record<string, number> = {}
    for (const [kind, count] of Object.entries(this.queuedByKind)) if (count > 0) queued[kind] = count
    return {
      queued,
      memoryBytes: this.memory + this.pendingBytes,
      maxMemoryBytes: this.maxMemory,
      spilled: this.spilledCount,
      droppedLogs: this.dropped,
      replayed: this.replayedCount,
      journalError: this.journalError
    }
  }
}
