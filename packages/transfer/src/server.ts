import { open, stat } from 'node:fs/promises'
import { pbStream } from '@libp2p/utils'
import {
  ChunkRequest, ChunkRequestKind, ChunkResponse, ChunkStatus, HASH_BYTES, MAX_CHUNK_REQUEST_BYTES
} from '@shoal/wire'
import { BUSY_RETRY_AFTER_MS, MAX_CHUNKS_PER_REQUEST, MAX_CONCURRENT_UPLOADS, REQUEST_READ_TIMEOUT_MS, CHUNK_REQUEST_TIMEOUT_MS } from './constants.js'
import type { Stream } from '@libp2p/interface'

/** A file the server may serve: always one the local index holds, inside a dataset. */
export interface ServableFile {
  /** Absolute path on disk. */
  path: string
  size: number
  chunkSize: number
  hashes: Uint8Array
  /** The file on disk must still have this mtime, or it changed since it was indexed. */
  mtimeMs: number
}

export interface ChunkSource {
  lookup: (contentId: Uint8Array) => ServableFile | undefined
}

export interface ChunkServerInit {
  maxConcurrentUploads?: number
  log?: (msg: string) => void
}

export interface ChunkServerStats {
  uploadsActive: number
  chunksServed: number
  bytesServed: number
  busyReplies: number
  badRequests: number
}

/** Serves `/shoal/chunk/1.0.0`: hash lists and chunks of indexed files, read from disk. */
export class ChunkServer {
  readonly stats: ChunkServerStats = { uploadsActive: 0, chunksServed: 0, bytesServed: 0, busyReplies: 0, badRequests: 0 }
  private readonly maxUploads: number

  constructor (private readonly source: ChunkSource, private readonly init: ChunkServerInit = {}) {
    this.maxUploads = init.maxConcurrentUploads ?? MAX_CONCURRENT_UPLOADS
  }

  /** The libp2p stream handler. */
  handle = async (stream: Stream): Promise<void> => {
    const pb = pbStream(stream, { maxDataLength: MAX_CHUNK_REQUEST_BYTES })
    const signal = AbortSignal.timeout(CHUNK_REQUEST_TIMEOUT_MS)
    try {
      const request = await pb.read(ChunkRequest, {
        signal: AbortSignal.any([signal, AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS)])
      })
      const reply = (r: Partial<ChunkResponse>): Promise<void> => pb.write(response(r), ChunkResponse, { signal })
      const problem = checkRequest(request)
      if (problem != null) {
        this.stats.badRequests++
        await reply({ status: ChunkStatus.BAD_REQUEST, message: problem, last: true })
        return
      }
      if (this.stats.uploadsActive >= this.maxUploads) {
        this.stats.busyReplies++
        await reply({ status: ChunkStatus.BUSY, retryAfterMs: BUSY_RETRY_AFTER_MS, last: true })
        return
      }
      const file = this.source.lookup(request.contentId)
      if (file == null || !(await unchangedOnDisk(file))) {
        await reply({ status: ChunkStatus.NOT_FOUND, last: true })
        return
      }
      this.stats.uploadsActive++
      try {
        await this.serve(request, file, reply)
      } finally {
        this.stats.uploadsActive--
      }
      await stream.close({ signal })
    } catch (err: any) {
      this.init.log?.(`chunk request failed: ${err.message}`)
      stream.abort(err)
    }
  }

  private async serve (request: ChunkRequest, file: ServableFile, reply: (r: Partial<ChunkResponse>) => Promise<void>): Promise<void> {
    const count = Math.ceil(file.size / file.chunkSize)
    if (request.kind === ChunkRequestKind.HASHES) {
      await reply({ status: ChunkStatus.FOUND, size: file.size, chunkSize: file.chunkSize, hashes: file.hashes as Uint8Array<ArrayBuffer>, last: true })
      return
    }
    const indices: number[] = []
    for (const range of request.ranges) {
      for (let i = range.start; i < range.start + range.count; i++) indices.push(i)
    }
    if (indices.some(i => i >= count)) {
      this.stats.badRequests++
      await reply({ status: ChunkStatus.BAD_REQUEST, message: `chunk index out of range (file has ${count})`, last: true })
      return
    }
    const handle = await open(file.path, 'r')
    try {
      for (let n = 0; n < indices.length; n++) {
        const index = indices[n]
        const length = Math.min(file.chunkSize, file.size - index * file.chunkSize)
        const data = Buffer.allocUnsafe(length)
        const { bytesRead } = await handle.read(data, 0, length, index * file.chunkSize)
        if (bytesRead !== length) {
          await reply({ status: ChunkStatus.NOT_FOUND, message: 'file shrank', last: true })
          return
        }
        await reply({ status: ChunkStatus.FOUND, index, data, last: n === indices.length - 1 })
        this.stats.chunksServed++
        this.stats.bytesServed += length
      }
    } finally {
      await handle.close()
    }
  }
}

function response (r: Partial<ChunkResponse>): ChunkResponse {
  return {
    status: ChunkStatus.FOUND, retryAfterMs: 0, size: 0, chunkSize: 0, hashes: new Uint8Array(0),
    index: 0, data: new Uint8Array(0), last: false, message: '', ...r
  }
}

function checkRequest (request: ChunkRequest): string | undefined {
  if (request.contentId.length !== HASH_BYTES) return 'content id must be 32 bytes'
  if (request.kind === ChunkRequestKind.HASHES) return undefined
  if (request.kind !== ChunkRequestKind.CHUNKS) return 'unknown request kind'
  let total = 0
  for (const range of request.ranges) {
    if (range.count === 0) return 'empty range'
    total += range.count
  }
  if (total === 0) return 'no chunks requested'
  if (total > MAX_CHUNKS_PER_REQUEST) return `more than ${MAX_CHUNKS_PER_REQUEST} chunks in one request`
  return undefined
}

async function unchangedOnDisk (file: ServableFile): Promise<boolean> {
  try {
    const st = await stat(file.path)
    return st.isFile() && st.size === file.size && Math.floor(st.mtimeMs) === file.mtimeMs
  } catch {
    return false
  }
}
