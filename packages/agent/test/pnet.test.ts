import { createHash, randomBytes } from 'node:crypto'
import { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { generateKey, preSharedKey } from '@libp2p/pnet'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { PrivateNetworkError, acceptHello, decodePsk, directionCipher, hello, privateNetwork } from '../src/pnet.js'
import { createNode } from '../src/node.js'

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

describe('the pnet 2 handshake', () => {
  const psk = randomBytes(32)

  it('accepts a peer with the same key and decrypts what it sends next, whatever the split', () => {
    const nonce = randomBytes(24)
    const theirs = hello(psk, nonce)
    expect(theirs.bytes.length).toBe(40)
    const inbound = acceptHello(psk, theirs.bytes, randomBytes(24))
    const input = randomBytes(300_000)
    const wire = Buffer.concat(pieces(input.length, 3).reduce<{ at: number, out: Uint8Array[] }>((acc, n) => {
      acc.out.push(theirs.cipher.update(input.subarray(acc.at, acc.at + n)))
      acc.at += n
      return acc
    }, { at: 0, out: [] }).out)
    expect(wire.equals(input)).toBe(false)
    let at = 0
    const back: Uint8Array[] = []
    for (const n of pieces(wire.length, 7)) {
      back.push(inbound.update(wire.subarray(at, at + n)))
      at += n
    }
    expect(Buffer.concat(back).equals(input)).toBe(true)
  })

  it('refuses a peer with another key, saying so', () => {
    const theirs = hello(randomBytes(32), randomBytes(24))
    expect(() => acceptHello(psk, theirs.bytes, randomBytes(24))).toThrow(PrivateNetworkError)
    expect(() => acceptHello(psk, theirs.bytes, randomBytes(24))).toThrow(/cluster's key/)
  })

  it('refuses a peer that echoes our own hello', () => {
    const nonce = randomBytes(24)
    expect(() => acceptHello(psk, hello(psk, nonce).bytes, nonce)).toThrow(/own nonce/)
  })

  it('derives a different key stream for each nonce', () => {
    const zeros = new Uint8Array(64)
    const a = directionCipher(psk, randomBytes(24)).update(zeros)
    const b = directionCipher(psk, randomBytes(24)).update(zeros)
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false)
  })

  it('refuses keys and nonces of the wrong size', () => {
    expect(() => directionCipher(new Uint8Array(31), new Uint8Array(24))).toThrow(/32 bytes/)
    expect(() => directionCipher(new Uint8Array(32), new Uint8Array(23))).toThrow(/24 bytes/)
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

  it('carries bytes unchanged in both directions', async () => {
    const psk = keyFile()
    const a = await plain(psk, true)
    const b = await plain(psk, true)
    const data = randomBytes(3 * 1024 * 1024 + 17)
    const expected = createHash('sha256').update(data).digest('hex')
    expect(await send(a, b, data)).toBe(expected)
    expect(await send(b, a, data)).toBe(expected)
  })

  it('refuses a libp2p pnet v1 node even with the same key file', async () => {
    const psk = keyFile()
    const a = await plain(psk, true)
    const b = await plain(psk, false)
    await expect(a.dial(b.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
    await expect(b.dial(a.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
    expect(a.getConnections()).toHaveLength(0)
  })

  it('does not connect nodes with different keys', async () => {
    const a = await plain(keyFile(), true)
    const b = await plain(keyFile(), true)
    await expect(a.dial(b.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
  })

  it('writes each small message to the socket with one system call, not two', async () => {
    // Noise hands over each frame as two buffers (length, frame); the TCP connection writes every
    // buffer it is given with a write of its own unless the protector joins them.
    const psk = keyFile()
    const a = await plain(psk, true)
    const b = await plain(psk, true)
    const protocol = '/test/small'
    const count = 40
    let received = 0
    let arrived = (): void => {}
    void b.handle(protocol, async (stream) => {
      for await (const chunk of stream) {
        received += chunk.byteLength
        arrived()
      }
    })
    /** Resolves once `bytes` have arrived in all. */
    const receivedAll = async (bytes: number): Promise<void> => {
      while (received < bytes) await new Promise<void>(resolve => { arrived = resolve })
    }
    const stream = await a.dialProtocol(b.getMultiaddrs()[0], protocol)
    const port = Number(b.getMultiaddrs()[0].toString().split('/')[4])
    let writes = 0
    const original = Socket.prototype.write
    Socket.prototype.write = function (this: Socket, ...args: unknown[]) {
      if (this.remotePort === port) writes++
      return (original as (...a: unknown[]) => boolean).apply(this, args)
    } as typeof original
    try {
      for (let i = 0; i < count; i++) {
        stream.send(randomBytes(100))
        // Each message leaves on its own: the next one is sent once this one has arrived.
        await receivedAll((i + 1) * 100)
      }
    } finally {
      Socket.prototype.write = original
    }
    expect(received).toBe(count * 100)
    expect(writes).toBeGreaterThanOrEqual(count)
    expect(writes).toBeLessThan(count * 1.5)
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
