import { open, unlink, utimes, chmod } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { HASH_BYTES } from '@shoal/wire'
import { chunkHashAt, contentIdOf, chunkLength, sha256, PARTIAL_SUFFIX } from '@shoal/manifest'
import { CHUNK_REQUEST_TIMEOUT_MS, MAX_CHUNKS_PER_REQUEST, MAX_PEER_FAILURES, MAX_REQUEST_BYTES, REQUESTS_IN_FLIGHT_PER_PEER } from './constants.js'
import { BusyError, CorruptChunkError, NoHoldersError, NotFoundError } from './errors.js'
import type { ChunkClient, HashList } from './client.js'

export interface DownloadRequest {
  /** Absolute path the verified file is renamed to. */
  target: string
  contentId: Uint8Array
  size: number
  chunkSize: number
  mode: number
  mtimeMs: number
  /** The peers that currently hold this content; asked again when all known ones failed. */
  holders: () => string[]
  /**
   * Called with the verified, fsynced partial file. It decides (under the caller's lock) whether
   * the target may be replaced, renames, and records the new file; or throws to refuse.
   */
  commit: (partialPath: string, hashes: Uint8Array) => Promise<void>
  signal: AbortSignal
}

export interface DownloadResult {
  bytes: number
  chunks: number
  /** Bytes received per peer. */
  fromPeers: Record<string, number>
}

/** The partial file of a download, beside its target (the scanner ignores the suffix). */
export function partialPathFor (target: string, contentId: Uint8Array): string {
  return join(dirname(target), `.${basename(target)}.${Buffer.from(contentId.subarray(0, 6)).toString('hex')}${PARTIAL_SUFFIX}`)
}

interface PeerState { failures: number, inFlight: number, busyUntil: number }

/**
 * Fetches one file from every holder at once, chunk by chunk: each chunk is verified against
 * the hash list (itself verified against the content id) before it is written; a peer that
 * fails repeatedly is dropped; the finished file is fsynced and handed to `commit`.
 */
export async function downloadFile (client: ChunkClient, request: DownloadRequest): Promise<DownloadResult> {
  const { signal } = request
  const list = await fetchHashList(client, request)
  const count = Math.ceil(request.size / request.chunkSize)
  const partial = partialPathFor(request.target, request.contentId)
  const handle = await open(partial, 'w', 0o600)
  const result: DownloadResult = { bytes: 0, chunks: 0, fromPeers: {} }
  let committed = false
  try {
    await handle.truncate(request.size)
    // Receivers start at different offsets so that they fetch different chunks from each other.
    const offset = count === 0 ? 0 : Math.floor(Math.random() * count)
    const queue: number[] = []
    for (let i = 0; i < count; i++) queue.push((i + offset) % count)
    const peers = new Map<string, PeerState>()
    const chunksPerRequest = Math.max(1, Math.min(MAX_CHUNKS_PER_REQUEST, Math.floor(MAX_REQUEST_BYTES / request.chunkSize)))
    let remaining = count
    let lastError: Error | undefined

    const runRequest = async (peerId: string, state: PeerState, batch: number[]): Promise<void> => {
      state.inFlight++
      const pending = new Set(batch)
      try {
        const requestSignal = AbortSignal.any([signal, AbortSignal.timeout(CHUNK_REQUEST_TIMEOUT_MS)])
        for await (const frame of client.chunks(peerId, request.contentId, batch, requestSignal)) {
          const expected = chunkLength(request.size, request.chunkSize, frame.index)
          if (frame.data.length !== expected || Buffer.compare(sha256(frame.data), chunkHashAt(list.hashes, frame.index)) !== 0) {
            throw new CorruptChunkError(`chunk ${frame.index} from ${peerId} does not match its hash`)
          }
          await handle.write(frame.data, 0, frame.data.length, frame.index * request.chunkSize)
          pending.delete(frame.index)
          remaining--
          result.chunks++
          result.bytes += frame.data.length
          result.fromPeers[peerId] = (result.fromPeers[peerId] ?? 0) + frame.data.length
        }
        state.failures = 0
      } catch (err: any) {
        if (signal.aborted) throw err
        lastError = err
        if (err instanceof BusyError) state.busyUntil = Date.now() + err.retryAfterMs
        else state.failures += err instanceof NotFoundError || err instanceof CorruptChunkError ? MAX_PEER_FAILURES : 1
      } finally {
        state.inFlight--
        queue.unshift(...pending)
      }
    }

    const running = new Set<Promise<void>>()
    while (remaining > 0) {
      signal.throwIfAborted()
      for (const peerId of request.holders()) {
        if (!peers.has(peerId)) peers.set(peerId, { failures: 0, inFlight: 0, busyUntil: 0 })
      }
      const now = Date.now()
      const usable = [...peers.entries()].filter(([, s]) => s.failures < MAX_PEER_FAILURES)
      if (usable.length === 0 && running.size === 0) {
        throw new NoHoldersError(`no peer can serve ${request.target}${lastError != null ? ` (last error: ${lastError.message})` : ''}`)
      }
      let started = false
      for (const [peerId, state] of usable) {
        while (queue.length > 0 && state.inFlight < REQUESTS_IN_FLIGHT_PER_PEER && state.busyUntil <= now) {
          const batch = takeBatch(queue, chunksPerRequest)
          const p = runRequest(peerId, state, batch).finally(() => running.delete(p))
          running.add(p)
          started = true
        }
      }
      if (running.size > 0) {
        await Promise.race(running)
      } else if (!started) {
        // Every usable peer is busy: wait for the earliest to come back.
        const wake = Math.min(...usable.map(([, s]) => s.busyUntil)) - Date.now()
        await new Promise(resolve => setTimeout(resolve, Math.max(10, Math.min(wake, 5000))))
      }
    }
    await Promise.all(running)
    await handle.sync()
    await handle.close()
    await chmod(partial, request.mode & 0o7777 || 0o644)
    await utimes(partial, new Date(), new Date(request.mtimeMs))
    await request.commit(partial, list.hashes)
    committed = true
    return result
  } finally {
    await handle.close().catch(() => {})
    if (!committed) await unlink(partial).catch(() => {})
  }
}

/** Takes up to `max` chunks from the queue, contiguous where possible. */
function takeBatch (queue: number[], max: number): number[] {
  const batch = [queue.shift() as number]
  while (batch.length < max && queue.length > 0 && queue[0] === batch[batch.length - 1] + 1) batch.push(queue.shift() as number)
  return batch.sort((a, b) => a - b)
}

async function fetchHashList (client: ChunkClient, request: DownloadRequest): Promise<HashList> {
  let lastError: Error | undefined
  for (const peerId of request.holders()) {
    try {
      const list = await client.hashes(peerId, request.contentId, AbortSignal.any([request.signal, AbortSignal.timeout(CHUNK_REQUEST_TIMEOUT_MS)]))
      if (list.size !== request.size || list.chunkSize !== request.chunkSize ||
          list.hashes.length !== Math.ceil(request.size / request.chunkSize) * HASH_BYTES ||
          Buffer.compare(contentIdOf(list.hashes), request.contentId) !== 0) {
        lastError = new CorruptChunkError(`hash list from ${peerId} does not match the content id`)
        continue
      }
      return list
    } catch (err: any) {
      request.signal.throwIfAborted()
      lastError = err
    }
  }
  throw new NoHoldersError(`no peer could send the hash list of ${request.target}${lastError != null ? ` (last error: ${lastError.message})` : ''}`)
}

