import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { runAgent } from './commands/agent.js'
import { runLs, runStatus, runWhere, clientFor } from './commands/query.js'
import { parseDuration, runBroadcast } from './commands/broadcast.js'
import { runInit } from './commands/init.js'
import { runEvents, runPeers, runPull, runRescan, runTransfers } from './commands/ops.js'
import { EXIT_USAGE } from './exit-codes.js'

function collect (value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

function positiveInt (value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer (milliseconds)')
  return n
}

function positiveCount (value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n <= 0 || n > 10_000) throw new InvalidArgumentError('expected an integer from 1 to 10000')
  return n
}

function durationOption (v: string): number {
  try {
    return parseDuration(v)
  } catch (err: any) {
    throw new InvalidArgumentError(err.message)
  }
}

const SOCKET_HELP = 'the agent\'s socket (default: $SHOAL_SOCKET, ./.shoal/agent.sock, or /run/shoal/agent.sock)'

function program (setExit: (code: number) => void): Command {
  const cmd = new Command('shoal')
    .description('shoal keeps the data of a GPU training cluster where it is needed.')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })

  cmd.command('agent')
    .description('run the shoal agent on this node (with no options: state in ./.shoal, dataset "default" at ./shoal-data, TCP port 4001)')
    .addHelpText('after', '\nEvery option can also be set in the configuration file (same names) or as SHOAL_<NAME> in the environment\n(e.g. SHOAL_STATE, SHOAL_CLUSTER_KEY); flags win over the environment, which wins over the file.')
    .option('--config <file>', 'YAML configuration file (see README)')
    .option('--join <token>', 'join a cluster with the token that \'shoal init\' printed (carries the cluster key: keep it secret)')
    .option('--name <name>', 'this node\'s name (default: the host name)')
    .addOption(new Option('--role <role>', 'this node\'s role').choices(['persistent', 'ephemeral', 'coordinator']))
    .option('--state <dir>', 'state directory: identity, cluster key, index (default: ./.shoal)')
    .option('--socket <path>', 'local API socket (default: STATE/agent.sock)')
    .option('--socket-group <group>', 'group allowed to use the socket (mode 0660)')
    .option('--listen <multiaddr>', 'address to listen on, repeatable (default: /ip4/0.0.0.0/tcp/4001)', collect)
    .option('--bootstrap <multiaddr>', 'peer to connect to, repeatable', collect)
    .option('--dataset <name=dir>', 'a dataset to hold, repeatable (default: default=./shoal-data)', collect)
    .option('--on-demand <name>', 'a dataset whose files are fetched only when ordered (broadcast), then kept up to date; repeatable', collect)
    .option('--cluster-key <file>', 'the cluster\'s pre-shared key (default: STATE/cluster.key, created on first start)')
    .option('--download-rate <bytes>', 'download limit per second, e.g. 100M (default: unlimited)')
    .option('--upload-rate <bytes>', 'upload limit per second, e.g. 100M (default: unlimited)')
    .option('--per-peer-download-rate <bytes>', 'download limit per peer per second (default: unlimited)')
    .option('--per-peer-upload-rate <bytes>', 'upload limit per peer per second (default: unlimited)')
    .option('--min-free-disk <bytes>', 'refuse downloads that would leave less free disk (default: 1G)')
    .option('--leader <peer-id>', 'a peer allowed to order broadcasts; repeatable', collect)
    .option('--allow <peer-id>', 'only these peers may connect (besides the cluster key); repeatable', collect)
    .option('--metrics <host:port>', 'serve Prometheus metrics there, e.g. 127.0.0.1:9464')
    .option('--stale-after-ms <ms>', 'mark a node stale when not heard from for this long (default: 30000)', positiveInt)
    .addOption(new Option('--log-level <level>', 'debug, info, warn or error (default: warn)').choices(['debug', 'info', 'warn', 'error']))
    .addOption(new Option('--heartbeat-ms <ms>', 'heartbeat interval').argParser(positiveInt).hideHelp())
    .addOption(new Option('--rescan-ms <ms>', 'full rescan interval').argParser(positiveInt).hideHelp())
    .addOption(new Option('--stable-ms <ms>', 'how long a file must stay unmodified before it is announced').argParser(positiveInt).hideHelp())
    .action(async (opts) => { setExit(await runAgent(opts)) })

  cmd.command('init')
    .description('create this node\'s identity, a new cluster key and a commented configuration; print how other nodes join')
    .option('--state <dir>', 'state directory (default: ./.shoal)')
    .option('--config <file>', 'where to write the configuration (default: ./shoal.yaml)')
    .option('--listen <multiaddr>', 'address the agent will listen on (default: /ip4/0.0.0.0/tcp/4001)')
    .option('--advertise <multiaddr>', 'address other nodes reach this one at; repeatable (default: this host\'s addresses)', collect)
    .option('--name <name>', 'this node\'s name (default: the host name)')
    .option('--force', 'overwrite an existing configuration file')
    .option('--json', 'print JSON (includes the secret join token)')
    .action(async (opts) => { setExit(await runInit(opts)) })

  cmd.command('status')
    .description('this agent and its peers')
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print JSON')
    .action(async (opts) => { setExit(await runStatus(opts)) })

  cmd.command('where')
    .description('which nodes hold a file')
    .argument('<dataset/path>', 'the file, as DATASET/PATH')
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print JSON')
    .action(async (file, opts) => { setExit(await runWhere(file, opts)) })

  cmd.command('broadcast')
    .description('order a file onto every node (or those --nodes names), through a leader\'s agent')
    .argument('<dataset/path>', 'the file, as DATASET/PATH')
    .addOption(new Option('--priority <p>', 'transfer priority').choices(['critical', 'high', 'normal', 'low', 'background']).default('high'))
    .option('--nodes <selector>', 'comma-separated peer ids, node names or role:NAME (default: all)')
    .option('--wait', 'show progress and exit 0 once every node holds a verified copy')
    .option('--timeout <duration>', 'with --wait: give up after this long (e.g. 10m); exit 1 listing the nodes that do not hold it', durationOption)
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print JSON')
    .action(async (file, opts) => { setExit(await runBroadcast(clientFor(opts), file, opts)) })

  cmd.command('pull')
    .description('fetch a file onto this node now (at the given priority)')
    .argument('<dataset/path>', 'the file, as DATASET/PATH')
    .addOption(new Option('--priority <p>', 'transfer priority').choices(['critical', 'high', 'normal', 'low', 'background']).default('high'))
    .option('--wait', 'show progress until a verified copy is held')
    .option('--timeout <duration>', 'with --wait: give up after this long (e.g. 10m)', durationOption)
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print JSON')
    .action(async (file, opts) => { setExit(await runPull(clientFor(opts), file, opts)) })

  cmd.command('peers')
    .description('every node this agent knows, with connection, load and what it lacks')
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print JSON')
    .action(async (opts) => { setExit(await runPeers(clientFor(opts), opts)) })

  cmd.command('transfers')
    .description('this agent\'s transfers: queued, running, completed, failed')
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print JSON')
    .action(async (opts) => { setExit(await runTransfers(clientFor(opts), opts)) })

  cmd.command('events')
    .description('follow the agent\'s event stream (files, transfers, peers, load) until interrupted')
    .option('--count <n>', 'stop after this many events', positiveCount)
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print NDJSON')
    .action(async (opts) => { setExit(await runEvents(clientFor(opts), opts)) })

  cmd.command('rescan')
    .description('scan the datasets (or one) now, instead of waiting for the watcher or the periodic scan')
    .argument('[dataset]', 'only this dataset')
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print JSON')
    .action(async (dataset, opts) => { setExit(await runRescan(clientFor(opts), dataset, opts)) })

  cmd.command('ls')
    .description('files of a dataset known anywhere in the cluster, with their replica counts')
    .argument('<dataset[/prefix]>', 'a dataset, optionally followed by a path prefix')
    .option('--limit <n>', 'at most this many files (default 1000)', positiveCount)
    .option('--after <path>', 'start after this path (for paging)')
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'print JSON')
    .action(async (target, opts) => { setExit(await runLs(target, opts)) })

  return cmd
}

/** Runs the CLI; returns the process exit code. */
export async function main (argv: string[]): Promise<number> {
  let code = 0
  try {
    await program(c => { code = c }).parseAsync(argv, { from: 'user' })
    return code
  } catch (err: any) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : EXIT_USAGE
    }
    process.stderr.write(`shoal: ${err.message}\n`)
    return EXIT_USAGE
  }
}
