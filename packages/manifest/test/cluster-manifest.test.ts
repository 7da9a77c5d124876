import { describe, expect, it } from 'vitest'
import type { FileEntry, NodeInfo } from '@shoal/wire'
import { ClusterManifest, type DeltaResult, type RecordLoad } from '../src/index.js'

const DS = 'models'

/** A content id: 32 bytes of one value, so tests can name contents by a number. */
function cid (n: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(32).fill(n)
}

function entry (path: string, fields: { version?: number, seq: number, content?: number, deleted?: boolean, dataset?: string }): FileEntry {
  const deleted = fields.deleted ?? false
  return {
    dataset: fields.dataset ?? DS,
    path,
    size: deleted ? 0 : 1000,
    mtimeMs: 1_700_000_000_000,
    mode: 0o644,
    contentId: deleted ? new Uint8Array(0) : cid(fields.content ?? 1),
    chunkSize: deleted ? 0 : 256 * 1024,
    version: fields.version ?? 1,
    deleted,
    seq: fields.seq
  }
}

function info (generation: number, sequence: number, name = 'node'): NodeInfo {
  return { name, generation, sequence, addrs: ['/ip4/10.0.0.1/tcp/4001'], role: 'persistent' }
}

interface Change { peerId: string, changed: FileEntry[] }

function withListener (): { m: ClusterManifest, changes: Change[] } {
  const m = new ClusterManifest()
  const changes: Change[] = []
  m.onChange((peerId, changed) => changes.push({ peerId, changed: [...changed] }))
  return { m, changes }
}

/** What a user sees of one node: its (generation, sequence) and version/seq/deleted of each path. */
function snapshot (m: ClusterManifest, peerId: string): unknown {
  const rec = m.node(peerId)
  if (rec == null) return undefined
  return {
    generation: rec.info.generation,
    sequence: rec.info.sequence,
    entries: [...m.entriesOf(peerId)]
      .map(e => `${e.dataset}/${e.path}@v${e.version}s${e.seq}${e.deleted ? 'x' : ''}c${e.contentId[0] ?? '-'}`)
      .sort()
  }
}

const paths = (changed: FileEntry[]): string[] => changed.map(e => e.path).sort()

describe('ClusterManifest.applyDelta', () => {
  it('accepts a first delta from sequence 0 of an unknown node as its whole record', () => {
    const { m, changes } = withListener()
    const r = m.applyDelta('A', info(1, 2, 'alpha'), 0, [entry('a', { seq: 1 }), entry('b', { seq: 2 })], 1000)
    expect(r).toBe('applied')
    expect(snapshot(m, 'A')).toEqual({ generation: 1, sequence: 2, entries: ['models/a@v1s1c1', 'models/b@v1s2c1'] })
    expect(m.node('A')?.lastHeard).toBe(1000)
    expect(m.node('A')?.info.name).toBe('alpha')
    expect(m.fileCount).toBe(2)
    expect(m.holdersOf(DS, 'a').map(h => h.peerId)).toEqual(['A'])
    expect(changes).toEqual([{ peerId: 'A', changed: [entry('a', { seq: 1 }), entry('b', { seq: 2 })] }])
  })

  it('reports a gap for an unknown node whose delta does not start at 0, and stores nothing', () => {
    const { m, changes } = withListener()
    expect(m.applyDelta('A', info(1, 5), 3, [entry('a', { seq: 4 })])).toBe('gap')
    expect(m.node('A')).toBeUndefined()
    expect(m.fileCount).toBe(0)
    expect(m.holdersOf(DS, 'a')).toEqual([])
    expect(changes).toEqual([])
    expect(m.isBehind('A', info(1, 5))).toBe(true)
  })

  it('applies in-order deltas one after the other', () => {
    const { m, changes } = withListener()
    expect(m.applyDelta('A', info(1, 2), 0, [entry('a', { seq: 1 }), entry('b', { seq: 2 })])).toBe('applied')
    expect(m.applyDelta('A', info(1, 3), 2, [entry('a', { seq: 3, version: 2, content: 2 })])).toBe('applied')
    expect(m.applyDelta('A', info(1, 5), 3, [entry('c', { seq: 4 }), entry('b', { seq: 5, version: 2, deleted: true })])).toBe('applied')
    expect(snapshot(m, 'A')).toEqual({
      generation: 1,
      sequence: 5,
      entries: ['models/a@v2s3c2', 'models/b@v2s5xc-', 'models/c@v1s4c1']
    })
    expect(changes.map(c => paths(c.changed))).toEqual([['a', 'b'], ['a'], ['b', 'c']])
    expect(m.isBehind('A', info(1, 5))).toBe(false)
  })

  it('reports a gap for an out-of-order delta and changes nothing, then applies once the gap is filled', () => {
    const { m, changes } = withListener()
    m.applyDelta('A', info(1, 2), 0, [entry('a', { seq: 1 }), entry('b', { seq: 2 })], 1000)
    const before = snapshot(m, 'A')
    const delta4: [NodeInfo, number, FileEntry[]] = [info(1, 4), 3, [entry('a', { seq: 4, version: 3, content: 4 })]]
    expect(m.applyDelta('A', ...delta4, 2000)).toBe('gap')
    expect(snapshot(m, 'A')).toEqual(before)
    expect(m.newest(DS, 'a')?.version).toBe(1)
    expect(changes.length).toBe(1)
    expect(m.isBehind('A', info(1, 4))).toBe(true)

    expect(m.applyDelta('A', info(1, 3), 2, [entry('a', { seq: 3, version: 2, content: 3 })])).toBe('applied')
    expect(m.applyDelta('A', ...delta4)).toBe('applied')
    expect(snapshot(m, 'A')).toEqual({ generation: 1, sequence: 4, entries: ['models/a@v3s4c4', 'models/b@v1s2c1'] })
  })

  it('treats a duplicated delta as stale and does not notify twice', () => {
    const { m, changes } = withListener()
    m.applyDelta('A', info(1, 1), 0, [entry('a', { seq: 1 })])
    const delta: [NodeInfo, number, FileEntry[]] = [info(1, 2), 1, [entry('a', { seq: 2, version: 2, content: 2 })]]
    expect(m.applyDelta('A', ...delta)).toBe('applied')
    const after = snapshot(m, 'A')
    expect(m.applyDelta('A', ...delta)).toBe('stale')
    expect(snapshot(m, 'A')).toEqual(after)
    expect(changes.length).toBe(2)
  })

  it('ignores an old delta that arrives late (stale) and keeps the newer entries', () => {
    const { m, changes } = withListener()
    m.applyDelta('A', info(1, 1), 0, [entry('a', { seq: 1 })])
    m.applyDelta('A', info(1, 3), 1, [entry('a', { seq: 3, version: 3, content: 3 })])
    const r: DeltaResult = m.applyDelta('A', info(1, 2), 1, [entry('a', { seq: 2, version: 2, content: 2 })])
    expect(r).toBe('stale')
    expect(snapshot(m, 'A')).toEqual({ generation: 1, sequence: 3, entries: ['models/a@v3s3c3'] })
    expect(changes.length).toBe(2)
  })

  it('counts a stale delta as a sign of life without moving lastHeard backwards', () => {
    const m = new ClusterManifest()
    m.applyDelta('A', info(1, 2), 0, [entry('a', { seq: 2 })], 1000)
    m.applyDelta('A', info(1, 2), 0, [entry('a', { seq: 2 })], 5000)
    expect(m.node('A')?.lastHeard).toBe(5000)
    m.applyDelta('A', info(1, 1), 0, [], 3000)
    expect(m.node('A')?.lastHeard).toBe(5000)
  })

  it('applies an overlapping delta but never regresses an entry to an older seq', () => {
    const { m, changes } = withListener()
    m.applyDelta('A', info(1, 3), 0, [entry('a', { seq: 3, version: 2, content: 2 }), entry('b', { seq: 1 })])
    // Covers (1, 4]: carries an outdated copy of 'a' (seq 2), 'b' as already held (seq 1), and a real change of 'c'.
    const r = m.applyDelta('A', info(1, 4), 1, [entry('a', { seq: 2, version: 1, content: 9 }), entry('b', { seq: 1 }), entry('c', { seq: 4 })])
    expect(r).toBe('applied')
    expect(snapshot(m, 'A')).toEqual({ generation: 1, sequence: 4, entries: ['models/a@v2s3c2', 'models/b@v1s1c1', 'models/c@v1s4c1'] })
    expect(paths(changes[1].changed)).toEqual(['c'])
  })

  it('does not notify for a delta that changes no entry, but still advances the sequence', () => {
    const { m, changes } = withListener()
    m.applyDelta('A', info(1, 1), 0, [entry('a', { seq: 1 })])
    expect(m.applyDelta('A', info(1, 2), 1, [])).toBe('applied')
    expect(m.node('A')?.info.sequence).toBe(2)
    expect(changes.length).toBe(1)
  })

  it('replaces the record on a new generation whose delta starts at 0 (restart)', () => {
    const { m, changes } = withListener()
    m.applyDelta('A', info(1, 5), 0, [entry('a', { seq: 4 }), entry('b', { seq: 5 })])
    changes.length = 0
    // After a restart the node sends its whole record: 'b' is gone, 'a' changed, 'c' is new.
    const r = m.applyDelta('A', info(2, 7), 0, [entry('a', { seq: 6, version: 2, content: 2 }), entry('c', { seq: 7 })])
    expect(r).toBe('applied')
    expect(snapshot(m, 'A')).toEqual({ generation: 2, sequence: 7, entries: ['models/a@v2s6c2', 'models/c@v1s7c1'] })
    expect(m.holdersOf(DS, 'b')).toEqual([])
    expect(m.entriesFor(DS, 'b').size).toBe(0)
    expect(changes.length).toBe(1)
    expect(paths(changes[0].changed)).toEqual(['a', 'b', 'c'])
    expect(changes[0].changed.find(e => e.path === 'b')?.deleted).toBe(true)
  })

  it('reports a gap for a new generation whose delta does not start at 0, and changes nothing', () => {
    const { m, changes } = withListener()
    m.applyDelta('A', info(1, 5), 0, [entry('a', { seq: 5 })])
    const before = snapshot(m, 'A')
    expect(m.applyDelta('A', info(2, 7), 5, [entry('a', { seq: 7, version: 2, content: 2 })])).toBe('gap')
    expect(snapshot(m, 'A')).toEqual(before)
    expect(changes.length).toBe(1)
    expect(m.isBehind('A', info(2, 7))).toBe(true)
  })

  it('ignores a delta from an older generation, even one starting at 0 with a higher sequence', () => {
    const { m, changes } = withListener()
    m.applyDelta('A', info(2, 3), 0, [entry('a', { seq: 3, version: 2, content: 2 })])
    const before = snapshot(m, 'A')
    expect(m.applyDelta('A', info(1, 9), 0, [entry('a', { seq: 9, version: 5, content: 5 }), entry('z', { seq: 8 })])).toBe('stale')
    expect(m.applyDelta('A', info(1, 10), 9, [entry('y', { seq: 10 })])).toBe('stale')
    expect(snapshot(m, 'A')).toEqual(before)
    expect(m.holdersOf(DS, 'z')).toEqual([])
    expect(changes.length).toBe(1)
  })

  it('keeps the records of different nodes apart', () => {
    const m = new ClusterManifest()
    m.applyDelta('A', info(1, 1), 0, [entry('a', { seq: 1 })])
    m.applyDelta('B', info(7, 1), 0, [entry('a', { seq: 1 })])
    expect(m.applyDelta('A', info(1, 2), 1, [entry('a', { seq: 2, deleted: true, version: 2 })])).toBe('applied')
    expect(m.holdersOf(DS, 'a').map(h => h.peerId)).toEqual(['B'])
    expect(m.allNodes().map(n => n.peerId).sort()).toEqual(['A', 'B'])
  })

  it('treats the same path in two datasets as two files', () => {
    const m = new ClusterManifest()
    m.applyDelta('A', info(1, 2), 0, [entry('x', { seq: 1, dataset: 'models' }), entry('x', { seq: 2, dataset: 'npz', content: 2 })])
    expect(m.fileCount).toBe(2)
    expect(m.newest('models', 'x')?.contentId).toEqual(cid(1))
    expect(m.newest('npz', 'x')?.contentId).toEqual(cid(2))
    expect(m.newest('other', 'x')).toBeUndefined()
  })
})

describe('ClusterManifest.replaceRecord', () => {
  it('removes entries that vanished from the record and reports them as deleted', () => {
    const { m, changes } = withListener()
    m.replaceRecord('A', info(1, 3), [entry('a', { seq: 1 }), entry('b', { seq: 2 }), entry('c', { seq: 3 })])
    m.applyDelta('B', info(1, 1), 0, [entry('b', { seq: 1 })])
    changes.length = 0
    m.replaceRecord('A', info(1, 4), [entry('a', { seq: 1 }), entry('c', { seq: 4, version: 2, content: 2 })])
    expect(snapshot(m, 'A')).toEqual({ generation: 1, sequence: 4, entries: ['models/a@v1s1c1', 'models/c@v2s4c2'] })
    expect(m.holdersOf(DS, 'b').map(h => h.peerId)).toEqual(['B'])
    expect(m.fileCount).toBe(3)
    // Unchanged 'a' is not reported; vanished 'b' is, as deleted; changed 'c' is.
    expect(changes).toHaveLength(1)
    expect(changes[0].peerId).toBe('A')
    expect(paths(changes[0].changed)).toEqual(['b', 'c'])
    expect(changes[0].changed.find(e => e.path === 'b')?.deleted).toBe(true)
  })

  it('lists a node\'s tombstones without its live copies', () => {
    const m = new ClusterManifest()
    m.replaceRecord('A', info(1, 4), [entry('a', { seq: 1 }), entry('b', { seq: 3, version: 2, deleted: true }), entry('c', { seq: 4, version: 3, deleted: true })])
    m.replaceRecord('B', info(1, 1), [entry('d', { seq: 1 })])
    expect([...m.tombstonesOf('A')].sort((x, y) => x.seq - y.seq)).toEqual([
      { dataset: DS, path: 'b', seq: 3, version: 2 }, { dataset: DS, path: 'c', seq: 4, version: 3 }
    ])
    expect([...m.tombstonesOf('B')]).toEqual([])
    expect([...m.tombstonesOf('nobody')]).toEqual([])
  })

  it('forgets a file entirely when its last holder drops it', () => {
    const m = new ClusterManifest()
    m.replaceRecord('A', info(1, 2), [entry('a', { seq: 1 }), entry('b', { seq: 2 })])
    m.replaceRecord('A', info(1, 3), [entry('a', { seq: 1 })])
    expect(m.fileCount).toBe(1)
    expect(m.newest(DS, 'b')).toBeUndefined()
    expect(m.entriesFor(DS, 'b').size).toBe(0)
  })

  it('ignores a record older than the one held', () => {
    const { m, changes } = withListener()
    m.replaceRecord('A', info(2, 5), [entry('a', { seq: 5, version: 2, content: 2 })])
    const before = snapshot(m, 'A')
    m.replaceRecord('A', info(2, 4), [entry('a', { seq: 4 }), entry('b', { seq: 3 })])
    m.replaceRecord('A', info(1, 50), [])
    expect(snapshot(m, 'A')).toEqual(before)
    expect(changes).toHaveLength(1)
  })

  it('lets deltas continue from the sequence of the replaced record', () => {
    const m = new ClusterManifest()
    m.replaceRecord('A', info(3, 10), [entry('a', { seq: 10 })])
    expect(m.applyDelta('A', info(3, 12), 11, [entry('b', { seq: 12 })])).toBe('gap')
    expect(m.applyDelta('A', info(3, 11), 10, [entry('b', { seq: 11 })])).toBe('applied')
    expect(snapshot(m, 'A')).toEqual({ generation: 3, sequence: 11, entries: ['models/a@v1s10c1', 'models/b@v1s11c1'] })
  })
})

describe('ClusterManifest.beginRecord (a whole record in parts)', () => {
  function begin (m: ClusterManifest, peerId: string, i: NodeInfo): RecordLoad {
    const load = m.beginRecord(peerId, i)
    if (typeof load === 'string') throw new Error(`load not begun: ${load}`)
    return load
  }

  it('applies each part as it comes and removes what the new record lacks only at the end', () => {
    const { m, changes } = withListener()
    m.replaceRecord('A', info(1, 3), [entry('a', { seq: 1 }), entry('b', { seq: 2 }), entry('c', { seq: 3 })])
    changes.length = 0
    const load = begin(m, 'A', info(2, 2))
    expect(load.add([entry('a', { seq: 1 })])).toBe(true)
    expect(changes).toHaveLength(0) // unchanged 'a'
    expect(load.add([entry('c', { seq: 2, version: 2, content: 2 })])).toBe(true)
    expect(paths(changes[0].changed)).toEqual(['c'])
    // Mid-load: the new 'c' is visible, 'b' is still held, the node keeps its old (generation, sequence).
    expect(m.newest(DS, 'c')?.version).toBe(2)
    expect(m.holdersOf(DS, 'b').map(h => h.peerId)).toEqual(['A'])
    expect(m.node('A')?.info.generation).toBe(1)
    load.finish(info(2, 2))
    expect(snapshot(m, 'A')).toEqual({ generation: 2, sequence: 2, entries: ['models/a@v1s1c1', 'models/c@v2s2c2'] })
    expect(paths(changes[1].changed)).toEqual(['b'])
    expect(changes[1].changed[0].deleted).toBe(true)
    expect(m.holdersOf(DS, 'b')).toEqual([])
  })

  it('holds deltas back while a load runs, and serves nothing of the node', () => {
    const m = new ClusterManifest()
    m.replaceRecord('A', info(1, 2), [entry('a', { seq: 1 }), entry('b', { seq: 2 })])
    const load = begin(m, 'A', info(1, 2))
    expect(m.applyDelta('A', info(1, 3), 2, [entry('c', { seq: 3 })])).toBe('gap')
    expect(m.recordSince('A', 1, 0)).toBeUndefined()
    expect(() => m.beginRecord('A', info(1, 2))).toThrow(/already being loaded/)
    load.add([entry('a', { seq: 1 }), entry('b', { seq: 2 })])
    load.finish(info(1, 2))
    expect(m.applyDelta('A', info(1, 3), 2, [entry('c', { seq: 3 })])).toBe('applied')
    expect(m.recordSince('A', 1, 0)?.entries.map(e => e.path).sort()).toEqual(['a', 'b', 'c'])
  })

  it('leaves an abandoned load behind: parts applied stay, the (generation, sequence) does not move', () => {
    const m = new ClusterManifest()
    const load = begin(m, 'N', info(5, 9))
    load.add([entry('a', { seq: 4 })])
    load.abort()
    expect(m.node('N')?.info).toMatchObject({ generation: 5, sequence: 0 })
    expect(m.isBehind('N', info(5, 9))).toBe(true)
    expect(m.holdersOf(DS, 'a').map(h => h.peerId)).toEqual(['N'])
    expect(() => load.add([entry('b', { seq: 5 })])).toThrow(/ended/)
    // The next pull starts over and completes the record.
    const again = begin(m, 'N', info(5, 9))
    again.add([entry('a', { seq: 4 }), entry('b', { seq: 9 })])
    again.finish(info(5, 9))
    expect(snapshot(m, 'N')).toEqual({ generation: 5, sequence: 9, entries: ['models/a@v1s4c1', 'models/b@v1s9c1'] })
  })

  it('refuses a record older than the one held, and a part that takes the record past the limit', () => {
    const m = new ClusterManifest({ maxEntriesPerNode: 2, maxNodes: 2 })
    m.replaceRecord('A', info(2, 1), [entry('a', { seq: 1 })])
    expect(m.beginRecord('A', info(1, 7))).toBe('stale')
    const load = begin(m, 'B', info(1, 3))
    expect(load.add([entry('x', { seq: 1 }), entry('y', { seq: 2 })])).toBe(true)
    expect(load.add([entry('z', { seq: 3 })])).toBe(false)
    expect(m.entryCount('B')).toBe(2)
    expect(m.isBehind('B', info(1, 3))).toBe(true)
    expect(m.beginRecord('C', info(1, 1))).toBe('rejected')
  })
})

describe('ClusterManifest queries', () => {
  it('holdersOf marks as complete only the holders of the newest content, newest first', () => {
    const m = new ClusterManifest()
    m.applyDelta('C', info(1, 1, 'gamma'), 0, [entry('f', { seq: 1, version: 1, content: 1 })])
    m.applyDelta('B', info(1, 1, 'beta'), 0, [entry('f', { seq: 1, version: 2, content: 2 })])
    m.applyDelta('A', info(1, 1, 'alpha'), 0, [entry('f', { seq: 1, version: 2, content: 2 })])
    const holders = m.holdersOf(DS, 'f')
    expect(holders.map(h => [h.peerId, h.name, h.entry.version, h.complete])).toEqual([
      ['A', 'alpha', 2, true],
      ['B', 'beta', 2, true],
      ['C', 'gamma', 1, false]
    ])
  })

  it('holdersOf becomes complete for a holder once it reaches the newest version', () => {
    const m = new ClusterManifest()
    m.applyDelta('A', info(1, 1), 0, [entry('f', { seq: 1, version: 2, content: 2 })])
    m.applyDelta('B', info(1, 1), 0, [entry('f', { seq: 1, version: 1, content: 1 })])
    expect(m.holdersOf(DS, 'f').find(h => h.peerId === 'B')?.complete).toBe(false)
    m.applyDelta('B', info(1, 2), 1, [entry('f', { seq: 2, version: 2, content: 2 })])
    expect(m.holdersOf(DS, 'f').every(h => h.complete)).toBe(true)
  })

  it('holdersOf counts an older version with the newest bytes (a revert) as complete', () => {
    const m = new ClusterManifest()
    m.applyDelta('A', info(1, 1), 0, [entry('f', { seq: 1, version: 1, content: 1 })])
    m.applyDelta('B', info(1, 1), 0, [entry('f', { seq: 1, version: 2, content: 2 })])
    m.applyDelta('C', info(1, 1), 0, [entry('f', { seq: 1, version: 3, content: 1 })])
    expect(m.holdersOf(DS, 'f').map(h => [h.peerId, h.complete])).toEqual([['C', true], ['B', false], ['A', true]])
  })

  it('holdersOf excludes tombstones; a newest tombstone leaves no complete holder', () => {
    const m = new ClusterManifest()
    m.applyDelta('A', info(1, 1), 0, [entry('f', { seq: 1, version: 1, content: 1 })])
    m.applyDelta('B', info(1, 2), 0, [entry('f', { seq: 2, version: 2, deleted: true })])
    const newest = m.newest(DS, 'f')
    expect(newest?.deleted).toBe(true)
    expect(newest?.version).toBe(2)
    expect(m.holdersOf(DS, 'f').map(h => [h.peerId, h.complete])).toEqual([['A', false]])
    expect(m.entriesFor(DS, 'f').size).toBe(2)
  })

  it('newest is the live entry when a tombstone is older than it', () => {
    const m = new ClusterManifest()
    m.applyDelta('B', info(1, 2), 0, [entry('f', { seq: 2, version: 2, deleted: true })])
    m.applyDelta('A', info(1, 1), 0, [entry('f', { seq: 1, version: 3, content: 3 })])
    expect(m.newest(DS, 'f')).toMatchObject({ version: 3, deleted: false })
    expect(m.holdersOf(DS, 'f').map(h => [h.peerId, h.complete])).toEqual([['A', true]])
  })

  it('a file deleted everywhere has no holders but keeps its tombstones', () => {
    const m = new ClusterManifest()
    m.applyDelta('A', info(1, 1), 0, [entry('f', { seq: 1 })])
    m.applyDelta('A', info(1, 2), 1, [entry('f', { seq: 2, version: 2, deleted: true })])
    expect(m.holdersOf(DS, 'f')).toEqual([])
    expect(m.newest(DS, 'f')).toMatchObject({ version: 2, deleted: true })
    expect(m.fileCount).toBe(1)
  })

  it('newest breaks ties the same way whatever order the nodes were heard in', () => {
    const build = (order: string[]): ClusterManifest => {
      const m = new ClusterManifest()
      const byPeer: Record<string, FileEntry> = {
        A: entry('f', { seq: 1, version: 4, content: 7 }),
        B: entry('f', { seq: 1, version: 4, content: 9 }),
        C: entry('f', { seq: 1, version: 3, content: 200 })
      }
      for (const p of order) m.applyDelta(p, info(1, 1), 0, [byPeer[p]])
      return m
    }
    for (const order of [['A', 'B', 'C'], ['C', 'B', 'A'], ['B', 'C', 'A']]) {
      const m = build(order)
      expect(m.newest(DS, 'f')?.contentId, order.join('')).toEqual(cid(9))
      expect(m.holdersOf(DS, 'f').map(h => [h.peerId, h.complete]), order.join('')).toEqual([['B', true], ['A', false], ['C', false]])
    }
  })

  it('a tombstone wins a tie against a live entry of the same version', () => {
    const m = new ClusterManifest()
    m.applyDelta('A', info(1, 1), 0, [entry('f', { seq: 1, version: 5, content: 255 })])
    m.applyDelta('B', info(1, 1), 0, [entry('f', { seq: 1, version: 5, deleted: true })])
    expect(m.newest(DS, 'f')?.deleted).toBe(true)
    expect(m.holdersOf(DS, 'f').map(h => h.complete)).toEqual([false])
  })

  it('holdersOfContent lists the live holders of exactly that content, whatever their version', () => {
    const m = new ClusterManifest()
    m.applyDelta('A', info(1, 1), 0, [entry('f', { seq: 1, version: 1, content: 1 })])
    m.applyDelta('B', info(1, 1), 0, [entry('f', { seq: 1, version: 2, content: 2 })])
    m.applyDelta('C', info(1, 1), 0, [entry('f', { seq: 1, version: 3, content: 1 })])
    m.applyDelta('D', info(1, 1), 0, [entry('f', { seq: 1, version: 4, deleted: true })])
    expect(m.holdersOfContent(DS, 'f', cid(1)).sort()).toEqual(['A', 'C'])
    expect(m.holdersOfContent(DS, 'f', cid(2))).toEqual(['B'])
    expect(m.holdersOfContent(DS, 'f', cid(3))).toEqual([])
    expect(m.holdersOfContent(DS, 'f', new Uint8Array(0))).toEqual([])
    expect(m.holdersOfContent(DS, 'other', cid(1))).toEqual([])
  })

  it('isBehind compares (generation, sequence) with what is held', () => {
    const m = new ClusterManifest()
    expect(m.isBehind('A', { generation: 1, sequence: 0 })).toBe(true)
    m.applyDelta('A', info(5, 10), 0, [])
    expect(m.isBehind('A', { generation: 5, sequence: 10 })).toBe(false)
    expect(m.isBehind('A', { generation: 5, sequence: 9 })).toBe(false)
    expect(m.isBehind('A', { generation: 5, sequence: 11 })).toBe(true)
    expect(m.isBehind('A', { generation: 6, sequence: 0 })).toBe(true)
    expect(m.isBehind('A', { generation: 4, sequence: 1000 })).toBe(false)
    expect(m.isBehind('B', { generation: 5, sequence: 10 })).toBe(true)
  })

  it('onChange calls every listener with the peer and the entries that changed', () => {
    const m = new ClusterManifest()
    const first: Array<[string, string[]]> = []
    const second: Array<[string, string[]]> = []
    m.onChange((peer, changed) => first.push([peer, paths(changed)]))
    m.onChange((peer, changed) => second.push([peer, paths(changed)]))
    m.applyDelta('A', info(1, 2), 0, [entry('a', { seq: 1 }), entry('b', { seq: 2 })])
    m.applyDelta('B', info(1, 1), 0, [entry('a', { seq: 1 })])
    m.applyDelta('A', info(1, 3), 2, [entry('b', { seq: 3, version: 2, content: 2 })])
    m.applyDelta('A', info(1, 3), 2, [entry('b', { seq: 3, version: 2, content: 2 })]) // stale
    m.applyDelta('A', info(1, 9), 5, [entry('z', { seq: 9 })]) // gap
    expect(first).toEqual([['A', ['a', 'b']], ['B', ['a']], ['A', ['b']]])
    expect(second).toEqual(first)
  })

  it('heard refreshes lastHeard and the self-description of the current generation only', () => {
    const m = new ClusterManifest()
    m.heard('A', info(1, 1, 'ghost'), 500) // unknown node: nothing to refresh
    expect(m.node('A')).toBeUndefined()
    m.applyDelta('A', info(2, 1, 'old-name'), 0, [], 1000)
    m.heard('A', { ...info(2, 1, 'new-name'), addrs: ['/ip4/10.0.0.2/tcp/1'] }, 2000)
    expect(m.node('A')?.info).toMatchObject({ name: 'new-name', addrs: ['/ip4/10.0.0.2/tcp/1'], generation: 2, sequence: 1 })
    expect(m.node('A')?.lastHeard).toBe(2000)
    m.heard('A', info(3, 1, 'next-gen'), 1500)
    expect(m.node('A')?.info.name).toBe('new-name')
    expect(m.node('A')?.info.generation).toBe(2)
    expect(m.node('A')?.lastHeard).toBe(2000)
    expect(m.holdersOf(DS, 'x')).toEqual([])
  })
})

describe('ClusterManifest.locate and summarize', () => {
  /** The where answer as it was built from holdersOf before locate existed. */
  function fromHolders (m: ClusterManifest, path: string, selfId: string): unknown {
    const newest = m.newest(DS, path)
    return {
      version: newest?.version ?? null,
      deleted: newest?.deleted ?? false,
      holders: m.holdersOf(DS, path).map(h => ({
        peerId: h.peerId, name: h.name, self: h.peerId === selfId, complete: h.complete, version: h.entry.version, size: h.entry.size,
        contentId: Buffer.from(h.entry.contentId).toString('hex')
      }))
    }
  }

  it('answer as holdersOf did: newest first then by peer id, partial and stale copies incomplete, tombstones left out', () => {
    const m = new ClusterManifest()
    // Node ids inserted out of order, so that node index order is not peer id order.
    const nodes = ['E', 'B', 'D', 'A', 'C', 'F']
    const partial = { ...entry('p', { seq: 1, version: 2, content: 3 }), partial: true, have: new Uint8Array([1]) }
    const records: Record<string, FileEntry[]> = {
      E: [entry('p', { seq: 1, version: 1, content: 1 }), entry('gone', { seq: 2, deleted: true, version: 2 }), entry('c', { seq: 3, version: 1, content: 7 })],
      B: [entry('p', { seq: 1, version: 2, content: 2 }), entry('gone', { seq: 2, version: 1 }), entry('c', { seq: 3, version: 1, content: 5 })],
      D: [partial],
      A: [entry('p', { seq: 1, version: 2, content: 2 }), entry('c', { seq: 2, version: 1, content: 7 })],
      C: [entry('p', { seq: 1, version: 1, content: 1 }), entry('gone', { seq: 2, deleted: true, version: 2 })],
      F: [entry('p', { seq: 1, version: 2, content: 3 })]
    }
    for (const n of nodes) expect(m.replaceRecord(n, info(1, records[n].length, `node-${n}`), records[n])).toBe(true)
    for (const path of ['p', 'gone', 'c', 'unknown']) {
      expect(m.locate(DS, path, 'B'), path).toEqual(fromHolders(m, path, 'B'))
      // A listing's line, as it was built from newest and holdersOf.
      const newest = m.newest(DS, path)
      expect(m.summarize(DS, path), path).toEqual(newest == null
        ? undefined
        : { version: newest.version, deleted: newest.deleted, size: newest.size, replicas: m.replicas(DS, path) ?? 0, holders: m.holdersOf(DS, path).length })
    }
    expect(m.summarize(DS, 'p')).toEqual({ version: 2, deleted: false, size: 1000, replicas: 1, holders: 6 })
    expect(m.summarize(DS, 'gone')).toEqual({ version: 2, deleted: true, size: 0, replicas: 0, holders: 1 })
    const p = m.locate(DS, 'p', 'B')
    // Version 2 with content 3 (D receiving it, F whole) is newest: the tie between contents 2 and 3 goes to the higher content id.
    expect(p.holders.map(h => [h.peerId, h.version, h.complete])).toEqual([
      ['D', 2, false], ['F', 2, true], ['A', 2, false], ['B', 2, false], ['C', 1, false], ['E', 1, false]
    ])
    expect(p.holders.find(h => h.peerId === 'B')?.self).toBe(true)
    expect(m.locate(DS, 'gone', 'B')).toEqual({ version: 2, deleted: true, holders: [expect.objectContaining({ peerId: 'B', complete: false })] })
    expect(m.locate(DS, 'unknown')).toEqual({ version: null, deleted: false, holders: [] })
  })
})
