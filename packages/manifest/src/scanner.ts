import { lstatSync, type Stats } from 'node:fs'
import { readdir, stat, lstat, writeFile } from 'node:fs/promises'
import { setImmediate } from 'node:timers/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { isValidRelativePath } from '@shoal/wire'
import { chooseChunkSize, FileChangedError, hashFile, type FileHashes } from './chunking.js'
import type { IndexedStat, LocalFile, LocalIndex } from './local-index.js'

/** Files the transfer engine writes beside their targets; never indexed. */
export const PARTIAL_SUFFIX = '.shoal-part'

export function isInternalName (name: string): boolean {
  return name.endsWith(PARTIAL_SUFFIX) || name.startsWith('.shoal-')
}

/**
 * A marker file in each dataset root. A dataset whose index holds files but whose marker is gone
 * is treated as unavailable (an unmounted volume shows an empty directory), never as a mass deletion.
 */
export const DATASET_MARKER = '.shoal-dataset'

export class DatasetUnavailableError extends Error {
  override name = 'DatasetUnavailableError'
}

export interface ScanOptions {
  /** A file modified less than this long ago is still being written: not announced yet. */
  stableMs: number
  /** The highest version of this path known anywhere in the cluster (so a local edit wins). */
  versionFloor?: (dataset: string, path: string) => number
  signal?: AbortSignal
  now?: () => number
  /** Hashes one file; hashFile (on this thread) by default. A HashPool's `hash` spreads files over every core. */
  hasher?: FileHasher
  /** Files hashed at once; DEFAULT_HASH_CONCURRENCY by default. */
  hashConcurrency?: number
  /**
   * Scan only these directories (relative to the root, '' for the root): their files, and the
   * subdirectories `descend` accepts, whole. Without it, the whole dataset.
   */
  only?: string[]
  /** With `only`: whether to walk a subdirectory of a scanned directory (false: it is watched, and scanned when it changes). */
  descend?: (dir: string) => boolean
  /** A batch of lstat calls on the event loop's thread slower than this moves the rest of the walk to the thread pool; 4 ms by default. */
  slowStatMs?: number
}

export type FileHasher = (path: string, chunkSize: number, options: { expectedSize?: number, signal?: AbortSignal }) => Promise<FileHashes>

/**
 * Twice the cores: a worker that finishes a file finds the next one already queued while the
 * scanner records the previous result, and memory stays at a few read buffers.
 */
export const DEFAULT_HASH_CONCURRENCY = 2 * availableParallelism()

/** A change a scan recorded (what it found, without the chunk hashes it stored). */
export type ScannedChange = Pick<LocalFile, 'dataset' | 'path' | 'size' | 'mtimeMs' | 'version' | 'seq' | 'deleted'>

function scanned ({ dataset, path, size, mtimeMs, version, seq, deleted }: LocalFile): ScannedChange {
  return { dataset, path, size, mtimeMs, version, seq, deleted }
}

export interface ScanResult {
  changed: ScannedChange[]
  /** Files seen changing but not yet stable; a later scan picks them up. */
  pending: number
  /** The directories those files are in (a scan of these alone picks them up). */
  pendingDirectories: string[]
  /** Files skipped because their path cannot be represented on the wire. */
  skipped: string[]
  /** Every directory of the dataset the walk read, relative to its root ('' for the root). */
  directories: string[]
  /** Partial files of downloads (PARTIAL_SUFFIX) the walk came across, relative to the root; at most MAX_PARTIALS_REPORTED. */
  partials: string[]
}

/** Partial files one scan reports at most (the next scan reports the rest once these are dealt with). */
export const MAX_PARTIALS_REPORTED = 10_000

interface Seen { size: number, mtimeMs: number, ino: number, mode: number }

interface Walk {
  skipped: string[]
  partials: string[]
  unreadable: string[]
  directories: string[]
  signal?: AbortSignal
  notDescended: Set<string>
  /** lstat was slow on this thread: the rest of the walk uses the thread pool. */
  slowStat: boolean
  slowStatMs: number
}

/** lstat calls in flight during a walk: enough to keep the thread pool busy, and a slow network filesystem does not stall the event loop. */
const STAT_CONCURRENCY = 64

/** Files lstat'ed at a time on the event loop's thread, between yields. */
const SYNC_STAT_BATCH = 64
/** A batch slower than this (a network filesystem) moves the rest of the walk to the thread pool. */
const SLOW_STAT_BATCH_MS = 4

/** Index rows a rescan reads at a time (about half a millisecond of SQLite). */
export const SCAN_INDEX_PAGE = 500
/** Files merged between yields to the event loop. */
const MERGE_YIELD_FILES = 256

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function eachLimited<T> (items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      await fn(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** A UTF-16 code unit moved so that code-unit order is UTF-8 byte order (surrogates, i.e. code points above U+FFFF, after U+E000-U+FFFF). */
function utf8Rank (unit: number): number {
  if (unit < 0xd800) return unit
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000
}

/** Orders strings by the bytes of their UTF-8 encoding: SQLite's BINARY collation, the order of the index. */
export function compareUtf8 (a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return utf8Rank(x) - utf8Rank(y)
  }
  return a.length - b.length
}

/**
 * A directory's entry: its sort key (a directory's name followed by '/'), its path from the root,
 * for a file whether that path can travel on the wire, and once lstat found a regular file there
 * (`found`), what it saw. One object per file through the walk and the merge: a rescan under load
 * keeps a directory's entries across several minor collections, and every object more per file
 * was promoted to the old generation (about 47 MB over a rescan of 100,000 files, before).
 */
interface DirEntry extends Seen { key: string, rel: string, dir: boolean, valid: boolean, found: boolean }

function dirEntry (key: string, rel: string, dir: boolean, valid: boolean): DirEntry {
  return { key, rel, dir, valid, found: false, size: 0, mtimeMs: 0, ino: 0, mode: 0 }
}

/** Records what lstat saw of a file's entry (nothing when it is no longer a regular file). */
function see (entry: DirEntry, st: Stats | undefined): void {
  if (st?.isFile() !== true) return
  entry.found = true
  entry.size = st.size
  entry.mtimeMs = Math.floor(st.mtimeMs)
  entry.ino = st.ino
  entry.mode = st.mode & 0o7777
}

/**
 * The regular files under `dir`, in runs, in the index's order of their paths. Within a directory,
 * entries go in order of their name, a directory's name followed by '/': every path under
 * directory d starts with 'd/', so this depth-first order is the byte order of the full paths.
 * Memory: the entries of the directories on the current path, never the whole tree.
 */
async function * walkSorted (root: string, dir: string, w: Walk, descend?: (dir: string) => boolean): AsyncGenerator<DirEntry[]> {
  let listing
  try {
    listing = await readdir(join(root, dir), { withFileTypes: true })
  } catch (err: any) {
    if (dir === '') throw err
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return
    // Files under a directory we cannot read are unknown, not deleted.
    if (err.code === 'EACCES' || err.code === 'EPERM') {
      w.unreadable.push(dir)
      return
    }
    throw err
  }
  w.directories.push(dir)
  const entries: DirEntry[] = []
  for (const entry of listing) {
    if (isInternalName(entry.name)) {
      if (entry.name.endsWith(PARTIAL_SUFFIX) && entry.isFile() && w.partials.length < MAX_PARTIALS_REPORTED) w.partials.push(dir === '' ? entry.name : `${dir}/${entry.name}`)
      continue
    }
    const rel = dir === '' ? entry.name : `${dir}/${entry.name}`
    if (entry.isDirectory()) entries.push(dirEntry(`${entry.name}/`, rel, true, true))
    else if (entry.isFile()) entries.push(dirEntry(entry.name, rel, false, isValidRelativePath(rel)))
  }
  listing = undefined
  entries.sort((a, b) => compareUtf8(a.key, b.key))
  // Stat the directory's files concurrently; emit them in order (sequence numbers do not depend on timing).
  const files = entries.filter(e => !e.dir)
  let next = 0
  // A local disk answers lstat from the inode cache in a microsecond or two: a batch on this
  // thread costs a fraction of the thread-pool round trips (and yields between batches). A slow
  // one (a network filesystem) switches the walk to the thread pool, where it stalls nothing.
  while (!w.slowStat && next < files.length) {
    w.signal?.throwIfAborted()
    const started = performance.now()
    const end = Math.min(files.length, next + SYNC_STAT_BATCH)
    for (; next < end; next++) {
      if (files[next].valid) see(files[next], lstatSync(join(root, files[next].rel), { throwIfNoEntry: false }))
    }
    if (performance.now() - started >= w.slowStatMs) w.slowStat = true
    await setImmediate()
  }
  await eachLimited(files.slice(next), STAT_CONCURRENCY, async (entry) => {
    w.signal?.throwIfAborted()
    if (!entry.valid) return
    try {
      see(entry, await lstat(join(root, entry.rel)))
    } catch (err: any) {
      if (err.code !== 'ENOENT') throw err
    }
  })
  let run: DirEntry[] = []
  for (const entry of entries) {
    if (!entry.dir) {
      if (!entry.valid) w.skipped.push(entry.rel)
      else if (entry.found) run.push(entry)
      continue
    }
    w.signal?.throwIfAborted()
    const sub = entry.rel
    if (descend != null && !descend(sub)) {
      w.notDescended.add(sub)
      continue
    }
    if (run.length > 0) yield run
    run = []
    yield * walkSorted(root, sub, w)
  }
  if (run.length > 0) yield run
}

/** A dataset's index rows under a prefix ('' for all, 'dir/' for a directory's), in path order, a page at a time. */
class IndexCursor {
  private page: IndexedStat[] = []
  private at = 0
  private done = false
  private bound: string
  private inclusive = false

  constructor (private readonly index: LocalIndex, private readonly dataset: string, private readonly prefix: string) {
    this.bound = prefix
  }

  /** The next row, or undefined at the end. */
  peek (): IndexedStat | undefined {
    if (this.at === this.page.length && !this.done) {
      this.page = this.index.statsPage(this.dataset, this.bound, SCAN_INDEX_PAGE, this.inclusive)
      this.at = 0
      this.inclusive = false
      if (this.page.length < SCAN_INDEX_PAGE) this.done = true
      if (this.page.length > 0) this.bound = this.page[this.page.length - 1].path
    }
    if (this.at >= this.page.length) return undefined
    const row = this.page[this.at]
    if (!row.path.startsWith(this.prefix)) {
      this.done = true
      this.page = []
      this.at = 0
      return undefined
    }
    return row
  }

  next (): void {
    this.at++
  }

  /** Skips every row under the directory `dir` (`dir/...`): they follow each other, up to `dir0` ('0' follows '/'). */
  skipDirectory (dir: string): void {
    this.page = []
    this.at = 0
    this.done = false
    this.bound = `${dir}0`
    this.inclusive = true
  }
}

/**
 * Brings the index of one dataset up to date with the disk. Unchanged files (same size, mtime
 * and inode) cost one stat; changed ones are hashed once they are stable; vanished ones become
 * tombstones. A missing dataset root is an error, never a mass deletion.
 */
export async function scanDataset (dataset: string, root: string, index: LocalIndex, options: ScanOptions): Promise<ScanResult> {
  const now = options.now ?? Date.now
  try {
    const st = await stat(root)
    if (!st.isDirectory()) throw new DatasetUnavailableError(`dataset ${dataset}: ${root} is not a directory`)
  } catch (err: any) {
    if (err instanceof DatasetUnavailableError) throw err
    throw new DatasetUnavailableError(`dataset ${dataset}: cannot read ${root} (${err.code ?? err.message})`)
  }
  try {
    await stat(join(root, DATASET_MARKER))
  } catch {
    const live = index.liveCount(dataset)
    if (live > 0) {
      throw new DatasetUnavailableError(`dataset ${dataset}: ${join(root, DATASET_MARKER)} is missing but ${live} files are indexed; is the volume mounted? (restore the marker to resume, or remove the index to start over)`)
    }
    await writeFile(join(root, DATASET_MARKER), 'This directory is a shoal dataset. Do not remove this file.\n', { flag: 'wx' }).catch((err: any) => {
      if (err.code !== 'EEXIST') throw new DatasetUnavailableError(`dataset ${dataset}: cannot write ${DATASET_MARKER} in ${root} (${err.code})`)
    })
  }
  const w: Walk = { skipped: [], partials: [], unreadable: [], directories: [], signal: options.signal, notDescended: new Set(), slowStat: false, slowStatMs: options.slowStatMs ?? SLOW_STAT_BATCH_MS }

  const changed: ScannedChange[] = []
  let pending = 0
  const pendingDirectories = new Set<string>()
  const notStable = (path: string): void => {
    pending++
    const slash = path.lastIndexOf('/')
    pendingDirectories.add(slash < 0 ? '' : path.slice(0, slash))
  }
  const hasher = options.hasher ?? hashFile
  const concurrency = Math.max(1, Math.floor(options.hashConcurrency ?? DEFAULT_HASH_CONCURRENCY))
  // Ends the hashes still in flight when the scan fails half-way.
  const stop = new AbortController()
  const signal = options.signal == null ? stop.signal : AbortSignal.any([options.signal, stop.signal])

  /** The file's hashes, or undefined when it changed or vanished meanwhile (a later scan sees it again). */
  const hashStable = async (path: string, disk: Seen, chunkSize: number): Promise<FileHashes | undefined> => {
    try {
      const hashed = await hasher(join(root, path), chunkSize, { expectedSize: disk.size, signal })
      const after = await lstat(join(root, path))
      if (after.size !== disk.size || Math.floor(after.mtimeMs) !== disk.mtimeMs || after.ino !== disk.ino) throw new FileChangedError(path)
      return hashed
    } catch (err: any) {
      if (err instanceof FileChangedError || err.code === 'ENOENT') return undefined
      throw err
    }
  }

  /** True when the path is still a regular file on disk, though the walk did not list it (created meanwhile). */
  const stillThere = async (path: string): Promise<boolean> => {
    try {
      return (await lstat(join(root, path))).isFile()
    } catch (err: any) {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return false
      throw err
    }
  }

  // Several files hash at once, but every result (and every deletion) is recorded in path order,
  // so sequence numbers do not depend on which hash finishes first.
  interface InFlight { path: string, disk?: Seen, old?: LocalFile, chunkSize: number, outcome: Promise<{ hashed?: FileHashes, error?: unknown }> }
  const inFlight: InFlight[] = []
  const recordOldest = async (): Promise<void> => {
    const { path, disk, old, chunkSize, outcome } = inFlight[0]
    const { hashed, error } = await outcome
    inFlight.shift()
    if (error != null) throw error
    if (disk == null) {
      // Indexed, not on disk: a tombstone above every version known.
      if (old == null || old.deleted) return
      changed.push(scanned(index.put({
        dataset, path, size: 0, mtimeMs: now(), ino: 0, mode: 0, contentId: new Uint8Array(0), chunkSize: 0,
        hashes: new Uint8Array(0), version: Math.max(old.version, options.versionFloor?.(dataset, path) ?? 0) + 1, deleted: true
      })))
      return
    }
    if (hashed == null) {
      notStable(path)
      return
    }
    if (old != null && !old.deleted && Buffer.compare(old.contentId, hashed.contentId) === 0) {
      index.touch(dataset, path, disk.size, disk.mtimeMs, disk.ino)
      return
    }
    const version = Math.max(old?.version ?? 0, options.versionFloor?.(dataset, path) ?? 0) + 1
    changed.push(scanned(index.put({
      dataset, path, size: disk.size, mtimeMs: disk.mtimeMs, ino: disk.ino, mode: disk.mode,
      contentId: hashed.contentId, chunkSize, hashes: hashed.hashes, version, deleted: false
    })))
  }
  const enqueue = async (item: InFlight): Promise<void> => {
    inFlight.push(item)
    if (inFlight.length >= concurrency) await recordOldest()
  }

  /** A file on disk, with its index row if it has one. */
  const onDisk = async (path: string, disk: Seen, indexed: IndexedStat | undefined): Promise<void> => {
    if (indexed != null && !indexed.deleted && indexed.size === disk.size && indexed.mtimeMs === disk.mtimeMs && indexed.ino === disk.ino) return
    // Looked up even without a row from the merge: a new file's lookup finds nothing, cheaply.
    const old = index.get(dataset, path)
    if (now() - disk.mtimeMs < options.stableMs) {
      notStable(path)
      return
    }
    const chunkSize = chooseChunkSize(disk.size, old?.deleted === false ? old.chunkSize : undefined)
    // Settled into a value at once: a failure waiting behind earlier files is not an unhandled rejection.
    const outcome = hashStable(path, disk, chunkSize).then(hashed => ({ hashed }), (error: unknown) => ({ error: error ?? new Error('hashing failed') }))
    await enqueue({ path, disk, old, chunkSize, outcome })
  }

  /** An index row with no file on disk at its place in the walk. */
  const notOnDisk = async (indexed: IndexedStat): Promise<void> => {
    if (indexed.deleted) return
    if (w.unreadable.some(dir => indexed.path.startsWith(`${dir}/`))) return
    // The walk and the index agree on their order, so the file is gone; the lstat also covers a
    // file created after its directory was read (the next scan indexes it).
    if (await stillThere(indexed.path)) return
    const old = index.get(dataset, indexed.path)
    if (old == null) return
    await enqueue({ path: indexed.path, old, chunkSize: 0, outcome: Promise.resolve({}) })
  }

  /** The directory directly under `prefix` that `path` lies in, if the walk did not descend into it. */
  const inNotDescended = (prefix: string, path: string): string | undefined => {
    if (w.notDescended.size === 0) return undefined
    const slash = path.indexOf('/', prefix.length)
    if (slash < 0) return undefined
    const dir = path.slice(0, slash)
    return w.notDescended.has(dir) ? dir : undefined
  }

  // Merge the walk with the index, both in path order: O(a directory + a page) of memory.
  const mergeUnder = async (dir: string, descend?: (dir: string) => boolean): Promise<void> => {
    const prefix = dir === '' ? '' : `${dir}/`
    const cursor = new IndexCursor(index, dataset, prefix)
    w.notDescended.clear()
    /** The next index row before `path` (all of them without it), other than rows of directories not walked. */
    const rowsBefore = async (path: string | undefined): Promise<IndexedStat | undefined> => {
      for (let row = cursor.peek(); row != null; row = cursor.peek()) {
        options.signal?.throwIfAborted()
        const skip = inNotDescended(prefix, row.path)
        if (skip != null) {
          cursor.skipDirectory(skip)
          continue
        }
        if (path != null && compareUtf8(row.path, path) >= 0) return row
        cursor.next()
        await notOnDisk(row)
      }
      return undefined
    }
    let sinceYield = 0
    for await (const run of walkSorted(root, dir, w, descend)) {
      for (const disk of run) {
        const path = disk.rel
        options.signal?.throwIfAborted()
        // Between the walk's own yields, a directory of thousands of files: let requests in.
        if (++sinceYield === MERGE_YIELD_FILES) {
          sinceYield = 0
          await setImmediate()
        }
        const row = await rowsBefore(path)
        if (row != null && row.path === path) {
          cursor.next()
          await onDisk(path, disk, row)
        } else {
          await onDisk(path, disk, undefined)
        }
      }
    }
    await rowsBefore(undefined)
  }

  try {
    if (options.only == null) await mergeUnder('')
    else {
      // Each directory once, in path order (one under another may be walked twice: the second walk finds nothing new).
      const dirs = [...new Set(options.only)].sort(compareUtf8)
      for (const dir of dirs) {
        if (dir !== '' && !isValidRelativePath(dir)) throw new RangeError(`scan of ${JSON.stringify(dir)}: not a relative directory path`)
        await mergeUnder(dir, options.descend)
      }
    }
    while (inFlight.length > 0) await recordOldest()
  } finally {
    if (inFlight.length > 0) {
      stop.abort()
      await Promise.all(inFlight.map(async f => await f.outcome))
    }
  }
  const { skipped } = w
  return { changed, pending, pendingDirectories: [...pendingDirectories], skipped, directories: w.directories, partials: w.partials }
}
