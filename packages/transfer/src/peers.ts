import { CircuitBreaker } from './circuit-breaker.js'
import { BREAKER_COOL_DOWN_MS, BREAKER_FAILURE_THRESHOLD, THROUGHPUT_EWMA_ALPHA } from './constants.js'
import { TokenBucket } from './token-bucket.js'

/** A peer's load as it announces it: busy peers get fewer requests, overloaded ones none while others can serve. */
export type LoadLevel = 'ok' | 'busy' | 'overloaded'

/** What this node knows of one peer as a source of chunks, shared by every download. */
export class PeerState {
  readonly breaker: CircuitBreaker
  /** Bytes per second, averaged over recent requests; 0 when unknown. */
  throughput = 0
  load: LoadLevel = 'ok'
  busyUntil = 0
  inFlight = 0
  bytesReceived = 0
  chunksFailed = 0
  readonly bucket: TokenBucket

  constructor (readonly peerId: string, perPeerRate: number, now: () => number) {
    this.breaker = new CircuitBreaker({ failureThreshold: BREAKER_FAILURE_THRESHOLD, coolDownMs: BREAKER_COOL_DOWN_MS, now })
    this.bucket = new TokenBucket(perPeerRate)
  }

  recordThroughput (bytes: number, ms: number): void {
    if (ms <= 0 || bytes <= 0) return
    const sample = bytes / (ms / 1000)
    this.throughput = this.throughput === 0 ? sample : this.throughput * (1 - THROUGHPUT_EWMA_ALPHA) + sample * THROUGHPUT_EWMA_ALPHA
  }
}

/** Every peer's state, created on first use. */
export class PeerBook {
  private readonly peers = new Map<string, PeerState>()

  constructor (private perPeerRate = 0, private readonly now: () => number = Date.now) {}

  get (peerId: string): PeerState {
    let peer = this.peers.get(peerId)
    if (peer == null) {
      peer = new PeerState(peerId, this.perPeerRate, this.now)
      this.peers.set(peerId, peer)
    }
    return peer
  }

  setLoad (peerId: string, load: LoadLevel): void {
    this.get(peerId).load = load
  }

  all (): PeerState[] {
    return [...this.peers.values()]
  }
}
