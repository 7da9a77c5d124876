/**
 * A hostile cluster member for tests: a libp2p node in the test process with the agent's stack
 * (TCP, pre-shared key, Noise, Yamux, identify, gossipsub with the agent's options) and the
 * cluster key, so a real agent accepts its connection. It publishes whatever bytes a test
 * gives it on the shoal topics and writes arbitrary bytes or length-prefixed protobuf messages
 * on shoal protocol streams, reading the answers with deadlines.
 */
import { readFile } from 'node:fs/promises'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { pbStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CLUSTER_NAME, privateNetwork } from '@shoal/agent'
import { Announcement, FileEntry, Heartbeat, MAX_CHUNK_RESPONSE_BYTES, NodeInfo, announceTopic, directiveTopic, heartbeatTopic } from '@shoal/wire'
import { waitFor } from './agents.js'
import type { Libp2p, Stream, StreamHandler } from '@libp2p/interface'

export const ANNOUNCE_TOPIC = announceTopic(CLUSTER_NAME)
export const HEARTBEAT_TOPIC = heartbeatTopic(CLUSTER_NAME)
export const DIRECTIVE_TOPIC = directiveTopic(CLUSTER_NAME)
const TOPICS = [ANNOUNCE_TOPIC, HEARTBEAT_TOPIC, DIRECTIVE_TOPIC]

/** Anything protons generated: enough to encode and decode one message type. */
export interface MessageCodec<T> {
  encode: (obj: Partial<T>) => Uint8Array
  decode: (buf: Uint8Array | any, opts?: any) => T
}

/** The cluster key file in the canonical form the agent uses (see packages/agent/src/keys.ts). */
async function readPsk (file: string): Promise<Uint8Array> {
  const lines = (await readFile(file, 'utf8')).trim().split(/\r?\n/)
  if (lines.length !== 3) throw new Error(`${file} is not a /key/swarm/psk/1.0.0/ file`)
  return new TextEncoder().encode(`${lines[0]}\n${lines[1]}\n${lines[2].toLowerCase()}`)
}

/** Unsigned LEB128, as used for length prefixes. */
export function varint (value: number): Uint8Array {
  const out: number[] = []
  let v = value
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
  return Uint8Array.from(out)
}

export function lengthPrefixed (body: Uint8Array): Uint8Array {
  const prefix = varint(body.length)
  const out = new Uint8Array(prefix.length + body.length)
  out.set(prefix)
  out.set(body, prefix.length)
  return out
}

/** How a stream ended, seen from the hostile side, and how long after it was opened. */
export interface StreamEnd {
  /** reset: the remote aborted it; closed: the remote closed its write side; aborted: we did. */
  how: 'reset' | 'closed' | 'aborted'
  afterMs: number
  error?: string
}

/** One protocol stream of the hostile peer, with raw and length-prefixed writes and timed reads. */
export class HostileStream {
  readonly openedAt = Date.now()
  /** Settles once, when the remote resets or closes the stream, or when this side aborts it. */
  readonly ended: Promise<StreamEnd>
  private readonly pb: ReturnType<typeof pbStream>

  constructor (readonly stream: Stream) {
    this.ended = new Promise(resolve => {
      stream.addEventListener('remoteCloseWrite', () => { resolve({ how: 'closed', afterMs: Date.now() - this.openedAt }) })
      stream.addEventListener('close', (evt: any) => {
        const how = evt.error == null ? 'closed' : evt.local === true ? 'aborted' : 'reset'
        resolve({ how, afterMs: Date.now() - this.openedAt, error: evt.error?.message })
      })
    })
    this.pb = pbStream(stream, { maxDataLength: MAX_CHUNK_RESPONSE_BYTES, maxBufferSize: 2 * MAX_CHUNK_RESPONSE_BYTES })
  }

  /** Writes raw bytes, waiting for the stream to drain (bounded by `timeoutMs`). */
  async write (bytes: Uint8Array, timeoutMs = 5_000): Promise<void> {
    if (!this.stream.send(bytes)) await this.stream.onDrain({ signal: AbortSignal.timeout(timeoutMs) })
  }

  /** Writes one length-prefixed protobuf message. */
  async writeMessage<T> (message: Partial<T>, codec: MessageCodec<T>, timeoutMs = 5_000): Promise<void> {
    await this.write(lengthPrefixed(codec.encode(message)), timeoutMs)
  }

  /** Reads one length-prefixed protobuf message, or throws when none arrives within `timeoutMs`. */
  async read<T> (codec: MessageCodec<T>, timeoutMs = 5_000): Promise<T> {
    return await this.pb.read(codec as any, { signal: AbortSignal.timeout(timeoutMs) }) as T
  }

  /**
   * Reads one message, or reports how the stream ended instead: what a test needs to check that
   * a request was "answered with an error or reset".
   */
  async readOrEnd<T> (codec: MessageCodec<T>, timeoutMs = 5_000): Promise<{ message: T } | { end: StreamEnd }> {
    try {
      return { message: await this.read(codec, timeoutMs) }
    } catch (err: any) {
      const end = await this.endedWithin(500)
      if (end != null) return { end }
      throw err
    }
  }

  /** Stops reading: yamux stops granting the remote send window (a reader that never reads). */
  pause (): void {
    this.stream.pause()
  }

  /** How the stream ended, or undefined if it is still open after `timeoutMs`. */
  async endedWithin (timeoutMs: number): Promise<StreamEnd | undefined> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<undefined>(resolve => { timer = setTimeout(() => resolve(undefined), timeoutMs) })
    try {
      return await Promise.race([this.ended, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  abort (): void {
    this.stream.abort(new Error('hostile peer done'))
  }
}

export interface HostilePeerInit {
  /** The cluster key file of the agents to join. */
  clusterKeyFile: string
}

type HostileNode = Libp2p<{ pubsub: GossipSub, identify: unknown }>

/** A cluster member that sends whatever a test tells it to. Stop it in afterAll. */
export class HostilePeer {
  private readonly streams = new Set<HostileStream>()

  private constructor (readonly node: HostileNode) {}

  static async start (init: HostilePeerInit): Promise<HostilePeer> {
    const node = await createLibp2p({
      // No listen address: agents reach it over the connection it opens.
      addresses: { listen: [] },
      transports: [tcp()],
      connectionProtector: privateNetwork(await readPsk(init.clusterKeyFile)),
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: {
        identify: identify(),
        pubsub: gossipsub({
          allowPublishToZeroTopicPeers: true,
          ignoreDuplicatePublishError: true,
          emitSelf: false,
          scoreParams: { IPColocationFactorWeight: 0 }
        })
      }
    }) as unknown as HostileNode
    for (const topic of TOPICS) node.services.pubsub.subscribe(topic)
    return new HostilePeer(node)
  }

  get peerId (): string {
    return this.node.peerId.toString()
  }

  /** Connects to an agent (`/ip4/.../p2p/ID`) and waits until it can publish to it on every shoal topic. */
  async connect (address: string, timeoutMs = 15_000): Promise<void> {
    const ma = multiaddr(address)
    const peer = ma.getComponents().find(c => c.name === 'p2p')?.value
    if (peer == null) throw new Error(`${address} has no /p2p/ part`)
    await this.node.dial(ma, { signal: AbortSignal.timeout(timeoutMs) })
    const pubsub = this.node.services.pubsub
    await waitFor(`the agent ${peer} to show as subscribed to the shoal topics`, () =>
      TOPICS.every(t => pubsub.getSubscribers(t).some(p => p.toString() === peer)), timeoutMs, 50)
  }

  /** Closes every connection to a peer (the agent keeps any record it accepted). */
  async disconnect (peerId: string): Promise<void> {
    await this.node.hangUp(peerIdFromString(peerId), { signal: AbortSignal.timeout(5_000) })
  }

  /** Publishes arbitrary bytes on a topic (signed by this peer, as gossipsub requires). */
  async publish (topic: string, data: Uint8Array): Promise<void> {
    await this.node.services.pubsub.publish(topic, data)
  }

  async publishAnnouncement (message: Partial<Announcement>): Promise<void> {
    await this.publish(ANNOUNCE_TOPIC, Announcement.encode(complete(Announcement, message)))
  }

  async publishHeartbeat (message: Partial<Heartbeat>): Promise<void> {
    await this.publish(HEARTBEAT_TOPIC, Heartbeat.encode(complete(Heartbeat, message)))
  }

  /** Opens a stream of `protocol` to a connected agent. */
  async open (peerId: string, protocol: string, timeoutMs = 5_000): Promise<HostileStream> {
    const stream = await this.node.dialProtocol(peerIdFromString(peerId), protocol, { signal: AbortSignal.timeout(timeoutMs) })
    const hs = new HostileStream(stream)
    this.streams.add(hs)
    // Tracked until fully closed: a stream the remote only half-closed still counts against its limits.
    stream.addEventListener('close', () => this.streams.delete(hs))
    return hs
  }

  /** Serves a protocol on this peer (to see what an agent asks of it, or to answer it badly). */
  async handle (protocol: string, handler: StreamHandler): Promise<void> {
    await this.node.handle(protocol, handler, { force: true })
  }

  /** Aborts every stream this peer opened that is still open. */
  abortAll (): void {
    for (const s of this.streams) s.abort()
    this.streams.clear()
  }

  async stop (): Promise<void> {
    this.abortAll()
    await this.node.stop()
  }
}

/** A complete message: the codec's default for every field (the schema grows), then `fields`. */
export function complete<T> (codec: MessageCodec<T>, fields: Partial<T>): T {
  return { ...codec.decode(new Uint8Array(0)), ...fields }
}

export function nodeInfo (fields: Partial<NodeInfo>): NodeInfo {
  return complete(NodeInfo, fields)
}

export function fileEntry (fields: Partial<FileEntry>): FileEntry {
  return complete(FileEntry, fields)
}

/** A well-formed peer id of a node that does not exist. */
export async function randomPeerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

/** Resident memory of a process in bytes (Linux /proc), to show memory stays bounded. */
export async function residentBytes (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)
  if (match == null) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(match[1]) * 1024
}
