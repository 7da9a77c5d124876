// A peer that answers this agent's record pulls with pages that contradict each other, list a
// delta out of order, or break off half-way: the puller's failure paths, with a real agent.
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LoadLevel, ManifestPage, ManifestRequest, ManifestRequestKind, ManifestSummary, MIN_CHUNK_SIZE, PROTOCOL_MANIFEST, type FileEntry } from '@shoal/wire'
import { pbStream } from '@libp2p/utils'
import { Cluster, waitFor, type TestAgent } from './helpers/agents.js'
import { HostilePeer, complete, fileEntry, nodeInfo } from './helpers/hostile-peer.js'

function entry (path: string, seq: number): FileEntry {
  return fileEntry({ dataset: 'default', path, size: 1000, mtimeMs: Date.now(), mode: 0o644, contentId: randomBytes(32), chunkSize: MIN_CHUNK_SIZE, version: 1, seq })
}

type Mode = 'inconsistent' | 'disorder' | 'broken'

describe('a peer that serves its record in bad pages', () => {
  const cluster = new Cluster()
  let c: TestAgent
  let h: HostilePeer
  const generation = Date.now() - 60_000
  const node = (sequence: number, gen = generation): ReturnType<typeof nodeInfo> =>
    nodeInfo({ name: 'mallory', generation: gen, sequence, addrs: [], role: 'persistent', datasets: ['default'] })
  let mode: Mode = 'inconsistent'
  const served: Record<Mode, number> = { inconsistent: 0, disorder: 0, broken: 0 }

  beforeAll(async () => {
    await cluster.init()
    c = await cluster.add({ name: 'epsilon', extraArgs: ['--on-demand', 'default'] })
    h = await HostilePeer.start({ clusterKeyFile: c.clusterKeyFile })
    await h.handle(PROTOCOL_MANIFEST, async (stream) => {
      const pb = pbStream(stream, { maxDataLength: 1024 })
      try {
        const req = await pb.read(ManifestRequest, { signal: AbortSignal.timeout(2_000) })
        if (req.kind === ManifestRequestKind.SUMMARY) {
          await pb.write(complete(ManifestSummary, { nodes: [] }), ManifestSummary)
          await stream.close()
          return
        }
        served[mode]++
        const page = async (fields: Partial<ManifestPage>): Promise<void> => { await pb.write(complete(ManifestPage, fields), ManifestPage) }
        if (mode === 'inconsistent') {
          // A whole record whose second page belongs to another generation.
          await page({ node: node(10), full: true, entries: [entry('first-page.bin', 1)], last: false })
          await page({ node: node(10, generation + 1), full: true, entries: [entry('second-page.bin', 2)], last: true })
        } else if (mode === 'disorder') {
          // A delta whose changes are not in sequence order.
          await page({ node: node(10), full: false, entries: [entry('seven.bin', 7), entry('six.bin', 6)], last: true })
        } else {
          // A delta of two pages that ends after the first.
          await page({ node: node(10), full: false, entries: [entry('eight.bin', 8)], last: false })
          stream.abort(new Error('gone half-way'))
          return
        }
        await stream.close()
      } catch (err: any) {
        stream.abort(err)
      }
    })
    await h.connect(c.address)
  })

  afterAll(async () => {
    try {
      await h?.stop()
    } finally {
      await cluster.cleanup()
    }
  })

  async function rejectedFromHostile (): Promise<number> {
    return (await c.client.status()).gossip.rejectedFrom[h.peerId] ?? 0
  }

  async function viewOfHostile (): Promise<{ generation: number, sequence: number } | undefined> {
    return (await c.client.status()).view.nodes.find(n => n.peerId === h.peerId)
  }

  /** A heartbeat that shows the hostile record ahead of C's copy: C pulls it (half a heartbeat later). */
  async function provokePull (m: Mode): Promise<void> {
    mode = m
    const before = served[m]
    await waitFor(`C to pull the record (${m})`, async () => {
      await h.publishHeartbeat({ node: node(10), load: LoadLevel.OK, digest: new Uint8Array(0), sentMs: Date.now() })
      return served[m] > before
    }, 15_000, 300)
  }

  it('refuses a whole record whose pages disagree, counts it against the sender, and holds the node behind', async () => {
    const before = await rejectedFromHostile()
    await provokePull('inconsistent')
    await waitFor('the rejection to be counted', async () => await rejectedFromHostile() > before, 10_000, 100)
    // The record never completed: C knows the node only at (generation, 0), so it pulls again later.
    expect(await viewOfHostile()).toMatchObject({ generation, sequence: 0 })
    // What the first page said stays until a whole record replaces it (a node may say that much of
    // itself in any announcement); the page of the other generation was never applied.
    expect((await c.client.where('default', 'first-page.bin')).holders.map(x => x.peerId)).toEqual([h.peerId])
    expect((await c.client.where('default', 'second-page.bin')).holders).toEqual([])
  })

  it('refuses a delta whose changes are out of order, applying none of them', async () => {
    const before = await rejectedFromHostile()
    await provokePull('disorder')
    await waitFor('the rejection to be counted', async () => await rejectedFromHostile() > before, 10_000, 100)
    expect((await viewOfHostile())?.sequence).toBe(0)
    expect((await c.client.where('default', 'seven.bin')).holders).toEqual([])
    expect((await c.client.where('default', 'six.bin')).holders).toEqual([])
  })

  it('keeps the pages of a delta that arrived before the peer broke off, and keeps serving', async () => {
    const before = await rejectedFromHostile()
    await provokePull('broken')
    // The first page is merged as a delta up to its last change; the break is a failed pull, not bad input.
    await waitFor('C to hold the first page', async () => (await viewOfHostile())?.sequence === 8, 10_000, 100)
    expect((await c.client.where('default', 'eight.bin')).holders.map(x => x.peerId)).toEqual([h.peerId])
    expect(await rejectedFromHostile()).toBe(before)
    expect(c.child?.exitCode).toBeNull()
    expect((await c.client.status()).peerId).toBe(c.peerId)
  })
})
