/**
 * An application asking its local agent `where` files are, in a process of its own (scale.ts
 * runs it): sequential queries of seeded random paths, through ShoalClient or raw keep-alive HTTP.
 * After `--warmup` unmeasured queries it asks `--passes` passes of `--queries` each, one after the
 * other: the first pass shows a fresh process (V8 still compiling the hot code, on background
 * threads that compete with both processes for the cores), the last one the steady state.
 *
 *   node test/bench/where-client.ts --socket PATH --files F --queries Q --warmup W --passes P --seed S --via client|raw
 *
 * Prints one JSON object: { via, holders, passes: latency figures of each pass, clientGc: this
 * process's collections while it asked, slow: the queries over 1 ms as [start, ms, pass], gcs:
 * this process's collections while it asked as [start, ms, kind] } (starts in ms since the epoch,
 * as gc-timeline.ts writes them).
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
    passes: { type: 'string' },
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
if (queries < 1) throw new Error('--queries: at least 1')
const warmup = count('warmup', values.warmup)
const passes = values.passes == null ? 1 : count('passes', values.passes)
if (passes < 1) throw new Error('--passes: at least 1')
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
const gcs: Array<[number, number, number]> = []
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
    gcs.push([performance.timeOrigin + entry.startTime, entry.duration, kind ?? 0])
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
const { latencies, starts, holders } = await queryLatencies(ask, files, queries * passes, warmup, seed)
// Entries are delivered after the collection; let the last batch arrive.
await new Promise(resolve => setImmediate(resolve))
observer.disconnect()
close()
const slow = latencies.flatMap((ms, i) => ms > 1 ? [[performance.timeOrigin + starts[i], ms, Math.floor(i / queries)]] : [])
const figures = Array.from({ length: passes }, (_, k) => latencyFigures(latencies.slice(k * queries, (k + 1) * queries)))
process.stdout.write(JSON.stringify({ via, holders, passes: figures, clientGc: gc, slow, gcs }) + '\n', () => process.exit(0))
