/**
 * Garbage collection of tombstones. A deleted file is a tombstone (a new version marked deleted)
 * in its node's record; it is kept until every known node has seen it, then dropped, here and,
 * for this node's own record, from the local index.
 *
 * "Node Y has seen record X up to sequence s" is learned from Y's manifest summary (what Y
 * holds of every record), or from a heartbeat of Y whose digest equals this node's digest (then
 * Y holds exactly this node's view). A record's threshold is the least of what every known node
 * other than its owner has seen of it (0 when unknown or of another generation); tombstones at
 * or below it go once that threshold has held for `minAgeMs`, and only if no other node still
 * holds a live copy of the path at a version the tombstone beats (a copy that has not applied the
 * deletion yet, or a concurrent edit the deletion won): dropping the tombstone would resurrect it.
 */
import type { ClusterManifest } from '@shoal/manifest'
import type { Logger } from './util.js'

export interface RecordVersion {
  generation: number
  sequence: number
}

/** What one node holds of each record: peer id -> (generation, sequence). */
export type View = ReadonlyMap<string, RecordVersion>

function isCount (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

/**
 * What each peer is known to hold, and since when. A view learned from a matching digest is
 * this node's own view at that moment; peers that match the same digest share one object, so
 * memory stays O(nodes) while the cluster agrees.
 */
export class PeerViews {
  private readonly views = new Map<string, { view: View, at: number }>()
  private shared?: { digest: Uint8Array, view: View }

  /** `peerId`'s manifest summary: the (generation, sequence) of every record it holds. */
  fromSummary (peerId: string, nodes: ReadonlyArray<{ peerId: string, generation: number, sequence: number }>, now = Date.now()): void {
    const view = new Map<string, RecordVersion>()
    for (const n of nodes) {
      if (typeof n.peerId !== 'string' || !isCount(n.generation) || !isCount(n.sequence)) continue
      view.set(n.peerId, { generation: n.generation, sequence: n.sequence })
    }
    this.views.set(peerId, { view, at: now })
  }

  /**
   * A heartbeat of `peerId` carried `digest`, equal to this node's: the peer holds exactly this
   * node's view, which `summary` returns (called only when the digest differs from the last one).
   */
  fromMatchingDigest (peerId: string, digest: Uint8Array, summary: () => ReadonlyArray<{ peerId: string, generation: number, sequence: number }>, now = Date.now()): void {
    if (this.shared == null || Buffer.compare(this.shared.digest, digest) !== 0) {
      const view = new Map<string, RecordVersion>()
      for (const n of summary()) view.set(n.peerId, { generation: n.generation, sequence: n.sequence })
      this.shared = { digest: Uint8Array.from(digest), view }
    }
    this.views.set(peerId, { view: this.shared.view, at: now })
  }

  get (peerId: string): { view: View, at: number } | undefined {
    return this.views.get(peerId)
  }

  /** What `peerId` was last known to hold of `subject`'s record. */
  seen (peerId: string, subject: string): RecordVersion | undefined {
    return this.views.get(peerId)?.view.get(subject)
  }

  /** Forgets peers no longer known. */
  retain (known: ReadonlySet<string>): void {
    for (const peerId of this.views.keys()) if (!known.has(peerId)) this.views.delete(peerId)
  }

  get size (): number {
    return this.views.size
  }
}

/**
 * The highest sequence of `subject`'s record that every known node other than `subject` has
 * seen: what each peer was last known to hold (0 when unknown or of another generation), and
 * this node (`self`) holds `current`. With no other node, the whole record.
 */
export function seenThreshold (subject: string, current: RecordVersion, known: Iterable<string>, self: string,
  seen: (peerId: string) => RecordVersion | undefined): number {
  if (!isCount(current.generation) || !isCount(current.sequence)) throw new RangeError('current generation and sequence must be non-negative integers')
  let upTo = current.sequence
  for (const peerId of known) {
    if (peerId === subject || peerId === self) continue
    const v = seen(peerId)
    const s = v == null || v.generation !== current.generation || !isCount(v.sequence) ? 0 : Math.min(v.sequence, current.sequence)
    if (s < upTo) upTo = s
  }
  return upTo
}

/** The known nodes (other than `subject` and `self`) that have seen less than `below` of `subject`'s record. */
export function behind (subject: string, current: RecordVersion, known: Iterable<string>, self: string,
  seen: (peerId: string) => RecordVersion | undefined, below: number): string[] {
  const out: string[] = []
  for (const peerId of known) {
    if (peerId === subject || peerId === self) continue
    const v = seen(peerId)
    const s = v == null || v.generation !== current.generation ? 0 : v.sequence
    if (s < below) out.push(peerId)
  }
  return out
}

/**
 * Delays thresholds: per record, the threshold it returns is one that has held for at least
 * `minAgeMs` (and never more than the current one). A new generation, or a threshold that goes
 * down (a peer restarted and forgot), starts over.
 */
export class Matured {
  private readonly history = new Map<string, { generation: number, points: Array<{ at: number, upTo: number }> }>()

  constructor (private readonly minAgeMs: number) {
    if (!isCount(minAgeMs)) throw new RangeError('minAgeMs must be a non-negative integer')
  }

  observe (subject: string, generation: number, upTo: number, now = Date.now()): number {
    let h = this.history.get(subject)
    if (h == null || h.generation !== generation) {
      h = { generation, points: [] }
      this.history.set(subject, h)
    }
    const last = h.points[h.points.length - 1]
    if (last != null && upTo < last.upTo) h.points = []
    if (h.points.length === 0 || upTo > h.points[h.points.length - 1].upTo) h.points.push({ at: now, upTo })
    // Keep the newest point old enough, and those after it.
    const cutoff = now - this.minAgeMs
    while (h.points.length > 1 && h.points[1].at <= cutoff) h.points.shift()
    const first = h.points[0]
    return first.at <= cutoff ? Math.min(first.upTo, upTo) : 0
  }

  retain (known: ReadonlySet<string>): void {
    for (const subject of this.history.keys()) if (!known.has(subject)) this.history.delete(subject)
  }
}

export interface TombstoneOptions {
  /** Between passes. */
  intervalMs: number
  /** A threshold must have held this long before tombstones under it go. */
  minAgeMs: number
  /** What a peer holds is fetched again (its summary) when older than this and tombstones wait for it. */
  refreshAfterMs: number
  /** Summaries asked for per pass at most. */
  maxRefreshes: number
  /** Entries examined, or tombstones dropped, between two yields to the event loop. */
  slice: number
}

/** Passes every 30 s; a tombstone waits 10 passes (5 min) after every node has seen it; stale knowledge is refreshed after 4 (2 min). */
export function tombstoneOptions (intervalMs: number): TombstoneOptions {
  if (!isCount(intervalMs) || intervalMs < 1) throw new RangeError('intervalMs must be a positive integer')
  return { intervalMs, minAgeMs: intervalMs * 10, refreshAfterMs: intervalMs * 4, maxRefreshes: 3, slice: 5000 }
}

export interface TombstoneHost {
  cluster: ClusterManifest
  selfId: string
  /** Every known node: records held and peers remembered from before a restart. */
  knownNodes: () => Iterable<string>
  connected: () => ReadonlySet<string>
  /** Fetches a peer's summary (its answer comes back through `views.fromSummary`). */
  refresh: (peerId: string) => void
  /** Forgets this node's own tombstones with seq <= upTo in the local index. */
  forgetOwn: (upTo: number) => Promise<void>
  /** Persists the version floor (see TombstoneCollector.versionFloor). */
  saveVersionFloor: (version: number) => void
  /** A tombstone of this path was dropped: a version it hid may be the newest now. */
  onDropped?: (dataset: string, path: string) => void
  log: Logger
}

export interface TombstoneStatus {
  /** Tombstones in this node's view of the cluster (every record). */
  held: number
  /** Of them, this node's own (also in its local index). */
  own: number
  /** Dropped since the agent started. */
  dropped: number
  passes: number
  /** Known nodes that have not been seen to hold records with pending tombstones (peer ids, at most 32). */
  waitingFor: string[]
}

interface Scanned {
  digest: Uint8Array
  generation: number
  sequence: number
  seen: number
  matured: number
  /** Lowest seq of a tombstone above `seen` (Infinity when none). */
  firstUnseen: number
  /** A tombstone was kept for a live copy elsewhere (a change of any record may release it). */
  hidesCopy: boolean
}

const yieldNow = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))

/** Runs the passes; see the module comment for the rule. */
export class TombstoneCollector {
  readonly views = new PeerViews()
  private readonly matured: Matured
  private readonly scanned = new Map<string, Scanned>()
  /** Per record (and generation): tombstones up to this seq were dropped; older deltas are served as full records. */
  private readonly horizons = new Map<string, { generation: number, upTo: number }>()
  private readonly asked = new Map<string, number>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private waiting: string[] = []
  private running?: Promise<void>
  private stopped = false
  private passes = 0
  private dropped = 0

  /**
   * Versions of dropped tombstones never come back: a path this node sees as deleted or unknown
   * gets, when written again, a version above every tombstone it dropped (persisted), so a copy
   * written after the collection is never older than a tombstone another node still holds.
   */
  versionFloor: number

  constructor (private readonly host: TombstoneHost, readonly options: TombstoneOptions, versionFloor = 0) {
    this.matured = new Matured(options.minAgeMs)
    this.versionFloor = isCount(versionFloor) ? versionFloor : 0
  }

  /** Tombstones of `peerId`'s record (this generation) up to this seq are gone here. */
  horizon (peerId: string, generation: number): number {
    const h = this.horizons.get(peerId)
    return h != null && h.generation === generation ? h.upTo : 0
  }

  status (): TombstoneStatus {
    let held = 0
    for (const record of this.host.cluster.allNodes()) held += this.host.cluster.tombstoneCount(record.peerId)
    return { held, own: this.host.cluster.tombstoneCount(this.host.selfId), dropped: this.dropped, passes: this.passes, waitingFor: this.waiting.slice(0, 32) }
  }

  stop (): void {
    this.stopped = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }

  /** One pass (a pass still running is not started again). */
  async pass (now = Date.now()): Promise<void> {
    if (this.stopped) return
    if (this.running != null) return await this.running
    this.running = this.run(now).finally(() => { this.running = undefined })
    return await this.running
  }

  private async run (now: number): Promise<void> {
    const { cluster, selfId } = this.host
    const known = new Set(this.host.knownNodes())
    for (const record of cluster.allNodes()) known.add(record.peerId)
    known.add(selfId)
    this.views.retain(known)
    this.matured.retain(known)
    for (const peerId of this.scanned.keys()) if (!known.has(peerId)) this.scanned.delete(peerId)
    for (const peerId of this.horizons.keys()) if (!known.has(peerId)) this.horizons.delete(peerId)
    for (const peerId of this.asked.keys()) if (!known.has(peerId)) this.asked.delete(peerId)

    const waiting = new Set<string>()
    for (const record of cluster.allNodes()) {
      if (this.stopped) return
      const subject = record.peerId
      if (cluster.tombstoneCount(subject) === 0) {
        this.scanned.delete(subject)
        continue
      }
      const current = { generation: record.info.generation, sequence: record.info.sequence }
      const seenOf = (peerId: string): RecordVersion | undefined => this.views.seen(peerId, subject)
      const seen = seenThreshold(subject, current, known, selfId, seenOf)
      const matured = this.matured.observe(subject, current.generation, seen, now)
      const digest = cluster.digest()
      let last = this.scanned.get(subject)
      // Nothing changed that could change the outcome of the last scan of this record: it stands.
      if (last == null || last.generation !== current.generation || last.sequence !== current.sequence || last.seen !== seen ||
        last.matured !== matured || (last.hidesCopy && Buffer.compare(last.digest, digest) !== 0)) {
        const outcome = await this.collect(subject, current, seen, matured)
        last = { digest: Uint8Array.from(digest), generation: current.generation, sequence: current.sequence, seen, matured, ...outcome }
        this.scanned.set(subject, last)
      }
      if (last.firstUnseen !== Infinity) {
        for (const peerId of behind(subject, current, known, selfId, seenOf, last.firstUnseen)) waiting.add(peerId)
      }
    }
    this.waiting = [...waiting].sort()
    this.passes++
    this.refresh(waiting, now)
  }

  /**
   * Examines a record's tombstones: drops those the rule allows, and returns the lowest seq of
   * one not yet seen by every node (Infinity when none), and whether one was kept for a live copy.
   */
  private async collect (subject: string, current: RecordVersion, seen: number, matured: number): Promise<{ firstUnseen: number, hidesCopy: boolean }> {
    const { cluster, selfId } = this.host
    const { slice } = this.options
    let firstUnseen = Infinity
    const candidates: Array<{ seq: number, version: number, dataset: string, path: string }> = []
    let n = 0
    for (const entry of cluster.tombstonesOf(subject)) {
      if (++n % slice === 0) {
        await yieldNow()
        if (this.stopped) return { firstUnseen: Infinity, hidesCopy: false }
      }
      if (entry.seq > seen) firstUnseen = Math.min(firstUnseen, entry.seq)
      else if (entry.seq <= matured) candidates.push({ seq: entry.seq, version: entry.version, dataset: entry.dataset, path: entry.path })
    }
    if (candidates.length === 0) return { firstUnseen, hidesCopy: false }
    candidates.sort((a, b) => a.seq - b.seq)
    // Oldest first, up to the first tombstone that still hides a live copy elsewhere.
    let upTo = matured
    let count = 0
    let hidesCopy = false
    for (const c of candidates) {
      if (++n % slice === 0) {
        await yieldNow()
        if (this.stopped) return { firstUnseen: Infinity, hidesCopy: false }
      }
      let hides = false
      for (const [peerId, e] of cluster.entriesFor(c.dataset, c.path)) {
        if (peerId !== subject && !e.deleted && e.version <= c.version) {
          hides = true
          break
        }
      }
      if (hides) {
        upTo = c.seq - 1
        hidesCopy = true
        break
      }
      count++
    }
    if (count === 0) return { firstUnseen, hidesCopy }
    const dropping = candidates.slice(0, count)
    const floor = dropping.reduce((m, c) => Math.max(m, c.version), 0)
    if (floor > this.versionFloor) {
      this.versionFloor = floor
      this.host.saveVersionFloor(floor)
    }
    const h = this.horizons.get(subject)
    if (h == null || h.generation !== current.generation || h.upTo < upTo) this.horizons.set(subject, { generation: current.generation, upTo })
    let dropped = 0
    for (let i = 0; i < dropping.length; i += slice) {
      if (i > 0) await yieldNow()
      if (this.stopped) return { firstUnseen: Infinity, hidesCopy: false }
      dropped += cluster.dropTombstones(subject, dropping[Math.min(i + slice, dropping.length) - 1].seq)
    }
    this.dropped += dropped
    this.host.log.debug('tombstones dropped', { peer: subject, dropped, upTo })
    if (subject === selfId) await this.host.forgetOwn(upTo)
    if (this.host.onDropped != null) {
      for (let i = 0; i < dropping.length; i++) {
        if (i > 0 && i % slice === 0) await yieldNow()
        if (this.stopped) return { firstUnseen: Infinity, hidesCopy: false }
        this.host.onDropped(dropping[i].dataset, dropping[i].path)
      }
    }
    return { firstUnseen, hidesCopy }
  }

  /** Asks a few of the connected peers that hold tombstones back, whose views are old, for their summaries (jittered). */
  private refresh (waiting: Set<string>, now: number): void {
    const { refreshAfterMs, maxRefreshes, intervalMs } = this.options
    const connected = this.host.connected()
    const due = [...waiting].filter(peerId => connected.has(peerId) &&
      (this.views.get(peerId)?.at ?? 0) <= now - refreshAfterMs && (this.asked.get(peerId) ?? 0) <= now - refreshAfterMs)
    for (let i = due.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[due[i], due[j]] = [due[j], due[i]]
    }
    for (const peerId of due.slice(0, maxRefreshes)) {
      this.asked.set(peerId, now)
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        if (!this.stopped) this.host.refresh(peerId)
      }, Math.floor(Math.random() * intervalMs)).unref()
      this.timers.add(timer)
    }
  }
}
