import { pbStream } from '@libp2p/utils'
import {
  ChunkRequest, ChunkRequestKind, ChunkResponse, ChunkStatus, HASH_BYTES, MAX_CHUNK_RESPONSE_BYTES, checkChunkSize, checkChunkCount
} from '@shoal/wire'
import { BusyError, NotFoundError, ProtocolError } from './errors.js'
import type { Stream } from '@libp2p/interface'

/** Opens a stream of `protocol` to a peer; the agent supplies it (the transfer engine knows no node). */
export type OpenStream = (peerId: string, protocol: string, options: { signal: AbortSignal }) => Promise<Stream>

export interface HashList {
  size: number
  chunkSize: number
  hashes: Uint8Array
}

export interface ChunkFrame {
  index: number
  data: Uint8Array
}

/** Client side of `/shoal/chunk/1.0.0`. */
export class ChunkClient {
  constructor (private readonly openStream: OpenStream, private readonly protocol: string) {}

  async hashes (peerId: string, contentId: Uint8Array, signal: AbortSignal): Promise<HashList> {
    const { pb, stream } = await this.request(peerId, { kind: ChunkRequestKind.HASHES, contentId: Uint8Array.from(contentId), ranges: [] }, signal)
    try {
      const reply = await pb.read(ChunkResponse, { signal })
      throwForStatus(reply)
      checkChunkSize(reply.chunkSize, 'hashes.chunkSize')
      const count = Math.ceil(reply.size / reply.chunkSize)
      checkChunkCount(count, 'hashes.count')
      if (reply.hashes.length !== count * HASH_BYTES) throw new ProtocolError(`hash list has ${reply.hashes.length} bytes, expected ${count * HASH_BYTES}`)
      await stream.close({ signal }).catch(() => {})
      return { size: reply.size, chunkSize: reply.chunkSize, hashes: reply.hashes }
    } catch (err: any) {
      stream.abort(err)
      throw err
    }
  }

  /** Yields the requested chunks as they arrive; the caller verifies each one. */
  async * chunks (peerId: string, contentId: Uint8Array, indices: number[], signal: AbortSignal): AsyncGenerator<ChunkFrame> {
    const ranges: Array<{ start: number, count: number }> = []
    for (const i of indices) {
      const last = ranges[ranges.length - 1]
      if (last != null && last.start + last.count === i) last.count++
      else ranges.push({ start: i, count: 1 })
    }
    const wanted = new Set(indices)
    const { pb, stream } = await this.request(peerId, { kind: ChunkRequestKind.CHUNKS, contentId: Uint8Array.from(contentId), ranges }, signal)
    try {
      while (wanted.size > 0) {
        const reply = await pb.read(ChunkResponse, { signal })
        throwForStatus(reply)
        if (!wanted.has(reply.index)) throw new ProtocolError(`unrequested chunk ${reply.index}`)
        wanted.delete(reply.index)
        yield { index: reply.index, data: reply.data }
        if (reply.last && wanted.size > 0) throw new ProtocolError(`stream ended with ${wanted.size} chunks missing`)
      }
      await stream.close({ signal }).catch(() => {})
    } catch (err: any) {
      stream.abort(err)
      throw err
    } finally {
      // The consumer may stop early (an abort): never leave the stream half-open.
      if (wanted.size > 0 && stream.status === 'open') stream.abort(new Error('request abandoned'))
    }
  }

  private async request (peerId: string, request: ChunkRequest, signal: AbortSignal): Promise<{ pb: ReturnType<typeof pbStream>, stream: Stream }> {
    const stream = await this.openStream(peerId, this.protocol, { signal })
    const pb = pbStream(stream, { maxDataLength: MAX_CHUNK_RESPONSE_BYTES, maxBufferSize: 2 * MAX_CHUNK_RESPONSE_BYTES })
    try {
      await pb.write(request, ChunkRequest, { signal })
    } catch (err: any) {
      stream.abort(err)
      throw err
    }
    return { pb, stream }
  }
}

function throwForStatus (reply: ChunkResponse): void {
  switch (reply.status) {
    case ChunkStatus.FOUND: return
    case ChunkStatus.BUSY: throw new BusyError(Math.min(reply.retryAfterMs, 60_000))
    case ChunkStatus.NOT_FOUND: throw new NotFoundError(reply.message || 'not found')
    default: throw new ProtocolError(`peer answered ${ChunkStatus[reply.status] ?? reply.status}: ${reply.message}`)
  }
}
