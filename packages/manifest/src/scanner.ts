import { readdir, stat, lstat, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { isValidRelativePath } from '@shoal/wire'
import { chooseChunkSize, FileChangedError, hashFile, type FileHashes } from './chunking.js'
import type { LocalFile, LocalIndex } from './local-index.js'

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
  /** Files skipped because their path cannot be represented on the wire. */
  skipped: string[]
  /** Every directory of the dataset the walk read, relative to its root ('' for the root). */
  directories: string[]
}

interface Seen { size: number, mtimeMs: number, ino: number, mode: number }

interface Walk { seen: Map<string, Seen>, skipped: string[], unreadable: string[], directories: string[], signal?: AbortSignal }

/** lstat calls in flight during a walk: enough to keep the thread pool busy, and a slow network filesystem does not stall the event loop. */
const STAT_CONCURRENCY = 64

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

async function walk (root: string, dir: string, w: Walk): Promise<void> {
  let entries
  try {
    entries = await readdir(join(root, dir), { withFileTypes: true })
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
  const { seen: out, skipped, signal } = w
  w.directories.push(dir)
  const files: string[] = []
  const dirs: string[] = []
  for (const entry of entries) {
    if (isInternalName(entry.name)) continue
    const rel = dir === '' ? entry.name : `${dir}/${entry.name}`
    if (entry.isDirectory()) dirs.push(rel)
    else if (entry.isFile()) {
      if (isValidRelativePath(rel)) files.push(rel)
      else skipped.push(rel)
    }
  }
  // Stat the directory's files concurrently; record them in directory order (sequence numbers do not depend on timing).
  const stats: Array<Seen | undefined> = new Array(files.length)
  await eachLimited(files, STAT_CONCURRENCY, async (rel, i) => {
    signal?.throwIfAborted()
    try {
      const st = await lstat(join(root, rel))
      if (st.isFile()) stats[i] = { size: st.size, mtimeMs: Math.floor(st.mtimeMs), ino: st.ino, mode: st.mode & 0o7777 }
    } catch (err: any) {
      if (err.code !== 'ENOENT') throw err
    }
  })
  for (let i = 0; i < files.length; i++) {
    const st = stats[i]
    if (st != null) out.set(files[i], st)
  }
  for (const sub of dirs) {
    signal?.throwIfAborted()
    await walk(root, sub, w)
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
    const live = index.filesOf(dataset).filter(f => !f.deleted).length
    if (live > 0) {
      throw new DatasetUnavailableError(`dataset ${dataset}: ${join(root, DATASET_MARKER)} is missing but ${live} files are indexed; is the volume mounted? (restore the marker to resume, or remove the index to start over)`)
    }
    await writeFile(join(root, DATASET_MARKER), 'This directory is a shoal dataset. Do not remove this file.\n', { flag: 'wx' }).catch((err: any) => {
      if (err.code !== 'EEXIST') throw new DatasetUnavailableError(`dataset ${dataset}: cannot write ${DATASET_MARKER} in ${root} (${err.code})`)
    })
  }
  const w: Walk = { seen: new Map(), skipped: [], unreadable: [], directories: [], signal: options.signal }
  await walk(root, '', w)
  const { seen, skipped } = w

  const changed: ScannedChange[] = []
  let pending = 0
  const known = index.statsOf(dataset)
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

  // Several files hash at once, but their results are recorded in walk order, so sequence numbers
  // do not depend on which hash finishes first.
  interface InFlight { path: string, disk: Seen, old?: LocalFile, chunkSize: number, outcome: Promise<{ hashed?: FileHashes, error?: unknown }> }
  const inFlight: InFlight[] = []
  const recordOldest = async (): Promise<void> => {
    const { path, disk, old, chunkSize, outcome } = inFlight[0]
    const { hashed, error } = await outcome
    inFlight.shift()
    if (error != null) throw error
    if (hashed == null) {
      pending++
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

  try {
    for (const [path, disk] of seen) {
      options.signal?.throwIfAborted()
      const indexed = known.get(path)
      if (indexed != null && !indexed.deleted && indexed.size === disk.size && indexed.mtimeMs === disk.mtimeMs && indexed.ino === disk.ino) continue
      const old = indexed == null ? undefined : index.get(dataset, path)
      if (now() - disk.mtimeMs < options.stableMs) {
        pending++
        continue
      }
      const chunkSize = chooseChunkSize(disk.size, old?.deleted === false ? old.chunkSize : undefined)
      // Settled into a value at once: a failure waiting behind earlier files is not an unhandled rejection.
      const outcome = hashStable(path, disk, chunkSize).then(hashed => ({ hashed }), (error: unknown) => ({ error: error ?? new Error('hashing failed') }))
      inFlight.push({ path, disk, old, chunkSize, outcome })
      if (inFlight.length >= concurrency) await recordOldest()
    }
    while (inFlight.length > 0) await recordOldest()
  } finally {
    if (inFlight.length > 0) {
      stop.abort()
      await Promise.all(inFlight.map(async f => await f.outcome))
    }
  }
  for (const [path, indexed] of known) {
    if (indexed.deleted || seen.has(path)) continue
    if (w.unreadable.some(dir => path.startsWith(`${dir}/`))) continue
    const old = index.get(dataset, path)
    if (old == null) continue
    changed.push(scanned(index.put({
      dataset, path, size: 0, mtimeMs: now(), ino: 0, mode: 0, contentId: new Uint8Array(0), chunkSize: 0,
      hashes: new Uint8Array(0), version: Math.max(old.version, options.versionFloor?.(dataset, path) ?? 0) + 1, deleted: true
    })))
  }
  return { changed, pending, skipped, directories: w.directories }
}
