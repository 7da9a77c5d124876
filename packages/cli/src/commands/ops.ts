import { AgentApiError, AgentUnreachableError, type AgentEvent, type ShoalClient } from '@shoal/client'
import { EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE } from '../exit-codes.js'
import { ago, bar, bytes, level, seconds, table } from '../format.js'
import { run } from './query.js'

interface JsonFlag { json?: boolean }

export async function runPeers (client: ShoalClient, flags: JsonFlag): Promise<number> {
  return await run(async () => {
    const { peers } = await client.peers()
    if (flags.json === true) return void process.stdout.write(JSON.stringify({ peers }, null, 2) + '\n')
    if (peers.length === 0) return void process.stdout.write('no peers known\n')
    process.stdout.write(table([['PEER', 'NAME', 'ROLE', 'CONNECTED', 'LOAD', 'FILES', 'LACKING', 'LAST HEARD'],
      ...peers.map(p => [p.peerId, p.name || '-', p.role || '-', p.connected ? 'yes' : 'no', level(p.load), String(p.files), String(p.lacking),
        ago(p.lastHeard) + (p.stale ? ' (stale)' : '')])]))
  })
}

export async function runTransfers (client: ShoalClient, flags: JsonFlag): Promise<number> {
  return await run(async () => {
    const { transfers } = await client.transfers()
    if (flags.json === true) return void process.stdout.write(JSON.stringify({ transfers }, null, 2) + '\n')
    if (transfers.length === 0) return void process.stdout.write('no transfers\n')
    process.stdout.write(table([['FILE', 'STATE', 'PRIORITY', 'PROGRESS', 'ERROR'],
      ...transfers.map(t => [`${t.dataset}/${t.path}`, t.state, t.priority, `${t.size === 0 ? 100 : Math.floor(t.bytes / t.size * 100)}% of ${bytes(t.size)}`, t.error ?? ''])]))
  })
}

export async function runRescan (client: ShoalClient, dataset: string | undefined, flags: JsonFlag): Promise<number> {
  return await run(async () => {
    const result = await client.rescan(dataset)
    if (flags.json === true) return void process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    process.stdout.write(`rescanned ${result.datasets.join(', ')}: ${result.changed} change(s), ${result.pending} file(s) still being written\n`)
  })
}

function describe (e: AgentEvent): string {
  const time = new Date(e.time).toISOString()
  switch (e.type) {
    case 'file.added': case 'file.changed': case 'file.deleted':
      return `${time} ${e.type} ${e.dataset}/${e.path} v${e.version} on ${e.peerId}`
    case 'peer.connected': case 'peer.disconnected':
      return `${time} ${e.type} ${e.peerId}`
    case 'load.changed':
      return `${time} load.changed ${e.level}`
    default:
      return `${time} ${e.type} ${e.dataset}/${e.path} v${e.version} ${bytes(e.bytes)}${e.error != null ? ` error: ${e.error}` : ''}`
  }
}

/** `shoal events`: prints the agent's event stream until interrupted (NDJSON with --json). */
export async function runEvents (client: ShoalClient, flags: JsonFlag & { count?: number }): Promise<number> {
  const controller = new AbortController()
  const stop = (): void => controller.abort()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  let seen = 0
  try {
    const { closed } = await client.events((e) => {
      process.stdout.write(flags.json === true ? JSON.stringify(e) + '\n' : describe(e) + '\n')
      seen++
      if (flags.count != null && seen >= flags.count) controller.abort()
    }, controller.signal)
    await Promise.race([closed, new Promise(resolve => controller.signal.addEventListener('abort', resolve, { once: true }))])
    return EXIT_OK
  } catch (err: any) {
    if (controller.signal.aborted) return EXIT_OK
    process.stderr.write(`shoal events: ${err.message}\n`)
    return err instanceof AgentUnreachableError ? EXIT_UNREACHABLE : EXIT_FAILED
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}

/** `shoal pull`: asks this node's agent to fetch a file now; with --wait, follows it to the end. */
export async function runPull (client: ShoalClient, file: string, flags: JsonFlag & { priority: string, wait?: boolean, timeout?: number }): Promise<number> {
  const slash = file.indexOf('/')
  if (slash <= 0 || slash === file.length - 1) {
    process.stderr.write(`shoal pull: expected DATASET/PATH, not ${JSON.stringify(file)}\n`)
    return EXIT_USAGE
  }
  const [dataset, path] = [file.slice(0, slash), file.slice(slash + 1)]
  try {
    const started = await client.pull(dataset, path, flags.priority as any)
    if (flags.wait !== true || started.state === 'held') {
      if (flags.json === true) process.stdout.write(JSON.stringify(started, null, 2) + '\n')
      else process.stdout.write(started.state === 'held' ? `${file} is already held (version ${started.version})\n` : `${file}: ${started.state}\n`)
      return EXIT_OK
    }
    const tty = process.stdout.isTTY === true && flags.json !== true
    const deadline = flags.timeout == null ? Infinity : Date.now() + flags.timeout
    const begun = Date.now()
    let lastPlain = 0
    for (;;) {
      const t = (await client.transfers()).transfers.find(x => x.dataset === dataset && x.path === path)
      const held = t == null ? (await client.where(dataset, path)).holders.some(h => h.self && h.complete) : t.state === 'completed'
      const elapsed = Date.now() - begun
      if (t != null && !held) {
        const fraction = t.size === 0 ? 1 : t.bytes / t.size
        const rate = elapsed > 0 ? t.bytes / (elapsed / 1000) : 0
        const eta = rate > 0 ? (t.size - t.bytes) / rate * 1000 : 0
        if (tty) process.stdout.write(`\r\x1b[2K${file} ${bar(fraction)} ${Math.floor(fraction * 100)}% ${bytes(t.bytes)}/${bytes(t.size)} ${bytes(rate)}/s ETA ${seconds(eta)}`)
        else if (flags.json !== true && Date.now() - lastPlain >= 5000) {
          lastPlain = Date.now()
          process.stdout.write(`${new Date().toISOString()} ${file} ${Math.floor(fraction * 100)}% ${bytes(t.bytes)}/${bytes(t.size)} ${bytes(rate)}/s\n`)
        }
      }
      if (held) {
        if (tty) process.stdout.write('\n')
        if (flags.json === true) process.stdout.write(JSON.stringify(t ?? started, null, 2) + '\n')
        else process.stdout.write(`${file}: verified copy held (${seconds(elapsed)})\n`)
        return EXIT_OK
      }
      if (t?.state === 'failed' && t.error != null && !/retry/.test(t.error)) {
        if (tty) process.stdout.write('\n')
        process.stderr.write(`shoal pull: ${file}: ${t.error} (the agent retries on its own)\n`)
      }
      if (Date.now() >= deadline) {
        if (tty) process.stdout.write('\n')
        process.stderr.write(`shoal pull: ${file} not complete after ${seconds(elapsed)}${t?.error != null ? ` (last error: ${t.error})` : ''}\n`)
        return EXIT_FAILED
      }
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  } catch (err: any) {
    process.stderr.write(`shoal pull: ${err.message}\n`)
    if (err instanceof AgentUnreachableError) return EXIT_UNREACHABLE
    if (err instanceof AgentApiError && err.status === 400) return EXIT_USAGE
    return EXIT_FAILED
  }
}
