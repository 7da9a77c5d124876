/**
 * Catch-up of a returning node: a cluster of N real agents; one is stopped (SIGTERM); F small
 * files are written across the others; once the running nodes' views list them all (and, by
 * default, the running nodes have replicated them among themselves, so the cluster is quiet),
 * the stopped node is restarted. Measured: the time from its restart (spawn) until its cluster
 * manifest lists every file of the others.
 *
 *   npx node test/bench/catchup.ts [--nodes 4] [--files 10000] [--settle replicated|view] [--poll-ms 100]
 *       [--stable-ms 50] [--heartbeat-ms 0] [--keep] [--cpu-prof]
 *
 * Criterion (headline, viewCompleteMs): the returning node's view of every running node's record
 * has at least the (generation, sequence) that node reported for itself just before the restart,
 * polled on GET /v1/status every --poll-ms (50). A record is merged whole (a pull is applied once
 * all its pages arrived, an announcement applies in order or triggers a pull), so this means the
 * returning node's cluster manifest holds every entry those nodes had at the restart: all F files
 * of the others (plus, with --settle replicated, their replicated copies). The figure is the
 * first poll answer that shows it, minus the spawn time (resolution: one poll interval). At the
 * end, `where` is asked for a sample of the files as a cross-check.
 *
 * Secondary (filesKnownByEventsMs): the `time` of the last of the F file.added events for
 * (writer, path) on the returning node's event stream (the agent's clock when its manifest learned
 * the entry), minus the spawn time. Only reported when the stream delivered every one of them: the
 * agent drops an event stream whose backlog exceeds 1 MiB, which a merge of several thousand
 * entries at once does (see README-manifest.md), so at F = 10,000 it is usually absent.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import {
  AgentSet, EventRecorder, loadavg, log, machine, mapLimit, memoryMiB, parseFlags, runBench, sleep, waitFor, writeIntoDataset, type BenchAgent
} from './lib.ts'
import type { StatusResponse } from '@shoal/client'

const flags = parseFlags({
  nodes: 4,
  files: 10_000,
  size: 64,
  stableMs: 50,
  heartbeatMs: 0,
  settle: 'view',
  settleTimeoutMs: 1_200_000,
  pollMs: 50,
  catchupTimeoutMs: 300_000,
  /** Log level of the returning agent (its log is DIR/n<N-1>/agent.log; keep it with --keep). */
  returningLogLevel: 'warn',
  keep: false,
  cpuProf: false
})

await runBench('catchup', async () => {
  if (flags.settle !== 'replicated' && flags.settle !== 'view') throw new Error('--settle is replicated or view')
  const n = flags.nodes
  const set = new AgentSet('shoal-bench-catchup-', flags.keep)
  const extra = ['--stable-ms', String(flags.stableMs)]
  if (flags.heartbeatMs > 0) extra.push('--heartbeat-ms', String(flags.heartbeatMs))
  const agents: BenchAgent[] = []
  for (let i = 0; i < n; i++) agents.push(set.create({ name: `n${i}`, args: extra }))
  const returning = agents[n - 1]
  returning.opts.logLevel = flags.returningLogLevel
  if (flags.cpuProf) returning.opts.nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${join(set.root, 'prof')}`]
  const others = agents.slice(0, n - 1)

  log(`starting ${n} agents; load ${loadavg()}`)
  await agents[0].start()
  for (let i = 1; i < n; i++) {
    agents[i].opts.clusterKey = agents[0].clusterKeyFile
    // A chain: each node bootstraps to the one before (the agents then connect to everyone they learn of).
    agents[i].opts.bootstrap = [agents[i - 1].address]
    await agents[i].start()
  }
  await waitFor('a full mesh', async () => {
    const statuses = await Promise.all(agents.map(async a => await a.client().status()))
    return statuses.every(s => s.view.nodes.length === n && s.peers.filter(p => p.connected).length === n - 1)
  }, 120_000, 500)
  log(`mesh formed; stopping ${returning.name} (SIGTERM)`)
  await returning.stop()

  // F files, round-robin across the running nodes, 100 directories per node.
  const t1 = Date.now()
  const files = Array.from({ length: flags.files }, (_, i) => {
    const writer = others[i % others.length]
    return { writer, path: `cu/${writer.name}/d${String(i % 100).padStart(2, '0')}/f${String(i).padStart(6, '0')}.bin` }
  })
  await mapLimit(files, 32, async (f) => {
    const pad = Math.max(0, flags.size - f.path.length - 1)
    await writeIntoDataset(f.writer, f.path, `${f.path}\n${randomBytes(pad).toString('hex').slice(0, pad)}`)
  })
  log(`${flags.files} files written in ${Date.now() - t1} ms; waiting for the running nodes' views; load ${loadavg()}`)

  let statuses: StatusResponse[] = []
  const progress = async (what: string): Promise<void> => {
    statuses = await Promise.all(others.map(async a => await a.client().status()))
    log(`${what}: views ${statuses.map(s => s.view.files).join('/')} files, held ${statuses.map(s => s.datasets[0].files).join('/')}; load ${loadavg()}`)
  }
  let lastLog = 0
  await waitFor('the running nodes to list every file', async () => {
    const now = Date.now()
    if (now - lastLog > 5000) { lastLog = now; await progress('setup') } else statuses = await Promise.all(others.map(async a => await a.client().status()))
    return statuses.every(s => s.view.files >= flags.files)
  }, flags.settleTimeoutMs, 500)
  const viewsMs = Date.now() - t1
  log(`running views list all ${flags.files} files after ${viewsMs} ms`)
  let replicatedMs: number | undefined
  if (flags.settle === 'replicated') {
    let stableSince = 0
    let lastDigest = ''
    await waitFor('the running nodes to replicate every file and agree', async () => {
      const now = Date.now()
      if (now - lastLog > 10_000) { lastLog = now; await progress('replication') } else statuses = await Promise.all(others.map(async a => await a.client().status()))
      const digest = statuses[0].view.digest
      const quiet = statuses.every(s => s.datasets[0].files === flags.files && s.view.digest === digest)
      if (!quiet || digest !== lastDigest) { stableSince = now; lastDigest = digest; return false }
      return now - stableSince >= 3000
    }, flags.settleTimeoutMs, 1000)
    replicatedMs = Date.now() - t1
    log(`running nodes replicated everything and agree after ${replicatedMs} ms`)
  }
  await sleep(2000)
  statuses = await Promise.all(others.map(async a => await a.client().status()))
  const target = new Map(statuses.map(s => [s.peerId, { generation: s.generation, sequence: s.sequence }]))
  const entriesOfOthers = statuses.reduce((sum, s) => sum + s.datasets[0].files, 0)
  const loadBefore = loadavg()

  // ---- the measurement
  log(`restarting ${returning.name}; load ${loadBefore}`)
  const recorder = new EventRecorder(returning)
  const t0 = Date.now()
  await returning.spawn()
  await waitFor('the returning node\'s event stream', async () => { await recorder.open(); return true }, 60_000, 5)
  const streamOpenMs = Date.now() - t0
  const written = files.map(f => EventRecorder.key(f.writer.peerId, 'default', f.path))
  const allEntries: string[] = []
  for (const s of statuses) {
    // Every running node holds every file once replicated (settle=replicated).
    for (const f of files) if (flags.settle === 'replicated' || f.writer.peerId === s.peerId) allEntries.push(EventRecorder.key(s.peerId, 'default', f.path))
  }
  let viewCompleteMs: number | undefined
  /** The last poll answer that did not show the complete view yet: the figure lies in (notYetMs, viewCompleteMs]. */
  let notYetMs: number | undefined
  let polls = 0
  let returningStatus: StatusResponse | undefined
  await waitFor('the returning node to hold every record', async () => {
    const s = await returning.client().status()
    polls++
    returningStatus = s
    const ok = [...target].every(([peerId, t]) => s.view.nodes.some(v => v.peerId === peerId && v.generation === t.generation && v.sequence >= t.sequence))
    if (ok) viewCompleteMs = Date.now() - t0
    else notYetMs = Date.now() - t0
    return ok
  }, flags.catchupTimeoutMs, flags.pollMs)
  // Events can trail the status answer by a moment; give the stream a second.
  await waitFor('the file events', () => written.every(k => recorder.live.has(k)), 5000, 50).catch(() => {})
  const known = written.map(k => recorder.live.get(k))
  const missing = known.filter(e => e == null).length
  const filesKnownByEventsMs = missing === 0 ? Math.max(...known.map(e => (e as { time: number }).time)) - t0 : undefined
  const entriesSeen = allEntries.filter(k => recorder.live.has(k)).length
  if (entriesSeen < allEntries.length) {
    const missingKeys = allEntries.filter(k => !recorder.live.has(k))
    log(`missing entry events: ${missingKeys.length}, e.g. ${missingKeys.slice(0, 3).map(k => `${k} (other type v${recorder.versions.get(k)})`).join(', ')}`)
  }
  const firstEvent = Math.min(...[...recorder.live.values()].map(e => e.time))
  const memory = memoryMiB(returning.pid)
  // Cross-check: the writer is among the holders `where` lists, for a sample of files.
  const sample = files.filter((_, i) => i % Math.max(1, Math.floor(files.length / 50)) === 0)
  let whereOk = 0
  for (const f of sample) {
    const w = await returning.client().where('default', f.path)
    if (w.holders.some(h => h.peerId === f.writer.peerId)) whereOk++
  }
  const result = {
    nodes: n,
    agents: set.pids.length,
    machine: machine(),
    settings: { files: flags.files, fileBytes: flags.size, stableMs: flags.stableMs, heartbeatMs: flags.heartbeatMs > 0 ? flags.heartbeatMs : 'default (2000)', settle: flags.settle, pollMs: flags.pollMs },
    setup: { runningViewsListAllMs: viewsMs, replicatedAmongRunningMs: replicatedMs, entriesHeldByOthers: entriesOfOthers },
    // Headline: spawn of the returning agent -> its view holds every running node's record as of the restart.
    viewCompleteMs,
    goal: { underMs: 10_000, met: viewCompleteMs != null && viewCompleteMs < 10_000 },
    viewIncompleteAtMs: notYetMs,
    viewCompleteAfterApiUpMs: viewCompleteMs == null ? undefined : viewCompleteMs - streamOpenMs,
    filesKnownByEventsMs,
    whereCrossCheck: { sampled: sample.length, writerListed: whereOk },
    timeline: {
      eventStreamOpenMs: streamOpenMs,
      firstFileEventMs: Number.isFinite(firstEvent) ? firstEvent - t0 : undefined
    },
    events: { byType: Object.fromEntries(recorder.counts), streamClosedByAgent: recorder.closed, filesMissingFromStream: missing, entriesOfOthersSeen: entriesSeen, entriesOfOthersExpected: allEntries.length, statusPolls: polls },
    returningNode: { view: returningStatus?.view.files, gossip: returningStatus?.gossip, rssMiB: memory.rss, hwmMiB: memory.hwm },
    load: { before: loadBefore, after: loadavg() }
  }
  return result
})
