import { accessSync, constants, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { resolve, join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { checkDatasetName, checkPeerIdText, InvalidMessageError, MAX_NAME_LENGTH } from '@shoal/wire'
import { DEFAULT_LOAD_THRESHOLDS, type LoadThresholds } from './load.js'
import {
  DEFAULT_DATA_DIR, DEFAULT_DATASET, DEFAULT_PORT, DEFAULT_STATE_DIR, HEARTBEAT_INTERVAL_MS, RESCAN_INTERVAL_MS, SOCKET_NAME, STABLE_MS, STALE_AFTER_MS, DEFAULT_MIN_FREE_DISK
} from './constants.js'
import { ConfigError } from './errors.js'

export interface DatasetConfig {
  name: string
  /** Absolute path of the dataset's directory. */
  path: string
  /** Created at start if missing (only the built-in default dataset). */
  create?: boolean
  /** Files of this dataset are fetched only when ordered (broadcast, pull), then kept up to date. */
  onDemand?: boolean
}

/** Everything the agent runs with, validated and with every default filled in. */
export interface AgentConfig {
  name: string
  stateDir: string
  socketPath: string
  listen: string[]
  bootstrap: string[]
  datasets: DatasetConfig[]
  /** A key file to use; when absent, the state directory's own (created on first start). */
  clusterKeyFile?: string
  heartbeatIntervalMs: number
  rescanIntervalMs: number
  stableMs: number
  /** A node not heard from for this long is marked stale in queries (never dropped). */
  staleAfterMs: number
  /** Bandwidth limits in bytes per second; 0 = unlimited. */
  limits: { downloadRate: number, uploadRate: number, perPeerDownloadRate: number, perPeerUploadRate: number }
  /** Downloads are refused when they would leave less free disk than this (bytes). */
  minFreeDiskBytes: number
  load: LoadThresholds
  /** Peer ids allowed to issue directives (broadcast). */
  leaders: string[]
}

/** Options as a user gives them (flags); every field optional. */
export interface AgentOptions {
  name?: string
  state?: string
  socket?: string
  listen?: string[]
  bootstrap?: string[]
  dataset?: string[]
  clusterKey?: string
  heartbeatIntervalMs?: number
  rescanIntervalMs?: number
  stableMs?: number
  staleAfterMs?: number
  downloadRate?: string
  uploadRate?: string
  perPeerDownloadRate?: string
  perPeerUploadRate?: string
  minFreeDisk?: string
  leader?: string[]
  onDemand?: string[]
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }

/** Parses a byte count like 1048576, 512K, 100M, 2G (binary units); for rates, per second. */
export function parseBytes (value: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:\/s)?$/i.exec(value.trim())
  if (m == null) throw new ConfigError(`${what} ${JSON.stringify(value)} is not a byte count (examples: 0, 500K, 100M, 2G)`)
  const n = Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()])
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${what} ${JSON.stringify(value)} is too large`)
  return n
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

function parseDataset (spec: string, cwd: string): DatasetConfig {
  const eq = spec.indexOf('=')
  if (eq <= 0 || eq === spec.length - 1) throw new ConfigError(`--dataset ${JSON.stringify(spec)}: expected NAME=DIR, e.g. models=/data/models`)
  const name = spec.slice(0, eq)
  try {
    checkDatasetName(name)
  } catch (err) {
    if (err instanceof InvalidMessageError) throw new ConfigError(`--dataset ${JSON.stringify(spec)}: ${err.message}`)
    throw err
  }
  return { name, path: resolve(cwd, spec.slice(eq + 1)) }
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

function checkInterval (value: number | undefined, fallback: number, what: string, min: number): number {
  if (value == null) return fallback
  if (!Number.isFinite(value) || value < min || value > 3_600_000) throw new ConfigError(`${what} must be between ${min} and 3600000 ms`)
  return value
}

/**
 * Resolves user options into a complete configuration. With no options at all it gives the
 * built-in defaults: state in ./.shoal, dataset `default` at ./shoal-data (created if missing),
 * socket ./.shoal/agent.sock, TCP port 4001 on every interface.
 */
export function resolveConfig (options: AgentOptions, cwd = process.cwd()): AgentConfig {
  const name = options.name ?? hostname()
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new ConfigError(`--name must be 1-${MAX_NAME_LENGTH} printable characters`)
  }
  const stateDir = resolve(cwd, options.state ?? DEFAULT_STATE_DIR)
  const datasets = (options.dataset ?? []).map(spec => parseDataset(spec, cwd))
  const defaulted = datasets.length === 0
  if (defaulted) datasets.push({ name: DEFAULT_DATASET, path: resolve(cwd, DEFAULT_DATA_DIR), create: true })
  const names = new Set<string>()
  for (const d of datasets) {
    if (names.has(d.name)) throw new ConfigError(`dataset ${d.name} is given twice`)
    names.add(d.name)
  }
  for (const name of options.onDemand ?? []) {
    const dataset = datasets.find(d => d.name === name)
    if (dataset == null) throw new ConfigError(`--on-demand ${JSON.stringify(name)}: no such dataset (give it with --dataset ${name}=DIR)`)
    dataset.onDemand = true
  }
  const config: AgentConfig = {
    name,
    stateDir,
    socketPath: resolve(cwd, options.socket ?? join(stateDir, SOCKET_NAME)),
    listen: (options.listen ?? [`/ip4/0.0.0.0/tcp/${DEFAULT_PORT}`]).map(a => checkMultiaddr(a, '--listen')),
    bootstrap: (options.bootstrap ?? []).map(a => checkMultiaddr(a, '--bootstrap')),
    datasets,
    clusterKeyFile: options.clusterKey == null ? undefined : resolve(cwd, options.clusterKey),
    heartbeatIntervalMs: checkInterval(options.heartbeatIntervalMs, HEARTBEAT_INTERVAL_MS, 'the heartbeat interval', 100),
    rescanIntervalMs: checkInterval(options.rescanIntervalMs, RESCAN_INTERVAL_MS, 'the rescan interval', 100),
    stableMs: checkInterval(options.stableMs, STABLE_MS, 'the stability delay', 0),
    staleAfterMs: checkInterval(options.staleAfterMs, STALE_AFTER_MS, '--stale-after-ms', 1000),
    limits: {
      downloadRate: parseBytes(options.downloadRate ?? '0', '--download-rate'),
      uploadRate: parseBytes(options.uploadRate ?? '0', '--upload-rate'),
      perPeerDownloadRate: parseBytes(options.perPeerDownloadRate ?? '0', '--per-peer-download-rate'),
      perPeerUploadRate: parseBytes(options.perPeerUploadRate ?? '0', '--per-peer-upload-rate')
    },
    minFreeDiskBytes: parseBytes(options.minFreeDisk ?? DEFAULT_MIN_FREE_DISK, '--min-free-disk'),
    load: { ...DEFAULT_LOAD_THRESHOLDS },
    leaders: (options.leader ?? []).map(id => {
      try {
        checkPeerIdText(id, 'leader')
        peerIdFromString(id)
      } catch {
        throw new ConfigError(`--leader ${JSON.stringify(id)} is not a peer id (as 'shoal status' prints it, 12D3KooW...)`)
      }
      return id
    })
  }
  return config
}

/** Checks what must exist before start: every dataset directory (the default one is created). */
export function checkDatasets (config: AgentConfig): void {
  for (const dataset of config.datasets) checkDatasetDir(dataset)
}
