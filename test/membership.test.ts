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

describe('a node that joins after another left', () => {
  const cluster = new Cluster()
  afterAll(async () => { await cluster.cleanup() })

  it('learns the departed node\'s record from the others (only a summary can bring it), also while files keep changing', async () => {
    await cluster.init()
    const a = await cluster.add({ name: 'stay' })
    const b = await cluster.add({ name: 'leave', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    await writeFile(join(b.data, 'left-behind.txt'), 'held by a node that left')
    await waitFor('A to list B as a holder', async () => (await a.client.where('default', 'left-behind.txt')).holders.some(h => h.peerId === b.peerId))
    expect(await b.stop()).toBe(0)
    await waitFor('A to see B disconnected', async () => !(await a.client.status()).peers.some(p => p.peerId === b.peerId && p.connected))

    // A's view keeps changing while the newcomer joins: its heartbeats' digests never repeat.
    let writes = 0
    let churning = true
    const churn = (async () => {
      while (churning && writes < 200) {
        await writeFile(join(a.data, `churn-${writes++}.txt`), `change ${writes}`)
        await new Promise(resolve => setTimeout(resolve, 150))
      }
    })()
    try {
      const d = await cluster.add({ name: 'newcomer', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
      const where = await waitFor('the newcomer to list B as a holder of its file', async () => {
        const w = await d.client.where('default', 'left-behind.txt')
        return w.holders.some(h => h.peerId === b.peerId) ? w : undefined
      }, 20_000)
      expect(where.holders.map(h => h.peerId)).toContain(b.peerId)
      expect((await d.client.status()).view.nodes.map(n => n.peerId)).toContain(b.peerId)
    } finally {
      churning = false
      await churn
    }
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
