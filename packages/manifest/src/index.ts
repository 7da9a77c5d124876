export * from './chunking.js'
export * from './local-index.js'
export * from './scanner.js'
export * from './cluster-manifest.js'
