/**
 * The floor under `where` latency on this machine: a Node HTTP server on a Unix socket that
 * answers every request with the same body (a real `where` answer), in a process of its own.
 * scale.ts runs where-client.ts against it as it does against the agent.
 *
 *   node test/bench/floor-server.ts --socket PATH --body FILE
 *
 * Prints "listening" on stdout once it accepts connections; ends on SIGTERM.
 */
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { socket: { type: 'string' }, body: { type: 'string' } } })
if (values.socket == null || values.body == null) throw new Error('--socket PATH and --body FILE are required')
const body = readFileSync(values.body)
const server = createServer((req, res) => {
  // Parse the query as the agent's API does, so the floor includes that much.
  const url = new URL(req.url ?? '/', 'http://shoal')
  if (url.searchParams.get('path') == null) {
    res.writeHead(400).end()
    return
  }
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length })
  res.end(body)
})
server.listen(values.socket, () => { process.stdout.write('listening\n') })
process.on('SIGTERM', () => { server.close(); server.closeAllConnections() })
