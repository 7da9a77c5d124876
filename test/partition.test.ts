import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import { waitFor } from './helpers/agents.js'
import { NetnsCluster, type NetnsAgent } from './helpers/netns.js'
import type { StatusResponse, WhereResponse } from '@shoal/client'

/** The heartbeat period the test agents run with (test/helpers/agents.ts). */
const HEARTBEAT_MS = 500
/** One anti-entropy period plus reconnection (agents redial every 3 s). */
const HEAL_DEADLINE_MS = 20_000

const readIfPresent = async (path: string): Promise<string | undefined> => await readFile(path, 'utf8').catch(() => undefined)

async function statuses (agents: NetnsAgent[]): Promise<StatusResponse[]> {
  return await Promise.all(agents.map(async a => await a.client.status()))
}

/** The views of `agents` when they are all equal and hold `nodes` records; undefined otherwise. */
async function equalViews (agents: NetnsAgent[], nodes: number): Promise<StatusResponse[] | undefined> {
  const all = await statuses(agents)
  const digest = all[0].view.digest
  return all.every(s => s.view.digest === digest && s.view.nodes.length === nodes) ? all : undefined
}

/** A where answer without what differs by who is asked (`self`). */
function comparable (w: WhereResponse): unknown {
  return {
    version: w.version,
    deleted: w.deleted,
    holders: w.holders.map(h => ({ peerId: h.peerId, version: h.version, complete: h.complete, contentId: h.contentId, size: h.size }))
      .sort((a, b) => a.peerId.localeCompare(b.peerId))
  }
}

/** Every agent's where answer for `path`, when they are all the same; undefined otherwise. */
async function agreedWhere (agents: NetnsAgent[], path: string): Promise<WhereResponse | undefined> {
  const answers = await Promise.all(agents.map(async a => await a.client.where('default', path)))
  const first = JSON.stringify(comparable(answers[0]))
  return answers.every(w => JSON.stringify(comparable(w)) === first) ? answers[0] : undefined
}

async function allHave (agents: NetnsAgent[], path: string, content: string): Promise<boolean> {
  const seen = await Promise.all(agents.map(async a => await readIfPresent(join(a.data, path))))
  return seen.every(c => c === content)
}

async function seeDisconnected (observers: NetnsAgent[], others: NetnsAgent[]): Promise<boolean> {
  for (const s of await statuses(observers)) {
    for (const o of others) {
      const peer = s.peers.find(p => p.peerId === o.peerId)
      if (peer == null || peer.connected) return false
    }
  }
  return true
}

async function allConnected (agents: NetnsAgent[]): Promise<boolean> {
  for (const s of await statuses(agents)) {
    for (const o of agents) {
      if (o.peerId !== s.peerId && s.peers.find(p => p.peerId === o.peerId)?.connected !== true) return false
    }
  }
  return true
}

describe('five agents in five network namespaces', () => {
  const cluster = new NetnsCluster()
  let all: NetnsAgent[]

  beforeAll(async () => {
    await cluster.init(5)
    const first = await cluster.add({ name: 'n1' })
    // Each later node bootstraps to every node started before it.
    for (let i = 2; i <= 5; i++) {
      await cluster.add({ name: `n${i}`, clusterKey: first.clusterKeyFile, bootstrap: cluster.agents.map(a => a.address) })
    }
    all = cluster.agents
    await waitFor('every agent to be connected to every other', async () => await allConnected(all), 30_000, 200)
  }, 120_000)
  afterAll(async () => { await cluster.cleanup() })

  function dumpLogsOnFailure (): void {
    onTestFailed(() => {
      for (const a of all) console.error(`--- ${a.spec.name} (${a.host.ns}) stderr, last 4000 chars ---\n${a.stderr.slice(-4000)}`)
    })
  }

  it('after a partition heals, every view agrees within one anti-entropy period plus reconnection, and every file arrives', async () => {
    dumpLogsOnFailure()
    const [n1, n2, n3, n4, n5] = all
    const sideA = [n1, n2, n3]
    const sideB = [n4, n5]

    // Before: three files everyone holds, and one view.
    await writeFile(join(n1.data, 'keep.txt'), 'unchanged everywhere')
    await writeFile(join(n2.data, 'to-modify.txt'), 'original content')
    await writeFile(join(n3.data, 'to-delete.txt'), 'doomed')
    await waitFor('the first files on every node', async () =>
      await allHave(all, 'keep.txt', 'unchanged everywhere') &&
      await allHave(all, 'to-modify.txt', 'original content') &&
      await allHave(all, 'to-delete.txt', 'doomed'), 60_000, 200)
    await waitFor('equal views before the partition', async () => await equalViews(all, 5), 30_000, 200)

    // Partition {n4, n5} from {n1, n2, n3}, until each side sees the other as gone.
    await cluster.network.partition(sideB.map(a => a.host))
    const cutAt = Date.now()
    await waitFor('each side to see the other as disconnected', async () =>
      await seeDisconnected(sideA, sideB) && await seeDisconnected(sideB, sideA), 60_000, 250)
    const detectedAfter = Date.now() - cutAt

    // Changes on both sides: new files on n1 and n4, a file modified on n5, a file deleted on n1.
    await writeFile(join(n1.data, 'new-on-1.txt'), 'written on side A')
    await writeFile(join(n4.data, 'new-on-4.txt'), 'written on side B')
    await writeFile(join(n5.data, 'to-modify.txt'), 'modified on side B, longer than before')
    await rm(join(n1.data, 'to-delete.txt'))

    // Each side converges on its own.
    await waitFor('side A to converge internally', async () =>
      await allHave(sideA, 'new-on-1.txt', 'written on side A') &&
      (await agreedWhere(sideA, 'to-delete.txt'))?.deleted === true &&
      await equalViews(sideA, 5) !== undefined, 30_000, 200)
    await waitFor('side B to converge internally', async () =>
      await allHave(sideB, 'new-on-4.txt', 'written on side B') &&
      await allHave(sideB, 'to-modify.txt', 'modified on side B, longer than before') &&
      await equalViews(sideB, 5) !== undefined, 30_000, 200)
    // Nothing crossed: the partition is real.
    const [viewA, viewB] = [(await statuses([n1]))[0].view.digest, (await statuses([n4]))[0].view.digest]
    expect(viewA).not.toBe(viewB)
    for (const a of sideA) {
      expect(await readIfPresent(join(a.data, 'new-on-4.txt'))).toBeUndefined()
      expect(await readIfPresent(join(a.data, 'to-modify.txt'))).toBe('original content')
      expect((await a.client.where('default', 'new-on-4.txt')).holders).toEqual([])
    }
    for (const b of sideB) {
      expect(await readIfPresent(join(b.data, 'new-on-1.txt'))).toBeUndefined()
      const w = await b.client.where('default', 'to-delete.txt')
      expect(w.deleted).toBe(false)
      expect(w.holders.map(h => h.peerId)).toContain(n1.peerId)
    }
    expect(Date.now() - cutAt).toBeGreaterThan(HEARTBEAT_MS)

    // Heal: every view equal, and every changed path seen the same way everywhere.
    const changed = ['new-on-1.txt', 'new-on-4.txt', 'to-modify.txt', 'to-delete.txt']
    await cluster.network.heal()
    const healedAt = Date.now()
    let reconnectedAfter: number | undefined
    const agreed = await waitFor('equal views after the heal', async () => {
      if (reconnectedAfter === undefined && await allConnected(all)) reconnectedAfter = Date.now() - healedAt
      if (await equalViews(all, 5) === undefined) return undefined
      const answers: Record<string, WhereResponse> = {}
      for (const path of changed) {
        const w = await agreedWhere(all, path)
        if (w === undefined) return undefined
        answers[path] = w
      }
      return answers
    }, HEAL_DEADLINE_MS, 100)
    const viewsEqualAfter = Date.now() - healedAt
    // waitFor accepts a check that started before its deadline; the invariant is the deadline itself.
    expect(viewsEqualAfter).toBeLessThanOrEqual(HEAL_DEADLINE_MS)
    expect(agreed['new-on-1.txt']).toMatchObject({ version: 1, deleted: false })
    expect(agreed['new-on-4.txt']).toMatchObject({ version: 1, deleted: false })
    expect(agreed['to-modify.txt']).toMatchObject({ version: 2, deleted: false })
    expect(agreed['to-delete.txt']).toMatchObject({ version: 2, deleted: true })
    expect(agreed['to-delete.txt'].holders.map(h => h.peerId)).not.toContain(n1.peerId)

    // The files themselves reach every node on both sides.
    await waitFor('the files of both sides on every node', async () =>
      await allHave(all, 'new-on-1.txt', 'written on side A') &&
      await allHave(all, 'new-on-4.txt', 'written on side B') &&
      await allHave(all, 'to-modify.txt', 'modified on side B, longer than before') &&
      await allHave(all, 'keep.txt', 'unchanged everywhere'), 30_000, 200)
    const filesEverywhereAfter = Date.now() - healedAt
    expect(await readIfPresent(join(n1.data, 'to-delete.txt'))).toBeUndefined()

    // Once the transfers are announced, the views settle again: every node a complete holder.
    const settled = await waitFor('the views to settle with every node holding every live file', async () => {
      if (await equalViews(all, 5) === undefined) return undefined
      const answers: WhereResponse[] = []
      for (const path of ['new-on-1.txt', 'new-on-4.txt', 'to-modify.txt']) {
        const w = await agreedWhere(all, path)
        if (w === undefined || w.holders.length !== 5 || !w.holders.every(h => h.complete)) return undefined
        answers.push(w)
      }
      return answers
    }, 30_000, 200)
    expect(settled[2].holders.every(h => h.version === 2)).toBe(true)
    const deleted = await agreedWhere(all, 'to-delete.txt')
    expect(deleted).toMatchObject({ version: 2, deleted: true })
    expect(deleted?.holders.map(h => h.peerId)).not.toContain(n1.peerId)
    expect(deleted?.holders.every(h => !h.complete && h.version < 2)).toBe(true)

    console.log(`partition: detected by both sides after ${detectedAfter} ms; after the heal, all connected in ${reconnectedAfter ?? '(not seen before the views agreed)'} ms, views equal in ${viewsEqualAfter} ms, files everywhere in ${filesEverywhereAfter} ms`)
  })

  it('a node whose link goes down misses nothing once it is back up', async () => {
    dumpLogsOnFailure()
    const [n1, n2, n3, n4, n5] = all
    const others = [n1, n2, n4, n5]
    await waitFor('every agent to be connected to every other', async () => await allConnected(all), 30_000, 200)

    await cluster.network.linkDown(n3.host)
    const downAt = Date.now()
    await waitFor('n3 and the others to see each other as disconnected', async () =>
      await seeDisconnected([n3], others) && await seeDisconnected(others, [n3]), 60_000, 250)

    await writeFile(join(n2.data, 'while-n3-down.txt'), 'n3 was cut off')
    await waitFor('the file on every node but n3', async () => await allHave(others, 'while-n3-down.txt', 'n3 was cut off'), 30_000, 200)
    expect(await readIfPresent(join(n3.data, 'while-n3-down.txt'))).toBeUndefined()
    expect((await n3.client.where('default', 'while-n3-down.txt')).holders).toEqual([])

    await cluster.network.linkUp(n3.host)
    const upAt = Date.now()
    let reconnectedAfter: number | undefined
    await waitFor('equal views after the link comes back', async () => {
      if (reconnectedAfter === undefined && await allConnected(all)) reconnectedAfter = Date.now() - upAt
      return await equalViews(all, 5)
    }, HEAL_DEADLINE_MS, 100)
    const viewsEqualAfter = Date.now() - upAt
    expect(viewsEqualAfter).toBeLessThanOrEqual(HEAL_DEADLINE_MS)
    await waitFor('the file on n3', async () => (await readIfPresent(join(n3.data, 'while-n3-down.txt'))) === 'n3 was cut off', 30_000, 200)
    console.log(`link down: down for ${upAt - downAt} ms; after the link came back, all connected in ${reconnectedAfter ?? '(not seen before the views agreed)'} ms, views equal in ${viewsEqualAfter} ms, file on n3 in ${Date.now() - upAt} ms`)
  })
})
