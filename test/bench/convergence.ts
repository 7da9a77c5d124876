/**
 * Convergence of the cluster manifest: N real agents on loopback; small files written one at a
 * time on random nodes; for each, the time from its commit (the writer's own stream shows
 * file.added for itself) until every agent's event stream has delivered file.added for
 * (writer, path).
 *
 *   npx node test/bench/convergence.ts --nodes 8 [--files 25] [--stable-ms 50] [--heartbeat-ms 2000]
 *       [--topology seeds|chain] [--seeds 3] [--size 1024] [--seed 1] [--idle-ms 10000] [--keep]
 *
 * Prints one JSON object on stdout; progress on stderr.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import {
  AgentSet, EventRecorder, cpuSeconds, loadavg, log, machine, mapLimit, measureCpu, memoryMiB, parseFlags, rng, runBench,
  sleep, splitNodeArgs, summarise, waitFor, waitForEvents, writeIntoDataset, type BenchAgent
} from './lib.ts'
import type { StatusResponse } from '@shoal/client'

const flags = parseFlags({
  nodes: 8,
  files: 25,
  size: 1024,
  stableMs: 50,
  heartbeatMs: 0,
  topology: 'seeds',
  seeds: 3,
  seed: 1,
  idleMs: 10_000,
  /** Per file: how long to wait for every stream. */
  fileTimeoutMs: 30_000,
  settleTimeoutMs: 60_000,
  meshTimeoutMs: 900_000,
  /** Before the next file: wait until every node holds the file and everyone knows it. */
  settle: true,
  startConcurrency: 4,
  /** Quiet time after the mesh formed, before the idle CPU window. */
  quietMs: 10_000,
  agentLogLevel: 'warn',
  /** Extra Node flags for every agent, space-separated (diagnostics, e.g. "--import /tmp/x.mjs"). */
  agentNodeArgs: '',
  keep: false,
  cpuProf: false
})

/** Who node i bootstraps to: a chain, or two of a few seed nodes (the seeds themselves form a chain). */
function bootstrapOf (i: number, agents: BenchAgent[]): string[] {
  if (i === 0) return []
  if (flags.topology === 'chain') return [agents[i - 1].address]
  const seeds = Math.min(flags.seeds, agents.length)
  if (i < seeds) return [agents[i - 1].address]
  const a = agents[i % seeds].address
  const b = agents[(i + 1) % seeds].address
  return seeds > 1 ? [a, b] : [a]
}

const GOSSIP_COUNTERS = ['announcementsSent', 'heartbeatsSent', 'pulls', 'pullFailures', 'summaries', 'rejected'] as const
type GossipTotals = Record<(typeof GOSSIP_COUNTERS)[number] | 'agentsCounted', number>

/** Every agent's gossip counters summed; an agent too busy to answer within the client's timeout is left out (counted). */
async function gossipTotals (agents: BenchAgent[]): Promise<GossipTotals> {
  const statuses = (await Promise.all(agents.map(async a => await a.client().status().catch(() => undefined)))).filter(s => s != null) as StatusResponse[]
  const totals = { agentsCounted: statuses.length } as GossipTotals
  for (const k of GOSSIP_COUNTERS) totals[k] = statuses.reduce((sum, s) => sum + s.gossip[k], 0)
  return totals
}

/** Counters between two readings (meaningful when both counted every agent). */
function gossipDelta (from: GossipTotals, to: GossipTotals): GossipTotals {
  const delta = { agentsCounted: Math.min(from.agentsCounted, to.agentsCounted) } as GossipTotals
  for (const k of GOSSIP_COUNTERS) delta[k] = to[k] - from[k]
  return delta
}

await runBench('convergence', async () => {
  const n = flags.nodes
  const set = new AgentSet('shoal-bench-conv-', flags.keep)
  const extra = ['--stable-ms', String(flags.stableMs)]
  if (flags.heartbeatMs > 0) extra.push('--heartbeat-ms', String(flags.heartbeatMs))
  const nodeArgs = flags.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${join(set.root, 'prof')}`] : []
  nodeArgs.push(...splitNodeArgs(flags.agentNodeArgs))
  const agents: BenchAgent[] = []
  for (let i = 0; i < n; i++) agents.push(set.create({ name: `n${String(i).padStart(2, '0')}`, args: extra, nodeArgs, logLevel: flags.agentLogLevel }))
  log(`starting ${n} agents (topology ${flags.topology}); load ${loadavg()}`)
  const t0 = Date.now()
  await agents[0].start()
  const clusterKey = agents[0].clusterKeyFile
  for (const a of agents.slice(1)) a.opts.clusterKey = clusterKey
  // Seeds (or the chain) start in order; everyone else in parallel batches once the seeds are up.
  const ordered = flags.topology === 'chain' ? n : Math.min(flags.seeds, n)
  for (let i = 1; i < ordered; i++) {
    agents[i].opts.bootstrap = bootstrapOf(i, agents)
    await agents[i].start()
  }
  await mapLimit(agents.slice(ordered), flags.startConcurrency, async (a, j) => {
    a.opts.bootstrap = bootstrapOf(ordered + j, agents)
    await a.start()
  })
  const startMs = Date.now() - t0
  log(`all ${n} agents answer (${startMs} ms); waiting for every view to hold ${n} records`)
  // Every view holds every record (connections are reported, not required: they churn under load).
  let connectedAtMesh: number[] = []
  let viewSizes: number[] = []
  let lastLog = 0
  let meshFormed = false
  const meshDeadline = Date.now() + flags.meshTimeoutMs
  while (Date.now() < meshDeadline) {
    const statuses = await Promise.all(agents.map(async a => await a.client().status().catch(() => undefined)))
    connectedAtMesh = statuses.map(s => s?.peers.filter(p => p.connected).length ?? -1)
    viewSizes = statuses.map(s => s?.view.nodes.length ?? -1)
    if (Date.now() - lastLog > 15_000) {
      lastLog = Date.now()
      log(`  views hold ${Math.min(...viewSizes)}..${Math.max(...viewSizes)} records (-1: status not answered in 10 s); connected peers ${Math.min(...connectedAtMesh)}..${Math.max(...connectedAtMesh)}; load ${loadavg()}`)
    }
    if (viewSizes.every(v => v === n)) {
      meshFormed = true
      break
    }
    await sleep(2000)
  }
  if (!meshFormed) {
    // The cluster never converged on its membership: report what it costs in that state.
    log(`views still incomplete after ${flags.meshTimeoutMs} ms; measuring CPU for ${flags.idleMs} ms`)
    const load = loadavg()
    const cpu = await measureCpu(agents.map(a => a.pid), flags.idleMs)
    const rss = agents.map(a => memoryMiB(a.pid).rss)
    return {
      nodes: n,
      agents: set.pids.length,
      machine: machine(),
      meshFormed: false,
      goal: { p99UnderMs: 1000, met: false },
      startup: { allAnsweringMs: startMs, waitedForViewsMs: flags.meshTimeoutMs },
      viewSizes: summarise(viewSizes, 0),
      connectedPeers: summarise(connectedAtMesh, 0),
      cpuPercentOfOneCoreWhileForming: { perAgent: summarise(cpu, 2), total: Number(cpu.reduce((x, y) => x + y, 0).toFixed(1)), windowMs: flags.idleMs, load },
      rssMiB: { total: Number(rss.reduce((x, y) => x + y, 0).toFixed(1)), perAgent: summarise(rss) },
      settings: { stableMs: flags.stableMs, heartbeatMs: flags.heartbeatMs > 0 ? flags.heartbeatMs : 'default (2000)' }
    }
  }
  const meshMs = Date.now() - t0
  log(`full mesh after ${meshMs} ms; letting it settle for ${flags.quietMs} ms`)
  await sleep(flags.quietMs)

  const recorders = agents.map(a => new EventRecorder(a))
  await Promise.all(recorders.map(async r => await r.open()))

  const gossipAtIdle = await gossipTotals(agents)
  log(`measuring idle CPU for ${flags.idleMs} ms; load ${loadavg()}`)
  const loadBeforeIdle = loadavg()
  const idle = await measureCpu(agents.map(a => a.pid), flags.idleMs)
  const idleSummary = summarise(idle, 2)
  const rssIdle = agents.map(a => memoryMiB(a.pid).rss)
  log(`idle CPU per agent: mean ${idleSummary.mean}% max ${idleSummary.max}% (total ${idle.reduce((s, x) => s + x, 0).toFixed(1)}% of one core)`)

  const random = rng(flags.seed)
  const perFile: Array<{ writer: string, commitMs: number, streamsMs: number, manifestsMs: number, replicatedMs?: number }> = []
  const failures: string[] = []
  const settleFailures: string[] = []
  const gossipAtWrites = await gossipTotals(agents)
  const churnBefore = recorders.reduce((sum, r) => sum + r.disconnects, 0)
  const cpuBefore = agents.map(a => cpuSeconds(a.pid))
  const writeStart = performance.now()
  const loadBeforeWrites = loadavg()
  for (let f = 0; f < flags.files; f++) {
    const writer = agents[Math.floor(random() * n)]
    const path = `conv-f${String(f).padStart(4, '0')}-${writer.name}.bin`
    const writtenAt = Date.now()
    await writeIntoDataset(writer, path, randomBytes(flags.size))
    const key = EventRecorder.key(writer.peerId, 'default', path)
    const writerRec = recorders[agents.indexOf(writer)]
    let row: (typeof perFile)[number] | undefined
    try {
      const [[commit]] = await waitForEvents([writerRec], [key], flags.fileTimeoutMs)
      const seen = await waitForEvents(recorders, [key], flags.fileTimeoutMs)
      const lastReceived = Math.max(...seen.map(s => s[0].received))
      const lastLearned = Math.max(...seen.map(s => s[0].time))
      row = {
        writer: writer.name,
        commitMs: commit.time - writtenAt,
        streamsMs: lastReceived - commit.time,
        manifestsMs: lastLearned - commit.time
      }
      perFile.push(row)
      if (flags.settle) {
        // Every node fetches the file (hold everything) and announces its copy: wait for all of
        // that to reach every stream so the next file starts on a quiet cluster.
        const copies = agents.map(a => EventRecorder.key(a.peerId, 'default', path))
        const all = await waitForEvents(recorders, copies, flags.settleTimeoutMs)
        row.replicatedMs = Math.max(...all.flat().map(e => e.received)) - commit.time
      }
      log(`file ${f + 1}/${flags.files} on ${writer.name}: commit +${row.commitMs} ms, all streams +${row.streamsMs} ms, all manifests +${row.manifestsMs} ms${row.replicatedMs != null ? `, replicated +${row.replicatedMs} ms` : ''}; load ${loadavg()}`)
    } catch (err: any) {
      if (row == null) failures.push(`${path}: ${err.message}`)
      else settleFailures.push(`${path}: ${err.message}`)
      log(`file ${f + 1} (${path} on ${writer.name}): ${row == null ? 'not seen everywhere' : `all streams +${row.streamsMs} ms, but replication did not settle`}: ${err.message}`)
    }
    await sleep(200)
  }
  const writeSeconds = (performance.now() - writeStart) / 1000
  const busy = agents.map((a, i) => 100 * (cpuSeconds(a.pid) - cpuBefore[i]) / writeSeconds)
  const loadAfter = loadavg()

  const gossip = await gossipTotals(agents)
  const rss = agents.map(a => memoryMiB(a.pid).rss)
  const streams = summarise(perFile.map(r => r.streamsMs))
  const result = {
    nodes: n,
    agents: set.pids.length,
    machine: machine(),
    topology: flags.topology === 'chain' ? 'chain' : `${Math.min(flags.seeds, n)} seeds in a chain, every other node bootstraps to 2 seeds`,
    settings: { stableMs: flags.stableMs, heartbeatMs: flags.heartbeatMs > 0 ? flags.heartbeatMs : 'default (2000)', fileBytes: flags.size, files: flags.files, seed: flags.seed, settleBetweenFiles: flags.settle },
    meshFormed: true,
    startup: { allAnsweringMs: startMs, allViewsCompleteMs: meshMs, connectedPeersThen: summarise(connectedAtMesh, 0) },
    // The figure asked for: writer's commit -> file.added for (writer, path) received from every stream.
    commitToAllStreamsMs: streams,
    goal: { p99UnderMs: 1000, met: failures.length === 0 && streams.p99 < 1000 },
    commitToAllManifestsMs: summarise(perFile.map(r => r.manifestsMs)),
    writeToCommitMs: summarise(perFile.map(r => r.commitMs)),
    commitToReplicatedEverywhereMs: flags.settle ? summarise(perFile.map(r => r.replicatedMs ?? NaN)) : undefined,
    failures,
    replicationNotSettled: settleFailures,
    peerDisconnectEventsDuringWrites: recorders.reduce((sum, r) => sum + r.disconnects, 0) - churnBefore,
    idleCpuPercentOfOneCore: { perAgent: idleSummary, total: Number(idle.reduce((s, x) => s + x, 0).toFixed(1)), windowMs: flags.idleMs, load: loadBeforeIdle },
    writePhaseCpuPercentOfOneCore: { perAgent: summarise(busy, 2), total: Number(busy.reduce((s, x) => s + x, 0).toFixed(1)), seconds: Number(writeSeconds.toFixed(1)) },
    rssMiB: { total: Number(rss.reduce((s, x) => s + x, 0).toFixed(1)), perAgent: summarise(rss), idleTotal: Number(rssIdle.reduce((s, x) => s + x, 0).toFixed(1)) },
    // Since each agent started (startup included), and in the idle window and the write phase alone.
    gossipTotals: gossip,
    gossipIdleWindow: gossipDelta(gossipAtIdle, gossipAtWrites),
    gossipWritePhase: gossipDelta(gossipAtWrites, gossip),
    perFile,
    load: { beforeWrites: loadBeforeWrites, after: loadAfter }
  }
  return result
})
