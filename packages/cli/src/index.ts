export { main } from './main.js'
export * from './exit-codes.js'
