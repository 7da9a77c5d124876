import { execFile, spawn, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AgentEvent } from '@shoal/client'
import { Cluster, REPO, SHOAL_BIN, runShoal, waitFor, type TestAgent } from './helpers/agents.js'
import { writeRandomFile } from './helpers/files.js'

const run = promisify(execFile)
const MiB = 1024 * 1024

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

describe('the shoal CLI against real agents', () => {
  const cluster = new Cluster()
  let a: TestAgent
  let b: TestAgent
  let token = ''

  beforeAll(async () => {
    await cluster.init()
    const port = await freePort()
    const init = await runShoal(['init', '--state', cluster.path('alpha', 'state'), '--config', cluster.path('alpha', 'shoal.yaml'),
      '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--json'])
    expect(init.code).toBe(0)
    const result = JSON.parse(init.stdout)
    token = result.joinToken
    expect(token).toMatch(/^shoal1\./)
    expect(result.bootstrap).toEqual([`/ip4/127.0.0.1/tcp/${port}/p2p/${result.peerId}`])
    const yaml = await readFile(cluster.path('alpha', 'shoal.yaml'), 'utf8')
    expect(yaml).toMatch(/^# shoal agent configuration/)
    a = await cluster.add({ name: 'alpha', rawArgs: ['--config', cluster.path('alpha', 'shoal.yaml'), '--name', 'alpha'], data: cluster.path('alpha', 'shoal-data') })
    expect(a.peerId).toBe(result.peerId)
    // The second node gets nothing but the token.
    b = await cluster.add({ name: 'beta', rawArgs: ['--join', token, '--state', cluster.path('beta', 'state'), '--dataset', `default=${cluster.path('beta', 'data')}`, '--listen', '/ip4/127.0.0.1/tcp/0', '--name', 'beta'], data: cluster.path('beta', 'data') })
  })
  afterAll(async () => { await cluster.cleanup() })

  it('shoal init + shoal agent --join: the two connect and sync with nothing else set by hand', async () => {
    await waitFor('beta connected to alpha', async () => (await b.client.status()).peers.some(p => p.peerId === a.peerId && p.connected))
    expect(await readFile(cluster.path('beta', 'state', 'cluster.key'), 'utf8')).toBe(await readFile(cluster.path('alpha', 'state', 'cluster.key'), 'utf8'))
    await writeFile(join(a.data, 'hello.txt'), 'joined')
    await waitFor('hello.txt on beta', async () => (await readFile(join(b.data, 'hello.txt'), 'utf8').catch(() => '')) === 'joined')
    // The token is a secret: it appears in neither the logs nor the status.
    const status = JSON.stringify(await b.client.status())
    expect(status).not.toContain(token.slice(7, 40))
    expect(b.stdout + b.stderr).not.toContain(token.slice(7, 40))
  })

  it('the event stream delivers a file-added event on a second agent after a file appears on the first', async () => {
    const events: AgentEvent[] = []
    const controller = new AbortController()
    const cli = spawn(process.execPath, [SHOAL_BIN, 'events', '--json', '--count', '50', '--socket', b.socket], { stdio: ['ignore', 'pipe', 'pipe'] })
    let cliOut = ''
    cli.stdout.on('data', (d: Buffer) => { cliOut += d.toString() })
    try {
      await b.client.events(e => events.push(e), controller.signal)
      // The CLI is a separate process: it is subscribed once it prints an event (probe files make some).
      let probes = 0
      await waitFor('shoal events to print its first event', async () => {
        if (cliOut.trim() !== '') return true
        await writeFile(join(a.data, `probe-${probes++}.txt`), 'probe')
        return false
      }, 60_000, 500)
      await writeFile(join(a.data, 'fresh.bin'), randomBytes(1000))
      const added = await waitFor('file.added on beta', () => events.find(e => e.type === 'file.added' && e.path === 'fresh.bin' && e.peerId === a.peerId))
      expect(added).toMatchObject({ dataset: 'default', version: 1, size: 1000 })
      await waitFor('the same event from shoal events --json', () => cliOut.split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l))
        .find((e: AgentEvent) => e.type === 'file.added' && 'path' in e && e.path === 'fresh.bin'))
      await waitFor('transfer.completed on beta', () => events.find(e => e.type === 'transfer.completed' && 'path' in e && e.path === 'fresh.bin'))
    } finally {
      controller.abort()
      cli.kill('SIGTERM')
    }
  })

  it('every command prints JSON of the documented shape', async () => {
    const json = async (...args: string[]): Promise<any> => {
      const r = await runShoal([...args, '--json'])
      expect(r.code, `shoal ${args.join(' ')}: ${r.stderr}`).toBe(0)
      return JSON.parse(r.stdout)
    }
    const status = await json('status', '--socket', b.socket)
    expect(Object.keys(status).sort()).toEqual(['attention', 'belowReplicas', 'conflicts', 'datasets', 'status', 'transfers'])
    expect(status.status).toMatchObject({ name: 'beta', peerId: b.peerId, role: 'persistent' })
    expect(status.status.peers[0]).toMatchObject({ peerId: a.peerId, name: 'alpha', connected: true, stale: false, load: 'ok' })
    expect(status.datasets[0]).toMatchObject({ name: 'default', hold: { kind: 'all' } })
    expect((await json('peers', '--socket', b.socket)).peers.map((p: any) => p.name)).toEqual(['alpha'])
    expect((await json('ls', 'default', '--socket', b.socket)).files.map((f: any) => f.path)).toEqual(expect.arrayContaining(['hello.txt', 'fresh.bin']))
    expect((await json('where', 'default/hello.txt', '--socket', b.socket)).holders).toHaveLength(2)
    expect((await json('transfers', '--socket', b.socket)).transfers.map((t: any) => t.path)).toEqual(expect.arrayContaining(['hello.txt']))
    expect(await json('rescan', '--socket', b.socket)).toMatchObject({ datasets: ['default'], changed: 0 })
    expect(await json('pull', 'default/hello.txt', '--socket', b.socket)).toMatchObject({ state: 'held', version: 1 })
    const initDir = cluster.path('another')
    expect(await json('init', '--state', join(initDir, 'state'), '--config', join(initDir, 'shoal.yaml'), '--listen', '/ip4/127.0.0.1/tcp/4999')).toMatchObject({ joinToken: expect.stringMatching(/^shoal1\./) })
    // Broadcasting needs a leader: neither node is one.
    const refused = await runShoal(['broadcast', 'default/hello.txt', '--socket', b.socket, '--json'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/not a leader/)
  })

  it('exits 3 for every command when the agent is unreachable', async () => {
    const socket = cluster.path('nobody-here.sock')
    const commands = [['status'], ['peers'], ['ls', 'default'], ['where', 'default/x'], ['pull', 'default/x'], ['broadcast', 'default/x'],
      ['transfers'], ['events'], ['rescan']]
    const results = await Promise.all(commands.map(async c => [c, await runShoal([...c, '--socket', socket])] as const))
    for (const [c, r] of results) {
      expect(r.code, `shoal ${c.join(' ')}`).toBe(3)
      expect(r.stderr, `shoal ${c.join(' ')}`).toMatch(/cannot reach the agent/)
    }
  })

  it('exits 2 for bad arguments, with a message that says what to fix', async () => {
    const bad: Array<[string[], RegExp]> = [
      [['where', 'no-slash', '--socket', b.socket], /expected DATASET\/PATH/],
      [['pull', 'no-slash', '--socket', b.socket], /expected DATASET\/PATH/],
      [['ls', 'default', '--limit', '0', '--socket', b.socket], /integer from 1 to 10000/],
      [['broadcast', 'default/x', '--priority', 'urgent', '--socket', b.socket], /Allowed choices are critical, high, normal, low, background/],
      [['broadcast', 'default/x', '--wait', '--timeout', 'soon', '--socket', b.socket], /not a duration/],
      [['where', 'default/../x', '--socket', b.socket], /not normalised/],
      [['frobnicate'], /unknown command/],
      [['agent', '--log-level', 'loud'], /Allowed choices are debug, info, warn, error/]
    ]
    for (const [args, message] of bad) {
      const r = await runShoal(args)
      expect(r.code, `shoal ${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toMatch(message)
    }
    await writeFile(cluster.path('bad.yaml'), 'datasets:\n  models: { path: /m, hold: sometimes }\nlimits: { upload-rte: 1M }\n')
    const config = await runShoal(['agent', '--config', cluster.path('bad.yaml')])
    expect(config.code).toBe(2)
    expect(config.stderr).toMatch(/bad\.yaml: datasets\.models\.hold: expected all, on-demand, a replica count/)
    expect(config.stderr).toMatch(/bad\.yaml: limits: unknown key upload-rte/)
    const env = await runShoal(['agent'], { env: { ...process.env, SHOAL_MIN_FREE_DISK: 'plenty' } })
    expect(env.code).toBe(2)
    expect(env.stderr).toMatch(/environment: limits\.min-free-disk: /)
  })

  it('the socket API survives a few thousand malformed requests and still answers', async () => {
    const garbage = [
      () => randomBytes(1 + Math.floor(Math.random() * 2000)),
      () => Buffer.from(`GET /v1/${randomBytes(8).toString('base64url')} HTTP/1.1\r\nHost: x\r\n\r\n`),
      () => Buffer.from(`BREW /v1/status HTTP/1.1\r\nHost: x\r\n\r\n`),
      () => Buffer.from(`GET /v1/where?dataset=%00&path=${'%2e%2e/'.repeat(50)} HTTP/1.1\r\nHost: x\r\n\r\n`),
      () => Buffer.from(`GET /v1/files?dataset=default&limit=-5&after=%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n`),
      () => Buffer.from(`GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`),
      () => Buffer.from(`POST /v1/pull HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"data":`),
      () => Buffer.from(`POST /v1/broadcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n${'['.repeat(1000)}`),
      () => Buffer.from(`POST /v1/rescan HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}`),
      () => Buffer.from(`GET ${'/x'.repeat(6000)} HTTP/1.1\r\nHost: x\r\n\r\n`),
      () => Buffer.from('GET /v1/status HTTP/1.1\r\n'),
      () => Buffer.from(`POST /v1/pull HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`)
    ]
    const deadline = Date.now() + 40_000
    let sent = 0
    const one = async (payload: Buffer): Promise<void> => {
      await new Promise<void>((resolve) => {
        const socket = connect(a.socket)
        const timer = setTimeout(() => { socket.destroy(); resolve() }, 2000)
        socket.on('error', () => { clearTimeout(timer); resolve() })
        socket.on('close', () => { clearTimeout(timer); resolve() })
        socket.on('data', () => {})
        socket.on('connect', () => { socket.end(payload) })
      })
    }
    while (sent < 3000 && Date.now() < deadline) {
      await Promise.all(Array.from({ length: 25 }, async () => { await one(garbage[Math.floor(Math.random() * garbage.length)]()) }))
      sent += 25
    }
    expect(sent).toBeGreaterThanOrEqual(1000)
    // Slow clients that never finish their request are cut off; meanwhile the agent answers others.
    const slow = Array.from({ length: 20 }, () => connect(a.socket).on('error', () => {}))
    try {
      const status = await a.client.status()
      expect(status.name).toBe('alpha')
      expect((await a.client.where('default', 'hello.txt')).holders.length).toBe(2)
    } finally {
      for (const s of slow) s.destroy()
    }
    expect(a.child?.exitCode).toBeNull()
  })

  it('the README examples (curl and Python) work against a real agent', async () => {
    const readme = await readFile(join(REPO, 'packages/agent/README.md'), 'utf8')
    await writeFile(join(a.data, 'weights.bin'), 'w')
    await waitFor('weights.bin on both', async () => (await a.client.where('default', 'weights.bin')).holders.filter(h => h.complete).length === 2)
    const shell = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map(m => m[1]).filter(b => b.includes('curl'))
    expect(shell.length).toBeGreaterThanOrEqual(12)
    for (const block of shell) {
      const { stdout } = await run('bash', ['-c', `set -eo pipefail\n${block}`], { env: { ...process.env, SOCK: a.socket }, timeout: 20_000 })
      if (block.includes('/v1/events')) continue
      const body = JSON.parse(stdout)
      // alpha is no leader: the broadcast example gets the documented refusal.
      if (block.includes('/v1/broadcast')) expect(body.error?.code).toBe('not_leader')
      else expect(body.error, `${block}: ${stdout}`).toBeUndefined()
    }
    const python = [...readme.matchAll(/```python\n([\s\S]*?)```/g)].map(m => m[1])
    expect(python).toHaveLength(1)
    const { stdout } = await run('python3', ['-c', python[0]], { env: { ...process.env, SOCK: a.socket }, timeout: 20_000 })
    expect(stdout).toMatch(/^200 alpha 1 peers\n200 \['alpha', 'beta'\]|^200 alpha 1 peers\n200 \['beta', 'alpha'\]/)
  })

  it('serves Prometheus metrics: libp2p\'s and shoal\'s', async () => {
    const port = await freePort()
    const m = await cluster.add({ name: 'metered', rawArgs: ['--join', token, '--state', cluster.path('metered', 'state'), '--dataset', `default=${cluster.path('metered', 'data')}`,
      '--listen', '/ip4/127.0.0.1/tcp/0', '--name', 'metered', '--metrics', `127.0.0.1:${port}`], data: cluster.path('metered', 'data') })
    await writeFile(join(a.data, 'measured.txt'), 'counted')
    await waitFor('metered to receive measured.txt', async () => (await readFile(join(m.data, 'measured.txt'), 'utf8').catch(() => '')) === 'counted')
    const text = await waitFor('the metrics', async () => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`)
      const body = await res.text()
      return res.status === 200 && /shoal_chunks_total\{result="verified"\} [1-9]/.test(body) ? body : undefined
    })
    expect(text).toMatch(/^shoal_bytes_received_total\{peer="12D3\w+",priority="normal"\} \d+/m)
    expect(text).toMatch(/^shoal_manifest_size\{what="nodes"\} [1-9]/m)
    expect(text).toMatch(/^shoal_load_level 0$/m)
    expect(text).toMatch(/^shoal_transfers\{state="completed"\} [1-9]/m)
    expect(text).toMatch(/^libp2p_\w+/m)
    expect((await fetch(`http://127.0.0.1:${port}/nothing`)).status).toBe(404)
    expect(await m.stop()).toBe(0)
  })

  it('renders the dashboard and a progress bar in a real terminal (tmux)', async () => {
    const session = `shoal-test-${process.pid}`
    const tmux = (...args: string[]): string => execFileSync('tmux', args, { encoding: 'utf8' })
    // A third node fetches on demand, slowly, so that a progress bar is on screen for a while.
    const c = await cluster.add({ name: 'gamma', rawArgs: ['--join', token, '--state', cluster.path('gamma', 'state'), '--dataset', `default=${cluster.path('gamma', 'data')}`,
      '--on-demand', 'default', '--download-rate', '6M', '--listen', '/ip4/127.0.0.1/tcp/0', '--name', 'gamma'], data: cluster.path('gamma', 'data') })
    await writeRandomFile(join(a.data, 'big.bin'), 24 * MiB)
    await waitFor('gamma to know big.bin', async () => (await c.client.where('default', 'big.bin')).holders.some(h => h.complete))
    tmux('new-session', '-d', '-s', session, '-x', '220', '-y', '50')
    try {
      const shoal = `${process.execPath} ${SHOAL_BIN}`
      tmux('send-keys', '-t', session, `${shoal} status --socket ${a.socket}`, 'Enter')
      const screen = await waitFor('the dashboard on screen', () => {
        const text = tmux('capture-pane', '-p', '-t', session)
        return text.includes('NEEDS ATTENTION') ? text : undefined
      }, 30_000, 200)
      const lines = screen.split('\n')
      for (const heading of ['NODES', 'DATASETS', 'TRANSFERS IN FLIGHT', 'NEEDS ATTENTION']) expect(lines).toContain(heading)
      const header = lines.find(l => l.startsWith('NAME'))
      expect(header).toMatch(/^NAME\s+PEER\s+ROLE\s+LOAD\s+LAST HEARD\s+STATE\s+LACKING$/)
      const rows = lines.filter(l => /^(alpha|beta|gamma)\s/.test(l))
      expect(rows.length).toBeGreaterThanOrEqual(3)
      // Aligned: every row's PEER column starts where the header's does.
      const peerCol = (header as string).indexOf('PEER')
      for (const r of rows.slice(0, 3)) expect(r.slice(peerCol, peerCol + 4)).toBe('12D3')

      tmux('send-keys', '-t', session, 'clear', 'Enter')
      tmux('send-keys', '-t', session, `${shoal} pull default/big.bin --wait --socket ${c.socket}`, 'Enter')
      const progress = await waitFor('a progress bar on screen', () => {
        const text = tmux('capture-pane', '-p', '-t', session)
        return /big\.bin \[#+\.+\] \d+% [\d.]+ [KM]iB\/24\.0 MiB [\d.]+ [KM]iB\/s ETA \d+s/.test(text) ? text : undefined
      }, 60_000, 100)
      expect(progress).toMatch(/\[[#.]{24}\]/)
      await waitFor('the pull to finish', () => tmux('capture-pane', '-p', '-t', session).includes('big.bin: verified copy held') || undefined, 60_000, 250)
    } finally {
      try { tmux('kill-session', '-t', session) } catch {}
    }
  })
})
