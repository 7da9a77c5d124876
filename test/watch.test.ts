import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import { Cluster, waitFor, type TestAgent } from './helpers/agents.js'

/**
 * Changes reach the index through the directory watches alone: the periodic rescan is set far
 * beyond the test, so every change found here was found by a scan of the changed directory only.
 */
describe('watching a dataset', () => {
  const cluster = new Cluster()
  let a: TestAgent

  beforeAll(async () => {
    await cluster.init()
    a = await cluster.add({ name: 'watcher', extraArgs: ['--rescan-ms', '3600000', '--stable-ms', '200'] })
    await waitFor('the first scan', async () => (await a.client.status()).scan.scans >= 1 || undefined)
  })
  afterAll(async () => { await cluster.cleanup() })

  const held = async (path: string): Promise<boolean> => {
    const where = await a.client.where('default', path)
    return where.holders.some(h => h.self && !where.deleted)
  }

  it('indexes a file written in a new subdirectory, then in a directory removed and made again, scanning only those directories', async () => {
    onTestFailed(() => { console.error(a.stderr.slice(-4000)) })
    await mkdir(join(a.data, 'runs', 'one'), { recursive: true })
    await writeFile(join(a.data, 'runs', 'one', 'ckpt-1.bin'), 'first checkpoint')
    await waitFor('runs/one/ckpt-1.bin indexed', async () => await held('runs/one/ckpt-1.bin') || undefined, 20_000)
    // A small file with no hashing worker alive is hashed on the agent's thread: none started.
    expect((await a.client.status()).scan.hashWorkers).toBe(0)

    // The directory goes away with its file, and comes back with another.
    await rm(join(a.data, 'runs', 'one'), { recursive: true })
    await waitFor('runs/one/ckpt-1.bin deleted', async () => (await a.client.where('default', 'runs/one/ckpt-1.bin')).deleted || undefined, 20_000)
    await mkdir(join(a.data, 'runs', 'one'))
    await writeFile(join(a.data, 'runs', 'one', 'ckpt-2.bin'), 'second checkpoint')
    await waitFor('runs/one/ckpt-2.bin indexed', async () => await held('runs/one/ckpt-2.bin') || undefined, 20_000)
    // And its new files are seen through its new watch.
    await writeFile(join(a.data, 'runs', 'one', 'ckpt-3.bin'), 'third checkpoint')
    await waitFor('runs/one/ckpt-3.bin indexed', async () => await held('runs/one/ckpt-3.bin') || undefined, 20_000)

    const status = await a.client.status()
    expect(status.scan.scans).toBe(1)
    expect(status.scan.directoryScans).toBeGreaterThanOrEqual(3)
  })

  it('misses no file of a burst into new subdirectories (files made between a new directory\'s scan and its watch)', async () => {
    onTestFailed(() => { console.error(a.stderr.slice(-4000)) })
    // 48 writers at once, 4,000 files over 120 new directories, each file staged and renamed in:
    // new directories keep appearing while earlier ones fill.
    const before = (await a.client.status()).datasets[0].files
    const staging = join(a.dir, 'burst-staging')
    await mkdir(staging, { recursive: true })
    const paths = Array.from({ length: 4000 }, (_, i) => `burst/d${String(i % 120).padStart(2, '0')}/f${String(i).padStart(5, '0')}.bin`)
    let next = 0
    await Promise.all(Array.from({ length: 48 }, async () => {
      while (next < paths.length) {
        const path = paths[next++]
        const tmp = join(staging, path.replaceAll('/', '_'))
        await writeFile(tmp, path)
        await mkdir(join(a.data, dirname(path)), { recursive: true })
        await rename(tmp, join(a.data, path))
      }
    }))
    // The periodic rescan is an hour away: only the watches and the scans they start can find them.
    await waitFor('every file of the burst indexed', async () => (await a.client.status()).datasets[0].files >= before + paths.length || undefined, 30_000, 250)
    expect((await a.client.status()).scan.scans).toBe(1)
  })
})

describe('the periodic rescan', () => {
  const cluster = new Cluster()
  let a: TestAgent

  beforeAll(async () => {
    await cluster.init()
    a = await cluster.add({ name: 'rescanner', extraArgs: ['--rescan-ms', '300'] })
    await waitFor('the first scan', async () => (await a.client.status()).scan.scans >= 1 || undefined)
  })
  afterAll(async () => { await cluster.cleanup() })

  it('waits while applications keep asking, and runs once they pause', async () => {
    onTestFailed(() => { console.error(a.stderr.slice(-4000)) })
    // Every 300 ms a rescan falls due; none runs while queries arrive without a one-second pause
    // (the first second of queries lets a scan already under way finish).
    const client = a.client
    const busy = async (ms: number): Promise<void> => {
      const until = Date.now() + ms
      while (Date.now() < until) await client.where('default', 'nothing/here.bin')
    }
    await busy(1_000)
    const before = await a.client.status()
    await busy(3_000)
    const during = await a.client.status()
    expect(during.scan.scans).toBe(before.scan.scans)
    expect(during.scan.rescansDeferred).toBeGreaterThanOrEqual(1)
    // Once the API is quiet (polled more than a second apart), the waiting rescan runs.
    await waitFor('a rescan after the queries stop', async () => (await a.client.status()).scan.scans > during.scan.scans || undefined, 30_000, 1_500)
  })
})

describe('the periodic rescan of a larger dataset', () => {
  const cluster = new Cluster()
  let a: TestAgent
  const FILES = 1_000

  beforeAll(async () => {
    await cluster.init()
    a = await cluster.add({ name: 'spacer', extraArgs: ['--rescan-ms', '200', '--stable-ms', '100'] })
    for (let d = 0; d < 10; d++) {
      await mkdir(join(a.data, `d${d}`), { recursive: true })
      await Promise.all(Array.from({ length: FILES / 10 }, async (_, i) => { await writeFile(join(a.data, `d${d}`, `f${i}.bin`), `${d}/${i}`) }))
    }
    await waitFor('every file indexed', async () => (await a.client.status()).datasets[0].files >= FILES || undefined, 60_000, 1_500)
  })
  afterAll(async () => { await cluster.cleanup() })

  it('leaves 100 times the last rescan\'s duration between two, not just the interval', async () => {
    onTestFailed(() => { console.error(a.stderr.slice(-4000)) })
    const before = await waitFor('a whole rescan that hashed nothing', async () => {
      const status = await a.client.status()
      return (status.scan.lastFullScan?.ms ?? 0) > 0 ? status : undefined
    }, 60_000, 1_500)
    // A window without requests (the quiet-API rule never holds a rescan back): with the interval
    // alone (200 ms) some 40 rescans would run in it; with the gap rule, one per 100 durations.
    const windowMs = 10_000
    const started = Date.now()
    await new Promise(resolve => setTimeout(resolve, windowMs))
    const after = await a.client.status()
    const elapsed = Date.now() - started
    const rescans = after.scan.scans - before.scan.scans
    const durations = [before.scan.lastFullScan?.ms ?? 0, after.scan.lastFullScan?.ms ?? 0].filter(ms => ms > 0)
    // Durations of passes over the same files vary; a third of the shortest seen bounds them here.
    const shortestGap = 100 * Math.min(...durations) / 3
    expect(rescans, `rescans in ${elapsed} ms, passes of ${durations.join(' and ')} ms`).toBeLessThanOrEqual(Math.ceil(elapsed / Math.max(200, shortestGap)) + 1)
    // And the safety net still runs when its gap fits in the window.
    if (100 * Math.max(...durations) < windowMs / 2) expect(rescans).toBeGreaterThanOrEqual(1)
  })
})
