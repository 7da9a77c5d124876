import type { Bitfield } from './bitfield.js'

export interface PickInput {
  /** Chunks of the file. */
  count: number
  /** Chunks already held (verified). */
  have: Bitfield
  /** Chunks requested and not yet received, with how many requests are out for each. */
  inFlight: Map<number, number>
  /** What the peer we are about to ask holds; undefined means every chunk. */
  peerHas?: Bitfield
  /** How many known sources hold each chunk. */
  availability: Uint16Array
  /** This node's random starting point, so that receivers fetch different chunks first. */
  offset: number
  /** At most this many chunks. */
  max: number
  /** End game: also pick chunks already in flight (from other peers), at most one extra request each. */
  endgame?: boolean
}

/**
 * Chooses the chunks to ask one peer for: chunks it holds that we neither have nor have asked
 * for, rarest first; among equally rare ones, the nearest after this node's offset. In end game,
 * chunks in flight elsewhere (one request out) are raced on this peer.
 */
export function pickChunks (input: PickInput): number[] {
  const { count, have, inFlight, peerHas, availability, offset, max } = input
  const candidates: number[] = []
  for (let k = 0; k < count; k++) {
    const i = (offset + k) % count
    if (have.has(i) || (peerHas != null && !peerHas.has(i))) continue
    const out = inFlight.get(i) ?? 0
    if (out === 0 || (input.endgame === true && out === 1)) candidates.push(i)
  }
  if (candidates.length <= max && input.endgame !== true) return candidates.sort((a, b) => a - b)
  // Stable sort keeps the offset order among equally rare chunks.
  candidates.sort((a, b) => (availability[a] - availability[b]) || ((inFlight.get(a) ?? 0) - (inFlight.get(b) ?? 0)))
  return candidates.slice(0, max).sort((a, b) => a - b)
}
