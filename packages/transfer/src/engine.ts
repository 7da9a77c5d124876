import { open, unlink, utimes, chmod, stat, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { HASH_BYTES } from '@shoal/wire'
import { chunkHashAt, contentIdOf, chunkLength, sha256, PARTIAL_SUFFIX } from '@shoal/manifest'
import { Bitfield } from './bitfield.js'
import {
  CHECKPOINT_INTERVAL_MS, CHUNK_REQUEST_TIMEOUT_MS, MAX_CHUNKS_PER_REQUEST, MAX_REQUEST_BYTES, STRIPE_BLOCK_BYTES, REQUEST_TARGET_MS, NOT_FOUND_BACKOFF_MS, RECEIVER_STALL_MS, STRIPE_DISCOVERY_MS,
  REQUESTS_IN_FLIGHT_PER_PEER, SOURCES_REFRESH_MS, STALL_TIMEOUT_MS, CHUNK_FRAME_TIMEOUT_MS, IN_FLIGHT_TARGET_MS
} from './constants.js'
import { BusyError, CorruptChunkError, LocalWriteError, NoHoldersError, NotFoundError } from './errors.js'
import { PeerBook, type PeerState } from './peers.js'
import { liveRanks, naturalOwner, pickChunks, pickFixedHelp, pickFromSeed, pickHelp, type Stripe } from './picker.js'
import { PriorityLimiter, type Priority } from './priority.js'
import { TokenBucket, sleep } from './token-bucket.js'
import type { ChunkClient, HashList } from './client.js'
import type { ServableFile } from './server.js'

/** A node that can serve chunks of the wanted content: all of them, or those in `have`. */
export interface Source {
  peerId: string
  have?: Uint8Array
}

export interface DownloadRequest {
  /** Absolute path the verified file is renamed to. */
  target: string
  contentId: Uint8Array
  size: number
  chunkSize: number
  mode: number
  mtimeMs: number
  priority: Priority
  /** The current sources (asked again during the download: receivers gain chunks). */
  sources: () => Source[]
  /**
   * The nodes a leader ordered to receive this file together with this one (its directive's
   * targets). With them the stripes are fixed from the start instead of discovered: every target
   * owns the blocks of its rank among them, announced yet or not, for as long as it is live.
   */
  receivers?: string[]
  /** Called once the hash list is verified, before the partial file is opened (e.g. to create directories). */
  prepare?: () => Promise<void>
  /** A bitfield persisted by an earlier run: those chunks of the partial file are verified again and kept. */
  resume?: Uint8Array
  /**
   * Called at most every CHECKPOINT_INTERVAL_MS, after the partial file was made durable, with the
   * chunks it now holds: the caller persists the bitfield (resume) and advertises it (swarming).
   */
  onCheckpoint?: (have: Bitfield, hashes: Uint8Array) => void
  /**
   * Called with the verified, fsynced partial file. It decides (under the caller's lock) whether
   * the target may be replaced, renames, and records the new file; or throws to refuse.
   */
  commit: (partialPath: string, hashes: Uint8Array) => Promise<void>
  signal: AbortSignal
}

export interface DownloadResult {
  bytes: number
  chunks: number
  /** Chunks found verified in the partial file of an earlier run. */
  resumedChunks: number
  /** Bytes received per peer. */
  fromPeers: Record<string, number>
  /** Chunks received twice in end game (the loser's copy is discarded). */
  duplicateChunks: number
  /**
   * Chunks kept, by how they were chosen: `stripe` (this node's share of a seed's upload while
   * others receive the file too), `rarest` (rarest first: from a receiver, or from a seed when no
   * other node receives the file), `help` (from a seed, outside this node's stripe, while it had
   * nothing else to fetch), `endgame` (raced at the end).
   */
  chunksBy: { stripe: number, rarest: number, help: number, endgame: number }
  /** Requests that ended without all their chunks, by cause (`timeout`, `busy`, `notFound`, `corrupt`, `error`, `cancelled`: every chunk arrived from elsewhere). */
  failedRequests: Record<string, number>
  /** When this node first shared the seeds with other receivers (ms after the start), with how many (fewest, most), and how often its stripe changed. */
  stripes?: { firstAtMs: number, maxReceivers: number, minReceivers: number, changes: number }
}

export interface EngineLimits {
  /** Bytes per second; 0 = unlimited. */
  downloadRate?: number
  perPeerDownloadRate?: number
}

export interface EngineInit {
  client: ChunkClient
  limits?: EngineLimits
  requestsPerPeer?: number
  /** This node's peer id: with it, receivers of the same file share the seeds' upload by stripes. */
  selfId?: string
  log?: (msg: string, fields?: Record<string, unknown>, level?: 'info' | 'warn') => void
}

/** The partial file of a download, beside its target (the scanner ignores the suffix). */
export function partialPathFor (target: string, contentId: Uint8Array): string {
  return join(dirname(target), `.${basename(target)}.${Buffer.from(contentId.subarray(0, 6)).toString('hex')}${PARTIAL_SUFFIX}`)
}

/** The target a partial file (named by partialPathFor, '/'-separated) is for; undefined for a name partialPathFor never makes. */
export function partialTargetOf (partial: string): string | undefined {
  const slash = partial.lastIndexOf('/')
  const name = partial.slice(slash + 1)
  if (!name.endsWith(PARTIAL_SUFFIX)) return undefined
  const m = /^\.(.+)\.[0-9a-f]{12}$/.exec(name.slice(0, -PARTIAL_SUFFIX.length))
  return m == null ? undefined : partial.slice(0, slash + 1) + m[1]
}

interface Active {
  path: string
  size: number
  chunkSize: number
  hashes: Uint8Array
  have: Bitfield
}

/**
 * The one transfer engine: fetches files chunk by chunk from every source at once (complete
 * holders and other receivers), rarest chunks first, from fast and unloaded peers, verifying each
 * chunk before it is written, and serves what it has received to others at once.
 */
export interface EngineStats {
  chunksVerified: number
  chunksFailed: number
  /** Bytes received per `peer|priority`. */
  bytesByPeerPriority: Map<string, number>
}

export class TransferEngine {
  readonly peers: PeerBook
  readonly stats: EngineStats = { chunksVerified: 0, chunksFailed: 0, bytesByPeerPriority: new Map() }
  readonly limiter: PriorityLimiter
  private readonly active = new Map<string, Active>()
  private readonly requestsPerPeer: number

  constructor (private readonly init: EngineInit) {
    this.peers = new PeerBook(init.limits?.perPeerDownloadRate ?? 0)
    this.limiter = new PriorityLimiter(new TokenBucket(init.limits?.downloadRate ?? 0))
    this.requestsPerPeer = init.requestsPerPeer ?? REQUESTS_IN_FLIGHT_PER_PEER
  }

  /** The partial file of a download in progress, for the chunk server (its verified chunks only). */
  partialSource (contentId: Uint8Array): ServableFile | undefined {
    const active = this.active.get(Buffer.from(contentId).toString('hex'))
    if (active == null) return undefined
    return { path: active.path, size: active.size, chunkSize: active.chunkSize, hashes: active.hashes, has: (i) => active.have.has(i) }
  }

  async download (request: DownloadRequest): Promise<DownloadResult> {
    const key = Buffer.from(request.contentId).toString('hex')
    if (this.active.has(key)) throw new Error(`a download of ${request.target} is already running`)
    const list = await this.fetchHashList(request)
    await request.prepare?.()
    const download = new Download(this, this.init.client, request, list, this.requestsPerPeer, this.stats, this.init.log, this.init.selfId)
    const partialPath = partialPathFor(request.target, request.contentId)
    const handle = await download.openPartial(partialPath)
    this.active.set(key, { path: partialPath, size: request.size, chunkSize: request.chunkSize, hashes: list.hashes, have: download.have })
    let committed = false
    try {
      const result = await download.run(handle).catch((err: unknown) => {
        // Verified chunks are kept for a later attempt when only the holders are missing or the
        // agent stops; after any other failure (disk full, refused) nothing partial stays.
        if (!(err instanceof NoHoldersError)) download.discardPartial = true
        throw err
      })
      await handle.sync()
      await handle.close()
      await chmod(partialPath, request.mode & 0o7777 || 0o644)
      await utimes(partialPath, new Date(), new Date(request.mtimeMs))
      this.active.delete(key)
      try {
        await request.commit(partialPath, list.hashes)
      } catch (err) {
        download.discardPartial = true
        throw err
      }
      committed = true
      return result
    } finally {
      this.active.delete(key)
      await handle.close().catch(() => {})
      // An aborted download keeps its partial file for resume; a failed one too, unless it was refused.
      if (!committed && !request.signal.aborted && download.discardPartial) await unlink(partialPath).catch(() => {})
    }
  }

  private async fetchHashList (request: DownloadRequest): Promise<HashList> {
    let lastError: Error | undefined
    const sources = request.sources()
    // Complete holders first: every one of them has the list.
    sources.sort((a, b) => (a.have == null ? 0 : 1) - (b.have == null ? 0 : 1))
    for (const { peerId } of sources) {
      const peer = this.peers.get(peerId)
      if (peer.breaker.state === 'open') continue
      try {
        const list = await this.init.client.hashes(peerId, request.contentId, AbortSignal.any([request.signal, AbortSignal.timeout(CHUNK_REQUEST_TIMEOUT_MS)]))
        if (list.size !== request.size || list.chunkSize !== request.chunkSize ||
            list.hashes.length !== Math.ceil(request.size / request.chunkSize) * HASH_BYTES ||
            Buffer.compare(contentIdOf(list.hashes), request.contentId) !== 0) {
          peer.breaker.trip()
          lastError = new CorruptChunkError(`hash list from ${peerId} does not match the content id`)
          continue
        }
        return list
      } catch (err: any) {
        request.signal.throwIfAborted()
        if (!(err instanceof BusyError)) peer.breaker.failure()
        lastError = err
      }
    }
    throw new NoHoldersError(`no peer could send the hash list of ${request.target}${lastError != null ? ` (last error: ${lastError.message})` : ''}`)
  }
}

interface Running {
  peerId: string
  chunks: number[]
  kind: keyof DownloadResult['chunksBy']
  controller: AbortController
  done: Promise<void>
}

/** One file being fetched: its state and its scheduling loop. */
class Download {
  readonly have: Bitfield
  private readonly count: number
  private readonly inFlight = new Map<number, number>()
  private readonly running = new Set<Running>()
  private readonly offset: number
  private readonly chunksPerRequest: number
  private readonly chunksPerBlock: number
  private readonly notFoundUntil = new Map<string, number>()
  private availability: Uint16Array
  /** How many receivers (partial holders) hold each chunk. */
  private heldByReceivers: Uint16Array
  /** This node's share of what the seeds send, while other nodes receive the same file. */
  private stripe?: Stripe
  /** With a fixed set of receivers (a directive's targets, this node included): their ranks, by peer id. */
  private readonly members?: Map<string, number>
  /** Per rank of the fixed stripes: chunks of its own stripe that member holds. */
  private ownerHeld: Uint32Array = new Uint32Array(0)
  /** Other receivers of this file: the chunks each last advertised, and when that count last grew. */
  private readonly receiverProgress = new Map<string, { count: number, grewAt: number }>()
  private sources: Array<{ peerId: string, has?: Bitfield }> = []
  private sourcesAt = 0
  private lastProgress = Date.now()
  private startedAt = Date.now()
  private lastCheckpoint = 0
  /** Chunks held at the last checkpoint: one that would add none is skipped (each is an announcement to every node). */
  private checkpointed = -1
  private lastError?: Error
  /** The periodic checkpoint in progress, if any. */
  private syncing?: Promise<void>
  /** A local failure (disk full, I/O error): the download stops, whoever the peer. */
  private fatal?: Error
  private handle?: FileHandle
  private readonly wake: { notify: () => void, wait: (ms: number) => Promise<void> }
  readonly result: DownloadResult = { bytes: 0, chunks: 0, resumedChunks: 0, fromPeers: {}, duplicateChunks: 0, chunksBy: { stripe: 0, rarest: 0, help: 0, endgame: 0 }, failedRequests: {} }
  /** Whether a failed download should delete its partial file (data that cannot be trusted). */
  discardPartial = false

  constructor (
    private readonly engine: TransferEngine,
    private readonly client: ChunkClient,
    private readonly request: DownloadRequest,
    private readonly list: HashList,
    private readonly requestsPerPeer: number,
    private readonly stats: EngineStats,
    private readonly log?: (msg: string, fields?: Record<string, unknown>, level?: 'info' | 'warn') => void,
    private readonly selfId?: string
  ) {
    this.count = Math.ceil(request.size / request.chunkSize)
    this.have = new Bitfield(this.count)
    this.availability = new Uint16Array(this.count)
    this.heldByReceivers = new Uint16Array(this.count)
    this.offset = this.count === 0 ? 0 : Math.floor(Math.random() * this.count)
    this.chunksPerRequest = Math.max(1, Math.min(MAX_CHUNKS_PER_REQUEST, Math.floor(MAX_REQUEST_BYTES / request.chunkSize)))
    this.chunksPerBlock = Math.max(1, Math.min(this.chunksPerRequest, Math.floor(STRIPE_BLOCK_BYTES / request.chunkSize)))
    if (selfId != null && request.receivers != null) {
      const members = [...new Set([...request.receivers, selfId])].sort()
      if (members.length > 1) this.members = new Map(members.map((id, rank) => [id, rank]))
    }
    let resolve: (() => void) | undefined
    this.wake = {
      notify: () => { resolve?.(); resolve = undefined },
      wait: async (ms) => {
        await Promise.race([new Promise<void>(r => { resolve = r }), sleep(ms, request.signal)])
      }
    }
  }

  /** Opens the partial file: an earlier run's chunks are verified again and kept; otherwise a new file. */
  async openPartial (path: string): Promise<FileHandle> {
    let handle: FileHandle | undefined
    if (this.request.resume != null) {
      try {
        const st = await stat(path)
        if (st.size === this.request.size) handle = await open(path, 'r+')
      } catch {}
    }
    if (handle != null && this.request.resume != null) {
      let marked: Bitfield | undefined
      try {
        marked = new Bitfield(this.count, this.request.resume)
      } catch {}
      for (let i = 0; marked != null && i < this.count; i++) {
        if (!marked.has(i)) continue
        const length = chunkLength(this.request.size, this.request.chunkSize, i)
        const data = Buffer.allocUnsafe(length)
        const { bytesRead } = await handle.read(data, 0, length, i * this.request.chunkSize)
        if (bytesRead === length && Buffer.compare(sha256(data), chunkHashAt(this.list.hashes, i)) === 0) {
          this.have.set(i)
          this.result.resumedChunks++
        }
      }
    } else {
      handle = await open(path, 'w', 0o600)
      await handle.truncate(this.request.size)
    }
    this.handle = handle
    return handle as FileHandle
  }

  private refreshSources (force = false): void {
    const now = Date.now()
    if (!force && now - this.sourcesAt < SOURCES_REFRESH_MS) return
    this.sourcesAt = now
    this.sources = []
    this.availability = new Uint16Array(this.count)
    this.heldByReceivers = new Uint16Array(this.count)
    const receivers = new Set<string>()
    /** Members (fixed stripes) seen live now: complete holders, and receivers that progress. */
    const liveMembers = new Set<string>()
    for (const source of this.request.sources()) {
      let has: Bitfield | undefined
      if (source.have != null) {
        try {
          has = new Bitfield(this.count, source.have)
        } catch {
          continue
        }
        // A receiver counts for the stripes from the moment it starts, chunks or not, for as
        // long as what it holds keeps growing.
        const progress = this.receiverProgress.get(source.peerId)
        if (progress == null || has.count > progress.count) {
          if (progress == null && this.receiverProgress.size >= 10_000) this.receiverProgress.clear()
          this.receiverProgress.set(source.peerId, { count: has.count, grewAt: now })
        }
        // A receiver that stalled, or that fails for this node (open circuit), neither owns a
        // stripe nor keeps this node from asking a seed for what it holds.
        const live = now - (this.receiverProgress.get(source.peerId)?.grewAt ?? 0) < RECEIVER_STALL_MS &&
          this.engine.peers.get(source.peerId).breaker.state !== 'open'
        if (live) receivers.add(source.peerId)
        if (live && this.isMember(source.peerId)) liveMembers.add(source.peerId)
        if (has.count === 0) continue
        if (live) for (let i = 0; i < this.count; i++) if (has.has(i)) this.heldByReceivers[i]++
      } else if (this.isMember(source.peerId)) {
        // A member that completed the file holds every block: no seed is asked for what it can pass on.
        liveMembers.add(source.peerId)
        for (let i = 0; i < this.count; i++) this.heldByReceivers[i]++
      }
      this.sources.push({ peerId: source.peerId, has })
      for (let i = 0; i < this.count; i++) if (has == null || has.has(i)) this.availability[i]++
    }
    const previous = this.stripe
    this.stripe = undefined
    if (this.members != null && this.selfId != null) {
      this.stripe = this.fixedStripe(this.members, this.selfId, liveMembers, now)
      this.ownerHeld = this.countOwnerHeld(this.members, this.stripe)
      const live = this.stripe.live?.ranks.length ?? this.members.size
      const stats = this.recordStripe(live, now)
      if (previous != null && (previous.live?.ranks.join() ?? '') !== (this.stripe.live?.ranks.join() ?? '')) {
        stats.changes++
        const dead = [...this.members.keys()].filter((_, rank) => this.stripe?.live != null && this.stripe.live.alive[rank] === 0)
        this.log?.('stripe owners changed', { target: this.request.target, live, of: this.members.size, dead, atMs: now - this.startedAt }, 'info')
      }
    } else if (this.selfId != null && receivers.size > 0) {
      receivers.add(this.selfId)
      const sorted = [...receivers].sort()
      this.stripe = { rank: sorted.indexOf(this.selfId), of: sorted.length, block: this.chunksPerBlock }
      const stats = this.recordStripe(sorted.length, now)
      if (previous != null && (previous.of !== this.stripe.of || previous.rank !== this.stripe.rank)) stats.changes++
    }
  }

  /** Whether a peer is one of the fixed set of receivers (a directive's targets). */
  private isMember (peerId: string): boolean {
    return this.members?.has(peerId) === true
  }

  /** Notes how many receivers share the seeds at this refresh; returns the download's stripe figures. */
  private recordStripe (receivers: number, now: number): NonNullable<DownloadResult['stripes']> {
    const stats = this.result.stripes ??= { firstAtMs: now - this.startedAt, maxReceivers: 0, minReceivers: receivers, changes: 0 }
    stats.maxReceivers = Math.max(stats.maxReceivers, receivers)
    stats.minReceivers = Math.min(stats.minReceivers, receivers)
    return stats
  }

  /**
   * The stripes of a fixed set of receivers. A member is live while it is a complete holder, or a
   * receiver whose chunks keep growing (and whose circuit is closed); one not seen yet is given
   * RECEIVER_STALL_MS from this download's start to announce itself (it may be queued behind
   * other downloads); one seen before and no longer offered (silent, or its download failed) is
   * not. The blocks of members not live go to the live ones in turn (`stripeOwner`).
   */
  private fixedStripe (members: Map<string, number>, selfId: string, liveMembers: Set<string>, now: number): Stripe {
    const alive: boolean[] = []
    for (const [peerId] of members) {
      alive.push(peerId === selfId || liveMembers.has(peerId) ||
        (!this.receiverProgress.has(peerId) && now - this.startedAt < RECEIVER_STALL_MS && this.engine.peers.get(peerId).breaker.state !== 'open'))
    }
    const stripe: Stripe = { rank: members.get(selfId) as number, of: members.size, block: this.chunksPerBlock }
    if (alive.some(a => !a)) stripe.live = liveRanks(alive)
    return stripe
  }

  /** How far each member got in its own stripe: chunks of its natural blocks it holds (all, once complete). */
  private countOwnerHeld (members: Map<string, number>, stripe: Stripe): Uint32Array {
    const held = new Uint32Array(members.size)
    for (const source of this.sources) {
      const rank = members.get(source.peerId)
      if (rank == null) continue
      if (source.has == null) {
        held[rank] = this.count
        continue
      }
      for (let i = 0; i < this.count; i++) if (source.has.has(i) && naturalOwner(i, stripe) === rank) held[rank]++
    }
    return held
  }

  private usable (peer: PeerState, now: number): boolean {
    if (peer.busyUntil > now || (this.notFoundUntil.get(peer.peerId) ?? 0) > now) return false
    return peer.breaker.state !== 'open'
  }

  async run (handle: FileHandle): Promise<DownloadResult> {
    this.lastProgress = Date.now()
    try {
      return await this.loop(handle)
    } finally {
      for (const r of this.running) r.controller.abort(new Error('download ended'))
      // The caller closes the file next: no sync may still be using it.
      await this.syncing
    }
  }

  private async loop (handle: FileHandle): Promise<DownloadResult> {
    const { signal } = this.request
    // Announce at once that this node receives the file: other receivers take it into their
    // stripes. A file of one block has no stripes to share: its receivers announce it only once
    // they hold it (or at the periodic checkpoints of a slow transfer), which spares every node
    // two announcements per small file received.
    this.startedAt = Date.now()
    const striped = this.request.size > STRIPE_BLOCK_BYTES
    if (striped) await this.checkpoint(handle, true)
    else {
      // The first periodic checkpoint of a file of one block comes an interval after the start,
      // and only once a chunk is held: one of no chunks (a slow first chunk) has nothing to serve
      // and was one more announcement to every node. At 32 agents on two cores, where a small file
      // reached all 31 receivers in 4-12 s, each announced about 2.7 changes per file, not one.
      this.lastCheckpoint = this.startedAt
      this.checkpointed = 0
    }
    while (!this.have.complete) {
      signal.throwIfAborted()
      if (this.fatal != null) throw this.fatal
      this.refreshSources()
      this.schedule()
      if (Date.now() - this.lastProgress > STALL_TIMEOUT_MS) {
        throw new NoHoldersError(`no progress on ${this.request.target} for ${STALL_TIMEOUT_MS / 1000} s${this.lastError != null ? ` (last error: ${this.lastError.message})` : ''}`)
      }
      if (this.running.size === 0 && this.sources.length === 0 && Date.now() - this.lastProgress > 5_000) {
        throw new NoHoldersError(`no peer holds ${this.request.target} any more${this.lastError != null ? ` (last error: ${this.lastError.message})` : ''}`)
      }
      await this.wake.wait(this.running.size === 0 ? 200 : SOURCES_REFRESH_MS)
      // Once complete, the commit (or the final checkpoint of a striped file) reports it.
      if (!this.have.complete) void this.checkpoint(handle, false)
    }
    for (const r of this.running) r.controller.abort(new Error('download complete'))
    await Promise.allSettled([...this.running].map(async r => await r.done))
    if (this.fatal != null) throw this.fatal
    // A file of one block is reported once, by its commit, which follows at once: a last
    // checkpoint here (which the interval let through, as none came before) was one more change
    // of the index and one more announcement to every node per small file received.
    if (striped) await this.checkpoint(handle, true)
    return this.result
  }

  /**
   * Makes the chunks held so far durable, then reports them (persisted for resume, advertised to
   * peers). What is reported is what was held when the sync began. A forced checkpoint (start,
   * end) is awaited; a periodic one runs beside the scheduling loop, one at a time: a sync can
   * take long while the disk writes back other files, and the loop must go on asking for
   * chunks meanwhile.
   */
  private async checkpoint (handle: FileHandle, force: boolean): Promise<void> {
    if (this.request.onCheckpoint == null) return
    if (force) await this.syncing
    else if (this.syncing != null) return
    const now = Date.now()
    if (!force && (now - this.lastCheckpoint < CHECKPOINT_INTERVAL_MS || this.have.count === this.checkpointed)) return
    this.lastCheckpoint = now
    this.checkpointed = this.have.count
    const held = new Bitfield(this.count, this.have.bytes)
    const sync = handle.datasync().then(() => {
      if (!this.request.signal.aborted) this.request.onCheckpoint?.(held, this.list.hashes)
    }, (err: any) => {
      this.fatal ??= new LocalWriteError(`cannot sync ${this.request.target}: ${err.code ?? err.message}`)
      this.wake.notify()
    }).finally(() => { this.syncing = undefined })
    if (force) {
      await sync
      if (this.fatal != null) throw this.fatal
    } else {
      this.syncing = sync
    }
  }

  /** Starts requests on every usable source until each has its share in flight. */
  private schedule (): void {
    const now = Date.now()
    const candidates = this.sources
      .map(s => ({ ...s, peer: this.engine.peers.get(s.peerId) }))
      .filter(s => this.usable(s.peer, now))
    // Overloaded peers are spared: each is asked (one request at a time) only for chunks that
    // no other usable peer holds, so a seed that alone has what the swarm lacks is still asked.
    const unloaded = candidates.filter(s => s.peer.load !== 'overloaded')
    const elsewhere = (i: number): boolean => unloaded.some(s => s.has == null || s.has.has(i))
    // Unloaded peers first, fastest first (unknown peers, throughput 0, get tried too).
    const pool = candidates.sort((a, b) => Number(a.peer.load === 'overloaded') - Number(b.peer.load === 'overloaded') || b.peer.throughput - a.peer.throughput)
    const remaining = this.count - this.have.count
    // End game: every missing chunk is requested and few are left (at most one peer's pipeline:
    // with deep pipelines to many peers "all requested" comes early, and racing a fifth of the
    // file doubles what the sources send).
    const endgame = remaining > 0 && remaining <= this.requestsPerPeer * this.chunksPerBlock &&
      [...this.inFlight.values()].filter(n => n > 0).length >= remaining
    const discovering = this.stripe == null && now - this.startedAt < STRIPE_DISCOVERY_MS
    // While receivers share the seeds, requests are one block: what a receiver has in flight is
    // invisible to the others, so a shorter pipeline keeps them from asking for the same chunks.
    const perRequest = this.stripe != null || discovering ? this.chunksPerBlock : this.chunksPerRequest
    let idle = this.running.size === 0
    // With fixed stripes, a receiver whose own stripe is all held or requested helps at once, one
    // request at a time, from the far end of the file: owners walk their stripes from the start
    // at different paces, and the seeds' upload would otherwise wait at the end for the slowest.
    // With discovered stripes it helps only when it has nothing else to do (receivers may not
    // agree yet on who owns what).
    let seedWork = [...this.running].some(r => r.kind === 'stripe' || r.kind === 'help')
    for (const source of pool) {
      const overloaded = source.peer.load === 'overloaded'
      // A request asks for about a second of the peer's measured throughput. A seed is asked for
      // at least a block (the unit of the stripes). Another receiver is asked for as little as one
      // chunk: its upload is shared by every other receiver, and a block asked of it takes seconds
      // at a few hundred KB/s. At N = 8, 25 Mbit/s the receivers were 6-12 MiB short when the
      // leader had sent its last byte either way, but they caught up in 5.1-5.7 s (four runs)
      // instead of 7.3 s (one run with blocks), and the broadcast took 96.4-96.9 s instead of 99.3.
      const forPeer = Math.max(source.has != null ? 1 : this.chunksPerBlock, Math.min(perRequest, Math.floor(source.peer.throughput * REQUEST_TARGET_MS / 1000 / this.request.chunkSize)))
      const byRate = source.peer.throughput === 0 ? 1 : Math.ceil(source.peer.throughput * IN_FLIGHT_TARGET_MS / 1000 / (forPeer * this.request.chunkSize))
      const limit = source.peer.load !== 'ok' || (discovering && source.has == null) ? 1 : Math.max(1, Math.min(this.requestsPerPeer, byRate))
      let mine = 0
      for (const r of this.running) if (r.peerId === source.peerId) mine++
      while (mine < limit) {
        // While other nodes receive the file too, a seed is asked only for this node's stripe
        // (and in end game): anything else it sent would be a chunk another receiver also gets.
        // A member of fixed stripes that completed the file is not such a seed: its upload is
        // there to pass on what it received, and it is asked for anything, rarest first.
        const striped = source.has == null && this.stripe != null && !endgame && !this.isMember(source.peerId)
        let chunks = striped
          ? pickFromSeed({ count: this.count, have: this.have, inFlight: this.inFlight, heldByReceivers: this.heldByReceivers, stripe: this.stripe as Stripe, max: forPeer })
          : pickChunks({
            count: this.count,
            have: this.have,
            inFlight: this.inFlight,
            peerHas: source.has,
            availability: this.availability,
            offset: this.offset,
            max: endgame ? 1 : forPeer,
            endgame
          }).filter(i => ![...this.running].some(r => r.peerId === source.peerId && r.chunks.includes(i)))
        if (overloaded) chunks = chunks.filter(i => !elsewhere(i))
        // A seed's upload is what every receiver shares: in end game it races only chunks that no
        // other receiver holds (those are raced on the receivers that hold them).
        if (endgame && source.has == null && this.stripe != null && !this.isMember(source.peerId)) chunks = chunks.filter(i => this.heldByReceivers[i] === 0)
        let kind: Running['kind'] = endgame ? 'endgame' : striped ? 'stripe' : 'rarest'
        if (chunks.length === 0 && striped && (this.members != null ? !seedWork : idle)) {
          const base = { count: this.count, have: this.have, inFlight: this.inFlight, heldByReceivers: this.heldByReceivers, max: forPeer }
          chunks = this.members != null
            ? pickFixedHelp({ ...base, stripe: this.stripe as Stripe, ownerHeld: this.ownerHeld, window: (this.requestsPerPeer + 1) * this.chunksPerBlock })
            : pickHelp(base)
          // Nothing another owner would not fetch soon: help as before once this node is idle.
          if (chunks.length === 0 && this.members != null && idle && this.running.size === 0) chunks = pickHelp(base)
          kind = 'help'
        }
        if (chunks.length === 0) break
        if (!source.peer.breaker.allow()) break
        this.start(source.peer, chunks, kind)
        idle = false
        if (kind === 'stripe' || kind === 'help') seedWork = true
        mine++
      }
    }
  }

  private start (peer: PeerState, chunks: number[], kind: Running['kind']): void {
    const controller = new AbortController()
    for (const i of chunks) this.inFlight.set(i, (this.inFlight.get(i) ?? 0) + 1)
    const running: Running = { peerId: peer.peerId, chunks, kind, controller, done: Promise.resolve() }
    running.done = this.fetch(peer, running).finally(() => {
      for (const i of chunks) {
        const n = (this.inFlight.get(i) ?? 1) - 1
        if (n <= 0) this.inFlight.delete(i)
        else this.inFlight.set(i, n)
      }
      this.running.delete(running)
      this.wake.notify()
    })
    this.running.add(running)
  }

  private async fetch (peer: PeerState, running: Running): Promise<void> {
    const { request } = this
    // A deadline for the whole request, and one for each frame: a peer that stops sending is left
    // long before a large request on a slow, shared link would reach its deadline.
    const silence = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const awaitFrame = (): void => {
      clearTimeout(timer)
      timer = setTimeout(() => silence.abort(new DOMException(`no chunk from ${peer.peerId} for ${CHUNK_FRAME_TIMEOUT_MS / 1000} s`, 'TimeoutError')), CHUNK_FRAME_TIMEOUT_MS)
    }
    const signal = AbortSignal.any([request.signal, running.controller.signal, silence.signal, AbortSignal.timeout(CHUNK_REQUEST_TIMEOUT_MS)])
    const bytes = running.chunks.reduce((sum, i) => sum + chunkLength(request.size, request.chunkSize, i), 0)
    peer.inFlight++
    try {
      await this.engine.limiter.take(bytes, request.priority, signal)
      await peer.bucket.take(bytes, signal)
      const started = Date.now()
      let received = 0
      awaitFrame()
      for await (const frame of this.client.chunks(peer.peerId, request.contentId, running.chunks, signal)) {
        awaitFrame()
        const expected = chunkLength(request.size, request.chunkSize, frame.index)
        if (frame.data.length !== expected || Buffer.compare(sha256(frame.data), chunkHashAt(this.list.hashes, frame.index)) !== 0) {
          this.stats.chunksFailed++
          throw new CorruptChunkError(`chunk ${frame.index} from ${peer.peerId} does not match its hash`)
        }
        this.stats.chunksVerified++
        received += frame.data.length
        const statKey = `${peer.peerId}|${request.priority}`
        if (this.stats.bytesByPeerPriority.has(statKey) || this.stats.bytesByPeerPriority.size < 10_000) {
          this.stats.bytesByPeerPriority.set(statKey, (this.stats.bytesByPeerPriority.get(statKey) ?? 0) + frame.data.length)
        }
        if (this.have.has(frame.index)) {
          this.result.duplicateChunks++
        } else {
          try {
            await (this.handle as FileHandle).write(frame.data, 0, frame.data.length, frame.index * request.chunkSize)
          } catch (err: any) {
            this.fatal ??= new LocalWriteError(`cannot write ${this.request.target}: ${err.code ?? err.message}`)
            this.wake.notify()
            return
          }
          this.have.set(frame.index)
          this.result.chunks++
          this.result.chunksBy[running.kind]++
          this.result.bytes += frame.data.length
          this.result.fromPeers[peer.peerId] = (this.result.fromPeers[peer.peerId] ?? 0) + frame.data.length
          peer.bytesReceived += frame.data.length
          this.lastProgress = Date.now()
          this.cancelRedundant()
        }
      }
      peer.recordThroughput(received, Date.now() - started)
      peer.breaker.success()
    } catch (err: any) {
      if (request.signal.aborted) return
      if (running.controller.signal.aborted) {
        if (!this.have.complete) this.countFailure('cancelled')
        return
      }
      this.lastError = err
      this.countFailure(err instanceof BusyError ? 'busy' : err instanceof NotFoundError ? 'notFound' : err instanceof CorruptChunkError ? 'corrupt' : err?.name === 'TimeoutError' ? 'timeout' : `error:${String(err?.code ?? err?.name ?? 'unknown')}`)
      if (err instanceof BusyError) {
        peer.busyUntil = Date.now() + err.retryAfterMs
        peer.breaker.success()
      } else if (err instanceof NotFoundError) {
        this.notFoundUntil.set(peer.peerId, Date.now() + NOT_FOUND_BACKOFF_MS)
        peer.breaker.success()
      } else if (err instanceof CorruptChunkError) {
        peer.chunksFailed++
        peer.breaker.trip()
        this.log?.('corrupt chunk: peer circuit opened', { peer: peer.peerId, error: err.message })
      } else {
        peer.breaker.failure()
      }
    } finally {
      clearTimeout(timer)
      peer.inFlight--
    }
  }

  private countFailure (cause: string): void {
    this.result.failedRequests[cause] = (this.result.failedRequests[cause] ?? 0) + 1
  }

  /** End game: a request whose every chunk arrived from elsewhere is cancelled. */
  private cancelRedundant (): void {
    for (const r of this.running) {
      if (r.chunks.every(i => this.have.has(i))) r.controller.abort(new Error('chunks arrived from another peer'))
    }
  }
}
