/**
 * The body of one HashPool worker thread: hashes one file at a time, chunk by chunk, exactly as
 * hashFile does (same chunk boundaries, same hash list, same content id, same FileChangedError).
 *
 * Two measured choices (2 cores, 8 MiB files in the page cache):
 * - Blocking reads. The thread has nothing else to do while it hashes, and an asynchronous read
 *   costs two thread hand-offs per buffer through libuv's pool: with them the workers burned
 *   about 75% more CPU than one thread reading synchronously, and two were no faster than one.
 *   Since the loop never yields, an abort arrives through shared memory instead of a message.
 * - A 256 KiB read buffer, whatever the chunk size: it stays in the core's L2 cache between the
 *   kernel's copy and the hash. With 1 MiB the kernel's copy took about three times the CPU.
 * Neither changes a single hash: chunks are cut by position, not by read.
 */
import { closeSync, openSync, readSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'
import { HASH_BYTES } from '@shoal/wire'
import { contentIdOf, FileChangedError } from './chunking.js'

/** Bytes per read; memory stays at this one buffer whatever the file or chunk size. */
const READ_BUFFER_BYTES = 256 * 1024

/** What the pool gives each worker at start. */
export interface HashWorkerData {
  /** An Int32Array over a SharedArrayBuffer: slot 0 holds the id of a job to stop. */
  abort: Int32Array
}

export interface HashRequest { id: number, path: string, chunkSize: number, expectedSize?: number }

/** What crosses back from a worker: plain data, since an Error loses its class and code on the way. */
export interface SerializedError {
  name: string
  message: string
  code?: string
  errno?: number
  syscall?: string
  path?: string
}

export type HashReply =
  | { id: number, ok: true, size: number, chunkSize: number, hashes: Uint8Array, contentId: Uint8Array }
  | { id: number, ok: false, error: SerializedError }

function serialize (err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) }
  const e = err as NodeJS.ErrnoException
  const out: SerializedError = { name: e.name, message: e.message }
  if (typeof e.code === 'string') out.code = e.code
  if (typeof e.errno === 'number') out.errno = e.errno
  if (typeof e.syscall === 'string') out.syscall = e.syscall
  if (typeof e.path === 'string') out.path = e.path
  return out
}

if (parentPort == null) throw new Error('hash-worker.js runs only as a worker thread (see HashPool)')
const port = parentPort
const abortSlot = (workerData as HashWorkerData).abort
const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES)

function hash (request: HashRequest): Extract<HashReply, { ok: true }> {
  const { id, path, chunkSize, expectedSize } = request
  const fd = openSync(path, 'r')
  try {
    const digests: Buffer[] = []
    let chunk = createHash('sha256')
    let inChunk = 0
    let size = 0
    for (;;) {
      if (Atomics.load(abortSlot, 0) === id) throw new DOMException('This operation was aborted', 'AbortError')
      const bytesRead = readSync(fd, buffer, 0, Math.min(buffer.length, chunkSize - inChunk), null)
      if (bytesRead === 0) break
      chunk.update(buffer.subarray(0, bytesRead))
      inChunk += bytesRead
      size += bytesRead
      if (inChunk === chunkSize) {
        digests.push(chunk.digest())
        chunk = createHash('sha256')
        inChunk = 0
      }
    }
    if (inChunk > 0) digests.push(chunk.digest())
    if (expectedSize != null && size !== expectedSize) throw new FileChangedError(`${path} changed size while being hashed`)
    const hashes = new Uint8Array(digests.length * HASH_BYTES)
    digests.forEach((d, i) => hashes.set(d, i * HASH_BYTES))
    return { id, ok: true, size, chunkSize, hashes, contentId: contentIdOf(hashes) }
  } finally {
    closeSync(fd)
  }
}

/** The array itself when it owns its whole buffer (then it can be transferred), else a copy that does. */
function owned (bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice()
}

port.on('message', (request: HashRequest) => {
  let reply: HashReply
  try {
    const done = hash(request)
    reply = { ...done, hashes: owned(done.hashes), contentId: owned(done.contentId) }
  } catch (err) {
    reply = { id: request.id, ok: false, error: serialize(err) }
  }
  // The hash lists move to the main thread instead of being copied.
  port.postMessage(reply, reply.ok ? [reply.hashes.buffer as ArrayBuffer, reply.contentId.buffer as ArrayBuffer] : [])
})
