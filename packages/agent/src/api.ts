import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { chmod, chown } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { checkDatasetName, checkPeerIdText, checkRelativePath, InvalidMessageError } from '@shoal/wire'
import { MAX_API_BODY_BYTES } from './constants.js'
import type {
  BroadcastProgress, StatusResponse, PeersResponse, DatasetsResponse, RescanResponse, PullResponse, WhereResponse, TransfersResponse, ApiErrorBody, FilesResponse, LackingResponse, ReplicasResponse, ConflictsResponse
} from '@shoal/client'
import type { EventHub } from './events.js'

/** What the API asks of the agent; the agent implements it. */
export interface ApiBackend {
  events: EventHub
  status: () => StatusResponse
  where: (dataset: string, path: string) => WhereResponse
  transfers: () => TransfersResponse
  files: (dataset: string, prefix: string, limit: number, after?: string) => FilesResponse
  lacking: (peerId: string, dataset: string, limit: number, after?: string) => LackingResponse
  replicas: (below: number, limit: number) => ReplicasResponse
  conflicts: (limit: number) => ConflictsResponse
  /** Only with the test fault switch on. */
  forceLoad?: (level: 'ok' | 'busy' | 'overloaded' | undefined) => void
  broadcast: (request: { dataset: string, path: string, priority: Priority, nodes: string[], timeoutMs: number, force?: boolean }) => Promise<BroadcastProgress>
  broadcastProgress: (id: string) => BroadcastProgress | undefined
  peers: () => PeersResponse
  datasets: () => DatasetsResponse
  rescan: (dataset?: string) => Promise<RescanResponse>
  pull: (request: { dataset: string, path: string, priority: Priority }) => PullResponse
}

type Priority = 'critical' | 'high' | 'normal' | 'low' | 'background'
const PRIORITY_VALUES = ['critical', 'high', 'normal', 'low', 'background']

/** Reads a JSON body of at most MAX_API_BODY_BYTES. */
async function readJson (req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? ''
  if (!type.startsWith('application/json')) throw new ApiError(415, 'unsupported_media_type', 'send the body as application/json')
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_API_BODY_BYTES) throw new ApiError(413, 'body_too_large', `body larger than ${MAX_API_BODY_BYTES} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_API_BODY_BYTES) throw new ApiError(413, 'body_too_large', `body larger than ${MAX_API_BODY_BYTES} bytes`)
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new ApiError(400, 'invalid_json', 'the body is not valid JSON')
  }
}

function objectBody (body: unknown, known: string[]): Record<string, unknown> {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'invalid_argument', 'expected a JSON object')
  for (const key of Object.keys(body)) if (!known.includes(key)) throw new ApiError(400, 'invalid_argument', `unknown field ${key}`)
  return body as Record<string, unknown>
}

function parseRescan (body: unknown): string | undefined {
  const b = objectBody(body, ['dataset'])
  if (b.dataset === undefined) return undefined
  if (typeof b.dataset !== 'string') throw new ApiError(400, 'invalid_argument', 'dataset: expected a string')
  invalidAsBadRequest(() => { checkDatasetName(b.dataset as string, 'dataset') })
  return b.dataset
}

function parsePull (body: unknown): { dataset: string, path: string, priority: Priority } {
  const b = objectBody(body, ['dataset', 'path', 'priority'])
  if (typeof b.dataset !== 'string' || typeof b.path !== 'string') throw new ApiError(400, 'invalid_argument', 'dataset and path: expected strings')
  invalidAsBadRequest(() => { checkDatasetName(b.dataset as string, 'dataset'); checkRelativePath(b.path as string, 'path') })
  const priority = b.priority ?? 'high'
  if (typeof priority !== 'string' || !PRIORITY_VALUES.includes(priority)) throw new ApiError(400, 'invalid_argument', `priority: one of ${PRIORITY_VALUES.join(', ')}`)
  return { dataset: b.dataset, path: b.path, priority: priority as Priority }
}

function parseBroadcast (body: unknown): { dataset: string, path: string, priority: Priority, nodes: string[], timeoutMs: number, force?: boolean } {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'invalid_argument', 'expected a JSON object')
  const b = body as Record<string, unknown>
  const known = new Set(['dataset', 'path', 'priority', 'nodes', 'timeoutMs', 'force'])
  for (const key of Object.keys(b)) if (!known.has(key)) throw new ApiError(400, 'invalid_argument', `unknown field ${key}`)
  if (typeof b.dataset !== 'string') throw new ApiError(400, 'invalid_argument', 'dataset: expected a string')
  if (typeof b.path !== 'string') throw new ApiError(400, 'invalid_argument', 'path: expected a string')
  invalidAsBadRequest(() => { checkDatasetName(b.dataset as string, 'dataset'); checkRelativePath(b.path as string, 'path') })
  const priority = b.priority ?? 'high'
  if (typeof priority !== 'string' || !PRIORITY_VALUES.includes(priority)) throw new ApiError(400, 'invalid_argument', `priority: one of ${PRIORITY_VALUES.join(', ')}`)
  const nodes = b.nodes ?? []
  if (!Array.isArray(nodes) || nodes.length > 10_000 || !nodes.every(n => typeof n === 'string' && n.length > 0 && n.length <= 200)) {
    throw new ApiError(400, 'invalid_argument', 'nodes: expected a list of peer ids, names or role:NAME')
  }
  const timeoutMs = b.timeoutMs ?? 0
  if (typeof timeoutMs !== 'number' || !Number.isSafeInteger(timeoutMs) || timeoutMs < 0) throw new ApiError(400, 'invalid_argument', 'timeoutMs: expected milliseconds')
  if (b.force !== undefined && typeof b.force !== 'boolean') throw new ApiError(400, 'invalid_argument', 'force: expected a boolean')
  return { dataset: b.dataset, path: b.path, priority: priority as Priority, nodes: nodes as string[], timeoutMs, force: b.force as boolean | undefined }
}

const DEFAULT_LIMIT = 1000
const MAX_LIMIT = 10_000

/** Reads and checks the query parameters every listing shares. */
class Params {
  constructor (private readonly q: URLSearchParams) {}

  dataset (): string {
    const dataset = this.q.get('dataset') ?? ''
    return invalidAsBadRequest(() => { checkDatasetName(dataset, 'dataset'); return dataset })
  }

  path (name: string, optional = false): string | undefined {
    const value = this.q.get(name)
    if (value == null || value === '') {
      if (optional) return undefined
      throw new ApiError(400, 'invalid_argument', `${name}: missing`)
    }
    return invalidAsBadRequest(() => { checkRelativePath(value, name); return value })
  }

  /** A path prefix: a path, optionally ending in '/'. */
  prefix (): string {
    const value = this.q.get('prefix') ?? ''
    if (value === '') return ''
    const trimmed = value.endsWith('/') ? value.slice(0, -1) : value
    invalidAsBadRequest(() => { checkRelativePath(trimmed, 'prefix') })
    return value
  }

  int (name: string, fallback: number | undefined, min: number, max: number): number {
    const raw = this.q.get(name)
    if (raw == null || raw === '') {
      if (fallback == null) throw new ApiError(400, 'invalid_argument', `${name}: missing`)
      return fallback
    }
    const n = Number(raw)
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new ApiError(400, 'invalid_argument', `${name}: expected an integer in [${min}, ${max}]`)
    return n
  }

  limit (): number {
    return this.int('limit', DEFAULT_LIMIT, 1, MAX_LIMIT)
  }

  peer (): string {
    const value = this.q.get('peer') ?? ''
    return invalidAsBadRequest(() => { checkPeerIdText(value, 'peer'); return value })
  }
}

function invalidAsBadRequest<T> (fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    if (err instanceof InvalidMessageError) throw new ApiError(400, 'invalid_argument', err.message)
    throw err
  }
}

export class ApiError extends Error {
  override name = 'ApiError'
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

const REQUEST_TIMEOUT_MS = 10_000
/** An event stream whose client reads slower than this much backlog is closed. */
const MAX_EVENT_BACKLOG_BYTES = 1024 * 1024
const MAX_URL_LENGTH = 8192

/** A group's id by name or number (from /etc/group). */
function groupId (group: string): number | undefined {
  if (/^\d+$/.test(group)) return Number(group)
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [name, , gid] = line.split(':')
      if (name === group) return Number(gid)
    }
  } catch {}
  return undefined
}

/** HTTP/1.1 with JSON on a Unix socket: the agent's local API, versioned under /v1. */
export class ApiServer {
  private readonly server: Server

  constructor (private readonly backend: ApiBackend) {
    this.server = createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.route(req, res)
    })
    this.server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
      else socket.destroy()
    })
  }

  async listen (path: string, group?: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(path, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    await chmod(path, 0o660)
    if (group != null) {
      const gid = groupId(group)
      if (gid == null) throw new ApiError(500, 'config', `socket-group ${JSON.stringify(group)}: no such group`)
      await chown(path, process.getuid?.() ?? -1, gid)
    }
  }

  async close (): Promise<void> {
    await new Promise<void>(resolve => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }

  private streamEvents (req: IncomingMessage, res: ServerResponse): void {
    streamEventsTo(this.backend.events, req, res)
  }

  /** When the last request arrived (performance.now()); -Infinity before the first. */
  lastRequestAt = -Infinity
  /** Requests received since start. */
  requests = 0

  private route (req: IncomingMessage, res: ServerResponse): void {
    this.lastRequestAt = performance.now()
    this.requests++
    try {
      if ((req.url ?? '').length > MAX_URL_LENGTH) throw new ApiError(414, 'uri_too_long', 'request URL too long')
      const url = new URL(req.url ?? '/', 'http://shoal')
      if (url.pathname === '/v1/debug/load' && this.backend.forceLoad != null && req.method === 'PUT') {
        const level = url.searchParams.get('level') ?? ''
        if (!['ok', 'busy', 'overloaded', 'auto'].includes(level)) throw new ApiError(400, 'invalid_argument', 'level: ok, busy, overloaded or auto')
        this.backend.forceLoad(level === 'auto' ? undefined : level as 'ok' | 'busy' | 'overloaded')
        return send(res, 200, { level })
      }
      if (url.pathname === '/v1/rescan' || url.pathname === '/v1/pull') {
        if (req.method !== 'POST') throw new ApiError(405, 'method_not_allowed', `use POST ${url.pathname}`)
        void readJson(req)
          .then(async body => url.pathname === '/v1/rescan' ? await this.backend.rescan(parseRescan(body)) : this.backend.pull(parsePull(body)))
          .then(result => { send(res, url.pathname === '/v1/rescan' ? 200 : 202, result) }, (err) => { sendError(res, err) })
        return
      }
      if (url.pathname === '/v1/broadcast') {
        if (req.method !== 'POST') throw new ApiError(405, 'method_not_allowed', 'use POST /v1/broadcast')
        void readJson(req)
          .then(async body => await this.backend.broadcast(parseBroadcast(body)))
          .then(progress => { send(res, 202, progress) }, (err) => { sendError(res, err) })
        return
      }
      if (req.method !== 'GET') throw new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on ${url.pathname}`)
      if (url.pathname.startsWith('/v1/broadcasts/')) {
        const progress = this.backend.broadcastProgress(decodeURIComponent(url.pathname.slice('/v1/broadcasts/'.length)))
        if (progress == null) throw new ApiError(404, 'not_found', 'no broadcast with this id was issued by this node')
        return send(res, 200, progress)
      }
      switch (url.pathname) {
        case '/v1/status':
          return send(res, 200, this.backend.status())
        case '/v1/where': {
          const p = new Params(url.searchParams)
          return send(res, 200, this.backend.where(p.dataset(), p.path('path') as string))
        }
        case '/v1/files': {
          const p = new Params(url.searchParams)
          return send(res, 200, this.backend.files(p.dataset(), p.prefix(), p.limit(), p.path('after', true)))
        }
        case '/v1/lacking': {
          const p = new Params(url.searchParams)
          return send(res, 200, this.backend.lacking(p.peer(), p.dataset(), p.limit(), p.path('after', true)))
        }
        case '/v1/replicas': {
          const p = new Params(url.searchParams)
          return send(res, 200, this.backend.replicas(p.int('below', undefined, 1, 1_000_000), p.limit()))
        }
        case '/v1/conflicts': {
          const p = new Params(url.searchParams)
          return send(res, 200, this.backend.conflicts(p.limit()))
        }
        case '/v1/transfers':
          return send(res, 200, this.backend.transfers())
        case '/v1/peers':
          return send(res, 200, this.backend.peers())
        case '/v1/datasets':
          return send(res, 200, this.backend.datasets())
        case '/v1/events':
          return this.streamEvents(req, res)
        default:
          throw new ApiError(404, 'not_found', `no endpoint ${url.pathname}`)
      }
    } catch (err: any) {
      sendError(res, err)
    }
  }
}

/** NDJSON, one event per line, until the client goes away or falls too far behind. */
function streamEventsTo (hub: EventHub, req: IncomingMessage, res: ServerResponse): void {
  req.socket.setTimeout(0)
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
  res.flushHeaders()
  const unsubscribe = hub.subscribe((event) => {
    if (res.writableLength > MAX_EVENT_BACKLOG_BYTES) {
      unsubscribe()
      res.destroy()
      return
    }
    res.write(JSON.stringify(event) + '\n')
  })
  res.on('close', unsubscribe)
}

function sendError (res: ServerResponse, err: any): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  if (err instanceof ApiError) send(res, err.status, { error: { code: err.code, message: err.message } })
  else send(res, 500, { error: { code: 'internal', message: String(err?.message ?? err) } })
}

function send (res: ServerResponse, status: number, body: unknown | ApiErrorBody): void {
  // As a Buffer (small ones come from Node's pool, outside V8's heap): a string body is joined
  // to the header string before the write, a copy of the whole answer in the young generation.
  const bytes = Buffer.from(JSON.stringify(body))
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length })
  res.end(bytes)
}
