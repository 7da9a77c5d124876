/**
 * Shared helpers of the manifest benchmarks (convergence, catchup, scale): real `shoal agent`
 * processes on loopback, event recorders, /proc readings, percentiles, bounded waits, and a
 * teardown that runs on success, on failure and on SIGINT/SIGTERM.
 *
 * Erasable TypeScript only: these files run as `node test/bench/NAME.ts` (Node 24 type stripping).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ShoalClient, type AgentEvent, type StatusResponse } from '@shoal/client'

export const REPO = fileURLToPath(new URL('../..', import.meta.url))
export const SHOAL_BIN = join(REPO, 'packages/cli/bin/shoal.js')
/** Clock ticks per second of /proc/PID/stat (USER_HZ; 100 on every Linux this runs on). */
const CLK_TCK = 100

export function log (msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`)
}

export function requireNode22 (): void {
  const major = Number.parseInt(process.versions.node.split('.')[0], 10)
  if (major < 22) {
    process.stderr.write(`Node ${process.versions.node} is too old: run with the repository's Node 24 (npx node test/bench/...)\n`)
    process.exit(2)
  }
}

// ---------------------------------------------------------------- flags

/** `--name value` and `--flag` (true) parsing; unknown flags are an error. */
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
    if (!(key in defaults)) throw new Error(`unknown flag --${name}; known: ${Object.keys(defaults).map(k => '--' + k.replace(/[A-Z]/g, c => '-' + c.toLowerCase())).join(' ')}`)
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

// ---------------------------------------------------------------- figures

/** Nearest-rank percentile of an ascending array. */
export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

export function summarise (values: number[], digits = 1): { n: number, p50: number, p99: number, mean: number, max: number, min: number } {
  const sorted = [...values].sort((a, b) => a - b)
  const round = (x: number): number => Number(x.toFixed(digits))
  const mean = sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length)
  return { n: sorted.length, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), mean: round(mean), max: round(sorted[sorted.length - 1] ?? NaN), min: round(sorted[0] ?? NaN) }
}

export function loadavg (): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
}

/** CPU time (user + system) a process has used so far, in seconds. */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may contain spaces) start at ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/** The Node options a benchmark's `--agent-node-args "..."` flag gives for its agent processes. */
export function splitNodeArgs (flag: string): string[] {
  return flag.split(' ').filter(a => a !== '')
}

/** VmRSS and VmHWM of a process, in MiB. */
export function memoryMiB (pid: number): { rss: number, hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: Number((kib('VmRSS') / 1024).toFixed(1)), hwm: Number((kib('VmHWM') / 1024).toFixed(1)) }
}

/**
 * Where a process's resident memory is (MiB, from /proc/PID/smaps): mapped files (the node binary,
 * libraries), the malloc heap ([heap]: C/C++ allocations of the main thread), and other anonymous
 * memory (V8's heap, thread stacks and arenas, worker isolates).
 */
export function memoryBreakdownMiB (pid: number): { files: number, mallocHeap: number, anonymous: number } {
  const out = { files: 0, mallocHeap: 0, anonymous: 0 }
  let kind: keyof typeof out = 'anonymous'
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (mapping != null) {
      const name = mapping[1]
      kind = name === '[heap]' ? 'mallocHeap' : name === '' || name.startsWith('[') ? 'anonymous' : 'files'
    } else if (line.startsWith('Rss:')) {
      out[kind] += Number(line.split(/\s+/)[1]) / 1024
    }
  }
  return { files: Number(out.files.toFixed(1)), mallocHeap: Number(out.mallocHeap.toFixed(1)), anonymous: Number(out.anonymous.toFixed(1)) }
}

/** CPU used by each process over `ms`, as a percentage of one core. */
export async function measureCpu (pids: number[], ms: number): Promise<number[]> {
  const before = pids.map(cpuSeconds)
  const t0 = performance.now()
  await sleep(ms)
  const elapsed = (performance.now() - t0) / 1000
  return pids.map((pid, i) => Number((100 * (cpuSeconds(pid) - before[i]) / elapsed).toFixed(2)))
}

export function machine (): { cores: number, node: string } {
  return { cores: Number(readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length ?? 0), node: process.version }
}

/** A small seeded PRNG (mulberry32), so runs pick the same writers for the same --seed. */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// ---------------------------------------------------------------- time

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Polls `check` until it returns a value other than undefined/false; throws at the deadline. */
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

/** Runs `fn` over items with at most `limit` at once. */
export async function mapLimit<T, R> (items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i], i)
    }
  }))
  return out
}

// ---------------------------------------------------------------- teardown

type Cleanup = () => Promise<void> | void
const cleanups: Cleanup[] = []
const syncKills = new Set<ChildProcess>()
const syncDirs = new Set<string>()
let cleaning: Promise<void> | undefined

/** Registers work for teardown (run in reverse order, once). */
export function onCleanup (fn: Cleanup): void {
  cleanups.push(fn)
}

export async function cleanupAll (): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn()
      } catch (err: any) {
        log(`cleanup step failed: ${err.message}`)
      }
    }
  })()
  await cleaning
}

let handlersInstalled = false
function installHandlers (): void {
  if (handlersInstalled) return
  handlersInstalled = true
  const onSignal = (signal: string): void => {
    log(`${signal}: tearing down`)
    setTimeout(() => process.exit(130), 20_000).unref()
    void cleanupAll().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  // Last resort if the process exits without running cleanupAll: kill children by pid, remove dirs.
  process.on('exit', () => {
    for (const child of syncKills) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    for (const dir of syncDirs) rmSync(dir, { recursive: true, force: true })
  })
}

/** Runs the benchmark body; prints its result as one JSON line on stdout; tears down always. */
export async function runBench (name: string, body: () => Promise<Record<string, unknown>>): Promise<void> {
  requireNode22()
  installHandlers()
  let code = 0
  try {
    const result = await body()
    process.stdout.write(JSON.stringify({ bench: name, ...result }) + '\n')
  } catch (err: any) {
    log(`${name} failed: ${err.stack ?? err.message}`)
    code = 1
  } finally {
    await cleanupAll()
  }
  process.exit(code)
}

/** A temporary directory removed at teardown (unless keep). */
export function tempDir (prefix: string, keep = false): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  if (!keep) {
    syncDirs.add(dir)
    onCleanup(() => {
      rmSync(dir, { recursive: true, force: true })
      syncDirs.delete(dir)
    })
  } else {
    log(`keeping ${dir}`)
  }
  return dir
}

// ---------------------------------------------------------------- agents

export interface AgentOptions {
  name: string
  dir: string
  clusterKey?: string
  bootstrap?: string[]
  /** Extra `shoal agent` flags (e.g. --stable-ms 50). */
  args?: string[]
  /** Node flags before the script (e.g. --cpu-prof). */
  nodeArgs?: string[]
  logLevel?: string
}

/** One real `shoal agent` process with its own state dir, socket, dataset and loopback port. */
export class BenchAgent {
  child?: ChildProcess
  exited?: Promise<void>
  peerId = ''
  address = ''
  startedAt = 0
  readonly opts: AgentOptions

  constructor (opts: AgentOptions) {
    this.opts = opts
  }

  get name (): string { return this.opts.name }
  get state (): string { return join(this.opts.dir, 'state') }
  get data (): string { return join(this.opts.dir, 'data') }
  get socket (): string { return join(this.opts.dir, 'agent.sock') }
  get clusterKeyFile (): string { return this.opts.clusterKey ?? join(this.state, 'cluster.key') }
  get pid (): number { return this.child?.pid ?? -1 }
  get running (): boolean { return this.child != null && this.child.exitCode === null && this.child.signalCode === null }

  client (): ShoalClient { return new ShoalClient(this.socket) }

  args (): string[] {
    const args = ['agent', '--name', this.name, '--state', this.state, '--socket', this.socket,
      '--dataset', `default=${this.data}`, '--listen', '/ip4/127.0.0.1/tcp/0', '--log-level', this.opts.logLevel ?? 'warn']
    if (this.opts.clusterKey != null) args.push('--cluster-key', this.opts.clusterKey)
    for (const b of this.opts.bootstrap ?? []) args.push('--bootstrap', b)
    return [...args, ...(this.opts.args ?? [])]
  }

  /** Spawns the process (output appended to DIR/agent.log); does not wait for it. */
  async spawn (): Promise<void> {
    await mkdir(this.data, { recursive: true })
    const out = openSync(join(this.opts.dir, 'agent.log'), 'a')
    this.startedAt = Date.now()
    const child = spawn(process.execPath, [...(this.opts.nodeArgs ?? []), SHOAL_BIN, ...this.args()], { cwd: this.opts.dir, stdio: ['ignore', out, out] })
    closeSync(out)
    this.child = child
    syncKills.add(child)
    this.exited = new Promise(resolve => child.once('exit', () => { syncKills.delete(child); resolve() }))
  }

  /** Waits until the API answers; returns the first status. */
  async ready (timeoutMs = 60_000, intervalMs = 50): Promise<StatusResponse> {
    const status = await waitFor(`agent ${this.name} to answer on its socket`, async () => {
      if (!this.running) throw new Error(`agent ${this.name} exited (${this.child?.exitCode ?? this.child?.signalCode}); see ${join(this.opts.dir, 'agent.log')}`)
      return await this.client().status()
    }, timeoutMs, intervalMs)
    this.peerId = status.peerId
    this.address = status.addresses[0]
    return status
  }

  async start (timeoutMs?: number): Promise<StatusResponse> {
    await this.spawn()
    return await this.ready(timeoutMs)
  }

  /** SIGTERM; SIGKILL if it has not exited after `graceMs`. */
  async stop (graceMs = 12_000): Promise<void> {
    if (!this.running) return
    this.child?.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.exited, new Promise<void>(resolve => { timer = setTimeout(resolve, graceMs) })])
    clearTimeout(timer)
    if (this.running) {
      log(`agent ${this.name} ignored SIGTERM for ${graceMs} ms: SIGKILL`)
      this.child?.kill('SIGKILL')
      await this.exited
    }
  }

  async kill (): Promise<void> {
    if (!this.running) return
    this.child?.kill('SIGKILL')
    await this.exited
  }
}

/** Agents under one temporary root, all stopped (by pid) at teardown. */
export class AgentSet {
  readonly agents: BenchAgent[] = []
  readonly root: string

  constructor (prefix: string, keep = false) {
    this.root = tempDir(prefix, keep)
    // Registered after tempDir: cleanups run in reverse, so agents stop before the dir goes.
    onCleanup(async () => {
      // SIGTERM lets --cpu-prof agents write their profiles; stragglers are killed.
      await Promise.all(this.agents.map(async a => await a.stop(10_000)))
    })
  }

  create (opts: Omit<AgentOptions, 'dir'>): BenchAgent {
    const agent = new BenchAgent({ ...opts, dir: join(this.root, opts.name) })
    this.agents.push(agent)
    return agent
  }

  get pids (): number[] {
    return this.agents.filter(a => a.running).map(a => a.pid)
  }

  totalRssMiB (): number {
    return Number(this.pids.reduce((s, pid) => s + memoryMiB(pid).rss, 0).toFixed(1))
  }
}

/**
 * Writes a file into an agent's dataset atomically: into DIR/staging (same file system, outside
 * the dataset) first, then renamed into place, so a scan never sees it half written.
 */
export async function writeIntoDataset (agent: BenchAgent, path: string, data: string | Uint8Array): Promise<void> {
  const staging = join(agent.opts.dir, 'staging')
  await mkdir(staging, { recursive: true })
  const tmp = join(staging, `${process.pid}-${stagingCounter++}`)
  await writeFile(tmp, data)
  const target = join(agent.data, ...path.split('/'))
  await mkdir(dirname(target), { recursive: true })
  await rename(tmp, target)
}
let stagingCounter = 0

// ---------------------------------------------------------------- events

export interface SeenEvent {
  /** The agent's clock when its manifest learned the change (event.time). */
  time: number
  /** This process's clock when the line arrived on the stream. */
  received: number
}

type FileEvent = Extract<AgentEvent, { type: 'file.added' }>

/**
 * Records the file events of one agent's stream (GET /v1/events), keyed by `peerId|dataset/path`,
 * first occurrence of each type kept, and wakes waiters.
 */
export class EventRecorder {
  readonly added = new Map<string, SeenEvent>()
  private readonly controller = new AbortController()
  private waiters: Array<() => void> = []
  readonly agent: BenchAgent
  lines = 0
  disconnects = 0
  closed = false
  /** Events by type. */
  readonly counts = new Map<string, number>()
  /** Every file event's key (any type) with its latest version, for diagnostics. */
  readonly versions = new Map<string, number>()
  /** First file.added or file.changed per key: the entry is in the view, whatever its version. */
  readonly live = new Map<string, SeenEvent>()

  constructor (agent: BenchAgent) {
    this.agent = agent
  }

  static key (peerId: string, dataset: string, path: string): string {
    return `${peerId}|${dataset}/${path}`
  }

  async open (): Promise<void> {
    const { closed } = await this.agent.client().events((event) => this.onEvent(event), this.controller.signal)
    void closed.then(() => { this.closed = true; this.wake() })
    onCleanup(() => this.close())
  }

  close (): void {
    this.controller.abort()
  }

  private onEvent (event: AgentEvent): void {
    const received = Date.now()
    this.lines++
    this.counts.set(event.type, (this.counts.get(event.type) ?? 0) + 1)
    if (event.type === 'peer.disconnected') this.disconnects++
    if (!event.type.startsWith('file.')) return
    const e = event as FileEvent
    const key = EventRecorder.key(e.peerId, e.dataset, e.path)
    this.versions.set(key, e.version)
    if (event.type !== 'file.deleted' && !this.live.has(key)) this.live.set(key, { time: e.time, received })
    if (event.type !== 'file.added') return
    if (!this.added.has(key)) this.added.set(key, { time: e.time, received })
    this.wake()
  }

  private wake (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  /** Resolves on the next event (or after `ms`). */
  async next (ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>(resolve => {
      this.waiters.push(resolve)
      timer = setTimeout(resolve, ms)
    })
    clearTimeout(timer)
  }
}

/** Waits until every recorder has all `keys`; resolves with the per-recorder events, or throws at the deadline. */
export async function waitForEvents (recorders: EventRecorder[], keys: string[], timeoutMs: number): Promise<SeenEvent[][]> {
  const deadline = Date.now() + timeoutMs
  for (const r of recorders) {
    while (!keys.every(k => r.added.has(k))) {
      const left = deadline - Date.now()
      if (left <= 0) {
        const missing = keys.filter(k => !r.added.has(k))
        throw new Error(`timed out: agent ${r.agent.name} lacks ${missing.length} of ${keys.length} events (first: ${missing[0]})`)
      }
      if (r.closed) throw new Error(`the event stream of ${r.agent.name} closed`)
      await r.next(Math.min(left, 1000))
    }
  }
  return recorders.map(r => keys.map(k => r.added.get(k) as SeenEvent))
}
