import { ConfigError, initNode, type InitOptions } from '@shoal/agent'
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from '../exit-codes.js'

/** `shoal init`: identity, cluster key, a commented configuration, and the command to join. */
export async function runInit (flags: InitOptions & { json?: boolean }): Promise<number> {
  try {
    const result = await initNode(flags)
    if (flags.json === true) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n')
      return EXIT_OK
    }
    process.stdout.write(`Initialised shoal node ${result.peerId}
  state:       ${result.stateDir}
  cluster key: ${result.clusterKeyFile} (secret)
  config:      ${result.configFile}

Start this node:
  shoal agent --config ${result.configFile}

On every other node, run (the token carries the cluster key: keep it secret, e.g. in a secret store):
  shoal agent --join ${result.joinToken}
`)
    return EXIT_OK
  } catch (err: any) {
    process.stderr.write(`shoal init: ${err.message}\n`)
    return err instanceof ConfigError ? EXIT_USAGE : EXIT_FAILED
  }
}
