import { chmod, mkdir, writeFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, runShoal, waitFor } from './helpers/agents.js'

describe('agent lifecycle and bad input', () => {
  const cluster = new Cluster()
  beforeAll(async () => { await cluster.init() })
  afterAll(async () => { await cluster.cleanup() })

  it('a second agent on the same state directory exits non-zero with a clear message', async () => {
    const a = await cluster.add({ name: 'first' })
    const second = await runShoal(['agent', '--state', a.state, '--socket', cluster.path('other.sock'),
      '--dataset', `default=${a.data}`, '--listen', '/ip4/127.0.0.1/tcp/0'])
    expect(second.code).not.toBe(0)
    expect(second.stderr).toMatch(/already running.*state directory/)
    expect(second.stderr.trim().split('\n')).toHaveLength(1)
    // The first agent is unharmed.
    expect((await a.client.status()).name).toBe('first')
  })

  it('a socket in use by a live agent is refused', async () => {
    const a = cluster.agents[0]
    const result = await runShoal(['agent', '--state', cluster.path('other-state'), '--socket', a.socket,
      '--dataset', `default=${a.data}`, '--listen', '/ip4/127.0.0.1/tcp/0'])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/socket .* is in use by a running agent/)
    expect((await a.client.status()).name).toBe('first')
  })

  it('restarts after kill -9: the stale socket and lock do not block it, and the peer id is kept', async () => {
    const a = await cluster.add({ name: 'crashy' })
    const before = a.peerId
    await a.kill()
    const status = await a.start()
    expect(status.peerId).toBe(before)
  })

  it('runs with a fixed 8 MiB young generation, set by re-running itself in the same process', async () => {
    const a = await cluster.add({ name: 'young' })
    // 8 MiB before its first collection, then both semi-spaces (Node's default grows to 64 MiB).
    const young = (await a.client.status()).memory.youngGeneration
    expect(young).toBeGreaterThanOrEqual(8 * 1024 * 1024)
    expect(young).toBeLessThanOrEqual(16 * 1024 * 1024)
    // The process the test started (same pid) now runs Node with the flags.
    const cmdline = (await readFile(`/proc/${a.pid as number}/cmdline`, 'utf8')).split('\0')
    expect(cmdline).toContain('--max-semi-space-size=8')
    expect(cmdline).toContain('--min-semi-space-size=8')
  })

  it('hands freed malloc memory back once the API is quiet after a burst of requests', async () => {
    const a = await cluster.add({ name: 'trims' })
    const trims = async (): Promise<number> => (await a.client.status()).memory.requestTrims
    const before = await trims()
    for (let i = 0; i < 1200; i++) await a.client.where('default', `nothing/${i}`)
    // The agent looks every second for an API quiet for 2 s; each status asked here is a request
    // too, so ask every 4 s (at least one look falls in each quiet window).
    await waitFor('a malloc trim after 1,200 requests', async () => (await trims()) > before, 40_000, 4000)
  })

  it('keeps its identity in a 0600 file', async () => {
    const a = cluster.agents[0]
    const { stat } = await import('node:fs/promises')
    expect((await stat(join(a.state, 'peer.key'))).mode & 0o777).toBe(0o600)
    expect((await stat(join(a.state, 'cluster.key'))).mode & 0o777).toBe(0o600)
  })

  const badStarts: Array<[string, () => string[], RegExp, number]> = [
    ['a missing dataset directory', () => ['--dataset', `d=${cluster.path('nope')}`], /dataset d: directory .*nope does not exist/, 2],
    ['a dataset spec without a directory', () => ['--dataset', 'justaname'], /expected NAME=DIR/, 2],
    ['an invalid dataset name', () => ['--dataset', `../evil=${cluster.path()}`], /invalid dataset name/, 2],
    ['an invalid multiaddr', () => ['--listen', 'not-an-address'], /listen "not-an-address" is not a valid TCP multiaddr/, 2],
    ['an invalid bootstrap multiaddr', () => ['--bootstrap', '/ip4/999.1.1.1/tcp/1'], /bootstrap .* is not a valid TCP multiaddr/, 2],
    ['a missing key file', () => ['--cluster-key', cluster.path('missing.key')], /cannot read the cluster key .*missing.key: no such file/, 1],
    ['a malformed key file', () => ['--cluster-key', cluster.path('bad.key')], /is not a valid key/, 1],
    ['an unknown flag', () => ['--frobnicate'], /unknown option/, 2]
  ]
  for (const [what, args, message, code] of badStarts) {
    it(`${what}: one clear line and exit code ${code}`, async () => {
      await writeFile(cluster.path('bad.key'), 'not a key\n')
      const result = await runShoal(['agent', '--state', cluster.path(`state-${code}-${what.length}`), '--listen', '/ip4/127.0.0.1/tcp/0',
        '--dataset', `default=${cluster.path()}`, ...args()], { cwd: cluster.path() })
      expect(result.code).toBe(code)
      expect(result.stderr).toMatch(message)
      expect(result.stderr).not.toMatch(/\n\s+at /)
    })
  }

  it('an unreadable key file is a clear error', async () => {
    if (process.getuid?.() === 0) {
      // root reads any file: make the path a directory instead, which no one can read as a key.
      await mkdir(cluster.path('dir.key'), { recursive: true })
    } else {
      await writeFile(cluster.path('dir.key'), 'x')
      await chmod(cluster.path('dir.key'), 0)
    }
    const result = await runShoal(['agent', '--state', cluster.path('state-unreadable'), '--listen', '/ip4/127.0.0.1/tcp/0',
      '--dataset', `default=${cluster.path()}`, '--cluster-key', cluster.path('dir.key')])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/cannot read the cluster key .*dir.key/)
  })

  it('status against no agent exits 3', async () => {
    const result = await runShoal(['status', '--socket', cluster.path('nobody.sock')])
    expect(result.code).toBe(3)
    expect(result.stderr).toMatch(/cannot reach the agent/)
  })

  it('where with a malformed argument exits 2', async () => {
    const a = cluster.agents[0]
    expect((await runShoal(['where', 'no-slash', '--socket', a.socket])).code).toBe(2)
    const traversal = await runShoal(['where', 'default/../etc/passwd', '--socket', a.socket])
    expect(traversal.code).toBe(2)
    expect(traversal.stderr).toMatch(/not normalised/)
  })

  it('starts with the built-in defaults in an empty directory', async () => {
    const dir = cluster.path('defaults')
    await mkdir(dir, { recursive: true })
    const { spawn } = await import('node:child_process')
    const { SHOAL_BIN } = await import('./helpers/agents.js')
    // Port 4001 may be taken on a shared machine; everything else stays default.
    const child = spawn(process.execPath, [SHOAL_BIN, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    const exited = new Promise(resolve => child.on('exit', resolve))
    try {
      await waitFor('the default socket', async () => (await runShoal(['status', '--json'], { cwd: dir })).code === 0)
      expect(stdout).toMatch(/Created a new cluster key/)
      expect(stdout).toMatch(/--bootstrap \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3/)
      const status = JSON.parse((await runShoal(['status', '--json'], { cwd: dir })).stdout)
      expect(status.datasets).toEqual([expect.objectContaining({ name: 'default', path: join(dir, 'shoal-data') })])
      expect(await readFile(join(dir, '.shoal', 'cluster.key'), 'utf8')).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\//)
    } finally {
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
    }
  })
})
