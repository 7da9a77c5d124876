import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { LoadLevel } from '@shoal/transfer'

/** When this node calls itself busy or overloaded. Documented in the agent's README. */
export interface LoadThresholds {
  /** Uploads in progress (or waiting for bandwidth) at which the node is busy / overloaded. */
  busyUploads: number
  overloadedUploads: number
  /** Event-loop delay (p99 over the last interval, ms) at which the node is busy / overloaded. */
  busyLoopDelayMs: number
  overloadedLoopDelayMs: number
}

export const DEFAULT_LOAD_THRESHOLDS: LoadThresholds = {
  busyUploads: 16,
  overloadedUploads: 32,
  busyLoopDelayMs: 250,
  overloadedLoopDelayMs: 1000
}

export interface LoadInputs {
  uploads: number
  diskLow: boolean
}

const ORDER: LoadLevel[] = ['ok', 'busy', 'overloaded']
/** Event-loop delay is measured over windows of this length. */
const LOOP_WINDOW_MS = 1000
/** A lower level must hold this long before it is announced. */
const CALM_DOWN_MS = 2000
/**
 * Event-loop delay raises the level only when it lasted this many consecutive windows: one slow
 * second (a collection, a large merge) is not load to spare a node for. Every rise is a heartbeat
 * to every node; at 32 agents on two cores, where single slow seconds were frequent, rises on one
 * window doubled the heartbeats (2,052 sent in a 258 s write phase against about 1,100 periodic).
 * Uploads and free disk still raise the level at once.
 */
export const LOOP_DELAY_WINDOWS = 2

/**
 * Computes this node's load level from its upload queue, its free disk and its event-loop delay.
 * A forced level (tests, operators draining a node) overrides the measurement.
 */
export class LoadMonitor {
  private readonly histogram: ReturnType<typeof monitorEventLoopDelay>
  private forced?: LoadLevel
  private current: LoadLevel = 'ok'
  private loopDelayMs = 0
  /** The last LOOP_DELAY_WINDOWS windows' delays, newest last. */
  private readonly windows: number[] = []
  private windowStart: number
  private lowerSince?: number

  constructor (private readonly thresholds: LoadThresholds, startedAt = Date.now()) {
    this.windowStart = startedAt
    this.histogram = monitorEventLoopDelay({ resolution: 20 })
    this.histogram.enable()
  }

  get level (): LoadLevel {
    return this.current
  }

  get eventLoopDelayMs (): number {
    return this.loopDelayMs
  }

  force (level: LoadLevel | undefined): void {
    this.forced = level
  }

  /** Measures again; returns true when the level changed. */
  update (inputs: LoadInputs, now = Date.now()): boolean {
    // The event-loop delay is read over about a second, not per call: short stalls are noise.
    if (now - this.windowStart >= LOOP_WINDOW_MS) {
      this.loopDelayMs = this.readWindow()
      this.windows.push(this.loopDelayMs)
      if (this.windows.length > LOOP_DELAY_WINDOWS) this.windows.shift()
      this.windowStart = now
    }
    // The delay that lasted: the least of the last windows (none until there are enough).
    const sustainedDelayMs = this.windows.length < LOOP_DELAY_WINDOWS ? 0 : Math.min(...this.windows)
    const t = this.thresholds
    let level: LoadLevel = 'ok'
    const raise = (to: LoadLevel): void => { if (ORDER.indexOf(to) > ORDER.indexOf(level)) level = to }
    if (inputs.uploads >= t.overloadedUploads) raise('overloaded')
    else if (inputs.uploads >= t.busyUploads) raise('busy')
    if (sustainedDelayMs >= t.overloadedLoopDelayMs) raise('overloaded')
    else if (sustainedDelayMs >= t.busyLoopDelayMs) raise('busy')
    if (inputs.diskLow) raise('busy')
    if (this.forced != null) {
      level = this.forced
    } else if (ORDER.indexOf(level) < ORDER.indexOf(this.current)) {
      // Going down waits until the lower level has held for a while, so the level does not flap.
      this.lowerSince ??= now
      if (now - this.lowerSince < CALM_DOWN_MS) return false
    }
    this.lowerSince = undefined
    const changed = level !== this.current
    this.current = level
    return changed
  }

  /** The event-loop delay (p99, ms) of the window that just ended; starts the next one. */
  protected readWindow (): number {
    const ms = this.histogram.percentile(99) / 1e6
    this.histogram.reset()
    return ms
  }

  stop (): void {
    this.histogram.disable()
  }
}
