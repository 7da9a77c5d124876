import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Cluster, waitFor, type TestAgent } from './helpers/agents.js'

// More files than one page of the index (CHANGE_PAGE_ENTRIES, 2,000) and than one ManifestPage:
// the record is read, sent and merged in parts.
const FILES = 4500

function pathOf (i: number): string {
  return `shards/s${i % 10}/f${String(i).padStart(5, '0')}.bin`
}

async function heldOf (viewer: TestAgent, subject: TestAgent): Promise<number | undefined> {
  return (await viewer.client.status()).peers.find(p => p.peerId === subject.peerId)?.files
}

describe('a record larger than one page', () => {
  const cluster = new Cluster()
  afterAll(async () => { await cluster.cleanup() })

  it('is pulled whole by a joining node, and a new generation of it removes only what it no longer lists', async () => {
    await cluster.init()
    const data = cluster.path('a-data')
    for (let d = 0; d < 10; d++) await mkdir(join(data, 'shards', `s${d}`), { recursive: true })
    for (let i = 0; i < FILES; i++) await writeFile(join(data, ...pathOf(i).split('/')), `file ${i}\n`)
    const a = await cluster.add({ name: 'a', data })
    await waitFor('a to index every file', async () => (await a.client.status()).datasets[0].files === FILES, 120_000, 200)

    // b holds the dataset on demand: it learns a's record without fetching the files.
    const b = await cluster.add({ name: 'b', clusterKey: a.clusterKeyFile, bootstrap: [a.address], extraArgs: ['--on-demand', 'default'] })
    await waitFor('b to hold all of a\'s record', async () => await heldOf(b, a) === FILES, 60_000, 200)
    const aStatus = await a.client.status()
    const viewOfA = (await b.client.status()).view.nodes.find(n => n.peerId === a.peerId)
    expect(viewOfA).toMatchObject({ generation: aStatus.generation, sequence: aStatus.sequence })
    for (const i of [0, 1999, 2000, 3999, FILES - 1]) {
      expect((await b.client.where('default', pathOf(i))).holders.map(h => h.peerId)).toEqual([a.peerId])
    }

    // While a is down, 100 of its files go and its index is rebuilt (a new generation whose
    // record b must take whole): b keeps every other copy and drops exactly those 100.
    expect(await a.stop()).toBe(0)
    for (let i = 0; i < 100; i++) await rm(join(data, ...pathOf(i * 45).split('/')))
    await rm(join(a.state, 'index.db'), { force: true })
    await rm(join(a.state, 'index.db-wal'), { force: true })
    await rm(join(a.state, 'index.db-shm'), { force: true })
    // a listens on a new port: it dials b.
    a.spec.bootstrap = [b.address]
    const restarted = await a.start()
    expect(restarted.generation).toBeGreaterThan(aStatus.generation)
    await waitFor('a to index the files left', async () => (await a.client.status()).datasets[0].files === FILES - 100, 120_000, 200)
    const generation = (await a.client.status()).generation
    await waitFor('b to take a\'s new generation whole', async () => {
      const view = (await b.client.status()).view.nodes.find(n => n.peerId === a.peerId)
      return view?.generation === generation && view.sequence === (await a.client.status()).sequence && await heldOf(b, a) === FILES - 100
    }, 60_000, 200)
    expect((await b.client.where('default', pathOf(45))).holders).toEqual([])
    expect((await b.client.where('default', pathOf(46))).holders.map(h => h.peerId)).toEqual([a.peerId])
    expect((await b.client.where('default', pathOf(FILES - 1))).holders.map(h => h.peerId)).toEqual([a.peerId])
  }, 300_000)
})
