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

/** How the receivers of one file share what they ask of complete holders. */
export interface Stripe {
  /** This node's place among the receivers (sorted by peer id). */
  rank: number
  /** How many nodes are receiving the file (this one included). */
  of: number
  /** Chunks per block: a block (STRIPE_BLOCK_BYTES) is the unit a stripe is made of. */
  block: number
  /**
   * With a fixed set of receivers (a leader's directive names them): the ranks still live, in
   * order. A block whose owner is not live goes to the live ranks in turn, so that every node
   * that agrees on who is live agrees on the new owner. Undefined: every rank is live.
   */
  live?: LiveRanks
}

/** The live ranks of a stripe, in order, and a flag per rank. */
export interface LiveRanks {
  ranks: number[]
  alive: Uint8Array
}

export function liveRanks (alive: boolean[]): LiveRanks {
  const ranks: number[] = []
  alive.forEach((a, rank) => { if (a) ranks.push(rank) })
  return { ranks, alive: Uint8Array.from(alive, a => a ? 1 : 0) }
}

/** The rank whose stripe a chunk's block belongs to when every rank is live. */
export function naturalOwner (chunk: number, stripe: Stripe): number {
  return Math.floor(chunk / stripe.block) % stripe.of
}

/** The receiver that owns a chunk when `of` receivers share its file. */
export function stripeOwner (chunk: number, stripe: Stripe): number {
  const block = Math.floor(chunk / stripe.block)
  const owner = naturalOwner(chunk, stripe)
  const { live } = stripe
  if (live == null || live.ranks.length === 0 || live.alive[owner] === 1) return owner
  return live.ranks[Math.floor(block / stripe.of) % live.ranks.length]
}

export interface SeedPickInput {
  count: number
  have: Bitfield
  inFlight: Map<number, number>
  /** How many receivers (partial holders, not complete ones) hold each chunk. */
  heldByReceivers: Uint16Array
  stripe: Stripe
  max: number
}

/** A chunk this node lacks, that no receiver holds and that this node has not requested. */
function unclaimed (i: number, input: Omit<SeedPickInput, 'stripe'>): boolean {
  return !input.have.has(i) && input.heldByReceivers[i] === 0 && (input.inFlight.get(i) ?? 0) === 0
}

/**
 * Chooses the chunks to ask a complete holder (a seed) for when several nodes receive the same
 * file. A seed's upload is what every receiver shares, so each of its bytes should go to one
 * receiver only, which then passes it on: every receiver asks the seeds only for the chunks of
 * its own stripe (blocks whose index modulo the receivers is its rank) that no receiver holds,
 * in order from the first, and gets every other chunk from the receiver that owns it. An empty
 * answer means its stripe is all held or requested (then `pickHelp`, once this node is idle).
 *
 * Without this rule receivers that pick by rarity alone reach each other's regions, see the
 * chunks the other has in flight as still rare, and from then on ask the seed for the same
 * chunks: the seed sends each byte 1.5 to 2 times.
 */
export function pickFromSeed (input: SeedPickInput): number[] {
  const { count, stripe, max } = input
  const picked: number[] = []
  for (let i = 0; i < count && picked.length < max; i++) {
    if (stripeOwner(i, stripe) === stripe.rank && unclaimed(i, input)) picked.push(i)
  }
  return picked
}

/**
 * What an idle receiver asks a seed for when its own stripe is all held or requested: chunks
 * that no receiver holds, from the far end of the file (stripe owners walk their blocks from the
 * start, so they get there last). Receivers can disagree for a while on who receives the file
 * (one has not heard of another yet, or a circuit is open), and then a block can be in nobody's
 * stripe; this keeps such a block from waiting for a receiver that will never ask for it.
 * Helping at any other time would cost what stripes save: the helper cannot see what the owner
 * has in flight.
 */
export function pickHelp (input: Omit<SeedPickInput, 'stripe'>): number[] {
  const { count, max } = input
  const picked: number[] = []
  for (let i = count - 1; i >= 0 && picked.length < max; i--) {
    if (unclaimed(i, input)) picked.push(i)
  }
  return picked.sort((a, b) => a - b)
}

export interface FixedHelpInput extends SeedPickInput {
  /** Per rank: how many chunks of its own stripe that receiver holds (as it last advertised). */
  ownerHeld: Uint32Array
  /** Chunks an owner may have requested beyond those it holds (its pipeline, and the advert's lag). */
  window: number
}

/**
 * What a receiver of fixed stripes asks a seed for once its own stripe is all held or requested:
 * blocks of other stripes that no receiver holds, from the far end of the file, but never a
 * block its owner has reached (the owner walks its stripe from the start and may have the next
 * `window` chunks in flight, which no one else can see). Helpers spread over the candidate
 * blocks by rank (the j-th candidate from the end goes to rank j modulo the receivers), so that
 * helpers that become idle together do not all take the same last block.
 */
export function pickFixedHelp (input: FixedHelpInput): number[] {
  const { count, stripe, max, ownerHeld, window } = input
  const blocks = Math.ceil(count / stripe.block)
  const picked: number[] = []
  let candidate = 0
  for (let b = blocks - 1; b >= 0 && picked.length < max; b--) {
    const first = b * stripe.block
    const owner = stripeOwner(first, stripe)
    if (owner === stripe.rank) continue
    // The owner of its natural blocks walks them in order: those within its window are its own business.
    if (naturalOwner(first, stripe) === owner && Math.floor(b / stripe.of) * stripe.block < ownerHeld[owner] + window) continue
    const chunks: number[] = []
    for (let i = first; i < Math.min(count, first + stripe.block); i++) if (unclaimed(i, input)) chunks.push(i)
    if (chunks.length === 0) continue
    if (candidate++ % stripe.of !== stripe.rank) continue
    picked.push(...chunks.slice(0, max - picked.length))
  }
  return picked.sort((a, b) => a - b)
}
