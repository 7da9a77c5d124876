export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number
  /** How long an open circuit refuses before it lets one trial through. */
  coolDownMs: number
  now?: () => number
}

/**
 * Per-peer circuit breaker. closed: requests flow; after `failureThreshold` consecutive
 * failures it opens and refuses everything for `coolDownMs`; then half-open: one trial request;
 * success closes it, failure opens it again (with a doubled cool-down, up to 16x).
 */
export class CircuitBreaker {
  private failures = 0
  private openedAt = 0
  private trips = 0
  private trialInFlight = false
  private readonly now: () => number

  constructor (private readonly options: BreakerOptions) {
    this.now = options.now ?? Date.now
  }

  get state (): BreakerState {
    if (this.trips === 0 || this.failures < this.options.failureThreshold) return 'closed'
    return this.now() - this.openedAt >= this.coolDown() ? 'half-open' : 'open'
  }

  private coolDown (): number {
    return this.options.coolDownMs * Math.min(16, 2 ** Math.max(0, this.trips - 1))
  }

  /** Whether a request may go out now; in half-open state only one trial at a time. */
  allow (): boolean {
    const state = this.state
    if (state === 'closed') return true
    if (state === 'open') return false
    if (this.trialInFlight) return false
    this.trialInFlight = true
    return true
  }

  success (): void {
    this.failures = 0
    this.trips = 0
    this.trialInFlight = false
  }

  failure (): void {
    this.trialInFlight = false
    this.failures++
    if (this.failures >= this.options.failureThreshold) {
      this.trips++
      this.openedAt = this.now()
    }
  }

  /** A failure that opens the circuit at once (corrupt data: no second chance now). */
  trip (): void {
    this.failures = Math.max(this.failures + 1, this.options.failureThreshold)
    this.trialInFlight = false
    this.trips++
    this.openedAt = this.now()
  }
}
