/**
 * slow-holder: one receiver fetches a file from three complete holders, one of which sends at a
 * tenth of the others' rate (tc htb on its egress, every node in its own namespace); the same
 * fetch from only the two fast holders is the baseline, in the same run, alternating the order.
 *
 *   npx node test/bench/slow-holder.ts [--file-mib 256] [--rate-mbit 200] [--slow-factor 10] [--runs 2]
 *
 * Layout: h1 (leader: holds every file from the start), h2, h3 (the slow one) and r (the receiver),
 * every dataset on demand. Files X1..Xn are first broadcast to h2, files Y1..Yn to h2 and h3; then
 * r is ordered to fetch X (two holders: h1, h2) and Y (three holders: h1, h2, h3), one at a time.
 * Prints one JSON object on stdout; progress on stderr.
 */
import { join } from 'node:path'
import type { StatusResponse } from '@shoal/client'
import {
  BenchAgent, CpuMeter, MiB, Network, broadcastAndWait, cores, hashIfPresent, loadavg, log, makeClusterKey, parseFlags, profileEnv, requireRoot,
  round, runBench, tempDir, waitForHolders, waitForMesh, waitForQuiet, writeRandomFile
} from './netlib.ts'

const flags = parseFlags({ fileMib: 256, rateMbit: 200, slowFactor: 10, runs: 2, timeoutS: 600, logLevel: 'warn', profileDir: '', quietPct: 30, quietWaitS: 300 })
const GOAL = 1.2

function receivedFrom (status: StatusResponse): Record<string, number> {
  return Object.fromEntries(status.transfer.peers.map(p => [p.peerId, p.bytesReceived]))
}

await runBench('slow-holder', async () => {
  requireRoot()
  const size = flags.fileMib * MiB
  const slowMbit = flags.rateMbit / flags.slowFactor
  const loadStart = loadavg()
  log(`slow holder: ${flags.fileMib} MiB, fast holders ${flags.rateMbit} Mbit/s, slow holder ${slowMbit} Mbit/s; load ${loadStart.join(' ')}`)
  const root = await tempDir('shoal-bench-slow-')
  const net = await Network.create(4, 'h')
  const keyFile = join(root, 'cluster.key')
  await makeClusterKey(keyFile)
  const names = ['h1', 'h2', 'h3', 'r']
  const agents = net.hosts.map((h, i) => new BenchAgent({
    name: names[i], dir: join(root, names[i]), host: h, listen: `/ip4/${h.ip}/tcp/4001`, clusterKeyFile: keyFile, logLevel: flags.logLevel, env: profileEnv(flags.profileDir)
  }))
  for (const a of agents) await a.prepare()
  const [h1, h2, h3, r] = agents
  for (const a of agents) {
    a.spec.leaders = [h1.peerId]
    if (a !== h1) Object.assign(a.spec, { onDemand: true, bootstrap: [h1.dialAddress] })
  }
  const byPeer = new Map(agents.map(a => [a.peerId, a.name]))
  // Caps first: the slow holder is slow from the start (it also serves while the files are placed).
  for (const h of net.hosts) await net.capEgress(h, h.index === 3 ? slowMbit : flags.rateMbit)

  log('writing the files')
  const files: Array<{ name: string, holders: BenchAgent[], sha: string }> = []
  for (let k = 1; k <= flags.runs; k++) {
    for (const kind of ['X', 'Y']) {
      const name = `${kind}${k}.bin`
      files.push({ name, holders: kind === 'X' ? [h1, h2] : [h1, h2, h3], sha: await writeRandomFile(join(h1.data, name), size) })
    }
  }
  await h1.start(120_000)
  await Promise.all([h2, h3, r].map(async a => await a.start()))
  await waitForMesh(agents, 60_000)
  for (const f of files) await waitForHolders(agents, f.name, [h1], 120_000)

  log('placing the files on the other holders')
  for (const f of files) {
    await broadcastAndWait(h1, f.name, f.holders.filter(a => a !== h1), flags.timeoutS * 1000, byPeer)
  }
  for (const f of files) await waitForHolders([r], f.name, f.holders, 60_000)

  // Alternate the order between runs: X1 Y1, Y2 X2, X3 Y3, ...
  const order: typeof files = []
  for (let k = 1; k <= flags.runs; k++) {
    const pair = files.filter(f => f.name.endsWith(`${k}.bin`))
    order.push(...(k % 2 === 1 ? pair : pair.reverse()))
  }
  const fetches: Array<Record<string, unknown>> = []
  for (const f of order) {
    const quiet = await waitForQuiet(flags.quietPct, flags.quietWaitS)
    const before = receivedFrom(await r.client.status())
    const load = loadavg()
    const cpu = new CpuMeter(agents.map(a => ({ name: a.name, pid: a.pid })))
    const timing = await broadcastAndWait(h1, f.name, [r], flags.timeoutS * 1000, byPeer)
    const cpuUse = cpu.stop()
    const after = receivedFrom(await r.client.status())
    const record = (await r.client.transfers()).transfers.find(t => t.path === f.name)
    const fromMiB = Object.fromEntries(agents.filter(a => a !== r).map(a => [a.name, round(((after[a.peerId] ?? 0) - (before[a.peerId] ?? 0)) / MiB, 1)]))
    const hashOk = (await hashIfPresent(join(r.data, f.name))) === f.sha
    log(`${f.name} from ${f.holders.map(h => h.name).join('+')}: ${timing.seconds} s (load ${load.join(' ')}), received ${JSON.stringify(fromMiB)} MiB`)
    fetches.push({
      file: f.name,
      holders: f.holders.map(h => h.name),
      seconds: timing.seconds,
      engineSeconds: record?.startedAt != null && record.endedAt != null ? round((record.endedAt - record.startedAt) / 1000, 3) : null,
      receivedMiB: fromMiB,
      hashOk,
      load,
      quiet,
      cpu: { machineBusyPct: cpuUse.machineBusyPct, processPct: cpuUse.processPct, othersPct: cpuUse.othersPct }
    })
  }
  const mean = (holders: number): number => {
    const xs = fetches.filter(f => (f.holders as string[]).length === holders).map(f => f.seconds as number)
    return xs.reduce((s, x) => s + x, 0) / xs.length
  }
  const two = mean(2)
  const three = mean(3)
  const hashesOk = fetches.every(f => f.hashOk === true)
  return {
    node: process.version,
    cores: cores(),
    fileMiB: flags.fileMib,
    rateMbit: flags.rateMbit,
    slowMbit,
    load: { start: loadStart, end: loadavg() },
    twoFastHoldersSeconds: round(two, 3),
    withSlowHolderSeconds: round(three, 3),
    ratio: round(three / two, 3),
    goal: GOAL,
    met: three / two <= GOAL && hashesOk,
    idealSecondsTwoFast: round(size * 8 / (2 * flags.rateMbit * 1e6), 2),
    hashesOk,
    fetches
  }
})
