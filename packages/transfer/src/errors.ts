/** Errors of the transfer engine; callers branch on `name`. */

export class BusyError extends Error {
  override name = 'BusyError'
  constructor (readonly retryAfterMs: number) {
    super(`peer busy, retry after ${retryAfterMs} ms`)
  }
}

export class NotFoundError extends Error {
  override name = 'NotFoundError'
}

export class ProtocolError extends Error {
  override name = 'ProtocolError'
}

export class CorruptChunkError extends Error {
  override name = 'CorruptChunkError'
}

export class NoHoldersError extends Error {
  override name = 'NoHoldersError'
}

export class CommitRefusedError extends Error {
  override name = 'CommitRefusedError'
}

/** Writing received data failed on this node (disk full, I/O error): not the peer's fault. */
export class LocalWriteError extends Error {
  override name = 'LocalWriteError'
}
