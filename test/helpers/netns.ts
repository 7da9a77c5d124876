/**
 * A small virtual network of network namespaces, and agents that run inside it.
 *
 * Layout: a hub namespace holds a bridge `br0`; every node namespace has a veth `eth0` whose
 * other end (`p<i>`) is a port of that bridge, an address 10.77.<run>.<10+i>/24, and loopback
 * up. Nothing touches the root namespace. The hub also holds a second bridge, `br1`, with no
 * ports: `partition(nodes)` moves those nodes' ports onto it, so they keep talking to each
 * other but no longer reach the rest, and `heal()` moves them back. `linkDown(node)` /
 * `linkUp(node)` cut and restore one node's own link, inside its namespace.
 *
 * Agents run as `ip netns exec NS node shoal.js agent ...`; `ip netns exec` execs the command,
 * so the child's pid is the agent's (checked at start), and killing it kills the agent. The
 * agents' Unix sockets are on the shared filesystem, so the test talks to them from the root
 * namespace.
 */
import { execFile, execFileSync, spawn } from 'node:child_process'
import { realpathSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, readlink, realpath, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { SHOAL_BIN, TestAgent, waitFor, type AgentSpec } from './agents.js'
import type { StatusResponse } from '@shoal/client'

const execFileAsync = promisify(execFile)

/** The port every agent listens on, each inside its own namespace. */
export const AGENT_PORT = 4001
const IP_TIMEOUT_MS = 10_000

export interface NetnsHost {
  /** 1-based. */
  index: number
  /** The node's namespace. */
  ns: string
  /** Its address inside the virtual network. */
  ip: string
  /** Its veth end inside the hub (a port of br0, or of br1 while partitioned). */
  hubPort: string
}

async function ip (...args: string[]): Promise<void> {
  try {
    await execFileAsync('ip', args, { timeout: IP_TIMEOUT_MS })
  } catch (err: any) {
    throw new Error(`ip ${args.join(' ')} failed: ${String(err.stderr ?? err.message).trim()}`)
  }
}

async function existingNamespaces (): Promise<Set<string>> {
  const { stdout } = await execFileAsync('ip', ['netns', 'list'], { timeout: IP_TIMEOUT_MS })
  return new Set(stdout.split('\n').map(line => line.split(' ')[0]).filter(name => name !== ''))
}

export class VirtualNetwork {
  readonly hub: string
  readonly hosts: NetnsHost[] = []
  /** 10.77.<octet>.0/24: one subnet per run, from the pid. */
  readonly subnet: string
  private readonly prefix: string
  private destroyed = false
  private readonly onExit = (): void => { this.destroySync() }

  private constructor (readonly count: number, runId: number) {
    this.prefix = `shoal${runId}`
    this.hub = `${this.prefix}hub`
    this.subnet = `10.77.${(runId % 250) + 1}`
    for (let i = 1; i <= count; i++) {
      this.hosts.push({ index: i, ns: `${this.prefix}n${i}`, ip: `${this.subnet}.${10 + i}`, hubPort: `p${i}` })
    }
  }

  /** Builds the network; on failure removes whatever it created and throws. */
  static async create (count: number, runId = process.pid): Promise<VirtualNetwork> {
    if (count < 1 || count > 200) throw new Error('between 1 and 200 nodes')
    const net = new VirtualNetwork(count, runId)
    // Registered first, so even a half-built network goes away if the process exits.
    process.on('exit', net.onExit)
    try {
      await net.build()
    } catch (err) {
      await net.destroy()
      throw err
    }
    return net
  }

  private get namespaces (): string[] {
    return [this.hub, ...this.hosts.map(h => h.ns)]
  }

  private async build (): Promise<void> {
    // Leftovers with our names can only come from an earlier run with this pid that crashed.
    const existing = await existingNamespaces()
    for (const ns of this.namespaces) if (existing.has(ns)) await ip('netns', 'del', ns)

    await ip('netns', 'add', this.hub)
    await ip('-n', this.hub, 'link', 'set', 'dev', 'lo', 'up')
    for (const bridge of ['br0', 'br1']) {
      await ip('-n', this.hub, 'link', 'add', 'name', bridge, 'type', 'bridge')
      await ip('-n', this.hub, 'link', 'set', 'dev', bridge, 'up')
    }
    for (const host of this.hosts) {
      await ip('netns', 'add', host.ns)
      await ip('-n', host.ns, 'link', 'set', 'dev', 'lo', 'up')
      // Both ends are created directly in their namespaces: nothing appears in the root namespace.
      await ip('link', 'add', host.hubPort, 'netns', this.hub, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns)
      await ip('-n', this.hub, 'link', 'set', 'dev', host.hubPort, 'master', 'br0')
      await ip('-n', this.hub, 'link', 'set', 'dev', host.hubPort, 'up')
      await ip('-n', host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0')
      await ip('-n', host.ns, 'link', 'set', 'dev', 'eth0', 'up')
    }
  }

  host (index: number): NetnsHost {
    const host = this.hosts[index - 1]
    if (host == null) throw new Error(`no node ${index}`)
    return host
  }

  /** Cuts one node's link, inside its namespace: it reaches nobody and nobody reaches it. */
  async linkDown (host: NetnsHost): Promise<void> {
    await ip('-n', host.ns, 'link', 'set', 'dev', 'eth0', 'down')
  }

  async linkUp (host: NetnsHost): Promise<void> {
    await ip('-n', host.ns, 'link', 'set', 'dev', 'eth0', 'up')
  }

  /** Separates `hosts` from the others; they still reach each other. */
  async partition (hosts: NetnsHost[]): Promise<void> {
    for (const host of hosts) await ip('-n', this.hub, 'link', 'set', 'dev', host.hubPort, 'master', 'br1')
  }

  /** Puts every node back on one bridge. */
  async heal (): Promise<void> {
    for (const host of this.hosts) await ip('-n', this.hub, 'link', 'set', 'dev', host.hubPort, 'master', 'br0')
  }

  /**
   * Deletes every namespace of this network (their veths and bridges go with them). Idempotent;
   * stop the processes inside first, or the namespaces linger until they exit.
   */
  async destroy (): Promise<void> {
    if (this.destroyed) return
    const existing = await existingNamespaces()
    const failures: string[] = []
    for (const ns of this.namespaces) {
      if (!existing.has(ns)) continue
      await ip('netns', 'del', ns).catch((err: Error) => failures.push(err.message))
    }
    if (failures.length > 0) throw new Error(`teardown incomplete: ${failures.join('; ')}`)
    this.destroyed = true
    process.off('exit', this.onExit)
  }

  /** Last resort on process exit: no async work is possible there. */
  private destroySync (): void {
    if (this.destroyed) return
    for (const ns of this.namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: IP_TIMEOUT_MS })
      } catch {}
    }
    this.destroyed = true
  }
}

/** A TestAgent that runs inside a node's namespace and listens on that node's address. */
export class NetnsAgent extends TestAgent {
  constructor (spec: AgentSpec, dir: string, readonly host: NetnsHost) {
    super(spec, dir)
  }

  get listenAddress (): string {
    return `/ip4/${this.host.ip}/tcp/${AGENT_PORT}`
  }

  override args (): string[] {
    const args = super.args()
    const at = args.indexOf('--listen')
    if (at < 0) throw new Error('TestAgent.args() has no --listen to replace')
    args[at + 1] = this.listenAddress
    return args
  }

  override async start (): Promise<StatusResponse> {
    await mkdir(this.data, { recursive: true })
    const child = spawn('ip', ['netns', 'exec', this.host.ns, process.execPath, SHOAL_BIN, ...this.args()], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.spec.env } })
    this.child = child
    child.stdout?.on('data', (d: Buffer) => { this.stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.exited = new Promise(resolve => child.on('exit', (code) => resolve(code)))
    let exitCode: number | null | undefined
    void this.exited.then(code => { exitCode = code })
    try {
      const status = await waitFor(`agent ${this.spec.name} in ${this.host.ns} to answer on its socket`, async () => {
        if (exitCode !== undefined) throw new Error(`agent ${this.spec.name} exited with ${exitCode}: ${this.stderr}`)
        return await this.client.status()
      }, 30_000)
      // Stopping the agent by this pid is only right if `ip netns exec` replaced itself with node.
      const exe = await realpath(await readlink(`/proc/${child.pid}/exe`))
      if (exe !== realpathSync(process.execPath)) throw new Error(`pid ${child.pid} runs ${exe}, not node: killing it would not stop the agent`)
      this.peerId = status.peerId
      this.address = status.addresses.find(a => a.startsWith(`/ip4/${this.host.ip}/`)) ?? status.addresses[0]
      return status
    } catch (err) {
      await this.kill()
      throw err
    }
  }
}

/** Agents in a virtual network, one per node, under one temporary directory. */
export class NetnsCluster {
  readonly agents: NetnsAgent[] = []
  net?: VirtualNetwork
  private root = ''
  /** If the test process exits without cleanup (a killed run), the agents and files still go. */
  private readonly onExit = (): void => {
    for (const a of this.agents) if (a.child?.pid != null && a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL')
    if (this.root !== '') rmSync(this.root, { recursive: true, force: true })
  }

  async init (nodes: number): Promise<this> {
    this.root = await mkdtemp(join(tmpdir(), 'shoal-netns-'))
    process.on('exit', this.onExit)
    this.net = await VirtualNetwork.create(nodes)
    return this
  }

  get network (): VirtualNetwork {
    if (this.net == null) throw new Error('init() first')
    return this.net
  }

  /** Starts an agent on the next free node. */
  async add (spec: AgentSpec): Promise<NetnsAgent> {
    const host = this.network.host(this.agents.length + 1)
    const dir = join(this.root, spec.name)
    await mkdir(dir, { recursive: true })
    const agent = new NetnsAgent(spec, dir, host)
    this.agents.push(agent)
    await agent.start()
    return agent
  }

  /** Kills every agent, then removes the network and the directory; each step runs even if another fails. */
  async cleanup (): Promise<void> {
    const errors: unknown[] = []
    await Promise.all(this.agents.map(async a => await a.kill().catch(err => errors.push(err))))
    await this.net?.destroy().catch(err => errors.push(err))
    if (this.root !== '') await rm(this.root, { recursive: true, force: true }).catch(err => errors.push(err))
    process.off('exit', this.onExit)
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.map(String).join('; ')}`)
  }
}
