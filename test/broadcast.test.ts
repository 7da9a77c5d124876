import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Cluster, runShoal, waitFor, type TestAgent } from './helpers/agents.js'
import { fileHashIfPresent, writeRandomFile } from './helpers/files.js'

const MiB = 1024 * 1024

describe('broadcast from a leader', () => {
  const cluster = new Cluster()
  afterAll(async () => { await cluster.cleanup() })

  it('reaches every targeted node; a broadcast from a non-leader is refused and rejected everywhere', async () => {
    await cluster.init()
    // The leader's peer id exists once it has started; every node (the leader too) names it.
    const leader = await cluster.add({ name: 'leader', env: { SHOAL_FAULTS: '1' } })
    await leader.stop()
    const leaderFlag = ['--leader', leader.peerId]
    leader.spec.extraArgs = leaderFlag
    await leader.start()
    const onDemand = [...leaderFlag, '--on-demand', 'default']
    const spec = (name: string): Parameters<Cluster['add']>[0] => ({
      name, clusterKey: leader.clusterKeyFile, bootstrap: [leader.address], extraArgs: onDemand, env: { SHOAL_FAULTS: '1' }
    })
    const b = await cluster.add(spec('b'))
    const c = await cluster.add(spec('c'))
    const d = await cluster.add(spec('d'))
    const nodes: TestAgent[] = [leader, b, c, d]
    await waitFor('everyone to know everyone', async () => {
      for (const n of nodes) if ((await n.client.status()).view.nodes.length !== 4) return false
      return true
    })

    const expected = await writeRandomFile(join(leader.data, 'model.bin'), 24 * MiB)
    await waitFor('every node to know the leader holds model.bin', async () => {
      for (const n of nodes) if ((await n.client.where('default', 'model.bin')).holders.length !== 1) return false
      return true
    })

    // A node that is not a leader cannot broadcast: the CLI says so.
    const refused = await runShoal(['broadcast', 'default/model.bin', '--socket', b.socket])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/not a leader/)

    const result = await runShoal(['broadcast', 'default/model.bin', '--nodes', 'b,c', '--priority', 'critical', '--wait', '--timeout', '90s', '--json', '--socket', leader.socket], { timeoutMs: 120_000 })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const progress = JSON.parse(result.stdout)
    expect(progress.complete).toBe(true)
    expect(progress.nodes.map((n: { name: string }) => n.name).sort()).toEqual(['b', 'c'])
    for (const n of [b, c]) expect(await fileHashIfPresent(join(n.data, 'model.bin'))).toBe(expected)
    // d was not targeted and its dataset is on demand: it never fetched the file.
    expect(await fileHashIfPresent(join(d.data, 'model.bin'))).toBeUndefined()
    expect((await d.client.transfers()).transfers).toEqual([])

    // A directive published by a non-leader (test fault switch) is rejected by every other node.
    await writeRandomFile(join(b.data, 'rogue.bin'), MiB)
    // Other nodes holding the whole dataset may fetch it meanwhile: what matters is that b's copy is known.
    await waitFor('the leader to know rogue.bin', async () => (await leader.client.where('default', 'rogue.bin')).holders.some(h => h.peerId === b.peerId))
    const forced = await b.client.send<{ id: string }>('POST', '/v1/broadcast', { dataset: 'default', path: 'rogue.bin', force: true })
    expect(forced.id).toMatch(/^[0-9a-f]{32}$/)
    await waitFor('every other node to reject it', async () => {
      for (const n of [leader, c, d]) if (((await n.client.status()).gossip.rejectedFrom[b.peerId] ?? 0) === 0) return false
      return true
    })
    for (const n of [c, d]) {
      expect(await fileHashIfPresent(join(n.data, 'rogue.bin'))).toBeUndefined()
      expect((await n.client.transfers()).transfers.map(t => t.path)).not.toContain('rogue.bin')
    }
  })

  it('exits non-zero at the deadline, listing the nodes that do not hold the file and why', async () => {
    const leader = cluster.agents[0]
    const d = cluster.agents[3]
    await d.stop()
    await writeRandomFile(join(leader.data, 'late.bin'), MiB)
    await waitFor('the leader to index late.bin', async () => (await leader.client.where('default', 'late.bin')).holders.length === 1)
    const result = await runShoal(['broadcast', 'default/late.bin', '--nodes', 'd', '--wait', '--timeout', '3s', '--socket', leader.socket])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/deadline reached; 1 node\(s\) do not hold default\/late\.bin/)
    expect(result.stderr).toMatch(/^\s+d\s+waiting/m)
  })
})
