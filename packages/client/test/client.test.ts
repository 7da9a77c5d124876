import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AgentApiError, AgentUnreachableError, ShoalClient } from '../src/index.js'

/** ShoalClient against small servers on real Unix sockets, each standing in for one way an agent behaves. */
describe('ShoalClient', () => {
  let dir: string
  const servers: Array<HttpServer | NetServer> = []
  const clients: ShoalClient[] = []
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'shoal-client-')) })
  afterEach(async () => {
    await Promise.all(clients.splice(0).map(async c => await c.close()))
    for (const s of servers.splice(0)) {
      if ('closeAllConnections' in s) s.closeAllConnections()
      await new Promise(resolve => s.close(resolve))
    }
    await rm(dir, { recursive: true, force: true })
  })

  async function listen<T extends HttpServer | NetServer> (server: T, name: string): Promise<string> {
    const path = join(dir, name)
    servers.push(server)
    await new Promise<void>(resolve => server.listen(path, resolve))
    return path
  }

  function client (socket: string, timeoutMs?: number): ShoalClient {
    const c = new ShoalClient(socket, { timeoutMs })
    clients.push(c)
    return c
  }

  it('does not hold a quick request behind a slow one on the same socket', async () => {
    let release = (): void => {}
    const socket = await listen(createHttpServer((req, res) => {
      const answer = (): void => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ path: req.url })) }
      if (req.url === '/slow') release = answer
      else answer()
    }), 'agent.sock')
    const c = client(socket)
    const slow = c.get<{ path: string }>('/slow')
    // The quick one answers while the slow one is still waiting for its answer.
    expect(await c.get<{ path: string }>('/fast')).toEqual({ path: '/fast' })
    release()
    expect(await slow).toEqual({ path: '/slow' })
  })

  it('sends a GET once more when its connection is dropped before the answer (a kept-alive connection the agent closed); a POST is not repeated', async () => {
    // Every second request is dropped with its connection, unanswered: what a request meets on a
    // kept-alive connection that the agent closed (idle or restarting) just as it went out.
    const requests: string[] = []
    const socket = await listen(createNetServer((conn: Socket) => {
      conn.on('data', (data) => {
        requests.push(data.toString().split('\r\n')[0])
        if (requests.length % 2 === 0) { conn.destroy(); return }
        const body = JSON.stringify({ ok: true })
        conn.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n${body}`)
      })
    }), 'dropping.sock')
    const c = client(socket)
    expect(await c.get('/v1/status')).toEqual({ ok: true })
    // The 2nd request is dropped; the GET goes again and the 3rd is answered.
    expect(await c.get('/v1/status')).toEqual({ ok: true })
    expect(requests).toEqual(['GET /v1/status HTTP/1.1', 'GET /v1/status HTTP/1.1', 'GET /v1/status HTTP/1.1'])
    // The 4th, a POST, is dropped: reported as unreachable, not sent again.
    await expect(c.send('POST', '/v1/rescan', {})).rejects.toBeInstanceOf(AgentUnreachableError)
    expect(requests.slice(3)).toEqual(['POST /v1/rescan HTTP/1.1'])
  })

  it('reports an agent that is not there, one that does not answer in time, one that answers with an error, and an answer that is not JSON', async () => {
    await expect(client(join(dir, 'nobody.sock')).status()).rejects.toThrow(/cannot reach the agent on .*nobody\.sock \(ENOENT\)/)

    const silent = await listen(createHttpServer(() => {}), 'silent.sock')
    await expect(client(silent, 300).status()).rejects.toThrow(/did not answer within 300 ms/)

    const failing = await listen(createHttpServer((req, res) => {
      res.statusCode = 404
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ error: { code: 'not_found', message: 'no such dataset' } }))
    }), 'failing.sock')
    const err = await client(failing).where('nope', 'x').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentApiError)
    expect(err).toMatchObject({ status: 404, code: 'not_found', message: 'no such dataset' })

    const garbled = await listen(createHttpServer((req, res) => { res.end('<html>not the agent</html>') }), 'garbled.sock')
    await expect(client(garbled).status()).rejects.toMatchObject({ name: 'AgentApiError', code: 'bad_response' })
  })
})
