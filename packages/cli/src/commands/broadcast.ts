import { AgentApiError, AgentUnreachableError, type BroadcastProgress, type ShoalClient } from '@shoal/client'
import { EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE } from '../exit-codes.js'

export interface BroadcastFlags {
  socket?: string
  json?: boolean
  priority: string
  nodes?: string
  wait?: boolean
  timeout?: number
}

const POLL_MS = 500

function percent (n: { bytes: number, size: number, state: string }): string {
  if (n.state === 'complete') return '100%'
  return n.size === 0 ? '0%' : `${Math.floor(n.bytes / n.size * 100)}%`
}

function bar (fraction: number, width = 24): string {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width)
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`
}

function render (p: BroadcastProgress, tty: boolean): string[] {
  return p.nodes.map(n => {
    const name = (n.name || n.peerId.slice(0, 16)).padEnd(18)
    const fraction = n.state === 'complete' ? 1 : n.size === 0 ? 0 : n.bytes / n.size
    const why = n.reason != null ? ` (${n.reason})` : ''
    return tty ? `${name} ${bar(fraction)} ${percent(n).padStart(4)} ${n.state}${why}` : `${name} ${n.state} ${percent(n)}${why}`
  })
}

/** `shoal broadcast`: orders a file onto nodes through the leader's agent; with --wait, follows it to the end. */
export async function runBroadcast (client: ShoalClient, file: string, flags: BroadcastFlags): Promise<number> {
  const slash = file.indexOf('/')
  if (slash <= 0 || slash === file.length - 1) {
    process.stderr.write(`shoal broadcast: expected DATASET/PATH, not ${JSON.stringify(file)}\n`)
    return EXIT_USAGE
  }
  const nodes = flags.nodes == null || flags.nodes === 'all' ? [] : flags.nodes.split(',').map(s => s.trim()).filter(s => s !== '')
  const timeoutMs = flags.timeout ?? 0
  let progress: BroadcastProgress
  try {
    progress = await client.broadcast({ dataset: file.slice(0, slash), path: file.slice(slash + 1), priority: flags.priority as any, nodes, timeoutMs })
  } catch (err: any) {
    process.stderr.write(`shoal broadcast: ${err.message}\n`)
    if (err instanceof AgentUnreachableError) return EXIT_UNREACHABLE
    if (err instanceof AgentApiError && err.status === 400) return EXIT_USAGE
    return EXIT_FAILED
  }
  if (flags.wait !== true) {
    if (flags.json === true) process.stdout.write(JSON.stringify(progress, null, 2) + '\n')
    else process.stdout.write(`broadcast ${progress.id}: ${file} ordered onto ${progress.nodes.length} node(s)\n`)
    return EXIT_OK
  }
  const tty = process.stdout.isTTY === true && flags.json !== true
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity
  let drawn = 0
  let lastPlain = 0
  for (;;) {
    try {
      progress = await client.broadcastProgress(progress.id)
    } catch (err: any) {
      process.stderr.write(`shoal broadcast: ${err.message}\n`)
      return err instanceof AgentUnreachableError ? EXIT_UNREACHABLE : EXIT_FAILED
    }
    const done = progress.nodes.filter(n => n.state === 'complete').length
    if (tty) {
      const lines = [`${file}: ${done}/${progress.nodes.length} nodes complete`, ...render(progress, true)]
      if (drawn > 0) process.stdout.write(`\x1b[${drawn}A`)
      process.stdout.write(lines.map(l => `\x1b[2K${l}\n`).join(''))
      drawn = lines.length
    } else if (flags.json !== true && (Date.now() - lastPlain >= 5000 || progress.complete)) {
      lastPlain = Date.now()
      process.stdout.write(`${new Date().toISOString()} ${file}: ${done}/${progress.nodes.length} nodes complete\n`)
    }
    if (progress.complete) {
      if (flags.json === true) process.stdout.write(JSON.stringify(progress, null, 2) + '\n')
      else if (!tty) process.stdout.write(`all ${progress.nodes.length} nodes hold a verified copy of ${file}\n`)
      return EXIT_OK
    }
    if (Date.now() >= deadline) {
      if (flags.json === true) process.stdout.write(JSON.stringify(progress, null, 2) + '\n')
      const missing = progress.nodes.filter(n => n.state !== 'complete')
      process.stderr.write(`shoal broadcast: deadline reached; ${missing.length} node(s) do not hold ${file}:\n` +
        render({ ...progress, nodes: missing }, false).map(l => `  ${l}\n`).join(''))
      return EXIT_FAILED
    }
    await new Promise(resolve => setTimeout(resolve, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))))
  }
}

/** Parses 90, 90s, 10m, 1h, 500ms into milliseconds. */
export function parseDuration (value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim())
  if (m == null) throw new Error(`${JSON.stringify(value)} is not a duration (examples: 30s, 10m, 1h)`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] as number
  return Math.round(Number(m[1]) * unit)
}
