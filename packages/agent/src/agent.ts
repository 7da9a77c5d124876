import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { getHeapSpaceStatistics } from 'node:v8'
import { MemoryCompactor, TRIM_CHECK_MS } from './memory.js'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { ClusterManifest, DEFAULT_MANIFEST_LIMITS, DatasetUnavailableError, DirectoryWatcher, HashPool, LocalIndex, hashFile, hashingStats, scanDataset, type FileHashes, type ScanOptions, type ScanResult } from '@shoal/manifest'
import { ChunkClient, ChunkServer, TransferEngine, type LoadLevel } from '@shoal/transfer'
import { PROTOCOL_CHUNK, LoadLevel as WireLoad, announceTopic, checkPeerIdText, directiveTopic, heartbeatTopic } from '@shoal/wire'
import { statfs } from 'node:fs/promises'
import { LoadMonitor } from './load.js'
import { AgentMetrics } from './metrics.js'
import { ApiError, ApiServer } from './api.js'
import { checkDatasets, type AgentConfig } from './config.js'
import { ANNOUNCE_BATCH_MS, BLOCK_ABUSIVE_MS, RECEIVER_SILENT_HEARTBEATS, CLUSTER_NAME, MAX_DIALS_PER_ROUND, LOAD_INTERVAL_MS, DISK_CHECK_INTERVAL_MS, REDIAL_INTERVAL_MS, INLINE_HASH_BYTES, RESCAN_GAP_PER_SCAN_TIME, RESCAN_MAX_GAP_MS, RESCAN_MAX_DEFER_MS, RESCAN_QUIET_MS, STOP_TIMEOUT_MS, WATCH_DEBOUNCE_MS, MAX_DIRTY_DIRECTORIES } from './constants.js'
import { StartupError } from './errors.js'
import { EventHub } from './events.js'
import { Gossip, heartbeatPeriodMs } from './gossip.js'
import { BroadcastError, Directives, NotLeaderError } from './directives.js'
import { adoptJoinKey, loadOrCreateClusterKey, loadOrCreateIdentity, readClusterKey } from './keys.js'
import { acquireLock, claimSocketPath } from './lock.js'
import { createNode, type ShoalNode } from './node.js'
import { changePages, type ChangeReader } from './records.js'
import { Sync } from './sync.js'
import { HoldPolicies } from './policy.js'
import { TombstoneCollector, tombstoneOptions } from './tombstones.js'
import { SerialQueue, silentLogger, type Logger } from './util.js'
import type { StatusResponse, WhereResponse, TransfersResponse, FilesResponse, DatasetsResponse } from '@shoal/client'
import type { NodeInfo } from '@shoal/wire'

/** The peers this node knew, kept across restarts. */
const PEERS_FILE = 'peers.json'
const MAX_REMEMBERED_PEERS = 1000

function isValidPeerIdText (text: string): boolean {
  try {
    checkPeerIdText(text)
    peerIdFromString(text)
    return true
  } catch {
    return false
  }
}

const WIRE_LOAD: Record<LoadLevel, WireLoad> = { ok: WireLoad.OK, busy: WireLoad.BUSY, overloaded: WireLoad.OVERLOADED }
const LOAD_ORDER: LoadLevel[] = ['ok', 'busy', 'overloaded']
const LOAD_NAMES: Record<string, LoadLevel> = { [WireLoad.OK]: 'ok', [WireLoad.BUSY]: 'busy', [WireLoad.OVERLOADED]: 'overloaded' }

export interface AgentStartInfo {
  peerId: string
  addresses: string[]
  /** Set when this start created the cluster key (first start without --cluster-key). */
  createdClusterKey?: string
}

/** One shoal agent: the node, its datasets, gossip, transfers and the local API. */
export class Agent {
  private node?: ShoalNode
  private index?: LocalIndex
  private heartbeatTimer?: NodeJS.Timeout
  /** Pages of this node's changes in wire form (set once the index is open). */
  private changes: ChangeReader = () => []
  private releaseLock?: () => Promise<void>
  private api?: ApiServer
  private gossip?: Gossip
  private directives?: Directives
  private sync?: Sync
  private tombstones?: TombstoneCollector
  private readonly cluster = new ClusterManifest()
  private engine?: TransferEngine
  private server?: ChunkServer
  private loadMonitor: LoadMonitor
  private diskLow = false
  private readonly rememberedPeers = new Map<string, string[]>()
  private rememberedText = ''
  private freeDisk: number | null = null
  private diskCheckedAt = 0
  private readonly indexLock = new SerialQueue()
  private readonly timers: NodeJS.Timeout[] = []
  private readonly watchers = new Map<string, DirectoryWatcher>()
  private readonly compactor = new MemoryCompactor((message, fields) => this.log.info(message, fields))
  private generation = 0
  private scanQueued = false
  private scanTimer?: NodeJS.Timeout
  /** The queued scan covers every dataset whole (else only the directories in `dirtyDirs`). */
  private fullScanWanted = false
  /** Per dataset, directories whose watch reported a change since the scan that last covered them. */
  private readonly dirtyDirs = new Map<string, Set<string>>()
  private scopedScans = 0
  /** A periodic rescan waits for a quiet API (and when it fell due): later ticks leave it be. */
  private periodicRescanWaiting = false
  private periodicRescanDue = 0
  private rescanDeferrals = 0
  /** The last scan of every dataset whole: when it ended (performance.now()) and how long it took. */
  private lastFullScan = { endedAt: -Infinity, ms: 0, endedAtEpochMs: 0 }
  private inlineHashing = false
  private readonly announceQueue = new SerialQueue()
  private announceTimer?: NodeJS.Timeout
  private stopping = false
  private scans = 0
  readonly events = new EventHub()

  private readonly metrics?: AgentMetrics
  /** Hashing runs in worker threads, one per core. */
  private hashPool?: HashPool

  constructor (readonly config: AgentConfig, private readonly log: Logger = silentLogger) {
    this.loadMonitor = new LoadMonitor(config.load)
    if (config.metrics != null) this.metrics = new AgentMetrics()
  }

  /** When a known peer that failed to answer is dialled next. */
  private readonly dialBackoff = new Map<string, { next: number, delay: number }>()
  /** Peers refused until a time (a flood of invalid messages). */
  private readonly blockedUntil = new Map<string, number>()

  private async block (peerId: string): Promise<void> {
    if (this.blockedUntil.size > 10_000) this.blockedUntil.clear()
    this.blockedUntil.set(peerId, Date.now() + BLOCK_ABUSIVE_MS)
    this.log.warn('disconnecting a peer that sends too many invalid messages', { peer: peerId, forMs: BLOCK_ABUSIVE_MS })
    await this.node?.hangUp(peerIdFromString(peerId)).catch(() => {})
  }

  /** Test fault switch (SHOAL_FAULTS=1): force this node's load level, or clear it. */
  forceLoad (level: LoadLevel | undefined): void {
    this.loadMonitor.force(level)
    void this.measureLoad()
  }

  private async measureLoad (): Promise<void> {
    if (this.stopping) return
    // Free disk changes slowly (a download checks it again before it starts): every few load
    // measurements, not each (a statfs per volume on the thread pool four times a second was
    // 3 % of an idle agent's CPU in a 32-node cluster).
    const now = Date.now()
    if (now - this.diskCheckedAt >= DISK_CHECK_INTERVAL_MS) {
      this.diskCheckedAt = now
      try {
        // The fullest of the volumes this agent writes to decides.
        const free = await Promise.all([this.config.stateDir, ...this.config.datasets.map(d => d.path)].map(async dir => {
          const fs = await statfs(dir)
          return Number(fs.bavail) * Number(fs.bsize)
        }))
        this.freeDisk = Math.min(...free)
        this.diskLow = this.freeDisk < this.config.minFreeDiskBytes
      } catch {}
    }
    const uploads = (this.server?.stats.uploadsActive ?? 0) + (this.server?.stats.queued ?? 0)
    const before = this.loadMonitor.level
    if (this.loadMonitor.update({ uploads, diskLow: this.diskLow })) {
      const level = this.loadMonitor.level
      this.log.info('load level changed', { load: level })
      this.events.emit({ type: 'load.changed', time: Date.now(), level })
      // A rise goes out at once, so that peers spare this node. A fall goes out at once only if no
      // heartbeat left in the last half period, otherwise with the next one: on a saturated machine
      // levels flap, and every extra heartbeat reaches every node.
      const rose = LOAD_ORDER.indexOf(level) > LOAD_ORDER.indexOf(before)
      if (rose || Date.now() - (this.gossip?.lastHeartbeatAt ?? 0) >= this.heartbeatPeriodMs() / 2) void this.gossip?.heartbeat()
    }
  }

  get peerId (): string {
    return this.node?.peerId.toString() ?? ''
  }

  async start (): Promise<AgentStartInfo> {
    const { config } = this
    for (const d of config.datasets) if (d.create === true) await mkdir(d.path, { recursive: true })
    checkDatasets(config)
    await mkdir(config.stateDir, { recursive: true, mode: 0o700 })
    this.releaseLock = await acquireLock(join(config.stateDir, 'agent.lock'), config.stateDir)
    try {
      return await this.startLocked()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  private async startLocked (): Promise<AgentStartInfo> {
    const { config } = this
    await claimSocketPath(config.socketPath)
    const privateKey = await loadOrCreateIdentity(join(config.stateDir, 'peer.key'))
    let clusterKey: Uint8Array
    let createdClusterKey: string | undefined
    if (config.clusterKeyFile != null) {
      clusterKey = await readClusterKey(config.clusterKeyFile)
    } else if (config.joinKeyHex != null) {
      clusterKey = await adoptJoinKey(join(config.stateDir, 'cluster.key'), config.joinKeyHex)
    } else {
      const file = join(config.stateDir, 'cluster.key')
      const loaded = await loadOrCreateClusterKey(file)
      clusterKey = loaded.key
      if (loaded.created) createdClusterKey = file
    }
    this.index = new LocalIndex(join(config.stateDir, 'index.db'))
    this.hashPool = new HashPool()
    // Generations only grow, even if the clock steps back.
    this.generation = Math.max(Date.now(), (this.index.getMeta('generation') ?? 0) + 1)
    this.index.setMeta('generation', this.generation)

    try {
      this.node = await createNode({
        privateKey,
        clusterKey,
        listen: config.listen,
        allow: config.allow,
        metrics: this.metrics?.registry,
        topics: [announceTopic(CLUSTER_NAME), heartbeatTopic(CLUSTER_NAME), directiveTopic(CLUSTER_NAME)],
        blocked: (peerId) => (this.blockedUntil.get(peerId) ?? 0) > Date.now()
      })
    } catch (err: any) {
      throw new StartupError(`cannot listen on ${config.listen.join(', ')}: ${err.message}`)
    }
    const selfId = this.node.peerId.toString()
    const index = this.index
    this.cluster.onChange((peerId, changed) => { this.compactor.note(changed.length) })
    this.cluster.onChange((peerId, changed) => {
      if (this.events.subscribers === 0) return
      const time = Date.now()
      for (const e of changed) {
        const type = e.deleted ? 'file.deleted' : e.version === 1 ? 'file.added' : 'file.changed'
        this.events.emit({ type, time, peerId, dataset: e.dataset, path: e.path, version: e.version, size: e.size })
      }
    })
    this.node.addEventListener('peer:connect', (evt) => this.events.emit({ type: 'peer.connected', time: Date.now(), peerId: evt.detail.toString() }))
    this.node.addEventListener('peer:disconnect', (evt) => this.events.emit({ type: 'peer.disconnected', time: Date.now(), peerId: evt.detail.toString() }))
    this.changes = (after, limit) => index.changes(after, limit)
    // This node's own record, merged a page at a time (it may hold millions of files).
    const own = this.cluster.beginRecord(selfId, this.selfInfo())
    if (typeof own === 'string') throw new Error(`cannot hold this node's own record (${own})`)
    for (const page of changePages(this.changes, 0)) {
      if (!own.add(page)) throw new StartupError(`the datasets hold more than ${DEFAULT_MANIFEST_LIMITS.maxEntriesPerNode} files and tombstones, more than one node's record may hold: spread them over several nodes`)
    }
    own.finish(this.selfInfo())

    const client = new ChunkClient(async (peerId, protocol, { signal }) =>
      await (this.node as ShoalNode).dialProtocol(peerIdFromString(peerId), protocol, { signal }), PROTOCOL_CHUNK)
    const engine = new TransferEngine({
      client,
      selfId,
      limits: { downloadRate: config.limits.downloadRate, perPeerDownloadRate: config.limits.perPeerDownloadRate },
      log: (msg, fields, level) => level === 'info' ? this.log.info(msg, fields) : this.log.warn(msg, fields)
    })
    this.engine = engine

    const server = new ChunkServer({
      lookup: (contentId) => {
        const file = index.findByContentId(contentId)
        const dataset = file == null ? undefined : config.datasets.find(d => d.name === file.dataset)
        if (file == null || dataset == null) return engine.partialSource(contentId)
        return { path: join(dataset.path, ...file.path.split('/')), size: file.size, chunkSize: file.chunkSize, hashes: file.hashes, mtimeMs: file.mtimeMs }
      }
    }, {
      uploadRate: config.limits.uploadRate,
      perPeerUploadRate: config.limits.perPeerUploadRate,
      loadLevel: () => this.loadMonitor.level,
      corruptChunks: process.env.SHOAL_FAULT_CORRUPT_CHUNKS === '1',
      log: (m) => this.log.debug(m)
    })
    this.server = server
    await this.node.handle(PROTOCOL_CHUNK, server.handle, { maxInboundStreams: 256, maxOutboundStreams: 256 })

    this.gossip = new Gossip({
      node: this.node,
      cluster: this.cluster,
      clusterName: CLUSTER_NAME,
      self: () => this.selfInfo(),
      changes: this.changes,
      heartbeatPeriodMs: () => this.heartbeatPeriodMs(),
      load: () => WIRE_LOAD[this.loadMonitor.level],
      onPeerLoad: (peerId, level) => { engine.peers.setLoad(peerId, LOAD_NAMES[level] ?? 'ok') },
      onGossipDelay: (ms) => { this.metrics?.gossipDelay.observe(ms / 1000) },
      onAbusive: (peerId) => { void this.block(peerId) },
      onPeerSummary: (peerId, nodes) => { this.tombstones?.views.fromSummary(peerId, nodes) },
      onPeerView: (peerId, digest) => { this.tombstones?.views.fromMatchingDigest(peerId, digest, () => this.cluster.summary()) },
      gcHorizon: (peerId, generation) => this.tombstones?.horizon(peerId, generation) ?? 0,
      log: this.log
    })
    await this.gossip.start()

    this.directives = new Directives({
      node: this.node,
      cluster: this.cluster,
      clusterName: CLUSTER_NAME,
      leaders: config.leaders,
      datasets: config.datasets.map(d => d.name),
      staleAfterMs: config.staleAfterMs,
      onOrder: (order) => this.sync?.order(order),
      onReject: (peerId) => this.gossip?.countRejection(peerId),
      log: this.log
    })
    this.directives.start()

    this.sync = new Sync({
      selfId,
      datasets: config.datasets,
      index,
      cluster: this.cluster,
      engine,
      minFreeDiskBytes: config.minFreeDiskBytes,
      // Five heartbeat periods of the cluster as it is now. It was a fixed five configured
      // intervals (10 s), which from 20 nodes on (heartbeats every 5 s, 7.5 s from 30 nodes with
      // the default stale-after, more when it is raised) is two periods or less: a receiver that
      // announced nothing between two heartbeats could be dropped as a source.
      receiverSilentMs: () => RECEIVER_SILENT_HEARTBEATS * this.heartbeatPeriodMs(),
      indexLock: this.indexLock,
      policies: new HoldPolicies(new Map(config.datasets.map(d => [d.name, d])), { peerId: selfId, name: config.name, role: config.role }, this.cluster, config.staleAfterMs),
      onLocalChange: () => this.localChanged(),
      onTransfer: (event) => this.events.emit(event),
      log: this.log
    })
    this.sync.start()

    // Tombstones go once every known node (those held, and those remembered from before a restart) has seen them.
    this.tombstones = new TombstoneCollector({
      cluster: this.cluster,
      selfId,
      knownNodes: () => [...this.rememberedPeers.keys(), ...this.cluster.allNodes().map(r => r.peerId)],
      connected: () => new Set((this.node as ShoalNode).getConnections().map(c => c.remotePeer.toString())),
      refresh: (peerId) => { this.gossip?.summarise(peerId) },
      forgetOwn: async (upTo) => {
        await this.indexLock.run(async () => {
          // In bounded batches, so a large collection never holds the event loop for long.
          while (!this.stopping && index.deleteTombstones(upTo, 5000) === 5000) await new Promise(resolve => setImmediate(resolve))
        })
      },
      saveVersionFloor: (version) => { if (!this.stopping) index.setMeta('tombstoneVersionFloor', version) },
      onDropped: (dataset, path) => { this.sync?.consider(dataset, path) },
      log: this.log
    }, tombstoneOptions(config.tombstoneGcIntervalMs), index.getMeta('tombstoneVersionFloor') ?? 0)

    // The API answers during the first scan (which may hash terabytes); status.scan.scans says
    // when it is done.
    const firstScan = this.scanAll()
    this.watchDatasets()
    this.every(config.rescanIntervalMs, () => { this.periodicRescan(performance.now()) })
    this.scheduleHeartbeat()
    await this.loadRememberedPeers()
    // After the remembered peers are loaded: they count as known nodes.
    this.every(config.tombstoneGcIntervalMs, () => {
      this.tombstones?.pass().catch((err: any) => { this.log.warn('tombstone collection failed', { error: err.message }) })
    })
    this.every(REDIAL_INTERVAL_MS, () => { void this.redial() })
    this.every(LOAD_INTERVAL_MS, () => { void this.measureLoad() })
    void this.redial()

    this.api = new ApiServer({
      events: this.events,
      status: () => this.status(),
      where: (dataset, path) => this.where(dataset, path),
      transfers: () => this.transfers(),
      forceLoad: process.env.SHOAL_FAULTS === '1' ? (level) => { this.forceLoad(level) } : undefined,
      broadcast: async (request) => {
        if (!config.datasets.some(d => d.name === request.dataset)) throw new ApiError(400, 'invalid_argument', `this node holds no dataset ${request.dataset}`)
        try {
          return await (this.directives as Directives).issue({ ...request, force: request.force === true && process.env.SHOAL_FAULTS === '1' })
        } catch (err) {
          if (err instanceof NotLeaderError) throw new ApiError(403, 'not_leader', err.message)
          if (err instanceof BroadcastError) throw new ApiError(409, 'cannot_broadcast', err.message)
          throw err
        }
      },
      broadcastProgress: (id) => this.directives?.progress(id),
      peers: () => ({ peers: this.status().peers }),
      datasets: () => this.datasetsReport(),
      rescan: async (dataset) => {
        if (dataset != null && !config.datasets.some(d => d.name === dataset)) throw new ApiError(404, 'not_found', `this node holds no dataset ${dataset}`)
        return await this.rescan(dataset)
      },
      pull: ({ dataset, path, priority }) => {
        if (!config.datasets.some(d => d.name === dataset)) throw new ApiError(400, 'invalid_argument', `this node holds no dataset ${dataset}`)
        const newest = this.cluster.newest(dataset, path)
        if (newest == null || newest.deleted) throw new ApiError(404, 'not_found', `no node holds ${dataset}/${path}`)
        const local = this.index?.get(dataset, path)
        if (local != null && !local.deleted && Buffer.compare(local.contentId, newest.contentId) === 0) {
          return { dataset, path, version: newest.version, state: 'held' }
        }
        this.sync?.order({ id: 'local', dataset, path, contentId: newest.contentId, version: newest.version, priority, deadlineMs: 0, issuer: this.peerId })
        return { dataset, path, version: newest.version, state: this.sync?.transfers.get(`${dataset}/${path}`)?.state ?? 'queued' }
      },
      files: (dataset, prefix, limit, after) => this.files(dataset, prefix, limit, after),
      lacking: (peerId, dataset, limit, after) => {
        const files = this.cluster.lackingFiles(peerId, dataset, limit + 1, after)
        const more = files.length > limit
        if (more) files.pop()
        return { peerId, dataset, count: this.cluster.lacking(peerId), files, next: more ? files[files.length - 1] : null }
      },
      replicas: (below, limit) => ({
        below,
        files: this.cluster.belowReplicas(below, limit).map(key => {
          const slash = key.indexOf('/')
          const [dataset, path] = [key.slice(0, slash), key.slice(slash + 1)]
          return { dataset, path, replicas: this.cluster.replicas(dataset, path) ?? 0 }
        })
      }),
      conflicts: (limit) => ({
        conflicts: this.cluster.conflicts(limit).map(key => {
          const slash = key.indexOf('/')
          const [dataset, path] = [key.slice(0, slash), key.slice(slash + 1)]
          return {
            dataset,
            path,
            holders: this.cluster.holdersOf(dataset, path).map(h => ({
              peerId: h.peerId, name: h.name, version: h.entry.version, contentId: Buffer.from(h.entry.contentId).toString('hex')
            }))
          }
        })
      })
    })
    await this.api.listen(config.socketPath, config.socketGroup)
    const api = this.api
    this.every(TRIM_CHECK_MS, () => { this.compactor.afterRequests(api.requests, performance.now() - api.lastRequestAt) })
    if (this.metrics != null && config.metrics != null) {
      this.metrics.attach({
        bytesReceived: () => engine.stats.bytesByPeerPriority,
        bytesSent: () => server.stats.bytesToPeer,
        chunks: () => ({ verified: engine.stats.chunksVerified, failed: engine.stats.chunksFailed }),
        transfers: () => {
          const counts: Record<string, number> = { queued: 0, running: 0, completed: 0, failed: 0 }
          for (const t of this.sync?.transfers.values() ?? []) counts[t.state]++
          return counts
        },
        loadLevel: () => ['ok', 'busy', 'overloaded'].indexOf(this.loadMonitor.level),
        manifest: () => ({ nodes: this.cluster.allNodes().length, files: this.cluster.fileCount }),
        tombstones: () => this.tombstones?.status() ?? { held: 0, own: 0, dropped: 0 }
      })
      try {
        await this.metrics.listen(config.metrics.host, config.metrics.port)
      } catch (err: any) {
        throw new StartupError(`cannot serve metrics on ${config.metrics.host}:${config.metrics.port}: ${err.code ?? err.message}`)
      }
    }
    await firstScan
    this.log.info('agent started', { peerId: selfId, addresses: this.addresses() })
    return { peerId: selfId, addresses: this.addresses(), createdClusterKey }
  }

  /** Heartbeats at heartbeatPeriodMs, which lengthens as the cluster grows. */
  private heartbeatPeriodMs (): number {
    return heartbeatPeriodMs(this.config.heartbeatIntervalMs, this.cluster.allNodes().length, this.config.staleAfterMs)
  }

  private scheduleHeartbeat (): void {
    const period = this.heartbeatPeriodMs()
    this.heartbeatTimer = setTimeout(() => {
      if (this.stopping) return
      void this.gossip?.heartbeat()
      this.scheduleHeartbeat()
    }, period).unref()
  }

  private every (ms: number, fn: () => void): void {
    this.timers.push(setInterval(() => { if (!this.stopping) fn() }, ms).unref())
  }

  private selfInfo (): NodeInfo {
    return {
      name: this.config.name,
      generation: this.generation,
      sequence: this.index?.sequence ?? 0,
      // Peers add /p2p/<id> themselves when they dial.
      addrs: this.addresses().map(a => a.replace(/\/p2p\/[^/]+$/, '')).slice(0, 16),
      role: this.config.role,
      datasets: this.config.datasets.map(d => d.name)
    }
  }

  addresses (): string[] {
    return this.node?.getMultiaddrs().map(ma => ma.toString()) ?? []
  }

  /** Records a local change in the cluster manifest and announces it. */
  private localChanged (): void {
    if (this.index == null || this.node == null) return
    const selfId = this.node.peerId.toString()
    // Merged as consecutive deltas, a page of the index at a time (a first scan changes every file).
    let known = this.cluster.node(selfId)?.info.sequence ?? 0
    const info = this.selfInfo()
    for (const page of changePages(this.changes, known, info.sequence)) {
      const to = page[page.length - 1].seq
      this.cluster.applyDelta(selfId, { ...info, sequence: to }, known, page)
      known = to
    }
    if (known < info.sequence) this.cluster.applyDelta(selfId, info, known, [])
    // Changes within a short window go out as one announcement (split if large).
    if (this.announceTimer != null) return
    this.announceTimer = setTimeout(() => {
      this.announceTimer = undefined
      void this.announceQueue.run(async () => await this.gossip?.announce())
    }, ANNOUNCE_BATCH_MS)
  }

  /**
   * Watches each dataset's root at once; every full scan then brings the watched directories in
   * line with the tree. A change reported by a directory's watch scans that directory only.
   */
  private watchDatasets (): void {
    for (const dataset of this.config.datasets) {
      const watcher = new DirectoryWatcher(dataset.path, (dir) => this.directoryChanged(dataset.name, dir), (message, fields) => this.log.warn(message, { dataset: dataset.name, ...fields }))
      watcher.update([''])
      this.watchers.set(dataset.name, watcher)
    }
  }

  /** The safety-net rescan, once the API is quiet (see RESCAN_QUIET_MS); `due` is when it fell due. */
  private periodicRescan (due: number): void {
    if (this.stopping) return
    if (this.periodicRescanWaiting && due !== this.periodicRescanDue) return
    // Not before the gap the last whole scan's duration calls for: the next tick looks again
    // (a rescan that waited for a quiet API and finds a whole scan ran meanwhile waits no more).
    if (performance.now() - this.lastFullScan.endedAt < Math.min(RESCAN_MAX_GAP_MS, RESCAN_GAP_PER_SCAN_TIME * this.lastFullScan.ms)) {
      this.periodicRescanWaiting = false
      return
    }
    const quietFor = performance.now() - (this.api?.lastRequestAt ?? -Infinity)
    const maxDefer = Math.max(RESCAN_MAX_DEFER_MS, 4 * this.config.rescanIntervalMs)
    if (quietFor < RESCAN_QUIET_MS && performance.now() - due < maxDefer) {
      if (!this.periodicRescanWaiting) this.rescanDeferrals++
      this.periodicRescanWaiting = true
      this.periodicRescanDue = due
      const timer = setTimeout(() => { this.periodicRescan(due) }, RESCAN_QUIET_MS - quietFor)
      timer.unref()
      return
    }
    this.periodicRescanWaiting = false
    this.requestScan(0, true)
  }

  /** Queues a scan of one directory of a dataset (or of all of it, when too many are waiting). */
  private directoryChanged (dataset: string, dir: string, delayMs = WATCH_DEBOUNCE_MS): void {
    let dirs = this.dirtyDirs.get(dataset)
    if (dirs == null) this.dirtyDirs.set(dataset, dirs = new Set())
    if (dirs.size < MAX_DIRTY_DIRECTORIES) dirs.add(dir)
    // Too many to scan one by one: the whole dataset is cheaper.
    this.requestScan(delayMs, dirs.size >= MAX_DIRTY_DIRECTORIES)
  }

  /**
   * Schedules one scan: of every dataset whole (`full`), or of the directories whose watch fired.
   * Requests while one is queued coalesce into it (a full request makes it full); scans never
   * overlap (the index lock).
   */
  private requestScan (delayMs: number, full: boolean): void {
    if (this.stopping) return
    if (full) this.fullScanWanted = true
    if (this.scanQueued) return
    this.scanQueued = true
    this.scanTimer = setTimeout(() => {
      this.scanQueued = false
      const whole = this.fullScanWanted
      this.fullScanWanted = false
      void (whole ? this.scanAll() : this.scanDirty())
    }, delayMs)
  }

  /** A scan asked for through the API: runs now (after any scan in progress) and reports. */
  private async rescan (only?: string): Promise<{ datasets: string[], changed: number, pending: number }> {
    const names = this.config.datasets.filter(d => only == null || d.name === only).map(d => d.name)
    const result = await this.scanAll(only)
    return { datasets: names, ...result }
  }

  private async scanAll (only?: string): Promise<{ changed: number, pending: number }> {
    const index = this.index
    if (index == null) return { changed: 0, pending: 0 }
    let pending = 0
    let changed = 0
    await this.indexLock.run(async () => {
      const started = performance.now()
      for (const dataset of this.config.datasets) {
        if (only != null && dataset.name !== only) continue
        if (this.stopping) return
        // This scan covers every directory of the dataset, changed or not.
        this.dirtyDirs.delete(dataset.name)
        const result = await this.scanOne(index, dataset, {})
        if (result == null) continue
        pending += result.pending
        changed += result.changed.length
        this.watchers.get(dataset.name)?.update(result.directories)
        this.rescanLater(dataset.name, result.pendingDirectories)
      }
      // The duration of a pass that only read metadata sets the gap; one that hashed (the first
      // scan of a dataset, a burst of changes) leaves the next rescan to the interval, which measures again.
      if (only == null && !this.stopping) this.lastFullScan = { endedAt: performance.now(), ms: changed === 0 && pending === 0 ? performance.now() - started : 0, endedAtEpochMs: Date.now() }
    })
    this.scans++
    if (changed > 0) this.localChanged()
    return { changed, pending }
  }

  /** Scans the directories whose watch fired (and new directories under them, whole). */
  private async scanDirty (): Promise<void> {
    const index = this.index
    if (index == null) return
    let changed = 0
    await this.indexLock.run(async () => {
      for (const dataset of this.config.datasets) {
        const dirs = this.dirtyDirs.get(dataset.name)
        if (dirs == null || dirs.size === 0 || this.stopping) continue
        this.dirtyDirs.delete(dataset.name)
        const watcher = this.watchers.get(dataset.name)
        const result = await this.scanOne(index, dataset, { only: [...dirs], descend: (dir) => watcher?.has(dir) !== true })
        if (result == null) continue
        changed += result.changed.length
        // A directory this scan found new was read before its watch began: a file made in between
        // raised no event. One more scan of it, now that it is watched, finds such files (a burst
        // of 10,000 files into 300 new directories left more than a quarter unseen until the
        // periodic rescan, which a busy API defers up to two minutes).
        for (const dir of watcher?.add(result.directories) ?? []) this.directoryChanged(dataset.name, dir)
        this.rescanLater(dataset.name, result.pendingDirectories)
      }
    })
    this.scopedScans++
    if (changed > 0) this.localChanged()
  }

  /** Files still being written: their directories again once the files may have settled. */
  private rescanLater (dataset: string, dirs: string[]): void {
    for (const dir of dirs) this.directoryChanged(dataset, dir, Math.max(this.config.stableMs, 100))
  }

  /**
   * A small file while no hashing worker is alive (the pool ends idle ones) is hashed on this
   * thread at once: starting a worker thread takes tens of milliseconds, seconds on a loaded
   * machine, and a new checkpoint file would wait for it. One at a time: the rest of a burst goes
   * to the pool, which starts its workers for them.
   */
  private async hashOne (pool: HashPool, path: string, chunkSize: number, opts: { expectedSize?: number, signal?: AbortSignal }): Promise<FileHashes> {
    if (this.inlineHashing || pool.workers > 0 || pool.queued > 0 || (opts.expectedSize ?? Infinity) > INLINE_HASH_BYTES) return await pool.hash(path, chunkSize, opts)
    this.inlineHashing = true
    try {
      return await hashFile(path, chunkSize, opts)
    } finally {
      this.inlineHashing = false
    }
  }

  /** One dataset's scan; errors are logged (the next scan tries again), undefined then. */
  private async scanOne (index: LocalIndex, dataset: AgentConfig['datasets'][number], scope: Pick<ScanOptions, 'only' | 'descend'>): Promise<ScanResult | undefined> {
    try {
      const result = await scanDataset(dataset.name, dataset.path, index, {
        ...scope,
        stableMs: this.config.stableMs,
        hasher: this.hashPool == null ? undefined : async (path, chunkSize, opts) => await this.hashOne(this.hashPool as HashPool, path, chunkSize, opts),
        versionFloor: (d, p) => {
          // A path deleted or unknown here is written again above every tombstone version already collected.
          const newest = this.cluster.newest(d, p)
          return newest != null && !newest.deleted ? newest.version : Math.max(newest?.version ?? 0, this.tombstones?.versionFloor ?? 0)
        }
      })
      for (const skipped of result.skipped) this.log.warn('file skipped: its path cannot be synced', { dataset: dataset.name, path: skipped })
      if (result.partials.length > 0) this.sync?.sweepPartials(dataset.name, result.partials)
      return result
    } catch (err: any) {
      if (err instanceof DatasetUnavailableError) this.log.error(err.message)
      else this.log.error('scan failed', { dataset: dataset.name, error: err.message })
      return undefined
    }
  }

  private datasetsReport (): DatasetsResponse {
    const counts = this.cluster.datasetCounts(this.peerId)
    return {
      datasets: this.config.datasets.map(d => {
        const c = counts.get(d.name)
        const files = c?.held ?? 0
        const bytes = c?.bytes ?? 0
        const receiving = c?.receiving ?? 0
        return {
          name: d.name, path: d.path, priority: d.priority, hold: d.hold, include: d.include, exclude: d.exclude, immutable: d.immutable,
          files, bytes, receiving, missing: this.cluster.lackingFiles(this.peerId, d.name, 100_000).length
        }
      })
    }
  }

  /** Loads the peers known before a restart (so a node without bootstrap addresses can rejoin). */
  private async loadRememberedPeers (): Promise<void> {
    try {
      const parsed = JSON.parse(await readFile(join(this.config.stateDir, PEERS_FILE), 'utf8')) as Record<string, unknown>
      for (const [peerId, addrs] of Object.entries(parsed)) {
        if (!isValidPeerIdText(peerId) || !Array.isArray(addrs)) continue
        const valid = addrs.filter((a): a is string => typeof a === 'string' && a.startsWith('/') && a.length <= 256).slice(0, 16)
        if (valid.length > 0) this.rememberedPeers.set(peerId, valid)
        if (this.rememberedPeers.size >= MAX_REMEMBERED_PEERS) break
      }
    } catch (err: any) {
      if (err.code !== 'ENOENT') this.log.warn('ignoring an unreadable list of known peers', { file: PEERS_FILE, error: err.message })
    }
  }

  private async rememberPeers (known: Map<string, string[]>): Promise<void> {
    const entries = [...known.entries()].filter(([peerId]) => peerId !== this.peerId).slice(0, MAX_REMEMBERED_PEERS)
    const text = JSON.stringify(Object.fromEntries(entries))
    if (text === this.rememberedText) return
    this.rememberedText = text
    const file = join(this.config.stateDir, PEERS_FILE)
    await writeFile(`${file}.tmp`, text, { mode: 0o600 })
    await rename(`${file}.tmp`, file)
  }

  /** Keeps bootstrap peers and every known node connected. */
  private async redial (): Promise<void> {
    const node = this.node
    if (node == null || this.stopping) return
    const connected = new Set(node.getConnections().map(c => c.remotePeer.toString()))
    const attempts: Array<Promise<unknown>> = []
    for (const addr of this.config.bootstrap) {
      const ma = multiaddr(addr)
      const peer = ma.getComponents().find(c => c.name === 'p2p')?.value
      if (peer != null && (connected.has(peer) || peer === this.peerId)) continue
      if (peer == null && node.getConnections().some(c => c.remoteAddr.toString().startsWith(addr))) continue
      attempts.push(node.dial(ma, { signal: AbortSignal.timeout(REDIAL_INTERVAL_MS * 2) }))
    }
    // Every node known now, and those remembered from before a restart.
    const known = new Map(this.rememberedPeers)
    for (const record of this.cluster.allNodes()) if (record.info.addrs.length > 0) known.set(record.peerId, record.info.addrs)
    const now = Date.now()
    let dialled = 0
    for (const [peerId, addrs] of known) {
      if (peerId === this.peerId || connected.has(peerId) || (this.blockedUntil.get(peerId) ?? 0) > now) continue
      // A peer that keeps failing is tried less and less often (up to every 5 minutes).
      const backoff = this.dialBackoff.get(peerId)
      if (backoff != null && backoff.next > now) continue
      if (dialled++ >= MAX_DIALS_PER_ROUND) break
      try {
        const dial = node.dial(addrs.slice(0, 8).map(a => multiaddr(`${a}/p2p/${peerId}`)), { signal: AbortSignal.timeout(REDIAL_INTERVAL_MS * 2) })
        attempts.push(dial.then(() => { this.dialBackoff.delete(peerId) }, (err) => {
          const delay = Math.min(300_000, (backoff?.delay ?? REDIAL_INTERVAL_MS) * 2)
          if (this.dialBackoff.size > 10_000) this.dialBackoff.clear()
          this.dialBackoff.set(peerId, { next: Date.now() + delay, delay })
          throw err
        }))
      } catch (err: any) {
        this.log.debug('bad address of a known peer', { peer: peerId, error: err.message })
      }
    }
    // Handlers go on every dial now: one that fails while the list is being saved would otherwise
    // be an unhandled rejection (25 logged as errors while 32 agents started, 7 December).
    const settled = Promise.allSettled(attempts)
    await this.rememberPeers(known).catch((err: any) => { this.log.warn('cannot save the list of known peers', { error: err.message }) })
    for (const r of await settled) if (r.status === 'rejected') this.log.debug('dial failed', { error: r.reason?.message })
  }

  status (): StatusResponse {
    const node = this.node
    const selfId = this.peerId
    const connected = new Set(node?.getConnections().map(c => c.remotePeer.toString()) ?? [])
    const peers = new Map<string, StatusResponse['peers'][number]>()
    for (const record of this.cluster.allNodes()) {
      if (record.peerId === selfId) continue
      peers.set(record.peerId, {
        peerId: record.peerId,
        name: record.info.name,
        connected: connected.has(record.peerId),
        addresses: record.info.addrs,
        lastHeard: record.lastHeard,
        stale: Date.now() - record.lastHeard > this.config.staleAfterMs,
        lacking: this.cluster.lacking(record.peerId),
        load: this.engine?.peers.get(record.peerId).load ?? 'ok',
        role: record.info.role,
        datasets: Object.fromEntries([...this.cluster.datasetCounts(record.peerId)].filter(([d]) => (record.info.datasets ?? []).includes(d)).map(([d, c]) => [d, { ...c }])),
        files: [...this.cluster.datasetCounts(record.peerId).values()].reduce((n, c) => n + c.held, 0)
      })
    }
    for (const peerId of connected) {
      if (!peers.has(peerId)) peers.set(peerId, { peerId, name: '', connected: true, addresses: [], lastHeard: null, stale: false, files: 0, lacking: 0, load: 'ok', role: '', datasets: {} })
    }
    const self = this.cluster.node(selfId)
    return {
      peerId: selfId,
      name: this.config.name,
      addresses: this.addresses(),
      generation: this.generation,
      sequence: this.index?.sequence ?? 0,
      role: this.config.role,
      datasets: this.config.datasets.map(d => {
        const c = this.cluster.datasetCounts(selfId).get(d.name)
        return { name: d.name, path: d.path, files: c?.held ?? 0, receiving: c?.receiving ?? 0, missing: c?.missing ?? 0 }
      }),
      peers: [...peers.values()].sort((a, b) => a.name.localeCompare(b.name) || a.peerId.localeCompare(b.peerId)),
      view: {
        digest: Buffer.from(this.cluster.digest()).toString('hex'),
        nodes: this.cluster.summary(),
        files: this.cluster.fileCount
      },
      gossip: {
        ...(this.gossip?.stats ?? { announcementsSent: 0, heartbeatsSent: 0, pulls: 0, pullFailures: 0, summaries: 0, rejected: 0 }),
        rejectedFrom: Object.fromEntries(this.gossip?.rejectedFrom ?? [])
      },
      scan: { filesHashed: hashingStats.filesHashed, bytesHashed: hashingStats.bytesHashed, scans: this.scans, directoryScans: this.scopedScans, rescansDeferred: this.rescanDeferrals, lastFullScan: this.lastFullScan.endedAtEpochMs === 0 ? null : { endedAt: this.lastFullScan.endedAtEpochMs, ms: Math.round(this.lastFullScan.ms) }, hashWorkers: this.hashPool?.workers ?? 0 },
      tombstones: this.tombstones?.status() ?? { held: 0, own: 0, dropped: 0, passes: 0, waitingFor: [] },
      memory: {
        ...(({ rss, heapTotal, heapUsed, external, arrayBuffers }) => ({ rss, heapTotal, heapUsed, external, arrayBuffers }))(process.memoryUsage()),
        youngGeneration: getHeapSpaceStatistics().find(s => s.space_name === 'new_space')?.space_size ?? 0,
        compactions: this.compactor.compactions,
        requestTrims: this.compactor.requestTrims
      },
      load: {
        level: this.loadMonitor.level,
        uploads: (this.server?.stats.uploadsActive ?? 0) + (this.server?.stats.queued ?? 0),
        eventLoopDelayMs: Math.round(this.loadMonitor.eventLoopDelayMs),
        diskLow: this.diskLow,
        freeDiskBytes: this.freeDisk
      },
      transfer: {
        uploadsActive: this.server?.stats.uploadsActive ?? 0,
        chunksServed: this.server?.stats.chunksServed ?? 0,
        bytesServed: this.server?.stats.bytesServed ?? 0,
        busyReplies: this.server?.stats.busyReplies ?? 0,
        peers: (this.engine?.peers.all() ?? []).map(p => ({
          peerId: p.peerId, circuit: p.breaker.state, throughput: Math.round(p.throughput), load: p.load, bytesReceived: p.bytesReceived, chunksFailed: p.chunksFailed
        }))
      }
    }
  }

  where (dataset: string, path: string): WhereResponse {
    const { version, deleted, holders } = this.cluster.locate(dataset, path, this.peerId)
    return { dataset, path, version, deleted, holders }
  }

  files (dataset: string, prefix: string, limit: number, after?: string): FilesResponse {
    const paths = this.cluster.list(dataset, prefix, limit + 1, after)
    const more = paths.length > limit
    if (more) paths.pop()
    return {
      dataset,
      prefix,
      files: paths.map(path => ({ path, ...(this.cluster.summarize(dataset, path) ?? { version: 0, deleted: false, size: 0, replicas: 0, holders: 0 }) })),
      next: more ? paths[paths.length - 1] : null
    }
  }

  transfers (): TransfersResponse {
    return { transfers: [...(this.sync?.transfers.values() ?? [])].map(t => ({ ...t })) }
  }

  /** Stops everything, in order, within STOP_TIMEOUT_MS. Safe to call more than once. */
  async stop (): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    const work = async (): Promise<void> => {
      for (const t of this.timers) clearInterval(t)
      if (this.scanTimer != null) clearTimeout(this.scanTimer)
      if (this.heartbeatTimer != null) clearTimeout(this.heartbeatTimer)
      if (this.announceTimer != null) clearTimeout(this.announceTimer)
      for (const w of this.watchers.values()) w.close()
      this.compactor.stop()
      this.loadMonitor.stop()
      this.gossip?.stop()
      this.tombstones?.stop()
      await this.api?.close().catch(() => {})
      await this.metrics?.close().catch(() => {})
      await this.sync?.stop()
      await Promise.resolve(this.node?.stop()).catch(() => {})
      // Let a scan or commit in progress finish before the index closes.
      await this.indexLock.run(async () => { this.index?.close() })
      await this.hashPool?.close()
      await this.releaseLock?.()
    }
    let timer: NodeJS.Timeout | undefined
    await Promise.race([work(), new Promise<void>(resolve => { timer = setTimeout(resolve, STOP_TIMEOUT_MS) })])
    clearTimeout(timer)
  }
}

