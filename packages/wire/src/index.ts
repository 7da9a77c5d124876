export * from './constants.js'
export * from './validate.js'
export {
  FileEntry, NodeInfo, LoadLevel, Announcement, Heartbeat, ManifestRequest, ManifestRequestKind, ManifestPage, ManifestSummary, NodeVersion,
  ChunkRange, ChunkRequestKind, Directive, ChunkRequest, ChunkStatus, ChunkResponse
} from './shoal.js'
