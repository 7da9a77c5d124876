/**
 * A token bucket of bytes per second. `take` waits until the bytes are available; a rate of 0
 * (or Infinity) means unlimited. Waiters are served in order, so a large request is not starved.
 */
export class TokenBucket {
  private tokens: number
  private last: number
  private queue: Promise<void> = Promise.resolve()

  constructor (private rate: number, private readonly burst: number = Math.max(rate, 1), private readonly now: () => number = () => performance.now()) {
    this.tokens = this.burst
    this.last = this.now()
  }

  get unlimited (): boolean {
    return !(this.rate > 0) || this.rate === Infinity
  }

  setRate (rate: number): void {
    this.refill()
    this.rate = rate
  }

  private refill (): void {
    const now = this.now()
    if (!this.unlimited) this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / 1000 * this.rate)
    this.last = now
  }

  /** Milliseconds until `bytes` could be taken (0 if now). */
  delayFor (bytes: number): number {
    if (this.unlimited) return 0
    this.refill()
    const missing = Math.min(bytes, this.burst) - this.tokens
    return missing <= 0 ? 0 : Math.ceil(missing / this.rate * 1000)
  }

  async take (bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.unlimited) return
    const turn = this.queue.then(async () => {
      for (;;) {
        signal?.throwIfAborted()
        const wait = this.delayFor(bytes)
        if (wait === 0) {
          // Requests larger than the burst go through once the bucket is full, leaving debt.
          this.tokens -= bytes
          return
        }
        await sleep(wait, signal)
      }
    })
    this.queue = turn.catch(() => {})
    await turn
  }
}

export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
