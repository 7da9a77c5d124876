/**
 * Helpers of the transfer benchmarks (swarm, pair, slow-holder): network namespaces with tc htb
 * egress caps, real `shoal agent` processes inside them (or on loopback), identities and a
 * cluster key made up front (so a leader can name itself with --leader on its first start),
 * /proc readings (CPU, peak RSS, load average), random files and hashes, and a teardown that
 * runs on success, on failure, on SIGINT/SIGTERM and, as a last resort, on process exit.
 *
 * Erasable TypeScript only: these files run as `node test/bench/NAME.ts` on Node 24.
 * (test/helpers/netns.ts cannot be imported here: it uses parameter properties and imports
 * `./agents.js`, which type stripping does not resolve to agents.ts.)
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomFillSync } from 'node:crypto'
import { createReadStream, readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generateKey } from '@libp2p/pnet'
import { ShoalClient, type StatusResponse } from '@shoal/client'

const execFileAsync = promisify(execFile)

export const REPO = fileURLToPath(new URL('../..', import.meta.url))
export const SHOAL_BIN = join(REPO, 'packages/cli/bin/shoal.js')
export const MiB = 1024 * 1024
/** USER_HZ: clock ticks per second in /proc/PID/stat and /proc/stat. */
const CLK_TCK = 100
const CMD_TIMEOUT_MS = 15_000

export function log (msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`)
}

export function requireNode22 (): void {
  if (Number.parseInt(process.versions.node.split('.')[0], 10) < 22) {
    process.stderr.write(`Node ${process.versions.node} is too old: run with the repository's Node 24 (npx node test/bench/...)\n`)
    process.exit(2)
  }
}

export function requireRoot (): void {
  if (process.getuid?.() !== 0) {
    process.stderr.write('this benchmark creates network namespaces and tc qdiscs: run it as root\n')
    process.exit(2)
  }
}

// ------------------------------------------------------------------ flags

/** `--name value`, `--name=value`, `--flag`; camel-cased into the keys of `defaults`. Unknown flags throw. */
export function parseFlags<T extends Record<string, string | number | boolean>> (defaults: T, argv = process.argv.slice(2)): T {
  const out: Record<string, string | number | boolean> = { ...defaults }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`)
    let name = arg.slice(2)
    let value: string | undefined
    const eq = name.indexOf('=')
    if (eq >= 0) {
      value = name.slice(eq + 1)
      name = name.slice(0, eq)
    }
    const key = name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())
    if (!(key in defaults)) {
      throw new Error(`unknown flag --${name}; known: ${Object.keys(defaults).map(k => '--' + k.replace(/[A-Z]/g, c => '-' + c.toLowerCase())).join(' ')}`)
    }
    const kind = typeof defaults[key]
    if (kind === 'boolean') {
      out[key] = value == null ? true : value !== 'false'
      continue
    }
    value ??= argv[++i]
    if (value == null) throw new Error(`--${name} needs a value`)
    if (kind === 'number') {
      const n = Number(value)
      if (!Number.isFinite(n)) throw new Error(`--${name} expects a number`)
      out[key] = n
    } else {
      out[key] = value
    }
  }
  return out as T
}

// ------------------------------------------------------------------ time

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Polls `check` until it returns something other than undefined/false; throws at the deadline. */
export async function waitFor<T> (what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError != null ? ` (last error: ${String(lastError)})` : ''}`)
    }
    await sleep(intervalMs)
  }
}

export function round (x: number, digits = 3): number {
  return Number(x.toFixed(digits))
}

// ------------------------------------------------------------------ teardown

interface CleanupStep {
  what: string
  /** Normal teardown. */
  run: () => Promise<void> | void
  /** Last resort on process exit (synchronous only). */
  runSync?: () => void
}

const steps: CleanupStep[] = []
let cleaning: Promise<void> | undefined

/** Registers a teardown step; steps run in reverse order, once. Returns a function that runs (and removes) this step now. */
export function onCleanup (what: string, run: () => Promise<void> | void, runSync?: () => void): () => Promise<void> {
  const step: CleanupStep = { what, run, runSync }
  steps.push(step)
  return async () => {
    const i = steps.indexOf(step)
    if (i < 0) return
    steps.splice(i, 1)
    await step.run()
  }
}

/** Runs every registered step (newest first); may be called again later for steps registered since. */
export async function cleanupAll (): Promise<void> {
  cleaning ??= (async () => {
    while (steps.length > 0) {
      const step = steps.pop() as CleanupStep
      try {
        await step.run()
      } catch (err: any) {
        log(`cleanup of ${step.what} failed: ${err.message}`)
      }
    }
  })().finally(() => { cleaning = undefined })
  await cleaning
}

function cleanupSync (): void {
  while (steps.length > 0) {
    const step = steps.pop() as CleanupStep
    try {
      step.runSync?.()
    } catch {}
  }
}

/**
 * Runs a benchmark: its result is printed as one JSON object on stdout; everything it created is
 * torn down afterwards, also on failure and on SIGINT/SIGTERM. Exit code 0 on success, 1 on failure.
 */
export async function runBench (name: string, body: () => Promise<Record<string, unknown>>): Promise<void> {
  requireNode22()
  process.on('exit', cleanupSync)
  const onSignal = (signal: string): void => {
    log(`${signal}: tearing down`)
    setTimeout(() => process.exit(130), 30_000).unref()
    void cleanupAll().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let code = 0
  try {
    const result = await body()
    process.stdout.write(JSON.stringify({ bench: name, ...result }, null, 2) + '\n')
  } catch (err: any) {
    code = 1
    log(`${name} failed: ${String(err?.stack ?? err)}`)
    for (const a of allAgents) {
      const p = a.proc
      if (p == null) continue
      log(`agent ${a.name} (pid ${p.pid}): ${p.running ? 'running' : `exited with ${String(p.exitCode ?? p.child.signalCode)}`}; stderr tail:\n${p.stderr.slice(-3000)}`)
    }
    process.stdout.write(JSON.stringify({ bench: name, error: String(err?.message ?? err) }) + '\n')
  } finally {
    await cleanupAll()
  }
  process.exit(code)
}

/** A fresh directory under the system temp directory, removed at teardown. */
export async function tempDir (prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  onCleanup(`directory ${dir}`, async () => { await rm(dir, { recursive: true, force: true }) }, () => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

// ------------------------------------------------------------------ /proc

/** The 1-, 5- and 15-minute load averages. */
export function loadavg (): number[] {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number)
}

export function cores (): number {
  return readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length ?? 0
}

/** CPU seconds (user + system) a process has used; NaN once it is gone. */
export function cpuSeconds (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return NaN
  }
}

/** Busy and total CPU time of the whole machine (every core), in seconds. */
export function machineCpu (): { busy: number, total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest fields are already in user/nice)
  const idle = v[3] + (v[4] ?? 0)
  const total = v.slice(0, 8).reduce((s, x) => s + x, 0)
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK }
}

/**
 * Waits (at most `timeoutS`) until the machine is quiet: its CPU busy share over a 3 s window at
 * most `maxBusyPct` (other engineers' tests share these cores). 0 = do not wait. Returns the busy
 * share seen last and how long it waited; `quiet: false` if it gave up.
 */
export async function waitForQuiet (maxBusyPct: number, timeoutS: number): Promise<{ quiet: boolean, busyPct: number, waitedS: number, load: number[] }> {
  const t0 = performance.now()
  let busyPct = NaN
  for (;;) {
    const a = machineCpu()
    await sleep(3000)
    const b = machineCpu()
    busyPct = round(100 * (b.busy - a.busy) / Math.max(1e-9, b.total - a.total), 1)
    const waitedS = round((performance.now() - t0) / 1000, 1)
    if (maxBusyPct <= 0 || busyPct <= maxBusyPct) return { quiet: true, busyPct, waitedS, load: loadavg() }
    if (waitedS >= timeoutS) {
      log(`the machine stayed busy (${busyPct}% over 3 s, load ${loadavg().join(' ')}); measuring anyway`)
      return { quiet: false, busyPct, waitedS, load: loadavg() }
    }
    if (Math.round(waitedS) % 30 < 3) log(`waiting for a quiet machine: ${busyPct}% busy, load ${loadavg().join(' ')}`)
  }
}

/** VmRSS and VmHWM (peak RSS) of a process, in MiB. */
export function memoryMiB (pid: number): { rss: number, hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: round(kib('VmRSS') / 1024, 1), hwm: round(kib('VmHWM') / 1024, 1) }
}

/**
 * Samples the CPU of the machine and of some processes while it runs: the machine's busy share
 * (of all cores) and each process's share of one core, on average and at the busiest sample.
 */
export class CpuMeter {
  private readonly pids: Array<{ name: string, pid: number }>
  private timer?: NodeJS.Timeout
  private readonly start = { machine: machineCpu(), at: performance.now(), procs: [] as number[] }
  private last: { machine: { busy: number, total: number } }
  private peakMachine = 0

  constructor (pids: Array<{ name: string, pid: number }>, intervalMs = 1000) {
    this.pids = pids
    this.start.procs = pids.map(p => cpuSeconds(p.pid))
    this.last = { machine: this.start.machine }
    this.timer = setInterval(() => {
      const now = machineCpu()
      const dt = now.total - this.last.machine.total
      if (dt > 0) this.peakMachine = Math.max(this.peakMachine, (now.busy - this.last.machine.busy) / dt)
      this.last = { machine: now }
    }, intervalMs)
    this.timer.unref()
  }

  /**
   * `othersPct`: the CPU the rest of the machine used meanwhile (other engineers' tests), in % of
   * one core: every core's busy time minus these processes'. Above ~50 the figure is contended.
   */
  stop (): { machineBusyPct: number, machineBusyPeakPct: number, seconds: number, processPct: Record<string, number>, processesTotalPct: number, othersPct: number } {
    clearInterval(this.timer)
    const machine = machineCpu()
    const seconds = (performance.now() - this.start.at) / 1000
    const processPct: Record<string, number> = {}
    let total = 0
    this.pids.forEach((p, i) => {
      const pct = 100 * (cpuSeconds(p.pid) - this.start.procs[i]) / seconds
      processPct[p.name] = round(pct, 1)
      if (Number.isFinite(pct)) total += pct
    })
    const dt = machine.total - this.start.machine.total
    const busyPct = dt > 0 ? 100 * (machine.busy - this.start.machine.busy) / dt : NaN
    return {
      machineBusyPct: round(busyPct, 1),
      machineBusyPeakPct: round(100 * this.peakMachine, 1),
      seconds: round(seconds, 2),
      processPct,
      processesTotalPct: round(total, 1),
      othersPct: round(Math.max(0, busyPct * cores() - total), 1)
    }
  }
}

// ------------------------------------------------------------------ commands

export async function run (cmd: string, args: string[], timeoutMs = CMD_TIMEOUT_MS): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * MiB })
    return stdout
  } catch (err: any) {
    throw new Error(`${cmd} ${args.join(' ')} failed: ${String(err.stderr ?? '').trim() || err.message}`)
  }
}

// ------------------------------------------------------------------ files

/** Writes `bytes` random bytes (1 MiB at a time, never the whole file in memory); returns their SHA-256. */
export async function writeRandomFile (path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256')
  const piece = Buffer.allocUnsafe(MiB)
  const handle = await open(path, 'w')
  try {
    for (let done = 0; done < bytes; done += MiB) {
      const n = Math.min(MiB, bytes - done)
      randomFillSync(piece, 0, n)
      hash.update(piece.subarray(0, n))
      await handle.write(piece, 0, n)
    }
  } finally {
    await handle.close()
  }
  return hash.digest('hex')
}

export async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

export async function hashIfPresent (path: string): Promise<string | undefined> {
  try {
    return await sha256File(path)
  } catch {
    return undefined
  }
}

// ------------------------------------------------------------------ keys

/** Writes a cluster key file (`/key/swarm/psk/1.0.0/` format, mode 0600); returns its bytes. */
export async function makeClusterKey (file: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(95)
  generateKey(bytes)
  await writeFile(file, bytes, { mode: 0o600 })
  return bytes
}

/** Writes a new identity into a state directory (as the agent would on first start); returns the peer id. */
export async function makeIdentity (stateDir: string): Promise<string> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  const key = await generateKeyPair('Ed25519')
  await writeFile(join(stateDir, 'peer.key'), privateKeyToProtobuf(key), { mode: 0o600 })
  return peerIdFromPrivateKey(key).toString()
}

// ------------------------------------------------------------------ network namespaces

export interface Host {
  /** 1-based. */
  index: number
  ns: string
  ip: string
  /** Its veth end in the hub (a port of the bridge). */
  hubPort: string
  /** Egress cap in Mbit/s set by `capEgress` (0: none). */
  egressMbit: number
}

async function namespaces (): Promise<Set<string>> {
  const out = await run('ip', ['netns', 'list'])
  return new Set(out.split('\n').map(l => l.split(' ')[0]).filter(n => n !== ''))
}

/**
 * `count` namespaces on one bridge (in a hub namespace), 10.78.<run>.<10+i>/24, nothing in the root
 * namespace. Torn down with the rest (processes first: teardown runs in reverse order).
 */
export class Network {
  readonly hub: string
  readonly hosts: Host[] = []
  readonly prefix: string
  private destroyed = false

  private constructor (prefix: string, count: number) {
    this.prefix = prefix
    this.hub = `${prefix}hub`
    const subnet = `10.78.${(process.pid % 250) + 1}`
    for (let i = 1; i <= count; i++) this.hosts.push({ index: i, ns: `${prefix}n${i}`, ip: `${subnet}.${10 + i}`, hubPort: `p${i}`, egressMbit: 0 })
  }

  /** `tag` keeps the names of several networks of one run apart. */
  static async create (count: number, tag: string): Promise<Network> {
    const net = new Network(`sb${process.pid}${tag}`, count)
    onCleanup(`network ${net.prefix}`, async () => { await net.destroy() }, () => { net.destroySync() })
    await net.build()
    return net
  }

  private get all (): string[] {
    return [this.hub, ...this.hosts.map(h => h.ns)]
  }

  private async build (): Promise<void> {
    const existing = await namespaces()
    for (const ns of this.all) if (existing.has(ns)) await run('ip', ['netns', 'del', ns])
    await run('ip', ['netns', 'add', this.hub])
    await run('ip', ['-n', this.hub, 'link', 'set', 'dev', 'lo', 'up'])
    await run('ip', ['-n', this.hub, 'link', 'add', 'name', 'br0', 'type', 'bridge'])
    await run('ip', ['-n', this.hub, 'link', 'set', 'dev', 'br0', 'up'])
    for (const h of this.hosts) {
      await run('ip', ['netns', 'add', h.ns])
      await run('ip', ['-n', h.ns, 'link', 'set', 'dev', 'lo', 'up'])
      await run('ip', ['link', 'add', h.hubPort, 'netns', this.hub, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns])
      await run('ip', ['-n', this.hub, 'link', 'set', 'dev', h.hubPort, 'master', 'br0'])
      await run('ip', ['-n', this.hub, 'link', 'set', 'dev', h.hubPort, 'up'])
      await run('ip', ['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0'])
      await run('ip', ['-n', h.ns, 'link', 'set', 'dev', 'eth0', 'up'])
    }
  }

  host (index: number): Host {
    const h = this.hosts[index - 1]
    if (h == null) throw new Error(`no host ${index}`)
    return h
  }

  /** Caps what a host sends (its eth0 egress) with one htb class. */
  async capEgress (host: Host, mbit: number): Promise<void> {
    await run('tc', ['-n', host.ns, 'qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '10'])
    await run('tc', ['-n', host.ns, 'class', 'replace', 'dev', 'eth0', 'parent', '1:', 'classid', '1:10', 'htb',
      'rate', `${mbit}mbit`, 'ceil', `${mbit}mbit`, 'quantum', '60000'])
    host.egressMbit = mbit
  }

  /** Bytes sent on a host's eth0 so far (what its cap limits). */
  async txBytes (host: Host): Promise<number> {
    const out = await run('ip', ['-n', host.ns, '-s', '-j', 'link', 'show', 'dev', 'eth0'])
    const parsed = JSON.parse(out) as Array<{ stats64?: { tx?: { bytes?: number } } }>
    return parsed[0]?.stats64?.tx?.bytes ?? NaN
  }

  async destroy (): Promise<void> {
    if (this.destroyed) return
    const existing = await namespaces()
    const failures: string[] = []
    for (const ns of this.all) {
      if (existing.has(ns)) await run('ip', ['netns', 'del', ns]).catch((err: Error) => failures.push(err.message))
    }
    this.destroyed = true
    if (failures.length > 0) throw new Error(failures.join('; '))
  }

  destroySync (): void {
    if (this.destroyed) return
    for (const ns of this.all) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: CMD_TIMEOUT_MS })
      } catch {}
    }
    this.destroyed = true
  }
}

// ------------------------------------------------------------------ processes

/**
 * A child process (inside a namespace through `ip netns exec`, which execs, so the pid is the
 * command's), killed at teardown by its pid. stdout/stderr are kept (the last 256 KiB of each).
 */
export class Proc {
  readonly child: ChildProcess
  stdout = ''
  stderr = ''
  readonly exited: Promise<number | null>
  exitCode: number | null | undefined
  private readonly removeCleanup: () => Promise<void>
  readonly what: string

  constructor (what: string, cmd: string, args: string[], options: { ns?: string, cwd?: string, env?: NodeJS.ProcessEnv } = {}) {
    this.what = what
    const [file, argv] = options.ns != null ? ['ip', ['netns', 'exec', options.ns, cmd, ...args]] : [cmd, args]
    this.child = spawn(file, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    const keep = (s: string): string => s.length > 256 * 1024 ? s.slice(-128 * 1024) : s
    this.child.stdout?.on('data', (d: Buffer) => { this.stdout = keep(this.stdout + d.toString()) })
    this.child.stderr?.on('data', (d: Buffer) => { this.stderr = keep(this.stderr + d.toString()) })
    this.exited = new Promise(resolve => {
      this.child.on('exit', (code) => { this.exitCode = code; resolve(code) })
      this.child.on('error', () => { this.exitCode = -1; resolve(-1) })
    })
    // Teardown asks politely first (an agent then stops cleanly, and a profiler can write its file).
    this.removeCleanup = onCleanup(what, async () => { await this.stop(5000) }, () => { if (this.running) this.child.kill('SIGKILL') })
  }

  get pid (): number {
    return this.child.pid as number
  }

  get running (): boolean {
    return this.exitCode === undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  /** Proves that the pid runs `exe` (so that killing it stops the command, not a wrapper). */
  checkExe (exe: string): void {
    const actual = realpathSync(readlinkSync(`/proc/${this.pid}/exe`))
    if (actual !== realpathSync(exe)) throw new Error(`pid ${this.pid} runs ${actual}, not ${exe}`)
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop (graceMs = 10_000): Promise<void> {
    if (this.running) {
      this.child.kill('SIGTERM')
      const timer = setTimeout(() => { if (this.running) this.child.kill('SIGKILL') }, graceMs)
      await this.exited
      clearTimeout(timer)
    }
    await this.removeCleanup?.()
  }

  async kill (): Promise<void> {
    if (this.running) {
      this.child.kill('SIGKILL')
      await this.exited
    }
  }
}

// ------------------------------------------------------------------ agents

export interface AgentSpec {
  name: string
  /** Directory of this agent (state, data, socket). */
  dir: string
  /** Namespace to run in; loopback of the root namespace when absent. */
  host?: Host
  listen: string
  clusterKeyFile: string
  bootstrap?: string[]
  leaders?: string[]
  onDemand?: boolean
  extraArgs?: string[]
  logLevel?: string
  /** Extra environment of the agent process. */
  env?: Record<string, string>
}

/**
 * The environment for agents when a benchmark is run with `--profile-dir DIR`: each agent writes
 * a CPU profile (.cpuprofile, for Chrome DevTools or speedscope) into DIR when it stops.
 */
export function profileEnv (dir: string): Record<string, string> | undefined {
  return dir === '' ? undefined : { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${dir}`.trim() }
}

const allAgents: BenchAgent[] = []

/** A real `shoal agent` process. */
export class BenchAgent {
  proc?: Proc
  peerId = ''
  address = ''
  readonly client: ShoalClient
  readonly spec: AgentSpec

  constructor (spec: AgentSpec) {
    this.spec = spec
    allAgents.push(this)
    this.client = new ShoalClient(this.socket, { timeoutMs: 20_000 })
  }

  get state (): string { return join(this.spec.dir, 'state') }
  get data (): string { return join(this.spec.dir, 'data') }
  get socket (): string { return join(this.spec.dir, 'agent.sock') }
  get pid (): number { return this.proc?.pid ?? NaN }
  get name (): string { return this.spec.name }

  /** Creates the directories and the identity; returns the peer id (known before the agent starts). */
  async prepare (): Promise<string> {
    await mkdir(this.data, { recursive: true })
    this.peerId = await makeIdentity(this.state)
    return this.peerId
  }

  /** The address others bootstrap from. */
  get dialAddress (): string {
    return `${this.spec.listen}/p2p/${this.peerId}`
  }

  args (): string[] {
    const s = this.spec
    const args = ['agent', '--name', s.name, '--state', this.state, '--socket', this.socket, '--dataset', `default=${this.data}`,
      '--listen', s.listen, '--cluster-key', s.clusterKeyFile, '--log-level', s.logLevel ?? 'warn']
    for (const b of s.bootstrap ?? []) args.push('--bootstrap', b)
    for (const l of s.leaders ?? []) args.push('--leader', l)
    if (s.onDemand === true) args.push('--on-demand', 'default')
    return [...args, ...(s.extraArgs ?? [])]
  }

  async start (timeoutMs = 60_000): Promise<StatusResponse> {
    if (this.peerId === '') await this.prepare()
    const env = this.spec.env == null ? undefined : { ...process.env, ...this.spec.env }
    const proc = new Proc(`agent ${this.name}`, process.execPath, [SHOAL_BIN, ...this.args()], { ns: this.spec.host?.ns, cwd: this.spec.dir, env })
    this.proc = proc
    const status = await waitFor(`agent ${this.name} to answer on its socket`, async () => {
      if (!proc.running) throw new Error(`agent ${this.name} exited with ${String(proc.exitCode)}: ${proc.stderr.slice(-2000)}`)
      return await this.client.status()
    }, timeoutMs, 100)
    proc.checkExe(process.execPath)
    if (status.peerId !== this.peerId) throw new Error(`agent ${this.name} runs as ${status.peerId}, expected ${this.peerId}`)
    this.address = status.addresses[0] ?? ''
    return status
  }

  async stop (): Promise<void> {
    await this.proc?.stop()
  }
}

/** Waits until every agent knows every other one and is connected to it. */
export async function waitForMesh (agents: BenchAgent[], timeoutMs: number): Promise<void> {
  await waitFor('every agent to know and be connected to every other', async () => {
    for (const a of agents) {
      const s = await a.client.status()
      if (s.view.nodes.length !== agents.length) return false
      const connected = new Set(s.peers.filter(p => p.connected).map(p => p.peerId))
      for (const b of agents) if (b !== a && !connected.has(b.peerId)) return false
    }
    return true
  }, timeoutMs, 250)
}

/** Waits until every agent's view lists `holders` as complete holders of the file. */
export async function waitForHolders (agents: BenchAgent[], path: string, holders: BenchAgent[], timeoutMs: number): Promise<void> {
  await waitFor(`every agent to know who holds ${path}`, async () => {
    for (const a of agents) {
      const w = await a.client.where('default', path)
      const complete = new Set(w.holders.filter(h => h.complete).map(h => h.peerId))
      for (const h of holders) if (!complete.has(h.peerId)) return false
    }
    return true
  }, timeoutMs, 200)
}

/** Round-trip times (ms) of the TCP connections in a namespace, as the kernel estimates them (ss -ti). */
export async function tcpRtts (host: Host): Promise<number[]> {
  const out = await run('ip', ['netns', 'exec', host.ns, 'ss', '-tin', 'state', 'established'])
  return [...out.matchAll(/\brtt:([\d.]+)\//g)].map(m => Number(m[1]))
}

export interface BroadcastTiming {
  seconds: number
  /** Seconds after the broadcast at which the leader first saw each node complete. */
  completeAfter: Record<string, number>
  /** Leader's served bytes, sampled (seconds, bytes) during the broadcast. */
  leaderServed: Array<[number, number]>
  /** Leader's load as its status reports it, sampled with `leaderServed`: (seconds, level, uploads, event-loop delay ms). */
  leaderLoad: Array<[number, string, number, number]>
}

/**
 * Orders `path` onto `targets` (peer ids; all other nodes when empty) through the leader's API
 * and polls its progress until every target holds a verified copy, or the deadline.
 */
export async function broadcastAndWait (leader: BenchAgent, path: string, targets: BenchAgent[], timeoutMs: number, names: Map<string, string>,
  onProgress?: (seconds: number, bytesByName: Record<string, number>) => void): Promise<BroadcastTiming> {
  const t0 = performance.now()
  const started = await leader.client.broadcast({ dataset: 'default', path, priority: 'high', nodes: targets.map(t => t.peerId), timeoutMs })
  const completeAfter: Record<string, number> = {}
  const leaderServed: Array<[number, number]> = []
  const leaderLoad: Array<[number, string, number, number]> = []
  let lastSample = -Infinity
  for (;;) {
    const elapsed = performance.now() - t0
    const p = await leader.client.broadcastProgress(started.id)
    const now = (performance.now() - t0) / 1000
    const bytesByName: Record<string, number> = {}
    for (const n of p.nodes) {
      const name = names.get(n.peerId) ?? n.peerId
      if (n.state === 'complete' && completeAfter[name] == null) completeAfter[name] = round(now, 3)
      bytesByName[name] = n.state === 'complete' ? n.size : n.bytes
    }
    onProgress?.(now, bytesByName)
    if (p.complete) return { seconds: round(now, 3), completeAfter, leaderServed, leaderLoad }
    if (elapsed > timeoutMs) {
      throw new Error(`broadcast of ${path} not complete after ${timeoutMs} ms: ${p.nodes.filter(n => n.state !== 'complete').map(n => `${names.get(n.peerId) ?? n.peerId} ${n.state} ${n.bytes}/${n.size}`).join(', ')}`)
    }
    if (elapsed - lastSample >= 1000) {
      lastSample = elapsed
      const s = await leader.client.status()
      leaderServed.push([round((performance.now() - t0) / 1000, 2), s.transfer.bytesServed])
      leaderLoad.push([round((performance.now() - t0) / 1000, 2), s.load.level, s.load.uploads, s.load.eventLoopDelayMs])
    }
    // Polling costs the leader CPU (it answers in JSON): 10 times a second is resolution enough.
    await sleep(100)
  }
}
