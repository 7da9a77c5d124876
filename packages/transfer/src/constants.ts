/** Limits and timeouts of the transfer engine. */

/** Uploads served at once by one node; above it the server answers BUSY. */
export const MAX_CONCURRENT_UPLOADS = 32
/** Uploads served at once to one peer. */
export const MAX_UPLOADS_PER_PEER = 8
/** What a BUSY answer asks the requester to wait. */
export const BUSY_RETRY_AFTER_MS = 250
/** What a BUSY answer asks when this node is overloaded. */
export const OVERLOADED_RETRY_AFTER_MS = 2_000
/** A request reads its first message within this, or the stream is aborted. */
export const REQUEST_READ_TIMEOUT_MS = 10_000
/** One chunk request, from open to last frame. */
export const CHUNK_REQUEST_TIMEOUT_MS = 120_000
/** A chunk request that receives no frame for this long fails (the peer stopped sending). */
export const CHUNK_FRAME_TIMEOUT_MS = 20_000
/**
 * The requests in flight to one peer for one file ask for about this much of its measured
 * throughput per request (at least one request, at most REQUESTS_IN_FLIGHT_PER_PEER; one until
 * it is measured). A peer whose upload many receivers share sends the streams of all their
 * requests at once: the fewer there are, the sooner each chunk arrives, and the sooner it can be
 * passed on. Measured at N = 8 with 25 Mbit/s links: four requests per peer took a seed's first
 * chunks 15 s to arrive, and requests ran past their deadline.
 */
export const IN_FLIGHT_TARGET_MS = 3_000
/**
 * Bytes asked for in one chunk request (at least one chunk whatever its size). Each request is a
 * new stream whose Yamux window starts at 256 KiB and grows while it runs: larger requests spend
 * less of their time ramping up (measured on loopback, 1 GiB, one receiver: 2 MiB requests 46 MB/s,
 * 8 MiB 59 MB/s). While several nodes receive a file, requests are one stripe block instead.
 */
export const MAX_REQUEST_BYTES = 8 * 1024 * 1024
/**
 * A request to a peer asks for about this much of its measured throughput (up to
 * MAX_REQUEST_BYTES, at least one block from a complete holder and one chunk from a partial one):
 * a slow peer is never left holding many megabytes that the end has to wait for.
 */
export const REQUEST_TARGET_MS = 1_000
/** Bytes in one block of a stripe (the unit receivers share a seed's upload in), and of the end game's window per peer. */
export const STRIPE_BLOCK_BYTES = 2 * 1024 * 1024
/** Chunks asked for in one request. */
export const MAX_CHUNKS_PER_REQUEST = 64
/** Requests in flight to one peer for one file (one when the peer is busy). */
export const REQUESTS_IN_FLIGHT_PER_PEER = 4
/** Consecutive failures that open a peer's circuit. */
export const BREAKER_FAILURE_THRESHOLD = 3
/** How long an open circuit refuses a peer before one trial request. */
export const BREAKER_COOL_DOWN_MS = 10_000
/** A download that makes no progress for this long fails. */
export const STALL_TIMEOUT_MS = 60_000
/** The verified bitfield of a download is made durable and advertised this often. */
export const CHECKPOINT_INTERVAL_MS = 500
/** Sources are looked up again this often during a download (partial holders progress). */
export const SOURCES_REFRESH_MS = 250
/**
 * A receiver of the same file whose advertised chunks have not grown for this long is left out
 * of the stripes (its blocks go to the others): it stalled. Long enough for a receiver's first
 * chunk on a slow, shared link; a receiver that failed is left out sooner, by its circuit
 * breaker or because it went silent (the caller stops offering it as a source).
 */
export const RECEIVER_STALL_MS = 30_000
/**
 * For this long after a download starts, while it knows of no other receiver, it asks each seed
 * for one request at a time: receivers that start together learn of each other (every download
 * announces itself at once) before they fill the seeds' links with chunks outside their stripes.
 */
export const STRIPE_DISCOVERY_MS = 500
/** A source that answered NOT_FOUND is left alone this long. */
export const NOT_FOUND_BACKOFF_MS = 5_000
/** Weight of the newest sample in a peer's throughput average. */
export const THROUGHPUT_EWMA_ALPHA = 0.3
