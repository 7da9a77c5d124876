/**
 * DESIGN.md invariant 4: network input cannot crash the agent, grow its memory without bound, or
 * reach a path outside a dataset. A hostile cluster member (it has the cluster key) sends
 * malformed, oversized and hostile messages to a real agent process; each must be rejected
 * without changing the agent's view, and the agent must keep serving its API and syncing files
 * between honest agents.
 *
 * Where an attack takes a while, an ordinary test carries it out, checks that it really happened
 * and records what the agent did; a second test asserts the wanted outcome on that record.
 */
import { createHash, randomBytes } from 'node:crypto'
import { access, mkdir, open, readFile, symlink, writeFile } from 'node:fs/promises'
import { once } from 'node:events'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ShoalClient, type StatusResponse } from '@shoal/client'
import { MAX_CONCURRENT_UPLOADS, REQUEST_READ_TIMEOUT_MS } from '@shoal/transfer'
import {
  Announcement, ChunkRequest, ChunkRequestKind, ChunkResponse, ChunkStatus, Directive, Heartbeat, LoadLevel, ManifestPage, ManifestRequest, ManifestRequestKind,
  ManifestSummary, MAX_ENTRIES_PER_MESSAGE, MAX_PUBSUB_MESSAGE_BYTES, MIN_CHUNK_SIZE, PROTOCOL_CHUNK, PROTOCOL_MANIFEST,
  checkEntries, checkNodeInfo, type FileEntry, type NodeInfo
} from '@shoal/wire'
import { pbStream } from '@libp2p/utils'
import { Cluster, waitFor, type TestAgent } from './helpers/agents.js'
import {
  ANNOUNCE_TOPIC, DIRECTIVE_TOPIC, HEARTBEAT_TOPIC, HostilePeer, complete, fileEntry, lengthPrefixed, nodeInfo, randomPeerId, residentBytes, varint, type HostileStream, type StreamEnd
} from './helpers/hostile-peer.js'

const REAL_FILE = 'real.bin'
/** 64 chunks of MIN_CHUNK_SIZE: a request for every chunk asks for 16 MiB. */
const REAL_SIZE = 64 * MIN_CHUNK_SIZE
const MiB = 1024 * 1024

async function writeRandomFile (path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256')
  const handle = await open(path, 'w')
  try {
    for (let done = 0; done < bytes; done += MiB) {
      const piece = randomBytes(Math.min(MiB, bytes - done))
      hash.update(piece)
      await handle.write(piece)
    }
  } finally {
    await handle.close()
  }
  return hash.digest('hex')
}

async function sha256IfPresent (path: string): Promise<string | undefined> {
  try {
    return createHash('sha256').update(await readFile(path)).digest('hex')
  } catch {
    return undefined
  }
}

async function exists (path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false)
}

/** A live entry that passes every wire check; cases below break one thing at a time. */
function liveEntry (path: string, fields: Partial<FileEntry> = {}): FileEntry {
  return fileEntry({
    dataset: 'default', path, size: 1000, mtimeMs: Date.now(), mode: 0o644, contentId: randomBytes(32),
    chunkSize: MIN_CHUNK_SIZE, version: 1, seq: 1, ...fields
  })
}

describe('hostile input to a running agent', () => {
  const cluster = new Cluster()
  let a: TestAgent
  let b: TestAgent
  let h: HostilePeer | undefined
  let h2: HostilePeer | undefined
  let baseline: StatusResponse
  let baselinePaths: string[]
  let realContentId: Uint8Array<ArrayBuffer>
  /** Messages the hostile peer published so far: the agent must reject every one of them. */
  let published = 0

  const hostile = (): HostilePeer => h as HostilePeer
  const generation = Date.now()
  const hostileNode = (fields: Partial<NodeInfo> = {}): NodeInfo =>
    nodeInfo({ name: 'mallory', generation, sequence: 10, addrs: [], role: 'persistent', datasets: ['default'], ...fields })

  async function rejections (): Promise<{ total: number, fromHostile: number }> {
    const { gossip } = await a.client.status()
    return { total: gossip.rejected, fromHostile: gossip.rejectedFrom[hostile().peerId] ?? 0 }
  }

  /** The agent's view is what it was before the attacks: same nodes, same files, nothing fetched. */
  async function expectViewUnchanged (paths: Array<[string, string]> = []): Promise<void> {
    const status = await a.client.status()
    expect(status.view.nodes.map(n => n.peerId).sort()).toEqual(baseline.view.nodes.map(n => n.peerId).sort())
    expect(status.view.files).toBe(baseline.view.files)
    expect(status.peers.find(p => p.peerId === hostile().peerId)?.files ?? 0).toBe(0)
    expect((await a.client.files('default', { limit: 100 })).files.map(f => f.path)).toEqual(baselinePaths)
    for (const [dataset, path] of paths) expect((await a.client.where(dataset, path)).holders).toEqual([])
    expect((await a.client.transfers()).transfers.filter(t => t.path !== REAL_FILE)).toEqual([])
  }

  beforeAll(async () => {
    await cluster.init()
    a = await cluster.add({ name: 'alpha' })
    b = await cluster.add({ name: 'beta', clusterKey: a.clusterKeyFile, bootstrap: [a.address] })
    const expected = await writeRandomFile(join(a.data, REAL_FILE), REAL_SIZE)
    await waitFor('the real file on B', async () => (await sha256IfPresent(join(b.data, REAL_FILE))) === expected, 60_000, 200)
    const where = await waitFor('A to list both holders as complete', async () => {
      const w = await a.client.where('default', REAL_FILE)
      return w.holders.length === 2 && w.holders.every(x => x.complete) ? w : undefined
    })
    realContentId = new Uint8Array(Buffer.from(where.holders[0].contentId, 'hex'))
    h = await HostilePeer.start({ clusterKeyFile: a.clusterKeyFile })
    await h.connect(a.address)
    h2 = await HostilePeer.start({ clusterKeyFile: a.clusterKeyFile })
    await h2.connect(a.address)
    baseline = await a.client.status()
    baselinePaths = (await a.client.files('default', { limit: 100 })).files.map(f => f.path)
    expect(baselinePaths).toEqual([REAL_FILE])
    expect(baseline.view.nodes.map(n => n.peerId).sort()).toEqual([a.peerId, b.peerId].sort())
  })

  afterEach(() => {
    h?.abortAll()
    h2?.abortAll()
  })

  afterAll(async () => {
    try {
      await Promise.allSettled([h?.stop(), h2?.stop()])
    } finally {
      await cluster.cleanup()
    }
  })

  describe('pubsub: invalid messages are rejected, counted against the sender, and change nothing', () => {
    interface PubsubCase {
      name: string
      topic: string
      data: () => Uint8Array
      /** Paths the message names (or would resolve to); none may gain a holder. */
      where?: Array<[string, string]>
    }
    const announce = (entries: FileEntry[], node: NodeInfo | null = hostileNode(), fromSequence = 0): Uint8Array =>
      Announcement.encode(complete(Announcement, { node: node ?? undefined, fromSequence, entries }))
    const one = (name: string, entry: FileEntry, where: Array<[string, string]> = []): PubsubCase =>
      ({ name, topic: ANNOUNCE_TOPIC, data: () => announce([entry]), where })

    const cases: PubsubCase[] = [
      one('path traversal ../../etc/passwd', liveEntry('../../etc/passwd')),
      one('absolute path /abs', liveEntry('/abs'), [['default', 'abs']]),
      one('absolute path /etc/passwd', liveEntry('/etc/passwd'), [['default', 'etc/passwd']]),
      one('.. inside a path (a/../b)', liveEntry('a/../b'), [['default', 'b'], ['default', 'a/b']]),
      one('NUL in a path', liveEntry('evil\u0000.bin'), [['default', 'evil'], ['default', 'evil.bin']]),
      one('backslash traversal', liveEntry('..\\..\\evil.bin'), [['default', 'evil.bin']]),
      one('tombstone with path traversal', liveEntry('../outside.bin', { deleted: true, version: 2 }), [['default', 'outside.bin']]),
      one('dataset name with a slash', liveEntry('ds-slash.bin', { dataset: 'default/..' }), [['default', 'ds-slash.bin']]),
      one('dataset name ..', liveEntry('ds-dots.bin', { dataset: '..' }), [['default', 'ds-dots.bin']]),
      one('empty dataset name', liveEntry('ds-empty.bin', { dataset: '' }), [['default', 'ds-empty.bin']]),
      one('dataset name starting with a dot', liveEntry('ds-dot.bin', { dataset: '.shoal' }), [['default', 'ds-dot.bin']]),
      one('dataset name too long', liveEntry('ds-long.bin', { dataset: 'd'.repeat(65) }), [['default', 'ds-long.bin']]),
      one('content id of 31 bytes', liveEntry('short-id.bin', { contentId: randomBytes(31) }), [['default', 'short-id.bin']]),
      one('content id of 33 bytes', liveEntry('long-id.bin', { contentId: randomBytes(33) }), [['default', 'long-id.bin']]),
      one('live file without a content id', liveEntry('no-id.bin', { contentId: new Uint8Array(0) }), [['default', 'no-id.bin']]),
      one('chunk size not a power of two', liveEntry('odd-chunks.bin', { chunkSize: 300_000 }), [['default', 'odd-chunks.bin']]),
      one('chunk size below the minimum', liveEntry('tiny-chunks.bin', { chunkSize: MIN_CHUNK_SIZE / 2 }), [['default', 'tiny-chunks.bin']]),
      one('version 0', liveEntry('v0.bin', { version: 0 }), [['default', 'v0.bin']]),
      one('entry seq ahead of the node sequence', liveEntry('ahead.bin', { seq: 11 }), [['default', 'ahead.bin']]),
      {
        name: 'fromSequence ahead of the node sequence',
        topic: ANNOUNCE_TOPIC,
        data: () => announce([liveEntry('from-ahead.bin')], hostileNode(), 11),
        where: [['default', 'from-ahead.bin']]
      },
      {
        name: 'the same path twice in one message',
        topic: ANNOUNCE_TOPIC,
        data: () => announce([liveEntry('dup.bin', { seq: 1 }), liveEntry('dup.bin', { seq: 2 })]),
        where: [['default', 'dup.bin']]
      },
      {
        name: 'an address that is not a multiaddr path',
        topic: ANNOUNCE_TOPIC,
        data: () => announce([liveEntry('bad-addr.bin')], hostileNode({ addrs: ['tcp://127.0.0.1:1'] })),
        where: [['default', 'bad-addr.bin']]
      },
      { name: 'no node info', topic: ANNOUNCE_TOPIC, data: () => announce([liveEntry('no-node.bin')], null), where: [['default', 'no-node.bin']] },
      { name: 'generation 0', topic: ANNOUNCE_TOPIC, data: () => announce([liveEntry('gen0.bin')], hostileNode({ generation: 0 })), where: [['default', 'gen0.bin']] },
      {
        name: `more entries than the codec limit (${MAX_ENTRIES_PER_MESSAGE + 1}), each valid, under the size limit`,
        topic: ANNOUNCE_TOPIC,
        data: () => {
          // Tombstones with short paths: every entry passes checkEntries, only the count is wrong.
          const count = MAX_ENTRIES_PER_MESSAGE + 1
          const entries = Array.from({ length: count }, (_, i) => fileEntry({ dataset: 'default', path: `c${i.toString(36)}`, version: 1, deleted: true, seq: 1 }))
          const node = hostileNode({ sequence: count })
          checkNodeInfo(node)
          checkEntries(entries, node.sequence)
          const data = announce(entries, node)
          expect(data.length).toBeLessThan(MAX_PUBSUB_MESSAGE_BYTES)
          expect(() => Announcement.decode(data)).toThrow()
          return data
        },
        where: [['default', 'c0']]
      },
      {
        name: `a valid announcement bigger than MAX_PUBSUB_MESSAGE_BYTES (${MAX_PUBSUB_MESSAGE_BYTES})`,
        topic: ANNOUNCE_TOPIC,
        data: () => {
          const long = 'x'.repeat(240)
          const entries = Array.from({ length: 2400 }, (_, i) => liveEntry(`big/${i}/${long}`, { seq: 1 }))
          const node = hostileNode()
          checkNodeInfo(node)
          checkEntries(entries, node.sequence)
          const data = announce(entries, node)
          expect(data.length).toBeGreaterThan(MAX_PUBSUB_MESSAGE_BYTES)
          expect(data.length).toBeLessThan(4 * MiB)
          return data
        },
        where: [['default', `big/0/${'x'.repeat(240)}`]]
      },
      { name: 'random bytes on the announce topic', topic: ANNOUNCE_TOPIC, data: () => randomBytes(2000) },
      { name: 'an empty message on the announce topic', topic: ANNOUNCE_TOPIC, data: () => new Uint8Array(0) },
      { name: 'random bytes on the heartbeat topic', topic: HEARTBEAT_TOPIC, data: () => randomBytes(300) },
      {
        name: 'a heartbeat with a 5-byte digest',
        topic: HEARTBEAT_TOPIC,
        data: () => Heartbeat.encode(complete(Heartbeat, { node: hostileNode(), load: LoadLevel.OK, digest: randomBytes(5) }))
      },
      {
        name: 'a well-formed directive for this node from a peer that is not a leader',
        topic: DIRECTIVE_TOPIC,
        data: () => Directive.encode(complete(Directive, {
          id: 'ab'.repeat(16), dataset: 'default', path: 'ordered.bin', contentId: randomBytes(32), version: 1,
          priority: 'critical', targets: [a.peerId], deadlineMs: 0, issuedMs: Date.now()
        })),
        where: [['default', 'ordered.bin']]
      },
      { name: 'random bytes on the directive topic', topic: DIRECTIVE_TOPIC, data: () => randomBytes(500) },
      {
        name: 'a heartbeat with an unknown load level',
        topic: HEARTBEAT_TOPIC,
        // The codec refuses to encode an unknown enum value: append field 2 (load) = 7 by hand; the last value wins.
        data: () => Uint8Array.from([...Heartbeat.encode(complete(Heartbeat, { node: hostileNode(), digest: randomBytes(32) })), 0x10, 0x07])
      },
      {
        name: 'a heartbeat with a control character in the node name',
        topic: HEARTBEAT_TOPIC,
        data: () => Heartbeat.encode(complete(Heartbeat, { node: hostileNode({ name: 'mal\u001blory' }), load: LoadLevel.OK, digest: randomBytes(32) }))
      }
    ]

    it.each(cases)('$name', async ({ topic, data, where }) => {
      const before = await rejections()
      await hostile().publish(topic, data())
      published++
      await waitFor('the agent to reject the message', async () => {
        const now = await rejections()
        return now.fromHostile > before.fromHostile && now.total > before.total
      }, 10_000, 50)
      await expectViewUnchanged(where)
    })

    it('counted every message exactly once, and the agent still answers', async () => {
      // Stays exact for a while: no message was counted twice or late.
      for (let i = 0; i < 5; i++) {
        expect((await rejections()).fromHostile).toBe(published)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      expect(a.child?.exitCode).toBeNull()
    })
  })

  describe('/shoal/manifest/1.0.0', () => {
    async function expectReset (s: HostileStream): Promise<void> {
      const result = await s.readOrEnd(ManifestPage, 5_000)
      expect(result).toMatchObject({ end: { how: 'reset' } })
    }

    it('serves its own record to the hostile peer (the protocol works; the refusals below are about the input)', async () => {
      const s = await hostile().open(a.peerId, PROTOCOL_MANIFEST)
      await s.writeMessage({ kind: ManifestRequestKind.RECORD, generation: 0, sinceSequence: 0, peerId: '' }, ManifestRequest)
      const page = await s.read(ManifestPage, 5_000)
      expect(page.full).toBe(true)
      expect(page.entries.map(e => e.path)).toContain(REAL_FILE)
    })

    it('resets a garbage request (a well-framed body that is no ManifestRequest)', async () => {
      const s = await hostile().open(a.peerId, PROTOCOL_MANIFEST)
      await s.write(lengthPrefixed(new Uint8Array(50).fill(0xff)))
      await expectReset(s)
    })

    it('resets a request whose length prefix announces 100 MB, without waiting for the body', async () => {
      const s = await hostile().open(a.peerId, PROTOCOL_MANIFEST)
      await s.write(varint(100 * 1000 * 1000))
      expect(await s.endedWithin(5_000)).toMatchObject({ how: 'reset' })
    })

    it('resets a RECORD request for an unknown peer', async () => {
      const s = await hostile().open(a.peerId, PROTOCOL_MANIFEST)
      await s.writeMessage({ kind: ManifestRequestKind.RECORD, generation: 0, sinceSequence: 0, peerId: await randomPeerId() }, ManifestRequest)
      await expectReset(s)
    })

    it.each(['not a peer id', '0OIl0OIl', 'x'.repeat(200), '../../etc/passwd'])('resets a RECORD request for the invalid peer id %j', async (peerId) => {
      const s = await hostile().open(a.peerId, PROTOCOL_MANIFEST)
      await s.writeMessage({ kind: ManifestRequestKind.RECORD, generation: 0, sinceSequence: 0, peerId }, ManifestRequest)
      await expectReset(s)
    })

    it('keeps serving while a SUMMARY answer is never read, and the summary lists only the honest nodes', async () => {
      const s = await hostile().open(a.peerId, PROTOCOL_MANIFEST)
      await s.writeMessage({ kind: ManifestRequestKind.SUMMARY, generation: 0, sinceSequence: 0, peerId: '' }, ManifestRequest)
      s.pause()
      for (let i = 0; i < 3; i++) {
        const status = await new ShoalClient(a.socket, { timeoutMs: 5_000 }).status()
        expect(status.peerId).toBe(a.peerId)
      }
      s.stream.resume()
      const summary = await s.read(ManifestSummary, 5_000)
      expect(summary.nodes.map(n => n.peerId).sort()).toEqual([a.peerId, b.peerId].sort())
    })

    it('changed nothing in the view', async () => {
      await expectViewUnchanged()
    })
  })

  describe('/shoal/chunk/1.0.0', () => {
    const CHUNKS = REAL_SIZE / MIN_CHUNK_SIZE
    /** How each error reply's stream ended afterwards (undefined: still open 1 s later). */
    const afterErrorReply: Record<string, StreamEnd | undefined> = {}
    let otherPeerWhileStalled: ChunkResponse | undefined

    async function request (peer: HostilePeer, message: Partial<ChunkRequest>): Promise<{ reply: ChunkResponse, stream: HostileStream }> {
      const s = await peer.open(a.peerId, PROTOCOL_CHUNK)
      await s.writeMessage({ kind: ChunkRequestKind.CHUNKS, contentId: new Uint8Array(0), ranges: [], ...message }, ChunkRequest)
      return { reply: await s.read(ChunkResponse, 5_000), stream: s }
    }

    /** Opens `count` requests for every chunk of the real file and never reads the answers. */
    async function stalledDownloads (peer: HostilePeer, count: number): Promise<HostileStream[]> {
      const streams: HostileStream[] = []
      for (let i = 0; i < count; i++) {
        const s = await peer.open(a.peerId, PROTOCOL_CHUNK)
        await s.writeMessage({ kind: ChunkRequestKind.CHUNKS, contentId: realContentId, ranges: [{ start: 0, count: CHUNKS }] }, ChunkRequest)
        s.pause()
        streams.push(s)
      }
      // Every request was answered (served, or refused as busy): its first bytes arrived and wait, unread.
      await waitFor('every stalled request to receive its first bytes', () => streams.every(s => s.stream.readBufferLength > 0), 10_000, 50)
      return streams
    }

    it('serves the hash list of a real file (the protocol works; the refusals below are about the input)', async () => {
      const { reply } = await request(hostile(), { kind: ChunkRequestKind.HASHES, contentId: realContentId })
      expect(reply.status).toBe(ChunkStatus.FOUND)
      expect(reply.size).toBe(REAL_SIZE)
      expect(reply.hashes.length).toBe(CHUNKS * 32)
    })

    it.each<{ name: string, message: Partial<ChunkRequest>, status: ChunkStatus }>([
      { name: 'a 3-byte content id', message: { contentId: randomBytes(3), ranges: [{ start: 0, count: 1 }] }, status: ChunkStatus.BAD_REQUEST },
      { name: 'a range of 1,000,000 chunks', message: { ranges: [{ start: 0, count: 1_000_000 }] }, status: ChunkStatus.BAD_REQUEST },
      { name: 'a range starting at the chunk count', message: { ranges: [{ start: CHUNKS, count: 1 }] }, status: ChunkStatus.BAD_REQUEST },
      { name: 'a range ending past the chunk count', message: { ranges: [{ start: CHUNKS - 1, count: 2 }] }, status: ChunkStatus.BAD_REQUEST },
      { name: 'a range starting at 2^32-1', message: { ranges: [{ start: 0xffffffff, count: 1 }] }, status: ChunkStatus.BAD_REQUEST },
      { name: 'a HASHES request for an unknown content id', message: { kind: ChunkRequestKind.HASHES, contentId: randomBytes(32) }, status: ChunkStatus.NOT_FOUND }
    ])('answers $status to $name, with no data, then ends the stream', async ({ name, message, status }) => {
      const { reply, stream } = await request(hostile(), { contentId: realContentId, ...message })
      expect(ChunkStatus[reply.status]).toBe(ChunkStatus[status])
      expect(reply.data.length).toBe(0)
      expect(reply.hashes.length).toBe(0)
      afterErrorReply[name] = await stream.endedWithin(1_000)
    })

    it('resets a request whose length prefix is larger than a chunk request may be', async () => {
      const s = await hostile().open(a.peerId, PROTOCOL_CHUNK)
      await s.write(varint(100 * 1000 * 1000))
      expect(await s.endedWithin(5_000)).toMatchObject({ how: 'reset' })
    })

    it(`keeps memory bounded and keeps answering while ${MAX_CONCURRENT_UPLOADS} chunk downloads are never read`, async () => {
      const pid = a.child?.pid as number
      const before = await residentBytes(pid)
      // Each request asks for 16 MiB: 512 MiB in total if the agent buffered what it cannot send.
      const streams = await stalledDownloads(hostile(), MAX_CONCURRENT_UPLOADS)
      // Meanwhile another peer asks for one chunk.
      otherPeerWhileStalled = (await request(h2 as HostilePeer, { contentId: realContentId, ranges: [{ start: 0, count: 1 }] })).reply
      const deadline = Date.now() + 3_000
      let peak = before
      for (let i = 0; i < 100 && Date.now() < deadline; i++) {
        peak = Math.max(peak, await residentBytes(pid))
        const status = await new ShoalClient(a.socket, { timeoutMs: 5_000 }).status()
        expect(status.peerId).toBe(a.peerId)
        await new Promise(resolve => setTimeout(resolve, 200))
      }
      console.info(`${streams.length} unread downloads: agent RSS ${Math.round(before / MiB)} MiB -> peak ${Math.round(peak / MiB)} MiB; another peer got ${ChunkStatus[otherPeerWhileStalled.status]}`)
      expect(peak - before).toBeLessThan(200 * MiB)
      // The agent sent only what the (never renewed) stream window allowed.
      for (const s of streams) expect(s.stream.readBufferLength).toBeLessThanOrEqual(MiB)
      hostile().abortAll()
      // Aborted requests free their upload slots.
      await waitFor('a new chunk request to be served', async () =>
        (await request(hostile(), { contentId: realContentId, ranges: [{ start: 0, count: 1 }] })).reply.status === ChunkStatus.FOUND, 10_000, 100)
    })

    it('another peer is still served while one peer stalls every upload it can', () => {
      expect(otherPeerWhileStalled).toBeDefined()
      expect(otherPeerWhileStalled == null ? 'no reply' : ChunkStatus[otherPeerWhileStalled.status]).toBe('FOUND')
    })

    it('every error reply is followed by the end of the stream', () => {
      expect(Object.keys(afterErrorReply)).toHaveLength(6)
      const open = Object.entries(afterErrorReply).filter(([, end]) => end == null).map(([name]) => name)
      console.info(`streams still open 1 s after the error reply: ${open.join('; ') || 'none'}`)
      expect(open).toEqual([])
    })
  })

  describe('requests that stall half-way', () => {
    const limit = 2 * REQUEST_READ_TIMEOUT_MS
    const ends: Record<string, StreamEnd | undefined> = {}

    it(`are aborted by the chunk server within ${limit} ms (read timeout ${REQUEST_READ_TIMEOUT_MS} ms)`, async () => {
      const chunk = await hostile().open(a.peerId, PROTOCOL_CHUNK)
      await chunk.write(Uint8Array.from([...varint(100), ...randomBytes(10)]))
      const manifestHalf = await hostile().open(a.peerId, PROTOCOL_MANIFEST)
      await manifestHalf.write(Uint8Array.from([...varint(100), ...randomBytes(10)]))
      // A length prefix that never ends (libp2p only checks its length once it decodes).
      const manifestVarint = await hostile().open(a.peerId, PROTOCOL_MANIFEST)
      await manifestVarint.write(new Uint8Array(64).fill(0xff))
      ends.chunk = await chunk.endedWithin(limit)
      // The manifest server gets the same read timeout, and a little more (not its whole 30 s pull timeout).
      const waitedMs = Date.now() - chunk.openedAt + 3_000
      ;[ends.manifestHalf, ends.manifestVarint] = await Promise.all([manifestHalf, manifestVarint].map(async s => await s.endedWithin(Math.max(0, Math.min(limit, waitedMs) - (Date.now() - s.openedAt)))))
      console.info(`stalled requests ended after: chunk ${ends.chunk?.afterMs} ms (${ends.chunk?.how}), manifest half message ${ends.manifestHalf?.afterMs ?? `>${waitedMs}`} ms, manifest endless prefix ${ends.manifestVarint?.afterMs ?? `>${waitedMs}`} ms`)
      expect(ends.chunk).toMatchObject({ how: 'reset' })
      expect(ends.chunk?.afterMs).toBeLessThan(limit)
      expect((await a.client.status()).peerId).toBe(a.peerId)
    })

    it('are aborted by the manifest server within the same read timeout', () => {
      expect(Object.keys(ends)).toEqual(expect.arrayContaining(['manifestHalf', 'manifestVarint']))
      expect(ends.manifestHalf).toMatchObject({ how: 'reset' })
      expect(ends.manifestVarint).toMatchObject({ how: 'reset' })
    })
  })

  describe('a flood', () => {
    /** Polls /v1/status every 100 ms (ShoalClient, in a worker thread) until told to stop, then posts what it saw. */
    const STATUS_POLLER = `
      const { parentPort, workerData } = require('node:worker_threads')
      let stop = false
      parentPort.once('message', () => { stop = true })
      ;(async () => {
        const { ShoalClient } = await import(workerData.client)
        const client = new ShoalClient(workerData.socket, { timeoutMs: workerData.timeoutMs })
        await client.status()
        parentPort.postMessage('polling')
        const answered = []
        const failed = []
        for (let i = 0; i < 1000 && !stop; i++) {
          const t0 = Date.now()
          try {
            await client.status()
            answered.push(Date.now() - t0)
          } catch (err) {
            failed.push(Date.now() - t0 + ' ms: ' + err.message)
          }
          await new Promise(resolve => setTimeout(resolve, 100))
        }
        parentPort.postMessage({ answered, failed })
      })()
    `
    const COUNT = 4000
    /** What a local API call may take while the flood is on. */
    const STATUS_DEADLINE_MS = 1_000
    let flood: { sent: number, floodMs: number, answered: number[], failed: string[] } | undefined

    it(`of ${COUNT} valid-looking but bogus announcements is rejected, changes nothing, and the agent answers once it is over`, async () => {
      const before = await rejections()
      // Well-formed announcements of a plausible node with a growing sequence, each broken in one subtle way.
      const breakers: Array<(i: number) => FileEntry[]> = [
        (i) => [liveEntry(`flood/${i}.bin`, { seq: i + 2 })],
        (i) => [liveEntry(`flood/../../${i}.bin`)],
        (i) => [liveEntry(`flood/${i}.bin`, { contentId: randomBytes(16) })],
        (i) => [liveEntry(`flood/${i}.bin`, { chunkSize: MIN_CHUNK_SIZE + 1 })],
        (i) => [liveEntry(`flood/${i}.bin`, { version: 0 })],
        (i) => [liveEntry(`flood/${i}.bin`), liveEntry(`flood/${i}.bin`)]
      ]
      // Status calls made while the flood is on: how long each took, or how it failed. They run on
      // a thread of their own: the publishing loop below keeps this thread's event loop busy for
      // seconds (signing and sending is one chain of promises), so a poller here would time this
      // process rather than the agent (it read ~2 s for the first call while the agent, polled from
      // another process, answered within ~150 ms).
      const poller = new Worker(STATUS_POLLER, {
        eval: true,
        workerData: { client: new URL('../packages/client/dist/index.js', import.meta.url).href, socket: a.socket, timeoutMs: STATUS_DEADLINE_MS }
      })
      await once(poller, 'message') // it reached the agent once, and polls from now on
      const started = Date.now()
      let sent = 0
      try {
        for (let i = 0; i < COUNT && Date.now() - started < 15_000; i++) {
          const sequence = i + 1
          const entries = breakers[i % breakers.length](i)
          await hostile().publish(ANNOUNCE_TOPIC, Announcement.encode(complete(Announcement, { node: hostileNode({ sequence }), fromSequence: sequence - 1, entries })))
          sent++
          published++
        }
        // The flood lasts until the agent has worked through it (or gave up on the sender).
        let last = -1
        await waitFor('the rejection count to settle', async () => {
          const now = (await rejections()).fromHostile - before.fromHostile
          if (now === sent || (now === last && now > 0)) return true
          last = now
          return undefined
        }, 60_000, 500)
      } finally {
        poller.postMessage('stop')
      }
      const [{ answered, failed }] = await once(poller, 'message') as [{ answered: number[], failed: string[] }]
      flood = { sent, floodMs: Date.now() - started, answered, failed }
      const counted = (await rejections()).fromHostile - before.fromHostile
      console.info(`flood: ${sent} announcements, worked through in ${flood.floodMs} ms, ${counted} counted as rejected; ` +
        `status during the flood answered ${answered.length} times (${answered.join(', ')} ms), failed ${failed.length} times (${failed.join('; ')})`)
      expect(sent).toBeGreaterThanOrEqual(1000)
      expect(counted).toBeGreaterThan(0)
      expect(counted).toBeLessThanOrEqual(sent)
      expect(a.child?.exitCode).toBeNull()
      expect((await a.client.status()).peerId).toBe(a.peerId)
      await expectViewUnchanged([['default', 'flood/0.bin'], ['default', 'flood/1.bin']])
    })

    it(`keeps answering its local API within ${STATUS_DEADLINE_MS} ms during the flood`, () => {
      expect(flood).toBeDefined()
      if (flood == null) return
      expect(flood.answered.length).toBeGreaterThan(0)
      expect(flood.failed).toEqual([])
      expect(Math.max(0, ...flood.answered)).toBeLessThan(STATUS_DEADLINE_MS)
    })
  })

  describe('afterwards', () => {
    it('the agent is alive, answers, and still syncs a new file from the honest peer', async () => {
      expect(a.child?.exitCode).toBeNull()
      expect((await a.client.status()).peers.find(p => p.peerId === b.peerId)?.connected).toBe(true)
      const expected = await writeRandomFile(join(b.data, 'after.bin'), 3 * MiB)
      await waitFor('after.bin on A', async () => (await sha256IfPresent(join(a.data, 'after.bin'))) === expected, 30_000, 200)
      const where = await waitFor('A to list both holders of after.bin as complete', async () => {
        const w = await a.client.where('default', 'after.bin')
        return w.holders.length === 2 && w.holders.every(x => x.complete) ? w : undefined
      })
      expect(where.holders.map(x => x.peerId).sort()).toEqual([a.peerId, b.peerId].sort())
      // Nothing the hostile peer sent ever made it into the view.
      const status = await a.client.status()
      expect(status.view.nodes.map(n => n.peerId)).not.toContain(hostile().peerId)
      expect((await a.client.files('default', { limit: 100 })).files.map(f => f.path).sort()).toEqual(['after.bin', REAL_FILE])
      // Counted against the hostile peer: each message at most once (all of them, unless it was cut off).
      expect((await rejections()).fromHostile).toBeLessThanOrEqual(published)
    })
  })
})

/**
 * Attacks by a member that sends only valid messages. They run in a cluster of their own (own
 * key): valid messages spread to every agent, and they leave forged or bogus state behind (the
 * last one crashed the agents before redial tolerated bad addresses). Each attack is carried out
 * by an ordinary test that also checks it really happened; the wanted outcome is then asserted
 * on what it recorded.
 */
describe('a hostile member sending valid messages', () => {
  const cluster = new Cluster()
  let c: TestAgent
  let d: TestAgent
  const hostiles: HostilePeer[] = []
  let h: HostilePeer
  const generation = Date.now()
  let sequence = 0
  /** What 100,000 announced entries may keep in an agent's memory: about 1 KiB each. */
  const RETAINED_LIMIT_BYTES = 100 * MiB
  const info = (fields: Partial<NodeInfo> = {}): NodeInfo =>
    nodeInfo({ name: 'mallory', generation, sequence, addrs: [], role: 'persistent', datasets: ['default'], ...fields })

  /** What the attacks did; undefined until measured. */
  const seen: {
    ghostRequests?: number
    escapedDirectory?: boolean
    deltaGeneration?: { real: number, after: number | undefined, holdersOfDeltaFile: string[] }
    growth?: { peakBytes: number, retainedBytes: number, settledMs: number }
    exited?: { gamma: number | null, delta: number | null, stderr: string }
  } = {}

  beforeAll(async () => {
    await cluster.init()
    c = await cluster.add({ name: 'gamma' })
    d = await cluster.add({ name: 'delta', clusterKey: c.clusterKeyFile, bootstrap: [c.address] })
    await writeFile(join(d.data, 'delta.bin'), 'held by delta')
    await waitFor('C to see delta.bin held by D', async () => (await c.client.where('default', 'delta.bin')).holders.some(x => x.peerId === d.peerId))
    h = await HostilePeer.start({ clusterKeyFile: c.clusterKeyFile })
    hostiles.push(h)
    await h.connect(c.address)
  })

  afterAll(async () => {
    try {
      await Promise.allSettled(hostiles.map(async x => await x.stop()))
    } finally {
      await cluster.cleanup()
    }
  })

  it('announces files it never serves (one behind a symlink that leaves the dataset): C lists it as holder and asks it', async () => {
    let requests = 0
    await h.handle(PROTOCOL_CHUNK, async (stream) => {
      requests++
      const pb = pbStream(stream, { maxDataLength: 4096 })
      try {
        await pb.read(ChunkRequest, { signal: AbortSignal.timeout(2_000) })
        await pb.write(complete(ChunkResponse, { status: ChunkStatus.NOT_FOUND, last: true }), ChunkResponse)
        await stream.close()
      } catch (err: any) {
        stream.abort(err)
      }
    })
    // A symlink inside the dataset that points outside it (made by the node's own user).
    const outside = cluster.path('outside')
    await mkdir(outside)
    await symlink(outside, join(c.data, 'link'))
    sequence = 2
    await h.publishAnnouncement({
      node: info(),
      fromSequence: 0,
      entries: [liveEntry('ghost.bin', { seq: 1 }), liveEntry('link/escaped/ghost.bin', { seq: 2 })]
    })
    await waitFor('C to list the hostile peer as holder', async () => (await c.client.where('default', 'ghost.bin')).holders.some(x => x.peerId === h.peerId), 10_000)
    await waitFor('C to ask the hostile peer for the file', () => requests > 0, 10_000, 50)
    const r0 = requests
    await new Promise(resolve => setTimeout(resolve, 3_000))
    seen.ghostRequests = requests - r0
    seen.escapedDirectory = await exists(join(outside, 'escaped'))
    console.info(`C asked the hostile peer ${seen.ghostRequests} more times in 3 s for files it never serves; directory made outside the dataset: ${seen.escapedDirectory}`)
    // The "holder" deletes both files, which ends any retries.
    sequence = 3
    await h.publishAnnouncement({
      node: info(),
      fromSequence: 2,
      entries: [liveEntry('ghost.bin', { seq: 3, version: 2, deleted: true }), liveEntry('link/escaped/ghost.bin', { seq: 3, version: 2, deleted: true })]
    })
    await waitFor('C to see the files deleted', async () => (await c.client.where('default', 'ghost.bin')).deleted, 10_000)
  })

  it('is not asked again and again for a file it never serves', () => {
    expect(seen.ghostRequests).toBeDefined()
    expect(seen.ghostRequests).toBeLessThanOrEqual(10)
  })

  it('makes no directory outside the dataset through a symlink', () => {
    expect(seen.escapedDirectory).toBeDefined()
    expect(seen.escapedDirectory).toBe(false)
  })

  it('claims in a summary that D\'s record is newer and offers a forged record of D: C asks D itself, not the hostile peer', async () => {
    const real = (await c.client.status()).view.nodes.find(n => n.peerId === d.peerId)
    expect(real).toBeDefined()
    const forgedGeneration = (real?.generation ?? 0) + 1
    let served = false
    let summarised = false
    await h.handle(PROTOCOL_MANIFEST, async (stream) => {
      const pb = pbStream(stream, { maxDataLength: 1024 })
      try {
        const req = await pb.read(ManifestRequest, { signal: AbortSignal.timeout(2_000) })
        if (req.kind === ManifestRequestKind.SUMMARY) {
          await pb.write(complete(ManifestSummary, { nodes: [{ peerId: d.peerId, generation: forgedGeneration, sequence: 1 }] }), ManifestSummary)
          summarised = true
        } else if (req.peerId === d.peerId) {
          // A record "of delta" that holds nothing, one generation newer than delta's own.
          await pb.write(complete(ManifestPage, { node: nodeInfo({ name: 'delta', generation: forgedGeneration, sequence: 1, datasets: ['default'] }), full: true, entries: [], last: true }), ManifestPage)
          served = true
        } else {
          await pb.write(complete(ManifestPage, { node: info(), full: true, entries: [], last: true }), ManifestPage)
        }
        await stream.close()
      } catch (err: any) {
        stream.abort(err)
      }
    })
    // Heartbeats with one digest that differs from C's view (a view that stood still and still
    // differs) make C ask the hostile peer for its summary.
    const digest = randomBytes(32)
    await waitFor('C to fetch the hostile peer\'s summary', async () => {
      if (!summarised) await h.publishHeartbeat({ node: info(), load: LoadLevel.OK, digest })
      return summarised
    }, 10_000, 300)
    // C takes the summary, sees D "ahead", and asks D itself (connected), never the hostile peer's copy.
    await waitFor('C to settle', async () => (await c.client.status()).view.nodes.find(n => n.peerId === d.peerId)?.generation === forgedGeneration, 2_000, 50).catch(() => {})
    expect(served).toBe(false)
    const status = await c.client.status()
    seen.deltaGeneration = {
      real: real?.generation as number,
      after: status.view.nodes.find(n => n.peerId === d.peerId)?.generation,
      holdersOfDeltaFile: (await c.client.where('default', 'delta.bin')).holders.map(x => x.peerId)
    }
    console.info(`after the forged record: C holds D at generation ${seen.deltaGeneration.after} (real ${seen.deltaGeneration.real}); holders of delta.bin: ${seen.deltaGeneration.holdersOfDeltaFile.map(p => p === d.peerId ? 'D' : p === c.peerId ? 'C' : p).join(', ')}`)
  })

  it('cannot rewrite another node\'s record through anti-entropy', () => {
    expect(seen.deltaGeneration).toBeDefined()
    expect(seen.deltaGeneration?.after).toBe(seen.deltaGeneration?.real)
    expect(seen.deltaGeneration?.holdersOfDeltaFile).toContain(d.peerId)
  })

  it('announces 100,000 entries in eight valid messages to C and D (memory measured)', async () => {
    const MESSAGES = 8
    const PER_MESSAGE = 12_500
    const pids = [c.child?.pid as number, d.child?.pid as number]
    const before = await Promise.all(pids.map(residentBytes))
    const rejectedBefore = await Promise.all([c, d].map(async x => (await x.client.status()).gossip.rejectedFrom[h.peerId] ?? 0))
    /** Both took the entries up to `upTo`, or refused some (an agent that caps a node's record). */
    const tookOrRefused = async (upTo: number): Promise<boolean> => (await Promise.all([c, d].map(async (x, i) => {
      const status = await x.client.status()
      return (status.view.nodes.find(n => n.peerId === h.peerId)?.sequence ?? 0) >= upTo || (status.gossip.rejectedFrom[h.peerId] ?? 0) > rejectedBefore[i]
    }))).every(Boolean)
    let republished = 0
    for (let m = 0; m < MESSAGES; m++) {
      const from = sequence
      sequence++
      // Tombstones with short paths: small on the wire, and nothing for the agents to fetch.
      const entries = Array.from({ length: PER_MESSAGE }, (_, i) => fileEntry({ dataset: 'default', path: `many/${m}/${i.toString(36)}`, version: 1, deleted: true, seq: sequence }))
      const message = { node: info(), fromSequence: from, entries }
      // One message (~360 KB) at a time, sent again if C and D have not taken it within 15 s: this
      // peer neither heartbeats nor serves its record, so a message lost on the way (the burst of
      // eight once went unanswered for 90 s in a clean-clone run under the whole suite's load;
      // cause not found) would otherwise never reach them. A repeat of a message taken is stale.
      for (let attempt = 0; ; attempt++) {
        await h.publishAnnouncement(message)
        const took = await waitFor(`C and D to take or refuse message ${m + 1}`, async () => await tookOrRefused(sequence), 15_000, 250).then(() => true, () => false)
        if (took || attempt === 3) break
        republished++
      }
    }
    await waitFor('C and D to take or refuse the entries', async () => await tookOrRefused(sequence), 90_000, 250)
    const growthOf = (rss: number[]): number => Math.max(rss[0] - before[0], rss[1] - before[1])
    const peak = await Promise.all(pids.map(residentBytes))
    // What the entries keep, not the garbage of decoding them: RSS falls once V8 collects and
    // shrinks its heap, a few seconds after the burst. Poll for that, with a deadline.
    const tookAt = Date.now()
    let retained = growthOf(peak)
    let settledMs = 0
    await waitFor(`C and D to retain less than ${RETAINED_LIMIT_BYTES / MiB} MiB more than before`, async () => {
      const growth = growthOf(await Promise.all(pids.map(residentBytes)))
      if (growth < retained) {
        retained = growth
        settledMs = Date.now() - tookAt
      }
      return retained < RETAINED_LIMIT_BYTES
    }, 20_000, 250).catch(() => {})
    // Report where it settles: two more seconds of samples (the assertion does not depend on them).
    for (let i = 0; i < 8; i++) {
      await new Promise(resolve => setTimeout(resolve, 250))
      const growth = growthOf(await Promise.all(pids.map(residentBytes)))
      if (growth < retained) {
        retained = growth
        settledMs = Date.now() - tookAt
      }
    }
    seen.growth = { peakBytes: growthOf(peak), retainedBytes: retained, settledMs }
    const files = (await c.client.status()).view.files
    console.info(`${MESSAGES * PER_MESSAGE} entries from one member: C holds ${files} files; RSS C ${Math.round(before[0] / MiB)} -> ${Math.round(peak[0] / MiB)} MiB, D ${Math.round(before[1] / MiB)} -> ${Math.round(peak[1] / MiB)} MiB at the last entry; ${Math.round(retained / MiB)} MiB more than before ${settledMs} ms later; messages sent again: ${republished}`)
  })

  // RSS at the last entry is about 155 MiB above the start on this machine, but most of it is the
  // garbage of decoding the burst: 25-27 MiB stay once V8 has shrunk its heap (7 Dec 2026). There is
  // still no cap on what one node's record may hold: a member announcing millions of entries costs
  // every agent about 250 bytes of memory each.
  it(`keeps less than ${RETAINED_LIMIT_BYTES / MiB} MiB for 100,000 announced entries, once the burst is collected`, () => {
    expect(seen.growth).toBeDefined()
    expect(seen.growth?.retainedBytes).toBeLessThan(RETAINED_LIMIT_BYTES)
  })

  // Last: it may kill the agents of this cluster (an agent without tolerant redial).
  it('announces an address that does not parse, then leaves: C and D, which redial it, are watched for 4.5 s', async () => {
    const h4 = await HostilePeer.start({ clusterKeyFile: c.clusterKeyFile })
    hostiles.push(h4)
    await h4.connect(c.address)
    await h4.publishAnnouncement({ node: nodeInfo({ name: 'mallory-2', generation: Date.now(), sequence: 0, addrs: ['/not-a-protocol/1'] }), fromSequence: 0, entries: [] })
    await waitFor('C and D to hold its record', async () =>
      (await Promise.all([c, d].map(async x => (await x.client.status()).view.nodes.some(n => n.peerId === h4.peerId)))).every(Boolean), 10_000)
    await h4.stop()
    // Both redial known nodes every REDIAL_INTERVAL_MS (3 s): watch one round and a half.
    const deadline = Date.now() + 4_500
    while (Date.now() < deadline && (c.child?.exitCode === null || d.child?.exitCode === null)) {
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    seen.exited = { gamma: c.child?.exitCode ?? null, delta: d.child?.exitCode ?? null, stderr: c.stderr.slice(-400) }
    console.info(`after the unparsable address: gamma exit code ${seen.exited.gamma}, delta exit code ${seen.exited.delta}`)
  })

  it('an unparsable address does not crash the agents that redial it', () => {
    expect(seen.exited).toBeDefined()
    expect(seen.exited).toMatchObject({ gamma: null, delta: null })
  })
})
