import { open, stat } from 'node:fs/promises'
import { pbStream } from '@libp2p/utils'
import {
  ChunkRequest, ChunkRequestKind, ChunkResponse, ChunkStatus, HASH_BYTES, MAX_CHUNK_REQUEST_BYTES
} from '@shoal/wire'
import {
  BUSY_RETRY_AFTER_MS, CHUNK_REQUEST_TIMEOUT_MS, MAX_CHUNKS_PER_REQUEST, MAX_CONCURRENT_UPLOADS, MAX_UPLOADS_PER_PEER,
  OVERLOADED_RETRY_AFTER_MS, REQUEST_READ_TIMEOUT_MS
} from './constants.js'
import { TokenBucket } from './token-bucket.js'
import type { Stream } from '@libp2p/interface'

/**
 * A file the server may serve: one the local index holds (inside a dataset), or the partial file
 * of a download in progress (only its verified chunks).
 */
export interface ServableFile {
  /** Absolute path on disk. */
  path: string
  size: number
  chunkSize: number
  hashes: Uint8Array
  /** A complete file must still have this mtime, or it changed since it was indexed. */
  mtimeMs?: number
  /** For a partial file: whether chunk `index` is held and verified. */
  has?: (index: number) => boolean
}

export interface ChunkSource {
  lookup: (contentId: Uint8Array) => ServableFile | undefined
}

export interface ChunkServerInit {
  maxConcurrentUploads?: number
  maxUploadsPerPeer?: number
  /** Upload rate limits in bytes per second (0 = unlimited). */
  uploadRate?: number
  perPeerUploadRate?: number
  /** This node's load: when overloaded, new requests are answered BUSY. */
  loadLevel?: () => 'ok' | 'busy' | 'overloaded'
  /** Test fault switch: corrupt every chunk served (proves that receivers verify). */
  corruptChunks?: boolean
  log?: (msg: string) => void
}

export interface ChunkServerStats {
  uploadsActive: number
  /** Requests waiting for upload bandwidth or being served. */
  queued: number
  chunksServed: number
  bytesServed: number
  busyReplies: number
  badRequests: number
  bytesToPeer: Record<string, number>
}

/** Serves `/shoal/chunk/1.0.0`: hash lists and chunks of indexed files, read from disk. */
export class ChunkServer {
  readonly stats: ChunkServerStats = { uploadsActive: 0, queued: 0, chunksServed: 0, bytesServed: 0, busyReplies: 0, badRequests: 0, bytesToPeer: {} }
  private readonly maxUploads: number
  private readonly maxPerPeer: number
  private readonly perPeer = new Map<string, number>()
  private readonly bucket: TokenBucket
  private readonly peerBuckets = new Map<string, TokenBucket>()

  constructor (private readonly source: ChunkSource, private readonly init: ChunkServerInit = {}) {
    this.maxUploads = init.maxConcurrentUploads ?? MAX_CONCURRENT_UPLOADS
    this.maxPerPeer = init.maxUploadsPerPeer ?? MAX_UPLOADS_PER_PEER
    this.bucket = new TokenBucket(init.uploadRate ?? 0)
  }

  private peerBucket (peerId: string): TokenBucket {
    let bucket = this.peerBuckets.get(peerId)
    if (bucket == null) {
      if (this.peerBuckets.size > 10_000) this.peerBuckets.clear()
      bucket = new TokenBucket(this.init.perPeerUploadRate ?? 0)
      this.peerBuckets.set(peerId, bucket)
    }
    return bucket
  }

  /** The libp2p stream handler. */
  handle = async (stream: Stream, connection?: { remotePeer: { toString: () => string } }): Promise<void> => {
    const peerId = connection?.remotePeer.toString() ?? 'unknown'
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
        await stream.close({ signal }).catch(() => {})
        return
      }
      const overloaded = this.init.loadLevel?.() === 'overloaded'
      if (request.kind === ChunkRequestKind.CHUNKS &&
          (overloaded || this.stats.uploadsActive >= this.maxUploads || (this.perPeer.get(peerId) ?? 0) >= this.maxPerPeer)) {
        this.stats.busyReplies++
        await reply({ status: ChunkStatus.BUSY, retryAfterMs: overloaded ? OVERLOADED_RETRY_AFTER_MS : BUSY_RETRY_AFTER_MS, last: true })
        await stream.close({ signal }).catch(() => {})
        return
      }
      const file = this.source.lookup(request.contentId)
      if (file == null || !(await unchangedOnDisk(file))) {
        await reply({ status: ChunkStatus.NOT_FOUND, last: true })
        await stream.close({ signal }).catch(() => {})
        return
      }
      this.stats.uploadsActive++
      this.perPeer.set(peerId, (this.perPeer.get(peerId) ?? 0) + 1)
      try {
        await this.serve(request, file, reply, peerId, signal)
      } finally {
        this.stats.uploadsActive--
        const n = (this.perPeer.get(peerId) ?? 1) - 1
        if (n <= 0) this.perPeer.delete(peerId)
        else this.perPeer.set(peerId, n)
      }
      await stream.close({ signal })
    } catch (err: any) {
      this.init.log?.(`chunk request failed: ${err.message}`)
      stream.abort(err)
    }
  }

  private async serve (request: ChunkRequest, file: ServableFile, reply: (r: Partial<ChunkResponse>) => Promise<void>, peerId: string, signal: AbortSignal): Promise<void> {
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
    if (file.has != null && !indices.every(i => file.has?.(i) === true)) {
      await reply({ status: ChunkStatus.NOT_FOUND, message: 'chunk not held yet', last: true })
      return
    }
    const handle = await open(file.path, 'r')
    try {
      for (let n = 0; n < indices.length; n++) {
        const index = indices[n]
        const length = Math.min(file.chunkSize, file.size - index * file.chunkSize)
        this.stats.queued++
        try {
          await this.bucket.take(length, signal)
          await this.peerBucket(peerId).take(length, signal)
        } finally {
          this.stats.queued--
        }
        const data = Buffer.allocUnsafe(length)
        const { bytesRead } = await handle.read(data, 0, length, index * file.chunkSize)
        if (bytesRead !== length) {
          await reply({ status: ChunkStatus.NOT_FOUND, message: 'file shrank', last: true })
          return
        }
        if (this.init.corruptChunks === true && length > 0) data[0] ^= 0xff
        await reply({ status: ChunkStatus.FOUND, index, data, last: n === indices.length - 1 })
        this.stats.chunksServed++
        this.stats.bytesServed += length
        if (this.stats.bytesToPeer[peerId] != null || Object.keys(this.stats.bytesToPeer).length < 10_000) {
          this.stats.bytesToPeer[peerId] = (this.stats.bytesToPeer[peerId] ?? 0) + length
        }
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
  if (file.mtimeMs == null) return true
  try {
    const st = await stat(file.path)
    return st.isFile() && st.size === file.size && Math.floor(st.mtimeMs) === file.mtimeMs
  } catch {
    return false
  }
}
