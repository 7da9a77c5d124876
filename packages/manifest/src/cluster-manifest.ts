import { createHash } from 'node:crypto'
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

export type DeltaResult = 'applied' | 'stale' | 'gap'

export type ChangeListener = (peerId: string, changed: FileEntry[]) => void

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
  private readonly byFile = new Map<string, Map<string, FileEntry>>()
  private readonly listeners: ChangeListener[] = []
  private cachedDigest?: Uint8Array

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
      known.info = { ...known.info, name: info.name, addrs: info.addrs, role: info.role }
    }
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
      this.replaceRecord(peerId, info, entries, now)
      return 'applied'
    }
    if (info.sequence <= known.info.sequence) {
      known.lastHeard = Math.max(known.lastHeard, now)
      return 'stale'
    }
    if (fromSequence > known.info.sequence) return 'gap'
    const changed: FileEntry[] = []
    for (const entry of entries) {
      const key = fileKey(entry.dataset, entry.path)
      const old = known.entries.get(key)
      if (old != null && old.seq >= entry.seq) continue
      this.setEntry(peerId, known, key, entry)
      changed.push(entry)
    }
    known.info = info
    known.lastHeard = Math.max(known.lastHeard, now)
    this.emit(peerId, changed)
    return 'applied'
  }

  /** Replaces a node's whole record (a full pull, or a new generation). */
  replaceRecord (peerId: string, info: NodeInfo, entries: FileEntry[], now = Date.now()): void {
    const known = this.nodes.get(peerId)
    if (known != null && newer(info, known.info) < 0) return
    const record: NodeRecord = known ?? { peerId, info, lastHeard: now, entries: new Map() }
    const next = new Map(entries.map(e => [fileKey(e.dataset, e.path), e]))
    const changed: FileEntry[] = []
    for (const [key, old] of record.entries) {
      if (!next.has(key)) {
        this.byFile.get(key)?.delete(peerId)
        if (this.byFile.get(key)?.size === 0) this.byFile.delete(key)
        record.entries.delete(key)
        changed.push({ ...old, deleted: true })
      }
    }
    for (const [key, entry] of next) {
      const old = record.entries.get(key)
      if (old != null && old.seq === entry.seq && old.version === entry.version) continue
      this.setEntry(peerId, record, key, entry)
      changed.push(entry)
    }
    record.info = info
    record.lastHeard = Math.max(record.lastHeard, now)
    this.nodes.set(peerId, record)
    this.emit(peerId, changed)
  }

  private setEntry (peerId: string, record: NodeRecord, key: string, entry: FileEntry): void {
    record.entries.set(key, entry)
    let holders = this.byFile.get(key)
    if (holders == null) {
      holders = new Map()
      this.byFile.set(key, holders)
    }
    holders.set(peerId, entry)
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
    let best: FileEntry | undefined
    for (const entry of this.entriesFor(dataset, path).values()) {
      if (best == null || compareVersions(entry, best) > 0) best = entry
    }
    return best
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
        complete: newest != null && !newest.deleted && Buffer.compare(entry.contentId, newest.contentId) === 0
      })
    }
    return holders.sort((a, b) => compareVersions(b.entry, a.entry) || a.peerId.localeCompare(b.peerId))
  }

  /** Nodes that hold a live copy of exactly this content. */
  holdersOfContent (dataset: string, path: string, contentId: Uint8Array): string[] {
    const out: string[] = []
    for (const [peerId, entry] of this.entriesFor(dataset, path)) {
      if (!entry.deleted && Buffer.compare(entry.contentId, contentId) === 0) out.push(peerId)
    }
    return out
  }

  get fileCount (): number {
    return this.byFile.size
  }
}
