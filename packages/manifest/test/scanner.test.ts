import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, open, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  compareUtf8, DatasetUnavailableError, SCAN_INDEX_PAGE, hashingStats, LocalIndex, scanDataset, type LocalFile, type ScanOptions
} from '../src/index.js'
import { DatabaseSync } from 'node:sqlite'

const DS = 'models'
const MIN = 256 * 1024
/** A fixed wall clock: every file gets an mtime relative to it, and scans pass `now`. */
const T0 = 1_700_000_000_000
const STABLE = 5_000

function sha256 (data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest()
}

/** The content id of a file of at most one 256 KiB chunk, computed independently. */
function smallContentId (data: string | Uint8Array): string {
  return sha256(sha256(typeof data === 'string' ? Buffer.from(data) : data)).toString('hex')
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

let base: string
let caseNo = 0
let root: string
let dbFile: string
let index: LocalIndex

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'shoal-scanner-'))
})

afterAll(async () => {
  await rm(base, { recursive: true, force: true })
})

beforeEach(async () => {
  const dir = join(base, `case${caseNo++}`)
  root = join(dir, 'data')
  await mkdir(root, { recursive: true })
  dbFile = join(dir, 'index.db')
  index = new LocalIndex(dbFile)
})

afterEach(() => {
  try { index.close() } catch {}
})

/** Writes a file under the dataset root with an exact mtime (ms since the epoch). */
async function put (rel: string, data: string | Uint8Array, mtimeMs = T0): Promise<void> {
  const path = join(root, rel)
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, data)
  await utimes(path, mtimeMs / 1000, mtimeMs / 1000)
}

async function scan (at: number, extra: Partial<ScanOptions> = {}): Promise<ReturnType<typeof scanDataset>> {
  return await scanDataset(DS, root, index, { stableMs: STABLE, now: () => at, ...extra })
}

function get (path: string): LocalFile {
  const f = index.get(DS, path)
  if (f == null) throw new Error(`${path} is not indexed`)
  return f
}

describe('scanDataset', () => {
  it('indexes new files with version 1 and increasing sequence numbers', async () => {
    await put('a.bin', 'alpha')
    await put('sub/dir/b.txt', 'bravo')
    const r = await scan(T0 + 60_000)
    expect(r.pending).toBe(0)
    expect(r.skipped).toEqual([])
    expect(r.changed.map(f => f.path).sort()).toEqual(['a.bin', 'sub/dir/b.txt'])
    expect(r.changed.map(f => f.seq).sort()).toEqual([1, 2])
    expect(r.changed.every(f => f.version === 1 && !f.deleted)).toBe(true)
    expect(index.sequence).toBe(2)

    const a = get('a.bin')
    expect(a).toMatchObject({ dataset: DS, path: 'a.bin', size: 5, mtimeMs: T0, version: 1, deleted: false, chunkSize: MIN })
    expect(a.ino).toBe((await stat(join(root, 'a.bin'))).ino)
    expect(a.mode).toBe((await stat(join(root, 'a.bin'))).mode & 0o7777)
    expect(hex(a.contentId)).toBe(smallContentId('alpha'))
    expect(hex(a.hashes)).toBe(sha256(Buffer.from('alpha')).toString('hex'))
    expect(hex(get('sub/dir/b.txt').contentId)).toBe(smallContentId('bravo'))
    expect(index.changes(0, 100).map(f => f.seq)).toEqual([1, 2])
  })

  it('indexes a file dated before 1970 with its negative mtime', async () => {
    // fs.utimes turns a negative time into "now", so touch(1) dates the file.
    await put('ancient.txt', 'from the past')
    execFileSync('touch', ['-m', '-d', '@-86400', join(root, 'ancient.txt')])
    const r = await scan(T0)
    expect(r.changed.map(f => [f.path, f.mtimeMs])).toEqual([['ancient.txt', -86_400_000]])
    expect(get('ancient.txt').mtimeMs).toBe(-86_400_000)
  })

  it('indexes an empty file with zero chunks', async () => {
    await put('empty', '')
    await scan(T0 + 60_000)
    const e = get('empty')
    expect(e.size).toBe(0)
    expect(e.hashes.length).toBe(0)
    expect(hex(e.contentId)).toBe(sha256(new Uint8Array(0)).toString('hex'))
  })

  it('reports a file modified less than stableMs ago as pending and does not index it', async () => {
    await put('old.bin', 'settled', T0)
    await put('fresh.bin', 'still being written', T0 + 9_000)
    await put('deep/er/fresh.bin', 'also being written', T0 + 9_000)
    const filesBefore = hashingStats.filesHashed
    const r = await scan(T0 + 10_000) // fresh.bin is 1 s old, stableMs is 5 s
    expect(r.pending).toBe(2)
    expect(r.pendingDirectories.sort()).toEqual(['', 'deep/er'])
    expect(r.changed.map(f => f.path)).toEqual(['old.bin'])
    expect(index.get(DS, 'fresh.bin')).toBeUndefined()
    expect(index.sequence).toBe(1)
    expect(hashingStats.filesHashed).toBe(filesBefore + 1)

    const later = await scan(T0 + 9_000 + STABLE) // exactly stableMs old: stable
    expect(later.pending).toBe(0)
    expect(later.pendingDirectories).toEqual([])
    expect(later.changed.map(f => [f.path, f.version, f.seq])).toEqual([['deep/er/fresh.bin', 1, 2], ['fresh.bin', 1, 3]])
  })

  it('does not re-hash unchanged files on a second scan', async () => {
    await put('a.bin', 'alpha')
    await put('b.bin', new Uint8Array(MIN + 10).fill(7))
    await scan(T0 + 60_000)
    const before = { ...hashingStats }
    const seq = index.sequence
    const r = await scan(T0 + 120_000)
    expect(r).toEqual({ changed: [], pending: 0, pendingDirectories: [], skipped: [], directories: [''], partials: [] })
    expect(hashingStats).toEqual(before)
    expect(index.sequence).toBe(seq)
  })

  it('gives a modified file a new version and the next sequence number, hashing only that file', async () => {
    await put('a.bin', 'alpha')
    await put('b.bin', 'bravo')
    await scan(T0 + 60_000)
    const oldA = get('a.bin')
    await put('a.bin', 'alpha, edited', T0 + 100_000)
    const before = { ...hashingStats }
    const r = await scan(T0 + 200_000)
    expect(hashingStats.filesHashed).toBe(before.filesHashed + 1)
    expect(hashingStats.bytesHashed).toBe(before.bytesHashed + 'alpha, edited'.length)
    expect(r.changed.map(f => [f.path, f.version, f.seq])).toEqual([['a.bin', 2, 3]])
    const a = get('a.bin')
    expect(a.version).toBe(oldA.version + 1)
    expect(a.size).toBe(13)
    expect(a.mtimeMs).toBe(T0 + 100_000)
    expect(hex(a.contentId)).toBe(smallContentId('alpha, edited'))
    expect(get('b.bin')).toMatchObject({ version: 1, seq: 2 })
  })

  it('notices a file replaced by another of the same size and mtime (new inode)', async () => {
    await put('a.bin', 'AAAA')
    await scan(T0 + 60_000)
    const oldIno = get('a.bin').ino
    const tmp = join(root, '..', 'replacement')
    await writeFile(tmp, 'BBBB')
    await utimes(tmp, T0 / 1000, T0 / 1000)
    await rename(tmp, join(root, 'a.bin'))
    expect((await stat(join(root, 'a.bin'))).ino).not.toBe(oldIno)
    const r = await scan(T0 + 120_000)
    expect(r.changed.map(f => [f.path, f.version])).toEqual([['a.bin', 2]])
    expect(hex(get('a.bin').contentId)).toBe(smallContentId('BBBB'))
  })

  it('records a touched file with unchanged content without a new version, and does not hash it again', async () => {
    await put('a.bin', 'alpha')
    await scan(T0 + 60_000)
    await utimes(join(root, 'a.bin'), (T0 + 70_000) / 1000, (T0 + 70_000) / 1000)
    const before = hashingStats.filesHashed
    const r = await scan(T0 + 100_000)
    expect(r.changed).toEqual([])
    expect(hashingStats.filesHashed).toBe(before + 1)
    expect(get('a.bin')).toMatchObject({ version: 1, seq: 1, mtimeMs: T0 + 70_000 })
    expect(index.sequence).toBe(1)
    await scan(T0 + 200_000)
    expect(hashingStats.filesHashed).toBe(before + 1)
  })

  it('turns a deleted file into a tombstone with a higher version, once', async () => {
    await put('a.bin', 'alpha')
    await put('b.bin', 'bravo')
    await scan(T0 + 60_000)
    await put('a.bin', 'alpha 2', T0 + 61_000)
    await scan(T0 + 70_000) // a.bin is now version 2, seq 3
    await rm(join(root, 'a.bin'))
    const r = await scan(T0 + 80_000)
    expect(r.changed).toHaveLength(1)
    expect(r.changed[0]).toMatchObject({ path: 'a.bin', deleted: true, version: 3, seq: 4 })
    expect(get('a.bin')).toMatchObject({ deleted: true, version: 3, seq: 4, size: 0 })
    expect(get('b.bin')).toMatchObject({ deleted: false, version: 1 })
    const again = await scan(T0 + 90_000)
    expect(again.changed).toEqual([])
    expect(index.sequence).toBe(4)
  })

  it('tombstones every file under a removed subdirectory, and only those', async () => {
    await put('keep.bin', 'keep')
    await put('sub/a.bin', 'a')
    await put('sub/deeper/b.bin', 'b')
    await scan(T0 + 60_000)
    await rm(join(root, 'sub'), { recursive: true })
    const r = await scan(T0 + 70_000)
    expect(r.changed.map(f => [f.path, f.deleted, f.version]).sort()).toEqual([['sub/a.bin', true, 2], ['sub/deeper/b.bin', true, 2]])
    expect(get('keep.bin')).toMatchObject({ deleted: false, version: 1 })
  })

  it('gives a file that reappears after deletion a version above its tombstone', async () => {
    await put('a.bin', 'alpha')
    await scan(T0 + 60_000)
    await rm(join(root, 'a.bin'))
    await scan(T0 + 70_000)
    expect(get('a.bin')).toMatchObject({ deleted: true, version: 2 })
    await put('a.bin', 'alpha', T0 + 75_000) // same bytes as before the deletion
    const r = await scan(T0 + 90_000)
    expect(r.changed.map(f => [f.path, f.version, f.deleted])).toEqual([['a.bin', 3, false]])
    expect(hex(get('a.bin').contentId)).toBe(smallContentId('alpha'))
  })

  it('throws DatasetUnavailableError for a missing root and tombstones nothing', async () => {
    await put('a.bin', 'alpha')
    await put('sub/b.bin', 'bravo')
    await scan(T0 + 60_000)
    await rm(root, { recursive: true })
    const err = await scan(T0 + 70_000).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(DatasetUnavailableError)
    expect((err as Error).name).toBe('DatasetUnavailableError')
    expect(index.sequence).toBe(2)
    expect(index.filesOf(DS).map(f => [f.path, f.deleted, f.version]).sort()).toEqual([['a.bin', false, 1], ['sub/b.bin', false, 1]])
  })

  it('treats an emptied root without its marker (an unmounted volume) as unavailable, not as deletions', async () => {
    await put('a.bin', 'alpha')
    await put('sub/b.bin', 'bravo')
    await scan(T0 + 60_000)
    // What a mount point looks like once its volume is gone: the directory exists, empty.
    await rm(root, { recursive: true })
    await mkdir(root)
    const err = await scan(T0 + 70_000).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(DatasetUnavailableError)
    expect((err as Error).message).toMatch(/is the volume mounted/)
    expect(index.sequence).toBe(2)
    expect(index.filesOf(DS).every(f => !f.deleted)).toBe(true)
  })

  it('propagates the deletion of every file when the marker stays', async () => {
    await put('only.bin', 'alone')
    await scan(T0 + 60_000)
    await rm(join(root, 'only.bin'))
    const result = await scan(T0 + 70_000)
    expect(result.changed.map(f => [f.path, f.deleted])).toEqual([['only.bin', true]])
  })

  it('throws DatasetUnavailableError when the root is a file', async () => {
    const file = join(root, '..', 'not-a-dir')
    await writeFile(file, 'x')
    await expect(scanDataset(DS, file, index, { stableMs: STABLE, now: () => T0 })).rejects.toBeInstanceOf(DatasetUnavailableError)
  })

  it('ignores internal names (*.shoal-part, .shoal-*) but not look-alikes', async () => {
    await put('model.bin.shoal-part', 'partial download')
    await put('.shoal-state', 'agent state')
    await put('.shoal-tmp/inside.bin', 'under an internal directory')
    await put('sub/x.shoal-part', 'partial in a subdirectory')
    await put('notes.shoal-partial', 'ordinary file')
    await put('my.shoal-notes', 'ordinary file')
    await put('.hidden', 'ordinary dotfile')
    const r = await scan(T0 + 60_000)
    expect(r.changed.map(f => f.path).sort()).toEqual(['.hidden', 'my.shoal-notes', 'notes.shoal-partial'])
    expect(index.get(DS, 'model.bin.shoal-part')).toBeUndefined()
    expect(r.pending).toBe(0)
    // Partial files (not those under an internal directory, which is not walked) are reported for the agent's sweep.
    expect(r.partials.sort()).toEqual(['model.bin.shoal-part', 'sub/x.shoal-part'])
  })

  it('treats an indexed file renamed to an internal name as deleted', async () => {
    await put('a.bin', 'alpha')
    await scan(T0 + 60_000)
    await rename(join(root, 'a.bin'), join(root, 'a.bin.shoal-part'))
    const r = await scan(T0 + 70_000)
    expect(r.changed.map(f => [f.path, f.deleted])).toEqual([['a.bin', true]])
  })

  it('skips file names that cannot travel on the wire and reports them', async () => {
    await put('ok.bin', 'fine')
    await put('back\\slash', 'a backslash in a name')
    await put('ctl\u0001char', 'a control character in a name')
    const r = await scan(T0 + 60_000)
    expect(r.changed.map(f => f.path)).toEqual(['ok.bin'])
    expect(r.skipped.sort()).toEqual(['back\\slash', 'ctl\u0001char'])
    expect(index.filesOf(DS)).toHaveLength(1)
  })

  it('makes a local edit\'s version exceed the versionFloor', async () => {
    const floors: Array<[string, string]> = []
    const versionFloor = (dataset: string, path: string): number => {
      floors.push([dataset, path])
      return path === 'a.bin' ? 7 : 0
    }
    await put('a.bin', 'alpha')
    await put('b.bin', 'bravo')
    await scan(T0 + 60_000, { versionFloor })
    expect(get('a.bin').version).toBe(8)
    expect(get('b.bin').version).toBe(1)
    expect(floors).toContainEqual([DS, 'a.bin'])

    // The cluster moved on to version 10 elsewhere; the local edit must win over it.
    await put('a.bin', 'alpha, edited', T0 + 61_000)
    await scan(T0 + 70_000, { versionFloor: () => 10 })
    expect(get('a.bin').version).toBe(11)
    // A floor below the local version does not lower it.
    await put('a.bin', 'alpha, edited again', T0 + 71_000)
    await scan(T0 + 80_000, { versionFloor: () => 3 })
    expect(get('a.bin').version).toBe(12)
    // Deleting also goes above the floor.
    await rm(join(root, 'b.bin'))
    await scan(T0 + 90_000, { versionFloor: () => 20 })
    expect(get('b.bin')).toMatchObject({ deleted: true, version: 21 })
  })

  it('keeps the chunk size of a file that grows a little past the 1000-chunk threshold', async () => {
    const path = join(root, 'big.bin')
    const fh = await open(path, 'w')
    await fh.truncate(1000 * MIN) // exactly 1000 chunks of 256 KiB (sparse)
    await fh.write(Buffer.from('head'), 0, 4, 0)
    await fh.close()
    await utimes(path, T0 / 1000, T0 / 1000)
    await scan(T0 + 60_000)
    expect(get('big.bin')).toMatchObject({ chunkSize: MIN, size: 1000 * MIN })
    expect(get('big.bin').hashes.length).toBe(1000 * 32)

    const fh2 = await open(path, 'r+')
    await fh2.write(Buffer.from('!'), 0, 1, 1000 * MIN) // one byte more: ideal would be 512 KiB
    await fh2.close()
    await utimes(path, (T0 + 61_000) / 1000, (T0 + 61_000) / 1000)
    await scan(T0 + 70_000)
    expect(get('big.bin')).toMatchObject({ chunkSize: MIN, size: 1000 * MIN + 1, version: 2 })
    expect(get('big.bin').hashes.length).toBe(1001 * 32)
  })

  it('scans datasets independently: one dataset never tombstones another\'s files', async () => {
    const otherRoot = join(root, '..', 'other')
    await mkdir(otherRoot)
    await writeFile(join(otherRoot, 'o.bin'), 'other')
    await utimes(join(otherRoot, 'o.bin'), T0 / 1000, T0 / 1000)
    await put('a.bin', 'alpha')
    await scanDataset('other', otherRoot, index, { stableMs: STABLE, now: () => T0 + 60_000 })
    await scan(T0 + 60_000)
    await scan(T0 + 70_000)
    expect(index.get('other', 'o.bin')).toMatchObject({ deleted: false, version: 1 })
    expect(index.get(DS, 'o.bin')).toBeUndefined()
    expect(index.sequence).toBe(2)
  })

  it('stops when its signal is aborted', async () => {
    await put('a.bin', 'alpha')
    const controller = new AbortController()
    controller.abort()
    await expect(scan(T0 + 60_000, { signal: controller.signal })).rejects.toThrow()
    expect(index.sequence).toBe(0)
  })

  it('keeps the index across close and reopen', async () => {
    await put('a.bin', 'alpha')
    await put('b.bin', 'bravo')
    await scan(T0 + 60_000)
    await rm(join(root, 'b.bin'))
    await scan(T0 + 70_000)
    const entries = index.filesOf(DS).sort((x, y) => x.path.localeCompare(y.path))
    expect(index.sequence).toBe(3)
    index.close()

    index = new LocalIndex(dbFile)
    expect(index.sequence).toBe(3)
    const reopened = index.filesOf(DS).sort((x, y) => x.path.localeCompare(y.path))
    const view = (f: LocalFile): unknown => ({ ...f, contentId: hex(f.contentId), hashes: hex(f.hashes) })
    expect(reopened.map(view)).toEqual(entries.map(view))
    expect(index.changes(1, 100).map(f => [f.path, f.seq, f.deleted])).toEqual([['b.bin', 3, true]])

    const before = hashingStats.filesHashed
    const unchanged = await scan(T0 + 80_000)
    expect(unchanged.changed).toEqual([])
    expect(hashingStats.filesHashed).toBe(before)

    await put('c.bin', 'charlie')
    const r = await scan(T0 + 90_000)
    expect(r.changed.map(f => [f.path, f.version, f.seq])).toEqual([['c.bin', 1, 4]])
    index.close()
    index = new LocalIndex(dbFile)
    expect(index.sequence).toBe(4)
    expect(index.get(DS, 'c.bin')).toMatchObject({ version: 1, seq: 4 })
  })

  it('merges the walk with the index in one order: tricky names rescan as unchanged, and deletions hit exactly the deleted files', async () => {
    // Names whose order differs between a per-directory listing, JS code units and UTF-8 bytes:
    // '-' < '.' < '/' < '0', U+E000 (BMP, after the surrogates in UTF-16) against an emoji.
    const names = ['a.txt', 'a-b', 'a0', 'a/x', 'a/y/z', 'a.d/q', 'b', '\uE000.f', '\uE000/in', '\u{1F40B}.f', '\u{1F40B}/in', 'é', 'e/é', 'Z', 'z/0/1/2']
    for (const name of names) await put(name, name)
    const first = await scan(T0 + 60_000)
    expect(first.changed.map(f => f.path).sort(compareUtf8)).toEqual([...names].sort(compareUtf8))
    const before = hashingStats.filesHashed
    const again = await scan(T0 + 70_000)
    expect(again.changed).toEqual([])
    expect(hashingStats.filesHashed).toBe(before)
    for (const gone of ['a-b', 'a/y/z', '\uE000.f', '\u{1F40B}/in', 'z/0/1/2']) await rm(join(root, gone))
    const r = await scan(T0 + 80_000)
    expect(r.changed.filter(f => f.deleted).map(f => f.path).sort(compareUtf8)).toEqual(['a-b', 'a/y/z', '\uE000.f', '\u{1F40B}/in', 'z/0/1/2'].sort(compareUtf8))
    expect(r.changed.every(f => f.deleted)).toBe(true)
    // Recorded in path order: sequence numbers follow the paths.
    expect(r.changed.map(f => f.path)).toEqual([...r.changed.map(f => f.path)].sort(compareUtf8))
    expect(hashingStats.filesHashed).toBe(before)
  })

  it('reads the index a page at a time: a rescan of thousands of files across page boundaries finds every change', async () => {
    const page = SCAN_INDEX_PAGE
    const count = 2 * page + page / 2
    const files: string[] = []
    for (let i = 0; i < count; i++) files.push(`d${i % 7}/f${String(i).padStart(5, '0')}`)
    await Promise.all(files.map(async f => await put(f, f)))
    expect((await scan(T0 + 60_000)).changed).toHaveLength(count)
    const sorted = [...files].sort(compareUtf8)
    // Around the first and second page boundaries, and at both ends.
    const gone = [sorted[0], sorted[page - 1], sorted[page], sorted[2 * page - 1], sorted[2 * page], sorted[count - 1]]
    for (const f of gone) await rm(join(root, f))
    await put('d3/new', 'new')
    const r = await scan(T0 + 70_000)
    expect(r.changed.filter(f => f.deleted).map(f => f.path)).toEqual(gone)
    expect(r.changed.filter(f => !f.deleted).map(f => f.path)).toEqual(['d3/new'])
    expect((await scan(T0 + 80_000)).changed).toEqual([])
  })
})

describe('scanDataset on a slow filesystem (lstat on the thread pool)', () => {
  it('indexes, rescans and tombstones the same after the walk leaves the event loop\'s thread', async () => {
    // slowStatMs 0: every batch counts as slow, so the walk switches after the first 64 files
    // of the root (and walks sub/ on the thread pool from the start).
    const files = Array.from({ length: 300 }, (_, i) => `f${String(i).padStart(3, '0')}`)
    await Promise.all(files.map(async f => await put(f, f)))
    await put('sub/under', 'under')
    const slow = { slowStatMs: 0 }
    expect((await scan(T0 + 60_000, slow)).changed.map(f => f.path)).toEqual([...files, 'sub/under'])
    const before = hashingStats.filesHashed
    expect((await scan(T0 + 70_000, slow)).changed).toEqual([])
    expect(hashingStats.filesHashed).toBe(before)
    await rm(join(root, files[10]))
    await rm(join(root, files[200]))
    await put(files[250], 'edited', T0 + 1000)
    const r = await scan(T0 + 80_000, slow)
    expect(r.changed.map(f => [f.path, f.deleted])).toEqual([[files[10], true], [files[200], true], [files[250], false]])
  })
})

describe('scanDataset of some directories (only)', () => {
  it('sees the changes in those directories and nowhere else; a full scan sees the rest', async () => {
    for (const f of ['a/keep', 'a/edit', 'a/gone', 'a/w/inner', 'b/other']) await put(f, f)
    await scan(T0 + 60_000)
    await put('a/new', 'new')
    await put('a/edit', 'edited', T0 + 1000)
    await rm(join(root, 'a/gone'))
    await put('a/w/inner', 'changed inside a watched subdirectory', T0 + 1000)
    await put('b/other', 'changed elsewhere', T0 + 1000)
    const scoped = await scan(T0 + 70_000, { only: ['a'], descend: (dir) => dir !== 'a/w' })
    expect(scoped.changed.map(f => [f.path, f.deleted, f.version])).toEqual([['a/edit', false, 2], ['a/gone', true, 2], ['a/new', false, 1]])
    expect(scoped.directories).toEqual(['a'])
    const full = await scan(T0 + 80_000)
    expect(full.changed.map(f => f.path)).toEqual(['a/w/inner', 'b/other'])
  })

  it('walks a subdirectory it may descend into whole, and tombstones the files of one that is gone', async () => {
    for (const f of ['a/old/x', 'a/old/deeper/y', 'a/w/z']) await put(f, f)
    await scan(T0 + 60_000)
    await rm(join(root, 'a/old'), { recursive: true })
    await put('a/fresh/deep/er/f', 'f')
    const watched = new Set(['a', 'a/old', 'a/old/deeper', 'a/w'])
    const r = await scan(T0 + 70_000, { only: ['a'], descend: (dir) => !watched.has(dir) })
    expect(r.changed.map(f => [f.path, f.deleted])).toEqual([['a/fresh/deep/er/f', false], ['a/old/deeper/y', true], ['a/old/x', true]])
    expect(r.directories).toEqual(['a', 'a/fresh', 'a/fresh/deep', 'a/fresh/deep/er'])
    // A directory scanned by name after it went away: its files go, once.
    await rm(join(root, 'a/w'), { recursive: true })
    const gone = await scan(T0 + 80_000, { only: ['a/w'], descend: () => false })
    expect(gone.changed.map(f => [f.path, f.deleted])).toEqual([['a/w/z', true]])
    expect((await scan(T0 + 90_000)).changed).toEqual([])
  })

  it('skips the index rows of a subdirectory it does not walk, across pages, and still sees what follows it', async () => {
    await put('a/first', '1')
    await Promise.all(Array.from({ length: 2 * SCAN_INDEX_PAGE + 100 }, async (_, i) => await put(`a/w/f${String(i).padStart(4, '0')}`, String(i))))
    await put('a/x-last', 'last')
    await put('a/z/under', 'under')
    await scan(T0 + 60_000)
    await rm(join(root, 'a/first'))
    await rm(join(root, 'a/x-last'))
    await rm(join(root, `a/w/f${String(SCAN_INDEX_PAGE + 7).padStart(4, '0')}`))
    const r = await scan(T0 + 70_000, { only: ['a'], descend: (dir) => dir !== 'a/w' })
    expect(r.changed.map(f => [f.path, f.deleted])).toEqual([['a/first', true], ['a/x-last', true]])
    expect(r.directories).toEqual(['a', 'a/z'])
    const full = await scan(T0 + 80_000)
    expect(full.changed.map(f => [f.path, f.deleted])).toEqual([[`a/w/f${String(SCAN_INDEX_PAGE + 7).padStart(4, '0')}`, true]])
  })

  it('treats an emptied root without its marker as unavailable, also when scanning one directory of it', async () => {
    await put('a/one', '1')
    await scan(T0 + 60_000)
    await rm(root, { recursive: true })
    await mkdir(root)
    await expect(scan(T0 + 70_000, { only: ['a'], descend: () => true })).rejects.toThrow(DatasetUnavailableError)
    expect(get('a/one')).toMatchObject({ deleted: false, version: 1 })
  })

  it('refuses a directory that is not a relative path', async () => {
    await expect(scan(T0, { only: ['../up'] })).rejects.toThrow(/not a relative directory path/)
  })
})

describe('compareUtf8', () => {
  it('orders strings as SQLite orders TEXT (the bytes of their UTF-8) and as Buffer.compare does', () => {
    const alphabet = ['a', 'Z', '/', '.', '-', '0', 'é', '\u07FF', '\u0800', '\uD7FF', '\uE000', '\uFFFD', '\u{10000}', '\u{1F40B}', '\u{10FFFF}']
    let seed = 12345
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
    const words = new Set<string>()
    while (words.size < 2000) {
      let w = ''
      const n = 1 + Math.floor(random() * 5)
      for (let i = 0; i < n; i++) w += alphabet[Math.floor(random() * alphabet.length)]
      words.add(w)
    }
    const db = new DatabaseSync(':memory:')
    db.exec('CREATE TABLE t (p TEXT PRIMARY KEY) WITHOUT ROWID')
    const insert = db.prepare('INSERT INTO t (p) VALUES (?)')
    for (const w of words) insert.run(w)
    const bySqlite = (db.prepare('SELECT p FROM t ORDER BY p').all() as Array<{ p: string }>).map(r => r.p)
    db.close()
    expect([...words].sort(compareUtf8)).toEqual(bySqlite)
    expect([...words].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))).toEqual(bySqlite)
  })
})
