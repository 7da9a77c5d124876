import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { createTopicScoreParams } from '@libp2p/gossipsub/score'
import { identify } from '@libp2p/identify'
import { privateNetwork } from './pnet.js'
import { noiseCrypto } from './noise-crypto.js'
import { CONNECTION_PING_TIMEOUT_MS } from './constants.js'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import type { Registry } from 'prom-client'
import type { Libp2p, PrivateKey } from '@libp2p/interface'

export type ShoalNode = Libp2p<{ pubsub: GossipSub, identify: unknown }>

export interface NodeInit {
  privateKey: PrivateKey
  clusterKey: Uint8Array
  listen: string[]
  /** The pubsub topics shoal uses (scored). */
  topics: string[]
  /** When not empty, only these peers may connect. */
  allow?: string[]
  /** A Prometheus registry for libp2p's own metrics. */
  metrics?: Registry
  /** Peers refused for now (e.g. after a flood of invalid messages). */
  blocked?: (peerId: string) => boolean
}

/** The libp2p node: TCP, a private network (pre-shared key), Noise, Yamux, identify, gossipsub. */
export async function createNode (init: NodeInit): Promise<ShoalNode> {
  const allow = new Set(init.allow ?? [])
  const denied = (peer: { toString: () => string }): boolean =>
    (allow.size > 0 && !allow.has(peer.toString())) || (init.blocked?.(peer.toString()) ?? false)
  return await createLibp2p({
    privateKey: init.privateKey,
    // The allow-list: a peer not on it is refused once its identity is known (both directions).
    connectionGater: {
      denyInboundEncryptedConnection: denied,
      denyOutboundEncryptedConnection: denied,
      denyDialPeer: denied
    },
    metrics: init.metrics == null ? undefined : prometheusMetrics({ registry: init.metrics, preserveExistingMetrics: true }),
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionProtector: privateNetwork(init.clusterKey),
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux()],
    // A ping waits behind the chunk data already queued on its connection; on a capped link that
    // several receivers share that can take longer than libp2p's default 5 s minimum, and the
    // monitor then aborts the connection with every request on it (N = 8 at 25 Mbit/s: 10
    // connections aborted during one broadcast, each failing the requests in flight). A dead
    // connection is still aborted, after 15 s without a ping answer.
    connectionMonitor: { pingTimeout: { minTimeout: CONNECTION_PING_TIMEOUT_MS } },
    connectionManager: {
      // Many agents of a cluster can sit behind one address (tests, NAT): do not throttle them as a flood.
      inboundConnectionThreshold: 100,
      maxIncomingPendingConnections: 100
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        emitSelf: false,
        // Every copy of a message costs each hop a frame, a window update, two ciphers and two
        // system calls: an idle agent's CPU was mostly that (heartbeats), and it grows with the
        // cluster. A smaller mesh and publishing to it (not to every peer) send each message
        // about 4 times per node instead of 6 to 7; IHAVE gossip and the agents' own
        // anti-entropy cover what a smaller mesh could miss.
        floodPublish: false,
        D: 4,
        Dlo: 3,
        Dhi: 8,
        Dlazy: 4,
        // Every copy of a message (one from each mesh peer) would otherwise have its signature
        // checked before gossipsub sees it is a duplicate: ~250 us each, which at N = 8 during a
        // broadcast was a tenth of every agent's CPU. A copy is known by its signature (or, unsigned,
        // by sender and sequence number); the first copy is still verified, and only a verified
        // message enters this cache, so a forged copy cannot shadow the real one.
        fastMsgIdFn: (msg) => msg.signature != null && msg.signature.length > 0
          ? Buffer.from(msg.signature.buffer, msg.signature.byteOffset, msg.signature.byteLength).toString('base64')
          : `${Buffer.from(msg.from ?? new Uint8Array(0)).toString('base64')}/${Buffer.from(msg.seqno ?? new Uint8Array(0)).toString('base64')}`,
        // Invalid messages lower the sender's score on every shoal topic; nothing else does, so a
        // quiet topic never penalises honest peers.
        scoreParams: {
          IPColocationFactorWeight: 0,
          topics: Object.fromEntries(init.topics.map(t => [t, createTopicScoreParams({
            topicWeight: 1,
            timeInMeshWeight: 0,
            firstMessageDeliveriesWeight: 0,
            meshMessageDeliveriesWeight: 0,
            meshFailurePenaltyWeight: 0,
            invalidMessageDeliveriesWeight: -0.05,
            invalidMessageDeliveriesDecay: 0.9
          })]))
        },
        scoreThresholds: { gossipThreshold: -10, publishThreshold: -50, graylistThreshold: -80 }
      })
    }
  }) as unknown as ShoalNode
}
