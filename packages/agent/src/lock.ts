import { open, readFile, unlink } from 'node:fs/promises'
import { connect } from 'node:net'
import { AlreadyRunningError, StartupError } from './errors.js'

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    return err.code === 'EPERM'
  }
}

/**
 * One agent per state directory: a lock file holding the owner's pid. A lock left by a killed
 * agent (its pid gone) is taken over.
 */
export async function acquireLock (file: string, stateDir: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600)
      await handle.writeFile(`${process.pid}\n`)
      await handle.close()
      return async () => {
        const owner = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10)
        if (owner === process.pid) await unlink(file).catch(() => {})
      }
    } catch (err: any) {
      if (err.code !== 'EEXIST') throw new StartupError(`cannot create the lock file ${file}: ${err.code ?? err.message}`)
    }
    const owner = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10)
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
      throw new AlreadyRunningError(`another shoal agent (pid ${owner}) is already running with state directory ${stateDir}`)
    }
    await unlink(file).catch(() => {})
  }
  throw new StartupError(`cannot take the lock file ${file}`)
}

/** Fails if a live process answers on the socket; removes a stale socket file. */
export async function claimSocketPath (path: string): Promise<void> {
  const live = await new Promise<boolean>((resolve) => {
    const socket = connect(path)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
  if (live) throw new AlreadyRunningError(`the socket ${path} is in use by a running agent; stop it or choose another --socket`)
  await unlink(path).catch((err: any) => {
    if (err.code !== 'ENOENT') throw new StartupError(`cannot remove the stale socket ${path}: ${err.code}`)
  })
}
