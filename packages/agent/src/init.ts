import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { networkInterfaces } from 'node:os'
import { join, resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { DEFAULT_PORT, DEFAULT_STATE_DIR } from './constants.js'
import { ConfigError } from './errors.js'
import { encodeJoinToken } from './join.js'
import { loadOrCreateClusterKey, loadOrCreateIdentity } from './keys.js'

export interface InitOptions {
  state?: string
  /** Where to write the configuration (default ./shoal.yaml). */
  config?: string
  listen?: string
  /** Addresses other nodes reach this one at (default: this host's addresses). */
  advertise?: string[]
  name?: string
  force?: boolean
}

export interface InitResult {
  peerId: string
  stateDir: string
  configFile: string
  clusterKeyFile: string
  /** Secret: carries the cluster key. */
  joinToken: string
  bootstrap: string[]
}

function tcpPort (listen: string): number {
  const port = multiaddr(listen).getComponents().find(c => c.name === 'tcp')?.value
  if (port == null) throw new ConfigError(`--listen ${JSON.stringify(listen)} has no /tcp/ part`)
  return Number(port)
}

function hostAddresses (port: number): string[] {
  const out: string[] = []
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal || a.family !== 'IPv4') continue
      out.push(`/ip4/${a.address}/tcp/${port}`)
    }
  }
  return out.length > 0 ? out : [`/ip4/127.0.0.1/tcp/${port}`]
}

function configText (o: { name?: string, stateDir: string, listen: string }): string {
  return `# shoal agent configuration. Every key can also be given as a flag (--state, --listen, ...)
# or as an environment variable (SHOAL_STATE, SHOAL_LISTEN, ...); flags win over the
# environment, which wins over this file. Start the agent with: shoal agent --config <this file>
${o.name != null ? `name: ${JSON.stringify(o.name)}\n` : '# name: gpu-01              # default: the host name\n'}
# Identity, cluster key and index. Keep it; a node keeps its peer id across restarts.
state: ${JSON.stringify(o.stateDir)}

# The local API socket (HTTP + JSON) that applications and the shoal CLI use.
# socket: /run/shoal/agent.sock   # default: <state>/agent.sock
# socket-group: shoal             # group allowed to use it (mode 0660)

listen:
  - ${o.listen}

# Other nodes to connect to at start (this node's address is in the join token).
# bootstrap:
#   - /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW...

# Peers allowed to order a file onto every node (shoal broadcast).
# leaders:
#   - 12D3KooW...

# metrics: 127.0.0.1:9464          # Prometheus endpoint
# log-level: warn                  # debug, info, warn or error

# limits:
#   download-rate: 0               # bytes per second, 0 = unlimited (e.g. 1G)
#   upload-rate: 0
#   per-peer-download-rate: 0
#   per-peer-upload-rate: 0
#   min-free-disk: 1G              # refuse downloads that would leave less

# Datasets: named directories this node holds. hold: all (default), on-demand (only what is
# ordered), a replica count (e.g. 3), or { roles: [...], names: [...] }.
datasets:
  default:
    path: ./shoal-data
    # priority: normal             # critical, high, normal, low, background
    # hold: all
    # include: ['**/*.safetensors']
    # exclude: ['tmp/**']
    # immutable: false             # a published path never changes content
`
}

/**
 * `shoal init`: creates this node's identity and a new cluster key, writes a commented
 * configuration, and returns the join token another node passes to `shoal agent --join`.
 */
export async function initNode (options: InitOptions, cwd = process.cwd()): Promise<InitResult> {
  const stateDir = resolve(cwd, options.state ?? DEFAULT_STATE_DIR)
  const configFile = resolve(cwd, options.config ?? 'shoal.yaml')
  const listen = options.listen ?? `/ip4/0.0.0.0/tcp/${DEFAULT_PORT}`
  let port: number
  try {
    port = tcpPort(listen)
  } catch (err: any) {
    throw new ConfigError(err instanceof ConfigError ? err.message : `--listen ${JSON.stringify(listen)} is not a multiaddr`)
  }
  if (options.force !== true) {
    const exists = await access(configFile).then(() => true, () => false)
    if (exists) throw new ConfigError(`${configFile} exists; move it away or pass --force to overwrite it`)
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  const key = await loadOrCreateIdentity(join(stateDir, 'peer.key'))
  const peerId = peerIdFromPrivateKey(key).toString()
  const clusterKeyFile = join(stateDir, 'cluster.key')
  await loadOrCreateClusterKey(clusterKeyFile)
  const keyHex = (await readFile(clusterKeyFile, 'utf8')).trim().split(/\r?\n/)[2].toLowerCase()
  const host = multiaddr(listen).getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')?.value
  const advertise = options.advertise ?? (host == null || host === '0.0.0.0' || host === '::' ? hostAddresses(port) : [listen])
  const bootstrap = advertise.map(a => `${a}/p2p/${peerId}`)
  for (const a of bootstrap) {
    try {
      multiaddr(a)
    } catch {
      throw new ConfigError(`--advertise ${JSON.stringify(a)} is not a multiaddr`)
    }
  }
  await writeFile(configFile, configText({ name: options.name, stateDir, listen }), { mode: 0o640 })
  return { peerId, stateDir, configFile, clusterKeyFile, joinToken: encodeJoinToken({ keyHex, bootstrap }), bootstrap }
}
