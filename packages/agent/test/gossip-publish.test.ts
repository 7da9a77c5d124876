import { describe, expect, it } from 'vitest'
import { Announcement, announceTopic, heartbeatTopic, type FileEntry, type NodeInfo } from '@shoal/wire'
import { FLOOD_ANNOUNCEMENT_MAX_BYTES, Gossip, type GossipInit } from '../src/gossip.js'

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

  it('sends heartbeats through the mesh only', async () => {
    const { gossip, published } = gossipOver([])
    await gossip.heartbeat()
    expect(published).toEqual([expect.objectContaining({ topic: heartbeatTopic('c'), flood: false })])
  })
})
