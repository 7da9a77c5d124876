/**
 * The deployment files under deploy/: the systemd unit is parsed and its command line run for
 * real (as the unit's unprivileged user when the test runs as root), joining a running node with
 * a token from `shoal init`; every YAML file is parsed; the Kubernetes manifests and the
 * Containerfile are checked against each other, against the configuration schema and against
 * the files of this repository.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { hostname, tmpdir } from 'node:os'
import { dirname, join, posix } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseAllDocuments, parseDocument, stringify } from 'yaml'
import { resolveConfig, STOP_TIMEOUT_MS } from '@shoal/agent'
import type { StatusResponse } from '@shoal/client'
import { Cluster, REPO, runShoal, waitFor, type TestAgent } from './helpers/agents.js'

const DEPLOY = join(REPO, 'deploy')
/** Where the unit, the image and the manifests expect the repository to be installed. */
const INSTALL_DIR = '/opt/shoal'
/** The longest a stopping agent takes: STOP_TIMEOUT_MS, then its own hard exit 2 s later. */
const AGENT_STOP_BOUND_MS = STOP_TIMEOUT_MS + 2000

const read = (path: string): string => readFileSync(join(REPO, path), 'utf8')

/** A path of the installed tree as a path of this repository, or undefined if it is not one. */
function inRepo (installed: string): string | undefined {
  if (installed !== INSTALL_DIR && !installed.startsWith(`${INSTALL_DIR}/`)) return undefined
  return join(REPO, installed.slice(INSTALL_DIR.length))
}

function isUnder (path: string, dir: string): boolean {
  const rel = posix.relative(dir, path)
  return rel === '' || (!rel.startsWith('..') && !posix.isAbsolute(rel))
}

// ---- systemd unit files, environment files, Containerfiles: small parsers -------------------

/** A systemd unit file: sections of (key, value) pairs in order; keys may repeat. */
type Unit = Map<string, Array<[string, string]>>

function parseUnit (text: string): Unit {
  const unit: Unit = new Map()
  let section: Array<[string, string]> | undefined
  const lines = text.replace(/\\\n/g, ' ').split('\n')
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[([A-Za-z]+)\]$/.exec(line)
    if (header != null) {
      section = unit.get(header[1]) ?? []
      unit.set(header[1], section)
      continue
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line)
    if (kv == null || section == null) throw new Error(`unit line ${i + 1} is neither a section, a comment nor Key=value: ${raw}`)
    section.push([kv[1], kv[2].trim()])
  }
  return unit
}

/** Every value given to a key, in order (an empty assignment is a value too). */
function values (unit: Unit, section: string, key: string): string[] {
  return (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v)
}

function value (unit: Unit, section: string, key: string): string | undefined {
  return values(unit, section, key).at(-1)
}

/** The service's one ExecStart=, as words: a plain command line, without quoting or specifiers. */
function execStart (unit: Unit): string[] {
  const all = values(unit, 'Service', 'ExecStart')
  expect(all).toHaveLength(1)
  expect(all[0], 'a plain command line: no quoting, variables or specifiers').not.toMatch(/["'$%]/)
  return all[0].split(/\s+/)
}

/** systemd time spans as TimeoutStopSec= takes them: "15", "15s", "1min 30s", "500ms". */
function timeSpanMs (span: string): number {
  const units: Record<string, number> = { '': 1000, ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000 }
  let total = 0
  const rest = span.replace(/(\d+(?:\.\d+)?)\s*([a-z]*)/g, (_, n: string, unit: string) => {
    if (units[unit] == null) throw new Error(`unknown time unit in ${span}`)
    total += Number(n) * units[unit]
    return ''
  })
  if (rest.trim() !== '') throw new Error(`not a time span: ${span}`)
  return total
}

/** An EnvironmentFile=: KEY=VALUE lines, # or ; comments, optional quotes. */
function parseEnvFile (text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line)
    if (m == null) throw new Error(`environment file line ${i + 1} is not KEY=VALUE: ${raw}`)
    env[m[1]] = m[2].replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1')
  }
  return env
}

interface Instruction { name: string, args: string }

/** A Containerfile as instructions, continuation lines joined, comments dropped. */
function parseContainerfile (text: string): Instruction[] {
  const out: Instruction[] = []
  const lines = text.split('\n').filter(l => !l.trim().startsWith('#'))
  for (const logical of lines.join('\n').replace(/\\\n/g, ' ').split('\n')) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(logical)
    if (m != null) out.push({ name: m[1].toUpperCase(), args: m[2].trim() })
  }
  return out
}

/** COPY/ENTRYPOINT arguments in exec (JSON) or shell form, without --flags. */
function words (args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[]
  return args.split(/\s+/).filter(w => !w.startsWith('--'))
}

/** A .dockerignore pattern as a regular expression over paths relative to the context. */
function ignorePattern (pattern: string): RegExp {
  const body = pattern.replace(/^\//, '').replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*\*\//g, '\u0000').replace(/\*\*/g, '.*').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\u0000/g, '(?:.*/)?')
  return new RegExp(`^${body}(?:/.*)?$`)
}

// ---- YAML -------------------------------------------------------------------------------------

function yamlFiles (dir: string): string[] {
  return readdirSync(join(DEPLOY, dir)).filter(f => /\.ya?ml$/.test(f)).map(f => `deploy/${dir}/${f}`)
}

/** Parses a YAML text strictly; fails the test with the file's first error. */
function parseYaml (text: string, where: string): any {
  const doc = parseDocument(text, { uniqueKeys: true })
  expect(doc.errors.map(e => e.message), `YAML errors in ${where}`).toEqual([])
  return doc.toJS()
}

/** Checks a configuration file against the agent's own schema and resolution. */
async function resolveShipped (text: string, label: string): Promise<ReturnType<typeof resolveConfig>> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-deploy-config-'))
  try {
    const file = join(dir, 'shoal.yaml')
    await writeFile(file, text)
    return resolveConfig({ config: file }, { env: {}, cwd: dir })
  } catch (err: any) {
    throw new Error(`${label} is not a valid configuration: ${err.message}`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

// ---- processes --------------------------------------------------------------------------------

interface Run { code: number | null, stdout: string, stderr: string }

async function run (command: string, args: string[], options: { env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<Run> {
  return await new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${command} ${args.join(' ')} did not finish in time`)) }, options.timeoutMs ?? 20_000)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address != null ? address.port : 0) })
    })
  })
}

/** The agent's status in `shoal status --json` output (alone, or as the dashboard's `status`). */
function statusOf (stdout: string): StatusResponse {
  const parsed = JSON.parse(stdout)
  return (parsed.status ?? parsed) as StatusResponse
}

function hasCommand (name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
}

// ---- systemd ----------------------------------------------------------------------------------

describe('systemd unit', () => {
  const unit = parseUnit(read('deploy/systemd/shoal.service'))

  it('runs the installed shoal agent with the example configuration and environment file, as the user shoal', () => {
    const argv = execStart(unit)
    expect(argv.slice(0, 3)).toEqual([`${INSTALL_DIR}/node_modules/.bin/node`, `${INSTALL_DIR}/packages/cli/bin/shoal.js`, 'agent'])
    expect(argv.slice(3)).toEqual(['--config', '/etc/shoal/shoal.yaml'])
    expect(value(unit, 'Service', 'EnvironmentFile')).toBe('/etc/shoal/shoal.env')
    // /etc/shoal/X is installed from deploy/systemd/X.
    for (const installed of [argv[4], value(unit, 'Service', 'EnvironmentFile') as string]) {
      expect(existsSync(join(DEPLOY, 'systemd', posix.basename(installed))), installed).toBe(true)
    }
    expect(value(unit, 'Service', 'User')).toBe('shoal')
    expect(value(unit, 'Service', 'Group')).toBe('shoal')
    // The sysusers file creates that user and group.
    const sysusers = read('deploy/systemd/shoal.sysusers').split('\n').filter(l => /^u\s/.test(l))
    expect(sysusers.map(l => l.split(/\s+/)[1])).toEqual(['shoal'])
  })

  it('stops with SIGTERM and gives the agent more time than its own stop bound', () => {
    expect(value(unit, 'Service', 'KillSignal')).toBe('SIGTERM')
    const timeout = timeSpanMs(value(unit, 'Service', 'TimeoutStopSec') ?? '90s')
    expect(timeout).toBeGreaterThan(AGENT_STOP_BOUND_MS)
    expect(timeout).toBeLessThanOrEqual(60_000)
    expect(value(unit, 'Service', 'Restart')).toBe('on-failure')
  })

  it('is hardened, without the options that would break Node.js', () => {
    const expected: Record<string, string> = {
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      CapabilityBoundingSet: '',
      StateDirectory: 'shoal',
      RuntimeDirectory: 'shoal'
    }
    for (const [key, v] of Object.entries(expected)) expect(value(unit, 'Service', key), key).toBe(v)
    expect(values(unit, 'Service', 'SystemCallFilter')).toContain('@system-service')
    const families = (value(unit, 'Service', 'RestrictAddressFamilies') ?? '').split(/\s+/)
    // AF_NETLINK: listening on 0.0.0.0 enumerates the interfaces through a netlink socket.
    expect(families.sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX'])
    // V8's JIT needs writable and executable memory: this option would crash the agent at start.
    expect(value(unit, 'Service', 'MemoryDenyWriteExecute') ?? 'no').toBe('no')
  })

  it('names only files that exist in this repository', () => {
    const text = read('deploy/systemd/shoal.service')
    const named = [...text.matchAll(/\/opt\/shoal\/[\w./-]+/g)].map(m => m[0])
    expect(named.length).toBeGreaterThan(2)
    for (const path of named) expect(existsSync(inRepo(path) as string), path).toBe(true)
    const wrapper = read('deploy/systemd/shoal.sh')
    for (const m of wrapper.matchAll(/\/opt\/shoal\/[\w./-]+/g)) expect(existsSync(inRepo(m[0]) as string), m[0]).toBe(true)
    expect(statSync(join(DEPLOY, 'systemd/shoal.sh')).mode & 0o111).not.toBe(0)
  })

  it('puts the example configuration\'s state, socket and datasets where the sandbox lets the agent write', async () => {
    const config = await resolveShipped(read('deploy/systemd/shoal.yaml'), 'deploy/systemd/shoal.yaml')
    const stateDir = `/var/lib/${value(unit, 'Service', 'StateDirectory') as string}`
    const runtimeDir = `/run/${value(unit, 'Service', 'RuntimeDirectory') as string}`
    expect(config.stateDir).toBe(stateDir)
    expect(posix.dirname(config.socketPath)).toBe(runtimeDir)
    expect(value(unit, 'Service', 'WorkingDirectory')).toBe(stateDir)
    const writable = values(unit, 'Service', 'ReadWritePaths').flatMap(v => v.split(/\s+/)).map(p => p.replace(/^-/, ''))
    expect(config.datasets.length).toBeGreaterThan(0)
    for (const d of config.datasets) expect(writable.some(w => isUnder(d.path, w)), `${d.path} under ReadWritePaths=`).toBe(true)
    expect(config.socketGroup).toBe(value(unit, 'Service', 'Group'))
    expect(config.metrics).toEqual({ host: '127.0.0.1', port: 9464 })
    // Secrets never sit in the repository: the join token is filled in on the node.
    const env = parseEnvFile(read('deploy/systemd/shoal.env'))
    expect(env.SHOAL_JOIN).toBe('')
    for (const name of Object.keys(env)) expect(name).toMatch(/^SHOAL_[A-Z_]+$/)
  })

  it.skipIf(!hasCommand('systemd-analyze'))('passes systemd-analyze verify, with an exposure level of at most 2.5', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-deploy-unit-'))
    try {
      const file = join(dir, 'shoal.service')
      await writeFile(file, read('deploy/systemd/shoal.service').replaceAll(INSTALL_DIR, REPO.replace(/\/$/, '')))
      const verify = await run('systemd-analyze', ['verify', '--man=no', file])
      expect(verify.stderr + verify.stdout).toBe('')
      expect(verify.code).toBe(0)
      const security = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', '--threshold=25', file])
      expect(security.code, security.stdout.split('\n').filter(l => l.includes('Overall')).join('')).toBe(0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

/**
 * The unit's ExecStart, run as systemd would run it: a fake root directory stands in for /
 * (/etc/shoal, /var/lib/shoal, /run/shoal, /data), the repository for /opt/shoal, the environment
 * is the environment file's plus what systemd sets, and when the test runs as root the process
 * runs as the user that the sysusers file creates. The node joins a running one with the token
 * that `shoal init` prints there, as deploy/README.md tells operators to do.
 */
describe('systemd unit, run', () => {
  const unit = parseUnit(read('deploy/systemd/shoal.service'))
  const cluster = new Cluster()
  let root = ''
  let seed: TestAgent
  let child: ChildProcess | undefined
  let exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }> | undefined
  let stderr = ''
  let uid = process.getuid?.() ?? 0
  let gid = process.getgid?.() ?? 0
  let metricsPort = 0
  const at = (path: string): string => inRepo(path) ?? join(root, path)

  beforeAll(async () => {
    await cluster.init()
    seed = await cluster.add({ name: 'seed' })
    root = await mkdtemp(join(tmpdir(), 'shoal-deploy-root-'))
    await chmod(root, 0o755)
    if (uid === 0) {
      // The user shoal as systemd-sysusers would create it, in the fake root only.
      await mkdir(join(root, 'etc'))
      const sysusers = hasCommand('systemd-sysusers')
        ? await run('systemd-sysusers', [`--root=${root}`, join(DEPLOY, 'systemd/shoal.sysusers')])
        : undefined
      const entry = sysusers?.code === 0 ? readFileSync(join(root, 'etc/passwd'), 'utf8').split('\n').find(l => l.startsWith('shoal:')) : undefined
      const [u, g] = entry == null ? [65534, 65534] : entry.split(':').slice(2, 4).map(Number)
      // The user must be able to read the installed tree (a checkout under a private home cannot).
      const probe = spawnSync(join(REPO, 'node_modules/.bin/node'), ['-e', 'require("fs").accessSync(process.argv[1], 4)', join(REPO, 'packages/cli/dist/main.js')], { uid: u, gid: g, stdio: 'ignore' })
      if (probe.status === 0) [uid, gid] = [u, g]
      else console.warn(`deploy test: uid ${u} cannot read ${REPO}; the agent runs as root instead`)
    }
    metricsPort = await freePort()
  })

  afterAll(async () => {
    if (child?.pid != null && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
    await cluster.cleanup()
    if (root !== '') await rm(root, { recursive: true, force: true })
  })

  it('joins the cluster with the token in the environment file, answers on its socket, and stops on SIGTERM with code 0', async () => {
    // On the running node: `shoal init` prints the join token (the state exists, so it is reused).
    const seedAddress = seed.address.replace(/\/p2p\/.*$/, '')
    const init = await runShoal(['init', '--state', seed.state, '--config', cluster.path('seed-init.yaml'), '--advertise', seedAddress, '--json'])
    expect(init.code, init.stderr).toBe(0)
    const { joinToken, bootstrap } = JSON.parse(init.stdout) as { joinToken: string, bootstrap: string[] }
    expect(bootstrap).toEqual([seed.address])

    // What the operator installs: /etc/shoal/shoal.env with the token filled in ...
    const envFile = at(value(unit, 'Service', 'EnvironmentFile') as string)
    await mkdir(dirname(envFile), { recursive: true })
    await writeFile(envFile, read('deploy/systemd/shoal.env').replace(/^SHOAL_JOIN=.*$/m, `SHOAL_JOIN=${joinToken}`), { mode: 0o600 })
    // ... /etc/shoal/shoal.yaml, with the fake root's paths and loopback addresses only
    // (nothing may be dialled beyond this machine), and the test user's group for the socket ...
    const config = parseYaml(read('deploy/systemd/shoal.yaml'), 'deploy/systemd/shoal.yaml')
    config.state = at(config.state)
    config.socket = at(config.socket)
    const socketPath = config.socket as string
    config.listen = ['/ip4/127.0.0.1/tcp/0']
    delete config.bootstrap
    config.metrics = `127.0.0.1:${metricsPort}`
    config['socket-group'] = String(gid)
    for (const d of Object.values(config.datasets) as Array<{ path: string }>) {
      d.path = at(d.path)
      await mkdir(d.path, { recursive: true })
      await chown(d.path, uid, gid)
    }
    expect(JSON.stringify(config), 'every path of the configuration is inside the fake root').not.toMatch(/"\/(etc|var|run|data)\//)
    const argv = execStart(unit)
    const configFile = at(argv[argv.indexOf('--config') + 1])
    await writeFile(configFile, stringify(config))
    // ... and what systemd creates: StateDirectory= and RuntimeDirectory=, owned by the user.
    const stateDir = at(`/var/lib/${value(unit, 'Service', 'StateDirectory') as string}`)
    const runtimeDir = at(`/run/${value(unit, 'Service', 'RuntimeDirectory') as string}`)
    for (const [dir, mode] of [[stateDir, 'StateDirectoryMode'], [runtimeDir, 'RuntimeDirectoryMode']]) {
      await mkdir(dir, { recursive: true })
      await chmod(dir, Number.parseInt(value(unit, 'Service', mode) ?? '0755', 8))
      await chown(dir, uid, gid)
    }

    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      LANG: 'C.UTF-8',
      HOME: stateDir,
      USER: 'shoal',
      LOGNAME: 'shoal',
      STATE_DIRECTORY: stateDir,
      RUNTIME_DIRECTORY: runtimeDir,
      ...parseEnvFile(await readFile(envFile, 'utf8'))
    }
    expect(env.SHOAL_JOIN).toBe(joinToken)
    const started = spawn(at(argv[0]), argv.slice(1).map(a => a.startsWith('/') ? at(a) : a), {
      cwd: at(value(unit, 'Service', 'WorkingDirectory') as string),
      env,
      uid,
      gid,
      stdio: ['ignore', 'ignore', 'pipe']
    })
    child = started
    started.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    exited = new Promise(resolve => started.on('exit', (code, signal) => { resolve({ code, signal }) }))
    let stopping = false
    const exitedEarly = new Promise<never>((_resolve, reject) => {
      void exited?.then(e => { if (!stopping) reject(new Error(`the agent exited with ${e.code ?? e.signal}: ${stderr}`)) })
    })
    exitedEarly.catch(() => {})

    // The probe every deployment uses: `shoal status --json` on the socket, through the node's
    // `shoal` wrapper, exits 0.
    const wrapper = join(root, 'usr/local/bin/shoal')
    await mkdir(dirname(wrapper), { recursive: true })
    await writeFile(wrapper, read('deploy/systemd/shoal.sh').replaceAll(INSTALL_DIR, REPO.replace(/\/$/, '')), { mode: 0o755 })
    const status = await Promise.race([exitedEarly, waitFor('the agent to answer `shoal status --json` on its socket', async () => {
      const probe = await run(wrapper, ['status', '--socket', socketPath, '--json'], { timeoutMs: 10_000 })
      return probe.code === 0 ? statusOf(probe.stdout) : undefined
    }, 20_000, 200)])
    expect(status.name).toBe(hostname())
    expect(status.datasets.map(d => [d.name, d.path]).sort()).toEqual(Object.entries(config.datasets).map(([n, d]: [string, any]) => [n, d.path]).sort())
    const socket = statSync(socketPath)
    expect(socket.mode & 0o777).toBe(0o660)
    expect(socket.gid).toBe(gid)
    expect(socket.uid).toBe(uid)

    // It joined: the cluster key is the token's, and the seed is a connected peer.
    expect((await readFile(join(stateDir, 'cluster.key'), 'utf8')).trim()).toBe((await readFile(seed.clusterKeyFile, 'utf8')).trim())
    await Promise.race([exitedEarly, waitFor('the node to connect to the seed', async () => {
      const probe = await run(wrapper, ['status', '--socket', socketPath, '--json'], { timeoutMs: 10_000 })
      return probe.code === 0 && statusOf(probe.stdout).peers.some(p => p.peerId === seed.peerId && p.connected)
    }, 20_000, 250)])
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
    expect(metrics.status).toBe(200)
    expect(await metrics.text()).toMatch(/^# HELP /m)

    // systemd's stop: SIGTERM, then SIGKILL after TimeoutStopSec=. The agent exits 0 well before.
    stopping = true
    const t0 = Date.now()
    started.kill('SIGTERM')
    const deadline = new Promise<'timeout'>(resolve => setTimeout(() => resolve('timeout'), AGENT_STOP_BOUND_MS).unref())
    const result = await Promise.race([exited, deadline])
    expect(result, `no exit within ${AGENT_STOP_BOUND_MS} ms of SIGTERM`).not.toBe('timeout')
    expect(result).toEqual({ code: 0, signal: null })
    expect(Date.now() - t0).toBeLessThan(AGENT_STOP_BOUND_MS)
    expect(existsSync(socketPath)).toBe(false)
    const unreachable = await run(wrapper, ['status', '--socket', socketPath, '--json'], { timeoutMs: 10_000 })
    expect(unreachable.code).toBe(3)
  })
})

// ---- YAML, Kubernetes, container ------------------------------------------------------------

describe('YAML files', () => {
  it('every YAML file under deploy/ parses, each document without errors or duplicate keys', () => {
    const files = [...yamlFiles('k8s'), ...yamlFiles('systemd'), ...yamlFiles('container')]
    expect(files.length).toBeGreaterThanOrEqual(6)
    for (const file of files) {
      const docs = parseAllDocuments(read(file), { uniqueKeys: true })
      for (const doc of Array.isArray(docs) ? docs : [docs]) {
        expect(doc.errors.map(e => e.message), file).toEqual([])
        expect(doc.toJS(), `${file} has an empty document`).not.toBeNull()
      }
    }
  })
})

describe('Kubernetes manifests', () => {
  const objects: any[] = yamlFiles('k8s').filter(f => !f.endsWith('kustomization.yaml'))
    .flatMap(f => parseAllDocuments(read(f)) as any[]).map(d => d.toJS())
  const ofKind = (kind: string): any[] => objects.filter(o => o?.kind === kind)
  const daemonSet = ofKind('DaemonSet')[0]
  const pod = daemonSet?.spec?.template?.spec
  const agent = pod?.containers?.find((c: any) => c.name === 'agent')
  const volume = (name: string): any => pod.volumes.find((v: any) => v.name === name)
  const mountOf = (container: any, path: string): any => container.volumeMounts
    .filter((m: any) => isUnder(path, m.mountPath)).sort((a: any, b: any) => b.mountPath.length - a.mountPath.length)[0]

  it('holds one Namespace, DaemonSet, ConfigMap and Secret, all in that namespace', () => {
    for (const kind of ['Namespace', 'DaemonSet', 'ConfigMap', 'Secret']) expect(ofKind(kind), kind).toHaveLength(1)
    const namespace = ofKind('Namespace')[0].metadata.name
    for (const o of objects.filter(o => o.kind !== 'Namespace')) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(namespace)
    // hostNetwork and hostPath are outside Pod Security's baseline level.
    expect(ofKind('Namespace')[0].metadata.labels['pod-security.kubernetes.io/enforce']).toBe('privileged')
    for (const o of objects) expect(o.apiVersion, o.kind).toBe(o.kind === 'DaemonSet' ? 'apps/v1' : 'v1')
  })

  it('the DaemonSet runs the agent on the host network, non-root, stopping within its grace period', () => {
    const labels = daemonSet.spec.template.metadata.labels
    for (const [k, v] of Object.entries(daemonSet.spec.selector.matchLabels)) expect(labels[k], k).toBe(v)
    expect(pod.hostNetwork).toBe(true)
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet')
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(AGENT_STOP_BOUND_MS)
    expect(pod.securityContext.runAsNonRoot).toBe(true)
    expect(agent.securityContext.runAsUser).toBeGreaterThan(0)
    expect(agent.securityContext.allowPrivilegeEscalation).toBe(false)
    expect(agent.securityContext.runAsNonRoot ?? pod.securityContext.runAsNonRoot).toBe(true)
    expect(agent.resources.requests.cpu).toBeDefined()
    expect(agent.resources.limits.memory).toBeDefined()
    // Only the init container runs as root, to hand host directories to the agent's user.
    for (const c of pod.initContainers ?? []) {
      expect(c.securityContext.allowPrivilegeEscalation).toBe(false)
      expect(c.securityContext.capabilities.drop).toEqual(['ALL'])
    }
  })

  it('every volume mount names a declared volume, and each ConfigMap, Secret and key it uses exists', () => {
    const names = new Set(pod.volumes.map((v: any) => v.name))
    expect(names.size).toBe(pod.volumes.length)
    for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
      for (const m of c.volumeMounts) expect(names.has(m.name), `${c.name} mounts ${m.name}`).toBe(true)
    }
    for (const v of pod.volumes) {
      if (v.configMap != null) {
        const cm = ofKind('ConfigMap').find(o => o.metadata.name === v.configMap.name)
        expect(cm, `ConfigMap ${v.configMap.name}`).toBeDefined()
        for (const item of v.configMap.items ?? []) expect(Object.keys(cm.data), `ConfigMap key ${item.key}`).toContain(item.key)
      }
      if (v.secret != null) {
        const secret = ofKind('Secret').find(o => o.metadata.name === v.secret.secretName)
        expect(secret, `Secret ${v.secret.secretName}`).toBeDefined()
        for (const item of v.secret.items ?? []) expect(Object.keys({ ...secret.data, ...secret.stringData }), `Secret key ${item.key}`).toContain(item.key)
      }
    }
  })

  it('the ConfigMap\'s configuration is valid and every path in it is on the right volume', async () => {
    const args: string[] = agent.args ?? []
    const configPath = args[args.indexOf('--config') + 1]
    expect(args).toContain('--config')
    const configMount = mountOf(agent, configPath)
    const configVolume = volume(configMount.name).configMap
    const key = configVolume.items.find((i: any) => posix.join(configMount.mountPath, i.path) === configPath).key
    const cm = ofKind('ConfigMap').find(o => o.metadata.name === configVolume.name)
    const config = await resolveShipped(cm.data[key], `ConfigMap ${configVolume.name} key ${key}`)

    const hostPathOf = (path: string): string | undefined => volume(mountOf(agent, path)?.name ?? '')?.hostPath?.path
    expect(hostPathOf(config.stateDir), 'state on a host path').toBeDefined()
    expect(hostPathOf(config.socketPath), 'socket on a host path, for jobs on the node').toBeDefined()
    for (const d of config.datasets) expect(hostPathOf(d.path), `dataset ${d.name} on a host path`).toBeDefined()
    // The cluster key is the Secret's file.
    const keyMount = mountOf(agent, config.clusterKeyFile as string)
    const secretVolume = volume(keyMount.name).secret
    expect(secretVolume.items.map((i: any) => posix.join(keyMount.mountPath, i.path))).toContain(config.clusterKeyFile)
    // The init container creates every directory the agent needs on the host.
    const init = pod.initContainers.find((c: any) => c.name === 'host-dirs')
    const script = init.command.join(' ')
    for (const dir of [config.stateDir, dirname(config.socketPath), ...config.datasets.map(d => d.path)]) {
      expect(script, `init container creates ${dir}`).toContain(dir)
      expect(mountOf(init, dir)?.name, `init container mounts ${dir}`).toBe(mountOf(agent, dir).name)
    }
    // The socket belongs to the agent's group, and the agent runs as the image's user.
    expect(config.socketGroup).toBe(String(agent.securityContext.runAsGroup ?? pod.securityContext.runAsGroup))
    const user = parseContainerfile(read('deploy/container/Containerfile')).filter(i => i.name === 'USER').at(-1)?.args
    expect(user).toBe(`${agent.securityContext.runAsUser as number}:${agent.securityContext.runAsGroup as number}`)
  })

  it('probes ask the agent over its socket with `shoal status --json`, through a script in this repository', async () => {
    const cm = ofKind('ConfigMap')[0]
    const config = await resolveShipped(cm.data['shoal.yaml'], 'the ConfigMap')
    for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const command: string[] = agent[kind]?.exec?.command
      expect(command, kind).toBeDefined()
      expect(command[0]).toBe('node')
      expect(existsSync(inRepo(command[1]) ?? '/nonexistent'), `${kind}: ${command[1]}`).toBe(true)
      expect(command.slice(2)).toEqual(['status', '--socket', config.socketPath, '--json'])
      expect(agent[kind].timeoutSeconds, kind).toBeGreaterThanOrEqual(5)
    }
  })

  it('the kustomization lists existing files and the image the DaemonSet uses', () => {
    const k = parseYaml(read('deploy/k8s/kustomization.yaml'), 'kustomization.yaml')
    for (const r of k.resources) expect(existsSync(join(DEPLOY, 'k8s', r)), r).toBe(true)
    const images = [...pod.containers, ...pod.initContainers].map((c: any) => c.image.replace(/:[^:/]+$/, ''))
    for (const image of images) expect(k.images.map((i: any) => i.name)).toContain(image)
  })

  it.skipIf(!hasCommand('kubectl'))('kubectl kustomize builds the manifests', async () => {
    const built = await run('kubectl', ['kustomize', join(DEPLOY, 'k8s')], { timeoutMs: 20_000 })
    expect(built.code, built.stderr).toBe(0)
    const kinds = parseAllDocuments(built.stdout).map((d: any) => d.toJS().kind)
    expect(kinds.sort()).toEqual(['ConfigMap', 'DaemonSet', 'Namespace'])
  })
})

describe('Containerfile', () => {
  const steps = parseContainerfile(read('deploy/container/Containerfile'))
  const of = (name: string): Instruction[] => steps.filter(s => s.name === name)
  const ignored = read('deploy/container/Containerfile.dockerignore').split('\n').map(l => l.trim())
    .filter(l => l !== '' && !l.startsWith('#')).map(ignorePattern)

  it('builds on a slim Node 24 image', () => {
    const arg = of('ARG').map(a => /^NODE_IMAGE=(.*)$/.exec(a.args)?.[1]).find(v => v != null)
    const froms = of('FROM').map(f => f.args.split(/\s+/)[0].replace('${NODE_IMAGE}', arg ?? ''))
    expect(froms.length).toBeGreaterThan(0)
    for (const base of froms) expect(base).toMatch(/^node:24(\.[\d.]+)?-(slim|bookworm-slim|trixie-slim)$/)
  })

  it('copies only what exists in the repository and is not ignored, including every workspace', () => {
    const sources = of('COPY').filter(c => !c.args.includes('--from=')).flatMap(c => words(c.args).slice(0, -1))
    expect(sources.length).toBeGreaterThan(0)
    for (const source of sources) {
      expect(existsSync(join(REPO, source)), source).toBe(true)
      expect(ignored.some(p => p.test(source.replace(/\/$/, ''))), `${source} is excluded by the ignore file`).toBe(false)
    }
    const workspaces = (JSON.parse(read('package.json')) as { workspaces: string[] }).workspaces
    for (const ws of workspaces) expect(sources.some(s => isUnder(ws, s.replace(/\/$/, ''))), ws).toBe(true)
    // A developer's build outputs and modules stay out of the context.
    for (const path of ['node_modules', 'packages/cli/node_modules', 'packages/cli/dist']) expect(ignored.some(p => p.test(path)), path).toBe(true)
  })

  it('runs the agent as a non-root user, with the state as a volume and its socket as the health check', async () => {
    const entrypoint = JSON.parse(of('ENTRYPOINT').at(-1)?.args ?? '[]') as string[]
    expect(entrypoint[0]).toBe('node')
    expect(existsSync(inRepo(entrypoint[1]) ?? '/nonexistent'), entrypoint[1]).toBe(true)
    expect(entrypoint.slice(2)).toEqual(['agent'])
    const user = of('USER').at(-1)?.args ?? 'root'
    expect(user.split(':')[0]).not.toMatch(/^(0|root)$/)

    // The image's configuration is the one SHOAL_CONFIG names.
    const copy = of('COPY').map(c => words(c.args)).find(w => w[0] === 'deploy/container/shoal.yaml') as string[]
    expect(of('ENV').map(e => e.args)).toContain(`SHOAL_CONFIG=${copy[1]}`)
    const config = await resolveShipped(read('deploy/container/shoal.yaml'), 'deploy/container/shoal.yaml')
    expect(words(of('VOLUME').at(-1)?.args ?? '[]')).toContain(config.stateDir)
    const health = of('HEALTHCHECK').at(-1)?.args ?? ''
    expect(health).toContain(`${entrypoint[1]} status --socket ${config.socketPath} --json`)
  })
})

describe('deploy/README.md', () => {
  it('mentions only files that exist', () => {
    const text = read('deploy/README.md')
    const mentioned = new Set([...text.matchAll(/(?<![\w/])deploy\/[\w./-]*[\w]/g)].map(m => m[0]))
    expect(mentioned.size).toBeGreaterThan(5)
    for (const path of mentioned) expect(existsSync(join(REPO, path)), path).toBe(true)
    for (const m of text.matchAll(/\/opt\/shoal\/(?:packages|deploy)\/[\w./-]*\w/g)) expect(existsSync(inRepo(m[0]) as string), m[0]).toBe(true)
  })
})
