import { describe, expect, it } from 'vitest'
import { COMPACT_AFTER_ENTRIES, MemoryCompactor } from '../src/memory.js'

describe('MemoryCompactor', () => {
  it('collects once after a burst of bulk changes, not after small ones', async () => {
    const logged: Array<Record<string, unknown>> = []
    const compactor = new MemoryCompactor((_, fields) => logged.push(fields))
    compactor.note(COMPACT_AFTER_ENTRIES - 1)
    compactor.compact()
    expect(compactor.compactions).toBe(1)
    expect(logged[0]).toMatchObject({ heapUsedMiB: expect.any(Number), rssMiB: expect.any(Number) })
    // Garbage made and dropped: a collection frees it.
    let junk: unknown[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `entry ${i}` }))
    expect(junk.length).toBe(200_000)
    junk = undefined
    compactor.compact()
    expect(compactor.compactions).toBe(2)
    expect(logged[1].heapFreedMiB).toBeGreaterThan(0)
    compactor.stop()
    compactor.note(10 * COMPACT_AFTER_ENTRIES)
    expect(compactor.compactions).toBe(2)
  })
})
