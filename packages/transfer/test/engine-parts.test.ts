import { describe, expect, it } from 'vitest'
import { Bitfield, CircuitBreaker, PriorityLimiter, TokenBucket, liveRanks, pickChunks, pickFixedHelp, pickFromSeed, pickHelp, partialPathFor, partialTargetOf, stripeOwner } from '../src/index.js'

describe('Bitfield', () => {
  it('sets, clears and counts bits, and round-trips through bytes', () => {
    const b = new Bitfield(10)
    expect(b.bytes.length).toBe(2)
    b.set(0); b.set(9); b.set(9)
    expect(b.count).toBe(2)
    expect(b.has(9)).toBe(true)
    expect(b.has(10)).toBe(false)
    expect(() => b.set(10)).toThrow(RangeError)
    const copy = new Bitfield(10, b.bytes)
    expect(copy.missing()).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    copy.clear(0)
    expect(copy.count).toBe(1)
    expect(Bitfield.full(10).complete).toBe(true)
  })

  it('ignores bits past the end and rejects a wrong length', () => {
    expect(new Bitfield(3, new Uint8Array([0xff])).count).toBe(3)
    expect(() => new Bitfield(9, new Uint8Array(1))).toThrow(RangeError)
  })
})

describe('CircuitBreaker', () => {
  it('opens after repeated failures, half-opens after the cool-down, closes on success', () => {
    let now = 0
    const b = new CircuitBreaker({ failureThreshold: 3, coolDownMs: 1000, now: () => now })
    b.failure(); b.failure()
    expect(b.state).toBe('closed')
    b.failure()
    expect(b.state).toBe('open')
    expect(b.allow()).toBe(false)
    now = 1000
    expect(b.state).toBe('half-open')
    expect(b.allow()).toBe(true)
    expect(b.allow()).toBe(false)
    b.success()
    expect(b.state).toBe('closed')
  })

  it('doubles the cool-down when the trial fails, and trips at once on corrupt data', () => {
    let now = 0
    const b = new CircuitBreaker({ failureThreshold: 3, coolDownMs: 1000, now: () => now })
    b.trip()
    expect(b.state).toBe('open')
    now = 1000
    expect(b.allow()).toBe(true)
    b.failure()
    expect(b.state).toBe('open')
    now = 2500
    expect(b.state).toBe('open')
    now = 3000
    expect(b.state).toBe('half-open')
  })
})

describe('TokenBucket', () => {
  it('lets a burst through, then paces at the rate', async () => {
    let now = 0
    const bucket = new TokenBucket(1000, 1000, () => now)
    await bucket.take(1000)
    expect(bucket.delayFor(500)).toBe(500)
    now = 250
    expect(bucket.delayFor(500)).toBe(250)
    now = 1000
    expect(bucket.delayFor(1000)).toBe(0)
  })

  it('is unlimited at rate 0', async () => {
    const bucket = new TokenBucket(0)
    expect(bucket.unlimited).toBe(true)
    await bucket.take(1e12)
  })

  it('stops waiting when aborted', async () => {
    let now = 0
    const bucket = new TokenBucket(1, 1, () => now)
    await bucket.take(1)
    const controller = new AbortController()
    const waiting = bucket.take(1, controller.signal)
    controller.abort(new Error('cancelled'))
    await expect(waiting).rejects.toThrow('cancelled')
  })
})

describe('PriorityLimiter', () => {
  it('shares bandwidth by weight while classes wait', async () => {
    // A real clock but a fast bucket: the order of grants is what is checked, not time.
    const limiter = new PriorityLimiter(new TokenBucket(4_000_000, 1000))
    const order: string[] = []
    const jobs: Array<Promise<void>> = []
    for (let i = 0; i < 40; i++) {
      jobs.push(limiter.take(1000, 'critical').then(() => { order.push('c') }))
      jobs.push(limiter.take(1000, 'background').then(() => { order.push('b') }))
    }
    await Promise.all(jobs)
    // Among the first 34 grants, critical (weight 16) gets about 16 for each background one.
    const head = order.slice(0, 34)
    const critical = head.filter(x => x === 'c').length
    expect(critical).toBeGreaterThanOrEqual(30)
    expect(head.filter(x => x === 'b').length).toBeGreaterThanOrEqual(1)
    expect(order.filter(x => x === 'b')).toHaveLength(40)
  })
})

describe('pickChunks', () => {
  const avail = (values: number[]): Uint16Array => Uint16Array.from(values)

  it('prefers rare chunks, then this node\'s offset order, and skips held and requested ones', () => {
    const have = new Bitfield(8)
    have.set(0)
    const picked = pickChunks({ count: 8, have, inFlight: new Map([[1, 1]]), availability: avail([1, 1, 3, 3, 1, 3, 3, 1]), offset: 5, max: 2 })
    // Rarest not held nor in flight: 4 and 7 (availability 1); from offset 5, 7 comes before 4.
    expect(picked).toEqual([4, 7])
  })

  it('only picks what the peer has', () => {
    const peerHas = new Bitfield(6)
    peerHas.set(2); peerHas.set(5)
    expect(pickChunks({ count: 6, have: new Bitfield(6), inFlight: new Map(), peerHas, availability: avail([1, 1, 1, 1, 1, 1]), offset: 0, max: 10 })).toEqual([2, 5])
  })

  it('races chunks in flight elsewhere only in end game', () => {
    const have = Bitfield.full(4)
    have.clear(3)
    const input = { count: 4, have, inFlight: new Map([[3, 1]]), availability: avail([2, 2, 2, 2]), offset: 0, max: 4 }
    expect(pickChunks(input)).toEqual([])
    expect(pickChunks({ ...input, endgame: true })).toEqual([3])
    expect(pickChunks({ ...input, endgame: true, inFlight: new Map([[3, 2]]) })).toEqual([])
  })
})

describe('pickFromSeed', () => {
  const none = (n: number): Uint16Array => new Uint16Array(n)

  it('gives each receiver its own blocks, so the seed sends every chunk to one receiver only', () => {
    const count = 48
    const of = 3
    const block = 4
    const owners = new Map<number, number>()
    for (let rank = 0; rank < of; rank++) {
      // Everything this receiver asks for stays in flight; it asks until it would help others.
      const inFlight = new Map<number, number>()
      const own: number[] = []
      for (;;) {
        const picked = pickFromSeed({ count, have: new Bitfield(count), inFlight, heldByReceivers: none(count), stripe: { rank, of, block }, max: block })
        if (picked.length === 0) break
        expect(picked.every(i => stripeOwner(i, { rank, of, block }) === rank)).toBe(true)
        for (const i of picked) inFlight.set(i, 1)
        own.push(...picked)
      }
      expect(own).toEqual([...own].sort((x, y) => x - y))
      for (const i of own) {
        expect(owners.has(i)).toBe(false)
        owners.set(i, rank)
      }
    }
    // The stripes are disjoint and cover the file.
    expect(owners.size).toBe(count)
  })

  it('asks in order within its stripe and skips what receivers hold or it has requested', () => {
    const count = 16
    const held = none(count)
    held[0] = 1
    const inFlight = new Map([[1, 1]])
    const picked = pickFromSeed({ count, have: new Bitfield(count), inFlight, heldByReceivers: held, stripe: { rank: 0, of: 2, block: 4 }, max: 4 })
    // Rank 0 owns blocks 0 and 2 (chunks 0-3 and 8-11): 0 is held, 1 is in flight.
    expect(picked).toEqual([2, 3, 8, 9])
  })

  it('asks nothing of the seed once its own stripe is all held or requested', () => {
    const count = 16
    const have = new Bitfield(count)
    for (const i of [0, 1, 2, 3, 8, 9]) have.set(i)
    const input = { count, have, inFlight: new Map([[10, 1], [11, 1]]), heldByReceivers: none(count), stripe: { rank: 0, of: 2, block: 4 }, max: 4 }
    expect(pickFromSeed(input)).toEqual([])
    // The other receiver's stripe (blocks 1 and 3) is its own business.
    expect(pickFromSeed({ ...input, stripe: { rank: 1, of: 2, block: 4 } })).toEqual([4, 5, 6, 7])
  })

  it('returns nothing when every missing chunk is held by some receiver', () => {
    const count = 8
    const held = none(count).fill(1)
    expect(pickFromSeed({ count, have: new Bitfield(count), inFlight: new Map(), heldByReceivers: held, stripe: { rank: 1, of: 2, block: 2 }, max: 2 })).toEqual([])
  })
})

describe('stripeOwner with members not live', () => {
  it('hands the blocks of ranks not live to the live ones in turn: every live rank agrees, the stripes stay disjoint and cover the file', () => {
    const count = 120
    const block = 2
    const of = 5
    const live = liveRanks([true, false, true, true, false])
    const owners = new Map<number, number>()
    for (const rank of live.ranks) {
      const inFlight = new Map<number, number>()
      for (;;) {
        const picked = pickFromSeed({ count, have: new Bitfield(count), inFlight, heldByReceivers: new Uint16Array(count), stripe: { rank, of, block, live }, max: block })
        if (picked.length === 0) break
        for (const i of picked) {
          expect(owners.has(i)).toBe(false)
          owners.set(i, rank)
          inFlight.set(i, 1)
        }
      }
    }
    expect(owners.size).toBe(count)
    // A live rank keeps its own blocks; a dead rank's blocks are shared among the live ones.
    expect(stripeOwner(0, { rank: 0, of, block, live })).toBe(0)
    expect(stripeOwner(2, { rank: 0, of, block, live })).toBe(0)
    const orphaned = [...owners].filter(([i]) => [1, 4].includes(Math.floor(i / block) % of)).map(([, rank]) => rank)
    expect(new Set(orphaned)).toEqual(new Set([0, 2, 3]))
    // Every rank live: the plain stripes.
    expect(stripeOwner(2, { rank: 0, of, block, live: liveRanks([true, true, true, true, true]) })).toBe(1)
  })
})

describe('pickFixedHelp', () => {
  // 3 receivers, blocks of 2 chunks, 24 chunks = 12 blocks; rank r owns blocks r, r+3, r+6, r+9.
  const count = 24
  const block = 2
  const of = 3
  const input = (rank: number, ownerHeld: number[], window: number): Parameters<typeof pickFixedHelp>[0] => ({
    count, have: new Bitfield(count), inFlight: new Map(), heldByReceivers: new Uint16Array(count), max: 2,
    stripe: { rank, of, block }, ownerHeld: Uint32Array.from(ownerHeld), window
  })

  it('never takes a block its owner has reached, and takes from the far end', () => {
    // Rank 1 holds 2 chunks of its stripe (block 1) and may have 2 more in flight (block 4):
    // its blocks 7 and 10 are free for helpers. Rank 2 holds 8 chunks: all its blocks are within
    // what it holds or may have in flight.
    const picked = pickFixedHelp(input(0, [0, 2, 8], 2))
    expect(picked).toEqual([20, 21])
    for (const i of picked) expect(Math.floor(i / block) % of).toBe(1)
  })

  it('spreads helpers over the candidate blocks by rank', () => {
    // Every other receiver's stripe is free past its first block; ranks 0 and 1 as helpers take different blocks.
    const a = pickFixedHelp(input(0, [0, 0, 0], 2))
    const b = pickFixedHelp(input(1, [0, 0, 0], 2))
    expect(a.length).toBe(2)
    expect(b.length).toBe(2)
    expect(a.some(i => b.includes(i))).toBe(false)
    // Neither takes its own stripe.
    expect(a.every(i => Math.floor(i / block) % of !== 0)).toBe(true)
    expect(b.every(i => Math.floor(i / block) % of !== 1)).toBe(true)
  })

  it('takes nothing when every other owner has reached all its blocks', () => {
    expect(pickFixedHelp(input(0, [0, 0, 0], 8))).toEqual([])
  })
})

describe('pickHelp', () => {
  it('takes chunks no receiver holds from the far end of the file', () => {
    const count = 16
    const have = new Bitfield(count)
    for (let i = 0; i < 8; i++) have.set(i)
    const held = new Uint16Array(count)
    held[15] = 1
    const picked = pickHelp({ count, have, inFlight: new Map([[14, 1]]), heldByReceivers: held, max: 3 })
    expect(picked).toEqual([11, 12, 13])
  })
})

describe('partial file names', () => {
  it('lead back to their target, and only names partialPathFor makes do', () => {
    const id = new Uint8Array(32).fill(0xab)
    expect(partialTargetOf(partialPathFor('weights.bin', id))).toBe('weights.bin')
    expect(partialTargetOf(partialPathFor('sub/dir/model.v2.bin', id))).toBe('sub/dir/model.v2.bin')
    expect(partialTargetOf('sub/x.shoal-part')).toBeUndefined()
    expect(partialTargetOf('.x.bin.0123456789AB.shoal-part')).toBeUndefined()
    expect(partialTargetOf('.x.bin.0123456789ab.shoal-partial')).toBeUndefined()
  })
})
