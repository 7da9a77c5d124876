import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, waitFor, type TestAgent } from './helpers/agents.js'

const readIfPresent = async (path: string): Promise<string | undefined> => await readFile(path, 'utf8').catch(() => undefined)

describe('three agents, one restarted', () => {
  const cluster = new Cluster()
  let a: TestAgent
  let b: TestAgent
  let c: TestAgent

  beforeAll(async () => {
    await cluster.init()
    a = await cluster.add({ name: 'a' })
    b = await cluster.add({ name: 'b', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    c = await cluster.add({ name: 'c', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
  })
  afterAll(async () => { await cluster.cleanup() })

  it('a file created while C is stopped arrives at C after C restarts', async () => {
    await writeFile(join(a.data, 'before.txt'), 'seen by everyone')
    await waitFor('before.txt on C', async () => (await readIfPresent(join(c.data, 'before.txt'))) === 'seen by everyone')

    expect(await c.stop()).toBe(0)
    await waitFor('A to see C disconnected', async () => !(await a.client.status()).peers.some(p => p.peerId === c.peerId && p.connected))
    await writeFile(join(a.data, 'while-away.txt'), 'written while C was down')
    await waitFor('while-away.txt on B', async () => (await readIfPresent(join(b.data, 'while-away.txt'))) === 'written while C was down')
    expect(await readIfPresent(join(c.data, 'while-away.txt'))).toBeUndefined()

    const restarted = await c.start()
    expect(restarted.peerId).toBe(c.peerId)
    await waitFor('while-away.txt on C after restart', async () => (await readIfPresent(join(c.data, 'while-away.txt'))) === 'written while C was down')
    const where = await waitFor('C to know every holder', async () => {
      const w = await c.client.where('default', 'while-away.txt')
      return w.holders.length === 3 ? w : undefined
    })
    expect(where.holders.every(h => h.complete)).toBe(true)
  })
})

describe('an agent with another cluster key', () => {
  const cluster = new Cluster()

  afterAll(async () => { await cluster.cleanup() })

  it('never connects and never receives the file', async () => {
    await cluster.init()
    const a = await cluster.add({ name: 'member-a' })
    const outsider = await cluster.add({ name: 'outsider', bootstrap: [a.address] })
    const b = await cluster.add({ name: 'member-b', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    expect(await readFile(outsider.clusterKeyFile, 'utf8')).not.toBe(await readFile(a.clusterKeyFile, 'utf8'))

    await writeFile(join(a.data, 'secret.bin'), 'cluster members only')
    // Once a member has the file, the outsider has had every chance to get it too.
    await waitFor('secret.bin on the member', async () => (await readIfPresent(join(b.data, 'secret.bin'))) === 'cluster members only')

    expect(await readIfPresent(join(outsider.data, 'secret.bin'))).toBeUndefined()
    const status = await outsider.client.status()
    expect(status.peers).toEqual([])
    const where = await outsider.client.where('default', 'secret.bin')
    expect(where.holders).toEqual([])
    expect((await a.client.status()).peers.map(p => p.peerId)).not.toContain(outsider.peerId)
  })
})
