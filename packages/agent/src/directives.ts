import { randomBytes } from 'node:crypto'
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import { Directive, MAX_PUBSUB_MESSAGE_BYTES, checkDirective, directiveTopic } from '@shoal/wire'
import type { Libp2p } from '@libp2p/interface'
import type { ClusterManifest } from '@shoal/manifest'
import type { Priority } from '@shoal/transfer'
import type { BroadcastProgress, BroadcastNodeProgress } from '@shoal/client'
import type { Logger } from './util.js'

export class NotLeaderError extends Error {
  override name = 'NotLeaderError'
}

export class BroadcastError extends Error {
  override name = 'BroadcastError'
}

/** What a node was ordered to hold. */
export interface Order {
  id: string
  dataset: string
  path: string
  contentId: Uint8Array
  version: number
  priority: Priority
  deadlineMs: number
  issuer: string
  /** Every node the order names (this one included): they share the seeds' upload by fixed stripes. */
  targets?: string[]
}

export interface DirectivesInit {
  node: Libp2p<{ pubsub: GossipSub }>
  cluster: ClusterManifest
  clusterName: string
  leaders: string[]
  /** Datasets this node holds. */
  datasets: string[]
  staleAfterMs: number
  onOrder: (order: Order) => void
  onReject: (peerId: string) => void
  log: Logger
}

const MAX_REMEMBERED = 1000

/**
 * Leader-initiated orders. A leader publishes a signed directive naming the nodes that must hold
 * a file; every node checks that the signer is a configured leader before accepting (or
 * forwarding) it. The leader follows progress through ordinary announcements: no polling.
 */
export class Directives {
  private readonly topic: string
  private readonly leaders: Set<string>
  private readonly seen = new Set<string>()
  private readonly issued = new Map<string, Directive>()
  readonly received: Order[] = []

  constructor (private readonly init: DirectivesInit) {
    this.topic = directiveTopic(init.clusterName)
    this.leaders = new Set(init.leaders)
  }

  get isLeader (): boolean {
    return this.leaders.has(this.init.node.peerId.toString())
  }

  start (): void {
    const pubsub = this.init.node.services.pubsub
    pubsub.topicValidators.set(this.topic, (_peer, msg) => this.validate(msg))
    pubsub.addEventListener('message', (evt) => {
      if (evt.detail.topic === this.topic) this.onMessage(evt.detail)
    })
    pubsub.subscribe(this.topic)
  }

  private validate (msg: Message): TopicValidatorResult {
    const from = msg.type === 'signed' ? msg.from.toString() : 'unsigned'
    try {
      if (msg.type !== 'signed') throw new Error('unsigned directive')
      if (!this.leaders.has(from)) throw new Error(`directive from ${from}, which is not a leader`)
      if (msg.data.length > MAX_PUBSUB_MESSAGE_BYTES) throw new Error('directive too large')
      checkDirective(Directive.decode(msg.data))
      return TopicValidatorResult.Accept
    } catch (err: any) {
      this.init.onReject(from)
      this.init.log.warn('rejected a directive', { from, error: err.message })
      return TopicValidatorResult.Reject
    }
  }

  private onMessage (msg: Message): void {
    if (msg.type !== 'signed') return
    const d = Directive.decode(msg.data)
    this.accept(d, msg.from.toString())
  }

  private accept (d: Directive, issuer: string): void {
    if (this.seen.has(d.id)) return
    this.remember(d.id)
    if (!d.targets.includes(this.init.node.peerId.toString())) return
    const order: Order = {
      id: d.id, dataset: d.dataset, path: d.path, contentId: d.contentId, version: d.version,
      priority: d.priority as Priority, deadlineMs: d.deadlineMs, issuer, targets: d.targets
    }
    this.received.push(order)
    if (this.received.length > MAX_REMEMBERED) this.received.shift()
    this.init.log.info('directive accepted', { id: d.id, dataset: d.dataset, path: d.path, priority: d.priority, issuer })
    this.init.onOrder(order)
  }

  private remember (id: string): void {
    this.seen.add(id)
    if (this.seen.size > MAX_REMEMBERED * 10) this.seen.delete(this.seen.values().next().value as string)
  }

  /**
   * Orders a file onto the nodes that `selector` names (every other known node when empty):
   * peer ids, node names, or `role:NAME`. `force` publishes even from a non-leader (test fault
   * switch only: every node must reject it).
   */
  async issue (request: { dataset: string, path: string, priority: Priority, nodes: string[], timeoutMs: number, force?: boolean }): Promise<BroadcastProgress> {
    if (!this.isLeader && request.force !== true) {
      throw new NotLeaderError(`this node (${this.init.node.peerId.toString()}) is not a leader; only peers configured with --leader on every node may broadcast`)
    }
    const newest = this.init.cluster.newest(request.dataset, request.path)
    if (newest == null || newest.deleted) throw new BroadcastError(`${request.dataset}/${request.path} is not held by any node`)
    const self = this.init.node.peerId.toString()
    const nodes = this.init.cluster.allNodes().filter(r => r.peerId !== self)
    const targets = request.nodes.length === 0
      ? nodes.map(r => r.peerId)
      : nodes.filter(r => request.nodes.some(sel => sel === r.peerId || sel === r.info.name || sel === `role:${r.info.role}`)).map(r => r.peerId)
    if (targets.length === 0) throw new BroadcastError(`no known node matches ${request.nodes.length === 0 ? 'the cluster' : request.nodes.join(', ')}`)
    const now = Date.now()
    const directive: Directive = {
      id: randomBytes(16).toString('hex'),
      dataset: request.dataset,
      path: request.path,
      contentId: Uint8Array.from(newest.contentId),
      version: newest.version,
      priority: request.priority,
      targets,
      deadlineMs: request.timeoutMs > 0 ? now + request.timeoutMs : 0,
      issuedMs: now
    }
    await this.init.node.services.pubsub.publish(this.topic, Directive.encode(directive))
    this.remember(directive.id)
    this.issued.set(directive.id, directive)
    if (this.issued.size > MAX_REMEMBERED) this.issued.delete(this.issued.keys().next().value as string)
    return this.progress(directive.id) as BroadcastProgress
  }

  /** Per-node progress of a directive this node issued, from the cluster manifest alone. */
  progress (id: string): BroadcastProgress | undefined {
    const d = this.issued.get(id)
    if (d == null) return undefined
    const entries = this.init.cluster.entriesFor(d.dataset, d.path)
    const now = Date.now()
    const nodes: BroadcastNodeProgress[] = d.targets.map(peerId => {
      const record = this.init.cluster.node(peerId)
      const entry = entries.get(peerId)
      const same = entry != null && !entry.deleted && Buffer.compare(entry.contentId, d.contentId) === 0
      const chunks = entry == null || entry.chunkSize === 0 ? 0 : Math.ceil(entry.size / entry.chunkSize)
      const base = { peerId, name: record?.info.name ?? '' }
      if (same && entry.partial !== true) return { ...base, state: 'complete', bytes: entry.size, size: entry.size }
      let held = 0
      if (same && entry.partial === true) {
        for (let i = 0; i < chunks; i++) if ((entry.have[i >> 3] & (0x80 >> (i & 7))) !== 0) held++
      }
      const size = entries.values().next().value?.size ?? 0
      const bytes = chunks === 0 ? 0 : Math.min(entry?.size ?? 0, held * (entry?.chunkSize ?? 0))
      let reason: string | undefined
      if (record == null) reason = 'unknown to this node'
      else if (now - record.lastHeard > this.init.staleAfterMs) reason = `not heard from for ${Math.round((now - record.lastHeard) / 1000)} s`
      else if (!(record.info.datasets ?? []).includes(d.dataset)) reason = `does not hold dataset ${d.dataset}`
      else if (entry != null && !entry.deleted && !same && entry.version > d.version) reason = 'holds a newer version'
      return { ...base, state: same ? 'receiving' : 'waiting', bytes, size, reason }
    })
    return {
      id: d.id,
      dataset: d.dataset,
      path: d.path,
      version: d.version,
      priority: d.priority,
      issuedAt: d.issuedMs,
      deadline: d.deadlineMs === 0 ? null : d.deadlineMs,
      complete: nodes.every(n => n.state === 'complete'),
      nodes
    }
  }
}
