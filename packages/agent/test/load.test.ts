import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_LOAD_THRESHOLDS, LOOP_DELAY_WINDOWS, LoadMonitor } from '../src/load.js'

/** A LoadMonitor whose event-loop windows read scripted delays instead of the process's own. */
class ScriptedMonitor extends LoadMonitor {
  delays: number[] = []
  protected override readWindow (): number {
    return this.delays.shift() ?? 0
  }
}

const QUIET = { uploads: 0, diskLow: false }

describe('LoadMonitor', () => {
  const monitors: LoadMonitor[] = []
  afterEach(() => { for (const m of monitors.splice(0)) m.stop() })

  /** One update per second of monitor time, each ending a one-second window with the next delay. */
  function run (delays: number[], inputs = QUIET): Array<{ level: string, changed: boolean }> {
    const m = new ScriptedMonitor(DEFAULT_LOAD_THRESHOLDS, 0)
    monitors.push(m)
    m.delays = [...delays]
    return delays.map((_, i) => {
      const changed = m.update(inputs, (i + 1) * 1000)
      return { level: m.level, changed }
    })
  }

  it(`is not made busy by one slow second of event loop, but by ${LOOP_DELAY_WINDOWS} in a row`, () => {
    expect(LOOP_DELAY_WINDOWS).toBe(2)
    const busy = DEFAULT_LOAD_THRESHOLDS.busyLoopDelayMs
    // Slow, fast, slow, fast: never two in a row.
    expect(run([busy + 50, 10, busy + 50, 10]).map(r => r.level)).toEqual(['ok', 'ok', 'ok', 'ok'])
    // Two slow seconds in a row: busy after the second, announced as a change.
    expect(run([10, busy + 50, busy + 50])).toEqual([{ level: 'ok', changed: false }, { level: 'ok', changed: false }, { level: 'busy', changed: true }])
  })

  it('is overloaded by two seconds of overloaded delay, busy when one of them was only busy', () => {
    const { busyLoopDelayMs: busy, overloadedLoopDelayMs: over } = DEFAULT_LOAD_THRESHOLDS
    expect(run([over + 10, over + 10]).map(r => r.level)).toEqual(['ok', 'overloaded'])
    expect(run([over + 10, busy + 10]).map(r => r.level)).toEqual(['ok', 'busy'])
  })

  it('rises at once on uploads, whatever the event loop', () => {
    const r = run([0], { uploads: DEFAULT_LOAD_THRESHOLDS.busyUploads, diskLow: false })
    expect(r).toEqual([{ level: 'busy', changed: true }])
    expect(run([0], { uploads: 0, diskLow: true })[0].level).toBe('busy')
  })

  it('comes down only after the lower level held for 2 s', () => {
    const busy = DEFAULT_LOAD_THRESHOLDS.busyLoopDelayMs
    const levels = run([busy + 1, busy + 1, 0, 0, 0, 0]).map(r => r.level)
    // Busy from the 2nd second; the delay is gone from the 3rd; the level falls 2 s later.
    expect(levels).toEqual(['ok', 'busy', 'busy', 'busy', 'ok', 'ok'])
  })
})
