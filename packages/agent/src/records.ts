import { ANNOUNCEMENT_TARGET_BYTES, FileEntry, MAX_ENTRIES_PER_MESSAGE, MAX_MANIFEST_PAGE_BYTES } from '@shoal/wire'
import type { LocalFile } from '@shoal/manifest'

/** The wire form of a local index entry. */
export function toWireEntry (file: LocalFile): FileEntry {
  return {
    dataset: file.dataset,
    path: file.path,
    size: file.size,
    mtimeMs: file.mtimeMs,
    mode: file.mode,
    contentId: Uint8Array.from(file.contentId),
    chunkSize: file.chunkSize,
    version: file.version,
    deleted: file.deleted,
    seq: file.seq,
    partial: file.partial ?? false,
    have: Uint8Array.from(file.have ?? [])
  }
}

/** Rough encoded size of an entry, to split messages before encoding them. */
export function entryWireSize (entry: FileEntry): number {
  return 64 + Buffer.byteLength(entry.path) + entry.dataset.length + entry.contentId.length
}

/** Splits entries (ordered by seq) into groups whose encoding stays under the byte budget. */
export function splitEntries (entries: FileEntry[], budget: number): FileEntry[][] {
  const groups: FileEntry[][] = []
  let current: FileEntry[] = []
  let bytes = 0
  for (const entry of entries) {
    const size = entryWireSize(entry)
    if (current.length > 0 && (bytes + size > budget || current.length >= MAX_ENTRIES_PER_MESSAGE)) {
      groups.push(current)
      current = []
      bytes = 0
    }
    current.push(entry)
    bytes += size
  }
  if (current.length > 0) groups.push(current)
  return groups
}

export const ANNOUNCE_BUDGET = ANNOUNCEMENT_TARGET_BYTES
export const PAGE_BUDGET = MAX_MANIFEST_PAGE_BYTES / 2
