/**
 * Scan benchmark: hashing throughput of a fresh scan on the worker pool against one thread
 * hashing the same bytes, the time of a rescan that finds nothing changed, and that of a scan of
 * one directory that finds one new file (what a watch event costs) as a fraction of it.
 *
 *   npx node test/bench/scan.ts [--files 256] [--file-mib 8] [--small-files 100000] [--rounds 3] [--workers N]
 *
 * Node 24 runs this file as it is (type stripping), so it holds erasable TypeScript only.
 * Progress goes to stderr; stdout gets exactly one JSON object. See test/bench/README.md.
 */
import { createHash, randomFillSync } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { chooseChunkSize, HashPool, LocalIndex, scanDataset } from '@shoal/manifest'

const MiB = 1024 * 1024
/** hashFile's read buffer: the baseline reads the same way. */
const READ_BUFFER_BYTES = MiB
const SMALL_FILES_PER_DIR = 1000
const RATIO_GOAL = 1.6
const RESCAN_GOAL_SECONDS = 3

interface Settings {
  files: number
  fileBytes: number
  smallFiles: number
  smallBytes: number
  rounds: number
  workers: number
  dir: string
}

function settings (): Settings {
  const { values } = parseArgs({
    options: {
      files: { type: 'string' },
      'file-mib': { type: 'string' },
      'small-files': { type: 'string' },
      'small-bytes': { type: 'string' },
      rounds: { type: 'string' },
      workers: { type: 'string' },
      dir: { type: 'string' }
    }
  })
  const env = process.env
  const count = (flag: string | undefined, envValue: string | undefined, fallback: number, name: string): number => {
    const text = flag ?? envValue
    if (text == null || text === '') return fallback
    const n = Number(text)
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: not a non-negative number: ${text}`)
    return n
  }
  return {
    files: Math.floor(count(values.files, env.SCAN_BENCH_FILES, 256, '--files')),
    fileBytes: Math.floor(count(values['file-mib'], env.SCAN_BENCH_FILE_MIB, 8, '--file-mib') * MiB),
    smallFiles: Math.floor(count(values['small-files'], env.SCAN_BENCH_SMALL_FILES, 100_000, '--small-files')),
    smallBytes: Math.floor(count(values['small-bytes'], env.SCAN_BENCH_SMALL_BYTES, 1024, '--small-bytes')),
    rounds: Math.max(1, Math.floor(count(values.rounds, env.SCAN_BENCH_ROUNDS, 3, '--rounds'))),
    workers: Math.max(1, Math.floor(count(values.workers, env.SCAN_BENCH_WORKERS, availableParallelism(), '--workers'))),
    dir: values.dir ?? env.SCAN_BENCH_DIR ?? tmpdir()
  }
}

const progress = (message: string): void => { process.stderr.write(`scan bench: ${message}\n`) }
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits
const mbPerSecond = (bytes: number, s: number): number => round(bytes / 1e6 / s, 1)
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

/** Wall time and CPU time of this process (every thread, workers included) of one phase. */
interface Timing { seconds: number, cpuSeconds: number }

async function timed<T> (work: () => T | Promise<T>): Promise<{ value: T, timing: Timing }> {
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  const value = await work()
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const used = process.cpuUsage(cpu)
  return { value, timing: { seconds, cpuSeconds: (used.user + used.system) / 1e6 } }
}

/**
 * The fastest of the rounds (the one least disturbed by other work on the machine), with every
 * round's time; cpuPerWall shows how many cores the fastest round kept busy.
 */
function summary (timings: Timing[], bytes?: number): Record<string, unknown> {
  const best = timings.reduce((a, b) => b.seconds < a.seconds ? b : a)
  return {
    seconds: round(best.seconds),
    ...(bytes == null ? {} : { mbPerSecond: mbPerSecond(bytes, best.seconds) }),
    cpuSeconds: round(best.cpuSeconds),
    cpuPerWall: round(best.cpuSeconds / best.seconds, 2),
    rounds: timings.map(t => round(t.seconds))
  }
}

const fastest = (timings: Timing[]): number => Math.min(...timings.map(t => t.seconds))

/** Distinct files of random bytes (each starts with its own number). */
function writeBigFiles (root: string, s: Settings): string[] {
  const data = randomFillSync(Buffer.allocUnsafe(s.fileBytes))
  const names: string[] = []
  for (let i = 0; i < s.files; i++) {
    const name = `big-${String(i).padStart(5, '0')}.bin`
    if (data.length >= 8) data.writeBigUInt64LE(BigInt(i), 0)
    writeFileSync(join(root, name), data)
    names.push(name)
  }
  return names
}

function writeSmallFiles (root: string, s: Settings): void {
  const data = randomFillSync(Buffer.allocUnsafe(s.smallBytes))
  for (let i = 0; i < s.smallFiles; i++) {
    const dir = join(root, `d${Math.floor(i / SMALL_FILES_PER_DIR)}`)
    if (i % SMALL_FILES_PER_DIR === 0) mkdirSync(dir)
    if (data.length >= 4) data.writeUInt32LE(i, 0)
    writeFileSync(join(dir, `s${i}.bin`), data)
  }
}

/**
 * The baseline: one thread reads and hashes every file as hashFile does (same chunking, same
 * read size), with synchronous reads so no other thread is involved. Returns each content id.
 */
function hashOnOneThread (root: string, names: string[], fileBytes: number): Map<string, string> {
  const chunkSize = chooseChunkSize(fileBytes)
  const buffer = Buffer.allocUnsafe(Math.min(READ_BUFFER_BYTES, chunkSize))
  const ids = new Map<string, string>()
  for (const name of names) {
    const fd = openSync(join(root, name), 'r')
    try {
      const chunkHashes: Buffer[] = []
      let hash = createHash('sha256')
      let inChunk = 0
      for (;;) {
        const bytesRead = readSync(fd, buffer, 0, Math.min(buffer.length, chunkSize - inChunk), null)
        if (bytesRead === 0) break
        hash.update(buffer.subarray(0, bytesRead))
        inChunk += bytesRead
        if (inChunk === chunkSize) {
          chunkHashes.push(hash.digest())
          hash = createHash('sha256')
          inChunk = 0
        }
      }
      if (inChunk > 0) chunkHashes.push(hash.digest())
      ids.set(name, createHash('sha256').update(Buffer.concat(chunkHashes)).digest('hex'))
    } finally {
      closeSync(fd)
    }
  }
  return ids
}

async function main (): Promise<void> {
  const s = settings()
  const base = await mkdtemp(join(s.dir, 'shoal-scan-bench-'))
  const removeBase = (): void => rmSync(base, { recursive: true, force: true })
  const onSignal = (signal: NodeJS.Signals): void => {
    removeBase()
    process.kill(process.pid, signal)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const pool = new HashPool({ workers: s.workers })
  const indexes: LocalIndex[] = []
  const openIndex = (name: string): LocalIndex => {
    const index = new LocalIndex(join(base, `${name}.db`))
    indexes.push(index)
    return index
  }
  const load = loadavg()[0]
  try {
    const bigRoot = join(base, 'big')
    const smallRoot = join(base, 'small')
    mkdirSync(bigRoot)
    mkdirSync(smallRoot)
    const bytes = s.files * s.fileBytes

    progress(`writing ${s.files} files of ${s.fileBytes} bytes in ${base}`)
    const names = writeBigFiles(bigRoot, s)

    const oneThread: Timing[] = []
    const poolScan: Timing[] = []
    const mainThreadScan: Timing[] = []
    for (let r = 1; r <= s.rounds; r++) {
      progress(`round ${r}/${s.rounds}: (a) hashing on one thread`)
      const a = await timed(() => hashOnOneThread(bigRoot, names, s.fileBytes))
      oneThread.push(a.timing)

      progress(`round ${r}/${s.rounds}: (b) fresh scan on a pool of ${s.workers} workers`)
      const pooledIndex = openIndex(`pooled-${r}`)
      const b = await timed(async () => await scanDataset('bench', bigRoot, pooledIndex, { stableMs: 0, hasher: pool.hash }))
      poolScan.push(b.timing)
      if (b.value.changed.length !== s.files || b.value.pending !== 0) throw new Error(`pooled scan indexed ${b.value.changed.length} of ${s.files} files (${b.value.pending} pending)`)
      for (const f of b.value.changed) {
        const contentId = pooledIndex.get('bench', f.path)?.contentId
        if (contentId == null || hex(contentId) !== a.value.get(f.path)) throw new Error(`${f.path}: the pooled scan and the baseline disagree on the content id`)
      }

      progress(`round ${r}/${s.rounds}: fresh scan on the main thread (hashFile), for reference`)
      const c = await timed(async () => await scanDataset('bench', bigRoot, openIndex(`plain-${r}`), { stableMs: 0 }))
      mainThreadScan.push(c.timing)
      if (c.value.changed.length !== s.files) throw new Error(`main-thread scan indexed ${c.value.changed.length} of ${s.files} files`)
    }
    rmSync(bigRoot, { recursive: true, force: true })

    progress(`(c) writing ${s.smallFiles} files of ${s.smallBytes} bytes`)
    writeSmallFiles(smallRoot, s)
    const smallIndex = openIndex('small')
    progress('(c) first scan')
    const first = await timed(async () => await scanDataset('bench', smallRoot, smallIndex, { stableMs: 0, hasher: pool.hash }))
    if (first.value.changed.length !== s.smallFiles || first.value.pending !== 0) throw new Error(`first scan indexed ${first.value.changed.length} of ${s.smallFiles} files (${first.value.pending} pending)`)
    const rescans: Timing[] = []
    for (let r = 1; r <= s.rounds; r++) {
      progress(`round ${r}/${s.rounds}: (c) rescan`)
      const again = await timed(async () => await scanDataset('bench', smallRoot, smallIndex, { stableMs: 0, hasher: pool.hash }))
      rescans.push(again.timing)
      if (again.value.changed.length !== 0 || again.value.pending !== 0) throw new Error(`the rescan found ${again.value.changed.length} changed and ${again.value.pending} pending files; expected none`)
    }

    // (d) What a watch event costs: one new file, found by a scan of its directory only (how the
    // agent reacts to an event) against the full rescans above.
    const directoryScans: Timing[] = []
    for (let r = 1; r <= s.rounds; r++) {
      progress(`round ${r}/${s.rounds}: (d) one new file, scan of its directory`)
      writeFileSync(join(smallRoot, 'd0', `new-${r}.bin`), `new file ${r}`)
      const one = await timed(async () => await scanDataset('bench', smallRoot, smallIndex, { stableMs: 0, hasher: pool.hash, only: ['d0'], descend: () => false }))
      directoryScans.push(one.timing)
      if (one.value.changed.length !== 1) throw new Error(`the directory scan found ${one.value.changed.length} changed files; expected the new one`)
    }

    const ratio = fastest(oneThread) / fastest(poolScan)
    const rescanSeconds = fastest(rescans)
    const result = {
      benchmark: 'scan',
      node: process.version,
      cores: availableParallelism(),
      cpu: cpus()[0]?.model ?? 'unknown',
      loadAverage1m: { atStart: round(load, 2), atEnd: round(loadavg()[0], 2) },
      pageCache: 'warm: the files were written just before; (a) and (b) read the same cached bytes',
      hashing: {
        files: s.files,
        fileBytes: s.fileBytes,
        bytes,
        chunkSize: chooseChunkSize(s.fileBytes),
        workers: s.workers,
        rounds: s.rounds,
        oneThread: summary(oneThread, bytes),
        poolScan: summary(poolScan, bytes),
        mainThreadScan: summary(mainThreadScan, bytes),
        ratio: round(ratio, 2),
        ratioGoal: RATIO_GOAL,
        ratioMet: ratio >= RATIO_GOAL
      },
      rescan: {
        files: s.smallFiles,
        fileBytes: s.smallBytes,
        firstScan: summary([first.timing]),
        rescan: summary(rescans),
        newFileDirectoryScan: { filesInDirectory: SMALL_FILES_PER_DIR, ...summary(directoryScans) },
        directoryScanVsRescan: round(fastest(directoryScans) / rescanSeconds, 4),
        goalSeconds: RESCAN_GOAL_SECONDS,
        met: rescanSeconds < RESCAN_GOAL_SECONDS
      }
    }
    process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    for (const index of indexes) index.close()
    await pool.close()
    await rm(base, { recursive: true, force: true })
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`scan bench failed: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
