import { TokenBucket } from './token-bucket.js'

/** Transfer priority classes, most urgent first. */
export const PRIORITIES = ['critical', 'high', 'normal', 'low', 'background'] as const
export type Priority = typeof PRIORITIES[number]

/** Share of the bandwidth each class gets while several wait: 16:8:4:2:1. */
export const PRIORITY_WEIGHTS: Record<Priority, number> = { critical: 16, high: 8, normal: 4, low: 2, background: 1 }

export function isPriority (value: string): value is Priority {
  return (PRIORITIES as readonly string[]).includes(value)
}

interface Waiter { bytes: number, resolve: () => void, reject: (err: unknown) => void, signal?: AbortSignal }

/**
 * Shares one token bucket between priority classes by weight (weighted fair queueing on bytes):
 * while several classes wait, each gets bandwidth in proportion to its weight; a class alone
 * gets all of it.
 */
export class PriorityLimiter {
  private readonly queues = new Map<Priority, Waiter[]>(PRIORITIES.map(p => [p, []]))
  private readonly served = new Map<Priority, number>(PRIORITIES.map(p => [p, 0]))
  private pumping = false

  constructor (readonly bucket: TokenBucket) {}

  async take (bytes: number, priority: Priority, signal?: AbortSignal): Promise<void> {
    if (this.bucket.unlimited) return
    signal?.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve, reject, signal }
      ;(this.queues.get(priority) as Waiter[]).push(waiter)
      signal?.addEventListener('abort', () => {
        const queue = this.queues.get(priority) as Waiter[]
        const i = queue.indexOf(waiter)
        if (i >= 0) {
          queue.splice(i, 1)
          reject(signal.reason)
        }
      }, { once: true })
      void this.pump()
    })
  }

  /** The waiting class that has received the least bandwidth for its weight. */
  private next (): Priority | undefined {
    let best: Priority | undefined
    let bestScore = Infinity
    for (const p of PRIORITIES) {
      if ((this.queues.get(p) as Waiter[]).length === 0) continue
      const score = (this.served.get(p) as number) / PRIORITY_WEIGHTS[p]
      if (score < bestScore) {
        best = p
        bestScore = score
      }
    }
    return best
  }

  private async pump (): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    try {
      for (let p = this.next(); p != null; p = this.next()) {
        // A class that was idle starts level with the busiest, not with a backlog of credit.
        const active = PRIORITIES.filter(q => (this.queues.get(q) as Waiter[]).length > 0)
        const floor = Math.min(...active.map(q => (this.served.get(q) as number) / PRIORITY_WEIGHTS[q]))
        for (const q of PRIORITIES) {
          if (!active.includes(q)) this.served.set(q, Math.max(this.served.get(q) as number, floor * PRIORITY_WEIGHTS[q]))
        }
        const waiter = (this.queues.get(p) as Waiter[]).shift() as Waiter
        try {
          await this.bucket.take(waiter.bytes, waiter.signal)
          this.served.set(p, (this.served.get(p) as number) + waiter.bytes)
          waiter.resolve()
        } catch (err) {
          waiter.reject(err)
        }
      }
    } finally {
      this.pumping = false
    }
  }
}
