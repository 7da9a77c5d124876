/**
 * The body of one HashPool worker thread: hashes one file at a time with hashFile, so a file
 * hashed here gives exactly the bytes a file hashed on the main thread gives.
 */
import { parentPort } from 'node:worker_threads'
import { hashFile } from './chunking.js'

/** A request from the pool: hash a file, or stop hashing one. */
export type HashRequest =
  | { type: 'hash', id: number, path: string, chunkSize: number, expectedSize?: number }
  | { type: 'abort', id: number }

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

/** The array itself when it owns its whole buffer (then it can be transferred), else a copy that does. */
function owned (bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice()
}

const running = new Map<number, AbortController>()

async function run (request: Extract<HashRequest, { type: 'hash' }>): Promise<void> {
  const controller = new AbortController()
  running.set(request.id, controller)
  let reply: HashReply
  try {
    const h = await hashFile(request.path, request.chunkSize, { expectedSize: request.expectedSize, signal: controller.signal })
    reply = { id: request.id, ok: true, size: h.size, chunkSize: h.chunkSize, hashes: owned(h.hashes), contentId: owned(h.contentId) }
  } catch (err) {
    reply = { id: request.id, ok: false, error: serialize(err) }
  } finally {
    running.delete(request.id)
  }
  // The hash lists move to the main thread instead of being copied.
  port.postMessage(reply, reply.ok ? [reply.hashes.buffer as ArrayBuffer, reply.contentId.buffer as ArrayBuffer] : [])
}

port.on('message', (request: HashRequest) => {
  if (request.type === 'abort') running.get(request.id)?.abort()
  else void run(request)
})
