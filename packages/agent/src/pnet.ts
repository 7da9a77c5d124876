/**
 * The private network: every byte on a connection between two members is encrypted with a key
 * derived from the cluster's pre-shared key before anything else (Noise, multistream) is spoken,
 * so a node without the key learns nothing, not even a peer id.
 *
 * shoal's protocol ("shoal pnet 2"): each side sends a random 24-byte nonce followed by a
 * 16-byte check, then everything it sends is AES-256-CTR under HKDF-SHA256(key, salt = its
 * nonce, info = "shoal pnet 2"), the check being the first 16 bytes of that stream (a constant,
 * encrypted). Each side decrypts the other's check before it passes anything up: a peer with
 * another key (or another protocol) is refused at once with an error that says so, and a peer
 * that echoes our own nonce back is refused too (it would make both directions one key stream).
 *
 * It keeps the handshake of libp2p's pnet v1 (@libp2p/pnet) and its key file, but not its
 * cipher: pnet v1 is XSalsa20, which Node's crypto does not offer, and in JavaScript it cost
 * about 4 CPU-ms per MB on each side (measured here: 250 MB/s against 2,300 MB/s for AES-256-CTR
 * with AES-NI): a quarter of an agent's CPU while it moves files. The `xsalsa20` WebAssembly
 * package that @libp2p/pnet uses also failed after tens of MB of large writes on several
 * connections (a shared memory grown from a stale view of its size). So shoal nodes do not
 * connect to pnet v1 nodes: the check fails and the error says so.
 */
import { createCipheriv, hkdfSync, timingSafeEqual, type Cipheriv } from 'node:crypto'
import type { ConnectionProtector, MultiaddrConnection, AbortOptions } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream, type AbstractMultiaddrConnectionInit } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import { PSK_ENCODING, PSK_HEADER } from './keys.js'

export const NONCE_BYTES = 24
export const PSK_BYTES = 32
/** The plaintext of the check each side sends after its nonce. */
const CHECK = new TextEncoder().encode('shoal pnet 2 ok.')
const INFO = 'shoal pnet 2'
/** How long the nonce exchange may take when the caller gives no signal. */
const HANDSHAKE_TIMEOUT_MS = 5_000

/** A peer that does not hold this cluster's key (or speaks another private-network protocol). */
export class PrivateNetworkError extends Error {
  override name = 'PrivateNetworkError'
}

/** One direction's key stream: AES-256-CTR under a key derived from the cluster key and the sender's nonce. */
export function directionCipher (psk: Uint8Array, nonce: Uint8Array): Cipheriv {
  if (psk.length !== PSK_BYTES) throw new Error(`pnet: the key must be ${PSK_BYTES} bytes`)
  if (nonce.length !== NONCE_BYTES) throw new Error(`pnet: the nonce must be ${NONCE_BYTES} bytes`)
  const key = Buffer.from(hkdfSync('sha256', psk, nonce, INFO, 32))
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
}

/** What one side sends before anything else: its nonce, then the check under its key stream. */
export function hello (psk: Uint8Array, nonce: Uint8Array): { bytes: Uint8Array, cipher: Cipheriv } {
  const cipher = directionCipher(psk, nonce)
  return { bytes: Buffer.concat([nonce, cipher.update(CHECK)]), cipher }
}

/** Checks the other side's hello; returns the cipher that decrypts what it sends next. */
export function acceptHello (psk: Uint8Array, remote: Uint8Array, localNonce: Uint8Array): Cipheriv {
  const nonce = remote.subarray(0, NONCE_BYTES)
  if (timingSafeEqual(nonce, localNonce)) throw new PrivateNetworkError('private network: the peer sent our own nonce back; refused')
  const cipher = directionCipher(psk, nonce)
  const check = cipher.update(remote.subarray(NONCE_BYTES, NONCE_BYTES + CHECK.length))
  if (!timingSafeEqual(check, CHECK)) {
    throw new PrivateNetworkError('private network: the peer does not use this cluster\'s key (or runs a protocol other than shoal pnet 2, such as libp2p pnet v1)')
  }
  return cipher
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
  inbound: Cipheriv
  outbound: Cipheriv
}

/** The connection as the upper layers see it: plaintext in, AES-256-CTR on the wire. */
class BoxedConnection extends AbstractMultiaddrConnection {
  private readonly maConn: MultiaddrConnection
  private readonly inbound: Cipheriv
  private readonly outbound: Cipheriv

  constructor (init: BoxedInit) {
    super({ ...init, remoteAddr: init.maConn.remoteAddr, direction: init.maConn.direction })
    this.maConn = init.maConn
    this.inbound = init.inbound
    this.outbound = init.outbound
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
    // One buffer per call (the key stream runs on across calls, so how the bytes are split does
    // not matter to the cipher). The TCP connection writes every buffer of a list with a system
    // call (and, without delay, a segment) of its own, and Noise hands over each frame as two:
    // its 2-byte length, then the frame. Joined, an idle agent of a 32-node cluster made 137
    // writes a second instead of 345, and 1 GiB between two agents on loopback went at 64-76 MB/s
    // (three runs) instead of 59-62 (two), with 27 instead of 31 CPU-s (means). Joining costs a copy.
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
    const mine = hello(this.psk, localNonce)
    const [remote] = await Promise.all([bytes.read({ bytes: NONCE_BYTES + CHECK.length, ...opts }), bytes.write(mine.bytes, opts)])
    let inbound: Cipheriv
    try {
      inbound = acceptHello(this.psk, remote.subarray(), localNonce)
    } catch (err: any) {
      log.error('%s', err.message)
      connection.abort(err)
      throw err
    }
    log('exchanged nonces; the peer holds the cluster key')
    return new BoxedConnection({ inbound, outbound: mine.cipher, maConn: bytes.unwrap(), log })
  }
}

/** The connection protector for libp2p's `connectionProtector` option, from the key file's bytes. */
export function privateNetwork (keyFile: Uint8Array): () => ConnectionProtector {
  const protector = new PrivateNetwork(keyFile)
  return () => protector
}
