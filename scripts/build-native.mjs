// Builds the agent's optional native helper (packages/agent/native/malloc.c) with the system C
// compiler against Node-API headers. Never fails the install: without the helper the agent works
// and only keeps more freed memory resident. Run by `npm ci` / `npm install` (the prepare script).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const source = join(root, 'packages', 'agent', 'native', 'malloc.c')
const out = join(root, 'packages', 'agent', 'native', 'build', 'shoal-malloc.node')

const headerDirs = [
  // The headers of the Node that the repository pins (npm package `node`), then those of the Node running this script.
  join(root, 'node_modules', 'node', 'node_modules', `node-${process.platform}-${process.arch}`, 'include', 'node'),
  join(dirname(dirname(process.execPath)), 'include', 'node'),
  '/usr/include/node'
]
const include = headerDirs.find(d => existsSync(join(d, 'node_api.h')))

function skip (why) {
  process.stderr.write(`shoal: native memory helper not built (${why}); the agent runs without it\n`)
  process.exit(0)
}

if (process.platform !== 'linux') skip(`not needed on ${process.platform}`)
if (include == null) skip('no node_api.h found')
const cc = process.env.CC ?? 'cc'
try {
  mkdirSync(dirname(out), { recursive: true })
  execFileSync(cc, ['-O2', '-shared', '-fPIC', '-DNAPI_VERSION=8', `-I${include}`, source, '-o', out], { stdio: ['ignore', 'inherit', 'inherit'] })
} catch (err) {
  skip(`${cc} failed: ${err.message.split('\n')[0]}`)
}
