import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, runShoal, waitFor, type TestAgent } from './helpers/agents.js'
import { fileHashIfPresent, writeRandomFile } from './helpers/files.js'

describe('two agents', () => {
  const cluster = new Cluster()
  let a: TestAgent
  let b: TestAgent

  beforeAll(async () => {
    await cluster.init()
    a = await cluster.add({ name: 'alpha' })
    b = await cluster.add({ name: 'beta', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    await waitFor('the agents to connect', async () => (await b.client.status()).peers.some(p => p.peerId === a.peerId && p.connected))
  })
  afterAll(async () => { await cluster.cleanup() })

  it('a 64 MiB file written on A appears byte-identical on B, and where lists both as complete', async () => {
    const expected = await writeRandomFile(join(a.data, 'weights.bin'), 64 * 1024 * 1024)
    await waitFor('weights.bin on B', async () => (await fileHashIfPresent(join(b.data, 'weights.bin'))) === expected, 120_000, 250)

    const where = await waitFor('B to list both holders as complete', async () => {
      const w = await b.client.where('default', 'weights.bin')
      return w.holders.length === 2 && w.holders.every(h => h.complete) ? w : undefined
    })
    expect(where.holders.map(h => h.peerId).sort()).toEqual([a.peerId, b.peerId].sort())

    const cli = await runShoal(['where', 'default/weights.bin', '--socket', b.socket, '--json'])
    expect(cli.code).toBe(0)
    const parsed = JSON.parse(cli.stdout)
    expect(parsed.holders).toHaveLength(2)
    expect(parsed.holders.every((h: { complete: boolean }) => h.complete)).toBe(true)
    expect(parsed.holders.find((h: { self: boolean }) => h.self).name).toBe('beta')
  })

  it('syncs nested directories and keeps the source untouched', async () => {
    await mkdir(join(a.data, 'shards', 'epoch-1'), { recursive: true })
    await writeFile(join(a.data, 'shards', 'epoch-1', 'part-0.npz'), 'shard zero')
    await waitFor('the nested file on B', async () => (await readFile(join(b.data, 'shards', 'epoch-1', 'part-0.npz'), 'utf8').catch(() => '')) === 'shard zero')
  })

  it('shows the peer in status, as text and as JSON', async () => {
    const text = await runShoal(['status', '--socket', b.socket])
    expect(text.code).toBe(0)
    expect(text.stdout).toContain('alpha')
    expect(text.stdout).toContain(a.peerId)
    const json = await runShoal(['status', '--socket', b.socket, '--json'])
    const status = JSON.parse(json.stdout).status
    expect(status.peerId).toBe(b.peerId)
    expect(status.name).toBe('beta')
    expect(status.peers).toEqual(expect.arrayContaining([expect.objectContaining({ peerId: a.peerId, name: 'alpha', connected: true })]))
  })
})
