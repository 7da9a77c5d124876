import { readFileSync } from 'node:fs'
import { parseDocument } from 'yaml'
import { z } from 'zod'
import { ConfigError } from './errors.js'

/**
 * Settings as the user writes them: the configuration file, environment variables and flags all
 * use these names (kebab-case, as the flags). Every layer is validated against the same schema;
 * unknown keys are errors.
 */
const text = z.string().min(1, 'must not be empty')
const list = z.array(text)
const bytes = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+(\.\d+)?\s*[kKmMgGtT]?(i?[bB])?(\/s)?$/, 'expected a byte count such as 0, 512K, 100M or 2G')])
const duration = z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, 'expected a duration such as 500ms, 30s, 10m or 1h')])
const priority = z.enum(['critical', 'high', 'normal', 'low', 'background'])
const hold = z.union([
  z.enum(['all', 'on-demand']),
  z.number().int().min(1, 'a replica count is at least 1'),
  z.object({ roles: list.optional(), names: list.optional() }).strict()
], { error: 'expected all, on-demand, a replica count, or { roles: [...], names: [...] }' })

export const datasetSettings = z.object({
  path: text,
  priority: priority.optional(),
  hold: hold.optional(),
  include: list.optional(),
  exclude: list.optional(),
  immutable: z.boolean().optional()
}).strict()

export const settingsSchema = z.object({
  name: text.optional(),
  role: z.enum(['persistent', 'ephemeral', 'coordinator']).optional(),
  state: text.optional(),
  socket: text.optional(),
  'socket-group': text.optional(),
  listen: list.optional(),
  bootstrap: list.optional(),
  'cluster-key': text.optional(),
  join: text.optional(),
  leaders: list.optional(),
  allow: list.optional(),
  metrics: text.optional(),
  'log-level': z.enum(['debug', 'info', 'warn', 'error']).optional(),
  'stale-after': duration.optional(),
  'heartbeat-interval': duration.optional(),
  'rescan-interval': duration.optional(),
  'stable-after': duration.optional(),
  'tombstone-gc-interval': duration.optional(),
  limits: z.object({
    'download-rate': bytes.optional(),
    'upload-rate': bytes.optional(),
    'per-peer-download-rate': bytes.optional(),
    'per-peer-upload-rate': bytes.optional(),
    'min-free-disk': bytes.optional()
  }).strict().optional(),
  datasets: z.record(z.string(), datasetSettings).optional()
}).strict()

export type Settings = z.infer<typeof settingsSchema>
export type DatasetSettings = z.infer<typeof datasetSettings>

/** Turns schema errors into one line per problem, each naming where and what is expected. */
function fail (source: string, error: z.ZodError): never {
  const lines = error.issues.map(issue => {
    const where = issue.path.length === 0 ? '(top level)' : issue.path.join('.')
    const message = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}` : issue.message
    return `${source}: ${where}: ${message}`
  })
  throw new ConfigError(lines.join('\n'))
}

export function validateSettings (value: unknown, source: string): Settings {
  const result = settingsSchema.safeParse(value)
  if (!result.success) fail(source, result.error)
  return result.data
}

/** Reads and validates a YAML configuration file. */
export function loadSettingsFile (file: string): Settings {
  let content: string
  try {
    content = readFileSync(file, 'utf8')
  } catch (err: any) {
    throw new ConfigError(`cannot read the configuration file ${file} (${err.code ?? err.message})`)
  }
  const doc = parseDocument(content, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]
    throw new ConfigError(`${file}: line ${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`)
  }
  const value = doc.toJS() ?? {}
  return validateSettings(value, file)
}

/** Names of the variables that may carry settings: SHOAL_ + the flag in upper snake case. */
const ENV_LISTS = new Set(['listen', 'bootstrap', 'leaders', 'allow', 'dataset', 'on-demand'])
const ENV_SCALARS = ['name', 'role', 'state', 'socket', 'socket-group', 'cluster-key', 'join', 'metrics', 'log-level', 'stale-after',
  'heartbeat-interval', 'rescan-interval', 'stable-after', 'tombstone-gc-interval', 'download-rate', 'upload-rate', 'per-peer-download-rate', 'per-peer-upload-rate', 'min-free-disk', 'config']
/** Fault switches for tests; not settings. */
const ENV_SWITCHES = new Set(['SHOAL_FAULTS', 'SHOAL_FAULT_CORRUPT_CHUNKS'])

export function envName (key: string): string {
  return `SHOAL_${key.toUpperCase().replaceAll('-', '_')}`
}

/** The flag-shaped options found in the environment (lists are comma-separated). */
export function optionsFromEnv (env: NodeJS.ProcessEnv): Record<string, string | string[]> {
  const known = new Map<string, string>()
  for (const key of [...ENV_SCALARS, ...ENV_LISTS]) known.set(envName(key), key)
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('SHOAL_') || value == null || ENV_SWITCHES.has(name)) continue
    const key = known.get(name)
    if (key == null) throw new ConfigError(`${name}: unknown setting (known: ${[...known.keys()].sort().join(', ')})`)
    if (value.trim() === '') continue
    out[key] = ENV_LISTS.has(key) ? value.split(',').map(s => s.trim()).filter(s => s !== '') : value
  }
  return out
}
