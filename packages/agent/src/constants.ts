/** Timers and limits of the agent. */

export const DEFAULT_PORT = 4001
export const DEFAULT_STATE_DIR = '.shoal'
export const DEFAULT_DATASET = 'default'
export const DEFAULT_DATA_DIR = 'shoal-data'
export const SOCKET_NAME = 'agent.sock'
export const CLUSTER_NAME = 'main'

export const HEARTBEAT_INTERVAL_MS = 2_000
/** Local changes within this window are announced together. */
export const ANNOUNCE_BATCH_MS = 20
/** A node not heard from for this long is shown as stale. */
export const STALE_AFTER_MS = 30_000
/** Tombstones are collected this often (see tombstones.ts for the ages derived from it). */
export const TOMBSTONE_GC_INTERVAL_MS = 30_000
/** Full rescan even when the watcher saw nothing (it can miss events). */
export const RESCAN_INTERVAL_MS = 30_000
/** Files up to this size may be hashed on the agent's own thread (a fraction of a millisecond) rather than wait for a worker to start. */
export const INLINE_HASH_BYTES = 1024 * 1024
/**
 * The periodic rescan is background work: it waits until the socket API has been quiet this long
 * (applications asking where files are come in bursts, and a rescan of a large dataset would
 * slow every answer while it runs)...
 */
export const RESCAN_QUIET_MS = 1_000
/** ...but never longer than this (or four intervals, if more) past its time. */
export const RESCAN_MAX_DEFER_MS = 120_000
/**
 * The periodic rescan is a safety net behind the watches: between the end of one whole scan and
 * the start of the next, at least this many times its duration passes (the rescan interval is the
 * least gap), so that it takes about 1 % of the agent's time. A rescan of 100,000 unchanged files
 * takes 0.6-1.6 s and promotes some 30 MB of garbage to the old generation (collected by a major
 * collection later): every 30 s, that was 2-5 % of a core and a major collection a minute.
 */
export const RESCAN_GAP_PER_SCAN_TIME = 100
/** ...and never more than this. */
export const RESCAN_MAX_GAP_MS = 3_600_000
/** A file must be unmodified this long before it is hashed and announced. */
export const STABLE_MS = 1_000
/** Watch events are gathered this long before a scan starts. */
export const WATCH_DEBOUNCE_MS = 200
/** Directories waiting for a scan of their own, per dataset, beyond which the whole dataset is scanned instead. */
export const MAX_DIRTY_DIRECTORIES = 1000
/** Bootstrap and known peers are redialled this often while disconnected. */
export const REDIAL_INTERVAL_MS = 3_000
/** Files downloaded at the same time. */
export const CONCURRENT_DOWNLOADS = 2
/** Manifest pulls in flight at once. */
export const CONCURRENT_MANIFEST_PULLS = 4
export const MANIFEST_PULL_TIMEOUT_MS = 30_000
/** A manifest request must arrive within this. */
export const MANIFEST_READ_TIMEOUT_MS = 10_000
/** Entries one manifest pull may deliver in total (a node's whole record at most). */
export const MAX_ENTRIES_PER_PULL = 1_000_000
/** A stopping agent waits this long for in-flight work before it closes anyway. */
export const STOP_TIMEOUT_MS = 8_000
/** HTTP bodies accepted on the local socket. */
export const MAX_API_BODY_BYTES = 64 * 1024
/** Downloads are refused when they would leave less free disk than this. */
export const DEFAULT_MIN_FREE_DISK = '1G'
/** The load level is measured this often; a change is announced at once. */
export const LOAD_INTERVAL_MS = 250
/** Free disk (part of the load level, and shown in the status) is measured this often. */
export const DISK_CHECK_INTERVAL_MS = 2_000
/** A generation (a start time) further ahead of this node's clock is refused. */
export const MAX_CLOCK_AHEAD_MS = 10 * 60_000
/** A peer sending this many invalid messages within a minute is disconnected and refused... */
export const MAX_REJECTIONS_PER_MINUTE = 100
/** ...for this long. */
export const BLOCK_ABUSIVE_MS = 60_000
/** Known peers dialled in one redial round at most. */
export const MAX_DIALS_PER_ROUND = 64
/** Finished transfers kept for the API (oldest dropped first). */
export const MAX_FINISHED_TRANSFERS = 1000
/** Paths waiting for a retry at most (the oldest are forgotten, and reconsidered on their next change). */
export const MAX_RETRIES = 10_000
/**
 * A node receiving a file that has not been heard from for this many heartbeat periods is not
 * offered as a source of it (nor as an owner of a stripe of the seeds' upload).
 */
export const RECEIVER_SILENT_HEARTBEATS = 5
/**
 * A connection whose pings go unanswered this long is aborted (libp2p's connection monitor;
 * its default minimum, 5 s, is shorter than a ping can wait behind chunk data on a busy link).
 */
export const CONNECTION_PING_TIMEOUT_MS = 15_000
