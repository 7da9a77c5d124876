import { ANNOUNCEMENT_TARGET_BYTES, FileEntry, MAX_ENTRIES_PER_MESSAGE, MAX_MANIFEST_PAGE_BYTES } from '@shoal/wire'

/** Changes of the local index read at once: a record of any size is read, sent and merged a page at a time. */
export const CHANGE_PAGE_ENTRIES = 2000

/** Up to `limit` changes of this node's record after `after`, oldest first (LocalIndex.changes). */
export type ChangeReader = (after: number, limit: number) => FileEntry[]

/**
 * This node's changes after `after` and up to `upto`, oldest first, one page of the index at a
 * time. Reading resumes after the last seq read, so a change made between two pages (it takes a
 * new, higher seq) is listed later, never lost.
 */
export function * changePages (read: ChangeReader, after: number, upto = Number.MAX_SAFE_INTEGER, limit = CHANGE_PAGE_ENTRIES): Generator<FileEntry[]> {
  let cursor = after
  for (;;) {
    const page = read(cursor, limit)
    let end = page.length
    while (end > 0 && page[end - 1].seq > upto) end--
    if (end > 0) yield end === page.length ? page : page.slice(0, end)
    if (page.length < limit || end < page.length) return
    cursor = page[page.length - 1].seq
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
