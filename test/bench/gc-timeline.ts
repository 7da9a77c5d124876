/**
 * Preloaded into a server process by scale.ts (`node --import .../gc-timeline.ts ...`): appends
 * each of the process's garbage collections to the file named by BENCH_GC_TIMELINE, one
 * JSON line [start, duration, kind] per collection, start in ms since the epoch
 * (performance.timeOrigin + startTime, comparable across processes on one machine), so that slow
 * answers can be matched with the server's pauses. The lines are written after the collection,
 * when the observer's batch is delivered, not inside the pause.
 */
import { appendFileSync } from 'node:fs'
import { PerformanceObserver } from 'node:perf_hooks'

const file = process.env.BENCH_GC_TIMELINE
if (file != null && file !== '') {
  const observer = new PerformanceObserver((list) => {
    let lines = ''
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0
      lines += JSON.stringify([performance.timeOrigin + entry.startTime, entry.duration, kind]) + '\n'
    }
    appendFileSync(file, lines)
  })
  observer.observe({ entryTypes: ['gc'] })
}
