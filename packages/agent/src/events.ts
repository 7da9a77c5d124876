import type { AgentEvent } from '@shoal/client'

export type EventListener = (event: AgentEvent) => void

/** Fans agent events out to subscribers (the API's event streams); never blocks the emitter. */
export class EventHub {
  private readonly listeners = new Set<EventListener>()

  subscribe (listener: EventListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  emit (event: AgentEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch {
        this.listeners.delete(listener)
      }
    }
  }

  get subscribers (): number {
    return this.listeners.size
  }
}
