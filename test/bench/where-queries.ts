/**
 * `where` queries against an agent's socket, shared by scale.ts and where-client.ts: the paths
 * the scale benchmark generates, a seeded random sequence of them, and per-query latencies.
 */
import { request, Agent as HttpAgent } from 'node:http'
import { rng, summarise } from './lib.ts'

export const DATASET = 'default'

export function pathOf (i: number): string {
  return `shards/s${String(i % 256).padStart(3, '0')}/part-${String(i).padStart(6, '0')}.npz`
}

/** Sequential `where` queries of seeded random paths (after `warmup` unmeasured ones); per-query latency in ms and start (performance.now()). */
export async function queryLatencies (ask: (path: string) => Promise<number>, files: number, count: number, warmup: number, seed: number): Promise<{ latencies: number[], starts: number[], holders: number }> {
  const random = rng(seed)
  let holders = 0
  for (let i = 0; i < warmup; i++) holders = await ask(pathOf(Math.floor(random() * files)))
  const latencies: number[] = new Array(count)
  const starts: number[] = new Array(count)
  for (let i = 0; i < count; i++) {
    const path = pathOf(Math.floor(random() * files))
    const t = performance.now()
    holders = await ask(path)
    latencies[i] = performance.now() - t
    starts[i] = t
  }
  return { latencies, starts, holders }
}

/** A collection as gc-timeline.ts and where-client.ts record it: [start (ms since the epoch), duration (ms), kind]. */
export type GcSpan = [number, number, number]

/**
 * What the slow queries ([start, ms], starts in ms since the epoch) coincided with: a collection
 * in the server, in the client, both, or neither (what is left: the machine's scheduling). The
 * two processes' clocks agree to well under the 1 ms that makes a query slow.
 */
export function attributeSlow (slow: Array<[number, number]>, clientGcs: GcSpan[], serverGcs: GcSpan[]): { over1ms: number, serverGc: number, clientGc: number, both: number, neither: number } {
  const overlaps = (start: number, ms: number, spans: GcSpan[]): boolean => spans.some(([s, d]) => s < start + ms && s + d > start)
  const out = { over1ms: slow.length, serverGc: 0, clientGc: 0, both: 0, neither: 0 }
  for (const [start, ms] of slow) {
    const server = overlaps(start, ms, serverGcs)
    const client = overlaps(start, ms, clientGcs)
    if (server && client) out.both++
    else if (server) out.serverGc++
    else if (client) out.clientGc++
    else out.neither++
  }
  return out
}

/** The collections in a gc-timeline.ts file (one JSON line each). */
export function parseGcTimeline (text: string): GcSpan[] {
  return text.split('\n').filter(line => line !== '').map(line => JSON.parse(line) as GcSpan)
}

/** GET /v1/where with a dedicated keep-alive agent and no client-side parsing beyond JSON: isolates the client's share. */
export function rawWhere (socketPath: string): { ask: (path: string) => Promise<number>, close: () => void } {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 })
  const ask = async (path: string): Promise<number> => await new Promise((resolve, reject) => {
    const req = request({ socketPath, agent, path: `/v1/where?dataset=${DATASET}&path=${encodeURIComponent(path)}` }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve((JSON.parse(Buffer.concat(chunks).toString()) as { holders: unknown[] }).holders.length))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
  return { ask, close: () => agent.destroy() }
}

export function latencyFigures (latencies: number[]): Record<string, number> {
  const s = summarise(latencies, 3)
  const sorted = [...latencies].sort((a, b) => a - b)
  return { ...s, p999: Number(sorted[Math.min(sorted.length - 1, Math.ceil(0.999 * sorted.length) - 1)].toFixed(3)), over1ms: latencies.filter(x => x > 1).length }
}
