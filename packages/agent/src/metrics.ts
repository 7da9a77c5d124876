import { createServer, type Server } from 'node:http'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

export interface MetricsSources {
  bytesReceived: () => Map<string, number>
  bytesSent: () => Record<string, number>
  chunks: () => { verified: number, failed: number }
  transfers: () => Record<string, number>
  loadLevel: () => number
  manifest: () => { nodes: number, files: number }
  tombstones?: () => { held: number, own: number, dropped: number }
}

/**
 * Prometheus metrics: libp2p's own (registered on the same registry) and shoal's. Values that
 * the agent already counts are read at scrape time; nothing is counted twice.
 */
export class AgentMetrics {
  readonly registry = new Registry()
  readonly gossipDelay: Histogram
  private server?: Server
  private sources?: MetricsSources

  constructor () {
    const registers = [this.registry]
    const metrics = this
    // Totals the agent already keeps are copied in at scrape time.
    new Counter({
      name: 'shoal_bytes_received_total', help: 'Verified chunk bytes received, per peer and priority', labelNames: ['peer', 'priority'] as const, registers,
      collect () {
        const s = metrics.sources
        if (s == null) return
        this.reset()
        for (const [key, bytes] of s.bytesReceived()) {
          const [peer, priority] = key.split('|')
          this.labels(peer, priority).inc(bytes)
        }
      }
    })
    new Counter({
      name: 'shoal_bytes_sent_total', help: 'Chunk bytes served, per peer', labelNames: ['peer'] as const, registers,
      collect () {
        const s = metrics.sources
        if (s == null) return
        this.reset()
        for (const [peer, bytes] of Object.entries(s.bytesSent())) this.labels(peer).inc(bytes)
      }
    })
    new Counter({
      name: 'shoal_chunks_total', help: 'Chunks received, by verification result', labelNames: ['result'] as const, registers,
      collect () {
        const s = metrics.sources
        if (s == null) return
        const c = s.chunks()
        this.reset()
        this.labels('verified').inc(c.verified)
        this.labels('failed').inc(c.failed)
      }
    })
    new Gauge({
      name: 'shoal_transfers', help: 'Transfers known to this agent, by state', labelNames: ['state'] as const, registers,
      collect () {
        const s = metrics.sources
        if (s == null) return
        this.reset()
        for (const [state, n] of Object.entries(s.transfers())) this.labels(state).set(n)
      }
    })
    new Gauge({
      name: 'shoal_load_level', help: 'This node\'s load level: 0 ok, 1 busy, 2 overloaded', registers,
      collect () { if (metrics.sources != null) this.set(metrics.sources.loadLevel()) }
    })
    new Gauge({
      name: 'shoal_manifest_size', help: 'Cluster manifest size', labelNames: ['what'] as const, registers,
      collect () {
        const s = metrics.sources
        if (s == null) return
        const m = s.manifest()
        this.labels('nodes').set(m.nodes)
        this.labels('files').set(m.files)
      }
    })
    new Gauge({
      name: 'shoal_tombstones', help: 'Tombstones (deleted files) held until every known node has seen them: all records, and this node\'s own', labelNames: ['what'] as const, registers,
      collect () {
        const t = metrics.sources?.tombstones?.()
        if (t == null) return
        this.labels('held').set(t.held)
        this.labels('own').set(t.own)
      }
    })
    new Counter({
      name: 'shoal_tombstones_dropped_total', help: 'Tombstones dropped since the agent started (every known node had seen them)', registers,
      collect () {
        const t = metrics.sources?.tombstones?.()
        if (t == null) return
        this.reset()
        this.inc(t.dropped)
      }
    })
    this.gossipDelay = new Histogram({
      name: 'shoal_gossip_delay_seconds',
      help: 'Delay from a heartbeat\'s publication to its arrival (needs synchronised clocks)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers
    })
  }

  attach (sources: MetricsSources): void {
    this.sources = sources
  }

  async listen (host: string, port: number): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('see /metrics\n')
        return
      }
      this.registry.metrics().then(text => {
        res.writeHead(200, { 'content-type': this.registry.contentType }).end(text)
      }, (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`)
      })
    })
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject)
      this.server?.listen(port, host, () => resolve())
    })
  }

  async close (): Promise<void> {
    await new Promise<void>(resolve => {
      if (this.server == null) return resolve()
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }
}
