/**
 * pair: one file between two agents on loopback, no caps, against a raw libp2p stream of the same
 * bytes over the same stack (TCP + pnet + Noise + Yamux: the agent's own `createNode`), two
 * processes, measured in the same run (raw, shoal, raw). Also the receiving agent's peak RSS
 * (VmHWM), and the peak RSS of a fresh receiver of a bigger file.
 *
 *   npx node test/bench/pair.ts [--file-mib 1024] [--big-mib 4096] [--raw-runs 2] [--timeout-s 900]
 *
 * --big-mib 0 skips the big file. Prints one JSON object on stdout; progress on stderr.
 *
 * Internally the same file runs the two raw processes: `--role raw-server` and `--role raw-client`.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs'
import { open, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  BenchAgent, CpuMeter, MiB, Proc, broadcastAndWait, cores, cpuSeconds, hashIfPresent, loadavg, log, makeClusterKey, memoryMiB, parseFlags, profileEnv, round,
  runBench, sleep, tempDir, waitFor, waitForHolders, waitForMesh, waitForQuiet, writeRandomFile
} from './netlib.ts'

const flags = parseFlags({
  fileMib: 1024, bigMib: 4096, rawRuns: 2, timeoutS: 900, logLevel: 'warn', profileDir: '', quietPct: 30, quietWaitS: 300,
  // also one raw stream without the private network (TCP + Noise + Yamux): what pnet costs
  rawNoPnet: false,
  // internal: the raw processes
  role: '', key: '', file: '', dial: '', out: '', stack: 'agent'
})
const RAW_PROTOCOL = '/shoal-bench/raw/1.0.0'
const RAW_PIECE = MiB
const RSS_GOAL_MIB = 300
const RATIO_GOAL = 0.8
const SELF = fileURLToPath(import.meta.url)

/** The agent's own libp2p node and key parsing, from the compiled package (not exported by its index). */
async function stack (): Promise<{ createNode: (init: { privateKey: any, clusterKey: Uint8Array, listen: string[], topics: string[] }) => Promise<any>, readClusterKey: (file: string) => Promise<Uint8Array> }> {
  const node = await import(new URL('../../packages/agent/dist/node.js', import.meta.url).href)
  const keys = await import(new URL('../../packages/agent/dist/keys.js', import.meta.url).href)
  return { createNode: node.createNode, readClusterKey: keys.readClusterKey }
}

async function newNode (listen: string[]): Promise<any> {
  if (flags.stack === 'nopnet') {
    const { createLibp2p } = await import('libp2p')
    const { tcp } = await import('@libp2p/tcp')
    const { noise } = await import('@chainsafe/libp2p-noise')
    const { yamux } = await import('@chainsafe/libp2p-yamux')
    return await createLibp2p({ addresses: { listen }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
  }
  const { createNode, readClusterKey } = await stack()
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  return await createNode({ privateKey: await generateKeyPair('Ed25519'), clusterKey: await readClusterKey(flags.key), listen, topics: [] })
}

/** raw-server: serves the file on RAW_PROTOCOL, read from disk in 1 MiB pieces, with backpressure. */
async function rawServer (): Promise<void> {
  const node = await newNode(['/ip4/127.0.0.1/tcp/0'])
  await node.handle(RAW_PROTOCOL, async (stream: any) => {
    const handle = await open(flags.file, 'r')
    try {
      for (;;) {
        const piece = Buffer.allocUnsafe(RAW_PIECE)
        const { bytesRead } = await handle.read(piece, 0, RAW_PIECE, null)
        if (bytesRead === 0) break
        if (!stream.send(piece.subarray(0, bytesRead))) await stream.onDrain()
      }
      await stream.close()
    } catch (err: any) {
      process.stderr.write(`raw server: stream failed: ${String(err?.stack ?? err)} type=${err?.type} error=${String(err?.error?.stack ?? err?.error)} local=${err?.local} status=${stream.status}\n`)
      stream.abort(err)
    } finally {
      await handle.close()
    }
  }, { maxInboundStreams: 4 })
  process.stdout.write(JSON.stringify({ addr: node.getMultiaddrs()[0].toString() }) + '\n')
  await new Promise<void>(resolve => { process.once('SIGTERM', () => resolve()) })
  await node.stop()
}

/** raw-client: connects, then times one stream of the whole file, written to disk (and fsynced). */
async function rawClient (): Promise<void> {
  const { multiaddr } = await import('@multiformats/multiaddr')
  const node = await newNode([])
  await node.dial(multiaddr(flags.dial))
  const fd = openSync(flags.out, 'w')
  let bytes = 0
  const t0 = performance.now()
  const stream = await node.dialProtocol(multiaddr(flags.dial), RAW_PROTOCOL)
  for await (const chunk of stream) {
    const data: Uint8Array = chunk instanceof Uint8Array ? chunk : chunk.subarray()
    writeSync(fd, data)
    bytes += data.byteLength
  }
  const streamSeconds = (performance.now() - t0) / 1000
  if (stream.status !== 'closed') process.stderr.write(`raw client: stream ended as ${String(stream.status)}\n`)
  fsyncSync(fd)
  closeSync(fd)
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage()
  process.stdout.write(JSON.stringify({ bytes, seconds, streamSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 }) + '\n')
  await node.stop()
}

interface RawResult { seconds: number, streamSeconds: number, mbps: number, cpuSecondsReceiver: number, cpuSecondsSender: number, othersCpuPct: number, load: number[] }

async function rawTransfer (dir: string, keyFile: string, file: string, size: number, stackName = 'agent'): Promise<RawResult> {
  const server = new Proc('raw server', process.execPath, [SELF, '--role', 'raw-server', '--key', keyFile, '--file', file, '--stack', stackName])
  try {
    const addr = await waitFor('the raw server to listen', () => {
      if (!server.running) throw new Error(`raw server exited: ${server.stderr}`)
      const line = server.stdout.split('\n').find(l => l.startsWith('{'))
      return line == null ? undefined : (JSON.parse(line) as { addr: string }).addr
    }, 30_000)
    const out = join(dir, 'raw.out')
    const serverCpuBefore = cpuSeconds(server.pid)
    const client = new Proc('raw client', process.execPath, [SELF, '--role', 'raw-client', '--key', keyFile, '--dial', addr, '--out', out, '--stack', stackName])
    const meter = new CpuMeter([{ name: 'server', pid: server.pid }, { name: 'client', pid: client.pid }])
    const code = await Promise.race([client.exited, sleep(flags.timeoutS * 1000).then(() => 'timeout')])
    const cpu = meter.stop()
    if (code !== 0) throw new Error(`raw client: ${String(code)} ${client.stderr.slice(-2000)}`)
    const serverCpu = cpuSeconds(server.pid) - serverCpuBefore
    const result = JSON.parse(client.stdout.trim().split('\n').pop() as string) as { bytes: number, seconds: number, streamSeconds: number, cpuSeconds: number }
    if (result.bytes !== size) throw new Error(`raw client received ${result.bytes} bytes, expected ${size}`)
    await rm(out, { force: true })
    return {
      seconds: round(result.seconds, 3),
      streamSeconds: round(result.streamSeconds, 3),
      mbps: round(size / result.seconds / 1e6, 1),
      // The receiver's includes its start (loading modules, the key, one dial): a few hundred ms.
      cpuSecondsReceiver: round(result.cpuSeconds, 2),
      cpuSecondsSender: round(serverCpu, 2),
      othersCpuPct: cpu.othersPct,
      load: loadavg()
    }
  } finally {
    await server.stop(3000)
  }
}

/** Samples a process's RSS while `work` runs; returns its peak as sampled and the kernel's VmHWM. */
async function watchMemory<T> (pid: number, work: () => Promise<T>): Promise<{ result: T, rssPeakSampledMiB: number, vmHwmMiB: number }> {
  let peak = 0
  let watching = true
  const watcher = (async () => {
    while (watching) {
      try { peak = Math.max(peak, memoryMiB(pid).rss) } catch {}
      await sleep(200)
    }
  })()
  try {
    const result = await work()
    return { result, rssPeakSampledMiB: peak, vmHwmMiB: memoryMiB(pid).hwm }
  } finally {
    watching = false
    await watcher
  }
}

async function pair (): Promise<Record<string, unknown>> {
  const size = flags.fileMib * MiB
  const loadStart = loadavg()
  log(`pair: ${flags.fileMib} MiB on loopback; load ${loadStart.join(' ')}`)
  const root = await tempDir('shoal-bench-pair-')
  const keyFile = join(root, 'cluster.key')
  await makeClusterKey(keyFile)
  const spec = (name: string): ConstructorParameters<typeof BenchAgent>[0] => ({
    name, dir: join(root, name), listen: '/ip4/127.0.0.1/tcp/0', clusterKeyFile: keyFile, logLevel: flags.logLevel, env: profileEnv(flags.profileDir)
  })
  const sender = new BenchAgent(spec('sender'))
  await sender.prepare()
  sender.spec.leaders = [sender.peerId]
  log('writing the file')
  const fileName = 'pair.bin'
  const expected = await writeRandomFile(join(sender.data, fileName), size)
  await sender.start(120_000)
  const receiver = new BenchAgent({ ...spec('receiver'), leaders: [sender.peerId], onDemand: true, bootstrap: [sender.address] })
  await receiver.start()
  await waitForMesh([sender, receiver], 60_000)
  await waitForHolders([sender, receiver], fileName, [sender], 120_000)
  const names = new Map([[receiver.peerId, receiver.name]])

  const raw: RawResult[] = []
  const quiet: Array<Awaited<ReturnType<typeof waitForQuiet>> & { before: string }> = []
  const settle = async (before: string): Promise<void> => { quiet.push({ before, ...await waitForQuiet(flags.quietPct, flags.quietWaitS) }) }
  const rawOnce = async (): Promise<void> => {
    await settle('raw')
    const r = await rawTransfer(root, keyFile, join(sender.data, fileName), size)
    raw.push(r)
    log(`raw stream: ${r.seconds} s (${r.mbps} MB/s; load ${r.load.join(' ')})`)
  }
  await rawOnce()

  await settle('shoal')
  const memBefore = memoryMiB(receiver.pid)
  const cpuBefore = { sender: cpuSeconds(sender.pid), receiver: cpuSeconds(receiver.pid) }
  const loadBefore = loadavg()
  log('shoal transfer (broadcast to the receiver)')
  const meter = new CpuMeter([{ name: 'sender', pid: sender.pid }, { name: 'receiver', pid: receiver.pid }])
  const watched = await watchMemory(receiver.pid, async () => await broadcastAndWait(sender, fileName, [receiver], flags.timeoutS * 1000, names))
  const shoalCpu = meter.stop()
  const loadAfter = loadavg()
  const cpuShoal = { sender: round(cpuSeconds(sender.pid) - cpuBefore.sender, 2), receiver: round(cpuSeconds(receiver.pid) - cpuBefore.receiver, 2) }
  const shoalSeconds = watched.result.seconds
  const record = (await receiver.client.transfers()).transfers.find(t => t.path === fileName)
  const engineSeconds = record?.startedAt != null && record.endedAt != null ? (record.endedAt - record.startedAt) / 1000 : NaN
  log(`shoal: ${shoalSeconds} s (${round(size / shoalSeconds / 1e6, 1)} MB/s; load ${loadAfter.join(' ')}); receiver VmHWM ${watched.vmHwmMiB} MiB`)
  const senderHwm = memoryMiB(sender.pid).hwm

  for (let i = 1; i < flags.rawRuns; i++) await rawOnce()
  let rawWithoutPnet: RawResult | undefined
  if (flags.rawNoPnet) {
    await settle('raw without pnet')
    rawWithoutPnet = await rawTransfer(root, keyFile, join(sender.data, fileName), size, 'nopnet')
    log(`raw stream without pnet: ${rawWithoutPnet.seconds} s (${rawWithoutPnet.mbps} MB/s)`)
  }
  const hashOk = (await hashIfPresent(join(receiver.data, fileName))) === expected

  const rawMean = raw.reduce((s, r) => s + r.seconds, 0) / raw.length
  const rawStreamMean = raw.reduce((s, r) => s + r.streamSeconds, 0) / raw.length
  const shoalMBps = size / shoalSeconds / 1e6
  const result: Record<string, unknown> = {
    fileMiB: flags.fileMib,
    load: { start: loadStart, beforeShoal: loadBefore, afterShoal: loadAfter, end: loadavg() },
    quiet,
    raw,
    rawWithoutPnet,
    shoal: {
      seconds: shoalSeconds,
      engineSeconds: round(engineSeconds, 3),
      mbps: round(shoalMBps, 1),
      cpuSecondsReceiver: cpuShoal.receiver,
      cpuSecondsSender: cpuShoal.sender,
      othersCpuPct: shoalCpu.othersPct,
      hashOk
    },
    ratio: round(rawMean / shoalSeconds, 3),
    ratioEngineOnly: round(rawMean / engineSeconds, 3),
    ratioVsStreamOnly: round(rawStreamMean / shoalSeconds, 3),
    ratioNote: 'shoal throughput / raw throughput; raw = one libp2p stream written to disk and fsynced (ratioVsStreamOnly: without the fsync); shoal = from the broadcast until the leader sees the verified, committed copy (ratioEngineOnly: the receiver\'s transfer record, start to commit)',
    goal: RATIO_GOAL,
    met: rawMean / shoalSeconds >= RATIO_GOAL && hashOk,
    memory: {
      receiverVmHwmMiB: watched.vmHwmMiB,
      receiverRssPeakSampledMiB: watched.rssPeakSampledMiB,
      receiverRssBeforeMiB: memBefore.rss,
      senderVmHwmMiB: senderHwm
    }
  }

  if (flags.bigMib > 0) {
    const bigName = 'big.bin'
    log(`big file: writing ${flags.bigMib} MiB into the sender's dataset`)
    const bigExpected = await writeRandomFile(join(sender.data, bigName), flags.bigMib * MiB)
    // A fresh receiver: its peak RSS is that of this download alone.
    const fresh = new BenchAgent({ ...spec('receiver-big'), leaders: [sender.peerId], onDemand: true, bootstrap: [sender.address] })
    await fresh.start()
    await waitForMesh([sender, receiver, fresh], 60_000)
    await waitForHolders([sender, fresh], bigName, [sender], 300_000)
    const bigQuiet = await waitForQuiet(flags.quietPct, flags.quietWaitS)
    const before = memoryMiB(fresh.pid)
    const bigMeter = new CpuMeter([{ name: 'sender', pid: sender.pid }, { name: 'receiver', pid: fresh.pid }])
    const big = await watchMemory(fresh.pid, async () => await broadcastAndWait(sender, bigName, [fresh], flags.timeoutS * 1000, new Map([[fresh.peerId, fresh.name]])))
    const bigHashOk = (await hashIfPresent(join(fresh.data, bigName))) === bigExpected
    log(`big file: ${big.result.seconds} s; fresh receiver VmHWM ${big.vmHwmMiB} MiB`)
    result.big = {
      fileMiB: flags.bigMib,
      seconds: big.result.seconds,
      mbps: round(flags.bigMib * MiB / big.result.seconds / 1e6, 1),
      hashOk: bigHashOk,
      receiverVmHwmMiB: big.vmHwmMiB,
      receiverRssPeakSampledMiB: big.rssPeakSampledMiB,
      receiverRssBeforeMiB: before.rss,
      senderVmHwmMiB: memoryMiB(sender.pid).hwm,
      goalMiB: RSS_GOAL_MIB,
      met: big.vmHwmMiB < RSS_GOAL_MIB && bigHashOk,
      load: loadavg(),
      othersCpuPct: bigMeter.stop().othersPct,
      quiet: bigQuiet
    }
  }
  return result
}

if (flags.role === 'raw-server') {
  await rawServer()
  process.exit(0)
} else if (flags.role === 'raw-client') {
  await rawClient()
  process.exit(0)
} else {
  await runBench('pair', async () => ({ node: process.version, cores: cores(), ...await pair() }))
}
