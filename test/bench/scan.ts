/**
 * Scan benchmark: hashing throughput of a fresh scan on the worker pool against one thread
 * hashing the same bytes, and the time of a rescan that finds nothing changed.
 *
 *   npx node test/bench/scan.ts [--files 256] [--file-mib 8] [--small-files 100000] [--workers N]
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
    workers: Math.max(1, Math.floor(count(values.workers, env.SCAN_BENCH_WORKERS, availableParallelism(), '--workers'))),
    dir: values.dir ?? env.SCAN_BENCH_DIR ?? tmpdir()
  }
}

const progress = (message: string): void => { process.stderr.write(`scan bench: ${message}\n`) }
const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits
const mbPerSecond = (bytes: number, s: number): number => round(bytes / 1e6 / s, 1)
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

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

    progress('(a) hashing on one thread')
    let start = process.hrtime.bigint()
    const baselineIds = hashOnOneThread(bigRoot, names, s.fileBytes)
    const baselineSeconds = seconds(start)

    progress(`(b) fresh scan on a pool of ${s.workers} workers`)
    const pooledIndex = openIndex('pooled')
    start = process.hrtime.bigint()
    const pooled = await scanDataset('bench', bigRoot, pooledIndex, { stableMs: 0, hasher: pool.hash })
    const pooledSeconds = seconds(start)
    if (pooled.changed.length !== s.files || pooled.pending !== 0) throw new Error(`pooled scan indexed ${pooled.changed.length} of ${s.files} files (${pooled.pending} pending)`)
    for (const f of pooled.changed) {
      if (hex(f.contentId) !== baselineIds.get(f.path)) throw new Error(`${f.path}: the pooled scan and the baseline disagree on the content id`)
    }

    progress('(b1) fresh scan on the main thread (hashFile), for reference')
    start = process.hrtime.bigint()
    const plain = await scanDataset('bench', bigRoot, openIndex('plain'), { stableMs: 0 })
    const plainSeconds = seconds(start)
    if (plain.changed.length !== s.files) throw new Error(`main-thread scan indexed ${plain.changed.length} of ${s.files} files`)
    rmSync(bigRoot, { recursive: true, force: true })

    progress(`(c) writing ${s.smallFiles} files of ${s.smallBytes} bytes`)
    writeSmallFiles(smallRoot, s)
    const smallIndex = openIndex('small')
    progress('(c) first scan')
    start = process.hrtime.bigint()
    const first = await scanDataset('bench', smallRoot, smallIndex, { stableMs: 0, hasher: pool.hash })
    const firstSeconds = seconds(start)
    if (first.changed.length !== s.smallFiles || first.pending !== 0) throw new Error(`first scan indexed ${first.changed.length} of ${s.smallFiles} files (${first.pending} pending)`)
    progress('(c) rescan')
    start = process.hrtime.bigint()
    const again = await scanDataset('bench', smallRoot, smallIndex, { stableMs: 0, hasher: pool.hash })
    const rescanSeconds = seconds(start)
    if (again.changed.length !== 0 || again.pending !== 0) throw new Error(`the rescan found ${again.changed.length} changed and ${again.pending} pending files; expected none`)

    const ratio = (bytes / pooledSeconds) / (bytes / baselineSeconds)
    const result = {
      benchmark: 'scan',
      node: process.version,
      cores: availableParallelism(),
      cpu: cpus()[0]?.model ?? 'unknown',
      loadAverage1m: round(load, 2),
      pageCache: 'warm: the files were written just before; (a) and (b) read the same cached bytes',
      hashing: {
        files: s.files,
        fileBytes: s.fileBytes,
        bytes,
        chunkSize: chooseChunkSize(s.fileBytes),
        workers: s.workers,
        oneThread: { seconds: round(baselineSeconds), mbPerSecond: mbPerSecond(bytes, baselineSeconds) },
        poolScan: { seconds: round(pooledSeconds), mbPerSecond: mbPerSecond(bytes, pooledSeconds) },
        mainThreadScan: { seconds: round(plainSeconds), mbPerSecond: mbPerSecond(bytes, plainSeconds) },
        ratio: round(ratio, 2),
        ratioGoal: RATIO_GOAL,
        ratioMet: ratio >= RATIO_GOAL
      },
      rescan: {
        files: s.smallFiles,
        fileBytes: s.smallBytes,
        firstScanSeconds: round(firstSeconds),
        seconds: round(rescanSeconds),
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
