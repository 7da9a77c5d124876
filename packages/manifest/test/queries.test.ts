import { describe, expect, it } from 'vitest'
import type { FileEntry, NodeInfo } from '@shoal/wire'
import { ClusterManifest, SortedKeys } from '../src/index.js'

const DS = 'models'

function entry (path: string, fields: { version?: number, seq: number, content?: number, deleted?: boolean, dataset?: string }): FileEntry {
  const deleted = fields.deleted ?? false
  return {
    dataset: fields.dataset ?? DS,
    path,
    size: deleted ? 0 : 10,
    mtimeMs: 0,
    mode: 0o644,
    contentId: deleted ? new Uint8Array(0) : new Uint8Array(32).fill(fields.content ?? 1),
    chunkSize: deleted ? 0 : 256 * 1024,
    version: fields.version ?? 1,
    deleted,
    seq: fields.seq
  }
}

function info (sequence: number, datasets: string[] = [DS], generation = 1): NodeInfo {
  return { name: 'n', generation, sequence, addrs: [], role: 'persistent', datasets }
}

describe('SortedKeys', () => {
  it('lists in order from any point, across additions and removals', () => {
    const keys = new SortedKeys()
    for (const k of ['m', 'b', 'x', 'a', 'k']) keys.add(k)
    expect(keys.range('', undefined, 10)).toEqual(['a', 'b', 'k', 'm', 'x'])
    keys.delete('k')
    keys.add('c')
    keys.add('c')
    keys.delete('zz')
    expect(keys.size).toBe(5)
    expect(keys.range('', 'b', 2)).toEqual(['c', 'm'])
    keys.delete('a')
    keys.add('a')
    expect(keys.range('', undefined, 10)).toEqual(['a', 'b', 'c', 'm', 'x'])
  })

  it('honours a prefix', () => {
    const keys = new SortedKeys()
    for (const k of ['d/a', 'd/b/1', 'd/b/2', 'd/c', 'e/a']) keys.add(k)
    expect(keys.range('d/b/', undefined, 10)).toEqual(['d/b/1', 'd/b/2'])
    expect(keys.range('d/b/', 'd/b/1', 10)).toEqual(['d/b/2'])
    expect(keys.range('d/', 'a', 10)).toEqual(['d/a', 'd/b/1', 'd/b/2', 'd/c'])
  })
})

describe('ClusterManifest queries', () => {
  it('lists a dataset under a prefix with pagination, keeping tombstoned paths until no entry remains', () => {
    const m = new ClusterManifest()
    m.replaceRecord('A', info(4), [entry('b/2', { seq: 1 }), entry('b/1', { seq: 2 }), entry('a', { seq: 3 }), entry('c', { seq: 4, dataset: 'other' })])
    expect(m.list(DS, '', 10)).toEqual(['a', 'b/1', 'b/2'])
    expect(m.list(DS, 'b/', 10)).toEqual(['b/1', 'b/2'])
    expect(m.list(DS, '', 2)).toEqual(['a', 'b/1'])
    expect(m.list(DS, '', 2, 'b/1')).toEqual(['b/2'])
    expect(m.list('other', '', 10)).toEqual(['c'])
    m.replaceRecord('A', info(5), [entry('a', { seq: 3 })])
    expect(m.list(DS, '', 10)).toEqual(['a'])
  })

  it('counts replicas of the newest content and finds files below a replica count', () => {
    const m = new ClusterManifest()
    m.replaceRecord('A', info(2), [entry('one', { seq: 1 }), entry('two', { seq: 2 })])
    m.replaceRecord('B', info(1), [entry('two', { seq: 1 })])
    expect(m.replicas(DS, 'one')).toBe(1)
    expect(m.replicas(DS, 'two')).toBe(2)
    expect(m.belowReplicas(2, 10)).toEqual([`${DS}/one`])
    // B gets a newer version of `two`: A's copy no longer counts.
    m.applyDelta('B', info(2), 1, [entry('two', { seq: 2, version: 2, content: 7 })])
    expect(m.replicas(DS, 'two')).toBe(1)
    expect(m.belowReplicas(2, 10).sort()).toEqual([`${DS}/one`, `${DS}/two`])
    // A deletes `one`: deleted files have no replica count and are never "below".
    m.applyDelta('A', info(3), 2, [entry('one', { seq: 3, version: 2, deleted: true })])
    expect(m.replicas(DS, 'one')).toBeUndefined()
    expect(m.belowReplicas(5, 10)).toEqual([`${DS}/two`])
  })

  it('reports paths with different content at the same version as conflicts, and clears them when resolved', () => {
    const m = new ClusterManifest()
    m.replaceRecord('A', info(1), [entry('p', { seq: 1, version: 3, content: 1 })])
    m.replaceRecord('B', info(1), [entry('p', { seq: 1, version: 3, content: 2 })])
    expect(m.conflicts(10)).toEqual([`${DS}/p`])
    m.applyDelta('B', info(2), 1, [entry('p', { seq: 2, version: 4, content: 2 })])
    expect(m.conflicts(10)).toEqual([])
    // An older version elsewhere is not a conflict, only a copy to update.
    expect(m.replicas(DS, 'p')).toBe(1)
  })

  it('counts what each member of a dataset lacks, and lists it', () => {
    const m = new ClusterManifest()
    m.replaceRecord('A', info(3), [entry('x', { seq: 1 }), entry('y', { seq: 2 }), entry('z', { seq: 3 })])
    m.replaceRecord('B', info(1), [entry('y', { seq: 1 })])
    m.replaceRecord('C', info(0, ['elsewhere']), [])
    expect(m.lacking('A')).toBe(0)
    expect(m.lacking('B')).toBe(2)
    expect(m.lacking('C')).toBe(0)
    expect(m.lackingFiles('B', DS, 10)).toEqual(['x', 'z'])
    expect(m.datasetCounts('B').get(DS)).toMatchObject({ held: 1, receiving: 0, missing: 2 })
    expect(m.datasetCounts('A').get(DS)).toMatchObject({ held: 3, receiving: 0, missing: 0 })
    expect(m.lackingFiles('B', DS, 1, 'x')).toEqual(['z'])
    m.applyDelta('B', info(2), 1, [{ ...entry('x', { seq: 2 }), partial: true, have: new Uint8Array(1) }])
    expect(m.datasetCounts('B').get(DS)).toMatchObject({ held: 1, receiving: 1, missing: 2 })
    m.applyDelta('B', info(3), 2, [entry('x', { seq: 3 })])
    expect(m.lacking('B')).toBe(1)
    expect(m.datasetCounts('B').get(DS)).toMatchObject({ held: 2, receiving: 0, missing: 1 })
    // C joins the dataset: it now lacks all three.
    m.heard('C', info(0, ['elsewhere', DS]))
    expect(m.lacking('C')).toBe(3)
    // A deletes z: nobody lacks a deleted file.
    m.applyDelta('A', info(4), 3, [entry('z', { seq: 4, version: 2, deleted: true })])
    expect(m.datasetCounts('A').get(DS)).toMatchObject({ held: 2, receiving: 0, missing: 0 })
    expect(m.lacking('B')).toBe(0)
    expect(m.lacking('C')).toBe(2)
    m.heard('C', info(0, ['elsewhere']))
    expect(m.lacking('C')).toBe(0)
  })

  it('lists stale nodes by last heard', () => {
    const m = new ClusterManifest()
    m.replaceRecord('A', info(1), [], 1000)
    m.replaceRecord('B', info(1), [], 5000)
    expect(m.staleNodes(3000, 6000)).toEqual(['A'])
    m.heard('A', info(1), 5500)
    expect(m.staleNodes(3000, 6000)).toEqual([])
  })
})
