import { describe, expect, it, vi } from 'vitest'
import { ClusterManifest } from '@shoal/manifest'
import type { FileEntry, NodeInfo } from '@shoal/wire'
import { Matured, PeerViews, TombstoneCollector, behind, seenThreshold, tombstoneOptions, type RecordVersion, type TombstoneHost } from '../src/tombstones.js'
import { silentLogger } from '../src/util.js'

const DS = 'd'

function entry (path: string, seq: number, version: number, deleted = false): FileEntry {
  return {
    dataset: DS, path, size: deleted ? 0 : 100, mtimeMs: 1_700_000_000_000, mode: deleted ? 0 : 0o644,
    contentId: deleted ? new Uint8Array(0) : new Uint8Array(32).fill(version), chunkSize: deleted ? 0 : 262144,
    version, deleted, seq, partial: false, have: new Uint8Array(0)
  }
}

function info (generation: number, sequence: number): NodeInfo {
  return { name: 'n', generation, sequence, addrs: [], role: 'persistent', datasets: [DS] }
}

const views = (m: Record<string, Record<string, RecordVersion>>) => (peerId: string, subject: string): RecordVersion | undefined => m[peerId]?.[subject]

describe('seenThreshold', () => {
  const cur = { generation: 5, sequence: 10 }
  it('is the least that every other known node has seen, this node counting as holding the current record', () => {
    const seen = views({ B: { X: { generation: 5, sequence: 8 } }, C: { X: { generation: 5, sequence: 9 } } })
    expect(seenThreshold('X', cur, ['X', 'A', 'B', 'C'], 'A', p => seen(p, 'X'))).toBe(8)
    expect(seenThreshold('X', cur, ['X', 'A', 'C'], 'A', p => seen(p, 'X'))).toBe(9)
    // Only the owner and this node: the whole record.
    expect(seenThreshold('X', cur, ['X', 'A'], 'A', p => seen(p, 'X'))).toBe(10)
    // This node's own record: the owner's view never counts.
    expect(seenThreshold('A', cur, ['A'], 'A', () => undefined)).toBe(10)
  })

  it('counts an unknown peer, or one holding another generation, as having seen nothing', () => {
    const seen = views({ B: { X: { generation: 4, sequence: 50 } }, C: { X: { generation: 5, sequence: 9 } } })
    expect(seenThreshold('X', cur, ['A', 'B', 'C'], 'A', p => seen(p, 'X'))).toBe(0)
    expect(seenThreshold('X', cur, ['A', 'C', 'D'], 'A', p => seen(p, 'X'))).toBe(0)
    expect(seenThreshold('X', cur, ['A', 'C'], 'A', p => seen(p, 'X'))).toBe(9)
  })

  it('never exceeds the current sequence, and rejects an invalid current version', () => {
    const seen = views({ B: { X: { generation: 5, sequence: 99 } } })
    expect(seenThreshold('X', cur, ['A', 'B'], 'A', p => seen(p, 'X'))).toBe(10)
    expect(() => seenThreshold('X', { generation: 5, sequence: -1 }, [], 'A', () => undefined)).toThrow(RangeError)
    expect(() => seenThreshold('X', { generation: Number.NaN, sequence: 1 }, [], 'A', () => undefined)).toThrow(RangeError)
  })

  it('names the nodes behind a given sequence', () => {
    const seen = views({ B: { X: { generation: 5, sequence: 8 } }, C: { X: { generation: 5, sequence: 9 } }, D: { X: { generation: 4, sequence: 10 } } })
    expect(behind('X', cur, ['X', 'A', 'B', 'C', 'D', 'E'], 'A', p => seen(p, 'X'), 9)).toEqual(['B', 'D', 'E'])
  })
})

describe('PeerViews', () => {
  it('keeps the latest view per peer, from summaries', () => {
    const v = new PeerViews()
    v.fromSummary('B', [{ peerId: 'X', generation: 1, sequence: 3 }, { peerId: 'Y', generation: 2, sequence: -1 }], 1000)
    expect(v.seen('B', 'X')).toEqual({ generation: 1, sequence: 3 })
    expect(v.seen('B', 'Y')).toBeUndefined() // invalid numbers are ignored
    v.fromSummary('B', [{ peerId: 'X', generation: 1, sequence: 2 }], 2000)
    expect(v.seen('B', 'X')).toEqual({ generation: 1, sequence: 2 })
    expect(v.get('B')?.at).toBe(2000)
  })

  it('shares one view among peers that matched the same digest, and builds a new one for a new digest', () => {
    const v = new PeerViews()
    let calls = 0
    const summary = (seq: number) => () => { calls++; return [{ peerId: 'X', generation: 1, sequence: seq }] }
    const d1 = new Uint8Array(32).fill(1)
    v.fromMatchingDigest('B', d1, summary(4), 10)
    v.fromMatchingDigest('C', Uint8Array.from(d1), summary(4), 11)
    expect(calls).toBe(1)
    expect(v.get('B')?.view).toBe(v.get('C')?.view)
    v.fromMatchingDigest('B', new Uint8Array(32).fill(2), summary(5), 12)
    expect(calls).toBe(2)
    expect(v.seen('B', 'X')?.sequence).toBe(5)
    expect(v.seen('C', 'X')?.sequence).toBe(4)
    v.retain(new Set(['B']))
    expect(v.get('C')).toBeUndefined()
    expect(v.size).toBe(1)
  })
})

describe('Matured', () => {
  it('gives a threshold only once it has held for the minimum age', () => {
    const m = new Matured(100)
    expect(m.observe('X', 1, 5, 1000)).toBe(0)
    expect(m.observe('X', 1, 5, 1099)).toBe(0)
    expect(m.observe('X', 1, 8, 1100)).toBe(5)
    expect(m.observe('X', 1, 8, 1199)).toBe(5)
    expect(m.observe('X', 1, 8, 1200)).toBe(8)
  })

  it('starts over on a new generation or when the threshold goes down', () => {
    const m = new Matured(100)
    m.observe('X', 1, 5, 1000)
    expect(m.observe('X', 1, 5, 1100)).toBe(5)
    expect(m.observe('X', 2, 5, 1150)).toBe(0)
    expect(m.observe('X', 2, 5, 1250)).toBe(5)
    expect(m.observe('X', 2, 3, 1300)).toBe(0)
    expect(m.observe('X', 2, 3, 1400)).toBe(3)
    expect(() => new Matured(-1)).toThrow(RangeError)
  })
})

/** A collector over a real ClusterManifest; this node is A. */
function setup (options: { known?: string[], connected?: string[] } = {}) {
  const cluster = new ClusterManifest()
  const forgotten: number[] = []
  const refreshed: string[] = []
  const dropped: string[] = []
  const floors: number[] = []
  const host: TombstoneHost = {
    cluster,
    selfId: 'A',
    knownNodes: () => options.known ?? [],
    connected: () => new Set(options.connected ?? []),
    refresh: (peerId) => { refreshed.push(peerId) },
    forgetOwn: async (upTo) => { forgotten.push(upTo) },
    saveVersionFloor: (v) => { floors.push(v) },
    onDropped: (dataset, path) => { dropped.push(`${dataset}/${path}`) },
    log: silentLogger
  }
  const opts = { ...tombstoneOptions(100), refreshAfterMs: 400 }
  const gc = new TombstoneCollector(host, opts, 0)
  return { cluster, gc, forgotten, refreshed, dropped, floors, opts }
}

/** Every peer in `peers` holds exactly `cluster`'s current view. */
function allSee (gc: TombstoneCollector, cluster: ClusterManifest, peers: string[], now: number): void {
  for (const p of peers) gc.views.fromSummary(p, cluster.summary(), now)
}

describe('TombstoneCollector', () => {
  it('drops a tombstone once every known node has seen it for the minimum age, here and in the local index', async () => {
    const { cluster, gc, forgotten, dropped, floors, opts } = setup()
    // A wrote x and y, then deleted x (seq 3, version 2). B and C hold copies, and delete them too.
    cluster.replaceRecord('A', info(100, 3), [entry('y', 2, 1), entry('x', 3, 2, true)])
    cluster.replaceRecord('B', info(200, 2), [entry('y', 1, 1), entry('x', 2, 2, true)])
    cluster.replaceRecord('C', info(300, 1), [entry('x', 1, 2, true)])
    // C has not seen A's deletion yet.
    gc.views.fromSummary('B', cluster.summary(), 0)
    gc.views.fromSummary('C', [{ peerId: 'A', generation: 100, sequence: 2 }, { peerId: 'B', generation: 200, sequence: 2 }, { peerId: 'C', generation: 300, sequence: 1 }], 0)
    let t = 0
    for (let i = 0; i < 12; i++) await gc.pass(t += opts.intervalMs)
    expect(cluster.tombstoneCount('A')).toBe(1)
    expect(gc.status().waitingFor).toEqual(['C'])
    // B's and C's tombstones were seen by all: gone after the minimum age.
    expect(cluster.tombstoneCount('B')).toBe(0)
    expect(cluster.tombstoneCount('C')).toBe(0)

    gc.views.fromSummary('C', cluster.summary(), t)
    await gc.pass(t += opts.intervalMs)
    expect(cluster.tombstoneCount('A')).toBe(1) // seen by all, but not for long enough yet
    expect(gc.status().waitingFor).toEqual([])
    while (t < 2 * opts.minAgeMs + 1000) await gc.pass(t += opts.intervalMs)
    expect(cluster.tombstoneCount('A')).toBe(0)
    expect(cluster.newest(DS, 'x')).toBeUndefined()
    expect(cluster.newest(DS, 'y')?.version).toBe(1)
    expect(forgotten).toEqual([3])
    expect(gc.horizon('A', 100)).toBe(3)
    expect(gc.horizon('A', 101)).toBe(0)
    expect(gc.versionFloor).toBe(2)
    expect(floors).toEqual([2])
    expect(dropped.filter(p => p === 'd/x')).toHaveLength(3)
    expect(gc.status()).toMatchObject({ held: 0, own: 0, dropped: 3, waitingFor: [] })
  })

  it('keeps a tombstone while another node holds a live copy the tombstone beats', async () => {
    const { cluster, gc, opts } = setup()
    cluster.replaceRecord('A', info(100, 2), [entry('x', 2, 2, true)])
    // B has seen the deletion but not applied it yet: its copy is live at version 1.
    cluster.replaceRecord('B', info(200, 1), [entry('x', 1, 1)])
    let t = 0
    allSee(gc, cluster, ['B'], t)
    while (t < 3 * opts.minAgeMs) await gc.pass(t += opts.intervalMs)
    expect(cluster.tombstoneCount('A')).toBe(1)
    expect(cluster.newest(DS, 'x')?.deleted).toBe(true)
    // B applies the deletion; then both tombstones go.
    cluster.applyDelta('B', info(200, 2), 1, [entry('x', 2, 2, true)])
    allSee(gc, cluster, ['B'], t)
    while (t < 6 * opts.minAgeMs) await gc.pass(t += opts.intervalMs)
    expect(cluster.tombstoneCount('A') + cluster.tombstoneCount('B')).toBe(0)
  })

  it('is not held back by a newer live copy (the path written again)', async () => {
    const { cluster, gc, opts } = setup()
    cluster.replaceRecord('A', info(100, 2), [entry('x', 2, 2, true)])
    cluster.replaceRecord('B', info(200, 1), [entry('x', 1, 3)])
    let t = 0
    allSee(gc, cluster, ['B'], t)
    while (t < 2 * opts.minAgeMs) await gc.pass(t += opts.intervalMs)
    expect(cluster.tombstoneCount('A')).toBe(0)
    expect(cluster.newest(DS, 'x')).toMatchObject({ version: 3, deleted: false })
  })

  it('counts every known node, also one without a record (remembered) and one holding another generation', async () => {
    const { cluster, gc, opts } = setup({ known: ['D'] })
    cluster.replaceRecord('A', info(100, 1), [entry('x', 1, 2, true)])
    cluster.replaceRecord('B', info(200, 0), [])
    let t = 0
    allSee(gc, cluster, ['B'], t)
    while (t < 2 * opts.minAgeMs) await gc.pass(t += opts.intervalMs)
    expect(cluster.tombstoneCount('A')).toBe(1)
    expect(gc.status().waitingFor).toEqual(['D'])
    // D's view holds an older generation of A's record.
    gc.views.fromSummary('D', [{ peerId: 'A', generation: 99, sequence: 1 }], t)
    while (t < 4 * opts.minAgeMs) await gc.pass(t += opts.intervalMs)
    expect(cluster.tombstoneCount('A')).toBe(1)
    gc.views.fromSummary('D', [{ peerId: 'A', generation: 100, sequence: 1 }], t)
    while (t < 6 * opts.minAgeMs) await gc.pass(t += opts.intervalMs)
    expect(cluster.tombstoneCount('A')).toBe(0)
  })

  it('asks connected peers whose views are old for their summaries, a few at a time', async () => {
    const peers = ['B', 'C', 'D', 'E', 'F']
    const { cluster, gc, refreshed, opts } = setup({ known: peers, connected: ['B', 'C', 'D', 'E'] })
    cluster.replaceRecord('A', info(100, 1), [entry('x', 1, 2, true)])
    // Nobody has been seen to hold A's deletion.
    await gc.pass(1000)
    expect(gc.status().waitingFor).toEqual(peers)
    await vi.waitFor(() => { expect(refreshed).toHaveLength(opts.maxRefreshes) }, { timeout: 5000, interval: 10 })
    expect(new Set(refreshed).size).toBe(opts.maxRefreshes)
    expect(refreshed).not.toContain('F') // not connected
    // Asked ones are not asked again within refreshAfterMs; the remaining connected one is.
    await gc.pass(1100)
    await vi.waitFor(() => { expect(refreshed).toHaveLength(4) }, { timeout: 5000, interval: 10 })
    expect(new Set(refreshed)).toEqual(new Set(['B', 'C', 'D', 'E']))
    // A peer seen recently is not asked.
    for (const p of peers) gc.views.fromSummary(p, [], 1500)
    await gc.pass(1600)
    await gc.pass(1700)
    expect(refreshed).toHaveLength(4)
    gc.stop()
  })

  it('collects 100,000 tombstones in slices, yielding to the event loop', async () => {
    const { cluster, gc, forgotten, opts } = setup()
    const n = 100_000
    const entries: FileEntry[] = []
    for (let i = 1; i <= n; i++) entries.push(entry(`f${i}`, i, 2, true))
    cluster.replaceRecord('A', info(100, n), entries)
    cluster.replaceRecord('B', info(200, 0), [])
    allSee(gc, cluster, ['B'], 0)
    await gc.pass(1)
    let ticks = 0
    let ticking = true
    const tick = (): void => { ticks++; if (ticking) setImmediate(tick) }
    setImmediate(tick)
    await gc.pass(opts.minAgeMs + 1)
    ticking = false
    expect(cluster.tombstoneCount('A')).toBe(0)
    expect(forgotten).toEqual([n])
    // The pass gave the event loop a turn at least once per slice.
    expect(ticks).toBeGreaterThanOrEqual(n / opts.slice)
  })

  it('rejects invalid options', () => {
    expect(() => tombstoneOptions(0)).toThrow(RangeError)
    expect(() => tombstoneOptions(1.5)).toThrow(RangeError)
  })
})
