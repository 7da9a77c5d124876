import { afterEach, describe, expect, it, vi } from 'vitest'
import { Announcement, Heartbeat, LoadLevel, announceTopic, heartbeatTopic, type FileEntry, type NodeInfo } from '@shoal/wire'
import { DIGEST_SUMMARY_FLOOR_PERIODS, FLOOD_ANNOUNCEMENT_MAX_BYTES, Gossip, type GossipInit } from '../src/gossip.js'

const PEER_ID = '12D3KooWGR9Kx7ymV36DrjRDn5KwKiSPiMMaeSp1pRXAiWgyFQyi'

function change (path: string, seq: number): FileEntry {
  return { dataset: 'd', path, size: 1, mtimeMs: 0, mode: 0o644, contentId: new Uint8Array(32), chunkSize: 262144, version: 1, deleted: false, seq, partial: false, have: new Uint8Array(0) }
}

/** A Gossip whose libp2p node is reduced to what publishing touches; it records every publish. */
function gossipOver (changes: FileEntry[]): { gossip: Gossip, published: Array<{ topic: string, data: Uint8Array, bytes: number, flood: boolean | undefined }> } {
  const published: Array<{ topic: string, data: Uint8Array, bytes: number, flood: boolean | undefined }> = []
  const self = (): NodeInfo => ({ peerId: PEER_ID, name: 'n', generation: 1, sequence: changes.length, role: 'persistent', addrs: [], datasets: ['d'] } as unknown as NodeInfo)
  const node = {
    peerId: { toString: () => PEER_ID },
    services: { pubsub: { publish: async (topic: string, data: Uint8Array, opts?: { floodPublish?: boolean }) => { published.push({ topic, data, bytes: data.length, flood: opts?.floodPublish }) } } }
  }
  const init = {
    node,
    cluster: { digest: () => new Uint8Array(32) },
    clusterName: 'c',
    self,
    changes: (after: number, limit: number) => changes.filter(c => c.seq > after).slice(0, limit),
    log: { debug () {}, info () {}, warn () {}, error () {} }
  } as unknown as GossipInit
  return { gossip: new Gossip(init), published }
}

describe('what goes to every connected peer and what through the mesh', () => {
  it('floods a small announcement to every connected subscriber', async () => {
    const { gossip, published } = gossipOver([change('weights/model.bin', 1)])
    await gossip.announce()
    expect(published).toHaveLength(1)
    expect(published[0]).toMatchObject({ topic: announceTopic('c'), flood: true })
    expect(published[0].bytes).toBeLessThanOrEqual(FLOOD_ANNOUNCEMENT_MAX_BYTES)
  })

  it('sends an announcement larger than FLOOD_ANNOUNCEMENT_MAX_BYTES through the mesh only', async () => {
    const changes = Array.from({ length: 400 }, (_, i) => change(`shards/${'x'.repeat(80)}/${i}.bin`, i + 1))
    const { gossip, published } = gossipOver(changes)
    await gossip.announce()
    expect(published).toHaveLength(1)
    expect(published[0].bytes).toBeGreaterThan(FLOOD_ANNOUNCEMENT_MAX_BYTES)
    expect(published[0]).toMatchObject({ topic: announceTopic('c'), flood: false })
    // The whole batch is in it: nothing was dropped or split to make it small.
    expect(Announcement.decode(published[0].data).entries).toHaveLength(400)
  })

  it('sends the progress of a download (partial entries only) through the mesh, and its commit to everyone', async () => {
    const progress = { ...change('weights/model.bin', 1), partial: true, have: new Uint8Array(128).fill(0x0f) }
    const { gossip, published } = gossipOver([progress])
    await gossip.announce()
    expect(published).toEqual([expect.objectContaining({ topic: announceTopic('c'), flood: false })])
    const committed = gossipOver([change('weights/model.bin', 1)])
    await committed.gossip.announce()
    expect(committed.published).toEqual([expect.objectContaining({ flood: true })])
  })

  it('sends heartbeats through the mesh only', async () => {
    const { gossip, published } = gossipOver([])
    await gossip.heartbeat()
    expect(published).toEqual([expect.objectContaining({ topic: heartbeatTopic('c'), flood: false })])
  })
})

describe('which differing digests lead to a summary', () => {
  afterEach(() => { vi.useRealTimers() })

  const PEER = '12D3KooWPhWVjmfRQ7Ug5fieMXLzoNxThCQtR3RacTMn61tGPgrc'
  const PERIOD_MS = 2000
  const OWN_DIGEST = new Uint8Array(32)

  /** A Gossip fed heartbeats by hand; each summary it starts is a dial, recorded (and failed). */
  function harness (addrs: string[] = []): { hear: (digest: Uint8Array) => Promise<void>, summaries: () => number, dialled: unknown[] } {
    const dialled: unknown[] = []
    const node = {
      peerId: { toString: () => PEER_ID },
      // Not connected to the peer, and libp2p knows no address of it.
      getConnections: () => [],
      peerStore: { get: async () => { throw new Error('not found') } },
      dialProtocol: async (target: unknown) => { dialled.push(target); throw new Error('no network in this test') }
    }
    const init = {
      node,
      cluster: { digest: () => OWN_DIGEST, heard () {}, isBehind: () => false, node: () => undefined },
      clusterName: 'c',
      self: () => ({}) as unknown as NodeInfo,
      changes: () => [],
      heartbeatPeriodMs: () => PERIOD_MS,
      log: { debug () {}, info () {}, warn () {}, error () {} }
    } as unknown as GossipInit
    const gossip = new Gossip(init)
    const info = { peerId: PEER, name: 'p', generation: 1, sequence: 1, role: 'persistent', addrs, datasets: ['d'] } as unknown as NodeInfo
    const hear = async (digest: Uint8Array): Promise<void> => {
      const data = Heartbeat.encode({ node: info, load: LoadLevel.OK, digest, sentMs: 0 })
      ;(gossip as unknown as { onMessage: (msg: unknown) => void }).onMessage({ type: 'signed', from: { toString: () => PEER }, topic: heartbeatTopic('c'), data })
      // Let the failed summary finish, so that the next one is not refused as still running.
      for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
    }
    return { hear, summaries: () => dialled.length, dialled }
  }

  const digest = (n: number): Uint8Array => new Uint8Array(32).fill(n)

  it('not while the peer\'s view keeps changing, except once every DIGEST_SUMMARY_FLOOR_PERIODS periods; at once when it stands still and differs', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(1_000_000_000)
    const { hear, summaries } = harness()
    // The first differing digest: no summary ran yet, so one is overdue.
    await hear(digest(1))
    expect(summaries()).toBe(1)
    // A view that changes at every heartbeat (changes in flight): no summary until the floor.
    const floorMs = DIGEST_SUMMARY_FLOOR_PERIODS * PERIOD_MS
    let n = 2
    for (let t = PERIOD_MS; t < floorMs; t += PERIOD_MS) {
      vi.setSystemTime(1_000_000_000 + t)
      await hear(digest(n++))
    }
    expect(summaries()).toBe(1)
    vi.setSystemTime(1_000_000_000 + floorMs)
    await hear(digest(n))
    expect(summaries()).toBe(2)
    // The same digest again a period later: the view stood still and still differs.
    vi.setSystemTime(1_000_000_000 + floorMs + PERIOD_MS)
    await hear(digest(n))
    expect(summaries()).toBe(3)
    // A matching digest forgets the peer's last one; a differing one after it starts afresh.
    vi.setSystemTime(1_000_000_000 + floorMs + 2 * PERIOD_MS)
    await hear(OWN_DIGEST)
    vi.setSystemTime(1_000_000_000 + floorMs + 3 * PERIOD_MS)
    await hear(digest(n))
    expect(summaries()).toBe(3)
  })

  it('never more than one per half period, even for a view that stands still', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(2_000_000_000)
    const { hear, summaries } = harness()
    await hear(digest(7))
    await hear(digest(7))
    expect(summaries()).toBe(1)
    vi.setSystemTime(2_000_000_000 + PERIOD_MS / 2)
    await hear(digest(7))
    expect(summaries()).toBe(2)
  })

  it('reaches a peer it is not connected to at the addresses of its heartbeat (those that parse), with its peer id', async () => {
    const { hear, dialled } = harness(['/ip4/10.0.0.7/tcp/4001', '/not-a-protocol/1'])
    await hear(digest(1))
    expect(dialled).toHaveLength(1)
    expect((dialled[0] as Array<{ toString: () => string }>).map(a => a.toString())).toEqual([`/ip4/10.0.0.7/tcp/4001/p2p/${PEER}`])
    // Without any address it dials the peer id and leaves the rest to libp2p, as before.
    const bare = harness()
    await bare.hear(digest(1))
    expect(String(bare.dialled[0])).toBe(PEER)
  })
})
