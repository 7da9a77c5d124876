#!/usr/bin/env node
// The `shoal` command. shoal needs Node.js 22 or newer; when an older `node` runs this file
// (a system Node 20, say), it re-runs itself on the Node 24 that the repository installs.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** V8 options the agent runs with (see below); its status reports the young generation it got (memory.youngGeneration). */
const AGENT_NODE_FLAGS = ['--min-semi-space-size=8', '--max-semi-space-size=8']

const major = Number.parseInt(process.versions.node.split('.')[0], 10)
if (major < 22) {
  const here = dirname(fileURLToPath(import.meta.url))
  let dir = here
  let pinned
  for (let i = 0; i < 6 && pinned == null; i++) {
    const candidate = join(dir, 'node_modules', 'node', 'bin', 'node')
    if (existsSync(candidate)) pinned = candidate
    dir = dirname(dir)
  }
  if (pinned == null) {
    process.stderr.write(`shoal: Node.js ${process.versions.node} is too old (22 or newer needed); run 'npm ci' in the repository to install the pinned Node 24\n`)
    process.exit(2)
  }
  const result = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' })
  process.exit(result.status ?? 1)
} else {
  // The agent keeps a large manifest for days and answers queries that each leave a little
  // garbage. V8 sizes its young generation at start only: by default it begins at 1 MiB
  // semi-spaces, shrinks back to that after each compacting collection and grows only when much
  // survives: traced in a settled agent, a burst of queries scavenged every ~15 ms, and an agent
  // of a small dataset (convergence bench, 32 agents) sat at ~198 MB resident against ~160 MB
  // with a fixed 8 MiB. Run again with it, same process id, unless semi-space options are
  // given (on the command line or in NODE_OPTIONS, e.g. NODE_OPTIONS=--max-semi-space-size=16).
  const args = process.argv.slice(2)
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some(a => a.includes('semi-space-size'))
  if (args[0] === 'agent' && !given && typeof process.execve === 'function') {
    process.execve(process.execPath, [process.execPath, ...AGENT_NODE_FLAGS, ...process.execArgv, fileURLToPath(import.meta.url), ...args], process.env)
  }
  const { main } = await import('../dist/main.js')
  process.exitCode = await main(process.argv.slice(2))
}
