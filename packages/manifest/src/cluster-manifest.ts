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
  /** Bytes of the files held complete. */
  bytes: number
  receiving: number
  missing: number
}

/** One live copy of a path, as `where` reports it. */
export interface LocatedCopy {
  peerId: string
  name: string
  /** The node is the one asking (`locate`'s selfId). */
  self: boolean
  /** The holder has the whole file at the newest version known in the cluster. */
  complete: boolean
  version: number
  size: number
  /** Content id, hex. */
  contentId: string
}

/** Where a path is: its newest version (possibly a tombstone) and its live copies, newest first. */
export interface Located {
  /** Null when the path is unknown. */
  version: number | null
  deleted: boolean
  holders: LocatedCopy[]
}

/** One path as a listing shows it (`files`): its newest version and how many nodes hold it. */
export interface PathSummary {
  version: number
  deleted: boolean
  size: number
  /** Live complete copies of the newest content. */
  replicas: number
  /** Nodes holding a live copy of any version (as many as `locate` lists). */
  holders: number
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

const EMPTY = new Uint8Array(0) as Uint8Array<ArrayBuffer>

/*
 * Memory layout. A cluster of N nodes that all hold the same F files has N x F copies, so the
 * cost of one copy decides the footprint (16 x 100,000 must fit in a few hundred MB):
 *
 * - one Slot per path (key string, dataset, derived figures);
 * - one Version per distinct (content, version, size, mtime, mode, chunk size, deleted) of a
 *   path, shared by every copy at that version: usually one per path;
 * - per copy, three array elements in the slot (node index, Version, seq; sorted by node index)
 *   and one element in the node's list of slots: about 32 bytes;
 * - the bitfield of a copy still being received, in a side map of the slot (rare, short-lived).
 *
 * FileEntry objects are built only when a caller asks (queries, record pages, listeners).
 */

/** One version of a path's content; every copy at this version shares the object. */
interface Version {
  readonly size: number
  readonly mtimeMs: number
  readonly mode: number
  /** The content id as a latin1 string (one character per byte): compared with === and <. */
  readonly content: string
  readonly chunkSize: number
  readonly version: number
  readonly deleted: boolean
  refs: number
}

/** Elements per copy in Slot.copies: node index, Version, seq. */
const STRIDE = 3

/** One path of one dataset and its copies on every node. */
class Slot {
  /**
   * Per copy: node index, Version, owner's seq; ordered by node index. Replaced, never grown in
   * place, so that it holds no spare capacity (an array grown by push or splice keeps up to half
   * again its length, times every path).
   */
  copies: Array<number | Version> = []
  /** The distinct versions of the copies (usually one); replaced like `copies`. */
  versions: Version[] = []
  /** Bitfields of the copies still being received, by node index. */
  partial?: Map<number, Uint8Array<ArrayBuffer>>
  /** Live complete copies of the newest content; -1 when the newest is a tombstone or there is none. */
  replicas = -1
  conflict = false

  constructor (readonly key: string, readonly dataset: string) {}

  get path (): string {
    return this.key.slice(this.dataset.length + 1)
  }

  get size (): number {
    return this.copies.length / STRIDE
  }

  /** Offset of the node's copy in `copies`, or -(insertion offset) - 1. */
  find (node: number): number {
    let lo = 0
    let hi = this.copies.length / STRIDE
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const at = this.copies[mid * STRIDE] as number
      if (at === node) return mid * STRIDE
      if (at < node) lo = mid + 1
      else hi = mid
    }
    return -(lo * STRIDE) - 1
  }

  versionAt (offset: number): Version {
    return this.copies[offset + 1] as Version
  }

  newest (): Version | undefined {
    let best: Version | undefined
    for (const v of this.versions) if (best == null || compareVersion(v, best) > 0) best = v
    return best
  }

  isPartial (node: number): boolean {
    return this.partial?.has(node) ?? false
  }
}

function newer (a: { generation: number, sequence: number }, b: { generation: number, sequence: number }): number {
  return a.generation !== b.generation ? a.generation - b.generation : a.sequence - b.sequence
}

function contentHex (content: string): string {
  return Buffer.from(content, 'latin1').toString('hex')
}

function contentString (id: Uint8Array): string {
  return id.length === 0 ? '' : Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('latin1')
}

function contentBytes (content: string): Uint8Array<ArrayBuffer> {
  if (content.length === 0) return EMPTY
  const bytes = Buffer.from(content, 'latin1')
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Uint8Array<ArrayBuffer>
}

function compareVersion (a: Version, b: Version): number {
  if (a.version !== b.version) return a.version - b.version
  if (a.deleted !== b.deleted) return a.deleted ? 1 : -1
  return a.content < b.content ? -1 : a.content > b.content ? 1 : 0
}

/** Orders versions of one path: higher version first, then content id as a tie-break every node agrees on. */
export function compareVersions (a: FileEntry, b: FileEntry): number {
  if (a.version !== b.version) return a.version - b.version
  if (a.deleted !== b.deleted) return a.deleted ? 1 : -1
  return Buffer.compare(a.contentId, b.contentId)
}

interface Member extends NodeRecord {
  readonly index: number
  /** The slots where this node has a copy (unordered). */
  slots: Slot[]
  tombstones: number
  /** A whole record of this node is arriving in parts: deltas wait, and it is not served. */
  loading?: RecordLoad
}

/**
 * A node's whole record arriving in parts (a full pull, page by page): each part is applied as
 * it comes, so memory holds one part, not the record. `finish` removes the copies the new record
 * no longer lists and sets the node's (generation, sequence); until then the node keeps its old
 * ones, so an abandoned load leaves it behind and the next pull starts over. While a load runs,
 * applyDelta answers 'gap' for the node (the caller pulls again afterwards) and recordSince has
 * nothing to serve.
 */
export interface RecordLoad {
  /** Applies part of the record; false when it takes the record past the limits (the load is then abandoned). */
  add: (entries: FileEntry[]) => boolean
  /** Ends the load: `info` is the record's self-description as its last part carried it. */
  finish: (info: NodeInfo, now?: number) => void
  /** Abandons the load; the parts applied stay, the node's (generation, sequence) does not move. */
  abort: () => void
}

/**
 * The merge of every node's record. Per node, the highest (generation, sequence) wins; per
 * path, an index from file to holders answers queries without scanning.
 */
export class ClusterManifest {
  private readonly nodes = new Map<string, Member>()
  private readonly byIndex: Member[] = []

  constructor (private readonly limits: ClusterManifestLimits = DEFAULT_MANIFEST_LIMITS) {}

  private readonly byFile = new Map<string, Slot>()
  private readonly listeners: ChangeListener[] = []
  private cachedDigest?: Uint8Array
  // Derived indexes, kept up to date on every change so that queries never scan.
  private readonly pathsByDataset = new Map<string, SortedKeys>()
  /** The dataset names, interned: every slot of a dataset shares one string. */
  private readonly datasetNames = new Map<string, string>()
  private readonly byReplicaCount = new Map<number, Set<Slot>>()
  private readonly conflictSlots = new Set<Slot>()
  private readonly members = new Map<string, Set<string>>()
  /** Per node, per dataset: files lacked, held complete, being received. */
  private readonly counts = new Map<string, Map<string, DatasetCounts>>()
  /** Lackers of each slot touched by the change in progress, as they were before it. */
  private readonly lackersBefore = new Map<Slot, string[]>()

  onChange (listener: ChangeListener): void {
    this.listeners.push(listener)
  }

  node (peerId: string): NodeRecord | undefined {
    return this.nodes.get(peerId)
  }

  allNodes (): NodeRecord[] {
    return [...this.nodes.values()]
  }

  /** How many entries (tombstones included) a node's record holds. */
  entryCount (peerId: string): number {
    return this.nodes.get(peerId)?.slots.length ?? 0
  }

  /** A node's entries (tombstones included), built on demand, in no particular order. */
  * entriesOf (peerId: string): Generator<FileEntry> {
    const member = this.nodes.get(peerId)
    if (member == null) return
    for (const slot of member.slots) {
      const at = slot.find(member.index)
      if (at >= 0) yield this.entryAt(slot, at)
    }
  }

  /** A node's tombstones, in no particular order; nothing is built for its live copies. */
  * tombstonesOf (peerId: string): Generator<{ dataset: string, path: string, seq: number, version: number }> {
    const member = this.nodes.get(peerId)
    if (member == null || member.tombstones === 0) return
    for (const slot of member.slots) {
      const at = slot.find(member.index)
      if (at < 0) continue
      const v = slot.versionAt(at)
      if (v.deleted) yield { dataset: slot.dataset, path: slot.path, seq: slot.copies[at + 2] as number, version: v.version }
    }
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
  private setInfo (record: Member, info: NodeInfo): void {
    const before = record.info.datasets ?? []
    const after = info.datasets ?? []
    record.info = info
    if (before.length === after.length && before.every((d, i) => d === after[i])) return
    for (const dataset of new Set([...before, ...after])) {
      const keys = this.pathsByDataset.get(dataset)?.range(`${dataset}/`, undefined, Number.MAX_SAFE_INTEGER) ?? []
      for (const key of keys) {
        const slot = this.byFile.get(key)
        if (slot != null) this.beforeChange(slot)
      }
      let members = this.members.get(dataset)
      if (members == null) this.members.set(dataset, members = new Set())
      if (after.includes(dataset)) members.add(record.peerId)
      else members.delete(record.peerId)
      if (members.size === 0) this.members.delete(dataset)
    }
    this.afterChanges()
  }

  private addMember (peerId: string, info: NodeInfo, now: number): Member {
    const member: Member = { peerId, info: { ...info, datasets: [] }, lastHeard: now, index: this.byIndex.length, slots: [], tombstones: 0 }
    this.nodes.set(peerId, member)
    this.byIndex.push(member)
    return member
  }

  /**
   * Applies the entries a node changed in (fromSequence, info.sequence]. Returns 'gap' when this
   * manifest lacks changes before fromSequence (the caller then pulls the record), 'stale' when
   * it already holds everything the delta says.
   */
  applyDelta (peerId: string, info: NodeInfo, fromSequence: number, entries: FileEntry[], now = Date.now()): DeltaResult {
    const known = this.nodes.get(peerId)
    if (known?.loading != null) return 'gap'
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
    for (const entry of entries) if (this.copyOf(known, fileKey(entry.dataset, entry.path)) == null) added++
    if (known.slots.length + added > this.limits.maxEntriesPerNode) return 'rejected'
    const changed: FileEntry[] = []
    for (const entry of entries) {
      const key = fileKey(entry.dataset, entry.path)
      const old = this.copyOf(known, key)
      if (old != null && (old.slot.copies[old.at + 2] as number) >= entry.seq) continue
      this.setEntry(known, key, entry)
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
    const load = this.startLoad(peerId, info, now, true)
    if (load === 'stale') return true
    if (load === 'rejected' || !load.add(entries)) return false
    load.finish(info, now)
    return true
  }

  /**
   * Starts replacing a node's whole record with one that arrives in parts. 'stale': this manifest
   * holds a newer record of the node; 'rejected': a new node past the limit of nodes.
   */
  beginRecord (peerId: string, info: NodeInfo, now = Date.now()): RecordLoad | 'stale' | 'rejected' {
    return this.startLoad(peerId, info, now, false)
  }

  /** `once`: listeners hear of the whole load at its end, in one call (a record given whole). */
  private startLoad (peerId: string, info: NodeInfo, now: number, once: boolean): RecordLoad | 'stale' | 'rejected' {
    const known = this.nodes.get(peerId)
    if (known?.loading != null) throw new Error(`a record of ${peerId} is already being loaded`)
    if (known != null && newer(info, known.info) < 0) return 'stale'
    if (known == null && this.nodes.size >= this.limits.maxNodes) return 'rejected'
    // A new node holds nothing until its record is complete: (generation, 0) keeps it behind.
    const record = known ?? this.addMember(peerId, { ...info, sequence: 0 }, now)
    const seen = new Set<Slot>()
    const held: FileEntry[] = []
    const report = (changed: FileEntry[]): void => {
      if (once) held.push(...changed)
      else this.emit(peerId, changed)
    }
    let open = true
    const end = (): void => {
      open = false
      record.loading = undefined
    }
    const load: RecordLoad = {
      add: (entries) => {
        if (!open) throw new Error('the record load has ended')
        const changed: FileEntry[] = []
        for (const entry of entries) {
          const key = fileKey(entry.dataset, entry.path)
          const old = this.copyOf(record, key)
          if (old != null && (old.slot.copies[old.at + 2] as number) === entry.seq && old.slot.versionAt(old.at).version === entry.version &&
            old.slot.isPartial(record.index) === (entry.partial === true && !entry.deleted)) {
            seen.add(old.slot)
            continue
          }
          if ((old == null || !seen.has(old.slot)) && seen.size >= this.limits.maxEntriesPerNode) {
            this.afterChanges()
            report(changed)
            if (once) this.emit(peerId, held)
            end()
            return false
          }
          seen.add(this.setEntry(record, key, entry))
          changed.push(entry)
        }
        this.afterChanges()
        record.lastHeard = Math.max(record.lastHeard, now)
        report(changed)
        return true
      },
      finish: (last, at = Date.now()) => {
        if (!open) throw new Error('the record load has ended')
        end()
        const changed: FileEntry[] = []
        const gone = new Set<Slot>()
        for (const slot of record.slots) {
          if (seen.has(slot)) continue
          const at = slot.find(record.index)
          if (at < 0) continue
          changed.push({ ...this.entryAt(slot, at), deleted: true })
          this.removeCopy(record, slot, at)
          gone.add(slot)
        }
        if (gone.size > 0) record.slots = record.slots.filter(s => !gone.has(s))
        this.afterChanges()
        this.setInfo(record, last)
        record.lastHeard = Math.max(record.lastHeard, at)
        report(changed)
        this.emit(peerId, once ? held : [])
      },
      abort: () => {
        if (open) end()
      }
    }
    record.loading = load
    return load
  }

  private copyOf (member: Member, key: string): { slot: Slot, at: number } | undefined {
    const slot = this.byFile.get(key)
    if (slot == null) return undefined
    const at = slot.find(member.index)
    return at >= 0 ? { slot, at } : undefined
  }

  private slotFor (key: string, dataset: string): Slot {
    let slot = this.byFile.get(key)
    if (slot == null) {
      let name = this.datasetNames.get(dataset)
      if (name == null) this.datasetNames.set(dataset, name = dataset)
      slot = new Slot(key, name)
      this.byFile.set(key, slot)
      let paths = this.pathsByDataset.get(name)
      if (paths == null) this.pathsByDataset.set(name, paths = new SortedKeys())
      paths.add(key)
    }
    return slot
  }

  private setEntry (record: Member, key: string, entry: FileEntry): Slot {
    const slot = this.slotFor(key, entry.dataset)
    this.beforeChange(slot)
    const version = this.internVersion(slot, entry)
    let at = slot.find(record.index)
    if (at >= 0) {
      const old = slot.versionAt(at)
      this.countCopy(record, slot, old, -1)
      this.releaseVersion(slot, old)
      slot.copies[at + 1] = version
      slot.copies[at + 2] = entry.seq
    } else {
      at = -at - 1
      const before = slot.copies
      const copies = new Array<number | Version>(before.length + STRIDE)
      for (let i = 0; i < at; i++) copies[i] = before[i]
      copies[at] = record.index
      copies[at + 1] = version
      copies[at + 2] = entry.seq
      for (let i = at; i < before.length; i++) copies[i + STRIDE] = before[i]
      slot.copies = copies
      record.slots.push(slot)
    }
    if (entry.partial === true && !entry.deleted) {
      slot.partial ??= new Map()
      slot.partial.set(record.index, entry.have.length === 0 ? EMPTY : new Uint8Array(entry.have))
    } else if (slot.partial?.delete(record.index) === true && slot.partial.size === 0) {
      slot.partial = undefined
    }
    this.countCopy(record, slot, version, 1)
    return slot
  }

  /** Takes a node's copy out of a slot (the caller updates the node's list of slots). */
  private removeCopy (record: Member, slot: Slot, at: number): void {
    this.beforeChange(slot)
    const old = slot.versionAt(at)
    this.countCopy(record, slot, old, -1)
    this.releaseVersion(slot, old)
    slot.copies = slot.copies.filter((_, i) => i < at || i >= at + STRIDE)
    if (slot.partial?.delete(record.index) === true && slot.partial.size === 0) slot.partial = undefined
    if (slot.size === 0) {
      this.byFile.delete(slot.key)
      this.pathsByDataset.get(slot.dataset)?.delete(slot.key)
    }
  }

  private internVersion (slot: Slot, e: FileEntry): Version {
    const content = contentString(e.contentId)
    for (const v of slot.versions) {
      if (v.version === e.version && v.deleted === e.deleted && v.content === content && v.size === e.size &&
        v.mtimeMs === e.mtimeMs && v.mode === e.mode && v.chunkSize === e.chunkSize) {
        v.refs++
        return v
      }
    }
    const v: Version = {
      size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, content, chunkSize: e.chunkSize, version: e.version, deleted: e.deleted, refs: 1
    }
    slot.versions = slot.versions.length === 0 ? [v] : [...slot.versions, v]
    return v
  }

  private releaseVersion (slot: Slot, v: Version): void {
    if (--v.refs > 0) return
    slot.versions = slot.versions.filter(x => x !== v)
  }

  /** The FileEntry of one copy; `ids` shares the content id bytes between the copies of one answer. */
  private entryAt (slot: Slot, at: number, ids?: Map<Version, Uint8Array<ArrayBuffer>>): FileEntry {
    const v = slot.versionAt(at)
    let contentId = ids?.get(v)
    if (contentId == null) {
      contentId = contentBytes(v.content)
      ids?.set(v, contentId)
    }
    const have = slot.partial?.get(slot.copies[at] as number)
    return {
      dataset: slot.dataset,
      path: slot.path,
      size: v.size,
      mtimeMs: v.mtimeMs,
      mode: v.mode,
      contentId,
      chunkSize: v.chunkSize,
      version: v.version,
      deleted: v.deleted,
      seq: slot.copies[at + 2] as number,
      partial: have != null,
      have: have ?? EMPTY
    }
  }

  /** Members of a slot's dataset that do not hold its newest live content. */
  private lackersOf (slot: Slot): string[] {
    const newest = slot.newest()
    if (newest == null || newest.deleted) return []
    const members = this.members.get(slot.dataset)
    if (members == null) return []
    const out: string[] = []
    for (const peerId of members) {
      const member = this.nodes.get(peerId)
      const at = member == null ? -1 : slot.find(member.index)
      if (at < 0 || member == null || slot.isPartial(member.index) || slot.versionAt(at).content !== newest.content || slot.versionAt(at).deleted) out.push(peerId)
    }
    return out
  }

  private beforeChange (slot: Slot): void {
    if (!this.lackersBefore.has(slot)) this.lackersBefore.set(slot, this.lackersOf(slot))
  }

  /** Brings every derived index up to date for the slots touched since beforeChange. */
  private afterChanges (): void {
    for (const [slot, before] of this.lackersBefore) {
      for (const peerId of before) this.countsOf(peerId, slot.dataset).missing--
      if (slot.size > 0) for (const peerId of this.lackersOf(slot)) this.countsOf(peerId, slot.dataset).missing++
      this.refreshReplicas(slot)
    }
    this.lackersBefore.clear()
  }

  private refreshReplicas (slot: Slot): void {
    const newest = slot.size === 0 ? undefined : slot.newest()
    const old = slot.replicas
    let count = -1
    let conflict = false
    if (newest != null && !newest.deleted) {
      count = 0
      for (let at = 0; at < slot.copies.length; at += STRIDE) {
        const v = slot.versionAt(at)
        if (v.deleted || slot.isPartial(slot.copies[at] as number)) continue
        if (v.content === newest.content) count++
        else if (v.version === newest.version) conflict = true
      }
    }
    slot.conflict = conflict
    if (conflict) this.conflictSlots.add(slot)
    else this.conflictSlots.delete(slot)
    if (old === count) return
    if (old >= 0) {
      const bucket = this.byReplicaCount.get(old)
      bucket?.delete(slot)
      if (bucket?.size === 0) this.byReplicaCount.delete(old)
    }
    slot.replicas = count
    if (count < 0) return
    let bucket = this.byReplicaCount.get(count)
    if (bucket == null) this.byReplicaCount.set(count, bucket = new Set())
    bucket.add(slot)
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
    if (record == null || record.loading != null) return undefined
    const full = generation !== record.info.generation || since === 0 || since > record.info.sequence
    const entries: FileEntry[] = []
    for (const slot of record.slots) {
      const at = slot.find(record.index)
      if (at >= 0 && (full || (slot.copies[at + 2] as number) > since)) entries.push(this.entryAt(slot, at))
    }
    entries.sort((a, b) => a.seq - b.seq)
    return { info: record.info, full, entries }
  }

  /**
   * Forgets a node's tombstones with seq <= uptoSeq (every known node has seen them). The
   * record's (generation, sequence) is unchanged: nothing live changed, so no listener is called.
   * Returns how many were dropped.
   */
  dropTombstones (peerId: string, uptoSeq: number): number {
    const record = this.nodes.get(peerId)
    if (record == null || record.tombstones === 0 || record.loading != null) return 0
    const gone = new Set<Slot>()
    for (const slot of record.slots) {
      const at = slot.find(record.index)
      if (at < 0 || !slot.versionAt(at).deleted || (slot.copies[at + 2] as number) > uptoSeq) continue
      this.removeCopy(record, slot, at)
      gone.add(slot)
    }
    if (gone.size > 0) record.slots = record.slots.filter(s => !gone.has(s))
    this.afterChanges()
    return gone.size
  }

  /** How many tombstones a node's record holds. */
  tombstoneCount (peerId: string): number {
    return this.nodes.get(peerId)?.tombstones ?? 0
  }

  /** Every node's entry for one path, tombstones included. */
  entriesFor (dataset: string, path: string): Map<string, FileEntry> {
    const out = new Map<string, FileEntry>()
    const slot = this.byFile.get(fileKey(dataset, path))
    if (slot == null) return out
    const ids = new Map<Version, Uint8Array<ArrayBuffer>>()
    for (let at = 0; at < slot.copies.length; at += STRIDE) {
      out.set(this.byIndex[slot.copies[at] as number].peerId, this.entryAt(slot, at, ids))
    }
    return out
  }

  /** The newest version of a path anywhere in the cluster (possibly a tombstone). */
  newest (dataset: string, path: string): FileEntry | undefined {
    const slot = this.byFile.get(fileKey(dataset, path))
    const newest = slot?.newest()
    if (slot == null || newest == null) return undefined
    for (let at = 0; at < slot.copies.length; at += STRIDE) {
      if (slot.versionAt(at) === newest) return this.entryAt(slot, at)
    }
    return undefined
  }

  /** Paths of a dataset under a prefix, in order, from after `after` (a path), up to `limit`. */
  list (dataset: string, prefix: string, limit: number, after?: string): string[] {
    const base = `${dataset}/`
    const keys = this.pathsByDataset.get(dataset)?.range(base + prefix, after == null ? undefined : base + after, limit) ?? []
    return keys.map(k => k.slice(base.length))
  }

  /** Live copies of the newest content of a path; undefined when the path is deleted or unknown. */
  replicas (dataset: string, path: string): number | undefined {
    const count = this.byFile.get(fileKey(dataset, path))?.replicas ?? -1
    return count < 0 ? undefined : count
  }

  /** Live files (`dataset/path` keys) with fewer than `count` complete copies, up to `limit`. */
  belowReplicas (count: number, limit: number): string[] {
    const out: string[] = []
    for (let n = 0; n < count && out.length < limit; n++) {
      for (const slot of this.byReplicaCount.get(n) ?? []) {
        out.push(slot.key)
        if (out.length >= limit) break
      }
    }
    return out
  }

  /** Paths whose live copies hold different content at the same version (concurrent edits). */
  conflicts (limit: number): string[] {
    const out: string[] = []
    for (const slot of this.conflictSlots) {
      if (out.length >= limit) break
      out.push(slot.key)
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
    if (c == null) byDataset.set(dataset, c = { held: 0, bytes: 0, receiving: 0, missing: 0 })
    return c
  }

  /** Counts a copy in (+1) or out (-1) of its node's totals. */
  private countCopy (record: Member, slot: Slot, v: Version, delta: number): void {
    if (v.deleted) {
      record.tombstones += delta
      return
    }
    const c = this.countsOf(record.peerId, slot.dataset)
    if (slot.isPartial(record.index)) c.receiving += delta
    else {
      c.held += delta
      c.bytes += delta * v.size
    }
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
        const slot = this.byFile.get(fileKey(dataset, path))
        if (slot != null && this.lackersOf(slot).includes(peerId)) {
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
    const slot = this.byFile.get(fileKey(dataset, path))
    if (slot == null) return []
    const newest = slot.newest()
    const holders: Holder[] = []
    const ids = new Map<Version, Uint8Array<ArrayBuffer>>()
    for (let at = 0; at < slot.copies.length; at += STRIDE) {
      const v = slot.versionAt(at)
      if (v.deleted) continue
      const member = this.byIndex[slot.copies[at] as number]
      holders.push({
        peerId: member.peerId,
        name: member.info.name,
        entry: this.entryAt(slot, at, ids),
        complete: !slot.isPartial(member.index) && newest != null && !newest.deleted && v.content === newest.content
      })
    }
    return holders.sort((a, b) => compareVersions(b.entry, a.entry) || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
  }

  /**
   * The answer to `where`, read from the path's slot: the same holders, order and completeness
   * as holdersOf, without building a FileEntry per copy (a query on a path held by 16 nodes
   * allocated about 6 KB through holdersOf; this builds only what it returns).
   */
  locate (dataset: string, path: string, selfId?: string): Located {
    const slot = this.byFile.get(fileKey(dataset, path))
    const newest = slot?.newest()
    if (slot == null || newest == null) return { version: null, deleted: false, holders: [] }
    const holders: LocatedCopy[] = []
    const versions: Version[] = []
    const hex: Array<string | undefined> = []
    for (let at = 0; at < slot.copies.length; at += STRIDE) {
      const v = slot.versionAt(at)
      if (v.deleted) continue
      const member = this.byIndex[slot.copies[at] as number]
      const vi = slot.versions.indexOf(v)
      const contentId = hex[vi] ??= contentHex(v.content)
      const copy: LocatedCopy = {
        peerId: member.peerId,
        name: member.info.name,
        self: member.peerId === selfId,
        complete: !newest.deleted && v.content === newest.content && !slot.isPartial(member.index),
        version: v.version,
        size: v.size,
        contentId
      }
      // Insertion into place (newest version first, then by peer id): a handful of copies, no sort's scratch array.
      let i = holders.length
      holders.push(copy)
      versions.push(v)
      while (i > 0) {
        const order = compareVersion(v, versions[i - 1]) || (copy.peerId < holders[i - 1].peerId ? 1 : -1)
        if (order < 0) break
        holders[i] = holders[i - 1]
        versions[i] = versions[i - 1]
        i--
      }
      holders[i] = copy
      versions[i] = v
    }
    return { version: newest.version, deleted: newest.deleted, holders }
  }

  /** A path's line in a listing, read from its slot (no entry is built); undefined when unknown. */
  summarize (dataset: string, path: string): PathSummary | undefined {
    const slot = this.byFile.get(fileKey(dataset, path))
    const newest = slot?.newest()
    if (slot == null || newest == null) return undefined
    let holders = 0
    for (let at = 0; at < slot.copies.length; at += STRIDE) if (!slot.versionAt(at).deleted) holders++
    return { version: newest.version, deleted: newest.deleted, size: newest.size, replicas: Math.max(0, slot.replicas), holders }
  }

  /** True when the node holds a complete, live copy of the newest content of a path (no entry is built). */
  holdsNewest (peerId: string, dataset: string, path: string): boolean {
    const member = this.nodes.get(peerId)
    const slot = this.byFile.get(fileKey(dataset, path))
    if (member == null || slot == null) return false
    const at = slot.find(member.index)
    if (at < 0 || slot.isPartial(member.index)) return false
    const v = slot.versionAt(at)
    const newest = slot.newest()
    return !v.deleted && newest != null && !newest.deleted && v.content === newest.content
  }

  /** Nodes that hold a complete live copy of exactly this content. */
  holdersOfContent (dataset: string, path: string, contentId: Uint8Array): string[] {
    return this.sourcesOf(dataset, path, contentId).filter(s => s.have == null).map(s => s.peerId)
  }

  /** Every node that can serve chunks of this content: complete holders, and receivers with the chunks in `have`. */
  sourcesOf (dataset: string, path: string, contentId: Uint8Array): Array<{ peerId: string, have?: Uint8Array }> {
    const out: Array<{ peerId: string, have?: Uint8Array }> = []
    const slot = this.byFile.get(fileKey(dataset, path))
    if (slot == null) return out
    const content = contentString(contentId)
    for (let at = 0; at < slot.copies.length; at += STRIDE) {
      const v = slot.versionAt(at)
      if (v.deleted || v.content !== content) continue
      const node = slot.copies[at] as number
      const have = slot.partial?.get(node)
      const peerId = this.byIndex[node].peerId
      out.push(have != null ? { peerId, have } : { peerId })
    }
    return out
  }

  get fileCount (): number {
    return this.byFile.size
  }
}
