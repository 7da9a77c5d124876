import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { HASH_BYTES, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, TARGET_CHUNKS_PER_FILE } from '@shoal/wire'

/** Bytes read per read() call while hashing: bounds memory whatever the chunk size. */
const READ_BUFFER_BYTES = 1024 * 1024

/** Chunk hashes and content id of one file's bytes. */
export interface FileHashes {
  size: number
  chunkSize: number
  /** SHA-256 of each chunk, concatenated (chunkCount x 32 bytes). */
  hashes: Uint8Array
  /** SHA-256 over `hashes`: a one-level Merkle root. */
  contentId: Uint8Array
}

/** Counters the tests read to prove what was (not) hashed. */
export const hashingStats = { filesHashed: 0, bytesHashed: 0 }

/**
 * The chunk size for a file: the power of two that gives about TARGET_CHUNKS_PER_FILE chunks,
 * clamped to [MIN_CHUNK_SIZE, MAX_CHUNK_SIZE]. A previous size is kept unless it is 2x off,
 * so that a file that grows a little keeps its chunk boundaries.
 */
export function chooseChunkSize (size: number, previous?: number): number {
  let ideal = MIN_CHUNK_SIZE
  while (ideal < MAX_CHUNK_SIZE && size / ideal > TARGET_CHUNKS_PER_FILE) ideal *= 2
  if (previous != null && previous >= MIN_CHUNK_SIZE && previous <= MAX_CHUNK_SIZE &&
      (previous & (previous - 1)) === 0 && previous <= ideal * 2 && previous >= ideal / 2) {
    return previous
  }
  return ideal
}

export function chunkCount (size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize)
}

/** Length of chunk `index` of a file of `size` bytes. */
export function chunkLength (size: number, chunkSize: number, index: number): number {
  return Math.min(chunkSize, size - index * chunkSize)
}

export function sha256 (data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest())
}

export function contentIdOf (hashes: Uint8Array): Uint8Array {
  return sha256(hashes)
}

/** The hash of chunk `index` inside a concatenated hash list. */
export function chunkHashAt (hashes: Uint8Array, index: number): Uint8Array {
  return hashes.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES)
}

export class FileChangedError extends Error {
  override name = 'FileChangedError'
}

/**
 * Hashes a file chunk by chunk, streaming: memory stays at one read buffer whatever the size.
 * `expectedSize` guards against a file that grows or shrinks while it is read.
 */
export async function hashFile (path: string, chunkSize: number, options: { expectedSize?: number, signal?: AbortSignal } = {}): Promise<FileHashes> {
  const handle = await open(path, 'r')
  try {
    const hashes: Uint8Array[] = []
    const buffer = Buffer.allocUnsafe(Math.min(READ_BUFFER_BYTES, chunkSize))
    let hash = createHash('sha256')
    let inChunk = 0
    let size = 0
    for (;;) {
      options.signal?.throwIfAborted()
      const want = Math.min(buffer.length, chunkSize - inChunk)
      const { bytesRead } = await handle.read(buffer, 0, want, null)
      if (bytesRead === 0) break
      hash.update(buffer.subarray(0, bytesRead))
      inChunk += bytesRead
      size += bytesRead
      if (inChunk === chunkSize) {
        hashes.push(hash.digest())
        hash = createHash('sha256')
        inChunk = 0
      }
    }
    if (inChunk > 0) hashes.push(hash.digest())
    if (options.expectedSize != null && size !== options.expectedSize) {
      throw new FileChangedError(`${path} changed size while being hashed`)
    }
    hashingStats.filesHashed++
    hashingStats.bytesHashed += size
    const all = new Uint8Array(hashes.length * HASH_BYTES)
    hashes.forEach((h, i) => all.set(h, i * HASH_BYTES))
    return { size, chunkSize, hashes: all, contentId: contentIdOf(all) }
  } finally {
    await handle.close()
  }
}

/** Hashes bytes held in memory (tests, small payloads) exactly as hashFile would. */
export function hashBytes (data: Uint8Array, chunkSize: number): FileHashes {
  const count = chunkCount(data.length, chunkSize)
  const all = new Uint8Array(count * HASH_BYTES)
  for (let i = 0; i < count; i++) {
    all.set(sha256(data.subarray(i * chunkSize, (i + 1) * chunkSize)), i * HASH_BYTES)
  }
  return { size: data.length, chunkSize, hashes: all, contentId: contentIdOf(all) }
}
