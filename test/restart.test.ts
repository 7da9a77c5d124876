import { writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, waitFor, type TestAgent } from './helpers/agents.js'

describe('a restarted agent over unchanged data', () => {
  const cluster = new Cluster()
  let a: TestAgent
  const files = 40

  beforeAll(async () => {
    await cluster.init()
    a = await cluster.add({ name: 'restarter' })
    await mkdir(join(a.data, 'many'), { recursive: true })
    for (let i = 0; i < files; i++) await writeFile(join(a.data, 'many', `f${i}.bin`), `payload ${i} `.repeat(1000))
    await waitFor('every file indexed', async () => (await a.client.status()).datasets[0].files === files)
  })
  afterAll(async () => { await cluster.cleanup() })

  it('reads no file contents: nothing is rehashed, the sequence and the entries stay', async () => {
    const before = await a.client.status()
    expect(before.scan.filesHashed).toBe(files)
    const listing = await a.client.files('default', { prefix: 'many/' })
    expect(await a.stop()).toBe(0)

    await a.start()
    // The API answers during the first scan; wait for it to complete.
    const after = await waitFor('the first scan', async () => {
      const s = await a.client.status()
      return s.scan.scans >= 1 ? s : undefined
    })
    expect(after.scan.filesHashed).toBe(0)
    expect(after.scan.bytesHashed).toBe(0)
    expect(after.sequence).toBe(before.sequence)
    expect(after.generation).toBeGreaterThan(before.generation)
    expect(after.datasets[0].files).toBe(files)
    expect((await a.client.files('default', { prefix: 'many/' })).files).toEqual(listing.files)

    // A file changed while the agent was down is rehashed, and only that one.
    expect(await a.stop()).toBe(0)
    await writeFile(join(a.data, 'many', 'f7.bin'), 'changed while the agent was stopped')
    const third = await a.start()
    await waitFor('the changed file to be rehashed', async () => (await a.client.status()).scan.filesHashed === 1)
    expect(third.sequence).toBeGreaterThanOrEqual(before.sequence)
    // Hashing ends before the new version is indexed: wait for the index, not for a moment.
    await waitFor('the new version to be indexed', async () => (await a.client.where('default', 'many/f7.bin')).version === 2).catch(() => {})
    expect((await a.client.where('default', 'many/f7.bin')).version).toBe(2)
  })
})
