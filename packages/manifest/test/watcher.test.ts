import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DirectoryWatcher, LocalIndex, scanDataset } from '../src/index.js'

/** Resolves on the next call of the returned callback, or rejects after `ms`. */
function nextCall (ms = 5_000): { callback: () => void, next: () => Promise<void> } {
  let resolve: (() => void) | undefined
  return {
    callback: () => { resolve?.(); resolve = undefined },
    next: async () => await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`no change reported within ${ms} ms`)), ms)
      resolve = () => { clearTimeout(timer); res() }
    })
  }
}

describe('DirectoryWatcher', () => {
  let root: string
  const watchers: DirectoryWatcher[] = []
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-watch-'))
  })
  afterEach(async () => {
    for (const w of watchers.splice(0)) w.close()
    await rm(root, { recursive: true, force: true })
  })

  it('reports a file written in any watched directory, nested ones included', async () => {
    await mkdir(join(root, 'a', 'b'), { recursive: true })
    const { callback, next } = nextCall()
    const w = new DirectoryWatcher(root, callback, () => {})
    watchers.push(w)
    w.update(['', 'a', 'a/b'])
    expect(w.size).toBe(3)
    let change = next()
    await writeFile(join(root, 'a', 'b', 'deep.bin'), 'x')
    await change
    change = next()
    await writeFile(join(root, 'top.bin'), 'x')
    await change
  })

  it('says which directory changed, and drops the watch of a directory removed and made again (whose watch went quiet)', async () => {
    await mkdir(join(root, 'a', 'S'), { recursive: true })
    const seen: string[] = []
    let notify: (() => void) | undefined
    const w = new DirectoryWatcher(root, (dir) => { seen.push(dir); notify?.() }, () => {})
    watchers.push(w)
    w.update(['', 'a', 'a/S'])
    /** Waits (at most 5 s) until `check` holds after some report. */
    const until = async (check: () => boolean): Promise<void> => {
      const deadline = Date.now() + 5_000
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out; reports: ${seen.join(', ')}`)
        await new Promise<void>(resolve => { notify = resolve; setTimeout(resolve, 100) })
      }
    }
    await writeFile(join(root, 'a', 'S', 'f'), 'x')
    await until(() => seen.includes('a/S'))
    expect(seen.every(d => d === 'a/S')).toBe(true)
    await rm(join(root, 'a', 'S'), { recursive: true })
    await mkdir(join(root, 'a', 'S'))
    await until(() => !w.has('a/S') && seen.includes('a'))
    expect(w.has('a')).toBe(true)
    // Watched again, the new directory reports its files.
    w.add(['a/S'])
    seen.length = 0
    await writeFile(join(root, 'a', 'S', 'g'), 'x')
    await until(() => seen.includes('a/S'))
  })

  it('follows the directories the scanner reports: new ones are added, vanished ones dropped', async () => {
    await mkdir(join(root, 'one'), { recursive: true })
    await writeFile(join(root, 'one', 'f'), 'x')
    const index = new LocalIndex(':memory:')
    const w = new DirectoryWatcher(root, () => {}, () => {})
    watchers.push(w)
    const first = await scanDataset('ds', root, index, { stableMs: 0 })
    expect(first.directories.sort()).toEqual(['', 'one'])
    w.update(first.directories)
    expect(w.size).toBe(2)
    await mkdir(join(root, 'two', 'three'), { recursive: true })
    await rm(join(root, 'one'), { recursive: true })
    const second = await scanDataset('ds', root, index, { stableMs: 0 })
    expect(second.directories.sort()).toEqual(['', 'two', 'two/three'])
    w.update(second.directories)
    expect(w.size).toBe(3)
    index.close()
  })

  it('watches at most the configured number of directories and says so once', async () => {
    for (const d of ['a', 'b', 'c']) await mkdir(join(root, d))
    const problems: string[] = []
    const w = new DirectoryWatcher(root, () => {}, (message) => problems.push(message), 2)
    watchers.push(w)
    w.update(['', 'a', 'b', 'c'])
    w.update(['', 'a', 'b', 'c'])
    expect(w.size).toBe(2)
    expect(problems).toEqual(['not every directory is watched; periodic rescans cover the rest'])
  })

  it('skips a directory that is gone by the time it is watched, and closes cleanly', () => {
    const w = new DirectoryWatcher(root, () => {}, () => {})
    w.update(['', 'missing'])
    expect(w.size).toBe(1)
    w.close()
    expect(w.size).toBe(0)
    w.update([''])
    expect(w.size).toBe(0)
  })
})
