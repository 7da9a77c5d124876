import { Agent, ConfigError, StartupError, STOP_TIMEOUT_MS, resolveConfig } from '@shoal/agent'
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from '../exit-codes.js'
import { createLogger, type LogLevel } from '../log.js'

interface AgentFlags {
  name?: string
  state?: string
  socket?: string
  listen?: string[]
  bootstrap?: string[]
  dataset?: string[]
  clusterKey?: string
  logLevel: LogLevel
  heartbeatMs?: number
  rescanMs?: number
  stableMs?: number
  staleAfterMs?: number
  downloadRate?: string
  uploadRate?: string
  perPeerDownloadRate?: string
  perPeerUploadRate?: string
  minFreeDisk?: string
  leader?: string[]
  onDemand?: string[]
}

/** `shoal agent`: runs until SIGINT or SIGTERM, then stops cleanly. */
export async function runAgent (flags: AgentFlags): Promise<number> {
  const log = createLogger(flags.logLevel)
  // A stray rejected promise is a bug to report, not a reason to take the node's data service down.
  process.on('unhandledRejection', (err: any) => { log.error('unhandled rejection', { error: String(err?.stack ?? err) }) })
  let agent: Agent
  try {
    const config = resolveConfig({
      name: flags.name,
      state: flags.state,
      socket: flags.socket,
      listen: flags.listen,
      bootstrap: flags.bootstrap,
      dataset: flags.dataset,
      clusterKey: flags.clusterKey,
      heartbeatIntervalMs: flags.heartbeatMs,
      rescanIntervalMs: flags.rescanMs,
      stableMs: flags.stableMs,
      staleAfterMs: flags.staleAfterMs,
      downloadRate: flags.downloadRate,
      uploadRate: flags.uploadRate,
      perPeerDownloadRate: flags.perPeerDownloadRate,
      perPeerUploadRate: flags.perPeerUploadRate,
      minFreeDisk: flags.minFreeDisk,
      leader: flags.leader,
      onDemand: flags.onDemand
    })
    agent = new Agent(config, log)
    const info = await agent.start()
    process.stdout.write(`shoal agent ${config.name} running as ${info.peerId}\n`)
    for (const addr of info.addresses) process.stdout.write(`  listening on ${addr}\n`)
    process.stdout.write(`  local API on ${config.socketPath}\n`)
    if (info.createdClusterKey != null) {
      const reachable = info.addresses.find(a => !a.includes('/127.0.0.1/')) ?? info.addresses[0]
      process.stdout.write(`\nCreated a new cluster key: ${info.createdClusterKey}\n` +
        'To join another node to this cluster, copy that file to it (keep it secret) and run there:\n' +
        `  shoal agent --cluster-key cluster.key --bootstrap ${reachable}\n\n`)
    }
  } catch (err: any) {
    if (err instanceof ConfigError) {
      process.stderr.write(`shoal agent: ${err.message}\n`)
      return EXIT_USAGE
    }
    if (err instanceof StartupError) {
      process.stderr.write(`shoal agent: ${err.message}\n`)
      return EXIT_FAILED
    }
    process.stderr.write(`shoal agent: failed to start: ${err.message}\n`)
    return EXIT_FAILED
  }
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string): void => {
      log.info('stopping', { signal })
      // A second signal, or a stop that hangs, ends the process anyway.
      setTimeout(() => process.exit(EXIT_FAILED), STOP_TIMEOUT_MS + 2000).unref()
      void agent.stop().then(resolve)
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
  return EXIT_OK
}
