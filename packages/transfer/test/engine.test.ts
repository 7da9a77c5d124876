import { mkdtemp, readFile, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { hashBytes } from '@shoal/manifest'
import { Bitfield, TransferEngine, type ChunkClient, type ChunkFrame, type HashList, type Source } from '../src/index.js'

/**
 * The real engine against peers simulated in this process: a seed that serves every chunk of a
 * buffer, and receivers that advertise bitfields. Each peer counts what it was asked for.
 */
class FakeNetwork {
  readonly asked = new Map<string, number[]>()
  readonly failing = new Set<string>()

  constructor (private readonly data: Buffer, private readonly chunkSize: number, private readonly hashes: Uint8Array) {}

  client (): ChunkClient {
    const net = this
    return {
      async hashes (peerId: string): Promise<HashList> {
        if (net.failing.has(peerId)) throw new Error(`${peerId} is unreachable`)
        return { size: net.data.length, chunkSize: net.chunkSize, hashes: net.hashes }
      },
      async * chunks (peerId: string, _contentId: Uint8Array, indices: number[]): AsyncGenerator<ChunkFrame> {
        await new Promise(resolve => setImmediate(resolve))
        if (net.failing.has(peerId)) throw new Error(`${peerId} is unreachable`)
        net.asked.set(peerId, [...(net.asked.get(peerId) ?? []), ...indices])
        for (const index of indices) {
          yield { index, data: net.data.subarray(index * net.chunkSize, Math.min(net.data.length, (index + 1) * net.chunkSize)) }
        }
      }
    } as unknown as ChunkClient
  }
}

describe('TransferEngine with several receivers of one file', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'shoal-engine-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  const chunkSize = 256 * 1024
  const data = randomBytes(64 * chunkSize)
  const { contentId, hashes } = hashBytes(data, chunkSize)

  async function download (net: FakeNetwork, selfId: string, sources: () => Source[]): Promise<Record<string, number>> {
    const engine = new TransferEngine({ client: net.client(), selfId })
    const target = join(dir, `${selfId}.bin`)
    const result = await engine.download({
      target, contentId, size: data.length, chunkSize, mode: 0o644, mtimeMs: Date.now(), priority: 'normal', sources,
      commit: async (partial) => { await rename(partial, target) },
      signal: AbortSignal.timeout(30_000)
    })
    expect(Buffer.compare(await readFile(target), data)).toBe(0)
    return result.chunksBy
  }

  it('asks the seed only for its own stripe while another receiver is making progress', async () => {
    const net = new FakeNetwork(data, chunkSize, hashes)
    // The other receiver ('r2', after 'r1' in peer id order) holds more each time it is looked at.
    const other = new Bitfield(64)
    let looks = 0
    const chunksBy = await download(net, 'r1', () => {
      // It gains one chunk of its own stripe (odd blocks of 8 chunks) per look.
      for (let i = 0, added = 0; i < 64 && added < 1 + (looks++ === 0 ? 0 : 1); i++) {
        if (Math.floor(i / 8) % 2 === 1 && !other.has(i)) { other.set(i); added++ }
      }
      return [{ peerId: 'seed' }, { peerId: 'r2', have: Uint8Array.from(other.bytes) }]
    })
    const fromSeed = net.asked.get('seed') ?? []
    // Only its own blocks (0, 2, 4, 6) from the seed, except what end game or the very first
    // request (before it knew of r2) asked for.
    const foreign = fromSeed.filter(i => Math.floor(i / 8) % 2 === 1)
    expect(foreign.length).toBeLessThanOrEqual(8 + chunksBy.endgame)
    expect(chunksBy.stripe).toBeGreaterThan(0)
    expect((net.asked.get('r2') ?? []).length).toBeGreaterThan(0)
  })

  it('completes from the seed when a receiver advertises chunks but never serves them', async () => {
    const net = new FakeNetwork(data, chunkSize, hashes)
    net.failing.add('ghost')
    // The ghost claims every odd block: a stale record of a node that died mid-transfer.
    const ghost = new Bitfield(64)
    for (let i = 0; i < 64; i++) if (Math.floor(i / 8) % 2 === 1) ghost.set(i)
    await download(net, 'self', () => [{ peerId: 'seed' }, { peerId: 'ghost', have: Uint8Array.from(ghost.bytes) }])
    expect(new Set(net.asked.get('seed')).size).toBe(64)
  })
})
