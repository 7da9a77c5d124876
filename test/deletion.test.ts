import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import { Cluster, waitFor, type TestAgent } from './helpers/agents.js'
import type { AgentEvent, WhereResponse } from '@shoal/client'

const readIfPresent = async (path: string): Promise<string | undefined> => await readFile(path, 'utf8').catch(() => undefined)

/** A loopback port free right now (the OS picks it). */
async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { typeof address === 'object' && address != null ? resolve(address.port) : reject(new Error('no port')) })
    })
  })
}

describe('deleting a file', () => {
  const cluster = new Cluster()
  let a: TestAgent
  let b: TestAgent
  let c: TestAgent
  let all: TestAgent[]

  beforeAll(async () => {
    await cluster.init()
    // A restarts in a test: a fixed port lets B and C find it again at the address they know
    // (it also listens on a random one, as every test agent does).
    a = await cluster.add({ name: 'a', extraArgs: ['--listen', `/ip4/127.0.0.1/tcp/${await freePort()}`] })
    b = await cluster.add({ name: 'b', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    c = await cluster.add({ name: 'c', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    all = [a, b, c]
  })
  afterAll(async () => { await cluster.cleanup() })

  function dumpLogsOnFailure (): void {
    onTestFailed(() => {
      for (const agent of all) console.error(`--- ${agent.spec.name} stderr, last 4000 chars ---\n${agent.stderr.slice(-4000)}`)
    })
  }

  /** Every agent's where answer for `path`, once `accept` holds on all of them. */
  async function whereEverywhere (what: string, path: string, accept: (w: WhereResponse, asked: TestAgent) => boolean): Promise<WhereResponse[]> {
    return await waitFor(what, async () => {
      const answers = await Promise.all(all.map(async agent => await agent.client.where('default', path)))
      return answers.every((w, i) => accept(w, all[i])) ? answers : undefined
    }, 30_000, 100)
  }

  it('a file written on A and deleted there: every node stops listing A and sees the tombstone as the newest version', async () => {
    dumpLogsOnFailure()
    await writeFile(join(a.data, 'doomed.txt'), 'short-lived')
    await waitFor('doomed.txt on B and C', async () =>
      (await readIfPresent(join(b.data, 'doomed.txt'))) === 'short-lived' && (await readIfPresent(join(c.data, 'doomed.txt'))) === 'short-lived')
    await whereEverywhere('every node to list A, B and C as complete holders', 'doomed.txt',
      w => w.version === 1 && !w.deleted && w.holders.length === 3 && w.holders.every(h => h.complete && h.version === 1))

    // Watch B's event stream across the deletion.
    const events: AgentEvent[] = []
    const controller = new AbortController()
    try {
      await b.client.events(e => events.push(e), controller.signal)
      await rm(join(a.data, 'doomed.txt'))

      const answers = await whereEverywhere('every node to see the deletion', 'doomed.txt', w => w.deleted)
      for (const [i, w] of answers.entries()) {
        const asked = all[i].spec.name
        expect(w.version, `version on ${asked}`).toBe(2)
        expect(w.holders.map(h => h.peerId), `holders on ${asked}`).not.toContain(a.peerId)
        // Copies left elsewhere are older than the tombstone and never shown as complete.
        for (const h of w.holders) {
          expect(h.version, `${h.name}'s version on ${asked}`).toBeLessThan(2)
          expect(h.complete, `${h.name} complete on ${asked}`).toBe(false)
        }
      }
      // The deletion propagates: B and C move their unmodified copies to the trash and record
      // the same tombstone, so the file disappears from every node's where answer.
      await whereEverywhere('no holder left anywhere', 'doomed.txt', w => w.deleted && w.holders.length === 0)
      for (const other of [b, c]) {
        expect(await readIfPresent(join(other.data, 'doomed.txt')), `doomed.txt on ${other.spec.name}`).toBeUndefined()
        const trashed = (await readdir(join(other.data, '.shoal-trash'), { recursive: true })).filter(n => n.endsWith('doomed.txt'))
        expect(trashed, `trash of ${other.spec.name}`).toHaveLength(1)
      }
      // A's own record: the path is gone from its dataset.
      expect((await a.client.status()).datasets.find(d => d.name === 'default')?.files).toBe(0)
      expect(await readIfPresent(join(a.data, 'doomed.txt'))).toBeUndefined()

      const deletion = await waitFor('a file.deleted event on B', () =>
        events.find(e => e.type === 'file.deleted' && e.path === 'doomed.txt'))
      expect(deletion).toMatchObject({ type: 'file.deleted', peerId: a.peerId, dataset: 'default', version: 2 })
    } finally {
      controller.abort()
    }
  })

  it('the tombstone survives a restart of A', async () => {
    dumpLogsOnFailure()
    const before = (await b.client.status()).view.nodes.find(n => n.peerId === a.peerId)
    expect(await a.stop()).toBe(0)
    const restarted = await a.start()
    expect(restarted.generation).toBeGreaterThan(before?.generation ?? 0)
    // B and C replace A's whole record when its generation changes: the tombstone must be in it.
    await waitFor('B and C to hold A\'s new generation', async () => {
      for (const other of [b, c]) {
        const node = (await other.client.status()).view.nodes.find(n => n.peerId === a.peerId)
        if (node?.generation !== restarted.generation) return false
      }
      return true
    }, 30_000, 100)
    for (const agent of all) {
      const w = await agent.client.where('default', 'doomed.txt')
      expect(w, `where on ${agent.spec.name}`).toMatchObject({ version: 2, deleted: true })
      expect(w.holders.map(h => h.peerId)).not.toContain(a.peerId)
    }
  })

  it('writing the path again on A makes a version newer than the tombstone, and it reaches B and C', async () => {
    dumpLogsOnFailure()
    await writeFile(join(a.data, 'doomed.txt'), 'back again, different')
    await waitFor('the new content on B and C', async () =>
      (await readIfPresent(join(b.data, 'doomed.txt'))) === 'back again, different' &&
      (await readIfPresent(join(c.data, 'doomed.txt'))) === 'back again, different')
    await whereEverywhere('every node to list A, B and C as complete holders of version 3', 'doomed.txt',
      w => w.version === 3 && !w.deleted && w.holders.length === 3 && w.holders.every(h => h.complete && h.version === 3))
  })
})
