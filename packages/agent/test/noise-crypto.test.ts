import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { noiseCrypto } from '../src/noise-crypto.js'

type Bytes = Parameters<typeof defaultCrypto.chaCha20Poly1305Encrypt>[0]

const flat = (data: ReturnType<typeof defaultCrypto.chaCha20Poly1305Encrypt>): Buffer =>
  Buffer.from(data instanceof Uint8Array ? data : data.subarray())

/** The same bytes as a list of uneven pieces (the library passes lists of its own, older major: same reading API). */
function asList (data: Uint8Array): Bytes {
  const list = new Uint8ArrayList()
  for (let at = 0; at < data.length; at += 7000) list.append(data.subarray(at, at + 7000))
  return list as unknown as Bytes
}

describe('noise crypto with prepared keys', () => {
  const nonce = randomBytes(12)
  const ad = randomBytes(32)

  it('encrypts and decrypts exactly as the library does, small and large, flat and in pieces', () => {
    for (const size of [0, 100, 1199, 1200, 4096, 65519]) {
      const k = randomBytes(32)
      const plain = randomBytes(size)
      const theirs = flat(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k))
      expect(flat(noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k)).equals(theirs)).toBe(true)
      expect(flat(noiseCrypto.chaCha20Poly1305Encrypt(asList(plain), nonce, ad, k)).equals(theirs)).toBe(true)
      expect(flat(noiseCrypto.chaCha20Poly1305Decrypt(theirs, nonce, ad, k)).equals(plain)).toBe(true)
      expect(flat(noiseCrypto.chaCha20Poly1305Decrypt(asList(theirs), nonce, ad, k)).equals(plain)).toBe(true)
    }
  })

  it('refuses a tampered message', () => {
    const k = randomBytes(32)
    const sealed = flat(noiseCrypto.chaCha20Poly1305Encrypt(randomBytes(5000), nonce, ad, k))
    sealed[10] ^= 1
    expect(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, k)).toThrow()
  })

  it('follows a key whose bytes change in place', () => {
    const k = randomBytes(32)
    const plain = randomBytes(3000)
    noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k)
    k.set(randomBytes(32))
    const theirs = flat(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k))
    expect(flat(noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k)).equals(theirs)).toBe(true)
  })
})
