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

/** Local API requests after which freed malloc memory is worth handing back (see MemoryCompactor.afterRequests). */
export const TRIM_AFTER_REQUESTS = 1_000
/** How long the API must have been quiet for that hand-back. */
export const TRIM_QUIET_MS = 2_000
/** How often the agent checks for that. */
export const TRIM_CHECK_MS = 1_000
/** Requests after which it is handed back even while they keep coming. */
export const TRIM_BUSY_AFTER_REQUESTS = 50_000

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

  /** Times freed malloc memory was handed back after API requests. */
  requestTrims = 0
  private requestsAtTrim = 0

  /**
   * Called periodically with the count of local API requests served so far and how long the API
   * has been quiet. Each answer leaves freed buffers (request parsing, answer bytes, socket
   * reads) in malloc's heap, below live allocations, where they stay resident: 180,000 `where`
   * queries left ~9 MiB there in an agent holding 16 x 100,000 entries, which one malloc_trim
   * returned. No collection here (queries must not pause for one): the trim alone (0.26-1.7 ms in
   * a Node HTTP server after each 10,000 requests, about one scavenge), once the API is quiet
   * after at least TRIM_AFTER_REQUESTS, or every TRIM_BUSY_AFTER_REQUESTS under a steady stream
   * (every 10,000 kept the agent's RSS no lower while it was queried: its young generation
   * grows by more). True when it trimmed.
   */
  afterRequests (served: number, quietForMs: number): boolean {
    const since = served - this.requestsAtTrim
    if (this.stopped || since < TRIM_AFTER_REQUESTS) return false
    if (quietForMs < TRIM_QUIET_MS && since < TRIM_BUSY_AFTER_REQUESTS) return false
    this.requestsAtTrim = served
    const malloc = mallocHelper()
    if (malloc == null) return false
    malloc.trim()
    this.requestTrims++
    return true
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }
}
