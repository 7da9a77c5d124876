import { createHash } from 'node:crypto'
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chooseChunkSize, FileChangedError, hashBytes, hashFile, hashingStats } from '../src/index.js'

const KiB = 1024
const MiB = 1024 * KiB
const MIN = 256 * KiB
const MAX = 16 * MiB

// Expected values are computed here with node:crypto directly, never with the module's helpers.
function sha256 (data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest()
}

function expectedHashes (data: Uint8Array, chunkSize: number): { hashes: Buffer, contentId: Buffer } {
  const parts: Buffer[] = []
  for (let off = 0; off < data.length; off += chunkSize) parts.push(sha256(data.subarray(off, off + chunkSize)))
  const hashes = Buffer.concat(parts)
  return { hashes, contentId: sha256(hashes) }
}

/** Deterministic bytes that differ in every chunk (xorshift32), so reordered or repeated chunks show. */
function pseudoRandomBytes (length: number, seed: number): Buffer {
  const out = Buffer.alloc(length)
  let x = seed >>> 0 || 1
  let i = 0
  for (; i + 4 <= length; i += 4) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out.writeUInt32LE(x, i)
  }
  for (; i < length; i++) out[i] = (i * 7 + seed) & 0xff
  return out
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

let dir: string
let fileNo = 0

async function tempFile (data: Uint8Array): Promise<string> {
  const path = join(dir, `f${fileNo++}.bin`)
  await writeFile(path, data)
  return path
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-chunking-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('chooseChunkSize', () => {
  it('uses the minimum for small files, including the empty file', () => {
    expect(chooseChunkSize(0)).toBe(MIN)
    expect(chooseChunkSize(1)).toBe(MIN)
    expect(chooseChunkSize(10 * MiB)).toBe(MIN)
  })

  it('switches to the next power of two exactly when a file would exceed 1000 chunks', () => {
    expect(chooseChunkSize(1000 * MIN)).toBe(MIN)
    expect(chooseChunkSize(1000 * MIN + 1)).toBe(2 * MIN)
    expect(chooseChunkSize(1000 * 2 * MIN)).toBe(2 * MIN)
    expect(chooseChunkSize(1000 * 2 * MIN + 1)).toBe(4 * MIN)
    expect(chooseChunkSize(1000 * MiB)).toBe(MiB)
    expect(chooseChunkSize(1000 * MiB + 1)).toBe(2 * MiB)
  })

  it('clamps at 16 MiB for huge files (then more than 1000 chunks)', () => {
    expect(chooseChunkSize(1000 * MAX)).toBe(MAX)
    expect(chooseChunkSize(1000 * MAX + 1)).toBe(MAX)
    expect(chooseChunkSize(2 ** 40)).toBe(MAX)
    expect(chooseChunkSize(Number.MAX_SAFE_INTEGER)).toBe(MAX)
  })

  it('always returns the smallest power of two in [256 KiB, 16 MiB] giving at most 1000 chunks', () => {
    const sizes = [0, 1, 4095, MIN - 1, MIN, MIN + 1, 3 * MiB + 5, 255 * MiB, 700 * MiB + 3, 1234 * MiB,
      5 * 1024 * MiB + 1, 16 * 1000 * MiB - 1, 100 * 1024 * MiB]
    for (let s = 1; s < 2 ** 45; s = Math.floor(s * 1.37) + 1) sizes.push(s)
    for (const size of sizes) {
      const c = chooseChunkSize(size)
      expect(Number.isInteger(Math.log2(c)), `size ${size} -> ${c}`).toBe(true)
      expect(c).toBeGreaterThanOrEqual(MIN)
      expect(c).toBeLessThanOrEqual(MAX)
      if (c < MAX) expect(Math.ceil(size / c), `size ${size} -> ${c}`).toBeLessThanOrEqual(1000)
      if (c > MIN) expect(Math.ceil(size / (c / 2)), `size ${size} -> ${c}`).toBeGreaterThan(1000)
    }
  })

  it('keeps a previous size that is within 2x of the ideal', () => {
    const size = 1000 * MiB // ideal 1 MiB
    expect(chooseChunkSize(size)).toBe(MiB)
    expect(chooseChunkSize(size, MiB)).toBe(MiB)
    expect(chooseChunkSize(size, 2 * MiB)).toBe(2 * MiB)
    expect(chooseChunkSize(size, 512 * KiB)).toBe(512 * KiB)
  })

  it('keeps the chunk boundaries of a file that grows a little past a threshold', () => {
    expect(chooseChunkSize(1000 * MIN + 1, MIN)).toBe(MIN)
    expect(chooseChunkSize(1000 * MiB + 4096, MiB)).toBe(MiB)
  })

  it('drops a previous size that is more than 2x off', () => {
    const size = 1000 * MiB // ideal 1 MiB
    expect(chooseChunkSize(size, 4 * MiB)).toBe(MiB)
    expect(chooseChunkSize(size, 256 * KiB)).toBe(MiB)
    expect(chooseChunkSize(0, 1 * MiB)).toBe(MIN)
    expect(chooseChunkSize(2 ** 40, 4 * MiB)).toBe(MAX)
  })

  it('ignores a previous size outside [256 KiB, 16 MiB]', () => {
    expect(chooseChunkSize(0, 128 * KiB)).toBe(MIN)
    expect(chooseChunkSize(2 ** 40, 32 * MiB)).toBe(MAX)
    expect(chooseChunkSize(10, 0)).toBe(MIN)
  })

  it('never returns a size that is not a power of two, whatever the previous size was', () => {
    // A previous size comes from the persisted index; a bad one must not produce an entry
    // that every peer's checkChunkSize rejects.
    // 1000 MiB: the ideal is 1 MiB, so each of these is within 2x of it.
    for (const previous of [768 * KiB, MiB + 1, 1536 * KiB, 2 * MiB - 1]) {
      const c = chooseChunkSize(1000 * MiB, previous)
      expect(Number.isInteger(Math.log2(c)), `previous ${previous} -> ${c}`).toBe(true)
    }
  })
})

describe('hashFile', () => {
  it('hashes an empty file to zero chunks; the content id is SHA-256 of nothing', async () => {
    const path = await tempFile(new Uint8Array(0))
    const h = await hashFile(path, MIN)
    expect(h.size).toBe(0)
    expect(h.chunkSize).toBe(MIN)
    expect(h.hashes.length).toBe(0)
    expect(hex(h.contentId)).toBe(EMPTY_SHA256)
  })

  it('hashes a one-byte file to one chunk', async () => {
    const path = await tempFile(Uint8Array.of(0x42))
    const h = await hashFile(path, MIN)
    expect(h.size).toBe(1)
    expect(hex(h.hashes)).toBe(sha256(Uint8Array.of(0x42)).toString('hex'))
    expect(hex(h.contentId)).toBe(sha256(sha256(Uint8Array.of(0x42))).toString('hex'))
  })

  it.each([1, 2, 3])('hashes a file of exactly %ix the chunk size to that many chunks', async (n) => {
    const data = pseudoRandomBytes(n * MIN, 100 + n)
    const h = await hashFile(await tempFile(data), MIN)
    const want = expectedHashes(data, MIN)
    expect(h.size).toBe(n * MIN)
    expect(h.hashes.length).toBe(n * 32)
    expect(hex(h.hashes)).toBe(want.hashes.toString('hex'))
    expect(hex(h.contentId)).toBe(want.contentId.toString('hex'))
  })

  it('gives a trailing partial chunk its own hash (chunk size + 1 bytes)', async () => {
    const data = pseudoRandomBytes(MIN + 1, 7)
    const h = await hashFile(await tempFile(data), MIN)
    expect(h.hashes.length).toBe(64)
    expect(hex(h.hashes.subarray(32))).toBe(sha256(data.subarray(MIN)).toString('hex'))
    expect(hex(h.contentId)).toBe(expectedHashes(data, MIN).contentId.toString('hex'))
  })

  it('hashes correctly with chunks larger than its read buffer (4 MiB chunks, 2.5 chunks)', async () => {
    const chunkSize = 4 * MiB
    const data = pseudoRandomBytes(2 * chunkSize + chunkSize / 2 + 3, 99)
    const h = await hashFile(await tempFile(data), chunkSize)
    const want = expectedHashes(data, chunkSize)
    expect(h.chunkSize).toBe(chunkSize)
    expect(h.hashes.length).toBe(3 * 32)
    expect(hex(h.hashes)).toBe(want.hashes.toString('hex'))
    expect(hex(h.contentId)).toBe(want.contentId.toString('hex'))
  })

  it('hashes a sparse file of more than 1000 chunks (1001 x 256 KiB + 17 bytes) chunk by chunk', async () => {
    const size = 1001 * MIN + 17
    const markers: Array<{ at: number, data: Buffer }> = [
      { at: 0, data: Buffer.from('head of the file') },
      { at: 1 * MIN - 5, data: Buffer.from('crosses 0|1') }, // spans the boundary of chunks 0 and 1
      { at: 500 * MIN + 12345, data: Buffer.from('middle') },
      { at: 1000 * MIN - 3, data: Buffer.from('999|1000') }, // spans chunks 999 and 1000
      { at: size - 17, data: Buffer.from('seventeen bytes!!') }
    ]
    expect(markers[4].data.length).toBe(17)
    const path = join(dir, 'sparse.bin')
    const fh = await open(path, 'w')
    try {
      await fh.truncate(size)
      for (const m of markers) await fh.write(m.data, 0, m.data.length, m.at)
    } finally {
      await fh.close()
    }
    expect(chooseChunkSize(size)).toBeGreaterThan(MIN) // 256 KiB is more than 1000 chunks here

    const h = await hashFile(path, MIN, { expectedSize: size })

    const count = Math.ceil(size / MIN)
    expect(count).toBe(1002)
    const zeroChunkHash = sha256(Buffer.alloc(MIN))
    const expected: Buffer[] = []
    for (let i = 0; i < count; i++) {
      const start = i * MIN
      const end = Math.min(size, start + MIN)
      const touching = markers.filter(m => m.at < end && m.at + m.data.length > start)
      if (touching.length === 0 && end - start === MIN) {
        expected.push(zeroChunkHash)
        continue
      }
      const chunk = Buffer.alloc(end - start)
      for (const m of touching) {
        for (let j = 0; j < m.data.length; j++) {
          const pos = m.at + j
          if (pos >= start && pos < end) chunk[pos - start] = m.data[j]
        }
      }
      expected.push(sha256(chunk))
    }
    expect(h.size).toBe(size)
    expect(h.chunkSize).toBe(MIN)
    expect(h.hashes.length).toBe(count * 32)
    for (let i = 0; i < count; i++) {
      const got = hex(h.hashes.subarray(i * 32, (i + 1) * 32))
      if (got !== expected[i].toString('hex')) expect.fail(`chunk ${i} hash differs`)
    }
    expect(hex(h.contentId)).toBe(sha256(Buffer.concat(expected)).toString('hex'))
  })

  it('raises FileChangedError when the size read differs from expectedSize', async () => {
    const path = await tempFile(pseudoRandomBytes(1000, 3))
    await expect(hashFile(path, MIN, { expectedSize: 1000 })).resolves.toMatchObject({ size: 1000 })
    for (const expectedSize of [999, 1001, 0]) {
      const err = await hashFile(path, MIN, { expectedSize }).then(() => undefined, (e: unknown) => e)
      expect(err, `expectedSize ${expectedSize}`).toBeInstanceOf(FileChangedError)
      expect((err as Error).name).toBe('FileChangedError')
    }
  })

  it('counts hashed files and bytes in hashingStats', async () => {
    const path = await tempFile(pseudoRandomBytes(5000, 11))
    const before = { ...hashingStats }
    await hashFile(path, MIN)
    expect(hashingStats.filesHashed).toBe(before.filesHashed + 1)
    expect(hashingStats.bytesHashed).toBe(before.bytesHashed + 5000)
  })

  it('stops when its signal is aborted', async () => {
    const path = await tempFile(pseudoRandomBytes(3 * MIN, 5))
    const controller = new AbortController()
    controller.abort()
    await expect(hashFile(path, MIN, { signal: controller.signal })).rejects.toThrow()
  })

  it('rejects for a file that does not exist', async () => {
    await expect(hashFile(join(dir, 'no-such-file'), MIN)).rejects.toMatchObject({ code: 'ENOENT' })
  })
})

describe('hashBytes', () => {
  it('matches the independent computation and hashFile for the same bytes', async () => {
    const cases: Array<[number, number]> = [
      [0, MIN], [1, MIN], [MIN - 1, MIN], [MIN, MIN], [MIN + 1, MIN], [3 * MIN, MIN],
      [3 * MIN + 12345, MIN], [MiB + 7, 512 * KiB], [2 * MiB, 2 * MiB], [5 * MiB + 1, 2 * MiB],
      // Not a wire chunk size, but hashFile must still cut at chunk boundaries that are not
      // multiples of its 1 MiB read buffer.
      [4 * MiB + 3, 1536 * KiB]
    ]
    for (const [size, chunkSize] of cases) {
      const data = pseudoRandomBytes(size, size + 1)
      const fromBytes = hashBytes(data, chunkSize)
      const fromFile = await hashFile(await tempFile(data), chunkSize)
      const want = expectedHashes(data, chunkSize)
      const label = `size ${size}, chunk ${chunkSize}`
      expect(fromBytes.size, label).toBe(size)
      expect(fromBytes.chunkSize, label).toBe(chunkSize)
      expect(hex(fromBytes.hashes), label).toBe(want.hashes.toString('hex'))
      expect(hex(fromBytes.contentId), label).toBe(want.contentId.toString('hex'))
      expect(hex(fromFile.hashes), label).toBe(hex(fromBytes.hashes))
      expect(hex(fromFile.contentId), label).toBe(hex(fromBytes.contentId))
    }
  })

  it('gives different content ids for different bytes and for different chunk sizes', () => {
    const a = pseudoRandomBytes(MiB, 1)
    const b = Buffer.from(a)
    b[MiB - 1] ^= 1
    expect(hex(hashBytes(a, MIN).contentId)).not.toBe(hex(hashBytes(b, MIN).contentId))
    expect(hex(hashBytes(a, MIN).contentId)).not.toBe(hex(hashBytes(a, 512 * KiB).contentId))
  })
})
