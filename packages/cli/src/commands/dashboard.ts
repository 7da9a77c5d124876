import type { ShoalClient, StatusResponse, TransfersResponse, DatasetsResponse, ConflictsResponse } from '@shoal/client'
import { ago, bytes, colour, level, seconds, shortId, table } from '../format.js'

export interface Dashboard {
  status: StatusResponse
  datasets: DatasetsResponse['datasets']
  transfers: TransfersResponse['transfers']
  conflicts: ConflictsResponse['conflicts']
  belowReplicas: Array<{ dataset: string, path: string, replicas: number, wanted: number }>
  attention: string[]
}

/** Everything `shoal status` shows, gathered from the local API. */
export async function gatherDashboard (client: ShoalClient): Promise<Dashboard> {
  const [status, datasets, transfers, conflicts] = await Promise.all([client.status(), client.datasets(), client.transfers(), client.conflicts({ limit: 50 })])
  const belowReplicas: Dashboard['belowReplicas'] = []
  for (const d of datasets.datasets) {
    if (d.hold.kind !== 'replicas') continue
    const below = await client.replicas(d.hold.count, { limit: 100 })
    for (const f of below.files) if (f.dataset === d.name) belowReplicas.push({ ...f, wanted: d.hold.count })
  }
  const attention: string[] = []
  for (const t of transfers.transfers) if (t.state === 'failed') attention.push(`transfer failed: ${t.dataset}/${t.path}: ${t.error ?? 'unknown error'}`)
  for (const p of status.peers) if (p.stale) attention.push(`node ${p.name || shortId(p.peerId)} is stale: last heard ${ago(p.lastHeard)}`)
  for (const c of conflicts.conflicts) attention.push(`conflicting content: ${c.dataset}/${c.path} (${c.holders.length} holders disagree at the same version)`)
  for (const b of belowReplicas) attention.push(`below its replica count: ${b.dataset}/${b.path} (${b.replicas} of ${b.wanted})`)
  if (status.load.diskLow) attention.push(`disk low on this node: ${status.load.freeDiskBytes == null ? '?' : bytes(status.load.freeDiskBytes)} free`)
  return { status, datasets: datasets.datasets, transfers: transfers.transfers, conflicts: conflicts.conflicts, belowReplicas, attention }
}

/** The dashboard as text: aligned tables (coloured on a terminal). */
export function renderDashboard (d: Dashboard): string {
  const s = d.status
  let out = `${colour.heading('shoal')} node ${colour.heading(s.name)} (${s.peerId}) · ${s.role} · load ${level(s.load.level)} · ` +
    `${s.peers.filter(p => p.connected).length}/${s.peers.length} peers connected\n`
  out += `addresses ${s.addresses.join(' ')}\n`
  out += `datasets  ${s.datasets.map(x => `${x.name}=${x.path} (${x.files} file${x.files === 1 ? '' : 's'})`).join(', ')}\n\n`

  out += colour.heading('NODES') + '\n'
  const nodes = [['NAME', 'PEER', 'ROLE', 'LOAD', 'LAST HEARD', 'STATE', 'LACKING'],
    [s.name, s.peerId, s.role, level(s.load.level), '-', colour.good('this node'), String(s.datasets.reduce((n, x) => n + x.missing, 0))],
    ...s.peers.map(p => [p.name || '-', p.peerId, p.role || '-', level(p.load), ago(p.lastHeard),
      p.stale ? colour.bad('stale') : p.connected ? colour.good('connected') : colour.warn('disconnected'), String(p.lacking)])]
  out += table(nodes) + '\n'

  out += colour.heading('DATASETS') + '\n'
  const rows = [['DATASET', 'NODE', 'HELD', 'RECEIVING', 'MISSING']]
  for (const ds of s.datasets) {
    rows.push([ds.name, s.name, String(ds.files), String(ds.receiving), ds.missing > 0 ? colour.warn(String(ds.missing)) : '0'])
    for (const p of s.peers) {
      const c = p.datasets?.[ds.name]
      if (c != null) rows.push(['', p.name || shortId(p.peerId), String(c.held), String(c.receiving), c.missing > 0 ? colour.warn(String(c.missing)) : '0'])
    }
  }
  out += table(rows) + '\n'

  const inFlight = d.transfers.filter(t => t.state === 'running' || t.state === 'queued')
  out += colour.heading('TRANSFERS IN FLIGHT') + '\n'
  if (inFlight.length === 0) out += 'none\n\n'
  else {
    out += table([['FILE', 'PRIORITY', 'STATE', 'PROGRESS', 'RATE', 'ELAPSED'], ...inFlight.map(t => {
      const elapsed = t.startedAt == null ? 0 : Date.now() - t.startedAt
      const rate = elapsed > 0 ? t.bytes / (elapsed / 1000) : 0
      return [`${t.dataset}/${t.path}`, t.priority, t.state, `${t.size === 0 ? 100 : Math.floor(t.bytes / t.size * 100)}% of ${bytes(t.size)}`,
        `${bytes(rate)}/s`, seconds(elapsed)]
    })]) + '\n'
  }

  out += colour.heading('NEEDS ATTENTION') + '\n'
  out += d.attention.length === 0 ? colour.good('nothing') + '\n' : d.attention.map(a => `${colour.bad('!')} ${a}\n`).join('')
  return out
}
