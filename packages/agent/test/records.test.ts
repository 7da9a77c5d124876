import { describe, expect, it } from 'vitest'
import type { FileEntry } from '@shoal/wire'
import { changePages } from '../src/records.js'

function change (path: string, seq: number): FileEntry {
  return { dataset: 'd', path, size: 1, mtimeMs: 0, mode: 0o644, contentId: new Uint8Array(32), chunkSize: 262144, version: 1, deleted: false, seq, partial: false, have: new Uint8Array(0) }
}

/** A record as the local index holds it: the latest change of each path, read like LocalIndex.changes. */
class Record {
  private readonly rows = new Map<string, number>()
  seq = 0
  reads = 0
  change (path: string): void { this.rows.set(path, ++this.seq) }
  read = (after: number, limit: number): FileEntry[] => {
    this.reads++
    return [...this.rows].filter(([, s]) => s > after).sort((a, b) => a[1] - b[1]).slice(0, limit).map(([p, s]) => change(p, s))
  }
}

describe('changePages', () => {
  it('reads a page at a time, resumes after the last seq, and stops at the upper bound', () => {
    const r = new Record()
    for (let i = 0; i < 7; i++) r.change(`f${i}`)
    expect([...changePages(r.read, 0, Number.MAX_SAFE_INTEGER, 3)].map(p => p.map(e => e.seq))).toEqual([[1, 2, 3], [4, 5, 6], [7]])
    expect([...changePages(r.read, 2, 5, 2)].map(p => p.map(e => e.seq))).toEqual([[3, 4], [5]])
    expect([...changePages(r.read, 7, Number.MAX_SAFE_INTEGER, 3)]).toEqual([])
  })

  it('lists a path changed between two pages later, never loses it', () => {
    const r = new Record()
    for (let i = 0; i < 6; i++) r.change(`f${i}`)
    const seen: string[] = []
    for (const page of changePages(r.read, 0, Number.MAX_SAFE_INTEGER, 2)) {
      seen.push(...page.map(e => `${e.path}@${e.seq}`))
      // f5 (not read yet) and f0 (read already) change while the first pages are sent.
      if (seen.length === 2) { r.change('f5'); r.change('f0') }
    }
    expect(seen).toEqual(['f0@1', 'f1@2', 'f2@3', 'f3@4', 'f4@5', 'f5@7', 'f0@8'])
  })
})
