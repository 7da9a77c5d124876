import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'

export async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

export async function fileHashIfPresent (path: string): Promise<string | undefined> {
  try {
    return await sha256File(path)
  } catch {
    return undefined
  }
}

/** Writes `bytes` random bytes in 1 MiB pieces (never the whole file in memory); returns their SHA-256. */
export async function writeRandomFile (path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256')
  const handle = await open(path, 'w')
  try {
    for (let done = 0; done < bytes; done += 1 << 20) {
      const piece = randomBytes(Math.min(1 << 20, bytes - done))
      hash.update(piece)
      await handle.write(piece)
    }
  } finally {
    await handle.close()
  }
  return hash.digest('hex')
}
