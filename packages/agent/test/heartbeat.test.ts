import { describe, expect, it } from 'vitest'
import { HEARTBEAT_SCALE_NODES, heartbeatPeriodMs } from '../src/gossip.js'

describe('heartbeatPeriodMs', () => {
  it('keeps the configured interval up to HEARTBEAT_SCALE_NODES nodes, then lengthens it in proportion', () => {
    expect(heartbeatPeriodMs(2000, 1, 30_000)).toBe(2000)
    expect(heartbeatPeriodMs(2000, HEARTBEAT_SCALE_NODES, 30_000)).toBe(2000)
    expect(heartbeatPeriodMs(2000, 2 * HEARTBEAT_SCALE_NODES, 30_000)).toBe(4000)
    expect(heartbeatPeriodMs(2000, 12, 30_000)).toBe(3000)
  })

  it('never exceeds a quarter of stale-after, nor goes below the configured interval', () => {
    expect(heartbeatPeriodMs(2000, 500, 30_000)).toBe(7500)
    expect(heartbeatPeriodMs(2000, 500, 600_000)).toBe(125_000)
    // A stale-after shorter than four intervals leaves the configured interval as it is.
    expect(heartbeatPeriodMs(2000, 500, 4000)).toBe(2000)
  })
})
