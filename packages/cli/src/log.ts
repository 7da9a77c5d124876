import type { Logger } from '@shoal/agent'

const LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type LogLevel = typeof LEVELS[number]

export function isLogLevel (value: string): value is LogLevel {
  return (LEVELS as readonly string[]).includes(value)
}

/** Structured logs on stderr: JSON lines when not on a terminal, short lines on one. */
export function createLogger (level: LogLevel, json = !process.stderr.isTTY): Logger {
  const min = LEVELS.indexOf(level)
  const emit = (lvl: LogLevel) => (msg: string, fields: Record<string, unknown> = {}): void => {
    if (LEVELS.indexOf(lvl) < min) return
    if (json) {
      process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }) + '\n')
    } else {
      const extra = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
      process.stderr.write(`${lvl.padEnd(5)} ${msg}${extra.length > 0 ? ` ${extra}` : ''}\n`)
    }
  }
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') }
}
