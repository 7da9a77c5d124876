#!/usr/bin/env node
// The `shoal` command. shoal needs Node.js 22 or newer; when an older `node` runs this file
// (a system Node 20, say), it re-runs itself on the Node 24 that the repository installs.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

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
  const { main } = await import('../dist/main.js')
  process.exitCode = await main(process.argv.slice(2))
}
