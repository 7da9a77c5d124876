/**
 * The private network (libp2p "pnet" v1, the protocol of @libp2p/pnet): each side sends a random
 * 24-byte nonce, then everything on the connection is XSalsa20 with the cluster's pre-shared key
 * (outbound with our nonce, inbound with theirs). A peer without the key cannot get past the
 * Noise handshake that follows.
 *
 * Ours rather than @libp2p/pnet's because the `xsalsa20` package it uses keeps a WebAssembly
 * memory shared by every connection of the process and grows it from a stale view of its size:
 * with two connections or more, a few sends of several MiB (the muxer coalesces writes under
 * load) exhaust the memory's maximum and the next send or receive throws; an agent moving
 * files died after about 60 MB. It also never frees the 64 bytes it takes per cipher, so every
 * connection ever opened (by anyone who can reach the port: the nonce exchange needs no key)
 * shrinks what is left. Here the cipher is @noble/ciphers' xsalsa20, which holds no shared
 * state: memory per connection is one 64-byte block per direction.
 */
import type { ConnectionProtector, MultiaddrConnection, AbortOptions } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream, type AbstractMultiaddrConnectionInit } from '@libp2p/utils'
import { xsalsa20 } from '@noble/ciphers/salsa.js'
import type { Uint8ArrayList } from 'uint8arraylist'
import { PSK_ENCODING, PSK_HEADER } from './keys.js'

export const NONCE_BYTES = 24
export const PSK_BYTES = 32
/** How long the nonce exchange may take when the caller gives no signal. */
const HANDSHAKE_TIMEOUT_MS = 5_000

const ZERO_BLOCK = new Uint8Array(64)

/**
 * One direction of XSalsa20 as a stream: successive calls continue the key stream where the last
 * one stopped, whatever their lengths (the same bytes as one call over the concatenation).
 */
export class XSalsa20Stream {
  /** Blocks of 64 bytes wholly used. */
  private counter = 0
  /** Bytes of the current block already used (0..63) and that block's key stream. */
  private used = 0
  private readonly block = new Uint8Array(64)

  constructor (private readonly key: Uint8Array, private readonly nonce: Uint8Array) {
    if (key.length !== PSK_BYTES) throw new Error(`pnet: the key must be ${PSK_BYTES} bytes`)
    if (nonce.length !== NONCE_BYTES) throw new Error(`pnet: the nonce must be ${NONCE_BYTES} bytes`)
  }

  update (input: Uint8Array): Uint8Array {
    const out = new Uint8Array(input.length)
    let i = 0
    if (this.used > 0) {
      while (i < input.length && this.used < 64) out[i] = input[i++] ^ this.block[this.used++]
      if (this.used < 64) return out
      this.used = 0
      this.counter++
    }
    const whole = (input.length - i) & ~63
    if (whole > 0) {
      xsalsa20(this.key, this.nonce, input.subarray(i, i + whole), out.subarray(i, i + whole), this.counter)
      this.counter += whole / 64
      i += whole
    }
    if (i < input.length) {
      xsalsa20(this.key, this.nonce, ZERO_BLOCK, this.block, this.counter)
      while (i < input.length) out[i] = input[i++] ^ this.block[this.used++]
    }
    return out
  }
}

/**
 * Reads a pnet v1 key file: `/key/swarm/psk/1.0.0/`, `/base16/`, then 64 hex digits, one per
 * line. Throws a message that says what is wrong (never the key).
 */
export function decodePsk (file: Uint8Array): Uint8Array {
  const lines = new TextDecoder().decode(file).split(/\r\n|\r|\n/)
  if (lines[0] !== PSK_HEADER) throw new Error(`not a libp2p private network key: the first line must be ${PSK_HEADER}`)
  if (lines[1] !== PSK_ENCODING) throw new Error(`unsupported key encoding: the second line must be ${PSK_ENCODING}`)
  const hex = lines[2] ?? ''
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error('the third line must be the key: 64 hexadecimal digits')
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

interface BoxedInit extends Omit<AbstractMultiaddrConnectionInit, 'remoteAddr' | 'direction'> {
  maConn: MultiaddrConnection
  psk: Uint8Array
  localNonce: Uint8Array
  remoteNonce: Uint8Array
}

/** The connection as the upper layers see it: plaintext in, XSalsa20 on the wire. */
class BoxedConnection extends AbstractMultiaddrConnection {
  private readonly maConn: MultiaddrConnection
  private readonly inbound: XSalsa20Stream
  private readonly outbound: XSalsa20Stream

  constructor (init: BoxedInit) {
    super({ ...init, remoteAddr: init.maConn.remoteAddr, direction: init.maConn.direction })
    this.maConn = init.maConn
    this.inbound = new XSalsa20Stream(init.psk, init.remoteNonce)
    this.outbound = new XSalsa20Stream(init.psk, init.localNonce)
    this.maConn.addEventListener('message', (evt) => {
      const data: Uint8Array | Uint8ArrayList = evt.data
      if (data instanceof Uint8Array) this.onData(this.inbound.update(data))
      else for (const buf of data) this.onData(this.inbound.update(buf))
    })
    this.maConn.addEventListener('drain', () => { this.onMuxerDrain() })
    this.maConn.addEventListener('close', (evt) => {
      if (evt.error != null) {
        if (evt.local) this.abort(evt.error)
        else this.onRemoteReset()
      } else {
        this.onTransportClosed()
      }
    })
  }

  async sendClose (options?: AbortOptions): Promise<void> {
    await this.maConn.close(options)
  }

  sendData (data: Uint8ArrayList): { sentBytes: number, canSendMore: boolean } {
    return { sentBytes: data.byteLength, canSendMore: this.maConn.send(this.outbound.update(data.subarray())) }
  }

  sendReset (err: Error): void {
    this.maConn.abort(err)
  }

  sendPause (): void {
    this.maConn.pause()
  }

  sendResume (): void {
    this.maConn.resume()
  }
}

class PrivateNetwork implements ConnectionProtector {
  private readonly psk: Uint8Array

  constructor (keyFile: Uint8Array) {
    this.psk = decodePsk(keyFile)
  }

  readonly [Symbol.toStringTag] = 'shoal/pnet'

  async protect (connection: MultiaddrConnection, options?: AbortOptions): Promise<MultiaddrConnection> {
    const log = connection.log.newScope('pnet')
    const localNonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES))
    const opts = options?.signal != null ? options : { ...options, signal: AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS) }
    const bytes = byteStream(connection)
    const [remote] = await Promise.all([bytes.read({ bytes: NONCE_BYTES, ...opts }), bytes.write(localNonce, opts)])
    log('exchanged nonces')
    return new BoxedConnection({ localNonce, remoteNonce: remote.subarray(), psk: this.psk, maConn: bytes.unwrap(), log })
  }
}

/** The connection protector for libp2p's `connectionProtector` option, from the key file's bytes. */
export function privateNetwork (keyFile: Uint8Array): () => ConnectionProtector {
  const protector = new PrivateNetwork(keyFile)
  return () => protector
}
