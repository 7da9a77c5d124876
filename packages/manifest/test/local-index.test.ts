import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { LocalIndex, type NewLocalFile } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-local-index-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
let n = 0

function file (path: string, version: number, deleted = false): NewLocalFile {
  return {
    dataset: 'd', path, size: deleted ? 0 : 10, mtimeMs: 1_700_000_000_000, ino: deleted ? 0 : 7, mode: deleted ? 0 : 0o644,
    contentId: deleted ? new Uint8Array(0) : new Uint8Array(32).fill(version), chunkSize: deleted ? 0 : 262144,
    hashes: deleted ? new Uint8Array(0) : new Uint8Array(32).fill(version), version, deleted
  }
}

function open (): { index: LocalIndex, path: string } {
  const path = join(dir, `index-${n++}.db`)
  return { index: new LocalIndex(path), path }
}

describe('LocalIndex.deleteTombstones', () => {
  it('forgets only tombstones at or below the given sequence, and keeps the sequence number', () => {
    const { index, path } = open()
    index.put(file('a', 1)) // seq 1
    index.put(file('b', 1)) // seq 2
    index.put(file('a', 2, true)) // seq 3: tombstone of a
    index.put(file('c', 1)) // seq 4
    index.put(file('b', 2, true)) // seq 5: tombstone of b
    index.put(file('c', 2, true)) // seq 6: tombstone of c
    expect(index.tombstoneCount()).toBe(3)

    expect(index.deleteTombstones(5)).toBe(2)
    expect(index.get('d', 'a')).toBeUndefined()
    expect(index.get('d', 'b')).toBeUndefined()
    expect(index.get('d', 'c')).toMatchObject({ deleted: true, seq: 6, version: 2 })
    expect(index.sequence).toBe(6)
    expect(index.changes(0, 100).map(f => f.path)).toEqual(['c'])
    // Nothing left at or below 5; a live file is never touched.
    index.put(file('e', 1)) // seq 7
    expect(index.deleteTombstones(7)).toBe(1)
    expect(index.get('d', 'e')).toMatchObject({ deleted: false, seq: 7 })
    expect(index.tombstoneCount()).toBe(0)
    index.close()

    // Persisted: a reopened index has neither the tombstones nor a lower sequence.
    const reopened = new LocalIndex(path)
    expect(reopened.sequence).toBe(7)
    expect(reopened.changes(0, 100).map(f => f.path)).toEqual(['e'])
    reopened.close()
  })

  it('works in bounded batches, oldest first', () => {
    const { index } = open()
    for (let i = 0; i < 25; i++) index.put(file(`f${i}`, 1))
    for (let i = 0; i < 25; i++) index.put(file(`f${i}`, 2, true)) // seqs 26..50
    expect(index.deleteTombstones(50, 10)).toBe(10)
    // The oldest ten went first.
    expect(index.get('d', 'f0')).toBeUndefined()
    expect(index.get('d', 'f9')).toBeUndefined()
    expect(index.get('d', 'f10')).toMatchObject({ deleted: true })
    expect(index.deleteTombstones(50, 10)).toBe(10)
    expect(index.deleteTombstones(50, 10)).toBe(5)
    expect(index.deleteTombstones(50, 10)).toBe(0)
    expect(index.tombstoneCount()).toBe(0)
    index.close()
  })

  it('rejects invalid arguments and treats 0 as nothing', () => {
    const { index } = open()
    index.put(file('a', 1))
    index.put(file('a', 2, true))
    expect(index.deleteTombstones(0)).toBe(0)
    expect(() => index.deleteTombstones(-1)).toThrow(RangeError)
    expect(() => index.deleteTombstones(1.5)).toThrow(RangeError)
    expect(() => index.deleteTombstones(Number.NaN)).toThrow(RangeError)
    expect(() => index.deleteTombstones(2, 0)).toThrow(RangeError)
    expect(index.tombstoneCount()).toBe(1)
    index.close()
  })
})

describe('LocalIndex.changes', () => {
  it('lists the latest change of each path in seq order, a page at a time, a file being received as partial', () => {
    const { index } = open()
    index.put(file('a', 1)) // seq 1
    index.put(file('b', 1)) // seq 2
    index.put(file('c', 1)) // seq 3
    // A new version of b arrives: its partial entry is b's latest change; the complete old one is not listed.
    index.putPartial({ dataset: 'd', path: 'b', contentId: new Uint8Array(32).fill(2), size: 10, chunkSize: 262144, version: 2, mode: 0o644, mtimeMs: 1, have: Uint8Array.from([1]) }) // seq 4
    index.put(file('a', 2, true)) // seq 5
    const all = index.changes(0, 100)
    expect(all.map(c => [c.path, c.seq, c.partial, c.deleted])).toEqual([['c', 3, false, false], ['b', 4, true, false], ['a', 5, false, true]])
    expect(all[1].have).toEqual(Uint8Array.from([1]))
    expect(all[0]).not.toHaveProperty('hashes')
    // Pages resume after the last seq of the one before.
    expect(index.changes(0, 2).map(c => c.seq)).toEqual([3, 4])
    expect(index.changes(4, 2).map(c => c.seq)).toEqual([5])
    expect(index.changes(5, 2)).toEqual([])
    // Once b completes, its file row is the latest change again and the partial is gone.
    index.put(file('b', 2)) // seq 6
    expect(index.changes(3, 100).map(c => [c.path, c.seq, c.partial])).toEqual([['a', 5, false], ['b', 6, false]])
    expect(() => index.changes(0, 0)).toThrow(RangeError)
    index.close()
  })
})
