import { createRequire } from 'node:module'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

interface NativeMalloc {
  /** malloc_trim(0): true when memory was released. */
  trim: () => boolean | undefined
  /** Bytes free inside malloc's arenas, -1 when unknown. */
  freeBytes: () => number
}

let nativeMalloc: NativeMalloc | null | undefined

/**
 * The optional native helper (packages/agent/native/malloc.c, built at install time by
 * scripts/build-native.mjs), or null when it was not built or does not load here.
 */
export function mallocHelper (): NativeMalloc | null {
  if (nativeMalloc === undefined) {
    try {
      nativeMalloc = createRequire(import.meta.url)('../native/build/shoal-malloc.node') as NativeMalloc
    } catch {
      nativeMalloc = null
    }
  }
  return nativeMalloc
}

/** Entries changed in bulk (scans, record pulls) after which a full collection is worth its pause. */
export const COMPACT_AFTER_ENTRIES = 20_000
/** Quiet time after the last bulk change before collecting (a burst of pulls collects once). */
export const COMPACT_QUIET_MS = 3_000

type Collect = (options?: { type?: 'major' | 'minor', execution?: 'sync' | 'async', flavor?: 'regular' | 'last-resort' }) => void

let collect: Collect | undefined

/** V8's collector, exposed at run time (the agent is not started with --expose-gc). */
function collector (): Collect {
  if (collect == null) {
    setFlagsFromString('--expose-gc')
    collect = runInNewContext('gc') as Collect
  }
  return collect
}

/**
 * Gives memory back after bulk work. Building the view of 100,000 files (a first scan, pulling
 * whole records) allocates several times the memory the result keeps; V8 grows the heap to fit
 * and, while the agent stays busy with small work (heartbeats, load checks), does not shrink it
 * for a long time: an agent holding 16 x 100,000 entries in ~150 MB of live objects showed
 * ~1 GB resident. One compacting collection once the burst is over returns it.
 */
export class MemoryCompactor {
  private pending = 0
  private timer?: NodeJS.Timeout
  private stopped = false
  compactions = 0

  constructor (private readonly log?: (message: string, fields: Record<string, unknown>) => void) {}

  /** Notes `entries` changed in bulk; collects once COMPACT_QUIET_MS pass without more. */
  note (entries: number): void {
    if (this.stopped) return
    this.pending += entries
    if (this.pending < COMPACT_AFTER_ENTRIES) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { this.compact() }, COMPACT_QUIET_MS)
    this.timer.unref()
  }

  compact (): void {
    this.pending = 0
    const before = process.memoryUsage()
    const t0 = performance.now()
    // 'last-resort': collections that also compact the old generation and shrink the young one
    // (grown to 64 MiB semi-spaces while the burst allocated). A regular full collection leaves
    // both, and the memory reducer returns them only some 8 s later, if the agent is idle.
    collector()({ type: 'major', flavor: 'last-resort' })
    // The collection freed the buffers the burst left (network reads, decoded pages) back to
    // malloc, whose heap keeps their pages resident unless they are at its top: hand them back.
    const malloc = mallocHelper()
    const freeBefore = malloc?.freeBytes() ?? -1
    malloc?.trim()
    this.compactions++
    const after = process.memoryUsage()
    this.log?.('memory compacted after bulk changes', {
      ms: Math.round(performance.now() - t0),
      heapUsedMiB: Math.round(after.heapUsed / 1048576),
      heapTotalMiB: Math.round(after.heapTotal / 1048576),
      heapFreedMiB: Math.round((before.heapUsed - after.heapUsed) / 1048576),
      rssMiB: Math.round(after.rss / 1048576),
      mallocFreeMiB: freeBefore < 0 ? 'unknown' : Math.round(freeBefore / 1048576),
      mallocTrim: malloc == null ? 'unavailable (native helper not built)' : 'done'
    })
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }
}
