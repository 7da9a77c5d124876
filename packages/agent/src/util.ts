/** Runs async functions one at a time, in call order. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve()

  run<T> (fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn)
    this.tail = result.catch(() => {})
    return result
  }
}

/** Runs at most `limit` async functions at once. */
export class Semaphore {
  private active = 0
  private readonly waiting: Array<() => void> = []

  constructor (private readonly limit: number) {}

  async run<T> (fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>(resolve => this.waiting.push(resolve))
    this.active++
    try {
      return await fn()
    } finally {
      this.active--
      this.waiting.shift()?.()
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
