import { createHash } from 'node:crypto'
import picomatch from 'picomatch'
import type { DatasetConfig } from './config.js'
import type { ClusterManifest } from '@shoal/manifest'

export interface SelfDescription {
  peerId: string
  name: string
  role: string
}

/** Decides, per dataset, which files this node should hold (DESIGN.md "Policies and strategies"). */
export class HoldPolicies {
  private readonly matchers = new Map<string, { include?: (p: string) => boolean, exclude?: (p: string) => boolean }>()

  constructor (
    private readonly datasets: Map<string, DatasetConfig>,
    private readonly self: SelfDescription,
    private readonly cluster: ClusterManifest,
    private readonly staleAfterMs: number
  ) {
    for (const d of datasets.values()) {
      this.matchers.set(d.name, {
        include: d.include.length > 0 ? picomatch(d.include, { dot: true }) : undefined,
        exclude: d.exclude.length > 0 ? picomatch(d.exclude, { dot: true }) : undefined
      })
    }
  }

  /** Whether a path of this dataset is synced at all (include/exclude patterns). */
  synced (dataset: string, path: string): boolean {
    const m = this.matchers.get(dataset)
    if (m == null) return false
    if (m.include != null && !m.include(path)) return false
    return !(m.exclude?.(path) ?? false)
  }

  /**
   * Whether this node should fetch a file it does not hold yet. `all`: yes; `on-demand`: only
   * when ordered; a replica count N: when this node is among the N live members of the dataset
   * that rank highest for this path (rendezvous hashing: every node agrees without talking);
   * a selector: when this node's role or name is listed.
   */
  wants (dataset: string, path: string): boolean {
    const config = this.datasets.get(dataset)
    if (config == null || !this.synced(dataset, path)) return false
    const hold = config.hold
    switch (hold.kind) {
      case 'all': return true
      case 'on-demand': return false
      case 'select': return hold.roles.includes(this.self.role) || hold.names.includes(this.self.name)
      case 'replicas': return this.chosen(dataset, path, hold.count)
    }
  }

  private chosen (dataset: string, path: string, count: number): boolean {
    const now = Date.now()
    const members = this.cluster.allNodes()
      .filter(r => r.peerId === this.self.peerId || ((r.info.datasets ?? []).includes(dataset) && now - r.lastHeard <= this.staleAfterMs))
      .map(r => r.peerId)
    if (!members.includes(this.self.peerId)) members.push(this.self.peerId)
    const score = (peerId: string): string => createHash('sha256').update(`${dataset}/${path}\u0000${peerId}`).digest('hex')
    const ranked = members.map(p => ({ p, s: score(p) })).sort((a, b) => a.s < b.s ? 1 : a.s > b.s ? -1 : 0)
    return ranked.slice(0, count).some(r => r.p === this.self.peerId)
  }
}
