import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import { Cluster, waitFor, type TestAgent } from './helpers/agents.js'
import type { StatusResponse, WhereResponse } from '@shoal/client'

const readIfPresent = async (path: string): Promise<string | undefined> => await readFile(path, 'utf8').catch(() => undefined)

// Short collection passes: a tombstone goes 10 passes (2 s) after every known node has seen it.
const env = { SHOAL_TOMBSTONE_GC_INTERVAL: '200ms' }

describe('tombstones are collected once every known node has seen them', () => {
  const cluster = new Cluster()
  let a: TestAgent
  let b: TestAgent
  let c: TestAgent
  let all: TestAgent[]

  beforeAll(async () => {
    await cluster.init()
    a = await cluster.add({ name: 'a', env })
    b = await cluster.add({ name: 'b', env, clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    c = await cluster.add({ name: 'c', env, clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    all = [a, b, c]
  })
  afterAll(async () => { await cluster.cleanup() })

  function dumpLogsOnFailure (): void {
    onTestFailed(() => {
      for (const agent of all) console.error(`--- ${agent.spec.name} stderr, last 4000 chars ---\n${agent.stderr.slice(-4000)}`)
    })
  }

  async function whereOn (agents: TestAgent[], what: string, path: string, accept: (w: WhereResponse) => boolean): Promise<WhereResponse[]> {
    return await waitFor(what, async () => {
      const answers = await Promise.all(agents.map(async agent => await agent.client.where('default', path)))
      return answers.every(accept) ? answers : undefined
    }, 30_000, 100)
  }

  async function tombstonesOn (agents: TestAgent[], what: string, accept: (t: StatusResponse['tombstones']) => boolean): Promise<void> {
    await waitFor(what, async () => {
      const statuses = await Promise.all(agents.map(async agent => await agent.client.status()))
      return statuses.every(s => accept(s.tombstones))
    }, 60_000, 100)
  }

  it('a file deleted on A: every node stops listing it, then every node drops its tombstones', async () => {
    dumpLogsOnFailure()
    await writeFile(join(a.data, 'gone.txt'), 'soon deleted')
    await waitFor('gone.txt on B and C', async () =>
      (await readIfPresent(join(b.data, 'gone.txt'))) === 'soon deleted' && (await readIfPresent(join(c.data, 'gone.txt'))) === 'soon deleted')
    await rm(join(a.data, 'gone.txt'))
    await whereOn(all, 'every node to list no holder of gone.txt', 'gone.txt', w => w.deleted && w.holders.length === 0)

    await tombstonesOn(all, 'no tombstone left on any node', t => t.held === 0 && t.own === 0 && t.dropped >= 1)
    for (const agent of all) {
      const w = await agent.client.where('default', 'gone.txt')
      expect(w, `where on ${agent.spec.name}`).toMatchObject({ version: null, deleted: false, holders: [] })
      expect((await agent.client.files('default')).files.map(f => f.path), `files on ${agent.spec.name}`).not.toContain('gone.txt')
    }
    expect(await readIfPresent(join(b.data, 'gone.txt'))).toBeUndefined()
    expect(await readIfPresent(join(c.data, 'gone.txt'))).toBeUndefined()

    // Written again after the collection, on another node: a version above the collected
    // tombstone, and it reaches every node.
    await writeFile(join(b.data, 'gone.txt'), 'back')
    await waitFor('gone.txt back on A and C', async () =>
      (await readIfPresent(join(a.data, 'gone.txt'))) === 'back' && (await readIfPresent(join(c.data, 'gone.txt'))) === 'back')
    const answers = await whereOn(all, 'every node to list three complete holders', 'gone.txt', w => !w.deleted && w.holders.length === 3 && w.holders.every(h => h.complete))
    for (const w of answers) expect(w.version).toBeGreaterThan(2)
  })

  it('while C is stopped the tombstone is kept; once C is back and has seen it, it goes everywhere', async () => {
    dumpLogsOnFailure()
    const cPeerId = c.peerId
    expect(await c.stop()).toBe(0)
    await writeFile(join(a.data, 'while-away.txt'), 'C never sees this')
    await waitFor('while-away.txt on B', async () => (await readIfPresent(join(b.data, 'while-away.txt'))) === 'C never sees this')
    await rm(join(a.data, 'while-away.txt'))
    await whereOn([a, b], 'A and B to list no holder of while-away.txt', 'while-away.txt', w => w.deleted && w.holders.length === 0)

    // Well past the minimum age (10 passes), A and B still hold the tombstones, waiting for C.
    const start = await Promise.all([a, b].map(async agent => (await agent.client.status()).tombstones.passes))
    await waitFor('20 more collection passes on A and B', async () => {
      const passes = await Promise.all([a, b].map(async agent => (await agent.client.status()).tombstones.passes))
      return passes.every((p, i) => p >= start[i] + 20)
    }, 60_000, 100)
    for (const agent of [a, b]) {
      const t = (await agent.client.status()).tombstones
      expect(t.held, `tombstones held on ${agent.spec.name}`).toBeGreaterThanOrEqual(2)
      expect(t.own, `own tombstones on ${agent.spec.name}`).toBe(1)
      expect(t.waitingFor, `waiting on ${agent.spec.name}`).toContain(cPeerId)
      expect(await agent.client.where('default', 'while-away.txt'), `where on ${agent.spec.name}`).toMatchObject({ deleted: true, holders: [] })
    }

    await c.start()
    await tombstonesOn(all, 'no tombstone left on any node', t => t.held === 0 && t.own === 0 && t.waitingFor.length === 0)
    for (const agent of all) {
      expect(await agent.client.where('default', 'while-away.txt'), `where on ${agent.spec.name}`).toMatchObject({ version: null, holders: [] })
    }
    expect(await readIfPresent(join(c.data, 'while-away.txt'))).toBeUndefined()
    // The file written again in the first test is still everywhere.
    await whereOn(all, 'every node to list three complete holders of gone.txt', 'gone.txt', w => !w.deleted && w.holders.length === 3 && w.holders.every(h => h.complete))
  })
})
