import { DatabaseSync, type StatementSync } from 'node:sqlite'
import type { FileEntry } from '@shoal/wire'

/** One file of this node as the local index records it. A tombstone has deleted = true. */
export interface LocalFile {
  dataset: string
  path: string
  size: number
  mtimeMs: number
  /** Inode number: a replaced file (same size and mtime) is still noticed. */
  ino: number
  mode: number
  contentId: Uint8Array
  chunkSize: number
  /** Concatenated chunk hashes; empty for tombstones. */
  hashes: Uint8Array
  version: number
  /** This node's sequence number at the last change of this entry. */
  seq: number
  deleted: boolean
}

/** The fields of an indexed file that say whether the disk still holds the same file. */
/** An index row as a scan compares it with the disk (the row object SQLite returns, used as it is). */
export interface IndexedStat {
  path: string
  size: number
  mtimeMs: number
  ino: number
  /** Non-zero: the row is a tombstone. */
  deleted: number
}

/** A file this node is receiving: the chunks it holds so far (verified), served to others. */
export interface PartialFile {
  dataset: string
  path: string
  contentId: Uint8Array
  size: number
  chunkSize: number
  version: number
  mode: number
  mtimeMs: number
  have: Uint8Array
  seq: number
}

const EMPTY = new Uint8Array(0) as Uint8Array<ArrayBuffer>

const SCHEMA = `
CREATE TABLE IF NOT EXISTS files (
  dataset TEXT NOT NULL,
  path TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ms INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  content_id BLOB NOT NULL,
  chunk_size INTEGER NOT NULL,
  hashes BLOB NOT NULL,
  version INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  PRIMARY KEY (dataset, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_seq ON files (seq);
CREATE INDEX IF NOT EXISTS files_content ON files (content_id);
CREATE TABLE IF NOT EXISTS partials (
  dataset TEXT NOT NULL,
  path TEXT NOT NULL,
  content_id BLOB NOT NULL,
  size INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL,
  version INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  mtime_ms INTEGER NOT NULL,
  have BLOB NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (dataset, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS partials_seq ON partials (seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
`

interface Row {
  dataset: string
  path: string
  size: number
  mtime_ms: number
  ino: number
  mode: number
  content_id: Uint8Array
  chunk_size: number
  hashes: Uint8Array
  version: number
  seq: number
  deleted: number
}

function fromRow (row: Row): LocalFile {
  return {
    dataset: row.dataset,
    path: row.path,
    size: row.size,
    mtimeMs: row.mtime_ms,
    ino: row.ino,
    mode: row.mode,
    contentId: row.content_id,
    chunkSize: row.chunk_size,
    hashes: row.hashes,
    version: row.version,
    seq: row.seq,
    deleted: row.deleted !== 0
  }
}

export type NewLocalFile = Omit<LocalFile, 'seq'>

interface PartialRow {
  dataset: string
  path: string
  content_id: Uint8Array
  size: number
  chunk_size: number
  version: number
  mode: number
  mtime_ms: number
  have: Uint8Array
  seq: number
}

function fromPartialRow (row: PartialRow): PartialFile {
  return {
    dataset: row.dataset,
    path: row.path,
    contentId: row.content_id,
    size: row.size,
    chunkSize: row.chunk_size,
    version: row.version,
    mode: row.mode,
    mtimeMs: row.mtime_ms,
    have: row.have,
    seq: row.seq
  }
}

/**
 * The persisted index of this node's files (node:sqlite, WAL). Every change takes the next
 * sequence number in the same transaction, so the sequence and the entries never disagree
 * after a crash.
 */
export class LocalIndex {
  private readonly db: DatabaseSync
  private readonly stmts: Record<'get' | 'put' | 'touch' | 'changes' | 'byContent' | 'dataset' | 'getMeta' | 'setMeta' |
  'getPartial' | 'putPartial' | 'deletePartial' | 'allPartials', StatementSync>
  private seq: number
  private statsPageStmts?: [StatementSync, StatementSync]

  constructor (file: string) {
    this.db = new DatabaseSync(file)
    this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;')
    this.db.exec(SCHEMA)
    this.stmts = {
      get: this.db.prepare('SELECT * FROM files WHERE dataset = ? AND path = ?'),
      put: this.db.prepare(`INSERT INTO files (dataset, path, size, mtime_ms, ino, mode, content_id, chunk_size, hashes, version, seq, deleted)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (dataset, path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, ino = excluded.ino,
          mode = excluded.mode, content_id = excluded.content_id, chunk_size = excluded.chunk_size, hashes = excluded.hashes,
          version = excluded.version, seq = excluded.seq, deleted = excluded.deleted`),
      touch: this.db.prepare('UPDATE files SET size = ?, mtime_ms = ?, ino = ? WHERE dataset = ? AND path = ?'),
      // One row per path, its latest change: a partial row exists only while it is newer than the
      // file row (put() deletes it), and of the two the older is left out either way.
      changes: this.db.prepare(`SELECT dataset, path, size, mtime_ms, mode, content_id, chunk_size, version, seq, deleted, 0 AS partial, NULL AS have
          FROM files AS f WHERE seq > ? AND NOT EXISTS (SELECT 1 FROM partials AS p WHERE p.dataset = f.dataset AND p.path = f.path AND p.seq > f.seq)
        UNION ALL
        SELECT dataset, path, size, mtime_ms, mode, content_id, chunk_size, version, seq, 0 AS deleted, 1 AS partial, have
          FROM partials AS p WHERE seq > ? AND NOT EXISTS (SELECT 1 FROM files AS f WHERE f.dataset = p.dataset AND f.path = p.path AND f.seq > p.seq)
        ORDER BY seq LIMIT ?`),
      byContent: this.db.prepare('SELECT * FROM files WHERE content_id = ? AND deleted = 0 LIMIT 1'),
      dataset: this.db.prepare('SELECT * FROM files WHERE dataset = ?'),
      getMeta: this.db.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      getPartial: this.db.prepare('SELECT * FROM partials WHERE dataset = ? AND path = ?'),
      putPartial: this.db.prepare(`INSERT INTO partials (dataset, path, content_id, size, chunk_size, version, mode, mtime_ms, have, seq)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (dataset, path) DO UPDATE SET content_id = excluded.content_id, size = excluded.size, chunk_size = excluded.chunk_size,
          version = excluded.version, mode = excluded.mode, mtime_ms = excluded.mtime_ms, have = excluded.have, seq = excluded.seq`),
      deletePartial: this.db.prepare('DELETE FROM partials WHERE dataset = ? AND path = ?'),
      allPartials: this.db.prepare('SELECT * FROM partials')
    }
    this.seq = this.getMeta('sequence') ?? 0
  }

  /** This node's sequence number: the seq of its latest change. */
  get sequence (): number {
    return this.seq
  }

  getMeta (key: string): number | undefined {
    const row = this.stmts.getMeta.get(key) as { value: number } | undefined
    return row?.value
  }

  setMeta (key: string, value: number): void {
    this.stmts.setMeta.run(key, value)
  }

  get (dataset: string, path: string): LocalFile | undefined {
    const row = this.stmts.get.get(dataset, path) as Row | undefined
    return row == null ? undefined : fromRow(row)
  }

  /** Records a change: the entry takes the next sequence number (and supersedes a partial one). */
  put (file: NewLocalFile): LocalFile {
    const seq = this.nextSequence(() => {
      this.stmts.put.run(file.dataset, file.path, file.size, file.mtimeMs, file.ino, file.mode, file.contentId,
        file.chunkSize, file.hashes, file.version, this.seq + 1, file.deleted ? 1 : 0)
      this.stmts.deletePartial.run(file.dataset, file.path)
    })
    return { ...file, seq }
  }

  /** Runs `write` and stores the next sequence number in one transaction; returns that number. */
  private nextSequence (write: () => void): number {
    const seq = this.seq + 1
    this.db.exec('BEGIN')
    try {
      write()
      this.setMeta('sequence', seq)
      this.db.exec('COMMIT')
    } catch (err) {
      this.db.exec('ROLLBACK')
      throw err
    }
    this.seq = seq
    return seq
  }

  /** Updates what was observed on disk without making it a change (same content). */
  touch (dataset: string, path: string, size: number, mtimeMs: number, ino: number): void {
    this.stmts.touch.run(size, mtimeMs, ino, dataset, path)
  }

  /**
   * Up to `limit` changes after `seq` in wire form, oldest first, one per path (the latest change of each):
   * a file being received is listed as partial (with its bitfield) when that is its latest change.
   * Chunk hashes are left out, and a record of any size is read a page at a time, in bounded
   * memory: the next page starts after the last seq of this one.
   */
  changes (seq: number, limit: number): FileEntry[] {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, not ${limit}`)
    const rows = this.stmts.changes.all(seq, seq, limit) as unknown as Array<Omit<Row, 'ino' | 'hashes' | 'content_id'> & { content_id: Uint8Array<ArrayBuffer>, partial: number, have: Uint8Array<ArrayBuffer> | null }>
    return rows.map(r => ({
      dataset: r.dataset,
      path: r.path,
      size: r.size,
      mtimeMs: r.mtime_ms,
      mode: r.mode,
      contentId: r.content_id,
      chunkSize: r.chunk_size,
      version: r.version,
      seq: r.seq,
      deleted: r.deleted !== 0,
      partial: r.partial !== 0,
      have: r.have ?? EMPTY
    }))
  }

  getPartial (dataset: string, path: string): PartialFile | undefined {
    const row = this.stmts.getPartial.get(dataset, path) as PartialRow | undefined
    return row == null ? undefined : fromPartialRow(row)
  }

  /** Records the progress of a file being received: a change, with the next sequence number. */
  putPartial (partial: Omit<PartialFile, 'seq'>): PartialFile {
    const seq = this.nextSequence(() => {
      this.stmts.putPartial.run(partial.dataset, partial.path, partial.contentId, partial.size, partial.chunkSize, partial.version,
        partial.mode, partial.mtimeMs, partial.have, this.seq + 1)
    })
    return { ...partial, seq }
  }

  /**
   * Abandons a partial file. If a complete version of the path exists it becomes the latest
   * change again (re-recorded with a new sequence number); otherwise the partial entry stays,
   * with an empty bitfield, so peers learn this node holds none of it.
   */
  dropPartial (dataset: string, path: string): void {
    const partial = this.getPartial(dataset, path)
    if (partial == null) return
    const complete = this.get(dataset, path)
    if (complete != null) {
      this.put(complete)
      return
    }
    if (partial.have.some(b => b !== 0)) this.putPartial({ ...partial, have: new Uint8Array(partial.have.length) })
  }

  allPartials (): PartialFile[] {
    return (this.stmts.allPartials.all() as unknown as PartialRow[]).map(fromPartialRow)
  }

  filesOf (dataset: string): LocalFile[] {
    return (this.stmts.dataset.all(dataset) as unknown as Row[]).map(fromRow)
  }

  /**
   * What a rescan compares with the disk, for up to `limit` paths of a dataset after `after` (or
   * from it, `inclusive`), in
   * the index's own order (SQLite's BINARY collation: the bytes of the UTF-8 paths, see
   * `compareUtf8`): no hashes, no content ids. A rescan reads a page at a time, never all at once.
   */
  statsPage (dataset: string, after: string | undefined, limit: number, inclusive = false): IndexedStat[] {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, not ${limit}`)
    const stmts = this.statsPageStmts ??= [
      this.db.prepare('SELECT path, size, mtime_ms AS mtimeMs, ino, deleted FROM files WHERE dataset = ? AND path > ? ORDER BY path LIMIT ?'),
      this.db.prepare('SELECT path, size, mtime_ms AS mtimeMs, ino, deleted FROM files WHERE dataset = ? AND path >= ? ORDER BY path LIMIT ?')
    ]
    return stmts[inclusive ? 1 : 0].all(dataset, after ?? '', limit) as unknown as IndexedStat[]
  }

  /** Live (not deleted) files of a dataset. */
  liveCount (dataset: string): number {
    return (this.db.prepare('SELECT count(*) AS n FROM files WHERE dataset = ? AND deleted = 0').get(dataset) as { n: number }).n
  }

  /**
   * Forgets up to `limit` tombstones with seq <= `uptoSeq` (every known node has seen them) and
   * returns how many went. Not a change: the sequence number stays, nothing else is touched.
   * Callers with many to forget call it again until it returns less than `limit`.
   */
  deleteTombstones (uptoSeq: number, limit = 10_000): number {
    if (!Number.isSafeInteger(uptoSeq) || uptoSeq < 0) throw new RangeError(`uptoSeq must be a non-negative integer, not ${uptoSeq}`)
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, not ${limit}`)
    if (uptoSeq === 0) return 0
    this.deleteTombstonesStmt ??= this.db.prepare(`DELETE FROM files WHERE (dataset, path) IN
      (SELECT dataset, path FROM files WHERE seq <= ? AND deleted = 1 ORDER BY seq LIMIT ?)`)
    return Number(this.deleteTombstonesStmt.run(uptoSeq, limit).changes)
  }

  /** How many tombstones the index holds. */
  tombstoneCount (): number {
    return (this.db.prepare('SELECT count(*) AS n FROM files WHERE deleted = 1').get() as { n: number }).n
  }

  private deleteTombstonesStmt?: StatementSync

  findByContentId (contentId: Uint8Array): LocalFile | undefined {
    const row = this.stmts.byContent.get(contentId) as Row | undefined
    return row == null ? undefined : fromRow(row)
  }

  close (): void {
    this.db.close()
  }
}
