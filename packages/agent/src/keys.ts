import { chmod, readFile, writeFile } from 'node:fs/promises'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { generateKey } from '@libp2p/pnet'
import { StartupError } from './errors.js'
import { clusterKeyFileContent } from './join.js'
import type { PrivateKey } from '@libp2p/interface'

/** The first two lines of a libp2p private network key file (pnet v1). */
export const PSK_HEADER = '/key/swarm/psk/1.0.0/'
export const PSK_ENCODING = '/base16/'

/** Loads the node's identity, creating it (mode 0600) on first start. */
export async function loadOrCreateIdentity (file: string): Promise<PrivateKey> {
  let bytes: Buffer
  try {
    bytes = await readFile(file)
  } catch (err: any) {
    if (err.code !== 'ENOENT') throw new StartupError(`cannot read the peer identity ${file}: ${err.code ?? err.message}`)
    const key = await generateKeyPair('Ed25519')
    await writeFile(file, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
    return key
  }
  try {
    return privateKeyFromProtobuf(bytes)
  } catch {
    throw new StartupError(`the peer identity ${file} is corrupt; move it away to create a new identity (the node gets a new peer id)`)
  }
}

/** Parses a pre-shared key file in the `/key/swarm/psk/1.0.0/` format; returns the canonical bytes. */
export function parseClusterKey (text: string, file: string): Uint8Array {
  const lines = text.trim().split(/\r?\n/)
  if (lines.length !== 3 || lines[0] !== PSK_HEADER || lines[1] !== PSK_ENCODING || !/^[0-9a-fA-F]{64}$/.test(lines[2])) {
    throw new StartupError(`the cluster key ${file} is not a valid key (expected the ${PSK_HEADER} format, as written by 'shoal agent' on first start)`)
  }
  return new TextEncoder().encode(`${PSK_HEADER}\n${PSK_ENCODING}\n${lines[2].toLowerCase()}`)
}

export async function readClusterKey (file: string): Promise<Uint8Array> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err: any) {
    throw new StartupError(`cannot read the cluster key ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.code ?? err.message}`)
  }
  return parseClusterKey(text, file)
}

/** Reads the state directory's cluster key, creating one (mode 0600) if there is none. */
export async function loadOrCreateClusterKey (file: string): Promise<{ key: Uint8Array, created: boolean }> {
  try {
    return { key: await readClusterKey(file), created: false }
  } catch (err: any) {
    if (!String(err.message).includes('no such file')) throw err
  }
  const bytes = new Uint8Array(95)
  generateKey(bytes)
  await writeFile(file, bytes, { mode: 0o600, flag: 'wx' })
  await chmod(file, 0o600)
  return { key: parseClusterKey(new TextDecoder().decode(bytes), file), created: true }
}

/**
 * Uses the cluster key of a join token: written to the state directory on first start; on later
 * starts it must match the key already there (a state directory belongs to one cluster).
 */
export async function adoptJoinKey (file: string, keyHex: string): Promise<Uint8Array> {
  const wanted = parseClusterKey(clusterKeyFileContent(keyHex), 'the join token')
  try {
    const existing = await readClusterKey(file)
    if (Buffer.compare(existing, wanted) !== 0) {
      throw new StartupError(`the state directory already belongs to another cluster (${file} differs from the join token's key); use another --state`)
    }
    return existing
  } catch (err: any) {
    if (!String(err.message).includes('no such file')) throw err
  }
  await writeFile(file, wanted, { mode: 0o600, flag: 'wx' })
  return wanted
}
