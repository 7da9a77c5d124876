/** Errors the agent reports to its operator; each message is one line that says what to fix. */

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export class StartupError extends Error {
  override name = 'StartupError'
}

export class AlreadyRunningError extends StartupError {
  override name = 'AlreadyRunningError'
}
