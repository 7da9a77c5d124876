import { execFileSync } from 'node:child_process'
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Cluster, waitFor, type TestAgent } from './helpers/agents.js'
import { fileHashIfPresent, sha256File, writeRandomFile } from './helpers/files.js'

const MiB = 1024 * 1024

async function transferOf (agent: TestAgent, path: string): Promise<{ state: string, bytes: number, error?: string, resumedChunks?: number } | undefined> {
  return (await agent.client.transfers()).transfers.find(t => t.path === path)
}

async function bytesServed (agent: TestAgent): Promise<number> {
  return (await agent.client.status()).transfer.bytesServed
}

/** Partial files left anywhere under a directory. */
async function partialsUnder (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true })
  return entries.filter(name => name.endsWith('.shoal-part'))
}

/**
 * A source holding model.bin (`size` bytes, its hash in `expected`) and a receiver capped at
 * `rate` killed once `killAt` bytes of it arrived, its partial file left.
 */
async function killedMidway (cluster: Cluster, size: number, rate: string, killAt: number): Promise<{ a: TestAgent, b: TestAgent, expected: string }> {
  await cluster.init()
  const a = await cluster.add({ name: 'source' })
  const expected = await writeRandomFile(join(a.data, 'model.bin'), size)
  await waitFor('the source to index the file', async () => (await a.client.where('default', 'model.bin')).holders.length === 1)
  const b = await cluster.add({ name: 'receiver', clusterKey: a.clusterKeyFile, bootstrap: [a.address], extraArgs: ['--download-rate', rate] })
  await waitFor(`${killAt} bytes of the file on the receiver`, async () => ((await transferOf(b, 'model.bin'))?.bytes ?? 0) >= killAt, 60_000, 50)
  await b.kill()
  expect(await partialsUnder(b.data)).toHaveLength(1)
  return { a, b, expected }
}

describe('a receiver killed with -9 mid-transfer', () => {
  const cluster = new Cluster()
  afterAll(async () => { await cluster.cleanup() })

  it('resumes after restart: the file completes, correct, and verified chunks are not fetched again', async () => {
    const { a, b, expected } = await killedMidway(cluster, 96 * MiB, '24M', 32 * MiB)
    const servedBeforeRestart = await bytesServed(a)
    expect(servedBeforeRestart).toBeLessThan(96 * MiB)

    await b.start()
    await waitFor('the whole file on the receiver', async () => (await fileHashIfPresent(join(b.data, 'model.bin'))) === expected, 120_000, 250)
    const t = await transferOf(b, 'model.bin')
    expect(t?.state).toBe('completed')
    expect(t?.resumedChunks ?? 0).toBeGreaterThan(0)
    // The source sent the file about once: chunks verified before the kill were not sent again
    // (at most what arrived after the last checkpoint, half a second at 24 MiB/s, is fetched twice).
    const served = await bytesServed(a)
    expect(served).toBeGreaterThanOrEqual(96 * MiB)
    expect(served).toBeLessThan(96 * MiB + 24 * MiB)
    expect(await partialsUnder(b.data)).toEqual([])
  })
})

describe('a receiver killed with -9 mid-transfer, the file changed or deleted meanwhile', () => {
  const clusters = [new Cluster(), new Cluster()]
  afterAll(async () => { await Promise.all(clusters.map(async c => await c.cleanup())) })

  it('a new version: the receiver fetches it and the partial file of the old one is gone', async () => {
    const { a, b } = await killedMidway(clusters[0], 64 * MiB, '16M', 16 * MiB)
    const expected = await writeRandomFile(join(a.data, 'model.bin'), 4 * MiB)
    await waitFor('the source to index the new version', async () => ((await a.client.where('default', 'model.bin')).version ?? 0) >= 2)
    await b.start()
    await waitFor('the new version on the receiver', async () => (await fileHashIfPresent(join(b.data, 'model.bin'))) === expected, 60_000, 250)
    expect(await partialsUnder(b.data)).toEqual([])
  })

  it('deleted: once the receiver learns of the deletion its partial file goes, and peers see it hold none', async () => {
    const { a, b } = await killedMidway(clusters[1], 64 * MiB, '16M', 16 * MiB)
    await rm(join(a.data, 'model.bin'))
    await waitFor('the source to record the deletion', async () => (await a.client.where('default', 'model.bin')).deleted)
    await b.start()
    await waitFor('the receiver to learn of the deletion', async () => (await b.client.where('default', 'model.bin')).deleted, 60_000, 250)
    await waitFor('the partial file removed', async () => (await partialsUnder(b.data)).length === 0, 30_000, 250)
    expect(await fileHashIfPresent(join(b.data, 'model.bin'))).toBeUndefined()
    // The source's view: the receiver holds no copy of any version.
    await waitFor('the source to see the receiver hold none', async () => (await a.client.where('default', 'model.bin')).holders.every(h => h.peerId !== b.peerId), 30_000, 250)
  })
})

describe('stray partial files', () => {
  const cluster = new Cluster()
  afterAll(async () => { await cluster.cleanup() })

  it('one that no download uses and the index does not record goes at the next scan; ordinary files stay', async () => {
    await cluster.init()
    const a = await cluster.add({ name: 'alone' })
    await mkdir(join(a.data, 'sub'), { recursive: true })
    // As a crash before a download's first checkpoint leaves it (named as the engine names them).
    const stray = join(a.data, 'sub', '.weights.bin.0123456789ab.shoal-part')
    await writeFile(stray, Buffer.alloc(64 * 1024, 1))
    await writeFile(join(a.data, 'sub', 'notes.shoal-partial'), 'an ordinary file')
    await writeFile(join(a.data, 'sub', 'x.shoal-part'), 'not named as the engine names partial files: left alone')
    await a.client.rescan()
    await waitFor('the stray partial file removed', async () => !(await partialsUnder(a.data)).includes('sub/.weights.bin.0123456789ab.shoal-part'), 30_000, 100)
    expect((await partialsUnder(a.data)).sort()).toEqual(['sub/x.shoal-part'])
    expect(await readFile(join(a.data, 'sub', 'notes.shoal-partial'), 'utf8')).toBe('an ordinary file')
    await waitFor('the ordinary file indexed', async () => (await a.client.where('default', 'sub/notes.shoal-partial')).holders.length === 1, 30_000, 100)
  })
})

describe('a source killed with -9 mid-transfer', () => {
  const cluster = new Cluster()
  afterAll(async () => { await cluster.cleanup() })

  it('the receiver completes from the remaining holder', async () => {
    await cluster.init()
    const a = await cluster.add({ name: 'holder-a' })
    const c = await cluster.add({ name: 'holder-c', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    const expected = await writeRandomFile(join(a.data, 'shard.bin'), 64 * MiB)
    await waitFor('both holders complete', async () => (await fileHashIfPresent(join(c.data, 'shard.bin'))) === expected, 60_000, 100)
    await waitFor('A to know C holds it', async () => (await a.client.where('default', 'shard.bin')).holders.filter(h => h.complete).length === 2)

    const b = await cluster.add({ name: 'receiver', clusterKey: a.clusterKeyFile, bootstrap: [a.address, c.address], extraArgs: ['--download-rate', '16M'] })
    await waitFor('the receiver to fetch from both holders', async () => {
      const peers = (await b.client.status()).transfer.peers
      return peers.filter(p => p.bytesReceived > 0).length === 2 && ((await transferOf(b, 'shard.bin'))?.bytes ?? 0) > 8 * MiB
    }, 60_000, 50)
    await a.kill()
    await waitFor('the whole file on the receiver', async () => (await fileHashIfPresent(join(b.data, 'shard.bin'))) === expected, 120_000, 250)
    expect((await transferOf(b, 'shard.bin'))?.state).toBe('completed')
  })
})

describe('a peer that serves corrupted chunks', () => {
  const cluster = new Cluster()
  afterAll(async () => { await cluster.cleanup() })

  it('never gets a corrupt byte committed; its circuit opens; the file completes from the other holder', async () => {
    await cluster.init()
    const liar = await cluster.add({ name: 'liar', env: { SHOAL_FAULT_CORRUPT_CHUNKS: '1' } })
    const honest = await cluster.add({ name: 'honest', clusterKey: liar.clusterKeyFile, bootstrap: [liar.address] })
    // Both hold the same bytes from the start (written into each dataset directly).
    const source = cluster.path('weights.bin')
    const expected = await writeRandomFile(source, 32 * MiB)
    await copyFile(source, join(liar.data, 'weights.bin'))
    await copyFile(source, join(honest.data, 'weights.bin'))
    await waitFor('both to hold it, as each other sees', async () => (await honest.client.where('default', 'weights.bin')).holders.filter(h => h.complete).length === 2)

    const b = await cluster.add({ name: 'receiver', clusterKey: liar.clusterKeyFile, bootstrap: [liar.address, honest.address] })
    await waitFor('the file on the receiver', async () => (await fileHashIfPresent(join(b.data, 'weights.bin'))) === expected, 120_000, 250)
    expect(await sha256File(join(b.data, 'weights.bin'))).toBe(expected)
    const peers = (await b.client.status()).transfer.peers
    const liarState = peers.find(p => p.peerId === liar.peerId)
    expect(liarState?.chunksFailed ?? 0).toBeGreaterThan(0)
    expect(liarState?.bytesReceived).toBe(0)
    expect(liarState?.circuit).not.toBe('closed')
    expect(peers.find(p => p.peerId === honest.peerId)?.bytesReceived).toBe(32 * MiB)
  })
})

describe('backpressure', () => {
  const cluster = new Cluster()
  afterAll(async () => { await cluster.cleanup() })

  it('an overloaded node is avoided while another holds the file, and used again after it recovers', async () => {
    await cluster.init()
    const env = { SHOAL_FAULTS: '1' }
    const a = await cluster.add({ name: 'loaded', env })
    const c = await cluster.add({ name: 'spare', env, clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    const put = async (name: string, size: number): Promise<string> => {
      const tmp = cluster.path(name)
      const hash = await writeRandomFile(tmp, size)
      await copyFile(tmp, join(a.data, name))
      await copyFile(tmp, join(c.data, name))
      await waitFor(`both holders of ${name}`, async () => (await a.client.where('default', name)).holders.filter(h => h.complete).length === 2)
      return hash
    }
    const first = await put('first.bin', 24 * MiB)
    const res = await a.client.get<{ level: string }>('/v1/debug/load?level=overloaded').catch(() => undefined)
    expect(res).toBeUndefined() // GET is not allowed: the switch takes PUT
    execFileSync('curl', ['-s', '-X', 'PUT', '--unix-socket', a.socket, 'http://shoal/v1/debug/load?level=overloaded'])
    await waitFor('C to hear that A is overloaded', async () => (await c.client.status()).peers.find(p => p.peerId === a.peerId)?.load === 'overloaded')

    const servedByA = await bytesServed(a)
    const servedByC = await bytesServed(c)
    const b = await cluster.add({ name: 'receiver', clusterKey: a.clusterKeyFile, bootstrap: [a.address, c.address] })
    await waitFor('first.bin on the receiver', async () => (await fileHashIfPresent(join(b.data, 'first.bin'))) === first, 60_000, 100)
    expect((await b.client.status()).peers.find(p => p.peerId === a.peerId)?.load).toBe('overloaded')
    expect(await bytesServed(a)).toBe(servedByA)
    expect(await bytesServed(c) - servedByC).toBeGreaterThanOrEqual(24 * MiB)

    execFileSync('curl', ['-s', '-X', 'PUT', '--unix-socket', a.socket, 'http://shoal/v1/debug/load?level=auto'])
    await waitFor('B to hear that A recovered', async () => (await b.client.status()).peers.find(p => p.peerId === a.peerId)?.load === 'ok')
    const second = await put('second.bin', 24 * MiB)
    await waitFor('second.bin on the receiver', async () => (await fileHashIfPresent(join(b.data, 'second.bin'))) === second, 60_000, 100)
    expect(await bytesServed(a)).toBeGreaterThan(servedByA)
  })
})

describe('a full disk on the receiver', () => {
  const cluster = new Cluster()
  let mountPoint = ''
  afterAll(async () => {
    await Promise.all(cluster.agents.map(async a => await a.kill()))
    if (mountPoint !== '') {
      try { execFileSync('umount', [mountPoint]) } catch {}
    }
    await cluster.cleanup()
  })

  it('fails the transfer cleanly: nothing partial left, existing data untouched, and the status says why', async () => {
    await cluster.init()
    mountPoint = cluster.path('small-disk')
    await mkdir(mountPoint)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mountPoint])
    const data = join(mountPoint, 'data')
    await mkdir(data)
    await writeFile(join(data, 'keep.txt'), 'precious existing data')

    const a = await cluster.add({ name: 'source' })
    const b = await cluster.add({ name: 'small', clusterKey: a.clusterKeyFile, bootstrap: [a.address], data, extraArgs: ['--min-free-disk', '0', '--download-rate', '4M'] })
    await waitFor('B connected', async () => (await b.client.status()).peers.some(p => p.connected))
    await writeRandomFile(join(a.data, 'big.bin'), 16 * MiB)
    // The download starts (16 MiB fit in 24); then the disk fills up under it.
    await waitFor('the download under way', async () => ((await transferOf(b, 'big.bin'))?.bytes ?? 0) > 0, 60_000, 50)
    // dd stops at ENOSPC and exits non-zero: a full disk is the point.
    try { execFileSync('dd', ['if=/dev/zero', `of=${join(mountPoint, 'filler')}`, 'bs=1M', 'count=64'], { stdio: 'ignore' }) } catch {}
    const failed = await waitFor('the transfer to fail', async () => {
      const t = await transferOf(b, 'big.bin')
      return t?.state === 'failed' ? t : undefined
    }, 60_000, 100)
    expect(failed.error).toMatch(/ENOSPC|no space|disk low/i)
    expect(await partialsUnder(data)).toEqual([])
    expect(await readFile(join(data, 'keep.txt'), 'utf8')).toBe('precious existing data')
    expect((await readdir(data)).sort()).toEqual(['.shoal-dataset', 'keep.txt'])
    // The status reports the free space it measures (every 250 ms).
    await waitFor('the status to show the full disk', async () => ((await b.client.status()).load.freeDiskBytes ?? Infinity) < 16 * MiB, 30_000, 100)
    // A later attempt is refused before it writes anything, and says why.
    const again = await waitFor('a refused retry', async () => {
      const t = await transferOf(b, 'big.bin')
      return t?.state === 'failed' && /disk low/.test(t.error ?? '') ? t : undefined
    }, 60_000, 200)
    expect(again.error).toMatch(/disk low/)
    expect(await partialsUnder(data)).toEqual([])
  })
})
