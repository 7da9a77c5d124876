/**
 * Scale of the cluster manifest: 16 nodes x F files (default 100,000), every node holding the
 * same F paths with the same content (the steady state of a "hold everything" cluster), and the
 * latency of `where` over the Unix socket.
 *
 *   npx node test/bench/scale.ts [--mode protocol|merge] [--nodes 16] [--files 100000] [--queries 10000]
 *
 * --mode protocol (default): one real agent process holds F real files in its dataset (scanned and
 *   hashed by the agent itself); 15 in-process libp2p nodes (same cluster key: pnet, Noise, Yamux,
 *   identify) dial it and serve their records over /shoal/manifest/1.0.0 when it pulls (which it
 *   does on connect, as it would from any peer). Memory is the agent's VmRSS/VmHWM; `where` goes
 *   through ShoalClient to the agent's socket from a process of its own (where-client.ts: an
 *   application beside the agent), in --rounds rounds, each followed by the same queries to a
 *   server that answers with fixed bytes (floor-server.ts: what the machine allows); each such
 *   process asks --passes passes after its warm-up (the first: fresh code; the last: the steady
 *   state), and its slow queries are matched with both processes' garbage collections
 *   (gc-timeline.ts); then, for comparison, from this process (which also runs the 15 simulated peers).
 * --mode merge: this process builds a ClusterManifest from 16 records encoded and decoded as
 *   ManifestPages (the agent's wire codec) and merged with replaceRecord, then serves `where`
 *   through the agent's real ApiServer class (imported from packages/agent/dist/api.js: it is not
 *   exported by @shoal/agent) with a backend that answers as Agent.where does (ClusterManifest.locate).
 *   Memory is this process's VmRSS after a forced GC, and heap bytes per entry.
 *
 * Prints one JSON object on stdout; progress on stderr.
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { execFileSync, spawn } from 'node:child_process'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { ShoalClient } from '@shoal/client'
import { ClusterManifest, chooseChunkSize, hashBytes } from '@shoal/manifest'
import {
  ManifestPage, ManifestRequest, ManifestRequestKind, ManifestSummary, MAX_MANIFEST_PAGE_BYTES, PROTOCOL_MANIFEST, checkEntries, checkNodeInfo,
  type FileEntry, type NodeInfo
} from '@shoal/wire'
import {
  AgentSet, REPO, loadavg, log, machine, mapLimit, measureCpu, percentile, memoryBreakdownMiB, memoryMiB, parseFlags, rng, runBench, sleep, splitNodeArgs, summarise, tempDir, waitFor,
  onCleanup
} from './lib.ts'
import { DATASET, attributeSlow, latencyFigures, parseGcTimeline, pathOf, queryLatencies, rawWhere, type GcSpan } from './where-queries.ts'

const flags = parseFlags({
  mode: 'protocol',
  nodes: 16,
  files: 100_000,
  queries: 10_000,
  warmup: 500,
  /** Entries per ManifestPage the in-process nodes send (the agent's own budget gives ~4,900). */
  pageEntries: 4000,
  seed: 7,
  settleMs: 10_000,
  readyTimeoutMs: 1_800_000,
  /** Protocol mode: write a heap snapshot of the agent into this directory, when it is ready with only its own files (baseline) or after it holds every record (settled). */
  heapSnapshotDir: '',
  heapSnapshotAt: 'settled',
  keep: false,
  cpuProf: false,
  /** Protocol mode: extra Node options for the agent process, space-separated (e.g. '--max-semi-space-size=16'). */
  agentNodeArgs: '',
  /** Protocol mode: extra `shoal agent` flags, space-separated (e.g. '--rescan-ms 600000'). */
  agentArgs: '',
  /** Protocol mode: from this process, query through ShoalClient this many times over (later passes repeat the first one's paths: warm-up effects). */
  clientPasses: 1,
  /** Protocol mode: rounds of where from a separate process, each to the agent and then to the floor. */
  rounds: 3,
  /** Protocol mode: passes of --queries each that every separate querying process asks after its warm-up (the first: a fresh process; the last: the steady state). */
  passes: 3
})

function contentOf (i: number): string {
  return `${i}\n`
}

/** The entries every node holds: the same F files, seq 1..F, as the agent's scan would index them. */
function makeEntries (files: number): FileEntry[] {
  const entries: FileEntry[] = new Array(files)
  const mtimeMs = Date.now() - 60_000
  for (let i = 0; i < files; i++) {
    const data = Buffer.from(contentOf(i))
    const chunkSize = chooseChunkSize(data.length)
    const { contentId } = hashBytes(data, chunkSize)
    entries[i] = {
      dataset: DATASET, path: pathOf(i), size: data.length, mtimeMs, mode: 0o644, contentId: contentId as Uint8Array<ArrayBuffer>,
      chunkSize, version: 1, deleted: false, seq: i + 1, partial: false, have: new Uint8Array(0)
    } as FileEntry
  }
  return entries
}

function pages (entries: FileEntry[], size: number): FileEntry[][] {
  const out: FileEntry[][] = []
  for (let i = 0; i < entries.length; i += size) out.push(entries.slice(i, i + size))
  if (out.length === 0) out.push([])
  return out
}

// ---------------------------------------------------------------- protocol mode

const GC_TIMELINE = join(REPO, 'test/bench/gc-timeline.ts')

/** Starts floor-server.ts answering every `where` with a real answer of the agent (the same bytes); its socket, its collections' file and how to stop it. */
async function startFloor (agentSocket: string, dir: string): Promise<{ socket: string, gcFile: string, stop: () => void }> {
  const bodyFile = join(dir, 'floor-body.json')
  await writeFile(bodyFile, JSON.stringify(await new ShoalClient(agentSocket).where(DATASET, pathOf(0))))
  const socket = join(dir, 'floor.sock')
  const gcFile = join(dir, 'floor-gc.jsonl')
  const server = spawn(process.execPath, ['--import', GC_TIMELINE, join(REPO, 'test/bench/floor-server.ts'), '--socket', socket, '--body', bodyFile],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, BENCH_GC_TIMELINE: gcFile } })
  onCleanup(() => { if (server.exitCode === null && server.signalCode === null) server.kill() })
  await new Promise<void>((resolve, reject) => {
    server.on('error', reject)
    server.on('exit', (code) => reject(new Error(`floor-server exited with ${code}`)))
    server.stdout.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolve() })
  })
  return {
    socket,
    gcFile,
    stop: () => {
      server.removeAllListeners('exit')
      server.kill()
    }
  }
}

/** What where-client.ts prints. */
interface WhereClientResult { holders: number, passes: Array<Record<string, number>>, clientGc: Record<string, number>, slow: Array<[number, number, number]>, gcs: GcSpan[] }

/** Runs where-client.ts against the agent's socket in a process of its own; its figures. */
async function whereFromProcess (socket: string, via: 'client' | 'raw', seed: number): Promise<WhereClientResult> {
  const args = [join(REPO, 'test/bench/where-client.ts'), '--socket', socket, '--files', String(flags.files), '--queries', String(flags.queries),
    '--warmup', String(flags.warmup), '--passes', String(flags.passes), '--seed', String(seed), '--via', via]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  onCleanup(() => { if (child.exitCode === null && child.signalCode === null) child.kill() })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>((resolve, reject) => { child.on('error', reject); child.on('exit', resolve) })
  if (code !== 0) throw new Error(`where-client (${via}) exited with ${code}: ${err.trim()}`)
  return JSON.parse(out) as WhereClientResult
}

/** The agent's status.memory in MiB; its counts (compactions, requestTrims) as they are. */
function mib (bytes: Record<string, number>): Record<string, number> {
  const counts = new Set(['compactions', 'requestTrims'])
  return Object.fromEntries(Object.entries(bytes).map(([k, v]) => [k, counts.has(k) ? v : Number((v / 1048576).toFixed(1))]))
}

async function parsePsk (file: string): Promise<Uint8Array> {
  const lines = (await readFile(file, 'utf8')).trim().split(/\r?\n/)
  if (lines.length !== 3 || !/^[0-9a-fA-F]{64}$/.test(lines[2])) throw new Error(`${file} is not a /key/swarm/psk/1.0.0/ key`)
  return new TextEncoder().encode(`${lines[0]}\n${lines[1]}\n${lines[2].toLowerCase()}`)
}

interface FakeNode {
  peerId: string
  stop: () => Promise<void>
  /** Records served, and responses in progress. */
  served: number
  serving: number
  /** Hangs up and dials the agent again (a new connection makes the agent pull again). */
  reconnect: () => Promise<void>
  reconnects: number
}

/** A libp2p node of the cluster that holds `entries` and answers manifest requests like an agent. */
async function startFakeNode (name: string, psk: Uint8Array, entries: FileEntry[], agentAddr: string): Promise<FakeNode> {
  const { createLibp2p } = await import('libp2p')
  const { tcp } = await import('@libp2p/tcp')
  const { noise } = await import('@chainsafe/libp2p-noise')
  const { yamux } = await import('@chainsafe/libp2p-yamux')
  const { identify } = await import('@libp2p/identify')
  const { privateNetwork } = await import('@shoal/agent')
  const { pbStream } = await import('@libp2p/utils')
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const { multiaddr } = await import('@multiformats/multiaddr')
  const node = await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionProtector: privateNetwork(psk),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  })
  const peerId = node.peerId.toString()
  const info: NodeInfo = {
    name, generation: Date.now(), sequence: entries.length, role: 'persistent', datasets: [DATASET],
    addrs: node.getMultiaddrs().map(a => a.toString().replace(/\/p2p\/[^/]+$/, ''))
  } as NodeInfo
  const target = multiaddr(agentAddr)
  const fake: FakeNode = {
    peerId,
    served: 0,
    serving: 0,
    reconnects: 0,
    stop: async () => { await node.stop() },
    reconnect: async () => {
      fake.reconnects++
      await node.hangUp(target).catch(() => {})
      await dialAgent()
    }
  }
  // The agent's event loop can be busy for seconds while it merges records: dial patiently.
  const dialAgent = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await node.dial(target, { signal: AbortSignal.timeout(60_000) })
        return
      } catch (err: any) {
        if (attempt >= 5) throw err
        log(`  ${name}: dial failed (${err.message}); retrying`)
        await sleep(2000)
      }
    }
  }
  await node.handle(PROTOCOL_MANIFEST, async (stream: any) => {
    const signal = AbortSignal.timeout(120_000)
    const pb = pbStream(stream, { maxDataLength: 1024 })
    fake.serving++
    try {
      const req = await pb.read(ManifestRequest, { signal })
      if (req.kind === ManifestRequestKind.SUMMARY) {
        await pb.write({ nodes: [{ peerId, generation: info.generation, sequence: info.sequence }] }, ManifestSummary, { signal })
      } else {
        const full = req.generation !== info.generation || req.sinceSequence === 0 || req.sinceSequence > info.sequence
        const list = full ? entries : entries.slice(req.sinceSequence)
        const all = pages(list, flags.pageEntries)
        for (let i = 0; i < all.length; i++) {
          await pb.write({ node: info, full, entries: all[i], last: i === all.length - 1 } as ManifestPage, ManifestPage, { signal })
        }
        fake.served++
      }
      await stream.close({ signal })
    } catch (err: any) {
      stream.abort(err)
    } finally {
      fake.serving--
    }
  }, { maxInboundStreams: 64 })
  await dialAgent()
  return fake
}

/** Makes the agent (started with --heapsnapshot-signal=SIGUSR2) write a heap snapshot; returns its path. */
async function takeHeapSnapshot (pid: number): Promise<string | undefined> {
  if (flags.heapSnapshotDir === '') return undefined
  await mkdir(flags.heapSnapshotDir, { recursive: true })
  const before = new Set(await readdir(flags.heapSnapshotDir))
  process.kill(pid, 'SIGUSR2')
  let lastSize = -1
  const file = await waitFor('the heap snapshot', async () => {
    const name = (await readdir(flags.heapSnapshotDir)).find(f => f.endsWith('.heapsnapshot') && !before.has(f))
    if (name == null) return undefined
    const size = (await stat(join(flags.heapSnapshotDir, name))).size
    const done = size > 0 && size === lastSize
    lastSize = size
    return done ? join(flags.heapSnapshotDir, name) : undefined
  }, 600_000, 2000)
  log(`heap snapshot written: ${file}`)
  return file
}

async function protocolMode (): Promise<Record<string, unknown>> {
  const set = new AgentSet('shoal-bench-scale-', flags.keep)
  const agent = set.create({
    name: 'scale-agent',
    logLevel: 'info',
    args: ['--stable-ms', '50', ...splitNodeArgs(flags.agentArgs)],
    nodeArgs: [
      // Its collections, to match with slow answers (gc-timeline.ts; the file is named in the environment at spawn).
      '--import', GC_TIMELINE,
      ...splitNodeArgs(flags.agentNodeArgs),
      ...(flags.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${join(set.root, 'prof')}`] : []),
      ...(flags.heapSnapshotDir !== '' ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${flags.heapSnapshotDir}`] : [])
    ]
  })
  log(`writing ${flags.files} files into the agent's dataset; load ${loadavg()}`)
  let t = Date.now()
  for (let d = 0; d < 256; d++) await mkdir(join(agent.data, 'shards', `s${String(d).padStart(3, '0')}`), { recursive: true })
  await mapLimit(Array.from({ length: flags.files }, (_, i) => i), 64, async (i) => { await writeFile(join(agent.data, ...pathOf(i).split('/')), contentOf(i)) })
  // The files' pages go to disk now, not by the kernel's writeback half a minute later, in the middle of the measurements.
  execFileSync('sync')
  const writeMs = Date.now() - t
  const entries = makeEntries(flags.files)
  await sleep(200)

  log(`starting the agent (its API answers at once; it then scans and hashes ${flags.files} files); load ${loadavg()}`)
  t = Date.now()
  const agentGcFile = join(set.root, 'agent-gc.jsonl')
  process.env.BENCH_GC_TIMELINE = agentGcFile
  try {
    await agent.spawn()
  } finally {
    delete process.env.BENCH_GC_TIMELINE
  }
  await agent.ready(flags.readyTimeoutMs, 500)
  await waitFor('the agent to index every file', async () => (await agent.client().status()).datasets[0].files === flags.files ? true : undefined, flags.readyTimeoutMs, 500)
  const agentReadyMs = Date.now() - t
  // The scan's garbage is not the steady state: let a few GC cycles run before the baseline is taken.
  await sleep(flags.settleMs)
  const baseline = memoryMiB(agent.pid)
  const baselineBreakdown = memoryBreakdownMiB(agent.pid)
  const baselineHeap: Record<string, number> = (await agent.client().status()).memory
  let heapSnapshot: string | undefined
  if (flags.heapSnapshotAt === 'baseline') heapSnapshot = await takeHeapSnapshot(agent.pid)
  const self = await agent.client().status()
  log(`agent ready after ${agentReadyMs} ms holding ${self.datasets[0].files} files; RSS ${baseline.rss} MiB; load ${loadavg()}`)
  if (self.datasets[0].files !== flags.files) throw new Error(`the agent indexed ${self.datasets[0].files} files, expected ${flags.files}`)

  const psk = await parsePsk(agent.clusterKeyFile)
  const fakes: FakeNode[] = []
  t = Date.now()
  for (let k = 1; k < flags.nodes; k++) {
    const fake = await startFakeNode(`peer-${k}`, psk, entries, agent.address)
    fakes.push(fake)
    onCleanup(async () => { await fake.stop() })
  }
  log(`${fakes.length} in-process nodes connected; waiting for the agent to hold every record; load ${loadavg()}`)
  const want = new Set(fakes.map(f => f.peerId))
  let lastLog = 0
  let lastProgress = Date.now()
  let doneBefore = 0
  await waitFor('the agent to hold every record', async () => {
    const s = await agent.client().status()
    const complete = new Set(s.view.nodes.filter(v => want.has(v.peerId) && v.sequence === flags.files).map(v => v.peerId))
    const done = complete.size
    if (done > doneBefore) { doneBefore = done; lastProgress = Date.now() }
    // Real peers heartbeat, so a failed pull is retried; these nodes do not: after a quiet minute,
    // the ones not yet held reconnect, which makes the agent pull again.
    if (Date.now() - lastProgress > 60_000 && fakes.every(f => f.serving === 0)) {
      lastProgress = Date.now()
      const missing = fakes.filter(f => !complete.has(f.peerId))
      log(`  no progress for a minute: ${missing.length} nodes reconnect`)
      for (const f of missing) await f.reconnect().catch((err: any) => log(`  reconnect failed: ${err.message}`))
    }
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now()
      log(`  ${done}/${want.size} records complete; RSS ${memoryMiB(agent.pid).rss} MiB; load ${loadavg()}`)
    }
    return done === want.size
  }, flags.readyTimeoutMs, 1000)
  const buildMs = Date.now() - t
  const afterBuild = memoryMiB(agent.pid)
  log(`every record held after ${buildMs} ms; RSS ${afterBuild.rss} MiB, HWM ${afterBuild.hwm} MiB; settling ${flags.settleMs} ms`)
  execFileSync('sync') // the agent's index writes too
  /** The agent's RSS once a second for the settle time. */
  const quietSamples = async (): Promise<number[]> => {
    const samples: number[] = []
    for (let i = 0; i < flags.settleMs / 1000; i++) {
      await sleep(1000)
      samples.push(memoryMiB(agent.pid).rss)
    }
    return samples
  }
  const rssSamples = await quietSamples()
  const settled = memoryMiB(agent.pid)
  const settledBreakdown = memoryBreakdownMiB(agent.pid)
  const settledHeap: Record<string, number> = (await agent.client().status()).memory
  if (flags.heapSnapshotAt === 'settled') heapSnapshot = await takeHeapSnapshot(agent.pid)
  const idleCpu = (await measureCpu([agent.pid], 10_000))[0]
  const status = await agent.client().status()

  const loadBeforeQueries = loadavg()
  // The headline: an application in a process of its own (as it would be). Each round asks the
  // agent and then the floor (floor-server.ts: the same answer bytes, nothing looked up) with the
  // same clients and paths, so that the machine's noise of the moment shows in both; rounds use
  // other paths (first lookups). Then the same from this process, which also runs the 15 simulated peers.
  const floorServer = await startFloor(agent.socket, set.root)
  // The agent's resident memory while it answers (sampled twice a second through the queries).
  const rssWhileQueried: number[] = []
  const rssSampler = setInterval(() => { rssWhileQueried.push(memoryMiB(agent.pid).rss) }, 500)
  onCleanup(() => { clearInterval(rssSampler) })
  const rounds: Array<{ client: WhereClientResult, raw: WhereClientResult, floorClient: WhereClientResult, floorRaw: WhereClientResult }> = []
  try {
    for (let r = 0; r < flags.rounds; r++) {
      const seed = flags.seed + 1 + 10 * r
      log(`round ${r + 1}/${flags.rounds}: where ${flags.passes} x ${flags.queries} times from a separate process to the agent and to the floor, ShoalClient then raw HTTP; load ${loadavg()}`)
      const client = await whereFromProcess(agent.socket, 'client', seed)
      const floorClient = await whereFromProcess(floorServer.socket, 'client', seed)
      const raw = await whereFromProcess(agent.socket, 'raw', seed + 1)
      const floorRaw = await whereFromProcess(floorServer.socket, 'raw', seed + 1)
      rounds.push({ client, raw, floorClient, floorRaw })
    }
  } finally {
    floorServer.stop()
  }
  // What each round's queries over 1 ms coincided with: a collection in the server, in the client, or neither.
  const agentGcs = parseGcTimeline(await readFile(agentGcFile, 'utf8'))
  const floorGcs = parseGcTimeline(await readFile(floorServer.gcFile, 'utf8').catch(() => ''))
  const series = { client: agentGcs, floorClient: floorGcs, raw: agentGcs, floorRaw: floorGcs }
  type Series = keyof typeof series
  const firstPass = 0
  const lastPass = flags.passes - 1
  const perSeries = <T>(f: (k: Series) => T): Record<Series, T> => Object.fromEntries(Object.keys(series).map(k => [k, f(k as Series)])) as Record<Series, T>
  const slowIn = (result: WhereClientResult, pass: number, serverGcs: GcSpan[]): ReturnType<typeof attributeSlow> =>
    attributeSlow(result.slow.filter(q => q[2] === pass).map(([start, ms]) => [start, ms]), result.gcs, serverGcs)
  const slowQueries = perSeries(k => rounds.map(r => ({ firstPass: slowIn(r[k], firstPass, series[k]), lastPass: slowIn(r[k], lastPass, series[k]) })))
  const p99sOf = (pass: number): Record<Series, number[]> => perSeries(k => rounds.map(r => r[k].passes[pass].p99))
  const roundsP99 = { lastPass: p99sOf(lastPass), firstPass: p99sOf(firstPass) }
  // The median by nearest rank (with an even number of rounds, the lower middle).
  const median = (v: number[]): number => percentile([...v].sort((a, b) => a - b), 50)
  const medianP99 = { lastPass: perSeries(k => median(roundsP99.lastPass[k])), firstPass: perSeries(k => median(roundsP99.firstPass[k])) }
  const overFloor = (m: Record<Series, number>): { client: number, raw: number } => ({ client: Number((m.client / m.floorClient).toFixed(2)), raw: Number((m.raw / m.floorRaw).toFixed(2)) })
  log(`querying where ${flags.queries} times (ShoalClient, in the benchmark process); load ${loadavg()}`)
  const client = new ShoalClient(agent.socket)
  const whereViaClient = async (p: string): Promise<number> => (await client.where(DATASET, p)).holders.length
  const viaClient = await queryLatencies(whereViaClient, flags.files, flags.queries, flags.warmup, flags.seed)
  const laterPasses: Array<Record<string, number>> = []
  for (let pass = 1; pass < flags.clientPasses; pass++) {
    log(`querying where ${flags.queries} times more (ShoalClient, in the benchmark process, pass ${pass + 1}); load ${loadavg()}`)
    laterPasses.push(latencyFigures((await queryLatencies(whereViaClient, flags.files, flags.queries, flags.warmup, flags.seed)).latencies))
  }
  log(`querying where ${flags.queries} times (raw keep-alive HTTP, in the benchmark process); load ${loadavg()}`)
  const raw = rawWhere(agent.socket)
  onCleanup(raw.close)
  const viaRaw = await queryLatencies(raw.ask, flags.files, flags.queries, flags.warmup, flags.seed)
  clearInterval(rssSampler)
  const afterQueries = memoryMiB(agent.pid)
  const afterQueriesBreakdown = memoryBreakdownMiB(agent.pid)
  const statusAfter = await agent.client().status()
  const afterQueriesHeap: Record<string, number> = statusAfter.memory
  // Then as long as the settle before the queries, without requests.
  const rssQuietSamples = await quietSamples()
  const afterQuiet = memoryMiB(agent.pid)
  const afterQuietBreakdown = memoryBreakdownMiB(agent.pid)
  const rssWhileQueriedMax = Math.max(...rssWhileQueried)
  /** What the agent did besides answering while the queries ran: scans and manifest exchanges. */
  const agentWorkDuringQueries = {
    scans: statusAfter.scan.scans - status.scan.scans,
    directoryScans: statusAfter.scan.directoryScans - status.scan.directoryScans,
    rescansDeferred: statusAfter.scan.rescansDeferred - status.scan.rescansDeferred,
    filesHashed: statusAfter.scan.filesHashed - status.scan.filesHashed,
    pulls: statusAfter.gossip.pulls - status.gossip.pulls,
    summaries: statusAfter.gossip.summaries - status.gossip.summaries,
    /** Freed malloc memory handed back after bursts of requests (see MemoryCompactor.afterRequests). */
    requestTrims: statusAfter.memory.requestTrims - status.memory.requestTrims
  }
  const clientFigures = rounds[0].client.passes[lastPass]
  return {
    mode: `protocol: one real agent process; ${flags.nodes - 1} in-process libp2p nodes serve their records over /shoal/manifest/1.0.0`,
    nodes: flags.nodes,
    filesPerNode: flags.files,
    entries: flags.nodes * flags.files,
    layout: 'every node holds the same F paths with the same content (fully replicated)',
    machine: machine(),
    view: { files: status.view.files, nodes: status.view.nodes.length },
    timing: { writeFilesMs: writeMs, agentScanAndReadyMs: agentReadyMs, pullAllRecordsMs: buildMs },
    memoryMiB: {
      agentBaselineWithOwnRecord: baseline.rss,
      baselineBreakdown,
      baselineV8: mib(baselineHeap),
      rssAfterBuild: afterBuild.rss,
      rssSettled: settled.rss,
      rssSettledMin: Math.min(...rssSamples),
      rssAfterQueries: afterQueries.rss,
      /** Sampled every 500 ms while the separate processes asked (every round). */
      rssWhileQueriedMax,
      rssWhileQueriedMedian: percentile([...rssWhileQueried].sort((a, b) => a - b), 50),
      /** After the queries, as long a quiet as the settle before them. */
      rssAfterQueriesQuiet: afterQuiet.rss,
      rssAfterQueriesQuietMin: Math.min(...rssQuietSamples),
      hwm: afterQuiet.hwm,
      settledBreakdown,
      afterQueriesBreakdown,
      afterQuietBreakdown,
      /** The agent's own process.memoryUsage() when settled (its status), MiB. */
      settledV8: mib(settledHeap),
      afterQueriesV8: mib(afterQueriesHeap)
    },
    goalRss: { atMostMiB: 300, met: settled.rss <= 300, whileQueriedMaxMiB: rssWhileQueriedMax, metWhileQueried: rssWhileQueriedMax <= 300 },
    /** ShoalClient in a process of its own, the first round, its last pass (the steady state). */
    whereMs: clientFigures,
    /** The same process's first pass (after --warmup queries only): a fresh client, and in the first round a fresh agent API. */
    whereFirstPassMs: rounds[0].client.passes[firstPass],
    whereHolders: rounds[0].client.holders,
    /** Judged on the median over the rounds of each round's p99 in its last pass; the first passes' median beside it. */
    goalWhere: { p99AtMostMs: 1, medianP99Ms: medianP99.lastPass.client, met: medianP99.lastPass.client <= 1, firstPassMedianP99Ms: medianP99.firstPass.client },
    whereRawKeepAliveMs: rounds[0].raw.passes[lastPass],
    /** The same clients against floor-server.ts (fixed answer, same bytes), first round, last pass: what two processes and HTTP on a Unix socket cost here. */
    floorMs: { client: rounds[0].floorClient.passes[lastPass], raw: rounds[0].floorRaw.passes[lastPass] },
    /** p99 of each round (ms): agent and floor, ShoalClient and raw HTTP; last pass and first pass. */
    roundsP99,
    medianP99,
    whereP99OverFloor: { lastPass: overFloor(medianP99.lastPass), firstPass: overFloor(medianP99.firstPass) },
    /** Per round, first and last pass: the queries over 1 ms and what each coincided with: a collection in the server (agent or floor), in the querying process, both, or neither. */
    slowQueries,
    /** Collections in the querying processes while they asked (count, longest pause in ms), first round. */
    clientGc: { client: rounds[0].client.clientGc, raw: rounds[0].raw.clientGc, floorClient: rounds[0].floorClient.clientGc, floorRaw: rounds[0].floorRaw.clientGc },
    /** The same queries from the benchmark process (which runs the simulated peers too); later passes repeat the first one's paths. */
    whereInBenchProcessMs: latencyFigures(viaClient.latencies),
    whereInBenchProcessLaterPassesMs: laterPasses,
    whereInBenchProcessRawMs: latencyFigures(viaRaw.latencies),
    agentIdleCpuPercent: idleCpu,
    agentWorkDuringQueries,
    heapSnapshot,
    recordsServed: fakes.reduce((sum, f) => sum + f.served, 0),
    reconnectsNeeded: fakes.reduce((sum, f) => sum + f.reconnects, 0),
    load: { beforeQueries: loadBeforeQueries, after: loadavg() }
  }
}

// ---------------------------------------------------------------- merge mode

async function mergeMode (): Promise<Record<string, unknown>> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  const apiPath = join(REPO, 'packages/agent/dist/api.js')
  const eventsPath = join(REPO, 'packages/agent/dist/events.js')
  const { ApiServer } = await import(apiPath) as { ApiServer: new (backend: unknown) => { listen: (p: string) => Promise<void>, close: () => Promise<void> } }
  const { EventHub } = await import(eventsPath) as { EventHub: new () => unknown }

  const heap = (): number => { gc(); gc(); return process.memoryUsage().heapUsed }
  const base = heap()
  const rssBase = memoryMiB(process.pid).rss
  const cluster = new ClusterManifest()
  const peers: string[] = []
  const generated = makeEntries(flags.files)
  const encodedPages = pages(generated, flags.pageEntries)
  let t = Date.now()
  let decodeMs = 0
  let mergeMs = 0
  for (let k = 0; k < flags.nodes; k++) {
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    peers.push(peerId)
    const info = { name: `peer-${k}`, generation: Date.now(), sequence: flags.files, addrs: ['/ip4/127.0.0.1/tcp/4001'], role: 'persistent', datasets: [DATASET] } as NodeInfo
    // Through the wire codec, as a pull receives them: page by page, then validated and merged whole.
    let t1 = performance.now()
    const entries: FileEntry[] = []
    for (let i = 0; i < encodedPages.length; i++) {
      const bytes = ManifestPage.encode({ node: info, full: true, entries: encodedPages[i], last: i === encodedPages.length - 1 } as ManifestPage)
      const page = ManifestPage.decode(bytes)
      checkNodeInfo(page.node)
      checkEntries(page.entries, page.node.sequence)
      entries.push(...page.entries)
    }
    decodeMs += performance.now() - t1
    t1 = performance.now()
    cluster.replaceRecord(peerId, info, entries)
    mergeMs += performance.now() - t1
    if ((k + 1) % 4 === 0) log(`  ${k + 1}/${flags.nodes} records merged; heap ${((heap() - base) / 2 ** 20).toFixed(0)} MiB; load ${loadavg()}`)
  }
  const buildMs = Date.now() - t
  generated.length = 0
  encodedPages.length = 0
  const heapBytes = heap() - base
  const rss = memoryMiB(process.pid)

  const dir = tempDir('shoal-bench-scale-merge-', flags.keep)
  const socket = join(dir, 'api.sock')
  const selfId = peers[0]
  const unsupported = (): never => { throw new Error('not served by this benchmark') }
  // As Agent.where (packages/agent/src/agent.ts) answers.
  const whereOf = (dataset: string, path: string): unknown => ({ dataset, path, ...cluster.locate(dataset, path, selfId) })
  const computeMs: number[] = []
  const server = new ApiServer({
    events: new EventHub(),
    status: unsupported,
    transfers: unsupported,
    files: unsupported,
    lacking: unsupported,
    replicas: unsupported,
    conflicts: unsupported,
    where: (dataset: string, path: string) => {
      const t0 = performance.now()
      try {
        return whereOf(dataset, path)
      } finally {
        computeMs.push(performance.now() - t0)
      }
    }
  })
  await server.listen(socket)
  onCleanup(async () => { await server.close() })
  log(`serving where on ${socket}; querying ${flags.queries} times in this same process; load ${loadavg()}`)
  const loadBeforeQueries = loadavg()
  const client = new ShoalClient(socket)
  const viaClient = await queryLatencies(async (p) => (await client.where(DATASET, p)).holders.length, flags.files, flags.queries, flags.warmup, flags.seed)
  const compute = computeMs.slice(flags.warmup, flags.warmup + flags.queries)
  const raw = rawWhere(socket)
  onCleanup(raw.close)
  const viaRaw = await queryLatencies(raw.ask, flags.files, flags.queries, flags.warmup, flags.seed)
  const clientFigures = latencyFigures(viaClient.latencies)
  return {
    mode: 'merge: this process built the ClusterManifest (ManifestPage encode/decode, checkEntries, replaceRecord) and served where through ApiServer imported from packages/agent/dist/api.js; client and server share one process',
    nodes: flags.nodes,
    filesPerNode: flags.files,
    entries: flags.nodes * flags.files,
    layout: 'every node holds the same F paths with the same content (fully replicated)',
    machine: machine(),
    view: { files: cluster.fileCount, nodes: cluster.allNodes().length },
    timing: { buildMs, decodeAndValidateMs: Math.round(decodeMs), replaceRecordMs: Math.round(mergeMs) },
    memoryMiB: { processRssBeforeBuild: rssBase, processRss: rss.rss, hwm: rss.hwm, manifestHeap: Number((heapBytes / 2 ** 20).toFixed(1)) },
    bytesPerEntry: Math.round(heapBytes / (flags.nodes * flags.files)),
    goalRss: { atMostMiB: 300, met: rss.rss <= 300 },
    whereMs: clientFigures,
    whereHolders: viaClient.holders,
    goalWhere: { p99AtMostMs: 1, met: clientFigures.p99 <= 1 },
    whereRawKeepAliveMs: latencyFigures(viaRaw.latencies),
    // Time inside the backend's where (cluster queries + mapping), without HTTP and JSON.
    whereComputeMs: latencyFigures(compute),
    load: { beforeQueries: loadBeforeQueries, after: loadavg() }
  }
}

await runBench('scale', async () => {
  if (flags.mode === 'protocol') return await protocolMode()
  if (flags.mode === 'merge') return await mergeMode()
  throw new Error('--mode is protocol or merge')
})
