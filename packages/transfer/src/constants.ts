/** Limits and timeouts of the transfer engine. */

/** Uploads served at once by one node; above it the server answers BUSY. */
export const MAX_CONCURRENT_UPLOADS = 32
/** What a BUSY answer asks the requester to wait. */
export const BUSY_RETRY_AFTER_MS = 250
/** A request reads its first message within this, or the stream is aborted. */
export const REQUEST_READ_TIMEOUT_MS = 10_000
/** One chunk request, from open to last frame. */
export const CHUNK_REQUEST_TIMEOUT_MS = 60_000
/** Bytes asked for in one chunk request (at least one chunk whatever its size). */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024
/** Chunks asked for in one request. */
export const MAX_CHUNKS_PER_REQUEST = 64
/** Requests in flight to one peer for one file. */
export const REQUESTS_IN_FLIGHT_PER_PEER = 2
/** Consecutive failures after which a peer is dropped from one download. */
export const MAX_PEER_FAILURES = 3
