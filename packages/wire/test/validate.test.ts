import { describe, expect, it } from 'vitest'
import {
  Announcement, checkChunkCount, checkChunkSize, checkDatasetName, checkEntries, checkFileEntry, checkNodeInfo,
  checkRelativePath, InvalidMessageError, isValidRelativePath, MAX_CHUNKS_PER_FILE, MAX_ENTRIES_PER_MESSAGE,
  NodeInfo, type FileEntry
} from '../src/index.js'

const KiB = 1024
const MiB = 1024 * KiB

/** The error a check throws, so tests can look at its class and field. */
function thrown (fn: () => void): InvalidMessageError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidMessageError)
    expect((err as Error).name).toBe('InvalidMessageError')
    return err as InvalidMessageError
  }
  throw new Error('expected the check to throw')
}

function fileEntry (fields: Partial<FileEntry> = {}): FileEntry {
  return {
    dataset: 'models',
    path: 'llama/weights-00001.safetensors',
    size: 3 * MiB + 17,
    mtimeMs: 1_700_000_000_123,
    mode: 0o644,
    contentId: new Uint8Array(32).fill(0xab),
    chunkSize: 256 * KiB,
    version: 1,
    deleted: false,
    seq: 1,
    partial: false,
    have: new Uint8Array(0),
    ...fields
  }
}

function tombstone (fields: Partial<FileEntry> = {}): FileEntry {
  return fileEntry({ size: 0, mtimeMs: 0, mode: 0, contentId: new Uint8Array(0), chunkSize: 0, deleted: true, version: 2, ...fields })
}

function nodeInfo (fields: Partial<NodeInfo> = {}): NodeInfo {
  return { name: 'gpu-01', generation: 1_700_000_000, sequence: 42, addrs: ['/ip4/10.0.0.1/tcp/4001'], role: 'persistent', datasets: ['models'], ...fields }
}

describe('checkRelativePath', () => {
  it.each([
    ['empty', ''],
    ['absolute', '/abs'],
    ['absolute nested', '/etc/passwd'],
    ['parent', '..'],
    ['leading parent', '../x'],
    ['inner parent', 'a/../b'],
    ['trailing parent', 'a/..'],
    ['current dir', '.'],
    ['leading current dir', './a'],
    ['inner current dir', 'a/./b'],
    ['empty segment', 'a//b'],
    ['trailing slash', 'a/'],
    ['only a slash', '/'],
    ['backslash', 'a\\b'],
    ['backslash parent', '..\\..\\etc'],
    ['NUL', 'a\u0000b'],
    ['SOH', '\u0001'],
    ['tab', 'a\tb'],
    ['newline', 'a\nb'],
    ['carriage return', 'a\rb'],
    ['unit separator', 'x\u001f'],
    ['DEL', 'a\u007f'],
    ['C1 NEL', 'a\u0085b'],
    ['C1 APC', 'a\u009f']
  ])('rejects %s: %j', (_label, path) => {
    const err = thrown(() => checkRelativePath(path))
    expect(err.field).toBe('path')
    expect(isValidRelativePath(path)).toBe(false)
  })

  it.each([
    'a',
    'a/b/c.txt',
    '.hidden',
    'dir/.hidden/file',
    '...',
    'a..b/c..',
    'file with spaces.bin',
    'données/été/fichier.txt',
    '模型/权重.bin',
    '🐟/🌊.npz',
    'x-y_z.v2/part-00001-of-00064.safetensors',
    'non\u00a0breaking'
  ])('accepts %j', (path) => {
    expect(() => checkRelativePath(path)).not.toThrow()
    expect(isValidRelativePath(path)).toBe(true)
  })

  it('limits the whole path to 4096 bytes', () => {
    const exactly4096 = ('a'.repeat(99) + '/').repeat(40) + 'a'.repeat(96)
    expect(Buffer.byteLength(exactly4096)).toBe(4096)
    expect(() => checkRelativePath(exactly4096)).not.toThrow()
    expect(thrown(() => checkRelativePath(exactly4096 + 'a')).message).toMatch(/4096/)
  })

  it('counts path length in UTF-8 bytes, not characters', () => {
    const path = ('é'.repeat(100) + '/').repeat(20) + 'é'.repeat(40)
    expect(path.length).toBeLessThan(4096)
    expect(Buffer.byteLength(path)).toBeGreaterThan(4096)
    thrown(() => checkRelativePath(path))
  })

  it('limits each segment to 255 bytes', () => {
    expect(() => checkRelativePath('d/' + 'a'.repeat(255))).not.toThrow()
    thrown(() => checkRelativePath('d/' + 'a'.repeat(256)))
    thrown(() => checkRelativePath('a'.repeat(256) + '/d'))
    expect(() => checkRelativePath('é'.repeat(127))).not.toThrow() // 254 bytes
    thrown(() => checkRelativePath('é'.repeat(128))) // 128 characters, 256 bytes
  })

  it('reports the field it was given', () => {
    expect(thrown(() => checkRelativePath('../x', 'entries[3].path')).field).toBe('entries[3].path')
  })
})

describe('checkDatasetName', () => {
  it.each(['models', 'npz', 'games', 'a', '0', 'Data.v2', 'a_b-c.d', 'x'.repeat(64)])('accepts %j', (name) => {
    expect(() => checkDatasetName(name)).not.toThrow()
  })

  it.each(['', '.', '..', '.hidden', '-x', '_x', 'a/b', 'a b', 'a\\b', 'é', 'a\u0000', 'x'.repeat(65), 'models/'])('rejects %j', (name) => {
    expect(thrown(() => checkDatasetName(name)).field).toBe('dataset')
  })
})

describe('checkChunkSize and checkChunkCount', () => {
  it('accepts powers of two in [256 KiB, 16 MiB] only', () => {
    for (let c = 256 * KiB; c <= 16 * MiB; c *= 2) expect(() => checkChunkSize(c)).not.toThrow()
    for (const c of [0, 1, 128 * KiB, 256 * KiB - 1, 256 * KiB + 1, 300 * KiB, 3 * MiB, 32 * MiB, -256 * KiB]) {
      thrown(() => checkChunkSize(c))
    }
  })

  it('bounds chunk counts to what one hash-list response can carry', () => {
    expect(() => checkChunkCount(0)).not.toThrow()
    expect(() => checkChunkCount(MAX_CHUNKS_PER_FILE)).not.toThrow()
    thrown(() => checkChunkCount(MAX_CHUNKS_PER_FILE + 1))
    thrown(() => checkChunkCount(-1))
    thrown(() => checkChunkCount(1.5))
  })
})

describe('checkFileEntry', () => {
  it('accepts a normal entry and a tombstone without content', () => {
    expect(() => checkFileEntry(fileEntry())).not.toThrow()
    expect(() => checkFileEntry(fileEntry({ size: 0 }))).not.toThrow()
    expect(() => checkFileEntry(tombstone())).not.toThrow()
  })

  it.each<[string, Partial<FileEntry>, string]>([
    ['a short content id', { contentId: new Uint8Array(31) }, 'entry.contentId'],
    ['a long content id', { contentId: new Uint8Array(33) }, 'entry.contentId'],
    ['an empty content id on a live entry', { contentId: new Uint8Array(0) }, 'entry.contentId'],
    ['chunk size 0', { chunkSize: 0 }, 'entry.chunkSize'],
    ['chunk size not a power of two', { chunkSize: 300 * KiB }, 'entry.chunkSize'],
    ['chunk size below 256 KiB', { chunkSize: 128 * KiB }, 'entry.chunkSize'],
    ['chunk size above 16 MiB', { chunkSize: 32 * MiB }, 'entry.chunkSize'],
    ['version 0', { version: 0 }, 'entry.version'],
    ['a negative version', { version: -1 }, 'entry.version'],
    ['a fractional version', { version: 1.5 }, 'entry.version'],
    ['a negative seq', { seq: -1 }, 'entry.seq'],
    ['a negative size', { size: -1 }, 'entry.size'],
    ['a fractional size', { size: 10.5 }, 'entry.size'],
    ['a size beyond 2^53', { size: 2 ** 53 }, 'entry.size'],
    ['an infinite size', { size: Infinity }, 'entry.size'],
    ['a fractional mtime', { mtimeMs: 1.5 }, 'entry.mtimeMs'],
    ['a mode beyond 0o7777', { mode: 0o10000 }, 'entry.mode'],
    ['a bad dataset', { dataset: '../x' }, 'entry.dataset'],
    ['a bad path', { path: 'a/../../etc/passwd' }, 'entry.path']
  ])('rejects %s', (_label, fields, field) => {
    expect(thrown(() => checkFileEntry(fileEntry(fields))).field).toBe(field)
  })

  it('rejects a size that needs more chunks than the limit at its chunk size', () => {
    const chunk = 256 * KiB
    expect(() => checkFileEntry(fileEntry({ chunkSize: chunk, size: MAX_CHUNKS_PER_FILE * chunk }))).not.toThrow()
    expect(thrown(() => checkFileEntry(fileEntry({ chunkSize: chunk, size: MAX_CHUNKS_PER_FILE * chunk + 1 }))).field).toBe('entry.size')
    expect(thrown(() => checkFileEntry(fileEntry({ chunkSize: 16 * MiB, size: Number.MAX_SAFE_INTEGER }))).field).toBe('entry.size')
    expect(() => checkFileEntry(fileEntry({ chunkSize: 16 * MiB, size: MAX_CHUNKS_PER_FILE * 16 * MiB }))).not.toThrow()
  })

  it('checks the identity of a tombstone but not its content fields', () => {
    expect(thrown(() => checkFileEntry(tombstone({ version: 0 }))).field).toBe('entry.version')
    expect(thrown(() => checkFileEntry(tombstone({ path: '/abs' }))).field).toBe('entry.path')
    expect(() => checkFileEntry(tombstone({ size: -5, chunkSize: 7 }))).not.toThrow()
  })
})

describe('checkNodeInfo', () => {
  it('accepts a normal node, one with no addresses, and sequence 0', () => {
    expect(() => checkNodeInfo(nodeInfo())).not.toThrow()
    expect(() => checkNodeInfo(nodeInfo({ addrs: [], sequence: 0, name: '', role: '' }))).not.toThrow()
    expect(() => checkNodeInfo(nodeInfo({ addrs: Array.from({ length: 32 }, (_, i) => `/ip4/10.0.0.${i}/tcp/4001`) }))).not.toThrow()
  })

  it('rejects a missing node', () => {
    expect(thrown(() => checkNodeInfo(undefined)).field).toBe('node')
  })

  it.each<[string, Partial<NodeInfo>, string]>([
    ['generation 0', { generation: 0 }, 'node.generation'],
    ['a negative generation', { generation: -1 }, 'node.generation'],
    ['a fractional sequence', { sequence: 0.5 }, 'node.sequence'],
    ['33 addresses', { addrs: Array.from({ length: 33 }, (_, i) => `/ip4/10.0.0.${i}/tcp/4001`) }, 'node.addrs'],
    ['an address not starting with /', { addrs: ['ip4/10.0.0.1/tcp/4001'] }, 'node.addrs'],
    ['an empty address', { addrs: [''] }, 'node.addrs'],
    ['an over-long address', { addrs: ['/' + 'a'.repeat(256)] }, 'node.addrs'],
    ['a control character in an address', { addrs: ['/dns4/x\n/tcp/1'] }, 'node.addrs'],
    ['an over-long name', { name: 'n'.repeat(129) }, 'node.name'],
    ['a control character in the name', { name: 'gpu\u001b[31m' }, 'node.name'],
    ['an over-long role', { role: 'r'.repeat(129) }, 'node.role'],
    ['a control character in the role', { role: 'persistent\u0000' }, 'node.role']
  ])('rejects %s', (_label, fields, field) => {
    expect(thrown(() => checkNodeInfo(nodeInfo(fields))).field).toBe(field)
  })
})

describe('checkEntries', () => {
  it('accepts distinct entries with sequences up to the node\'s, and an empty list', () => {
    expect(() => checkEntries([], 0)).not.toThrow()
    expect(() => checkEntries([
      fileEntry({ path: 'a', seq: 1 }),
      fileEntry({ path: 'b', seq: 5 }),
      tombstone({ path: 'c', seq: 3 }),
      fileEntry({ dataset: 'npz', path: 'a', seq: 2 }) // same path, another dataset
    ], 5)).not.toThrow()
  })

  it('rejects a path that appears twice in one message', () => {
    const err = thrown(() => checkEntries([fileEntry({ path: 'a', seq: 1 }), fileEntry({ path: 'b', seq: 2 }), tombstone({ path: 'a', seq: 3 })], 3))
    expect(err.field).toBe('entries[2]')
  })

  it('rejects an entry whose seq is ahead of the node\'s sequence', () => {
    expect(thrown(() => checkEntries([fileEntry({ path: 'a', seq: 6 })], 5)).field).toBe('entries[0].seq')
  })

  it('names the index and field of an invalid entry', () => {
    const err = thrown(() => checkEntries([fileEntry({ path: 'a' }), fileEntry({ path: 'b' }), fileEntry({ path: 'c/./d' })], 10))
    expect(err.field).toBe('entries[2].path')
  })
})

describe('Announcement codec', () => {
  it('round-trips a node, a from-sequence, live entries and tombstones', () => {
    const msg: Announcement = {
      node: nodeInfo({ addrs: ['/ip4/10.0.0.1/tcp/4001', '/ip6/::1/udp/4001/quic-v1'], role: 'coordinator' }),
      fromSequence: 41,
      entries: [
        fileEntry({ seq: 42 }),
        fileEntry({ path: '模型/🐟.bin', size: MAX_CHUNKS_PER_FILE * 16 * MiB, chunkSize: 16 * MiB, mtimeMs: 2 ** 50, mode: 0o7777, version: 2 ** 40, seq: 40 }),
        tombstone({ path: 'gone.bin', seq: 39 })
      ]
    }
    const bytes = Announcement.encode(msg)
    const back = Announcement.decode(bytes)
    expect(back.fromSequence).toBe(41)
    expect(back.node).toEqual(msg.node)
    expect(back.entries).toHaveLength(3)
    back.entries.forEach((e, i) => {
      const want = msg.entries[i]
      expect({ ...e, contentId: Buffer.from(e.contentId).toString('hex') }).toEqual({ ...want, contentId: Buffer.from(want.contentId).toString('hex') })
    })
    // A decoded message passes the validators exactly like the original.
    expect(() => { checkNodeInfo(back.node); checkEntries(back.entries, back.node.sequence) }).not.toThrow()
  })

  it('round-trips a partial entry with its bitfield, and checks the bitfield length', () => {
    // 3 MiB + 17 bytes at 256 KiB: 13 chunks, 2 bytes of bitfield.
    const partial = fileEntry({ partial: true, have: new Uint8Array([0xff, 0x80]) })
    const back = Announcement.decode(Announcement.encode({ node: nodeInfo(), fromSequence: 0, entries: [partial] }))
    expect(back.entries[0].partial).toBe(true)
    expect([...back.entries[0].have]).toEqual([0xff, 0x80])
    expect(() => checkEntries(back.entries, 42)).not.toThrow()
    expect(() => checkEntries([fileEntry({ partial: true, have: new Uint8Array(1) })], 42)).toThrow(/have/)
    expect(() => checkEntries([fileEntry({ have: new Uint8Array(2) })], 42)).toThrow(/only a partial entry/)
    expect(() => checkEntries([tombstone({ partial: true })], 42)).toThrow(/tombstone cannot be partial/)
    expect(() => checkNodeInfo(nodeInfo({ datasets: ['a', 'a'] }))).toThrow(/listed twice/)
    expect(() => checkNodeInfo(nodeInfo({ datasets: ['../x'] }))).toThrow(/invalid dataset name/)
  })

  it('round-trips the largest uint64 values a JS number holds exactly', () => {
    const e = fileEntry({ size: Number.MAX_SAFE_INTEGER, version: Number.MAX_SAFE_INTEGER, seq: Number.MAX_SAFE_INTEGER, mtimeMs: Number.MAX_SAFE_INTEGER })
    const back = Announcement.decode(Announcement.encode({ node: nodeInfo({ sequence: Number.MAX_SAFE_INTEGER }), fromSequence: Number.MAX_SAFE_INTEGER, entries: [e] }))
    expect(back.fromSequence).toBe(Number.MAX_SAFE_INTEGER)
    expect(back.node?.sequence).toBe(Number.MAX_SAFE_INTEGER)
    expect(back.entries[0]).toMatchObject({ size: e.size, version: e.version, seq: e.seq, mtimeMs: e.mtimeMs })
  })

  it('round-trips a negative mtimeMs (a file dated before 1970) without breaking the message', () => {
    // mtime_ms is an int64; a file dated before the epoch has a negative mtimeMs, and the scanner
    // indexes it as it is. One such entry must not corrupt its neighbours or the message.
    for (const mtimeMs of [-1, -1000, -86_400_000, -(2 ** 40)]) {
      const msg = {
        node: nodeInfo(),
        fromSequence: 0,
        entries: [fileEntry({ path: 'a', seq: 1 }), fileEntry({ path: 'old', mtimeMs, seq: 2 }), fileEntry({ path: 'c', seq: 3 })]
      }
      let back: Announcement | undefined
      expect(() => { back = Announcement.decode(Announcement.encode(msg)) }, `mtimeMs ${mtimeMs}`).not.toThrow()
      expect(back?.entries.map(e => [e.path, e.mtimeMs]), `mtimeMs ${mtimeMs}`).toEqual([['a', 1_700_000_000_123], ['old', mtimeMs], ['c', 1_700_000_000_123]])
    }
  })

  it('decodes an empty announcement to defaults, without a node', () => {
    const back = Announcement.decode(Announcement.encode({ fromSequence: 0, entries: [] }))
    expect(back).toEqual({ fromSequence: 0, entries: [] })
    expect(thrown(() => checkNodeInfo(back.node)).field).toBe('node')
  })

  it('decodes exactly MAX_ENTRIES_PER_MESSAGE entries and throws on one more', () => {
    expect(MAX_ENTRIES_PER_MESSAGE).toBe(20000)
    const entries = Array.from({ length: MAX_ENTRIES_PER_MESSAGE + 1 }, (_, i) => fileEntry({ path: `f${i}`, seq: i + 1 }))
    const atLimit = Announcement.encode({ node: nodeInfo(), fromSequence: 0, entries: entries.slice(0, MAX_ENTRIES_PER_MESSAGE) })
    expect(Announcement.decode(atLimit).entries).toHaveLength(MAX_ENTRIES_PER_MESSAGE)

    const over = Announcement.encode({ node: nodeInfo(), fromSequence: 0, entries })
    expect(() => Announcement.decode(over)).toThrow(expect.objectContaining({ name: 'MaxLengthError' }))
  })

  it('honours a tighter entry limit given by the caller', () => {
    const bytes = Announcement.encode({ node: nodeInfo(), fromSequence: 0, entries: [fileEntry({ path: 'a' }), fileEntry({ path: 'b' })] })
    expect(Announcement.decode(bytes, { limits: { entries: 2 } }).entries).toHaveLength(2)
    expect(() => Announcement.decode(bytes, { limits: { entries: 1 } })).toThrow(expect.objectContaining({ name: 'MaxLengthError' }))
  })

  it('throws on a node with more than 32 addresses', () => {
    const addrs = Array.from({ length: 33 }, (_, i) => `/ip4/10.0.0.${i}/tcp/4001`)
    const bytes = Announcement.encode({ node: nodeInfo({ addrs }), fromSequence: 0, entries: [] })
    expect(() => Announcement.decode(bytes)).toThrow(expect.objectContaining({ name: 'MaxLengthError' }))
    expect(NodeInfo.decode(NodeInfo.encode(nodeInfo({ addrs: addrs.slice(0, 32) }))).addrs).toHaveLength(32)
  })

  it('throws on truncated input instead of returning a partial message', () => {
    const bytes = Announcement.encode({ node: nodeInfo(), fromSequence: 7, entries: [fileEntry()] })
    expect(() => Announcement.decode(bytes.subarray(0, bytes.length - 5))).toThrow()
  })
})
