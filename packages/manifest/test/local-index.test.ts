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
    expect(index.changedSince(0).map(f => f.path)).toEqual(['c'])
    // Nothing left at or below 5; a live file is never touched.
    index.put(file('e', 1)) // seq 7
    expect(index.deleteTombstones(7)).toBe(1)
    expect(index.get('d', 'e')).toMatchObject({ deleted: false, seq: 7 })
    expect(index.tombstoneCount()).toBe(0)
    index.close()

    // Persisted: a reopened index has neither the tombstones nor a lower sequence.
    const reopened = new LocalIndex(path)
    expect(reopened.sequence).toBe(7)
    expect(reopened.changedSince(0).map(f => f.path)).toEqual(['e'])
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
