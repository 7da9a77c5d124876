import { mkdtemp, readFile, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { hashBytes } from '@shoal/manifest'
import { Bitfield, TransferEngine, type ChunkClient, type ChunkFrame, type DownloadResult, type HashList, type Source } from '../src/index.js'

/**
 * The real engine against peers simulated in this process: a seed that serves every chunk of a
 * buffer, and receivers that advertise bitfields. Each peer counts what it was asked for.
 */
class FakeNetwork {
  readonly asked = new Map<string, number[]>()
  /** Every request each peer received, as its list of chunks. */
  readonly requests = new Map<string, number[][]>()
  readonly failing = new Set<string>()
  /** How long each chunk takes to arrive (0: at once). */
  delayMs = 0
  /** Per peer: how long each of its chunks takes to arrive, instead of `delayMs`. */
  readonly delayMsOf = new Map<string, number>()

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
        net.requests.set(peerId, [...(net.requests.get(peerId) ?? []), indices])
        const delayMs = net.delayMsOf.get(peerId) ?? net.delayMs
        for (const index of indices) {
          if (delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs))
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

  async function download (net: FakeNetwork, selfId: string, sources: () => Source[], receivers?: string[]): Promise<DownloadResult['chunksBy']> {
    return (await downloadResult(net, selfId, sources, receivers)).chunksBy
  }

  async function downloadResult (net: FakeNetwork, selfId: string, sources: () => Source[], receivers?: string[]): Promise<DownloadResult> {
    const engine = new TransferEngine({ client: net.client(), selfId })
    const target = join(dir, `${selfId}.bin`)
    const result = await engine.download({
      target, contentId, size: data.length, chunkSize, mode: 0o644, mtimeMs: Date.now(), priority: 'normal', sources, receivers,
      commit: async (partial) => { await rename(partial, target) },
      signal: AbortSignal.timeout(30_000)
    })
    expect(Buffer.compare(await readFile(target), data)).toBe(0)
    return result
  }

  it('shares the seed by stripes with another receiver', async () => {
    const net = new FakeNetwork(data, chunkSize, hashes)
    // 64 chunks in blocks of 8 (one 2 MiB request); 'r1' < 'r2': r1 owns the even blocks, r2
    // the odd ones. r2 already holds blocks 1, 3 and 5, not 7 (it has not got there yet).
    const other = new Bitfield(64)
    for (let i = 0; i < 64; i++) if ([1, 3, 5].includes(Math.floor(i / 8))) other.set(i)
    const chunksBy = await download(net, 'r1', () => [{ peerId: 'seed' }, { peerId: 'r2', have: Uint8Array.from(other.bytes) }])
    const block = (i: number): number => Math.floor(i / 8)
    const fromSeed = net.asked.get('seed') ?? []
    // Never from the seed what r2 holds; r2's unfetched block 7 only once r1 had nothing else to do.
    expect(fromSeed.filter(i => [1, 3, 5].includes(block(i)))).toEqual([])
    expect(new Set(fromSeed.filter(i => block(i) % 2 === 0)).size).toBe(32)
    expect(chunksBy.stripe).toBe(32)
    // Block 7 came from the seed (helping, or raced in the end game), and from nowhere else.
    expect(chunksBy.help + chunksBy.endgame).toBe(8)
    expect(new Set(net.asked.get('r2')).size).toBe(24)
  })

  it('completes when another receiver owns a stripe but never fetches it (a node that died on start)', async () => {
    const net = new FakeNetwork(data, chunkSize, hashes)
    // 'r2' announced that it receives the file, then nothing: it owns the odd blocks, holds none.
    const chunksBy = await download(net, 'r1', () => [{ peerId: 'seed' }, { peerId: 'r2', have: new Uint8Array(8) }])
    expect(new Set(net.asked.get('seed')).size).toBe(64)
    expect(net.asked.get('r2')).toBeUndefined()
    expect(chunksBy.stripe).toBe(32)
    expect(chunksBy.help + chunksBy.endgame).toBe(32)
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

  it('with the receivers named by a directive, fixes the stripes at once: nothing outside its own stripe from the seed while the owners are live', async () => {
    const net = new FakeNetwork(data, chunkSize, hashes)
    // Three targets r1 < r2 < r3 own blocks 0,3,6 / 1,4,7 / 2,5. r2 holds its blocks; r3 has not
    // announced itself yet (it is given time to): r1 takes r3's blocks from the seed only once its
    // own stripe is all requested, one request at a time, from the far end.
    const other = new Bitfield(64)
    for (let i = 0; i < 64; i++) if (Math.floor(i / 8) % 3 === 1) other.set(i)
    const chunksBy = await download(net, 'r1', () => [{ peerId: 'seed' }, { peerId: 'r2', have: Uint8Array.from(other.bytes) }], ['r2', 'r3', 'r1'])
    const block = (i: number): number => Math.floor(i / 8)
    const fromSeed = net.asked.get('seed') ?? []
    expect(fromSeed.filter(i => block(i) % 3 === 1)).toEqual([])
    expect(chunksBy.stripe).toBe(24)
    expect(new Set(net.asked.get('r2')).size).toBe(24)
    // r3's two blocks: helped (or raced at the end), each fetched once.
    expect(chunksBy.help + chunksBy.endgame).toBe(16)
    expect(fromSeed.filter(i => block(i) % 3 === 2).sort((a, b) => a - b)).toEqual([...Array(16).keys()].map(k => k < 8 ? 16 + k : 40 + k - 8))
  })

  it('takes over the stripe of a target that announced itself and then went away (killed), without waiting for it', async () => {
    const net = new FakeNetwork(data, chunkSize, hashes)
    // Chunks take a while (the first request alone outlasts SOURCES_REFRESH_MS), so that the
    // download looks at its sources again long before its own stripe is done.
    net.delayMs = 50
    // r2 is offered as a receiver holding nothing for the first two looks at the sources (the
    // hash list, the first refresh), then no more (its record went silent): it is not live.
    let looks = 0
    const result = await downloadResult(net, 'r1', () => looks++ < 2 ? [{ peerId: 'seed' }, { peerId: 'r2', have: new Uint8Array(8) }] : [{ peerId: 'seed' }], ['r1', 'r2'])
    const fromSeed = net.asked.get('seed') ?? []
    expect(fromSeed.length).toBe(64)
    expect(new Set(fromSeed).size).toBe(64)
    expect(net.asked.get('r2')).toBeUndefined()
    // r1 found r2 not live (long before the 30 s a target never seen is given) and took its
    // blocks as its own stripe, not as help.
    expect(result.stripes?.minReceivers).toBe(1)
    expect(result.chunksBy.stripe + result.chunksBy.endgame).toBe(64)
  })

  it('asks another receiver for about a second of its throughput per request, not a whole block: what it passes on arrives sooner', async () => {
    const net = new FakeNetwork(data, chunkSize, hashes)
    // r2 holds its stripe (the odd blocks) and sends a chunk every 400 ms (about 650 KB/s per
    // request): a block (8 chunks) would take 3.2 s, a second of its throughput is 2 chunks.
    net.delayMsOf.set('r2', 400)
    const other = new Bitfield(64)
    for (let i = 0; i < 64; i++) if (Math.floor(i / 8) % 2 === 1) other.set(i)
    const chunksBy = await download(net, 'r1', () => [{ peerId: 'seed' }, { peerId: 'r2', have: Uint8Array.from(other.bytes) }], ['r1', 'r2'])
    const toR2 = net.requests.get('r2') ?? []
    expect(toR2.flat().sort((a, b) => a - b)).toEqual([...Array(64).keys()].filter(i => other.has(i)))
    // Its first request, before anything is measured, is one chunk; none is a whole block.
    expect(toR2[0]).toHaveLength(1)
    expect(Math.max(...toR2.map(r => r.length))).toBeLessThanOrEqual(2)
    // The seed is still asked for whole blocks of this node's stripe.
    expect((net.requests.get('seed') ?? []).every(r => r.length === 8)).toBe(true)
    expect(chunksBy.stripe).toBe(32)
  })

  /** Downloads `bytes` from one seed; returns the chunk count of every checkpoint reported. */
  async function checkpointsOf (net: FakeNetwork, bytes: Buffer, id: Uint8Array): Promise<number[]> {
    const engine = new TransferEngine({ client: net.client(), selfId: 'r1' })
    const target = join(dir, `checkpoints-${bytes.length}.bin`)
    const seen: number[] = []
    await engine.download({
      target, contentId: id, size: bytes.length, chunkSize, mode: 0o644, mtimeMs: Date.now(), priority: 'normal',
      sources: () => [{ peerId: 'seed' }],
      onCheckpoint: (have) => { seen.push(have.count) },
      commit: async (partial) => { await rename(partial, target) },
      signal: AbortSignal.timeout(30_000)
    })
    expect(Buffer.compare(await readFile(target), bytes)).toBe(0)
    return seen
  }

  it('reports a file of one block only by its commit (no checkpoint), and a larger one at its start and end', async () => {
    const small = data.subarray(0, 4 * chunkSize)
    const smallHashes = hashBytes(small, chunkSize)
    const reported: number[][] = []
    for (const [bytes, list] of [[small, smallHashes], [data, { contentId, hashes }]] as const) {
      reported.push(await checkpointsOf(new FakeNetwork(bytes, chunkSize, list.hashes), bytes, list.contentId))
    }
    expect(reported[0]).toEqual([])
    expect(reported[1][0]).toBe(0)
    expect(reported[1][reported[1].length - 1]).toBe(64)
  })

  it('reports no checkpoint of a file of one block before its first chunk arrives, however slow it is', async () => {
    const small = data.subarray(0, 2 * chunkSize)
    const list = hashBytes(small, chunkSize)
    const net = new FakeNetwork(small, chunkSize, list.hashes)
    // Each chunk takes 1.2 s: the loop wakes several times (every SOURCES_REFRESH_MS) and passes
    // CHECKPOINT_INTERVAL_MS before the first chunk is held.
    net.delayMs = 1200
    const seen = await checkpointsOf(net, small, list.contentId)
    // The chunk held after 1.2 s is reported (a slow transfer still checkpoints its progress);
    // neither nothing before it nor the whole file, which its commit reports.
    expect(seen).toEqual([1])
  })

  it('asks a target that completed the file for anything, and never the seed for that target\'s stripe', async () => {
    const net = new FakeNetwork(data, chunkSize, hashes)
    // r2 is a target that already holds the whole file: it owns the odd blocks and serves them.
    const chunksBy = await download(net, 'r1', () => [{ peerId: 'seed' }, { peerId: 'r2' }], ['r1', 'r2'])
    const fromSeed = net.asked.get('seed') ?? []
    expect(fromSeed.filter(i => Math.floor(i / 8) % 2 === 1)).toEqual([])
    expect(new Set(net.asked.get('r2')).size).toBeGreaterThanOrEqual(32)
    expect(chunksBy.help).toBe(0)
  })
})
