import { multiaddr } from '@multiformats/multiaddr'
import { ConfigError } from './errors.js'

const PREFIX = 'shoal1.'

/** What a join token carries: the cluster key and where to find the cluster. A secret. */
export interface JoinToken {
  /** The key's 64 hex digits (the /key/swarm/psk/1.0.0/ payload). */
  keyHex: string
  bootstrap: string[]
}

export function encodeJoinToken (token: JoinToken): string {
  return PREFIX + Buffer.from(JSON.stringify({ k: token.keyHex, b: token.bootstrap })).toString('base64url')
}

/** Decodes and checks a token; errors never repeat the token (it is a secret). */
export function decodeJoinToken (text: string): JoinToken {
  const bad = (why: string): never => { throw new ConfigError(`the join token is not valid (${why}); copy it again from 'shoal init' on a cluster node`) }
  if (!text.startsWith(PREFIX)) bad(`it should start with ${PREFIX}`)
  let parsed: any
  try {
    parsed = JSON.parse(Buffer.from(text.slice(PREFIX.length), 'base64url').toString('utf8'))
  } catch {
    bad('it is truncated or damaged')
  }
  if (typeof parsed?.k !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.k)) bad('no cluster key in it')
  if (!Array.isArray(parsed.b) || parsed.b.length === 0 || parsed.b.length > 16) bad('no bootstrap address in it')
  for (const addr of parsed.b) {
    try {
      if (typeof addr !== 'string') throw new Error('not text')
      const ma = multiaddr(addr)
      if (!ma.getComponents().some(c => c.name === 'p2p')) throw new Error('no /p2p/ part')
    } catch {
      bad('a bootstrap address in it is malformed')
    }
  }
  return { keyHex: parsed.k, bootstrap: parsed.b }
}

/** The key file content for a key in a token. */
export function clusterKeyFileContent (keyHex: string): string {
  return `/key/swarm/psk/1.0.0/\n/base16/\n${keyHex}`
}
