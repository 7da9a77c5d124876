import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import { pbStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import {
  Announcement, Heartbeat, LoadLevel, ManifestPage, ManifestRequest, ManifestRequestKind, ManifestSummary, MAX_MANIFEST_PAGE_BYTES,
  MAX_PUBSUB_MESSAGE_BYTES, PROTOCOL_MANIFEST, announceTopic, checkEntries, checkNodeInfo, checkNodeVersions, checkPeerIdText, heartbeatTopic
} from '@shoal/wire'
import { MAX_CLOCK_AHEAD_MS, MAX_REJECTIONS_PER_MINUTE, CONCURRENT_MANIFEST_PULLS, MANIFEST_PULL_TIMEOUT_MS, MANIFEST_READ_TIMEOUT_MS, MAX_ENTRIES_PER_PULL } from './constants.js'
import { ANNOUNCE_BUDGET, PAGE_BUDGET, changePages, splitEntries, type ChangeReader } from './records.js'
import { Semaphore, type Logger } from './util.js'
import { InvalidMessageError } from '@shoal/wire'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { ClusterManifest, RecordLoad } from '@shoal/manifest'
import type { FileEntry, NodeInfo } from '@shoal/wire'

export interface GossipInit {
  node: Libp2p<{ pubsub: GossipSub }>
  cluster: ClusterManifest
  clusterName: string
  /** This node's current self-description (generation, sequence, addresses). */
  self: () => NodeInfo
  /** Up to `limit` of this node's changes after `after` (all of them from 0), oldest first. */
  changes: ChangeReader
  /** This node's load, sent in every heartbeat. */
  load?: () => LoadLevel
  /** A peer's load as its heartbeat says. */
  onPeerLoad?: (peerId: string, load: LoadLevel) => void
  /** A peer exceeded MAX_REJECTIONS_PER_MINUTE: the agent disconnects and refuses it for a while. */
  onAbusive?: (peerId: string) => void
  /** Milliseconds between a heartbeat's publication and its arrival. */
  onGossipDelay?: (ms: number) => void
  /** A peer's summary arrived: the (generation, sequence) of every record it holds. */
  onPeerSummary?: (peerId: string, nodes: Array<{ peerId: string, generation: number, sequence: number }>) => void
  /** A peer's heartbeat carried this node's own digest: it holds exactly this node's view. */
  onPeerView?: (peerId: string, digest: Uint8Array) => void
  /**
   * The current heartbeat period (default 2000 ms; heartbeatPeriodMs). Half of it paces two things:
   * - a heartbeat whose digest differs from this node's view starts a summary exchange at most
   *   that often, and never while one runs (and only in the cases digestDiffers lists): one
   *   summary shows every record a peer holds;
   * - a record seen ahead of this node's copy in a heartbeat, a summary or an out-of-order delta
   *   is pulled only if it is still behind that long after: the announcement that brings the
   *   change is usually on its way, and a pull (a stream, a request, a response) costs far more
   *   than waiting for it. Under load, 32 agents made ~3 pulls per announcement without this.
   */
  heartbeatPeriodMs?: () => number
  /** Tombstones of a record (this generation) up to this seq were dropped: an older delta must be a full record. */
  gcHorizon?: (peerId: string, generation: number) => number
  log: Logger
}

/**
 * An announcement up to this size that changes a file (added, changed, deleted, or a download
 * committed) goes from its node straight to every connected subscriber (flood publish), not
 * through the mesh (D = 4) alone: the change then reaches most nodes in one hop instead of two or
 * three, each of which waits for a busy process to be scheduled (at 32 agents on two cores: p99
 * from commit to every node 1,470 ms before, 286-398 ms after, with the fix of empty checkpoints).
 * The rest stays on the mesh: heartbeats (most of the messages, nothing waits for them), the
 * progress of downloads (every receiver reports it twice a second during a broadcast: flooded, at
 * hundreds of nodes that would be a copy to each connected peer every time), and large batches,
 * so that no node sends hundreds of copies of a large message.
 */
export const FLOOD_ANNOUNCEMENT_MAX_BYTES = 16 * 1024

/** Whether an announcement of `entries`, `bytes` long once encoded, is flooded (see FLOOD_ANNOUNCEMENT_MAX_BYTES). */
export function floods (entries: FileEntry[], bytes: number): boolean {
  return bytes <= FLOOD_ANNOUNCEMENT_MAX_BYTES && entries.some(e => !e.partial)
}

/** A differing digest leads to a summary at least this often (in heartbeat periods), even while changes spread. */
export const DIGEST_SUMMARY_FLOOR_PERIODS = 8

/** Up to this many nodes, heartbeats go out at the configured interval. */
export const HEARTBEAT_SCALE_NODES = 8

/**
 * The heartbeat period for a cluster of `nodes`. Every heartbeat reaches every node, so at a
 * fixed interval each node's cost grows with the cluster (at 32 agents on 2 cores the idle
 * heartbeats alone took most of a core). Beyond HEARTBEAT_SCALE_NODES the period grows in
 * proportion, so that a node receives about as many heartbeats per second at any size (four,
 * each arriving from several mesh peers); it never exceeds a quarter of stale-after, so that a
 * live node is not reported stale (raise stale-after for clusters of more than 30 nodes to keep
 * the cost flat there too). Scaling from 16 nodes instead of 8, an idle 32-node cluster on two
 * cores used 190 % of a core instead of 135 %, and a new file reached every node's view in
 * p50 649 / p99 2,329 ms instead of 348 / 1,421 (one run each, same day).
 */
export function heartbeatPeriodMs (configuredMs: number, nodes: number, staleAfterMs: number): number {
  const scaled = configuredMs * Math.max(1, nodes / HEARTBEAT_SCALE_NODES)
  return Math.round(Math.max(configuredMs, Math.min(scaled, staleAfterMs / 4)))
}

export interface GossipStats {
  announcementsSent: number
  heartbeatsSent: number
  rejected: number
  pulls: number
  pullFailures: number
  summaries: number
}

/**
 * Spreads this node's record and learns everyone else's: deltas over pubsub on every change,
 * heartbeats carrying (generation, sequence), and a pull over `/shoal/manifest/1.0.0` whenever a
 * peer turns out to be ahead of what this node holds (anti-entropy).
 */
export class Gossip {
  readonly stats: GossipStats = { announcementsSent: 0, heartbeatsSent: 0, rejected: 0, pulls: 0, pullFailures: 0, summaries: 0 }
  private readonly announceTopic: string
  private readonly heartbeatTopic: string
  private readonly pullLimit = new Semaphore(CONCURRENT_MANIFEST_PULLS)
  /** Pulls in progress by subject: the source to ask next, and whether another pull was asked for meanwhile. */
  private readonly pulling = new Map<string, { from: string, again: boolean }>()
  /** Records seen ahead of this node's copy, waiting out the grace period: where to pull from, and the newest version seen. */
  private readonly behind = new Map<string, { from: string, generation: number, sequence: number, timer: NodeJS.Timeout }>()
  /**
   * Addresses of nodes heard in their own heartbeats (bounded). A heartbeat relayed through the
   * mesh names a node this one may not be connected to and has no address of yet: a pull from it
   * failed with "no valid addresses" (a quarter of the pulls while 32 agents formed their mesh).
   */
  private readonly addrsOf = new Map<string, string[]>()
  /** Peers whose summary is being fetched. */
  private readonly summarising = new Set<string>()
  private lastDigestSummary = 0
  /** The digest of each peer's last heartbeat that differed from this node's view. */
  private readonly digestOf = new Map<string, Uint8Array>()
  /** Rejected messages and responses, per sending peer. */
  readonly rejectedFrom = new Map<string, number>()
  private readonly recentRejections = new Map<string, { start: number, count: number, logged: number }>()
  private announcedSeq = 0
  /** When the last heartbeat went out (ms since the epoch). */
  lastHeartbeatAt = 0
  private stopped = false

  constructor (private readonly init: GossipInit) {
    this.announceTopic = announceTopic(init.clusterName)
    this.heartbeatTopic = heartbeatTopic(init.clusterName)
  }

  async start (): Promise<void> {
    const { node } = this.init
    const pubsub = node.services.pubsub
    pubsub.topicValidators.set(this.announceTopic, (peer, msg) => this.validate(msg, Announcement))
    pubsub.topicValidators.set(this.heartbeatTopic, (peer, msg) => this.validate(msg, Heartbeat))
    pubsub.addEventListener('message', (evt) => { this.onMessage(evt.detail) })
    pubsub.subscribe(this.announceTopic)
    pubsub.subscribe(this.heartbeatTopic)
    await node.handle(PROTOCOL_MANIFEST, (stream) => this.serveManifest(stream))
    node.addEventListener('peer:connect', (evt) => { this.pull(evt.detail.toString()) })
  }

  stop (): void {
    this.stopped = true
    for (const b of this.behind.values()) clearTimeout(b.timer)
    this.behind.clear()
  }

  /** Publishes everything that changed locally since the last announcement. */
  async announce (): Promise<void> {
    const self = this.init.self()
    if (self.sequence <= this.announcedSeq) return
    // Below the tombstone horizon a delta would miss dropped tombstones: receivers that far behind see a gap and pull the whole record.
    let from = Math.max(this.announcedSeq, Math.min(self.sequence, this.init.gcHorizon?.(this.init.node.peerId.toString(), self.generation) ?? 0))
    // Each announcement covers (from, its last entry's seq]; the last one reaches self.sequence.
    let held: FileEntry[] | undefined
    const send = async (group: FileEntry[], to: number): Promise<void> => {
      const data = Announcement.encode({ node: { ...self, sequence: to }, fromSequence: from, entries: group })
      await this.publish(this.announceTopic, data, floods(group, data.length))
      this.stats.announcementsSent++
      from = to
    }
    for (const page of changePages(this.init.changes, from, self.sequence)) {
      for (const group of splitEntries(page, ANNOUNCE_BUDGET)) {
        if (held != null) await send(held, held[held.length - 1].seq)
        held = group
      }
    }
    if (held != null) await send(held, self.sequence)
    this.announcedSeq = self.sequence
  }

  /** Publishes a heartbeat: every interval, and at once when this node's load level changes. */
  async heartbeat (): Promise<void> {
    const load = this.init.load?.() ?? LoadLevel.OK
    this.lastHeartbeatAt = Date.now()
    await this.publish(this.heartbeatTopic, Heartbeat.encode({ node: this.init.self(), load, digest: Uint8Array.from(this.init.cluster.digest()), sentMs: Date.now() }))
    this.stats.heartbeatsSent++
  }

  /** Publishes to the topic's mesh, or with `flood` to every subscribed peer this node is connected to. */
  private async publish (topic: string, data: Uint8Array, flood = false): Promise<void> {
    try {
      // The GossipSub interface declares publish(topic, data); the implementation (17.1) takes
      // per-message options, and floodPublish among them overrides the node's setting.
      const pubsub = this.init.node.services.pubsub as unknown as { publish: (topic: string, data: Uint8Array, opts: { floodPublish: boolean }) => Promise<unknown> }
      await pubsub.publish(topic, data, { floodPublish: flood })
    } catch (err: any) {
      this.init.log.debug('publish failed', { topic, error: err.message })
    }
  }

  private validate (msg: Message, codec: typeof Announcement | typeof Heartbeat): TopicValidatorResult {
    try {
      if (msg.type !== 'signed') throw new Error('unsigned message')
      if (msg.data.length > MAX_PUBSUB_MESSAGE_BYTES) throw new Error('message too large')
      const decoded = codec.decode(msg.data) as Announcement | Heartbeat
      checkNodeInfo(decoded.node)
      if ('entries' in decoded) {
        if (decoded.fromSequence > decoded.node.sequence) throw new Error('fromSequence ahead of sequence')
        checkEntries(decoded.entries, decoded.node.sequence)
      } else if (decoded.digest.length !== 0 && decoded.digest.length !== 32) {
        throw new Error('digest must be 32 bytes')
      } else if (LoadLevel[decoded.load] == null) {
        throw new Error('unknown load level')
      }
      return TopicValidatorResult.Accept
    } catch (err: any) {
      const from = msg.type === 'signed' ? msg.from.toString() : 'unsigned'
      this.countRejection(from)
      this.logRejection(from, { from, topic: msg.topic, error: err.message })
      return TopicValidatorResult.Reject
    }
  }

  private onMessage (msg: Message): void {
    if (this.stopped || msg.type !== 'signed') return
    const from = msg.from.toString()
    if (from === this.init.node.peerId.toString()) return
    const { cluster } = this.init
    if (msg.topic === this.announceTopic) {
      const ann = Announcement.decode(msg.data)
      if (ann.node == null) return
      if (!this.plausibleGeneration(ann.node.generation)) return this.countRejection(from)
      const result = cluster.applyDelta(from, ann.node, ann.fromSequence, ann.entries)
      if (result === 'gap') this.pullIfStillBehind(from, from, ann.node)
      else if (result === 'rejected') this.countRejection(from)
    } else if (msg.topic === this.heartbeatTopic) {
      const hb = Heartbeat.decode(msg.data)
      if (hb.node == null) return
      cluster.heard(from, hb.node)
      if (hb.node.addrs.length > 0) {
        // Bounded: 8 addresses (all a dial tries) of at most 4,096 nodes.
        if (this.addrsOf.size >= 4096 && !this.addrsOf.has(from)) this.addrsOf.clear()
        this.addrsOf.set(from, hb.node.addrs.slice(0, 8))
      }
      this.init.onPeerLoad?.(from, hb.load)
      if (hb.sentMs > 0 && Date.now() >= hb.sentMs) this.init.onGossipDelay?.(Date.now() - hb.sentMs)
      if (cluster.isBehind(from, hb.node)) this.pullIfStillBehind(from, from, hb.node)
      else if (hb.digest.length > 0 && Buffer.compare(hb.digest, cluster.digest()) !== 0) this.digestDiffers(from, hb.digest)
      else if (hb.digest.length > 0) {
        this.digestOf.delete(from)
        this.init.onPeerView?.(from, hb.digest)
      }
    }
  }

  /** Generations are start times (ms): one far in the future is a forgery or a broken clock. */
  private plausibleGeneration (generation: number): boolean {
    return generation <= Date.now() + MAX_CLOCK_AHEAD_MS
  }

  countRejection (peerId: string): void {
    this.stats.rejected++
    if (this.rejectedFrom.size < 10_000 || this.rejectedFrom.has(peerId)) {
      this.rejectedFrom.set(peerId, (this.rejectedFrom.get(peerId) ?? 0) + 1)
    }
    const now = Date.now()
    let window = this.recentRejections.get(peerId)
    if (window == null || now - window.start > 60_000) {
      if (this.recentRejections.size > 10_000) this.recentRejections.clear()
      window = { start: now, count: 0, logged: 0 }
      this.recentRejections.set(peerId, window)
    }
    window.count++
    if (window.count === MAX_REJECTIONS_PER_MINUTE) this.init.onAbusive?.(peerId)
  }

  /** Rejections are logged, but at most a few per peer and minute (a flood must not flood the log). */
  private logRejection (peerId: string, fields: Record<string, unknown>): void {
    const window = this.recentRejections.get(peerId)
    if (window != null && window.logged >= 5) return
    if (window != null) window.logged++
    this.init.log.warn('rejected a pubsub message', fields)
  }

  /**
   * A heartbeat's digest differs from this node's view. While changes spread, nearly every
   * heartbeat does, and the announcements on their way settle it: a summary then finds nothing
   * (in a 129 s write phase at 32 agents, 935 summaries led to no pull). Records whose own node
   * is heard are pulled on its heartbeat anyway. What only a summary finds is a record this node
   * cannot hear about (a node gone or behind a partition) that the peer holds newer. So: summarise
   * the peer when its view has stood still for one of its heartbeat periods and still differs
   * (two heartbeats in a row with one digest), or when no digest has led to a summary for
   * DIGEST_SUMMARY_FLOOR_PERIODS heartbeat periods, which bounds how long churn can hide such a
   * record. Either way at most one summary per half period and none while one runs.
   */
  private digestDiffers (peerId: string, digest: Uint8Array): void {
    const previous = this.digestOf.get(peerId)
    if (this.digestOf.size >= 10_000 && previous == null) this.digestOf.clear()
    this.digestOf.set(peerId, Uint8Array.from(digest))
    const now = Date.now()
    const settled = previous != null && Buffer.compare(previous, digest) === 0
    const overdue = now - this.lastDigestSummary >= DIGEST_SUMMARY_FLOOR_PERIODS * 2 * this.halfPeriod()
    if (!settled && !overdue) return
    if (this.summarising.size > 0 || now - this.lastDigestSummary < this.halfPeriod()) return
    this.lastDigestSummary = now
    this.summarise(peerId)
  }

  /** Fetches a peer's summary and pulls, from that peer, every record it holds newer than ours. */
  summarise (peerId: string): void {
    if (this.stopped || this.summarising.has(peerId)) return
    this.summarising.add(peerId)
    void this.pullLimit.run(async () => {
      const signal = AbortSignal.timeout(MANIFEST_PULL_TIMEOUT_MS)
      const stream = await this.init.node.dialProtocol(await this.dialTarget(peerId), PROTOCOL_MANIFEST, { signal })
      const pb = pbStream(stream, { maxDataLength: MAX_MANIFEST_PAGE_BYTES })
      try {
        await pb.write({ kind: ManifestRequestKind.SUMMARY, generation: 0, sinceSequence: 0, peerId: '' }, ManifestRequest, { signal })
        const summary = await pb.read(ManifestSummary, { signal })
        await stream.close({ signal }).catch(() => {})
        checkNodeVersions(summary.nodes)
        this.stats.summaries++
        return summary
      } catch (err: any) {
        stream.abort(err)
        throw err
      }
    }).then((summary) => {
      this.init.onPeerSummary?.(peerId, summary.nodes)
      const self = this.init.node.peerId.toString()
      for (const n of summary.nodes) {
        if (n.peerId === self || !this.init.cluster.isBehind(n.peerId, n) || !this.plausibleGeneration(n.generation)) continue
        this.pullIfStillBehind(peerId, n.peerId, n)
      }
    }, (err: any) => {
      if (err.name === 'InvalidMessageError') this.countRejection(peerId)
      this.init.log.debug('summary failed', { peer: peerId, error: err.message })
    }).finally(() => this.summarising.delete(peerId))
  }

  /**
   * Of two peers to pull `subject`'s record from: the node itself when this node is connected to
   * it, otherwise the other one, which holds a copy. A record comes from its own node whenever that
   * node is reachable; others' copies only stand in for a node this one cannot reach (a partition,
   * a node that left; a heartbeat relayed through the mesh names a node that may be one of those).
   */
  private source (subject: string, current: string, offered: string): string {
    if (current === offered) return current
    const connected = this.init.node.getConnections(peerIdFromString(subject)).length > 0
    if (connected && (current === subject || offered === subject)) return subject
    return offered === subject ? current : offered
  }

  private halfPeriod (): number {
    return (this.init.heartbeatPeriodMs?.() ?? 2000) / 2
  }

  /** Pulls `subject`'s record from `from` after the grace period, unless this node has caught up with `seen` by then. */
  private pullIfStillBehind (from: string, subject: string, seen: { generation: number, sequence: number }): void {
    if (this.stopped) return
    const waiting = this.behind.get(subject)
    if (waiting != null) {
      if (seen.generation > waiting.generation || (seen.generation === waiting.generation && seen.sequence > waiting.sequence)) {
        waiting.generation = seen.generation
        waiting.sequence = seen.sequence
      }
      waiting.from = this.source(subject, waiting.from, from)
      return
    }
    const entry = {
      from: this.source(subject, subject, from),
      generation: seen.generation,
      sequence: seen.sequence,
      timer: setTimeout(() => {
        this.behind.delete(subject)
        if (this.init.cluster.isBehind(subject, entry)) this.pull(entry.from, subject)
      }, this.halfPeriod()).unref()
    }
    this.behind.set(subject, entry)
  }

  /**
   * Asks peer `from` for what this node lacks of `subject`'s record (by default, from's own);
   * repeated asks while one runs coalesce into one more.
   */
  pull (from: string, subject = from): void {
    const self = this.init.node.peerId.toString()
    if (this.stopped || from === self || subject === self) return
    const running = this.pulling.get(subject)
    if (running != null) {
      running.again = true
      running.from = this.source(subject, running.from, from)
      return
    }
    const state = { from, again: false }
    this.pulling.set(subject, state)
    void this.pullLimit.run(async () => {
      try {
        do {
          state.again = false
          await this.pullOnce(state.from, subject)
        } while (state.again && !this.stopped)
      } catch (err: any) {
        this.stats.pullFailures++
        if (err.name === 'InvalidMessageError') this.countRejection(state.from)
        this.init.log.debug('manifest pull failed', { peer: state.from, subject, error: err.message })
      } finally {
        this.pulling.delete(subject)
      }
    })
  }

  /**
   * One pull of `subject`'s record from `from`, merged page by page as it arrives: a whole record
   * through a RecordLoad, a delta as consecutive deltas (its pages list changes in seq order).
   */
  private async pullOnce (from: string, subject: string): Promise<void> {
    const { cluster } = this.init
    const known = cluster.node(subject)
    const request: ManifestRequest = {
      kind: ManifestRequestKind.RECORD,
      generation: known?.info.generation ?? 0,
      sinceSequence: known?.info.sequence ?? 0,
      peerId: from === subject ? '' : subject
    }
    const signal = AbortSignal.timeout(MANIFEST_PULL_TIMEOUT_MS)
    const stream = await this.init.node.dialProtocol(await this.dialTarget(from), PROTOCOL_MANIFEST, { signal })
    const pb = pbStream(stream, { maxDataLength: MAX_MANIFEST_PAGE_BYTES })
    let load: RecordLoad | undefined
    try {
      await pb.write(request, ManifestRequest, { signal })
      let first: NodeInfo | undefined
      let previous: NodeInfo | undefined
      let full = false
      let count = 0
      let applied = request.sinceSequence
      for (;;) {
        const page = await pb.read(ManifestPage, { signal })
        checkNodeInfo(page.node)
        checkEntries(page.entries, page.node.sequence)
        const info = page.node as NodeInfo
        if (first == null) {
          if (!this.plausibleGeneration(info.generation)) throw new InvalidMessageError('node.generation', 'generation from the future')
          first = info
          full = page.full
          if (full) {
            const begun = cluster.beginRecord(subject, info)
            if (begun === 'stale') {
              // This node holds a newer record: end the stream rather than drain the pages.
              stream.abort(new Error('a newer record is held'))
              return
            }
            if (begun === 'rejected') throw new InvalidMessageError('node', 'this node holds as many records as it accepts')
            load = begun
          }
        } else if (info.generation !== first.generation || page.full !== full || info.sequence < (previous as NodeInfo).sequence) {
          throw new InvalidMessageError('pages', 'inconsistent pages')
        }
        previous = info
        count += page.entries.length
        if (count > MAX_ENTRIES_PER_PULL) throw new InvalidMessageError('entries', 'record too large')
        if (load != null) {
          if (!load.add(page.entries)) throw new InvalidMessageError('entries', 'the record is larger than this node accepts')
          if (page.last) {
            load.finish(info)
            load = undefined
          }
        } else {
          // A delta page is merged up to its last change, so that an interrupted pull keeps what it got.
          let last = applied
          for (const entry of page.entries) {
            if (entry.seq <= last) throw new InvalidMessageError('entries', 'a delta must list changes in sequence order')
            last = entry.seq
          }
          const to = page.last ? info.sequence : last
          if (cluster.applyDelta(subject, { ...info, sequence: to }, applied, page.entries) === 'rejected') {
            throw new InvalidMessageError('entries', 'the record is larger than this node accepts')
          }
          applied = to
        }
        if (page.last) break
      }
      this.stats.pulls++
      await stream.close({ signal }).catch(() => {})
    } catch (err: any) {
      stream.abort(err)
      throw err
    } finally {
      load?.abort()
    }
  }

  /**
   * What to dial to reach `peerId`: the peer itself when connected or when libp2p knows an
   * address of it; otherwise the addresses its record or its last heartbeat gave (those that
   * parse), each with its peer id, so that the dial checks who answers.
   */
  private async dialTarget (peerId: string): Promise<PeerId | Multiaddr[]> {
    const id = peerIdFromString(peerId)
    const { node } = this.init
    if (node.getConnections(id).length > 0) return id
    const known = await node.peerStore.get(id).then(p => p.addresses.length > 0, () => false)
    if (known) return id
    const addrs: Multiaddr[] = []
    const recorded = this.init.cluster.node(peerId)?.info.addrs ?? []
    for (const text of recorded.length > 0 ? recorded : this.addrsOf.get(peerId) ?? []) {
      try {
        addrs.push(multiaddr(`${text}/p2p/${peerId}`))
      } catch {}
      if (addrs.length >= 8) break
    }
    return addrs.length > 0 ? addrs : id
  }

  private async serveManifest (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(MANIFEST_PULL_TIMEOUT_MS)
    const pb = pbStream(stream, { maxDataLength: 1024 })
    try {
      const request = await pb.read(ManifestRequest, { signal: AbortSignal.any([signal, AbortSignal.timeout(MANIFEST_READ_TIMEOUT_MS)]) })
      if (request.kind === ManifestRequestKind.SUMMARY) {
        await pb.write({ nodes: this.init.cluster.summary() }, ManifestSummary, { signal })
        await stream.close({ signal })
        return
      }
      const selfId = this.init.node.peerId.toString()
      // Pages are written one behind, so that the last one can say so.
      let held: ManifestPage | undefined
      const write = async (page: ManifestPage): Promise<void> => {
        if (held != null) await pb.write(held, ManifestPage, { signal })
        held = page
      }
      if (request.peerId === '' || request.peerId === selfId) {
        const self = this.init.self()
        const full = request.generation !== self.generation || request.sinceSequence > self.sequence || request.sinceSequence === 0 ||
          request.sinceSequence < (this.init.gcHorizon?.(selfId, self.generation) ?? 0)
        // Read a page at a time while the index may change: each page carries this node's
        // self-description as of its reading, so its entries never run ahead of its sequence.
        for (const entries of changePages(this.init.changes, full ? 0 : request.sinceSequence)) {
          const node = this.init.self()
          for (const group of splitEntries(entries, PAGE_BUDGET)) await write({ node, full, entries: group, last: false })
        }
        if (held == null) held = { node: this.init.self(), full, entries: [], last: true }
      } else {
        checkPeerIdText(request.peerId)
        // A delta from below the tombstone horizon would miss dropped tombstones: send the whole record.
        const since = request.sinceSequence < (this.init.gcHorizon?.(request.peerId, request.generation) ?? 0) ? 0 : request.sinceSequence
        const record = this.init.cluster.recordSince(request.peerId, request.generation, since)
        if (record == null) throw new Error(`no record of ${request.peerId}`)
        for (const group of splitEntries(record.entries, PAGE_BUDGET)) await write({ node: record.info, full: record.full, entries: group, last: false })
        if (held == null) held = { node: record.info, full: record.full, entries: [], last: true }
      }
      await pb.write({ ...held, last: true }, ManifestPage, { signal })
      await stream.close({ signal })
    } catch (err: any) {
      stream.abort(err)
    }
  }
}
