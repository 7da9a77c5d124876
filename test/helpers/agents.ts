/**
 * Starts real `shoal agent` processes through the `shoal` binary, each with its own state
 * directory, socket, dataset and loopback port, and tears them all down after the test.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ShoalClient, type StatusResponse } from '@shoal/client'

export const REPO = fileURLToPath(new URL('../..', import.meta.url))
export const SHOAL_BIN = join(REPO, 'packages/cli/bin/shoal.js')

/** Polls `check` until it returns a value other than undefined/false, or fails at the deadline. */
export async function waitFor<T> (what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000, intervalMs = 100): Promise<T> {
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
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `shoal ARGS...` to completion (bounded in time). */
export async function runShoal (args: string[], options: { cwd?: string, timeoutMs?: number, env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SHOAL_BIN, ...args], { cwd: options.cwd ?? REPO, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`shoal ${args.join(' ')} did not finish in time; stderr: ${stderr}`)) }, options.timeoutMs ?? 30_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

export interface AgentSpec {
  name: string
  /** Another agent's cluster key file; by default the agent creates its own. */
  clusterKey?: string
  bootstrap?: string[]
  extraArgs?: string[]
  /** Extra environment (fault switches). */
  env?: Record<string, string>
  /** Dataset directory (default: DIR/data). */
  data?: string
  /** Replaces the generated arguments (state, dataset, listen...): the agent gets these plus --socket. */
  rawArgs?: string[]
}

export class TestAgent {
  child?: ChildProcess
  stdout = ''
  stderr = ''
  exited?: Promise<number | null>
  peerId = ''
  address = ''

  constructor (readonly spec: AgentSpec, readonly dir: string) {}

  get state (): string { return join(this.dir, 'state') }
  get data (): string { return this.spec.data ?? join(this.dir, 'data') }
  get socket (): string { return join(this.dir, 'agent.sock') }
  get clusterKeyFile (): string { return this.spec.clusterKey ?? join(this.state, 'cluster.key') }
  get client (): ShoalClient { return new ShoalClient(this.socket) }

  args (): string[] {
    if (this.spec.rawArgs != null) return ['agent', ...this.spec.rawArgs, '--socket', this.socket, '--heartbeat-ms', '500', '--log-level', 'info']
    const args = ['agent', '--name', this.spec.name, '--state', this.state, '--socket', this.socket,
      '--dataset', `default=${this.data}`, '--listen', '/ip4/127.0.0.1/tcp/0', '--log-level', 'info',
      '--heartbeat-ms', '500']
    if (this.spec.clusterKey != null) args.push('--cluster-key', this.spec.clusterKey)
    for (const b of this.spec.bootstrap ?? []) args.push('--bootstrap', b)
    return [...args, ...(this.spec.extraArgs ?? [])]
  }

  /** Starts the process and waits until its API answers. */
  async start (): Promise<StatusResponse> {
    await mkdir(this.data, { recursive: true })
    const child = spawn(process.execPath, [SHOAL_BIN, ...this.args()], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.spec.env } })
    this.child = child
    child.stdout?.on('data', (d: Buffer) => { this.stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.exited = new Promise(resolve => child.on('exit', (code) => resolve(code)))
    let exitCode: number | null | undefined
    void this.exited.then(code => { exitCode = code })
    const status = await waitFor(`agent ${this.spec.name} to answer on its socket`, async () => {
      if (exitCode !== undefined) throw new Error(`agent ${this.spec.name} exited with ${exitCode}: ${this.stderr}`)
      return await this.client.status()
    }, 30_000)
    this.peerId = status.peerId
    this.address = status.addresses[0]
    return status
  }

  /** SIGTERM, and wait for the process to exit. */
  async stop (): Promise<number | null> {
    if (this.child == null || this.child.exitCode !== null || this.child.signalCode !== null) return this.child?.exitCode ?? null
    this.child.kill('SIGTERM')
    return await this.exited as number | null
  }

  get pid (): number | undefined {
    return this.child?.pid
  }

  /** kill -9: no chance to clean up. */
  async kill (): Promise<void> {
    if (this.child == null || this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGKILL')
    await this.exited
  }
}

/** A set of test agents under one temporary directory; `cleanup` stops them all and removes it. */
export class Cluster {
  readonly agents: TestAgent[] = []
  private root = ''

  async init (): Promise<this> {
    this.root = await mkdtemp(join(tmpdir(), 'shoal-test-'))
    return this
  }

  async add (spec: AgentSpec): Promise<TestAgent> {
    const dir = join(this.root, spec.name)
    await mkdir(dir, { recursive: true })
    const agent = new TestAgent(spec, dir)
    this.agents.push(agent)
    await agent.start()
    return agent
  }

  path (...parts: string[]): string {
    return join(this.root, ...parts)
  }

  async cleanup (): Promise<void> {
    await Promise.all(this.agents.map(async a => await a.kill()))
    if (this.root !== '') await rm(this.root, { recursive: true, force: true })
  }
}
