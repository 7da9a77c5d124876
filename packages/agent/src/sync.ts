import { lstat, mkdir, rename, stat, open, statfs, unlink } from 'node:fs/promises'
import { dirname, join, sep } from 'node:path'
import { compareVersions, fileKey } from '@shoal/manifest'
import { CommitRefusedError, PRIORITIES, partialPathFor, partialTargetOf, type Priority, type TransferEngine } from '@shoal/transfer'
import type { Order } from './directives.js'
import type { HoldPolicies } from './policy.js'
import { CONCURRENT_DOWNLOADS, MAX_FINISHED_TRANSFERS, MAX_RETRIES } from './constants.js'
import { Semaphore, type Logger, type SerialQueue } from './util.js'
import type { DatasetConfig } from './config.js'
import type { ClusterManifest, LocalFile, LocalIndex } from '@shoal/manifest'
import type { FileEntry } from '@shoal/wire'
import type { AgentEvent } from '@shoal/client'

export interface TransferRecord {
  dataset: string
  path: string
  size: number
  version: number
  state: 'queued' | 'running' | 'completed' | 'failed'
  error?: string
  /** Bytes held so far (verified), resumed ones included. */
  bytes: number
  priority: Priority
  /** Chunks found verified from an earlier, interrupted run. */
  resumedChunks?: number
  startedAt?: number
  endedAt?: number
}

export interface SyncInit {
  selfId: string
  datasets: DatasetConfig[]
  index: LocalIndex
  cluster: ClusterManifest
  engine: TransferEngine
  /** Downloads are refused while the free space would drop below this many bytes. */
  minFreeDiskBytes: number
  /** Receivers (partial holders) not heard from for this long are not offered as sources (asked each time: it follows the heartbeat period, which grows with the cluster). */
  receiverSilentMs: () => number
  /** Serialises every change of the index and of dataset files (scans and commits). */
  indexLock: SerialQueue
  policies: HoldPolicies
  /** Called after a commit changed the index, so the change is announced. */
  onLocalChange: () => void
  onTransfer?: (event: AgentEvent) => void
  log: Logger
}

/**
 * The "hold everything" policy: whenever the cluster manifest shows a newer live version of a
 * file in a dataset this node also has, fetch it. A file modified locally is never overwritten.
 */
/** Where files deleted by other nodes go, inside each dataset (ignored by the scanner). */
export const TRASH_DIR = '.shoal-trash'

export class DiskLowError extends Error {
  override name = 'DiskLowError'
}

export class Sync {
  readonly transfers = new Map<string, TransferRecord>()
  private readonly wanted = new Set<string>()
  private readonly limit = new Semaphore(CONCURRENT_DOWNLOADS)
  private readonly controller = new AbortController()
  private readonly running = new Set<Promise<void>>()
  private readonly datasets: Map<string, DatasetConfig>
  /** Paths whose last attempt failed, and when they may be tried again (with growing back-off). */
  private readonly retry = new Map<string, { at: number, delay: number }>()
  private retryTimer?: NodeJS.Timeout
  private readonly orders = new Map<string, Order>()

  constructor (private readonly init: SyncInit) {
    this.datasets = new Map(init.datasets.map(d => [d.name, d]))
  }

  start (): void {
    this.init.cluster.onChange((peerId, changed) => {
      if (peerId === this.init.selfId) return
      for (const entry of changed) {
        if (entry.deleted) this.considerDeletion(entry.dataset, entry.path)
        else this.consider(entry.dataset, entry.path)
      }
    })
    for (const record of this.init.cluster.allNodes()) {
      if (record.peerId === this.init.selfId) continue
      for (const entry of this.init.cluster.entriesOf(record.peerId)) this.consider(entry.dataset, entry.path)
    }
    this.retryTimer = setInterval(() => {
      const now = Date.now()
      for (const [key, r] of this.retry) {
        if (r.at > now) continue
        const slash = key.indexOf('/')
        this.consider(key.slice(0, slash), key.slice(slash + 1), true)
      }
    }, 1000).unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.retryTimer)
    this.controller.abort(new Error('agent stopping'))
    await Promise.allSettled([...this.running])
  }

  /** The entry this node should fetch for a path, if any. */
  private target (dataset: string, path: string): FileEntry | undefined {
    if (!this.datasets.has(dataset)) return undefined
    // The common case, answered from memory: this node already holds the newest content.
    if (this.init.cluster.holdsNewest(this.init.selfId, dataset, path)) return undefined
    const newest = this.init.cluster.newest(dataset, path)
    if (newest == null || newest.deleted) return undefined
    const local = this.init.index.get(dataset, path)
    const held = local != null && !local.deleted
    // A file held is kept up to date; one not held is fetched when the policy or an order wants it.
    if (!held && !this.orders.has(fileKey(dataset, path)) && !this.init.policies.wants(dataset, path)) return undefined
    if (!this.init.policies.synced(dataset, path)) return undefined
    if (local != null && (local.version > newest.version || compareVersions(toComparable(local), newest) >= 0)) return undefined
    if (held && Buffer.compare(local.contentId, newest.contentId) === 0) return undefined
    if (held && (this.datasets.get(dataset) as DatasetConfig).immutable) {
      this.refuseImmutable(dataset, path, newest)
      return undefined
    }
    return newest
  }

  /** Paths of immutable datasets where another node published different content (reported, never applied). */
  readonly immutableViolations = new Map<string, { dataset: string, path: string, version: number, at: number }>()

  private refuseImmutable (dataset: string, path: string, newest: FileEntry): void {
    const key = fileKey(dataset, path)
    if (this.immutableViolations.get(key)?.version === newest.version) return
    this.immutableViolations.set(key, { dataset, path, version: newest.version, at: Date.now() })
    this.init.log.warn('refused a change to a file of an immutable dataset', { dataset, path, version: newest.version })
  }

  /**
   * Another node deleted a file this node holds: the local copy, if unmodified since it was
   * indexed, moves to the dataset's `.shoal-trash/` (recoverable, never synced) and this node
   * records the same tombstone. A copy modified locally is kept: the scanner announces it as a
   * newer version.
   */
  considerDeletion (dataset: string, path: string): void {
    const config = this.datasets.get(dataset)
    if (config == null || this.controller.signal.aborted || this.wanted.has(fileKey(dataset, path))) return
    const newest = this.init.cluster.newest(dataset, path)
    if (newest == null || !newest.deleted) return
    this.abandonPartialOfDeleted(config, dataset, path, newest.version)
    const local = this.init.index.get(dataset, path)
    if (local == null || local.deleted || local.version >= newest.version) return
    void this.init.indexLock.run(async () => {
      const current = this.init.index.get(dataset, path)
      if (current == null || current.deleted || current.version >= newest.version) return false
      const target = join(config.path, ...path.split('/'))
      try {
        const st = await stat(target)
        if (st.size !== current.size || Math.floor(st.mtimeMs) !== current.mtimeMs || st.ino !== current.ino) return false
        const trash = join(config.path, TRASH_DIR, String(Date.now()), ...path.split('/'))
        await mkdir(dirname(trash), { recursive: true })
        await rename(target, trash)
      } catch (err: any) {
        if (err.code !== 'ENOENT') throw err
      }
      this.recordTombstone(dataset, path, newest.version)
      return true
    }).then((changed) => {
      if (changed) {
        this.init.log.info('file deleted (moved to trash) as another node deleted it', { dataset, path })
        this.init.onLocalChange()
      }
    }, (err: any) => { this.init.log.warn('could not apply a deletion', { dataset, path, error: err.message }) })
  }

  /** This node records the cluster's tombstone of a path (in its index, announced as its own change). */
  private recordTombstone (dataset: string, path: string, version: number): void {
    this.init.index.put({
      dataset, path, size: 0, mtimeMs: Date.now(), ino: 0, mode: 0, contentId: new Uint8Array(0), chunkSize: 0,
      hashes: new Uint8Array(0), version, deleted: true
    })
  }

  /**
   * A file deleted in the cluster that this node was still receiving (a download stopped by a
   * stop or crash, not resumed since): its partial file goes. Without a complete copy here, this
   * node records the tombstone, which supersedes its partial entry (peers see it hold nothing); a
   * complete older copy is left to considerDeletion, which does the same once it is in the trash.
   */
  private abandonPartialOfDeleted (config: DatasetConfig, dataset: string, path: string, deletedVersion: number): void {
    const partial = this.init.index.getPartial(dataset, path)
    if (partial == null || partial.version >= deletedVersion) return
    const target = join(config.path, ...path.split('/'))
    void this.init.indexLock.run(async () => {
      const current = this.init.index.getPartial(dataset, path)
      if (current == null || current.version >= deletedVersion || this.wanted.has(fileKey(dataset, path))) return false
      await this.removePartialFile(target, current.contentId)
      const local = this.init.index.get(dataset, path)
      if (local != null && (!local.deleted || local.version >= deletedVersion)) return false
      this.recordTombstone(dataset, path, deletedVersion)
      return true
    }).then((changed) => {
      if (changed) this.init.onLocalChange()
    }, (err: any) => { this.init.log.warn('could not remove the partial file of a deleted file', { dataset, path, error: err.message }) })
  }

  /**
   * Partial files a scan came across (relative to the dataset's root): each one that no queued or
   * running download will use and that is not the resumable one the index records for its path
   * (a crash before a download's first checkpoint, a path no longer wanted) is removed.
   */
  sweepPartials (dataset: string, partials: string[]): void {
    const config = this.datasets.get(dataset)
    if (config == null || this.controller.signal.aborted) return
    for (const rel of partials) {
      const path = partialTargetOf(rel)
      if (path == null || this.wanted.has(fileKey(dataset, path))) continue
      const recorded = this.init.index.getPartial(dataset, path)
      if (recorded != null && partialPathFor(path, recorded.contentId) === rel) continue
      this.removeIfPresent(join(config.path, ...rel.split('/'))).catch((err: any) => {
        this.init.log.warn('could not remove a stray partial file', { dataset, file: rel, error: err.message })
      })
    }
  }

  /** Removes the partial file of `contentId` beside `target`, if there is one. */
  private async removePartialFile (target: string, contentId: Uint8Array): Promise<void> {
    await this.removeIfPresent(partialPathFor(target, contentId))
  }

  /** Removes a partial file that no download will resume; one already gone is fine. */
  private async removeIfPresent (file: string): Promise<void> {
    try {
      await unlink(file)
      this.init.log.info('removed a partial file that will not be resumed', { file })
    } catch (err: any) {
      if (err.code !== 'ENOENT') throw err
    }
  }

  /** Keeps at most MAX_FINISHED_TRANSFERS finished records (Map order: oldest first). */
  private forgetOldTransfers (): void {
    let finished = 0
    for (const t of this.transfers.values()) if (t.state === 'completed' || t.state === 'failed') finished++
    for (const [key, t] of this.transfers) {
      if (finished < MAX_FINISHED_TRANSFERS) break
      if (t.state === 'completed' || t.state === 'failed') {
        this.transfers.delete(key)
        finished--
      }
    }
  }

  /** A leader's order: fetch this file at this priority (it jumps the download queue). */
  order (order: Order): void {
    const key = fileKey(order.dataset, order.path)
    if (!this.datasets.has(order.dataset)) {
      this.init.log.warn('ordered to hold a file of a dataset this node does not hold', { dataset: order.dataset, path: order.path })
      return
    }
    this.orders.set(key, order)
    const record = this.transfers.get(key)
    if (record != null && record.state === 'queued') record.priority = order.priority
    this.retry.delete(key)
    this.consider(order.dataset, order.path, true)
  }

  consider (dataset: string, path: string, retrying = false): void {
    const key = fileKey(dataset, path)
    if (this.wanted.has(key) || this.controller.signal.aborted) return
    const backoff = this.retry.get(key)
    if (backoff != null && !retrying && backoff.at > Date.now()) return
    const entry = this.target(dataset, path)
    if (entry == null) {
      this.retry.delete(key)
      return
    }
    this.wanted.add(key)
    const priority = this.orders.get(key)?.priority ?? (this.datasets.get(dataset) as DatasetConfig).priority
    this.forgetOldTransfers()
    this.transfers.set(key, { dataset, path, size: entry.size, version: entry.version, state: 'queued', bytes: 0, priority })
    const p = this.limit.run(() => this.fetch(dataset, path), PRIORITIES.indexOf(priority))
      .finally(() => {
        this.wanted.delete(key)
        this.running.delete(p)
        // A newer version (or a deletion) may have been announced meanwhile; a failed one waits for its back-off.
        if (!this.controller.signal.aborted) {
          this.consider(dataset, path)
          this.considerDeletion(dataset, path)
        }
      })
    this.running.add(p)
  }

  private async fetch (dataset: string, path: string): Promise<void> {
    const key = fileKey(dataset, path)
    const record = this.transfers.get(key) as TransferRecord
    const entry = this.target(dataset, path)
    if (entry == null || this.controller.signal.aborted) {
      this.transfers.delete(key)
      return
    }
    Object.assign(record, { state: 'running', startedAt: Date.now(), size: entry.size, version: entry.version })
    this.init.onTransfer?.({ type: 'transfer.started', time: Date.now(), dataset, path, version: entry.version, bytes: 0 })
    const root = (this.datasets.get(dataset) as DatasetConfig).path
    const target = join(root, ...path.split('/'))
    const { index } = this.init
    const earlier = index.getPartial(dataset, path)
    const order = this.orders.get(key)
    const receivers = order?.targets != null && Buffer.compare(order.contentId, entry.contentId) === 0 ? order.targets : undefined
    const resume = earlier != null && earlier.version === entry.version && Buffer.compare(earlier.contentId, entry.contentId) === 0 ? earlier.have : undefined
    try {
      await this.refuseUnindexedLocalFile(dataset, path, target)
      // A partial file of other content (an earlier version, left by a stop or crash) is never resumed: remove it.
      if (earlier != null && resume == null) await this.removePartialFile(target, earlier.contentId)
      await this.checkDisk(root, entry.size)
      const result = await this.init.engine.download({
        target,
        contentId: entry.contentId,
        size: entry.size,
        chunkSize: entry.chunkSize,
        mode: entry.mode,
        mtimeMs: entry.mtimeMs,
        priority: record.priority,
        sources: () => {
          const now = Date.now()
          const silentMs = this.init.receiverSilentMs()
          return this.init.cluster.sourcesOf(dataset, path, entry.contentId).filter(s => s.peerId !== this.init.selfId &&
            (s.have == null || now - (this.init.cluster.node(s.peerId)?.lastHeard ?? 0) < silentMs))
        },
        receivers,
        resume,
        // Directories are made only once a source proved it has the file (its hash list checked).
        prepare: async () => await this.prepareParent(root, path),
        onCheckpoint: (have) => {
          if (this.controller.signal.aborted) return
          record.bytes = Math.min(entry.size, have.count * entry.chunkSize)
          index.putPartial({
            dataset, path, contentId: entry.contentId, size: entry.size, chunkSize: entry.chunkSize, version: entry.version,
            mode: entry.mode, mtimeMs: entry.mtimeMs, have: Uint8Array.from(have.bytes)
          })
          this.init.onLocalChange()
        },
        commit: (partial, hashes) => this.commit(dataset, path, target, partial, entry, hashes),
        signal: this.controller.signal
      })
      Object.assign(record, { state: 'completed', bytes: entry.size, resumedChunks: result.resumedChunks, endedAt: Date.now() })
      this.retry.delete(key)
      this.orders.delete(key)
      this.init.onTransfer?.({ type: 'transfer.completed', time: Date.now(), dataset, path, version: entry.version, bytes: result.bytes })
      this.init.log.info('file received', { dataset, path, bytes: result.bytes, peers: Object.keys(result.fromPeers).length, chunksBy: result.chunksBy, stripes: result.stripes, failedRequests: result.failedRequests })
    } catch (err: any) {
      Object.assign(record, { state: 'failed', error: err.message, endedAt: Date.now() })
      const delay = Math.min(60_000, (this.retry.get(key)?.delay ?? 1000) * 2)
      if (this.retry.size >= MAX_RETRIES && !this.retry.has(key)) this.retry.delete(this.retry.keys().next().value as string)
      this.retry.set(key, { at: Date.now() + delay, delay })
      // A stopping agent keeps its partial state to resume; a failure withdraws it.
      if (!this.controller.signal.aborted) {
        index.dropPartial(dataset, path)
        this.init.onLocalChange()
      }
      this.init.onTransfer?.({ type: 'transfer.failed', time: Date.now(), dataset, path, version: entry.version, bytes: 0, error: err.message })
      if (!this.controller.signal.aborted) this.init.log.warn('transfer failed', { dataset, path, error: err.message })
    }
  }

  /**
   * A file on disk that the index does not know yet (just written, not stable) is never
   * overwritten: wait for the scanner, which then decides by version.
   */
  private async refuseUnindexedLocalFile (dataset: string, path: string, target: string): Promise<void> {
    const local = this.init.index.get(dataset, path)
    try {
      const st = await stat(target)
      if (local == null || local.deleted || local.size !== st.size || local.mtimeMs !== Math.floor(st.mtimeMs) || local.ino !== st.ino) {
        throw new CommitRefusedError(`${dataset}/${path} exists locally and is not indexed yet; waiting for the scan`)
      }
    } catch (err: any) {
      if (err.code !== 'ENOENT') throw err
    }
  }

  /** Refuses a download that would leave less than the configured free space. */
  private async checkDisk (dir: string, bytes: number): Promise<void> {
    const fs = await statfs(dir)
    const free = Number(fs.bavail) * Number(fs.bsize)
    if (free - bytes < this.init.minFreeDiskBytes) {
      throw new DiskLowError(`disk low: ${free} bytes free in ${dir}, the file needs ${bytes} and ${this.init.minFreeDiskBytes} must stay free`)
    }
  }

  /**
   * Creates the target's parent directories one level at a time from the dataset root, refusing
   * any level that is a symlink or not a directory: a path can never lead outside its dataset.
   */
  private async prepareParent (root: string, path: string): Promise<void> {
    let dir = root
    for (const part of path.split('/').slice(0, -1)) {
      dir = join(dir, part)
      for (let attempt = 0; ; attempt++) {
        try {
          const st = await lstat(dir)
          if (st.isSymbolicLink() || !st.isDirectory()) throw new CommitRefusedError(`${dir} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}; nothing is written through it`)
          break
        } catch (err: any) {
          if (err.code !== 'ENOENT' || attempt > 0) throw err
          await mkdir(dir).catch((e: any) => { if (e.code !== 'EEXIST') throw e })
        }
      }
    }
  }

  /** Renames the verified file into place, unless the local copy changed since it was indexed. */
  private async commit (dataset: string, path: string, target: string, partial: string, entry: FileEntry, hashes: Uint8Array): Promise<void> {
    await this.init.indexLock.run(async () => {
      const local = this.init.index.get(dataset, path)
      let onDisk: { size: number, mtimeMs: number, ino: number } | undefined
      try {
        const st = await stat(target)
        onDisk = { size: st.size, mtimeMs: Math.floor(st.mtimeMs), ino: st.ino }
      } catch (err: any) {
        if (err.code !== 'ENOENT') throw err
      }
      if (onDisk != null && (local == null || local.deleted || local.size !== onDisk.size || local.mtimeMs !== onDisk.mtimeMs || local.ino !== onDisk.ino)) {
        throw new CommitRefusedError(`${dataset}/${path} was modified locally and is not indexed yet; not overwritten`)
      }
      if (local != null && local.version >= entry.version && !local.deleted) {
        throw new CommitRefusedError(`${dataset}/${path}: the local version is as new; not overwritten`)
      }
      await rename(partial, target)
      const dir = await open(dirname(target), 'r')
      try {
        await dir.sync()
      } finally {
        await dir.close()
      }
      const st = await stat(target)
      this.init.index.put({
        dataset, path, size: st.size, mtimeMs: Math.floor(st.mtimeMs), ino: st.ino, mode: st.mode & 0o7777,
        contentId: entry.contentId, chunkSize: entry.chunkSize, hashes, version: entry.version, deleted: false
      })
    })
    this.init.onLocalChange()
  }
}

function toComparable (local: LocalFile): FileEntry {
  return {
    dataset: local.dataset, path: local.path, size: local.size, mtimeMs: local.mtimeMs, mode: local.mode,
    contentId: Uint8Array.from(local.contentId), chunkSize: local.chunkSize, version: local.version, deleted: local.deleted, seq: local.seq,
    partial: false, have: new Uint8Array(0)
  }
}
