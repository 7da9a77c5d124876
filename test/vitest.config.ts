import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'test/bench/**'],
    testTimeout: 180_000,
    hookTimeout: 60_000,
    // Integration tests run several agent processes each; two files at a time is what 2 cores allow.
    maxWorkers: 2,
    reporters: ['default']
  }
})
