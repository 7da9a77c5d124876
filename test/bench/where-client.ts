/**
 * An application asking its local agent `where` files are, in a process of its own (scale.ts
 * runs it): sequential queries of seeded random paths, through ShoalClient or raw keep-alive HTTP.
 *
 *   node test/bench/where-client.ts --socket PATH --files F --queries Q --warmup W --seed S --via client|raw
 *
 * Prints one JSON object: { via, holders, ms: latency figures, clientGc: this process's collections while it asked }.
 */
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { ShoalClient } from '@shoal/client'
import { DATASET, latencyFigures, queryLatencies, rawWhere } from './where-queries.ts'

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    files: { type: 'string' },
    queries: { type: 'string' },
    warmup: { type: 'string' },
    seed: { type: 'string' },
    via: { type: 'string' }
  }
})

function count (name: string, text: string | undefined): number {
  const n = Number(text)
  if (text == null || !Number.isSafeInteger(n) || n < 0) throw new Error(`--${name}: expected a non-negative integer, got ${String(text)}`)
  return n
}

const socket = values.socket
if (socket == null || socket === '') throw new Error('--socket: the agent\'s socket path is required')
const via = values.via ?? 'client'
if (via !== 'client' && via !== 'raw') throw new Error(`--via: client or raw, not ${via}`)
const files = count('files', values.files)
const queries = count('queries', values.queries)
const warmup = count('warmup', values.warmup)
const seed = count('seed', values.seed)

let ask: (path: string) => Promise<number>
let close = (): void => {}
if (via === 'client') {
  const client = new ShoalClient(socket)
  ask = async (p) => (await client.where(DATASET, p)).holders.length
  close = () => { void client.close() }
} else {
  ({ ask, close } = rawWhere(socket))
}
// This process's garbage collections while it asks (a pause here is a slow answer too).
const gc = { minor: 0, minorMaxMs: 0, major: 0, majorMaxMs: 0 }
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gc.minor++
      gc.minorMaxMs = Math.max(gc.minorMaxMs, Number(entry.duration.toFixed(2)))
    } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      gc.major++
      gc.majorMaxMs = Math.max(gc.majorMaxMs, Number(entry.duration.toFixed(2)))
    }
  }
})
observer.observe({ entryTypes: ['gc'] })
const { latencies, holders } = await queryLatencies(ask, files, queries, warmup, seed)
observer.disconnect()
close()
process.stdout.write(JSON.stringify({ via, holders, ms: latencyFigures(latencies), clientGc: gc }) + '\n', () => process.exit(0))
