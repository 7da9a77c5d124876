/** One bit per chunk: which chunks of a file a node holds (verified). */
export class Bitfield {
  readonly bytes: Uint8Array
  private ones = 0

  constructor (readonly length: number, bytes?: Uint8Array) {
    const size = Math.ceil(length / 8)
    this.bytes = new Uint8Array(size)
    if (bytes != null) {
      if (bytes.length !== size) throw new RangeError(`bitfield of ${length} bits needs ${size} bytes, got ${bytes.length}`)
      this.bytes.set(bytes)
      // Bits past the end must be zero, or counts would lie.
      if (length % 8 !== 0 && size > 0) this.bytes[size - 1] &= (0xff << (8 - (length % 8))) & 0xff
      for (let i = 0; i < length; i++) if (this.has(i)) this.ones++
    }
  }

  static full (length: number): Bitfield {
    const b = new Bitfield(length)
    for (let i = 0; i < length; i++) b.set(i)
    return b
  }

  has (index: number): boolean {
    return index >= 0 && index < this.length && (this.bytes[index >> 3] & (0x80 >> (index & 7))) !== 0
  }

  set (index: number): void {
    if (index < 0 || index >= this.length) throw new RangeError(`bit ${index} outside [0, ${this.length})`)
    if (this.has(index)) return
    this.bytes[index >> 3] |= 0x80 >> (index & 7)
    this.ones++
  }

  clear (index: number): void {
    if (!this.has(index)) return
    this.bytes[index >> 3] &= ~(0x80 >> (index & 7))
    this.ones--
  }

  get count (): number {
    return this.ones
  }

  get complete (): boolean {
    return this.ones === this.length
  }

  /** Indices not set, in order. */
  missing (): number[] {
    const out: number[] = []
    for (let i = 0; i < this.length; i++) if (!this.has(i)) out.push(i)
    return out
  }
}
