import { describe, expect, it } from 'vitest'
import { COMPACT_AFTER_ENTRIES, MemoryCompactor, TRIM_AFTER_REQUESTS, TRIM_BUSY_AFTER_REQUESTS, TRIM_QUIET_MS, mallocHelper } from '../src/memory.js'

const glibc = process.platform === 'linux' && (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime != null

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

describe('native malloc helper', () => {
  it.runIf(glibc)('is built at install time on Linux with glibc, and the compactor hands freed heap memory back', () => {
    const malloc = mallocHelper()
    expect(malloc, 'packages/agent/native/build/shoal-malloc.node missing: run `node scripts/build-native.mjs`').not.toBeNull()
    // Small buffers come from malloc's heap; freeing all but the last leaves free memory below it.
    let buffers: Buffer[] | undefined = Array.from({ length: 20_000 }, () => Buffer.allocUnsafeSlow(2048))
    const last = buffers[buffers.length - 1]
    buffers = undefined
    const logged: Array<Record<string, unknown>> = []
    const compactor = new MemoryCompactor((_, fields) => logged.push(fields))
    compactor.compact()
    expect(last.length).toBe(2048)
    expect(logged[0].mallocTrim).toBe('done')
    expect(logged[0].mallocFreeMiB).toEqual(expect.any(Number))
    expect(malloc!.freeBytes()).toBeGreaterThanOrEqual(0)
    expect(typeof malloc!.trim()).toBe('boolean')
    compactor.stop()
  })
})

describe('MemoryCompactor.afterRequests', () => {
  it.runIf(glibc)('trims once the API is quiet after enough requests, or after many while it stays busy, and never once stopped', () => {
    const compactor = new MemoryCompactor()
    expect(compactor.afterRequests(TRIM_AFTER_REQUESTS - 1, 60_000)).toBe(false)
    expect(compactor.afterRequests(TRIM_AFTER_REQUESTS, TRIM_QUIET_MS - 1)).toBe(false)
    expect(compactor.afterRequests(TRIM_AFTER_REQUESTS, TRIM_QUIET_MS)).toBe(true)
    expect(compactor.requestTrims).toBe(1)
    // Counted from the last trim: the same total again is not a new burst.
    expect(compactor.afterRequests(TRIM_AFTER_REQUESTS, 60_000)).toBe(false)
    expect(compactor.afterRequests(TRIM_AFTER_REQUESTS + TRIM_BUSY_AFTER_REQUESTS - 1, 0)).toBe(false)
    expect(compactor.afterRequests(TRIM_AFTER_REQUESTS + TRIM_BUSY_AFTER_REQUESTS, 0)).toBe(true)
    expect(compactor.requestTrims).toBe(2)
    compactor.stop()
    expect(compactor.afterRequests(10 * TRIM_BUSY_AFTER_REQUESTS, 60_000)).toBe(false)
    expect(compactor.requestTrims).toBe(2)
  })
})
