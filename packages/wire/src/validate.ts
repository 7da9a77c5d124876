import {
  HASH_BYTES, MAX_ADDR_LENGTH, MAX_ADDRS, MAX_CHUNK_SIZE, MAX_CHUNKS_PER_FILE, MAX_DATASET_NAME_LENGTH,
  MAX_DATASETS, MAX_FILE_SIZE, PRIORITY_NAMES, MAX_NAME_LENGTH, MAX_NODES, MAX_PEER_ID_LENGTH, MAX_PATH_BYTES, MAX_PATH_SEGMENT_BYTES, MIN_CHUNK_SIZE
} from './constants.js'
import type { FileEntry, NodeInfo } from './shoal.js'

/** Thrown for any input that breaks the wire's rules; `field` says which part. */
export class InvalidMessageError extends Error {
  override name = 'InvalidMessageError'
  constructor (readonly field: string, reason: string) {
    super(`${field}: ${reason}`)
  }
}

const DATASET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
// C0 and C1 control characters, DEL, and NUL.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u

/** Dataset names: letters, digits, '.', '_' and '-', not starting with a punctuation mark. */
export function checkDatasetName (name: string, field = 'dataset'): void {
  if (name.length === 0 || name.length > MAX_DATASET_NAME_LENGTH || !DATASET_NAME.test(name)) {
    throw new InvalidMessageError(field, `invalid dataset name ${JSON.stringify(name.slice(0, 80))} (expected 1-${MAX_DATASET_NAME_LENGTH} of A-Z a-z 0-9 . _ -)`)
  }
}

/**
 * A path inside a dataset: relative, '/'-separated, normalised (no '', '.' or '..' segments),
 * no backslash, no control characters. Such a path can never escape its dataset directory.
 */
export function checkRelativePath (path: string, field = 'path'): void {
  if (path.length === 0) throw new InvalidMessageError(field, 'empty path')
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw new InvalidMessageError(field, `path longer than ${MAX_PATH_BYTES} bytes`)
  if (CONTROL.test(path)) throw new InvalidMessageError(field, 'path contains a control character')
  if (path.includes('\\')) throw new InvalidMessageError(field, 'path contains a backslash')
  if (path.startsWith('/')) throw new InvalidMessageError(field, 'path is absolute')
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new InvalidMessageError(field, `path is not normalised (segment ${JSON.stringify(segment)})`)
    }
    if (Buffer.byteLength(segment) > MAX_PATH_SEGMENT_BYTES) throw new InvalidMessageError(field, 'path segment too long')
  }
}

export function isValidRelativePath (path: string): boolean {
  try {
    checkRelativePath(path)
    return true
  } catch {
    return false
  }
}

function checkCount (value: number, field: string, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new InvalidMessageError(field, `expected an integer in [0, ${max}], got ${value}`)
  }
}

export function checkChunkSize (chunkSize: number, field = 'chunkSize'): void {
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE || (chunkSize & (chunkSize - 1)) !== 0) {
    throw new InvalidMessageError(field, `chunk size ${chunkSize} is not a power of two in [${MIN_CHUNK_SIZE}, ${MAX_CHUNK_SIZE}]`)
  }
}

export function checkFileEntry (entry: FileEntry, field = 'entry'): void {
  checkDatasetName(entry.dataset, `${field}.dataset`)
  checkRelativePath(entry.path, `${field}.path`)
  checkCount(entry.version, `${field}.version`)
  checkCount(entry.seq, `${field}.seq`)
  if (entry.version === 0) throw new InvalidMessageError(`${field}.version`, 'version must be at least 1')
  if (entry.deleted) {
    if (entry.partial === true) throw new InvalidMessageError(`${field}.partial`, 'a tombstone cannot be partial')
    return
  }
  checkCount(entry.size, `${field}.size`, MAX_FILE_SIZE)
  if (!Number.isSafeInteger(entry.mtimeMs)) throw new InvalidMessageError(`${field}.mtimeMs`, 'not an integer')
  checkCount(entry.mode, `${field}.mode`, 0o7777)
  if (entry.contentId.length !== HASH_BYTES) throw new InvalidMessageError(`${field}.contentId`, `expected ${HASH_BYTES} bytes`)
  checkChunkSize(entry.chunkSize, `${field}.chunkSize`)
  const chunks = Math.ceil(entry.size / entry.chunkSize)
  if (chunks > MAX_CHUNKS_PER_FILE) {
    throw new InvalidMessageError(`${field}.size`, 'too many chunks for the chunk size')
  }
  const haveBytes = entry.have?.length ?? 0
  if (entry.partial === true) {
    if (haveBytes !== Math.ceil(chunks / 8)) throw new InvalidMessageError(`${field}.have`, `expected ${Math.ceil(chunks / 8)} bytes for ${chunks} chunks`)
  } else if (haveBytes !== 0) {
    throw new InvalidMessageError(`${field}.have`, 'only a partial entry has a bitfield')
  }
}

export function checkNodeInfo (node: NodeInfo | undefined, field = 'node'): asserts node is NodeInfo {
  if (node == null) throw new InvalidMessageError(field, 'missing')
  if (node.name.length > MAX_NAME_LENGTH || CONTROL.test(node.name)) throw new InvalidMessageError(`${field}.name`, 'invalid node name')
  checkCount(node.generation, `${field}.generation`)
  checkCount(node.sequence, `${field}.sequence`)
  if (node.generation === 0) throw new InvalidMessageError(`${field}.generation`, 'generation must be at least 1')
  if (node.addrs.length > MAX_ADDRS) throw new InvalidMessageError(`${field}.addrs`, 'too many addresses')
  for (const addr of node.addrs) {
    if (addr.length > MAX_ADDR_LENGTH || !addr.startsWith('/') || CONTROL.test(addr)) throw new InvalidMessageError(`${field}.addrs`, 'invalid address')
  }
  if (node.role.length > MAX_NAME_LENGTH || CONTROL.test(node.role)) throw new InvalidMessageError(`${field}.role`, 'invalid role')
  const datasets = node.datasets ?? []
  if (datasets.length > MAX_DATASETS) throw new InvalidMessageError(`${field}.datasets`, 'too many datasets')
  datasets.forEach((d, i) => { checkDatasetName(d, `${field}.datasets[${i}]`) })
  if (new Set(datasets).size !== datasets.length) throw new InvalidMessageError(`${field}.datasets`, 'a dataset is listed twice')
}

/** Entries of one message: each valid, sequences within the node's, no path twice. */
export function checkEntries (entries: FileEntry[], maxSeq: number, field = 'entries'): void {
  const seen = new Set<string>()
  entries.forEach((entry, i) => {
    checkFileEntry(entry, `${field}[${i}]`)
    if (entry.seq > maxSeq) throw new InvalidMessageError(`${field}[${i}].seq`, 'sequence ahead of the node\'s own')
    const key = `${entry.dataset}\u0000${entry.path}`
    if (seen.has(key)) throw new InvalidMessageError(`${field}[${i}]`, 'duplicate path in one message')
    seen.add(key)
  })
}

const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]+$/

/** A peer id as text (base58btc); the agent parses it fully before dialling. */
export function checkPeerIdText (peerId: string, field = 'peerId'): void {
  if (peerId.length === 0 || peerId.length > MAX_PEER_ID_LENGTH || !PEER_ID.test(peerId)) throw new InvalidMessageError(field, 'not a peer id')
}

export function checkNodeVersions (nodes: Array<{ peerId: string, generation: number, sequence: number }>, field = 'nodes'): void {
  if (nodes.length > MAX_NODES) throw new InvalidMessageError(field, 'too many nodes')
  nodes.forEach((n, i) => {
    checkPeerIdText(n.peerId, `${field}[${i}].peerId`)
    checkCount(n.generation, `${field}[${i}].generation`)
    checkCount(n.sequence, `${field}[${i}].sequence`)
  })
}

export function checkChunkCount (count: number, field = 'chunks'): void {
  checkCount(count, field, MAX_CHUNKS_PER_FILE)
}

export function checkDirective (d: { id: string, dataset: string, path: string, contentId: Uint8Array, version: number, priority: string, targets: string[], deadlineMs: number, issuedMs: number }): void {
  if (!/^[0-9a-f]{16,64}$/.test(d.id)) throw new InvalidMessageError('directive.id', 'expected 16-64 lowercase hex characters')
  checkDatasetName(d.dataset, 'directive.dataset')
  checkRelativePath(d.path, 'directive.path')
  if (d.contentId.length !== HASH_BYTES) throw new InvalidMessageError('directive.contentId', `expected ${HASH_BYTES} bytes`)
  checkCount(d.version, 'directive.version')
  if (!(PRIORITY_NAMES as readonly string[]).includes(d.priority)) throw new InvalidMessageError('directive.priority', `expected one of ${PRIORITY_NAMES.join(', ')}`)
  if (d.targets.length === 0 || d.targets.length > MAX_NODES) throw new InvalidMessageError('directive.targets', `expected 1-${MAX_NODES} peer ids`)
  d.targets.forEach((t, i) => { checkPeerIdText(t, `directive.targets[${i}]`) })
  if (!Number.isSafeInteger(d.deadlineMs) || d.deadlineMs < 0) throw new InvalidMessageError('directive.deadlineMs', 'expected a time in ms or 0')
  if (!Number.isSafeInteger(d.issuedMs) || d.issuedMs <= 0) throw new InvalidMessageError('directive.issuedMs', 'expected a time in ms')
}
