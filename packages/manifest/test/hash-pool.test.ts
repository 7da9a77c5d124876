import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, open, rm, utimes, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  defaultHashWorkerUrl, FileChangedError, hashFile, hashingStats, HashPool, HashPoolClosedError, HashWorkerCrashedError,
  LocalIndex, scanDataset, type FileHasher, type FileHashes, type LocalFile
} from '../src/index.js'

const KiB = 1024
const MiB = 1024 * KiB
const MIN = 256 * KiB
const DS = 'models'
const T0 = 1_700_000_000_000

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest()
const view = (h: FileHashes): unknown => ({ size: h.size, chunkSize: h.chunkSize, hashes: hex(h.hashes), contentId: hex(h.contentId) })

let dir: string
let fileNo = 0
const pools: HashPool[] = []

async function tempFile (data: Uint8Array, name = `f${fileNo++}.bin`): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, data)
  return path
}

function newPool (init: ConstructorParameters<typeof HashPool>[0] = {}): HashPool {
  const pool = new HashPool(init)
  pools.push(pool)
  return pool
}

/** The settled outcome of a promise, so a test can assert on a rejection without racing it. */
async function outcome<T> (p: Promise<T>): Promise<{ value?: T, error?: any }> {
  return await p.then(value => ({ value }), (error: unknown) => ({ error }))
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-hash-pool-'))
})

afterEach(async () => {
  await Promise.all(pools.splice(0).map(async p => await p.close()))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('HashPool', () => {
  it('gives exactly what hashFile gives: empty, one byte, whole and partial chunks, chunks above the read buffer', async () => {
    const pool = newPool({ workers: 2 })
    const cases: Array<[number, number]> = [[0, MIN], [1, MIN], [3 * MIN, MIN], [3 * MIN + 5, MIN], [2 * 4 * MiB + 2 * MiB + 3, 4 * MiB]]
    for (const [size, chunkSize] of cases) {
      const data = randomBytes(size)
      const path = await tempFile(data)
      const fromPool = await pool.hash(path, chunkSize, { expectedSize: size })
      const onThread = await hashFile(path, chunkSize, { expectedSize: size })
      expect(view(fromPool), `size ${size}`).toEqual(view(onThread))
      expect(fromPool.hashes.length, `size ${size}`).toBe(Math.ceil(size / chunkSize) * 32)
      expect(fromPool.hashes).toBeInstanceOf(Uint8Array)
      expect(fromPool.contentId).toBeInstanceOf(Uint8Array)
    }
    // And independently of hashFile, for one multi-chunk file.
    const data = randomBytes(2 * MIN + 1)
    const h = await pool.hash(await tempFile(data), MIN)
    const chunks = Buffer.concat([sha256(data.subarray(0, MIN)), sha256(data.subarray(MIN, 2 * MIN)), sha256(data.subarray(2 * MIN))])
    expect(hex(h.hashes)).toBe(chunks.toString('hex'))
    expect(hex(h.contentId)).toBe(sha256(chunks).toString('hex'))
  })

  it('hashes on several workers at once and queues the rest, counting each file once in hashingStats', async () => {
    const pool = newPool({ workers: 2 })
    expect(pool.size).toBe(2)
    const files = await Promise.all([1, 2, 3, 4, 5, 6].map(async n => {
      const data = randomBytes(n * 100 * KiB)
      return { path: await tempFile(data), data }
    }))
    const before = { ...hashingStats }
    const jobs = files.map(f => pool.hash(f.path, MIN, { expectedSize: f.data.length }))
    expect(pool.running).toBe(2)
    expect(pool.queued).toBe(4)
    const results = await Promise.all(jobs)
    for (const [i, f] of files.entries()) expect(view(results[i])).toEqual(view(await hashFile(f.path, MIN)))
    expect(pool.running).toBe(0)
    expect(pool.queued).toBe(0)
    const bytes = files.reduce((sum, f) => sum + f.data.length, 0)
    // hashFile above counted each file a second time.
    expect(hashingStats.filesHashed).toBe(before.filesHashed + 2 * files.length)
    expect(hashingStats.bytesHashed).toBe(before.bytesHashed + 2 * bytes)
  })

  it('uses one worker per core by default', () => {
    expect(newPool().size).toBe(availableParallelism())
  })

  it('rejects a queued job at once when its signal aborts, and never starts it', async () => {
    const pool = newPool({ workers: 1 })
    const a = await tempFile(randomBytes(MIN))
    const b = await tempFile(randomBytes(MIN))
    const before = { ...hashingStats }
    const first = pool.hash(a, MIN)
    const controller = new AbortController()
    const second = outcome(pool.hash(b, MIN, { signal: controller.signal }))
    expect(pool.queued).toBe(1)
    controller.abort()
    const { error } = await second
    expect(error?.name).toBe('AbortError')
    expect(pool.queued).toBe(0)
    expect((await first).size).toBe(MIN)
    expect(hashingStats.filesHashed).toBe(before.filesHashed + 1)
    expect(hashingStats.bytesHashed).toBe(before.bytesHashed + MIN)
  })

  it('discards the result of a running job whose signal aborts, with the signal\'s reason, and keeps the worker', async () => {
    const pool = newPool({ workers: 1 })
    const big = await tempFile(randomBytes(8 * MiB))
    const small = randomBytes(1000)
    const smallPath = await tempFile(small)
    const before = { ...hashingStats }
    const controller = new AbortController()
    const aborted = outcome(pool.hash(big, MIN, { signal: controller.signal }))
    expect(pool.running).toBe(1)
    const reason = new Error('no longer wanted')
    controller.abort(reason)
    expect((await aborted).error).toBe(reason)
    // The same (only) worker hashes the next file correctly.
    const next = await pool.hash(smallPath, MIN, { expectedSize: 1000 })
    expect(hex(next.contentId)).toBe(sha256(sha256(small)).toString('hex'))
    expect(hashingStats.filesHashed).toBe(before.filesHashed + 1)
    expect(hashingStats.bytesHashed).toBe(before.bytesHashed + 1000)
  })

  it('stops a running job at its next read when aborted (a pipe that never ends)', async () => {
    const fifo = join(dir, `fifo-${fileNo++}`)
    execFileSync('mkfifo', [fifo])
    const pool = newPool({ workers: 1 })
    const controller = new AbortController()
    const aborted = outcome(pool.hash(fifo, MIN, { signal: controller.signal }))
    const writer = await open(fifo, 'w') // returns once the worker has opened the pipe
    try {
      await writer.write(Buffer.alloc(1000, 1))
      controller.abort()
      expect((await aborted).error?.name).toBe('AbortError')
      // The worker may be blocked in a read: the next bytes wake it, and it must stop there
      // instead of reading on to an end of file that never comes. (If it saw the abort before
      // blocking, it has already closed the pipe.)
      await writer.write(Buffer.alloc(1000, 2)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') throw err
      })
      const data = randomBytes(100)
      const next = await pool.hash(await tempFile(data), MIN)
      expect(hex(next.contentId)).toBe(sha256(sha256(data)).toString('hex'))
    } finally {
      await writer.close()
    }
  }, 20_000)

  it('discards a result that arrives after its job was aborted, and does not count it', async () => {
    // A stand-in worker that ignores the abort flag and answers every request with a made-up result.
    const script = join(dir, 'deaf-worker.mjs')
    await writeFile(script, `
      import { parentPort } from 'node:worker_threads'
      parentPort.on('message', (m) => parentPort.postMessage({ id: m.id, ok: true, size: 7, chunkSize: m.chunkSize, hashes: new Uint8Array(32), contentId: new Uint8Array(32) }))
    `)
    const pool = newPool({ workers: 1, workerUrl: pathToFileURL(script) })
    const path = await tempFile(randomBytes(MIN))
    const before = { ...hashingStats }
    const controller = new AbortController()
    const aborted = outcome(pool.hash(path, MIN, { signal: controller.signal }))
    controller.abort()
    expect((await aborted).error?.name).toBe('AbortError')
    // The worker is busy until its (ignored) answer arrives; the next job waits for it.
    const next = pool.hash(path, MIN)
    expect(pool.queued).toBe(1)
    expect((await next).size).toBe(7)
    expect(hashingStats.filesHashed).toBe(before.filesHashed + 1)
    expect(hashingStats.bytesHashed).toBe(before.bytesHashed + 7)
  })

  it('does not start a job whose signal is already aborted', async () => {
    const pool = newPool({ workers: 1 })
    const path = await tempFile(randomBytes(10))
    const { error } = await outcome(pool.hash(path, MIN, { signal: AbortSignal.abort() }))
    expect(error?.name).toBe('AbortError')
    expect(pool.running + pool.queued).toBe(0)
  })

  it('raises FileChangedError when the size read differs from expectedSize, and keeps system error codes', async () => {
    const pool = newPool({ workers: 1 })
    const path = await tempFile(randomBytes(1000))
    const before = hashingStats.filesHashed
    for (const expectedSize of [999, 1001, 0]) {
      const { error } = await outcome(pool.hash(path, MIN, { expectedSize }))
      expect(error, `expectedSize ${expectedSize}`).toBeInstanceOf(FileChangedError)
      expect(error.name).toBe('FileChangedError')
    }
    expect(hashingStats.filesHashed).toBe(before)
    const missing = await outcome(pool.hash(join(dir, 'no-such-file'), MIN))
    expect(missing.error).toMatchObject({ code: 'ENOENT', syscall: 'open', path: join(dir, 'no-such-file') })
  })

  it('rejects queued and running jobs with HashPoolClosedError on close, and every later job', async () => {
    const pool = newPool({ workers: 1 })
    const paths = await Promise.all([0, 1, 2].map(async () => await tempFile(randomBytes(2 * MiB))))
    const jobs = paths.map(p => outcome(pool.hash(p, MIN)))
    expect(pool.running).toBe(1)
    expect(pool.queued).toBe(2)
    await pool.close()
    for (const job of jobs) {
      const { error } = await job
      expect(error).toBeInstanceOf(HashPoolClosedError)
      expect(error.name).toBe('HashPoolClosedError')
    }
    expect(pool.running + pool.queued).toBe(0)
    await expect(pool.hash(paths[0], MIN)).rejects.toBeInstanceOf(HashPoolClosedError)
  })

  it('fails the job of a worker that crashes with a clear error, and replaces the worker', async () => {
    // A worker script that dies on one file name and otherwise is the real worker.
    const script = join(dir, 'crashing-worker.mjs')
    await writeFile(script, `
      import { parentPort } from 'node:worker_threads'
      const on = parentPort.on.bind(parentPort)
      parentPort.on = (event, listener) => on(event, (m) => {
        if (m.path.endsWith('crash-me')) throw new Error('deliberate crash')
        listener(m)
      })
      await import(${JSON.stringify(defaultHashWorkerUrl().href)})
    `)
    const pool = newPool({ workers: 1, workerUrl: pathToFileURL(script) })
    const good = randomBytes(3000)
    const goodPath = await tempFile(good)
    const doomed = await tempFile(randomBytes(10), 'crash-me')
    expect(hex((await pool.hash(goodPath, MIN)).contentId)).toBe(sha256(sha256(good)).toString('hex'))

    const crashed = outcome(pool.hash(doomed, MIN))
    const queuedBehind = pool.hash(goodPath, MIN)
    expect(pool.queued).toBe(1)
    const { error } = await crashed
    expect(error).toBeInstanceOf(HashWorkerCrashedError)
    expect(error.name).toBe('HashWorkerCrashedError')
    expect(error.message).toContain(doomed)
    expect(error.message).toContain('deliberate crash')
    // The job that waited behind the crash runs on a new worker.
    expect(hex((await queuedBehind).contentId)).toBe(sha256(sha256(good)).toString('hex'))

    const afterCrash = [pool.hash(goodPath, MIN), pool.hash(goodPath, MIN)]
    for (const h of await Promise.all(afterCrash)) expect(hex(h.contentId)).toBe(sha256(sha256(good)).toString('hex'))
  })

  it('says how to build the worker when its script is missing', () => {
    expect(() => new HashPool({ workerUrl: pathToFileURL(join(dir, 'missing-worker.js')) })).toThrow(/missing-worker\.js is missing; build the packages first/)
  })

  it('ends idle workers, and the next job starts a new one that hashes correctly', async () => {
    const pool = newPool({ workers: 2, idleMs: 50 })
    const data = randomBytes(3 * MIN + 1)
    const path = await tempFile(data)
    const first = await Promise.all([pool.hash(path, MIN), pool.hash(path, MIN)])
    const deadline = Date.now() + 10_000
    while (pool.workers > 0) {
      if (Date.now() > deadline) throw new Error(`workers still alive after 10 s: ${pool.workers}`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    const again = await pool.hash(path, MIN)
    // A new worker did the job (it may already have ended again: the idle time is short).
    expect(pool.workers).toBeLessThanOrEqual(1)
    expect(view(again)).toEqual(view(first[0]))
    expect(view(again)).toEqual(view(await hashFile(path, MIN)))
  })

  it('rejects an idle time that is not positive', () => {
    expect(() => new HashPool({ idleMs: 0 })).toThrow(RangeError)
  })

  it('rejects a worker count that is not a positive integer', () => {
    expect(() => new HashPool({ workers: 0 })).toThrow(RangeError)
    expect(() => new HashPool({ workers: 1.5 })).toThrow(RangeError)
  })
})

describe('scanDataset with a hasher', () => {
  let caseNo = 0
  const indexes: LocalIndex[] = []

  afterEach(() => {
    for (const index of indexes.splice(0)) {
      try { index.close() } catch {}
    }
  })

  async function newCase (): Promise<{ root: string, index: (name: string) => LocalIndex }> {
    const base = join(dir, `scan${caseNo++}`)
    const root = join(base, 'data')
    await mkdir(root, { recursive: true })
    return {
      root,
      index: (name: string) => {
        const index = new LocalIndex(join(base, `${name}.db`))
        indexes.push(index)
        return index
      }
    }
  }

  async function put (root: string, rel: string, data: string | Uint8Array, mtimeMs = T0): Promise<void> {
    const path = join(root, rel)
    await mkdir(join(path, '..'), { recursive: true })
    await writeFile(path, data)
    await utimes(path, mtimeMs / 1000, mtimeMs / 1000)
  }

  const entries = (index: LocalIndex): unknown[] => index.filesOf(DS)
    .sort((x, y) => x.path < y.path ? -1 : x.path > y.path ? 1 : 0)
    .map((f: LocalFile) => ({ ...f, contentId: hex(f.contentId), hashes: hex(f.hashes) }))

  it('builds the same index with a HashPool as with hashFile, sequence numbers included, through changes and deletions', async () => {
    const { root, index } = await newCase()
    await put(root, 'empty', '')
    await put(root, 'one', 'x')
    await put(root, 'multi.bin', randomBytes(3 * MIN + 5))
    for (let i = 0; i < 12; i++) await put(root, `sub/${i % 3}/file-${i}.bin`, randomBytes(1000 + i * 5000))
    const plain = index('plain')
    const pooled = index('pooled')
    const pool = newPool({ workers: 2 })
    const scanBoth = async (at: number): Promise<void> => {
      const a = await scanDataset(DS, root, plain, { stableMs: 5000, now: () => at })
      const b = await scanDataset(DS, root, pooled, { stableMs: 5000, now: () => at, hasher: pool.hash })
      expect(b.pending).toBe(a.pending)
      expect(b.changed.map(f => [f.path, f.seq, f.version, f.deleted])).toEqual(a.changed.map(f => [f.path, f.seq, f.version, f.deleted]))
    }

    const before = hashingStats.filesHashed
    await scanBoth(T0 + 60_000)
    expect(hashingStats.filesHashed).toBe(before + 2 * 15)
    expect(pooled.sequence).toBe(15)
    expect(entries(pooled)).toEqual(entries(plain))

    await put(root, 'one', 'y', T0 + 61_000) // same size, new content
    await put(root, 'sub/1/file-4.bin', randomBytes(70_000), T0 + 61_000)
    await utimes(join(root, 'multi.bin'), (T0 + 61_000) / 1000, (T0 + 61_000) / 1000) // touched only
    await rm(join(root, 'sub/2'), { recursive: true })
    await put(root, 'fresh', 'still being written', T0 + 69_000)
    await scanBoth(T0 + 70_000)
    expect(pooled.get(DS, 'one')).toMatchObject({ version: 2, deleted: false })
    expect(pooled.get(DS, 'multi.bin')).toMatchObject({ version: 1, mtimeMs: T0 + 61_000 })
    expect(pooled.get(DS, 'sub/2/file-2.bin')).toMatchObject({ deleted: true, version: 2 })
    expect(pooled.get(DS, 'fresh')).toBeUndefined()
    expect(entries(pooled)).toEqual(entries(plain))
  })

  it('records results in walk order whatever order the hashes finish in', async () => {
    const { root, index } = await newCase()
    for (let i = 0; i < 6; i++) await put(root, `f${i}.bin`, randomBytes(100 + i))
    const sequential = index('sequential')
    await scanDataset(DS, root, sequential, { stableMs: 0, now: () => T0, hashConcurrency: 1 })

    // Holds every call until all six are in flight, then finishes them last first.
    const waiting: Array<{ args: Parameters<FileHasher>, resolve: (h: FileHashes) => void }> = []
    const finishOrder: string[] = []
    const reversing: FileHasher = async (...args) => await new Promise<FileHashes>((resolve) => {
      waiting.push({ args, resolve })
      if (waiting.length < 6) return
      void (async () => {
        for (const call of [...waiting].reverse()) {
          call.resolve(await hashFile(...call.args))
          finishOrder.push(call.args[0])
        }
      })()
    })
    const reversed = index('reversed')
    const r = await scanDataset(DS, root, reversed, { stableMs: 0, now: () => T0, hasher: reversing, hashConcurrency: 6 })
    const launchOrder = waiting.map(call => call.args[0].slice(root.length + 1))
    expect(finishOrder.map(p => p.slice(root.length + 1))).toEqual([...launchOrder].reverse())
    expect(r.changed.map(f => [f.path, f.seq])).toEqual(launchOrder.map((p, i) => [p, i + 1]))
    expect(entries(reversed)).toEqual(entries(sequential))
  })

  it('keeps at most hashConcurrency files in flight', async () => {
    const { root, index } = await newCase()
    for (let i = 0; i < 8; i++) await put(root, `f${i}.bin`, randomBytes(MIN + i))
    for (const concurrency of [1, 3]) {
      let inFlight = 0
      let most = 0
      const counting: FileHasher = async (...args) => {
        most = Math.max(most, ++inFlight)
        try {
          return await hashFile(...args)
        } finally {
          inFlight--
        }
      }
      const r = await scanDataset(DS, root, index(`c${concurrency}`), { stableMs: 0, now: () => T0, hasher: counting, hashConcurrency: concurrency })
      expect(r.changed).toHaveLength(8)
      expect(most, `hashConcurrency ${concurrency}`).toBe(concurrency)
    }
  })

  it('leaves a file the hasher finds changed pending, and indexes the others', async () => {
    const { root, index } = await newCase()
    await put(root, 'a.bin', 'alpha')
    await put(root, 'b.bin', 'bravo')
    await put(root, 'c.bin', 'charlie')
    const hasher: FileHasher = async (path, chunkSize, options) => {
      if (path.endsWith('b.bin')) throw new FileChangedError(path)
      return await hashFile(path, chunkSize, options)
    }
    const idx = index('changed')
    const r = await scanDataset(DS, root, idx, { stableMs: 0, now: () => T0, hasher })
    expect(r.pending).toBe(1)
    expect(r.changed.map(f => f.path).sort()).toEqual(['a.bin', 'c.bin'])
    expect(idx.get(DS, 'b.bin')).toBeUndefined()
  })

  it('fails the scan with the hasher\'s error and aborts the hashes still in flight before returning', async () => {
    const { root, index } = await newCase()
    for (let i = 0; i < 4; i++) await put(root, `f${i}.bin`, `file ${i}`)
    const signals: AbortSignal[] = []
    let calls = 0
    let waitingForAll = (): void => {}
    const failure = Object.assign(new Error('permission denied'), { code: 'EACCES' })
    // The first file to be hashed fails once all four are in flight; the others wait for their abort.
    const hasher: FileHasher = async (_path, _chunkSize, options) => await new Promise<FileHashes>((_resolve, reject) => {
      const signal = options.signal!
      signals.push(signal)
      const mine = calls++
      if (mine === 0) {
        waitingForAll = () => reject(failure)
        return
      }
      signal.addEventListener('abort', () => reject(signal.reason), { once: true })
      if (calls === 4) waitingForAll()
    })
    const idx = index('failing')
    await expect(scanDataset(DS, root, idx, { stableMs: 0, now: () => T0, hasher, hashConcurrency: 4 })).rejects.toBe(failure)
    expect(signals).toHaveLength(4)
    expect(signals.every(s => s.aborted)).toBe(true)
    expect(idx.sequence).toBe(0)
  })
})
