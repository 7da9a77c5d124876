import { accessSync, constants, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname, resolve, join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { checkDatasetName, checkPeerIdText, InvalidMessageError, MAX_NAME_LENGTH } from '@shoal/wire'
import { DEFAULT_LOAD_THRESHOLDS, type LoadThresholds } from './load.js'
import {
  DEFAULT_DATA_DIR, DEFAULT_DATASET, DEFAULT_PORT, DEFAULT_STATE_DIR, HEARTBEAT_INTERVAL_MS, RESCAN_INTERVAL_MS, SOCKET_NAME, STABLE_MS, STALE_AFTER_MS, DEFAULT_MIN_FREE_DISK,
  TOMBSTONE_GC_INTERVAL_MS
} from './constants.js'
import { ConfigError } from './errors.js'
import { decodeJoinToken } from './join.js'
import { loadSettingsFile, optionsFromEnv, validateSettings, type DatasetSettings, type Settings } from './settings.js'
import type { Priority } from '@shoal/transfer'

/** Which nodes should hold a dataset's files. */
export type HoldPolicy =
  | { kind: 'all' }
  | { kind: 'on-demand' }
  | { kind: 'replicas', count: number }
  | { kind: 'select', roles: string[], names: string[] }

export interface DatasetConfig {
  name: string
  /** Absolute path of the dataset's directory. */
  path: string
  /** Created at start if missing (only the built-in default dataset). */
  create?: boolean
  priority: Priority
  hold: HoldPolicy
  /** Glob patterns (relative paths): only matching files are synced; none = all. */
  include: string[]
  /** Glob patterns of files never synced. */
  exclude: string[]
  /** A published path never changes content: the first version wins, later ones are refused and reported. */
  immutable: boolean
}

/** Everything the agent runs with, validated and with every default filled in. */
export interface AgentConfig {
  name: string
  role: 'persistent' | 'ephemeral' | 'coordinator'
  stateDir: string
  socketPath: string
  /** Group that may use the socket (mode 0660); none = the agent's own. */
  socketGroup?: string
  listen: string[]
  bootstrap: string[]
  datasets: DatasetConfig[]
  /** A key file to use; when absent, the state directory's own (created on first start). */
  clusterKeyFile?: string
  /** A cluster key from a join token (written to the state directory on first start). */
  joinKeyHex?: string
  heartbeatIntervalMs: number
  rescanIntervalMs: number
  stableMs: number
  /** Tombstones are collected this often; a tombstone goes 10 intervals after every known node has seen it. */
  tombstoneGcIntervalMs: number
  /** A node not heard from for this long is marked stale in queries (never dropped). */
  staleAfterMs: number
  /** Bandwidth limits in bytes per second; 0 = unlimited. */
  limits: { downloadRate: number, uploadRate: number, perPeerDownloadRate: number, perPeerUploadRate: number }
  /** Downloads are refused when they would leave less free disk than this (bytes). */
  minFreeDiskBytes: number
  load: LoadThresholds
  /** Peer ids allowed to issue directives (broadcast). */
  leaders: string[]
  /** When not empty, only these peers may connect (besides the cluster key). */
  allow: string[]
  /** Prometheus endpoint. */
  metrics?: { host: string, port: number }
  logLevel: 'debug' | 'info' | 'warn' | 'error'
  /** Where the settings came from, for status (never the token). */
  configFile?: string
}

/** Options as flags give them; every field optional. */
export interface AgentOptions {
  config?: string
  name?: string
  role?: string
  state?: string
  socket?: string
  socketGroup?: string
  listen?: string[]
  bootstrap?: string[]
  dataset?: string[]
  onDemand?: string[]
  clusterKey?: string
  join?: string
  leader?: string[]
  allow?: string[]
  metrics?: string
  logLevel?: string
  heartbeatIntervalMs?: number
  rescanIntervalMs?: number
  stableMs?: number
  tombstoneGcIntervalMs?: number
  staleAfterMs?: number
  downloadRate?: string
  uploadRate?: string
  perPeerDownloadRate?: string
  perPeerUploadRate?: string
  minFreeDisk?: string
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }

/** Parses a byte count like 1048576, 512K, 100M, 2G (binary units); for rates, per second. */
export function parseBytes (value: string | number, what: string): number {
  if (typeof value === 'number') return value
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:\/s)?$/i.exec(value.trim())
  if (m == null) throw new ConfigError(`${what} ${JSON.stringify(value)} is not a byte count (examples: 0, 500K, 100M, 2G)`)
  const n = Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()])
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${what} ${JSON.stringify(value)} is too large`)
  return n
}

/** Parses 500ms, 30s, 10m, 1h (a bare number is milliseconds). */
export function parseDurationMs (value: string | number, what: string): number {
  if (typeof value === 'number') return value
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim())
  if (m == null) throw new ConfigError(`${what} ${JSON.stringify(value)} is not a duration (examples: 500ms, 30s, 10m)`)
  return Math.round(Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as Record<string, number>)[m[2]])
}

function checkMultiaddr (value: string, flag: string): string {
  try {
    const ma = multiaddr(value)
    if (!ma.getComponents().some(c => c.name === 'tcp')) throw new Error('no /tcp/ part')
    return ma.toString()
  } catch (err: any) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)} is not a valid TCP multiaddr (${err.message}); example: /ip4/127.0.0.1/tcp/4001`)
  }
}

function checkDatasetDir (dataset: DatasetConfig): void {
  let isDir = false
  try {
    isDir = statSync(dataset.path).isDirectory()
  } catch (err: any) {
    throw new ConfigError(`dataset ${dataset.name}: directory ${dataset.path} ${err.code === 'ENOENT' ? 'does not exist' : `cannot be read (${err.code})`}; create it or fix --dataset`)
  }
  if (!isDir) throw new ConfigError(`dataset ${dataset.name}: ${dataset.path} is not a directory`)
  try {
    accessSync(dataset.path, constants.R_OK | constants.W_OK | constants.X_OK)
  } catch {
    throw new ConfigError(`dataset ${dataset.name}: directory ${dataset.path} is not readable and writable by this user`)
  }
}

function checkInterval (value: number, what: string, min: number): number {
  if (!Number.isFinite(value) || value < min || value > 3_600_000) throw new ConfigError(`${what} must be between ${min} ms and 1 h`)
  return value
}

function checkPeerIds (ids: string[], what: string): string[] {
  return ids.map(id => {
    try {
      checkPeerIdText(id, what)
      peerIdFromString(id)
    } catch {
      throw new ConfigError(`${what} ${JSON.stringify(id)} is not a peer id (as 'shoal status' prints it, 12D3KooW...)`)
    }
    return id
  })
}

/** The flag-shaped options of one layer (flags or environment) as settings. */
function optionsToSettings (o: Record<string, any>, source: string, cwd: string): { settings: Settings, onDemand: string[] } {
  const datasets: Record<string, DatasetSettings> = {}
  for (const spec of (o.dataset ?? []) as string[]) {
    const eq = spec.indexOf('=')
    if (eq <= 0 || eq === spec.length - 1) throw new ConfigError(`${source}: dataset ${JSON.stringify(spec)}: expected NAME=DIR, e.g. models=/data/models`)
    datasets[spec.slice(0, eq)] = { path: resolve(cwd, spec.slice(eq + 1)) }
  }
  const limits: Record<string, string> = {}
  for (const [flag, key] of [['downloadRate', 'download-rate'], ['uploadRate', 'upload-rate'], ['perPeerDownloadRate', 'per-peer-download-rate'],
    ['perPeerUploadRate', 'per-peer-upload-rate'], ['minFreeDisk', 'min-free-disk']] as const) {
    const v = o[flag] ?? o[key]
    if (v != null) limits[key] = v
  }
  const ms = (v: unknown): string | undefined => v == null ? undefined : typeof v === 'number' ? `${v}ms` : String(v)
  const raw = {
    name: o.name,
    role: o.role,
    state: o.state == null ? undefined : resolve(cwd, o.state),
    socket: o.socket == null ? undefined : resolve(cwd, o.socket),
    'socket-group': o.socketGroup ?? o['socket-group'],
    listen: o.listen,
    bootstrap: o.bootstrap,
    'cluster-key': (o.clusterKey ?? o['cluster-key']) == null ? undefined : resolve(cwd, o.clusterKey ?? o['cluster-key']),
    join: o.join,
    leaders: o.leader ?? o.leaders,
    allow: o.allow,
    metrics: o.metrics,
    'log-level': o.logLevel ?? o['log-level'],
    'stale-after': ms(o.staleAfterMs ?? o['stale-after']),
    'heartbeat-interval': ms(o.heartbeatIntervalMs ?? o['heartbeat-interval']),
    'rescan-interval': ms(o.rescanIntervalMs ?? o['rescan-interval']),
    'stable-after': ms(o.stableMs ?? o['stable-after']),
    'tombstone-gc-interval': ms(o.tombstoneGcIntervalMs ?? o['tombstone-gc-interval']),
    limits: Object.keys(limits).length > 0 ? limits : undefined,
    datasets: Object.keys(datasets).length > 0 ? datasets : undefined
  }
  for (const key of Object.keys(raw) as Array<keyof typeof raw>) if (raw[key] === undefined) delete raw[key]
  return { settings: validateSettings(raw, source), onDemand: o.onDemand ?? o['on-demand'] ?? [] }
}

/** Resolves relative paths of a configuration file against the file's directory. */
function anchorFileSettings (s: Settings, dir: string): Settings {
  const out: Settings = { ...s }
  if (out.state != null) out.state = resolve(dir, out.state)
  if (out.socket != null) out.socket = resolve(dir, out.socket)
  if (out['cluster-key'] != null) out['cluster-key'] = resolve(dir, out['cluster-key'])
  if (out.datasets != null) {
    out.datasets = Object.fromEntries(Object.entries(out.datasets).map(([n, d]) => [n, { ...d, path: resolve(dir, d.path) }]))
  }
  return out
}

/** Later layers win, key by key; datasets merge by name, field by field. */
function mergeSettings (...layers: Settings[]): Settings {
  const out: Settings = {}
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer) as Array<[keyof Settings, any]>) {
      if (key === 'datasets') {
        const merged = { ...(out.datasets ?? {}) }
        for (const [name, d] of Object.entries(value as Record<string, DatasetSettings>)) merged[name] = { ...(merged[name] ?? {}), ...d }
        out.datasets = merged
      } else if (key === 'limits') {
        out.limits = { ...(out.limits ?? {}), ...value }
      } else {
        (out as any)[key] = value
      }
    }
  }
  return out
}

function toHold (hold: DatasetSettings['hold']): HoldPolicy {
  if (hold == null || hold === 'all') return { kind: 'all' }
  if (hold === 'on-demand') return { kind: 'on-demand' }
  if (typeof hold === 'number') return { kind: 'replicas', count: hold }
  return { kind: 'select', roles: hold.roles ?? [], names: hold.names ?? [] }
}

function checkGlob (pattern: string, where: string): string {
  if (pattern.startsWith('/') || pattern.split('/').includes('..')) throw new ConfigError(`${where}: ${JSON.stringify(pattern)} must be relative to the dataset, without '..'`)
  return pattern
}

/**
 * Resolves every source of settings into one configuration. Precedence: flags, then SHOAL_*
 * environment variables, then the configuration file (--config or SHOAL_CONFIG), then the
 * built-in defaults: state in ./.shoal, dataset \`default\` at ./shoal-data (created if missing),
 * socket ./.shoal/agent.sock, TCP port 4001 on every interface.
 */
export function resolveConfig (flags: AgentOptions, options: { env?: NodeJS.ProcessEnv, cwd?: string } = {}): AgentConfig {
  const cwd = options.cwd ?? process.cwd()
  const envOptions = optionsFromEnv(options.env ?? {})
  const configFile = flags.config ?? (envOptions.config as string | undefined)
  const file = configFile == null ? {} : anchorFileSettings(loadSettingsFile(resolve(cwd, configFile)), dirname(resolve(cwd, configFile)))
  const env = optionsToSettings(envOptions, 'environment', cwd)
  const fromFlags = optionsToSettings(flags, 'flags', cwd)
  const s = mergeSettings(file, env.settings, fromFlags.settings)

  const name = s.name ?? hostname()
  if (name.length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new ConfigError(`name must be 1-${MAX_NAME_LENGTH} printable characters`)
  }
  const stateDir = s.state ?? resolve(cwd, DEFAULT_STATE_DIR)
  const datasets: DatasetConfig[] = Object.entries(s.datasets ?? {}).map(([dname, d]) => {
    try {
      checkDatasetName(dname, 'dataset')
    } catch (err) {
      if (err instanceof InvalidMessageError) throw new ConfigError(`datasets.${dname}: ${err.message}`)
      throw err
    }
    return {
      name: dname,
      path: d.path,
      priority: d.priority ?? 'normal',
      hold: toHold(d.hold),
      include: (d.include ?? []).map(p => checkGlob(p, `datasets.${dname}.include`)),
      exclude: (d.exclude ?? []).map(p => checkGlob(p, `datasets.${dname}.exclude`)),
      immutable: d.immutable ?? false
    }
  })
  if (datasets.length === 0) {
    datasets.push({ name: DEFAULT_DATASET, path: resolve(cwd, DEFAULT_DATA_DIR), create: true, priority: 'normal', hold: { kind: 'all' }, include: [], exclude: [], immutable: false })
  }
  for (const dname of [...env.onDemand, ...fromFlags.onDemand]) {
    const dataset = datasets.find(d => d.name === dname)
    if (dataset == null) throw new ConfigError(`on-demand ${JSON.stringify(dname)}: no such dataset (give it with --dataset ${dname}=DIR)`)
    dataset.hold = { kind: 'on-demand' }
  }
  let bootstrap = (s.bootstrap ?? []).map(a => checkMultiaddr(a, 'bootstrap'))
  let joinKeyHex: string | undefined
  if (s.join != null) {
    if (s['cluster-key'] != null) throw new ConfigError('give either a join token or a cluster key, not both')
    const token = decodeJoinToken(s.join)
    joinKeyHex = token.keyHex
    bootstrap = [...bootstrap, ...token.bootstrap.filter(a => !bootstrap.includes(a))]
  }
  let metrics: AgentConfig['metrics']
  if (s.metrics != null) {
    const m = /^(.+):(\d{1,5})$/.exec(s.metrics)
    const port = m == null ? NaN : Number(m[2])
    if (m == null || port < 1 || port > 65535) throw new ConfigError(`metrics ${JSON.stringify(s.metrics)}: expected HOST:PORT, e.g. 127.0.0.1:9464`)
    metrics = { host: m[1].replace(/^\[(.*)\]$/, '$1'), port }
  }
  const limits = s.limits ?? {}
  return {
    name,
    role: s.role ?? 'persistent',
    stateDir,
    socketPath: s.socket ?? join(stateDir, SOCKET_NAME),
    socketGroup: s['socket-group'],
    listen: (s.listen ?? [`/ip4/0.0.0.0/tcp/${DEFAULT_PORT}`]).map(a => checkMultiaddr(a, 'listen')),
    bootstrap,
    datasets,
    clusterKeyFile: s['cluster-key'],
    joinKeyHex,
    heartbeatIntervalMs: checkInterval(s['heartbeat-interval'] == null ? HEARTBEAT_INTERVAL_MS : parseDurationMs(s['heartbeat-interval'], 'heartbeat-interval'), 'heartbeat-interval', 100),
    rescanIntervalMs: checkInterval(s['rescan-interval'] == null ? RESCAN_INTERVAL_MS : parseDurationMs(s['rescan-interval'], 'rescan-interval'), 'rescan-interval', 100),
    stableMs: checkInterval(s['stable-after'] == null ? STABLE_MS : parseDurationMs(s['stable-after'], 'stable-after'), 'stable-after', 0),
    tombstoneGcIntervalMs: checkInterval(s['tombstone-gc-interval'] == null ? TOMBSTONE_GC_INTERVAL_MS : parseDurationMs(s['tombstone-gc-interval'], 'tombstone-gc-interval'), 'tombstone-gc-interval', 100),
    staleAfterMs: checkInterval(s['stale-after'] == null ? STALE_AFTER_MS : parseDurationMs(s['stale-after'], 'stale-after'), 'stale-after', 1000),
    limits: {
      downloadRate: parseBytes(limits['download-rate'] ?? 0, 'limits.download-rate'),
      uploadRate: parseBytes(limits['upload-rate'] ?? 0, 'limits.upload-rate'),
      perPeerDownloadRate: parseBytes(limits['per-peer-download-rate'] ?? 0, 'limits.per-peer-download-rate'),
      perPeerUploadRate: parseBytes(limits['per-peer-upload-rate'] ?? 0, 'limits.per-peer-upload-rate')
    },
    minFreeDiskBytes: parseBytes(limits['min-free-disk'] ?? DEFAULT_MIN_FREE_DISK, 'limits.min-free-disk'),
    load: { ...DEFAULT_LOAD_THRESHOLDS },
    leaders: checkPeerIds(s.leaders ?? [], 'leader'),
    allow: checkPeerIds(s.allow ?? [], 'allow'),
    metrics,
    logLevel: s['log-level'] ?? 'warn',
    configFile: configFile == null ? undefined : resolve(cwd, configFile)
  }
}

/** Checks what must exist before start: every dataset directory (the default one is created). */
export function checkDatasets (config: AgentConfig): void {
  for (const dataset of config.datasets) checkDatasetDir(dataset)
}
