import { mkdir, writeFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, runShoal, waitFor, type TestAgent } from './helpers/agents.js'

describe('cluster queries over the socket and the CLI', () => {
  const cluster = new Cluster()
  let a: TestAgent
  let b: TestAgent
  const paths = ['ckpt/step-1.pt', 'ckpt/step-2.pt', 'ckpt/step-3.pt', 'shards/0.npz', 'readme.txt']

  beforeAll(async () => {
    await cluster.init()
    a = await cluster.add({ name: 'qa' })
    b = await cluster.add({ name: 'qb', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    await mkdir(join(a.data, 'ckpt'), { recursive: true })
    await mkdir(join(a.data, 'shards'), { recursive: true })
    for (const p of paths) await writeFile(join(a.data, p), `content of ${p}`)
    await waitFor('every file on B', async () => {
      for (const p of paths) if ((await readFile(join(b.data, p), 'utf8').catch(() => '')) !== `content of ${p}`) return false
      return true
    })
    await waitFor('A to see both replicas', async () => (await a.client.replicas(2)).files.length === 0)
  })
  afterAll(async () => { await cluster.cleanup() })

  it('lists a dataset under a prefix, in order, with replica counts and pages', async () => {
    const all = await b.client.files('default')
    expect(all.files.map(f => f.path)).toEqual([...paths].sort())
    expect(all.files.every(f => f.replicas === 2 && f.holders === 2 && !f.deleted && f.version === 1)).toBe(true)
    const ckpt = await b.client.files('default', { prefix: 'ckpt/', limit: 2 })
    expect(ckpt.files.map(f => f.path)).toEqual(['ckpt/step-1.pt', 'ckpt/step-2.pt'])
    expect(ckpt.next).toBe('ckpt/step-2.pt')
    const rest = await b.client.files('default', { prefix: 'ckpt/', limit: 2, after: ckpt.next as string })
    expect(rest.files.map(f => f.path)).toEqual(['ckpt/step-3.pt'])
    expect(rest.next).toBeNull()
  })

  it('shoal ls prints the same, as a table and as JSON', async () => {
    const text = await runShoal(['ls', 'default/ckpt/', '--socket', b.socket])
    expect(text.code).toBe(0)
    expect(text.stdout.split('\n')[0]).toMatch(/^PATH\s+VERSION\s+SIZE\s+REPLICAS\s+STATE$/)
    expect(text.stdout).toMatch(/ckpt\/step-3\.pt\s+1\s+\d+\s+2\s+live/)
    const json = JSON.parse((await runShoal(['ls', 'default', '--socket', b.socket, '--json', '--limit', '1'])).stdout)
    expect(json.files).toHaveLength(1)
    expect(json.next).toBe(json.files[0].path)
    expect((await runShoal(['ls', 'default', '--socket', b.socket, '--limit', 'lots'])).code).toBe(2)
  })

  it('knows what each node lacks and which files are below a replica count', async () => {
    expect((await b.client.lacking(a.peerId, 'default')).count).toBe(0)
    expect((await b.client.lacking(b.peerId, 'default')).files).toEqual([])
    const below3 = await b.client.replicas(3)
    expect(below3.files.map(f => f.path).sort()).toEqual([...paths].sort())
    expect(below3.files.every(f => f.replicas === 2 && f.dataset === 'default')).toBe(true)
    expect((await b.client.conflicts()).conflicts).toEqual([])
    const status = await b.client.status()
    expect(status.peers.find(p => p.peerId === a.peerId)).toMatchObject({ lacking: 0, stale: false })
  })

  it('rejects bad query parameters with a JSON error and exit code 2', async () => {
    await expect(b.client.files('default', { limit: 0 })).rejects.toMatchObject({ status: 400, code: 'invalid_argument' })
    await expect(b.client.files('default', { prefix: '../x' })).rejects.toMatchObject({ status: 400 })
    await expect(b.client.lacking('not a peer', 'default')).rejects.toMatchObject({ status: 400 })
    await expect(b.client.get('/v1/replicas')).rejects.toMatchObject({ status: 400, code: 'invalid_argument' })
    await expect(b.client.get('/v1/nothing-here')).rejects.toMatchObject({ status: 404, code: 'not_found' })
    expect((await runShoal(['ls', 'default/../etc', '--socket', b.socket])).code).toBe(2)
  })
})
