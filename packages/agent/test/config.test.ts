import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, resolveConfig } from '../src/index.js'
import { decodeJoinToken, encodeJoinToken } from '../src/join.js'

const dir = mkdtempSync(join(tmpdir(), 'shoal-config-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
const PEER = '12D3KooWBuExD8Lry2kTtfFcT88P7mpCFreByvPKzbJ1LKQFrt1e'

function file (name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

function errorOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as Error).message
  }
  throw new Error('expected a ConfigError')
}

describe('configuration', () => {
  it('uses the built-in defaults with nothing given', () => {
    const c = resolveConfig({}, { env: {}, cwd: dir })
    expect(c.stateDir).toBe(join(dir, '.shoal'))
    expect(c.socketPath).toBe(join(dir, '.shoal', 'agent.sock'))
    expect(c.listen).toEqual(['/ip4/0.0.0.0/tcp/4001'])
    expect(c.datasets).toEqual([expect.objectContaining({ name: 'default', path: join(dir, 'shoal-data'), create: true, hold: { kind: 'all' } })])
    expect(c.logLevel).toBe('warn')
    expect(c.minFreeDiskBytes).toBe(1024 ** 3)
  })

  it('reads a YAML file, resolving its relative paths against the file\'s directory', () => {
    mkdirSync(join(dir, 'etc'), { recursive: true })
    const path = file('etc/shoal.yaml', `
name: gpu-01
state: state
listen: [/ip4/127.0.0.1/tcp/4100]
leaders: [${PEER}]
metrics: 127.0.0.1:9464
log-level: info
stale-after: 45s
limits: { download-rate: 100M, min-free-disk: 2G }
datasets:
  models: { path: /data/models, priority: high, hold: 3, immutable: true }
  shards: { path: shards, hold: on-demand, exclude: ['tmp/**'], include: ['**/*.npz'] }
  games: { path: /data/games, hold: { roles: [coordinator] } }
`)
    const c = resolveConfig({ config: path }, { env: {}, cwd: '/' })
    expect(c.name).toBe('gpu-01')
    expect(c.stateDir).toBe(join(dir, 'etc', 'state'))
    expect(c.leaders).toEqual([PEER])
    expect(c.metrics).toEqual({ host: '127.0.0.1', port: 9464 })
    expect(c.staleAfterMs).toBe(45_000)
    expect(c.limits.downloadRate).toBe(100 * 1024 ** 2)
    expect(c.minFreeDiskBytes).toBe(2 * 1024 ** 3)
    const byName = Object.fromEntries(c.datasets.map(d => [d.name, d]))
    expect(byName.models).toMatchObject({ path: '/data/models', priority: 'high', hold: { kind: 'replicas', count: 3 }, immutable: true })
    expect(byName.shards).toMatchObject({ path: join(dir, 'etc', 'shards'), hold: { kind: 'on-demand' }, exclude: ['tmp/**'], include: ['**/*.npz'] })
    expect(byName.games.hold).toEqual({ kind: 'select', roles: ['coordinator'], names: [] })
  })

  it('gives flags precedence over the environment, and the environment over the file', () => {
    const path = file('layers.yaml', 'name: from-file\nlog-level: error\nstate: /from/file\nlimits: { upload-rate: 1M, download-rate: 1M }\n')
    const env = { SHOAL_NAME: 'from-env', SHOAL_LOG_LEVEL: 'info', SHOAL_UPLOAD_RATE: '2M', SHOAL_CONFIG: path }
    const c = resolveConfig({ name: 'from-flag' }, { env, cwd: dir })
    expect(c.name).toBe('from-flag')
    expect(c.logLevel).toBe('info')
    expect(c.stateDir).toBe('/from/file')
    expect(c.limits.uploadRate).toBe(2 * 1024 ** 2)
    expect(c.limits.downloadRate).toBe(1024 ** 2)
    expect(c.configFile).toBe(path)
    // Lists from a higher layer replace lower ones; datasets merge by name.
    const d = resolveConfig({ dataset: ['a=/flag/a'] }, { env: { SHOAL_DATASET: 'a=/env/a,b=/env/b', SHOAL_LISTEN: '/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2' }, cwd: dir })
    expect(d.datasets.map(x => [x.name, x.path])).toEqual([['a', '/flag/a'], ['b', '/env/b']])
    expect(d.listen).toEqual(['/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/2'])
  })

  it.each([
    ['an unknown key', 'nmae: x\n', /: \(top level\): unknown key nmae/],
    ['an unknown nested key', 'limits: { download-rte: 1M }\n', /: limits: unknown key download-rte/],
    ['a wrong type', 'listen: /ip4/1.2.3.4/tcp/1\n', /: listen: .*expected array/i],
    ['a bad byte count', 'limits: { min-free-disk: lots }\n', /: limits\.min-free-disk: .*byte count/],
    ['a bad duration', 'stale-after: soon\n', /: stale-after: .*duration/],
    ['a bad hold policy', 'datasets: { m: { path: /m, hold: some } }\n', /: datasets\.m\.hold: expected all, on-demand, a replica count/],
    ['a dataset without a path', 'datasets: { m: { priority: high } }\n', /: datasets\.m\.path: /],
    ['a bad priority', 'datasets: { m: { path: /m, priority: urgent } }\n', /: datasets\.m\.priority: /],
    ['a bad log level', 'log-level: loud\n', /: log-level: /],
    ['an invalid dataset name', 'datasets: { "../x": { path: /m } }\n', /datasets\.\.\.\/x: .*invalid dataset name/],
    ['a peer id that is not one', 'leaders: [not-a-peer]\n', /leader "not-a-peer" is not a peer id/],
    ['an impossible port', 'metrics: 127.0.0.1:99999\n', /metrics .*expected HOST:PORT/],
    ['an escaping glob', 'datasets: { m: { path: /m, exclude: ["../x"] } }\n', /datasets\.m\.exclude: .*without '\.\.'/],
    ['broken YAML', 'name: [unclosed\n', /line \d+: /],
    ['a duplicate key', 'name: a\nname: b\n', /line \d+: .*(duplicate|unique)/i]
  ])('rejects %s with the key path', (_what, text, message) => {
    const path = file(`bad-${Math.random().toString(36).slice(2)}.yaml`, text)
    const msg = errorOf(() => resolveConfig({ config: path }, { env: {}, cwd: dir }))
    expect(msg).toMatch(message)
  })

  it('rejects unknown and malformed environment variables by name', () => {
    expect(errorOf(() => resolveConfig({}, { env: { SHOAL_STAET: '/x' }, cwd: dir }))).toMatch(/SHOAL_STAET: unknown setting/)
    expect(errorOf(() => resolveConfig({}, { env: { SHOAL_LOG_LEVEL: 'loud' }, cwd: dir }))).toMatch(/environment: log-level: /)
    expect(errorOf(() => resolveConfig({}, { env: { SHOAL_DATASET: 'noequals' }, cwd: dir }))).toMatch(/environment: dataset "noequals": expected NAME=DIR/)
    expect(errorOf(() => resolveConfig({ config: join(dir, 'missing.yaml') }, { env: {}, cwd: dir }))).toMatch(/cannot read the configuration file .*missing\.yaml \(ENOENT\)/)
  })

  it('carries a join token\'s key and bootstrap addresses, never echoing the token in errors', () => {
    const token = encodeJoinToken({ keyHex: 'ab'.repeat(32), bootstrap: [`/ip4/10.0.0.1/tcp/4001/p2p/${PEER}`] })
    const c = resolveConfig({ join: token, bootstrap: ['/ip4/10.0.0.2/tcp/4001'] }, { env: {}, cwd: dir })
    expect(c.joinKeyHex).toBe('ab'.repeat(32))
    expect(c.bootstrap).toEqual(['/ip4/10.0.0.2/tcp/4001', `/ip4/10.0.0.1/tcp/4001/p2p/${PEER}`])
    expect(decodeJoinToken(token).bootstrap).toHaveLength(1)
    const damaged = token.slice(0, -6)
    const msg = errorOf(() => resolveConfig({ join: damaged }, { env: {}, cwd: dir }))
    expect(msg).toMatch(/join token is not valid/)
    expect(msg).not.toContain(damaged.slice(8, 30))
    expect(errorOf(() => resolveConfig({ join: token, clusterKey: '/k' }, { env: {}, cwd: dir }))).toMatch(/either a join token or a cluster key/)
  })
})
