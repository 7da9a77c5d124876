/**
 * A set of strings that lists in sorted order from any starting point. Additions and removals go
 * to small side sets and are merged into the sorted array only when a listing needs it, so a
 * burst of changes costs one merge, not one array shift per change.
 */
export class SortedKeys {
  private sorted: string[] = []
  private readonly added = new Set<string>()
  private readonly removed = new Set<string>()
  private count = 0

  get size (): number {
    return this.count
  }

  add (key: string): void {
    if (this.removed.delete(key)) {
      this.count++
      return
    }
    if (this.added.has(key) || this.inSorted(key)) return
    this.added.add(key)
    this.count++
  }

  delete (key: string): void {
    if (this.added.delete(key)) {
      this.count--
      return
    }
    if (this.removed.has(key) || !this.inSorted(key)) return
    this.removed.add(key)
    this.count--
  }

  /** Up to `limit` keys that start with `prefix` and sort after `after`, in order. */
  range (prefix: string, after: string | undefined, limit: number): string[] {
    this.compact()
    const from = after != null && after >= prefix ? after : prefix
    let i = this.lowerBound(from)
    if (after != null && this.sorted[i] === after) i++
    const out: string[] = []
    for (; i < this.sorted.length && out.length < limit; i++) {
      const key = this.sorted[i]
      if (!key.startsWith(prefix)) break
      out.push(key)
    }
    return out
  }

  private inSorted (key: string): boolean {
    const i = this.lowerBound(key)
    return this.sorted[i] === key
  }

  private lowerBound (key: string): number {
    let lo = 0
    let hi = this.sorted.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.sorted[mid] < key) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  private compact (): void {
    if (this.added.size === 0 && this.removed.size === 0) return
    const additions = [...this.added].sort()
    const merged: string[] = new Array(this.count)
    let n = 0
    let j = 0
    for (const key of this.sorted) {
      if (this.removed.has(key)) continue
      while (j < additions.length && additions[j] < key) merged[n++] = additions[j++]
      merged[n++] = key
    }
    while (j < additions.length) merged[n++] = additions[j++]
    merged.length = n
    this.sorted = merged
    this.added.clear()
    this.removed.clear()
  }
}
