/** Runs async functions one at a time, in call order. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve()

  run<T> (fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn)
    this.tail = result.catch(() => {})
    return result
  }
}

/** Runs at most `limit` async functions at once; waiting ones start by rank (lower first), then in order. */
export class Semaphore {
  private active = 0
  private readonly waiting: Array<{ rank: number, start: () => void }> = []

  constructor (private readonly limit: number) {}

  async run<T> (fn: () => Promise<T>, rank = 0): Promise<T> {
    if (this.active >= this.limit) {
      await new Promise<void>(resolve => {
        let i = this.waiting.length
        while (i > 0 && this.waiting[i - 1].rank > rank) i--
        this.waiting.splice(i, 0, { rank, start: resolve })
      })
    }
    this.active++
    try {
      return await fn()
    } finally {
      this.active--
      this.waiting.shift()?.start()
    }
  }
}

export interface Logger {
  debug: (msg: string, fields?: Record<string, unknown>) => void
  info: (msg: string, fields?: Record<string, unknown>) => void
  warn: (msg: string, fields?: Record<string, unknown>) => void
  error: (msg: string, fields?: Record<string, unknown>) => void
}

export const silentLogger: Logger = { debug () {}, info () {}, warn () {}, error () {} }
