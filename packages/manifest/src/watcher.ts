import { statSync, watch, type FSWatcher } from 'node:fs'
import { basename, join } from 'node:path'

/**
 * Directories watched per dataset at most. Beyond it the rest of the tree is seen by the
 * periodic rescans only (said once in the log).
 */
export const DEFAULT_MAX_WATCHED_DIRECTORIES = 20_000

/**
 * Watches the directories of a dataset, one non-recursive watch per directory, and calls
 * `onChange` on any event in any of them. A directory's watch reports its files being created,
 * written, renamed and removed, so files need no watch of their own.
 *
 * Why not `fs.watch(root, { recursive: true })`: on Linux Node implements it with one watch and
 * one stat object per *file*: about 2.8 KB of memory each (85 MB for 30,000 files), and the
 * kernel's inotify limit (max_user_watches) caps the files of a dataset. Datasets hold millions
 * of files in thousands of directories.
 *
 * The scanner says which directories exist; `update` brings the watches in line after every
 * scan. A directory created since the last scan shows up as an event in its parent, whose scan
 * then finds it (and its files, which the scan announces once stable) and watches it.
 */
export class DirectoryWatcher {
  private readonly watchers = new Map<string, FSWatcher>()
  private limitReported = false
  private closed = false

  constructor (
    private readonly root: string,
    /** Called with the directory (relative to the root) whose watch reported an event or failed. */
    private readonly onChange: (dir: string) => void,
    private readonly onProblem: (message: string, fields: Record<string, unknown>) => void,
    private readonly maxDirectories = DEFAULT_MAX_WATCHED_DIRECTORIES
  ) {}

  /** How many directories are watched now. */
  get size (): number {
    return this.watchers.size
  }

  /** Whether this directory is watched now. */
  has (dir: string): boolean {
    return this.watchers.has(dir)
  }

  /** Watches exactly these directories (relative to the root, '' for the root itself). */
  update (directories: Iterable<string>): void {
    if (this.closed) return
    const wanted = new Set(directories)
    for (const [dir, watcher] of this.watchers) {
      if (wanted.has(dir)) continue
      watcher.close()
      this.watchers.delete(dir)
    }
    this.add(wanted)
  }

  /**
   * Watches these directories too (a scan of part of the tree found them); the next `update`
   * drops those gone. Returns the directories watched from now on that were not before.
   */
  add (directories: Iterable<string>): string[] {
    const added: string[] = []
    if (this.closed) return added
    for (const dir of directories) {
      if (this.watchers.has(dir)) continue
      if (this.watchers.size >= this.maxDirectories) {
        this.reportLimit(`more than ${this.maxDirectories} directories`)
        break
      }
      const path = join(this.root, dir)
      const name = basename(path)
      let watcher: FSWatcher
      try {
        const ino = statSync(path).ino
        watcher = watch(path, (event, filename) => {
          // The directory itself removed or moved (its watch then goes quiet, even if a new one
          // appears at its path): dropped, so that scans walk the path again and watch it anew.
          if (event === 'rename' && filename === name && !this.sameDirectory(path, ino)) this.drop(dir, watcher)
          this.onChange(dir)
        })
      } catch (err: any) {
        if (err.code === 'ENOENT' || err.code === 'ENOTDIR') continue
        if (err.code === 'ENOSPC' || err.code === 'EMFILE') {
          this.reportLimit(`the system's limit on watches was reached (${String(err.code)}; see fs.inotify.max_user_watches)`)
          break
        }
        this.onProblem('cannot watch a directory; periodic rescans cover it', { root: this.root, dir, error: err.message })
        continue
      }
      // A watch that fails (its directory removed, most often) is dropped; the next scan decides what is left.
      watcher.on('error', () => {
        this.drop(dir, watcher)
        this.onChange(dir)
      })
      this.watchers.set(dir, watcher)
      added.push(dir)
    }
    return added
  }

  private drop (dir: string, watcher: FSWatcher): void {
    watcher.close()
    if (this.watchers.get(dir) === watcher) this.watchers.delete(dir)
  }

  private sameDirectory (path: string, ino: number): boolean {
    try {
      return statSync(path).ino === ino
    } catch {
      return false
    }
  }

  close (): void {
    this.closed = true
    for (const watcher of this.watchers.values()) watcher.close()
    this.watchers.clear()
  }

  private reportLimit (why: string): void {
    if (this.limitReported) return
    this.limitReported = true
    this.onProblem('not every directory is watched; periodic rescans cover the rest', { root: this.root, watched: this.watchers.size, why })
  }
}
