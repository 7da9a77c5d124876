import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { FileChangedError, hashingStats, type FileHashes } from './chunking.js'
import type { HashReply, HashRequest, HashWorkerData, SerializedError } from './hash-worker.js'

/** Heap limits of a hashing worker (MB): it holds one read buffer and one file's hash list. */
const WORKER_HEAP_LIMITS = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 8 }

export class HashPoolClosedError extends Error {
  override name = 'HashPoolClosedError'
}

/** A worker died (uncaught error, exit, out of memory) while it hashed a file; the pool replaces it. */
export class HashWorkerCrashedError extends Error {
  override name = 'HashWorkerCrashedError'
}

export interface HashPoolInit {
  /** Worker threads; one per core by default. */
  workers?: number
  /** The worker script; the compiled hash-worker.js by default. Tests point it elsewhere. */
  workerUrl?: URL
  /** Milliseconds a worker may stay idle before it is ended; IDLE_WORKER_MS by default. */
  idleMs?: number
}

export interface HashJobOptions {
  /** The size the file had when it was listed: a different size read is a FileChangedError. */
  expectedSize?: number
  signal?: AbortSignal
}

/**
 * Where the compiled worker is. From dist/ (how every package runs) it sits beside this module.
 * From src/*.ts (vitest runs the sources) there is no runnable hash-worker.js beside it, and a .ts
 * worker would need its imports rewritten, so it is the compiled one in ../dist: `tsc -b` must have
 * run, which `npm test` does first.
 */
export function defaultHashWorkerUrl (): URL {
  return import.meta.url.endsWith('.ts')
    ? new URL('../dist/hash-worker.js', import.meta.url)
    : new URL('./hash-worker.js', import.meta.url)
}

interface Job {
  id: number
  path: string
  chunkSize: number
  expectedSize?: number
  signal?: AbortSignal
  onAbort?: () => void
  resolve: (hashes: FileHashes) => void
  reject: (err: unknown) => void
  settled: boolean
}

interface Slot {
  worker: Worker
  /** Shared with the worker, which checks it between reads: the id of a job to stop. */
  abort: Int32Array
  job?: Job
  /** The worker's own last error, to explain its exit. */
  error?: Error
  /** Ends the worker once it has been idle for the pool's idle time. */
  idle?: NodeJS.Timeout
}

/**
 * An idle worker is ended after this long: each keeps an isolate of its own (tens of MB once it
 * has hashed many files), and the agent hashes in bursts (a scan, new files) between long pauses.
 */
export const IDLE_WORKER_MS = 10_000

function deserialize (e: SerializedError): Error {
  if (e.name === 'FileChangedError') return new FileChangedError(e.message)
  const err: Error & Partial<SerializedError> = new Error(e.message)
  if (e.name !== 'Error') err.name = e.name
  if (e.code != null) err.code = e.code
  if (e.errno != null) err.errno = e.errno
  if (e.syscall != null) err.syscall = e.syscall
  if (e.path != null) err.path = e.path
  return err
}

/**
 * Hashes files on worker threads, exactly as hashFile does, one file per worker at a time.
 * Jobs wait in a FIFO queue for an idle worker. Workers start when work arrives, and an idle
 * worker does not keep the process alive.
 */
export class HashPool {
  /** Worker threads this pool runs at most. */
  readonly size: number
  private readonly workerUrl: URL
  private readonly slots = new Set<Slot>()
  private readonly queue: Job[] = []
  private queueHead = 0
  private queuedJobs = 0
  private nextId = 1
  private closed = false
  private readonly idleMs: number

  constructor (init: HashPoolInit = {}) {
    const size = init.workers ?? availableParallelism()
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`HashPool: workers must be a positive integer, not ${size}`)
    this.size = size
    this.idleMs = init.idleMs ?? IDLE_WORKER_MS
    if (!(this.idleMs > 0)) throw new RangeError(`HashPool: idleMs must be positive, not ${this.idleMs}`)
    this.workerUrl = init.workerUrl ?? defaultHashWorkerUrl()
    if (this.workerUrl.protocol === 'file:' && !existsSync(fileURLToPath(this.workerUrl))) {
      throw new Error(`HashPool: worker script ${fileURLToPath(this.workerUrl)} is missing; build the packages first (npx tsc -b)`)
    }
    // So that `hasher: pool.hash` can be handed to scanDataset as it is.
    this.hash = this.hash.bind(this)
  }

  /** Jobs waiting for a worker. */
  get queued (): number {
    return this.queuedJobs
  }

  /** Worker threads alive now (idle ones end after the idle time). */
  get workers (): number {
    return this.slots.size
  }

  /** Jobs a worker is hashing now. */
  get running (): number {
    let n = 0
    for (const slot of this.slots) if (slot.job != null) n++
    return n
  }

  /**
   * Hashes one file on a worker. An aborted job rejects with the signal's reason at once: a
   * queued one never starts, a running one is told to stop and its result is discarded.
   */
  async hash (path: string, chunkSize: number, options: HashJobOptions = {}): Promise<FileHashes> {
    if (this.closed) throw new HashPoolClosedError('HashPool is closed')
    options.signal?.throwIfAborted()
    return await new Promise<FileHashes>((resolve, reject) => {
      const job: Job = { id: this.nextId++, path, chunkSize, expectedSize: options.expectedSize, signal: options.signal, resolve, reject, settled: false }
      if (job.signal != null) {
        const signal = job.signal
        job.onAbort = () => this.abort(job, signal.reason)
        signal.addEventListener('abort', job.onAbort, { once: true })
      }
      this.queue.push(job)
      this.queuedJobs++
      this.dispatch()
    })
  }

  /** Stops every worker; jobs still queued or running reject with HashPoolClosedError. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    const err = new HashPoolClosedError('HashPool closed before the file was hashed')
    for (let i = this.queueHead; i < this.queue.length; i++) this.settle(this.queue[i], err)
    this.queue.length = 0
    this.queueHead = 0
    this.queuedJobs = 0
    const slots = [...this.slots]
    this.slots.clear()
    for (const slot of slots) {
      clearTimeout(slot.idle)
      if (slot.job != null) this.settle(slot.job, err)
    }
    await Promise.all(slots.map(async slot => await slot.worker.terminate()))
  }

  private settle (job: Job, outcome: Error | FileHashes): void {
    if (job.settled) return
    job.settled = true
    if (job.onAbort != null) job.signal?.removeEventListener('abort', job.onAbort)
    if (outcome instanceof Error) job.reject(outcome)
    else job.resolve(outcome)
  }

  private abort (job: Job, reason: unknown): void {
    if (job.settled) return
    job.settled = true
    job.reject(reason)
    for (const slot of this.slots) {
      if (slot.job === job) {
        // The worker stops at its next read and stays busy until it answers; the answer is ignored.
        Atomics.store(slot.abort, 0, job.id)
        return
      }
    }
    // Still queued: dispatch skips settled jobs.
    this.queuedJobs--
  }

  private takeQueued (): Job | undefined {
    while (this.queueHead < this.queue.length) {
      const job = this.queue[this.queueHead++]
      if (!job.settled) {
        this.queuedJobs--
        return job
      }
    }
    this.queue.length = 0
    this.queueHead = 0
    return undefined
  }

  private dispatch (): void {
    while (!this.closed && this.queuedJobs > 0) {
      let slot: Slot | undefined
      for (const s of this.slots) {
        if (s.job == null) {
          slot = s
          break
        }
      }
      if (slot == null) {
        if (this.slots.size >= this.size) return
        try {
          slot = this.spawn()
        } catch (err) {
          // A worker that cannot even start fails the job it was for, not the whole queue at once.
          const job = this.takeQueued()
          if (job != null) this.settle(job, err instanceof Error ? err : new Error(String(err)))
          continue
        }
      }
      const job = this.takeQueued()
      if (job == null) return
      clearTimeout(slot.idle)
      slot.job = job
      slot.worker.ref()
      slot.worker.postMessage({ id: job.id, path: job.path, chunkSize: job.chunkSize, expectedSize: job.expectedSize } satisfies HashRequest)
    }
    if (this.queue.length > 1024 && this.queueHead > this.queue.length / 2) {
      this.queue.splice(0, this.queueHead)
      this.queueHead = 0
    }
  }

  private spawn (): Slot {
    const abort = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT))
    // A worker keeps almost nothing alive between files: a small heap makes it collect often
    // instead of growing by the garbage of thousands of files (each isolate keeps what it grew to).
    const worker = new Worker(this.workerUrl, { workerData: { abort } satisfies HashWorkerData, resourceLimits: WORKER_HEAP_LIMITS })
    const slot: Slot = { worker, abort }
    worker.unref()
    worker.on('message', (reply: HashReply) => this.finished(slot, reply))
    worker.on('error', (err) => { slot.error = err })
    worker.on('exit', (code) => this.exited(slot, code))
    this.slots.add(slot)
    return slot
  }

  private finished (slot: Slot, reply: HashReply): void {
    const job = slot.job
    if (job == null || job.id !== reply.id) return
    slot.job = undefined
    slot.worker.unref()
    if (reply.ok) {
      if (!job.settled) {
        hashingStats.filesHashed++
        hashingStats.bytesHashed += reply.size
        this.settle(job, { size: reply.size, chunkSize: reply.chunkSize, hashes: reply.hashes, contentId: reply.contentId })
      }
    } else {
      this.settle(job, deserialize(reply.error))
    }
    this.dispatch()
    if (slot.job == null) {
      slot.idle = setTimeout(() => { this.retire(slot) }, this.idleMs)
      slot.idle.unref()
    }
  }

  /** Ends an idle worker; the next job starts a new one. */
  private retire (slot: Slot): void {
    if (slot.job != null || !this.slots.delete(slot)) return
    void slot.worker.terminate()
  }

  private exited (slot: Slot, code: number): void {
    if (!this.slots.delete(slot)) return // closed: close() already settled its job
    const job = slot.job
    if (job != null) {
      const why = slot.error != null ? `: ${slot.error.message}` : ''
      this.settle(job, new HashWorkerCrashedError(`hash worker exited with code ${code} while hashing ${job.path}${why}`))
    }
    // Queued jobs get a fresh worker.
    this.dispatch()
  }
}
