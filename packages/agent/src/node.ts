import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { preSharedKey } from '@libp2p/pnet'
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
  /** When not empty, only these peers may connect. */
  allow?: string[]
  /** A Prometheus registry for libp2p's own metrics. */
  metrics?: Registry
}

/** The libp2p node: TCP, a private network (pre-shared key), Noise, Yamux, identify, gossipsub. */
export async function createNode (init: NodeInit): Promise<ShoalNode> {
  const allow = new Set(init.allow ?? [])
  const denied = (peer: { toString: () => string }): boolean => allow.size > 0 && !allow.has(peer.toString())
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
    connectionProtector: preSharedKey({ psk: init.clusterKey }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
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
        scoreParams: { IPColocationFactorWeight: 0 }
      })
    }
  }) as unknown as ShoalNode
}
