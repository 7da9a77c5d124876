import { createHash, randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { generateKey, preSharedKey } from '@libp2p/pnet'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { xsalsa20 } from '@noble/ciphers/salsa.js'
import { XSalsa20Stream, decodePsk, privateNetwork } from '../src/pnet.js'
import { createNode } from '../src/node.js'

const require = createRequire(import.meta.url)
/** The implementation @libp2p/pnet uses: the reference for interoperability. */
const Reference = require('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => { update: (input: Uint8Array) => Uint8Array }

function keyFile (): Uint8Array {
  const bytes = new Uint8Array(95)
  generateKey(bytes)
  return bytes
}

/** Deterministic pseudo-random piece lengths, small and large, none aligned on purpose. */
function pieces (total: number, seed: number): number[] {
  const out: number[] = []
  let x = seed
  for (let done = 0; done < total;) {
    x = (x * 1103515245 + 12345) % 2147483648
    const n = Math.min(total - done, [1, 3, 63, 64, 65, 127, 1000, 4096, 65537][x % 9])
    out.push(n)
    done += n
  }
  return out
}

describe('XSalsa20Stream', () => {
  it('produces the key stream of one call over the whole input, whatever the split', () => {
    const key = randomBytes(32)
    const nonce = randomBytes(24)
    const input = randomBytes(300_000)
    const whole = xsalsa20(key, nonce, input)
    for (const seed of [1, 2, 3]) {
      const s = new XSalsa20Stream(key, nonce)
      const parts: Uint8Array[] = []
      let at = 0
      for (const n of pieces(input.length, seed)) {
        parts.push(s.update(input.subarray(at, at + n)))
        at += n
      }
      expect(Buffer.compare(Buffer.concat(parts), Buffer.from(whole))).toBe(0)
    }
  })

  it('matches the xsalsa20 package that @libp2p/pnet uses, piece by piece', () => {
    const key = randomBytes(32)
    const nonce = randomBytes(24)
    const ours = new XSalsa20Stream(key, nonce)
    const theirs = Reference(nonce, key)
    const input = randomBytes(100_000)
    let at = 0
    for (const n of pieces(input.length, 9)) {
      const piece = input.subarray(at, at + n)
      expect(Buffer.from(ours.update(piece)).equals(Buffer.from(theirs.update(piece)))).toBe(true)
      at += n
    }
  })

  it('keeps no shared state: many ciphers with large inputs, interleaved', () => {
    const key = randomBytes(32)
    const streams = Array.from({ length: 4 }, () => new XSalsa20Stream(key, randomBytes(24)))
    const big = new Uint8Array(8 * 1024 * 1024)
    for (let round = 0; round < 4; round++) for (const s of streams) expect(s.update(big).length).toBe(big.length)
  })

  it('refuses keys and nonces of the wrong size', () => {
    expect(() => new XSalsa20Stream(new Uint8Array(31), new Uint8Array(24))).toThrow(/32 bytes/)
    expect(() => new XSalsa20Stream(new Uint8Array(32), new Uint8Array(23))).toThrow(/24 bytes/)
  })
})

describe('decodePsk', () => {
  it('reads the key of a pnet v1 key file', () => {
    const file = keyFile()
    const hex = new TextDecoder().decode(file).split('\n')[2]
    expect(Buffer.from(decodePsk(file)).toString('hex')).toBe(hex.toLowerCase())
  })

  it('says what is wrong with a bad file', () => {
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
    expect(() => decodePsk(enc('hello'))).toThrow(/first line/)
    expect(() => decodePsk(enc('/key/swarm/psk/1.0.0/\n/base64/\nabc'))).toThrow(/second line/)
    expect(() => decodePsk(enc('/key/swarm/psk/1.0.0/\n/base16/\nabc'))).toThrow(/64 hexadecimal/)
  })
})

describe('the private network on real connections', () => {
  const nodes: Libp2p[] = []
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async n => await n.stop()))
  })

  async function plain (psk: Uint8Array, ours: boolean): Promise<Libp2p> {
    const node = await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionProtector: ours ? privateNetwork(psk) : preSharedKey({ psk }),
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()]
    })
    nodes.push(node)
    return node
  }

  /** Sends `bytes` from `from` to `to` on one stream; returns the SHA-256 of what arrived. */
  async function send (from: Libp2p, to: Libp2p, bytes: Uint8Array): Promise<string> {
    const protocol = `/test/sink/${Math.random()}`
    const received = new Promise<string>((resolve, reject) => {
      void to.handle(protocol, async (stream) => {
        const hash = createHash('sha256')
        try {
          for await (const chunk of stream) hash.update(chunk instanceof Uint8Array ? chunk : chunk.subarray())
          resolve(hash.digest('hex'))
        } catch (err) {
          reject(err)
        }
      })
    })
    const stream = await from.dialProtocol(to.getMultiaddrs()[0], protocol)
    for (let at = 0; at < bytes.length; at += 4 * 1024 * 1024) {
      if (!stream.send(bytes.subarray(at, at + 4 * 1024 * 1024))) await stream.onDrain()
    }
    await stream.close()
    return await received
  }

  it('interoperates with @libp2p/pnet in both directions', async () => {
    const psk = keyFile()
    const a = await plain(psk, true)
    const b = await plain(psk, false)
    const data = randomBytes(3 * 1024 * 1024 + 17)
    const expected = createHash('sha256').update(data).digest('hex')
    expect(await send(a, b, data)).toBe(expected)
    expect(await send(b, a, data)).toBe(expected)
  })

  it('does not connect nodes with different keys', async () => {
    const a = await plain(keyFile(), true)
    const b = await plain(keyFile(), true)
    await expect(a.dial(b.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
  })

  it('moves 256 MiB over several connections of one process in large writes', async () => {
    // The load that broke @libp2p/pnet's cipher: one process, three connections, multi-MiB sends.
    const clusterKey = keyFile()
    const make = async (): Promise<Libp2p> => {
      const node = await createNode({ privateKey: await generateKeyPair('Ed25519'), clusterKey, listen: ['/ip4/127.0.0.1/tcp/0'], topics: [] })
      nodes.push(node)
      return node
    }
    const hub = await make()
    const others = [await make(), await make(), await make()]
    const data = randomBytes(32 * 1024 * 1024)
    const expected = createHash('sha256').update(data).digest('hex')
    const results = await Promise.all([
      ...others.map(async o => await send(hub, o, data)),
      ...others.map(async o => await send(o, hub, data))
    ])
    expect(results).toEqual(Array(6).fill(expected))
    // 6 x 32 MiB moved; in a second round, the same connections carry as much again.
    expect(await Promise.all(others.map(async o => await send(hub, o, data)))).toEqual(Array(3).fill(expected))
    expect(await send(others[0], hub, data)).toBe(expected)
  }, 120_000)
})
