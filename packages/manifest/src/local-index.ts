import { DatabaseSync, type StatementSync } from 'node:sqlite'

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

/**
 * The persisted index of this node's files (node:sqlite, WAL). Every change takes the next
 * sequence number in the same transaction, so the sequence and the entries never disagree
 * after a crash.
 */
export class LocalIndex {
  private readonly db: DatabaseSync
  private readonly stmts: Record<'get' | 'put' | 'touch' | 'since' | 'byContent' | 'dataset' | 'getMeta' | 'setMeta', StatementSync>
  private seq: number

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
      since: this.db.prepare('SELECT * FROM files WHERE seq > ? ORDER BY seq'),
      byContent: this.db.prepare('SELECT * FROM files WHERE content_id = ? AND deleted = 0 LIMIT 1'),
      dataset: this.db.prepare('SELECT * FROM files WHERE dataset = ?'),
      getMeta: this.db.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
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

  /** Records a change: the entry takes the next sequence number. */
  put (file: NewLocalFile): LocalFile {
    const seq = this.seq + 1
    this.db.exec('BEGIN')
    try {
      this.stmts.put.run(file.dataset, file.path, file.size, file.mtimeMs, file.ino, file.mode, file.contentId,
        file.chunkSize, file.hashes, file.version, seq, file.deleted ? 1 : 0)
      this.setMeta('sequence', seq)
      this.db.exec('COMMIT')
    } catch (err) {
      this.db.exec('ROLLBACK')
      throw err
    }
    this.seq = seq
    return { ...file, seq }
  }

  /** Updates what was observed on disk without making it a change (same content). */
  touch (dataset: string, path: string, size: number, mtimeMs: number, ino: number): void {
    this.stmts.touch.run(size, mtimeMs, ino, dataset, path)
  }

  /** Entries changed after `seq`, oldest change first. */
  changedSince (seq: number): LocalFile[] {
    return (this.stmts.since.all(seq) as unknown as Row[]).map(fromRow)
  }

  filesOf (dataset: string): LocalFile[] {
    return (this.stmts.dataset.all(dataset) as unknown as Row[]).map(fromRow)
  }

  findByContentId (contentId: Uint8Array): LocalFile | undefined {
    const row = this.stmts.byContent.get(contentId) as Row | undefined
    return row == null ? undefined : fromRow(row)
  }

  close (): void {
    this.db.close()
  }
}
