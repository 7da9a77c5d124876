import { Agent, ConfigError, StartupError, STOP_TIMEOUT_MS, resolveConfig, type AgentOptions } from '@shoal/agent'
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from '../exit-codes.js'
import { createLogger } from '../log.js'

/** `shoal agent`: runs until SIGINT or SIGTERM, then stops cleanly. */
export async function runAgent (flags: AgentOptions & { heartbeatMs?: number, rescanMs?: number }): Promise<number> {
  let log = createLogger('warn')
  let agent: Agent
  try {
    const config = resolveConfig({ ...flags, heartbeatIntervalMs: flags.heartbeatMs, rescanIntervalMs: flags.rescanMs }, { env: process.env })
    log = createLogger(config.logLevel)
    // A stray rejected promise is a bug to report, not a reason to take the node's data service down.
    process.on('unhandledRejection', (err: any) => { log.error('unhandled rejection', { error: String(err?.stack ?? err) }) })
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
