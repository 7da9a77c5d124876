/** Protocol ids, topic names, and every size limit that crosses the wire. */

export const WIRE_VERSION = 1

export const PROTOCOL_MANIFEST = '/shoal/manifest/1.0.0'
export const PROTOCOL_CHUNK = '/shoal/chunk/1.0.0'

/** Pubsub topics, scoped by cluster name so two clusters sharing a key never mix. */
export function announceTopic (cluster: string): string {
  return `shoal/${cluster}/announce/${WIRE_VERSION}`
}

export function directiveTopic (cluster: string): string {
  return `shoal/${cluster}/directive/${WIRE_VERSION}`
}

export function heartbeatTopic (cluster: string): string {
  return `shoal/${cluster}/heartbeat/${WIRE_VERSION}`
}

/** Chunk sizes: powers of two between these bounds. */
export const MIN_CHUNK_SIZE = 256 * 1024
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024
/** The chunk size is chosen so that a file has about this many chunks. */
export const TARGET_CHUNKS_PER_FILE = 1000

/** A pubsub message (announcement or heartbeat) never exceeds this. */
export const MAX_PUBSUB_MESSAGE_BYTES = 512 * 1024
/** An announcement is split so that its encoding stays under this. */
export const ANNOUNCEMENT_TARGET_BYTES = 256 * 1024
/** One page of a manifest response. */
export const MAX_MANIFEST_PAGE_BYTES = 1024 * 1024
/** Entries per manifest page or announcement (also enforced by the decoder). */
export const MAX_ENTRIES_PER_MESSAGE = 20000
/** A chunk request. */
export const MAX_CHUNK_REQUEST_BYTES = 4 * 1024
/** A chunk response: one chunk plus framing, or a hash list. */
export const MAX_CHUNK_RESPONSE_BYTES = MAX_CHUNK_SIZE + 64 * 1024

/** Size of a content id and of a chunk hash (SHA-256). */
export const HASH_BYTES = 32

/** Field limits checked by the validators. */
export const MAX_NAME_LENGTH = 128
export const MAX_DATASET_NAME_LENGTH = 64
export const MAX_PATH_BYTES = 4096
export const MAX_PATH_SEGMENT_BYTES = 255
export const MAX_ADDR_LENGTH = 256
export const MAX_ADDRS = 32
export const MAX_DATASETS = 64
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER
/** The hash list of the largest file at the largest chunk size must fit in one response. */
export const MAX_CHUNKS_PER_FILE = Math.floor((MAX_CHUNK_RESPONSE_BYTES - 1024) / HASH_BYTES)
/** Nodes one summary may list. */
export const MAX_NODES = 10000
/** Length of a peer id string (base58 multihash of an Ed25519 or secp256k1 key). */
export const MAX_PEER_ID_LENGTH = 128
/** Priority names a directive may carry. */
export const PRIORITY_NAMES = ['critical', 'high', 'normal', 'low', 'background'] as const
