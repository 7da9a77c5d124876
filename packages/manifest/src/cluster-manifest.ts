import { createHash } from 'node:crypto'
import { SortedKeys } from './sorted-keys.js'
import type { FileEntry, NodeInfo } from '@shoal/wire'

/** `dataset/path`: unambiguous because dataset names contain no '/'. */
export function fileKey (dataset: string, path: string): string {
  return `${dataset}/${path}`
}

/** What this node knows of one peer (or of itself): the record it alone writes. */
export interface NodeRecord {
  peerId: string
  info: NodeInfo
  /** When anything was last heard from this node (ms since the epoch). */
  lastHeard: number
  entries: Map<string, FileEntry>
}

export interface Holder {
  peerId: string
  name: string
  entry: FileEntry
  /** The holder has the whole file at the newest version known in the cluster. */
  complete: boolean
}

export interface DatasetCounts {
  held: number
  receiving: number
  missing: number
}

/** 'rejected': the change would take a record past the limits (entries per node, nodes). */
export type DeltaResult = 'applied' | 'stale' | 'gap' | 'rejected'

export interface ClusterManifestLimits {
  maxEntriesPerNode: number
  maxNodes: number
}

/** Bounds on what peers can make this node hold in memory. */
export const DEFAULT_MANIFEST_LIMITS: ClusterManifestLimits = { maxEntriesPerNode: 1_000_000, maxNodes: 10_000 }

export type ChangeListener = (peerId: string, changed: FileEntry[]) => void

const EMPTY = new Uint8Array(0)

/** The copies of one path, per node; it also holds the path's shared strings. */
class Holders extends Map<string, FileEntry> {
  constructor (readonly key: string, readonly dataset: string, readonly path: string) {
    super()
  }
}

function newestOf (holders: Map<string, FileEntry>): FileEntry | undefined {
  let best: FileEntry | undefined
  for (const entry of holders.values()) {
    if (best == null || compareVersions(entry, best) > 0) best = entry
  }
  return best
}

function newer (a: { generation: number, sequence: number }, b: { generation: number, sequence: number }): number {
  return a.generation !== b.generation ? a.generation - b.generation : a.sequence - b.sequence
}

/** Orders versions of one path: higher version first, then content id as a tie-break every node agrees on. */
export function compareVersions (a: FileEntry, b: FileEntry): number {
  if (a.version !== b.version) return a.version - b.version
  if (a.deleted !== b.deleted) return a.deleted ? 1 : -1
  return Buffer.compare(a.contentId, b.contentId)
}

/**
 * The merge of every node's record. Per node, the highest (generation, sequence) wins; per
 * path, an index from file to holders answers queries without scanning.
 */
export class ClusterManifest {
  private readonly nodes = new Map<string, NodeRecord>()

  constructor (private readonly limits: ClusterManifestLimits = DEFAULT_MANIFEST_LIMITS) {}

  private readonly byFile = new Map<string, Holders>()
  /** Content ids are shared by every copy of a file: each distinct one is stored once. */
  private readonly contentIds = new Map<string, { id: Uint8Array, refs: number }>()
  private readonly listeners: ChangeListener[] = []
  private cachedDigest?: Uint8Array
  // Derived indexes, kept up to date on every change so that queries never scan.
  private readonly pathsByDataset = new Map<string, SortedKeys>()
  private readonly replicaCount = new Map<string, number>()
  private readonly byReplicaCount = new Map<number, Set<string>>()
  private readonly conflictKeys = new Set<string>()
  private readonly members = new Map<string, Set<string>>()
  /** Per node, per dataset: files lacked, held complete, being received. */
  private readonly counts = new Map<string, Map<string, DatasetCounts>>()
  /** Lackers of each key touched by the change in progress, as they were before it. */
  private readonly lackersBefore = new Map<string, string[]>()

  onChange (listener: ChangeListener): void {
    this.listeners.push(listener)
  }

  node (peerId: string): NodeRecord | undefined {
    return this.nodes.get(peerId)
  }

  allNodes (): NodeRecord[] {
    return [...this.nodes.values()]
  }

  /** True when `info` says the node has changes this manifest does not hold. */
  isBehind (peerId: string, info: Pick<NodeInfo, 'generation' | 'sequence'>): boolean {
    const known = this.nodes.get(peerId)
    return known == null || newer(info, known.info) > 0
  }

  /** Notes a sign of life (heartbeat) and the node's newest self-description. */
  heard (peerId: string, info: NodeInfo, now = Date.now()): void {
    const known = this.nodes.get(peerId)
    if (known == null) return
    known.lastHeard = Math.max(known.lastHeard, now)
    if (info.generation === known.info.generation) {
      this.setInfo(known, { ...known.info, name: info.name, addrs: info.addrs, role: info.role, datasets: info.datasets })
    }
  }

  /** Sets a node's self-description; a change of its datasets changes what it lacks. */
  private setInfo (record: NodeRecord, info: NodeInfo): void {
    const before = record.info.datasets ?? []
    const after = info.datasets ?? []
    record.info = info
    if (before.length === after.length && before.every((d, i) => d === after[i])) return
    for (const dataset of new Set([...before, ...after])) {
      const keys = this.pathsByDataset.get(dataset)?.range(`${dataset}/`, undefined, Number.MAX_SAFE_INTEGER) ?? []
      for (const key of keys) this.beforeChange(key)
      let members = this.members.get(dataset)
      if (members == null) this.members.set(dataset, members = new Set())
      if (after.includes(dataset)) members.add(record.peerId)
      else members.delete(record.peerId)
      if (members.size === 0) this.members.delete(dataset)
    }
    this.afterChanges()
  }

  /**
   * Applies the entries a node changed in (fromSequence, info.sequence]. Returns 'gap' when this
   * manifest lacks changes before fromSequence (the caller then pulls the record), 'stale' when
   * it already holds everything the delta says.
   */
  applyDelta (peerId: string, info: NodeInfo, fromSequence: number, entries: FileEntry[], now = Date.now()): DeltaResult {
    const known = this.nodes.get(peerId)
    if (known == null || known.info.generation !== info.generation) {
      if (known != null && info.generation < known.info.generation) return 'stale'
      if (fromSequence !== 0) return 'gap'
      return this.replaceRecord(peerId, info, entries, now) ? 'applied' : 'rejected'
    }
    if (info.sequence <= known.info.sequence) {
      known.lastHeard = Math.max(known.lastHeard, now)
      return 'stale'
    }
    if (fromSequence > known.info.sequence) return 'gap'
    let added = 0
    for (const entry of entries) if (!known.entries.has(fileKey(entry.dataset, entry.path))) added++
    if (known.entries.size + added > this.limits.maxEntriesPerNode) return 'rejected'
    const changed: FileEntry[] = []
    for (const entry of entries) {
      const key = fileKey(entry.dataset, entry.path)
      const old = known.entries.get(key)
      if (old != null && old.seq >= entry.seq) continue
      this.setEntry(peerId, known, key, entry)
      changed.push(entry)
    }
    this.afterChanges()
    this.setInfo(known, info)
    known.lastHeard = Math.max(known.lastHeard, now)
    this.emit(peerId, changed)
    return 'applied'
  }

  /** Replaces a node's whole record (a full pull, or a new generation); false when over the limits. */
  replaceRecord (peerId: string, info: NodeInfo, entries: FileEntry[], now = Date.now()): boolean {
    const known = this.nodes.get(peerId)
    if (known != null && newer(info, known.info) < 0) return true
    if (entries.length > this.limits.maxEntriesPerNode || (known == null && this.nodes.size >= this.limits.maxNodes)) return false
    const record: NodeRecord = known ?? { peerId, info: { ...info, datasets: [] }, lastHeard: now, entries: new Map() }
    this.nodes.set(peerId, record)
    const next = new Map(entries.map(e => [fileKey(e.dataset, e.path), e]))
    const changed: FileEntry[] = []
    for (const [key, old] of record.entries) {
      if (!next.has(key)) {
        this.beforeChange(key)
        const holders = this.byFile.get(key)
        holders?.delete(peerId)
        this.releaseContentId(old)
        if (holders?.size === 0) {
          this.byFile.delete(key)
          this.pathsByDataset.get(old.dataset)?.delete(key)
        }
        record.entries.delete(key)
        this.countEntry(peerId, old, -1)
        changed.push({ ...old, deleted: true })
      }
    }
    for (const [key, entry] of next) {
      const old = record.entries.get(key)
      if (old != null && old.seq === entry.seq && old.version === entry.version) continue
      this.setEntry(peerId, record, key, entry)
      changed.push(entry)
    }
    this.afterChanges()
    this.setInfo(record, info)
    record.lastHeard = Math.max(record.lastHeard, now)
    this.emit(peerId, changed)
    return true
  }

  private setEntry (peerId: string, record: NodeRecord, key: string, entry: FileEntry): void {
    this.beforeChange(key)
    let holders = this.byFile.get(key)
    if (holders == null) {
      holders = new Holders(key, entry.dataset, entry.path)
      this.byFile.set(key, holders)
      let paths = this.pathsByDataset.get(entry.dataset)
      if (paths == null) this.pathsByDataset.set(entry.dataset, paths = new SortedKeys())
      paths.add(key)
    }
    const old = record.entries.get(key)
    this.countEntry(peerId, old, -1)
    this.releaseContentId(old)
    // Stored compactly: strings and content ids shared with every other copy of the path.
    const stored: FileEntry = {
      dataset: holders.dataset,
      path: holders.path,
      size: entry.size,
      mtimeMs: entry.mtimeMs,
      mode: entry.mode,
      contentId: this.internContentId(entry.contentId),
      chunkSize: entry.chunkSize,
      version: entry.version,
      deleted: entry.deleted,
      seq: entry.seq,
      partial: entry.partial === true,
      have: entry.partial === true ? entry.have : EMPTY
    }
    this.countEntry(peerId, stored, 1)
    record.entries.set(holders.key, stored)
    holders.set(peerId, stored)
  }

  private internContentId (id: Uint8Array): Uint8Array<ArrayBuffer> {
    if (id.length === 0) return EMPTY
    const text = Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('latin1')
    let shared = this.contentIds.get(text)
    if (shared == null) this.contentIds.set(text, shared = { id: Uint8Array.from(id), refs: 0 })
    shared.refs++
    return shared.id as Uint8Array<ArrayBuffer>
  }

  private releaseContentId (entry: FileEntry | undefined): void {
    if (entry == null || entry.contentId.length === 0) return
    const text = Buffer.from(entry.contentId.buffer, entry.contentId.byteOffset, entry.contentId.byteLength).toString('latin1')
    const shared = this.contentIds.get(text)
    if (shared != null && --shared.refs <= 0) this.contentIds.delete(text)
  }

  /** Members of a key's dataset that do not hold its newest live content. */
  private lackersOf (key: string): string[] {
    const holders = this.byFile.get(key)
    if (holders == null) return []
    const newest = newestOf(holders)
    if (newest == null || newest.deleted) return []
    const members = this.members.get(newest.dataset)
    if (members == null) return []
    const out: string[] = []
    for (const peerId of members) {
      const entry = holders.get(peerId)
      if (entry == null || entry.deleted || entry.partial || Buffer.compare(entry.contentId, newest.contentId) !== 0) out.push(peerId)
    }
    return out
  }

  private beforeChange (key: string): void {
    if (!this.lackersBefore.has(key)) this.lackersBefore.set(key, this.lackersOf(key))
  }

  /** Brings every derived index up to date for the keys touched since beforeChange. */
  private afterChanges (): void {
    for (const [key, before] of this.lackersBefore) {
      const dataset = key.slice(0, key.indexOf('/'))
      for (const peerId of before) this.countsOf(peerId, dataset).missing--
      for (const peerId of this.lackersOf(key)) this.countsOf(peerId, dataset).missing++
      this.refreshReplicas(key)
    }
    this.lackersBefore.clear()
  }

  private refreshReplicas (key: string): void {
    const holders = this.byFile.get(key)
    const newest = holders == null ? undefined : newestOf(holders)
    const old = this.replicaCount.get(key)
    let count: number | undefined
    let conflict = false
    if (holders != null && newest != null && !newest.deleted) {
      count = 0
      for (const entry of holders.values()) {
        if (entry.deleted || entry.partial) continue
        if (Buffer.compare(entry.contentId, newest.contentId) === 0) count++
        else if (entry.version === newest.version) conflict = true
      }
    }
    if (conflict) this.conflictKeys.add(key)
    else this.conflictKeys.delete(key)
    if (old === count) return
    if (old != null) {
      const bucket = this.byReplicaCount.get(old)
      bucket?.delete(key)
      if (bucket?.size === 0) this.byReplicaCount.delete(old)
    }
    if (count == null) {
      this.replicaCount.delete(key)
      return
    }
    this.replicaCount.set(key, count)
    let bucket = this.byReplicaCount.get(count)
    if (bucket == null) this.byReplicaCount.set(count, bucket = new Set())
    bucket.add(key)
  }

  private emit (peerId: string, changed: FileEntry[]): void {
    this.cachedDigest = undefined
    if (changed.length === 0) return
    for (const listener of this.listeners) listener(peerId, changed)
  }

  /** (generation, sequence) of every record held, for anti-entropy summaries. */
  summary (): Array<{ peerId: string, generation: number, sequence: number }> {
    return [...this.nodes.values()]
      .map(r => ({ peerId: r.peerId, generation: r.info.generation, sequence: r.info.sequence }))
      .sort((a, b) => a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)
  }

  /** SHA-256 over the summary: equal digests mean equal views. */
  digest (): Uint8Array {
    if (this.cachedDigest == null) {
      const hash = createHash('sha256')
      for (const n of this.summary()) hash.update(`${n.peerId}:${n.generation}:${n.sequence}\n`)
      this.cachedDigest = new Uint8Array(hash.digest())
    }
    return this.cachedDigest
  }

  /**
   * What to send a node that holds (generation, since) of this record: the entries changed
   * after `since`, or the whole record (full) when the generations differ.
   */
  recordSince (peerId: string, generation: number, since: number): { info: NodeInfo, full: boolean, entries: FileEntry[] } | undefined {
    const record = this.nodes.get(peerId)
    if (record == null) return undefined
    const full = generation !== record.info.generation || since === 0 || since > record.info.sequence
    const entries = [...record.entries.values()].filter(e => full || e.seq > since).sort((a, b) => a.seq - b.seq)
    return { info: record.info, full, entries }
  }

  /** Every node's entry for one path, tombstones included. */
  entriesFor (dataset: string, path: string): Map<string, FileEntry> {
    return this.byFile.get(fileKey(dataset, path)) ?? new Map()
  }

  /** The newest version of a path anywhere in the cluster (possibly a tombstone). */
  newest (dataset: string, path: string): FileEntry | undefined {
    return newestOf(this.entriesFor(dataset, path))
  }

  /** Paths of a dataset under a prefix, in order, from after `after` (a path), up to `limit`. */
  list (dataset: string, prefix: string, limit: number, after?: string): string[] {
    const base = `${dataset}/`
    const keys = this.pathsByDataset.get(dataset)?.range(base + prefix, after == null ? undefined : base + after, limit) ?? []
    return keys.map(k => k.slice(base.length))
  }

  /** Live copies of the newest content of a path; undefined when the path is deleted or unknown. */
  replicas (dataset: string, path: string): number | undefined {
    return this.replicaCount.get(fileKey(dataset, path))
  }

  /** Live files (`dataset/path` keys) with fewer than `count` complete copies, up to `limit`. */
  belowReplicas (count: number, limit: number): string[] {
    const out: string[] = []
    for (let n = 0; n < count && out.length < limit; n++) {
      for (const key of this.byReplicaCount.get(n) ?? []) {
        out.push(key)
        if (out.length >= limit) break
      }
    }
    return out
  }

  /** Paths whose live copies hold different content at the same version (concurrent edits). */
  conflicts (limit: number): string[] {
    const out: string[] = []
    for (const key of this.conflictKeys) {
      if (out.length >= limit) break
      out.push(key)
    }
    return out
  }

  /** How many live files of its datasets a node does not hold at their newest content. */
  lacking (peerId: string): number {
    let total = 0
    for (const c of this.counts.get(peerId)?.values() ?? []) total += c.missing
    return total
  }

  /** Per dataset: what a node holds complete, is receiving, and lacks (maintained on every change). */
  datasetCounts (peerId: string): Map<string, DatasetCounts> {
    return this.counts.get(peerId) ?? new Map()
  }

  private countsOf (peerId: string, dataset: string): DatasetCounts {
    let byDataset = this.counts.get(peerId)
    if (byDataset == null) this.counts.set(peerId, byDataset = new Map())
    let c = byDataset.get(dataset)
    if (c == null) byDataset.set(dataset, c = { held: 0, receiving: 0, missing: 0 })
    return c
  }

  /** Counts an entry in (+1) or out (-1) of its node's held/receiving totals. */
  private countEntry (peerId: string, entry: FileEntry | undefined, delta: number): void {
    if (entry == null || entry.deleted) return
    const c = this.countsOf(peerId, entry.dataset)
    if (entry.partial === true) c.receiving += delta
    else c.held += delta
  }

  /** The files of `dataset` that a node lacks, in path order, from after `after`, up to `limit`. */
  lackingFiles (peerId: string, dataset: string, limit: number, after?: string): string[] {
    if (!(this.members.get(dataset)?.has(peerId) ?? false) || this.lacking(peerId) === 0) return []
    const out: string[] = []
    let cursor = after
    // Walk the dataset's paths in pages; each step is an index lookup, not a disk scan.
    for (;;) {
      const page = this.list(dataset, '', 1024, cursor)
      for (const path of page) {
        const key = fileKey(dataset, path)
        if (this.lackersOf(key).includes(peerId)) {
          out.push(path)
          if (out.length >= limit) return out
        }
      }
      if (page.length < 1024) return out
      cursor = page[page.length - 1]
    }
  }

  /** Nodes not heard from within `staleAfterMs`. */
  staleNodes (staleAfterMs: number, now = Date.now()): string[] {
    return this.allNodes().filter(r => now - r.lastHeard > staleAfterMs).map(r => r.peerId)
  }

  /** The nodes that hold a live copy of a path, newest versions first. */
  holdersOf (dataset: string, path: string): Holder[] {
    const newest = this.newest(dataset, path)
    const holders: Holder[] = []
    for (const [peerId, entry] of this.entriesFor(dataset, path)) {
      if (entry.deleted) continue
      holders.push({
        peerId,
        name: this.nodes.get(peerId)?.info.name ?? '',
        entry,
        complete: entry.partial !== true && newest != null && !newest.deleted && Buffer.compare(entry.contentId, newest.contentId) === 0
      })
    }
    return holders.sort((a, b) => compareVersions(b.entry, a.entry) || a.peerId.localeCompare(b.peerId))
  }

  /** Nodes that hold a complete live copy of exactly this content. */
  holdersOfContent (dataset: string, path: string, contentId: Uint8Array): string[] {
    return this.sourcesOf(dataset, path, contentId).filter(s => s.have == null).map(s => s.peerId)
  }

  /** Every node that can serve chunks of this content: complete holders, and receivers with the chunks in `have`. */
  sourcesOf (dataset: string, path: string, contentId: Uint8Array): Array<{ peerId: string, have?: Uint8Array }> {
    const out: Array<{ peerId: string, have?: Uint8Array }> = []
    for (const [peerId, entry] of this.entriesFor(dataset, path)) {
      if (entry.deleted || Buffer.compare(entry.contentId, contentId) !== 0) continue
      out.push(entry.partial === true ? { peerId, have: entry.have } : { peerId })
    }
    return out
  }

  get fileCount (): number {
    return this.byFile.size
  }
}
