import pc from 'picocolors'

/** Aligned columns; colour codes are not counted in widths. */
export function table (rows: string[][]): string {
  const plain = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '')
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => plain(r[i] ?? '').length)))
  return rows.map(r => r.map((c, i) => i === r.length - 1 ? c : c + ' '.repeat(widths[i] - plain(c).length)).join('  ').trimEnd()).join('\n') + '\n'
}

export function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}

export function ago (ms: number | null): string {
  if (ms == null) return 'never'
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`
}

export function seconds (ms: number): string {
  const s = Math.round(ms / 1000)
  return s < 120 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
}

export function bar (fraction: number, width = 24): string {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width)
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`
}

export const colour = {
  heading: (s: string) => pc.bold(s),
  good: (s: string) => pc.green(s),
  warn: (s: string) => pc.yellow(s),
  bad: (s: string) => pc.red(s),
  dim: (s: string) => pc.dim(s)
}

export function level (l: string): string {
  return l === 'ok' ? colour.good(l) : l === 'busy' ? colour.warn(l) : colour.bad(l)
}

export function shortId (peerId: string): string {
  return peerId.length > 16 ? `${peerId.slice(0, 8)}…${peerId.slice(-6)}` : peerId
}
