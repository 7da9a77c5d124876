import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { AgentApiError, AgentUnreachableError, ShoalClient } from '@shoal/client'
import { DEFAULT_STATE_DIR, SOCKET_NAME } from '@shoal/agent'
import { EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE } from '../exit-codes.js'
import { table } from '../format.js'
import { gatherDashboard, renderDashboard } from './dashboard.js'

interface QueryFlags {
  socket?: string
  json?: boolean
}

/** Where the agent's socket is: --socket, then SHOAL_SOCKET, then ./.shoal/agent.sock, then the system one. */
export function defaultSocket (): string {
  if (process.env.SHOAL_SOCKET != null && process.env.SHOAL_SOCKET !== '') return resolve(process.env.SHOAL_SOCKET)
  const local = resolve(DEFAULT_STATE_DIR, SOCKET_NAME)
  if (!existsSync(local) && existsSync(SYSTEM_SOCKET)) return SYSTEM_SOCKET
  return local
}

/** The socket a systemd or Kubernetes deployment uses (deploy/). */
const SYSTEM_SOCKET = '/run/shoal/agent.sock'

export function clientFor (flags: QueryFlags): ShoalClient {
  return new ShoalClient(flags.socket != null ? resolve(flags.socket) : defaultSocket())
}

export async function run (what: () => Promise<void>): Promise<number> {
  try {
    await what()
    return EXIT_OK
  } catch (err: any) {
    process.stderr.write(`shoal: ${err.message}\n`)
    if (err instanceof AgentUnreachableError) return EXIT_UNREACHABLE
    if (err instanceof AgentApiError && err.status === 400) return EXIT_USAGE
    return EXIT_FAILED
  }
}

export async function runStatus (flags: QueryFlags): Promise<number> {
  return await run(async () => {
    const dashboard = await gatherDashboard(clientFor(flags))
    if (flags.json === true) process.stdout.write(JSON.stringify(dashboard, null, 2) + '\n')
    else process.stdout.write(renderDashboard(dashboard))
  })
}

export async function runWhere (file: string, flags: QueryFlags): Promise<number> {
  const slash = file.indexOf('/')
  if (slash <= 0 || slash === file.length - 1) {
    process.stderr.write(`shoal where: expected DATASET/PATH, e.g. default/weights.bin, not ${JSON.stringify(file)}\n`)
    return EXIT_USAGE
  }
  return await run(async () => {
    const where = await clientFor(flags).where(file.slice(0, slash), file.slice(slash + 1))
    if (flags.json === true) {
      process.stdout.write(JSON.stringify(where, null, 2) + '\n')
      return
    }
    if (where.holders.length === 0) {
      process.stdout.write(`${file}: ${where.deleted ? 'deleted' : 'no node holds it'}\n`)
      return
    }
    process.stdout.write(table([['PEER', 'NAME', 'COMPLETE', 'VERSION', 'SIZE'],
      ...where.holders.map(h => [h.peerId + (h.self ? ' (this node)' : ''), h.name || '-', h.complete ? 'yes' : 'no', String(h.version), String(h.size)])]))
  })
}

export async function runLs (target: string, flags: QueryFlags & { limit?: number, after?: string }): Promise<number> {
  const slash = target.indexOf('/')
  const dataset = slash < 0 ? target : target.slice(0, slash)
  const prefix = slash < 0 ? '' : target.slice(slash + 1)
  if (dataset === '') {
    process.stderr.write(`shoal ls: expected DATASET or DATASET/PREFIX, not ${JSON.stringify(target)}\n`)
    return EXIT_USAGE
  }
  return await run(async () => {
    const files = await clientFor(flags).files(dataset, { prefix, limit: flags.limit, after: flags.after })
    if (flags.json === true) {
      process.stdout.write(JSON.stringify(files, null, 2) + '\n')
      return
    }
    if (files.files.length === 0) {
      process.stdout.write(`no files under ${target}\n`)
      return
    }
    process.stdout.write(table([['PATH', 'VERSION', 'SIZE', 'REPLICAS', 'STATE'],
      ...files.files.map(f => [f.path, String(f.version), String(f.size), String(f.replicas), f.deleted ? 'deleted' : 'live'])]))
    if (files.next != null) process.stdout.write(`(more: --after ${JSON.stringify(files.next)})\n`)
  })
}
