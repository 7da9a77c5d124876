import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime'
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface FileEntry {
  dataset: string
  path: string
  size: number
  mtimeMs: number
  mode: number
  contentId: Uint8Array<ArrayBuffer>
  chunkSize: number
  version: number
  deleted: boolean
  seq: number
  partial: boolean
  have: Uint8Array<ArrayBuffer>
}

export namespace FileEntry {
  let _codec: Codec<FileEntry>

  export const codec = (): Codec<FileEntry> => {
    if (_codec == null) {
      _codec = message<FileEntry>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.dataset != null && obj.dataset !== '')) {
          w.uint32(10)
          w.string(obj.dataset)
        }

        if ((obj.path != null && obj.path !== '')) {
          w.uint32(18)
          w.string(obj.path)
        }

        if ((obj.size != null && obj.size !== 0)) {
          w.uint32(24)
          w.uint64Number(obj.size)
        }

        if ((obj.mtimeMs != null && obj.mtimeMs !== 0)) {
          w.uint32(32)
          w.sint64Number(obj.mtimeMs)
        }

        if ((obj.mode != null && obj.mode !== 0)) {
          w.uint32(40)
          w.uint32(obj.mode)
        }

        if ((obj.contentId != null && obj.contentId.byteLength > 0)) {
          w.uint32(50)
          w.bytes(obj.contentId)
        }

        if ((obj.chunkSize != null && obj.chunkSize !== 0)) {
          w.uint32(56)
          w.uint32(obj.chunkSize)
        }

        if ((obj.version != null && obj.version !== 0)) {
          w.uint32(64)
          w.uint64Number(obj.version)
        }

        if ((obj.deleted != null && obj.deleted !== false)) {
          w.uint32(72)
          w.bool(obj.deleted)
        }

        if ((obj.seq != null && obj.seq !== 0)) {
          w.uint32(80)
          w.uint64Number(obj.seq)
        }

        if ((obj.partial != null && obj.partial !== false)) {
          w.uint32(88)
          w.bool(obj.partial)
        }

        if ((obj.have != null && obj.have.byteLength > 0)) {
          w.uint32(98)
          w.bytes(obj.have)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          dataset: '',
          path: '',
          size: 0,
          mtimeMs: 0,
          mode: 0,
          contentId: uint8ArrayAlloc(0),
          chunkSize: 0,
          version: 0,
          deleted: false,
          seq: 0,
          partial: false,
          have: uint8ArrayAlloc(0)
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.dataset = reader.string()
              break
            }
            case 2: {
              obj.path = reader.string()
              break
            }
            case 3: {
              obj.size = reader.uint64Number()
              break
            }
            case 4: {
              obj.mtimeMs = reader.sint64Number()
              break
            }
            case 5: {
              obj.mode = reader.uint32()
              break
            }
            case 6: {
              obj.contentId = reader.bytes()
              break
            }
            case 7: {
              obj.chunkSize = reader.uint32()
              break
            }
            case 8: {
              obj.version = reader.uint64Number()
              break
            }
            case 9: {
              obj.deleted = reader.bool()
              break
            }
            case 10: {
              obj.seq = reader.uint64Number()
              break
            }
            case 11: {
              obj.partial = reader.bool()
              break
            }
            case 12: {
              obj.have = reader.bytes()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.dataset`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.path`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.size`,
                value: reader.uint64Number()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.mtimeMs`,
                value: reader.sint64Number()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.mode`,
                value: reader.uint32()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.contentId`,
                value: reader.bytes()
              }
              break
            }
            case 7: {
              yield {
                field: `${prefix}.chunkSize`,
                value: reader.uint32()
              }
              break
            }
            case 8: {
              yield {
                field: `${prefix}.version`,
                value: reader.uint64Number()
              }
              break
            }
            case 9: {
              yield {
                field: `${prefix}.deleted`,
                value: reader.bool()
              }
              break
            }
            case 10: {
              yield {
                field: `${prefix}.seq`,
                value: reader.uint64Number()
              }
              break
            }
            case 11: {
              yield {
                field: `${prefix}.partial`,
                value: reader.bool()
              }
              break
            }
            case 12: {
              yield {
                field: `${prefix}.have`,
                value: reader.bytes()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface FileEntryDatasetFieldEvent {
    field: '$.dataset'
    value: string
  }

  export interface FileEntryPathFieldEvent {
    field: '$.path'
    value: string
  }

  export interface FileEntrySizeFieldEvent {
    field: '$.size'
    value: number
  }

  export interface FileEntryMtimeMsFieldEvent {
    field: '$.mtimeMs'
    value: number
  }

  export interface FileEntryModeFieldEvent {
    field: '$.mode'
    value: number
  }

  export interface FileEntryContentIdFieldEvent {
    field: '$.contentId'
    value: Uint8Array<ArrayBuffer>
  }

  export interface FileEntryChunkSizeFieldEvent {
    field: '$.chunkSize'
    value: number
  }

  export interface FileEntryVersionFieldEvent {
    field: '$.version'
    value: number
  }

  export interface FileEntryDeletedFieldEvent {
    field: '$.deleted'
    value: boolean
  }

  export interface FileEntrySeqFieldEvent {
    field: '$.seq'
    value: number
  }

  export interface FileEntryPartialFieldEvent {
    field: '$.partial'
    value: boolean
  }

  export interface FileEntryHaveFieldEvent {
    field: '$.have'
    value: Uint8Array<ArrayBuffer>
  }

  export function encode (obj: Partial<FileEntry>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, FileEntry.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FileEntry>): FileEntry {
    return decodeMessage(buf, FileEntry.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<FileEntry>): Generator<FileEntryDatasetFieldEvent | FileEntryPathFieldEvent | FileEntrySizeFieldEvent | FileEntryMtimeMsFieldEvent | FileEntryModeFieldEvent | FileEntryContentIdFieldEvent | FileEntryChunkSizeFieldEvent | FileEntryVersionFieldEvent | FileEntryDeletedFieldEvent | FileEntrySeqFieldEvent | FileEntryPartialFieldEvent | FileEntryHaveFieldEvent> {
    return streamMessage(buf, FileEntry.codec(), opts)
  }
}

export interface NodeInfo {
  name: string
  generation: number
  sequence: number
  addrs: string[]
  role: string
  datasets: string[]
}

export namespace NodeInfo {
  let _codec: Codec<NodeInfo>

  export const codec = (): Codec<NodeInfo> => {
    if (_codec == null) {
      _codec = message<NodeInfo>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.name != null && obj.name !== '')) {
          w.uint32(10)
          w.string(obj.name)
        }

        if ((obj.generation != null && obj.generation !== 0)) {
          w.uint32(16)
          w.uint64Number(obj.generation)
        }

        if ((obj.sequence != null && obj.sequence !== 0)) {
          w.uint32(24)
          w.uint64Number(obj.sequence)
        }

        if (obj.addrs != null && obj.addrs.length > 0) {
          for (const value of obj.addrs) {
            w.uint32(34)
            w.string(value)
          }
        }

        if ((obj.role != null && obj.role !== '')) {
          w.uint32(42)
          w.string(obj.role)
        }

        if (obj.datasets != null && obj.datasets.length > 0) {
          for (const value of obj.datasets) {
            w.uint32(50)
            w.string(value)
          }
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          name: '',
          generation: 0,
          sequence: 0,
          addrs: [],
          role: '',
          datasets: []
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.name = reader.string()
              break
            }
            case 2: {
              obj.generation = reader.uint64Number()
              break
            }
            case 3: {
              obj.sequence = reader.uint64Number()
              break
            }
            case 4: {
              if (opts.limits?.addrs != null && obj.addrs.length === opts.limits.addrs) {
                throw new MaxLengthError('Decode error - repeated field "addrs" had too many elements')
              }

              if (obj.addrs.length === 32) {
                throw new MaxLengthError('Decode error - repeated field "addrs" had too many elements')
              }

              obj.addrs.push(reader.string())
              break
            }
            case 5: {
              obj.role = reader.string()
              break
            }
            case 6: {
              if (opts.limits?.datasets != null && obj.datasets.length === opts.limits.datasets) {
                throw new MaxLengthError('Decode error - repeated field "datasets" had too many elements')
              }

              if (obj.datasets.length === 64) {
                throw new MaxLengthError('Decode error - repeated field "datasets" had too many elements')
              }

              obj.datasets.push(reader.string())
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          addrs: 32,
          datasets: 64
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.name`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.generation`,
                value: reader.uint64Number()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.sequence`,
                value: reader.uint64Number()
              }
              break
            }
            case 4: {
              if (opts.limits?.addrs != null && obj.addrs === opts.limits.addrs) {
                throw new MaxLengthError('Streaming decode error - repeated field "addrs" had too many elements')
              }

              if (obj.addrs === 32) {
                throw new MaxLengthError('Streaming decode error - repeated field "addrs" had too many elements')
              }

              yield {
                field: `${prefix}.addrs[]`,
                index: obj.addrs,
                value: reader.string()
              }

              obj.addrs++

              break
            }
            case 5: {
              yield {
                field: `${prefix}.role`,
                value: reader.string()
              }
              break
            }
            case 6: {
              if (opts.limits?.datasets != null && obj.datasets === opts.limits.datasets) {
                throw new MaxLengthError('Streaming decode error - repeated field "datasets" had too many elements')
              }

              if (obj.datasets === 64) {
                throw new MaxLengthError('Streaming decode error - repeated field "datasets" had too many elements')
              }

              yield {
                field: `${prefix}.datasets[]`,
                index: obj.datasets,
                value: reader.string()
              }

              obj.datasets++

              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface NodeInfoNameFieldEvent {
    field: '$.name'
    value: string
  }

  export interface NodeInfoGenerationFieldEvent {
    field: '$.generation'
    value: number
  }

  export interface NodeInfoSequenceFieldEvent {
    field: '$.sequence'
    value: number
  }

  export interface NodeInfoAddrsFieldEvent {
    field: '$.addrs[]'
    index: number
    value: string
  }

  export interface NodeInfoRoleFieldEvent {
    field: '$.role'
    value: string
  }

  export interface NodeInfoDatasetsFieldEvent {
    field: '$.datasets[]'
    index: number
    value: string
  }

  export function encode (obj: Partial<NodeInfo>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, NodeInfo.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NodeInfo>): NodeInfo {
    return decodeMessage(buf, NodeInfo.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NodeInfo>): Generator<NodeInfoNameFieldEvent | NodeInfoGenerationFieldEvent | NodeInfoSequenceFieldEvent | NodeInfoAddrsFieldEvent | NodeInfoRoleFieldEvent | NodeInfoDatasetsFieldEvent> {
    return streamMessage(buf, NodeInfo.codec(), opts)
  }
}

export enum LoadLevel {
  OK = 'OK',
  BUSY = 'BUSY',
  OVERLOADED = 'OVERLOADED'
}

enum __LoadLevelValues {
  OK = 0,
  BUSY = 1,
  OVERLOADED = 2
}

export namespace LoadLevel {
  export const codec = (): Codec<LoadLevel> => {
    return enumeration<LoadLevel>(__LoadLevelValues)
  }
}

export interface Announcement {
  node?: NodeInfo
  fromSequence: number
  entries: FileEntry[]
}

export namespace Announcement {
  let _codec: Codec<Announcement>

  export const codec = (): Codec<Announcement> => {
    if (_codec == null) {
      _codec = message<Announcement>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.node != null) {
          w.uint32(10)
          NodeInfo.codec().encode(obj.node, w)
        }

        if ((obj.fromSequence != null && obj.fromSequence !== 0)) {
          w.uint32(16)
          w.uint64Number(obj.fromSequence)
        }

        if (obj.entries != null && obj.entries.length > 0) {
          for (const value of obj.entries) {
            w.uint32(26)
            FileEntry.codec().encode(value, w)
          }
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          fromSequence: 0,
          entries: []
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.node = NodeInfo.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.node
              })
              break
            }
            case 2: {
              obj.fromSequence = reader.uint64Number()
              break
            }
            case 3: {
              if (opts.limits?.entries != null && obj.entries.length === opts.limits.entries) {
                throw new MaxLengthError('Decode error - repeated field "entries" had too many elements')
              }

              if (obj.entries.length === 20000) {
                throw new MaxLengthError('Decode error - repeated field "entries" had too many elements')
              }

              obj.entries.push(FileEntry.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.entries$
              }))
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          entries: 20000
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield * NodeInfo.codec().stream(reader, reader.uint32(), `${prefix}.node`, {
                limits: opts.limits?.node
              })

              break
            }
            case 2: {
              yield {
                field: `${prefix}.fromSequence`,
                value: reader.uint64Number()
              }
              break
            }
            case 3: {
              if (opts.limits?.entries != null && obj.entries === opts.limits.entries) {
                throw new MaxLengthError('Streaming decode error - repeated field "entries" had too many elements')
              }

              if (obj.entries === 20000) {
                throw new MaxLengthError('Streaming decode error - repeated field "entries" had too many elements')
              }

              for (const evt of FileEntry.codec().stream(reader, reader.uint32(), `${prefix}.entries[]`, {
                limits: opts.limits?.entries$
              })) {
                yield {
                  ...evt,
                  index: obj.entries
                }
              }

              obj.entries++

              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface AnnouncementNodeNameFieldEvent {
    field: '$.node.name'
    value: string
  }

  export interface AnnouncementNodeGenerationFieldEvent {
    field: '$.node.generation'
    value: number
  }

  export interface AnnouncementNodeSequenceFieldEvent {
    field: '$.node.sequence'
    value: number
  }

  export interface AnnouncementNodeAddrsFieldEvent {
    field: '$.node.addrs[]'
    index: number
    value: string
  }

  export interface AnnouncementNodeRoleFieldEvent {
    field: '$.node.role'
    value: string
  }

  export interface AnnouncementNodeDatasetsFieldEvent {
    field: '$.node.datasets[]'
    index: number
    value: string
  }

  export interface AnnouncementFromSequenceFieldEvent {
    field: '$.fromSequence'
    value: number
  }

  export interface AnnouncementEntriesDatasetFieldEvent {
    field: '$.entries[].dataset'
    value: string
    index: number
  }

  export interface AnnouncementEntriesPathFieldEvent {
    field: '$.entries[].path'
    value: string
    index: number
  }

  export interface AnnouncementEntriesSizeFieldEvent {
    field: '$.entries[].size'
    value: number
    index: number
  }

  export interface AnnouncementEntriesMtimeMsFieldEvent {
    field: '$.entries[].mtimeMs'
    value: number
    index: number
  }

  export interface AnnouncementEntriesModeFieldEvent {
    field: '$.entries[].mode'
    value: number
    index: number
  }

  export interface AnnouncementEntriesContentIdFieldEvent {
    field: '$.entries[].contentId'
    value: Uint8Array<ArrayBuffer>
    index: number
  }

  export interface AnnouncementEntriesChunkSizeFieldEvent {
    field: '$.entries[].chunkSize'
    value: number
    index: number
  }

  export interface AnnouncementEntriesVersionFieldEvent {
    field: '$.entries[].version'
    value: number
    index: number
  }

  export interface AnnouncementEntriesDeletedFieldEvent {
    field: '$.entries[].deleted'
    value: boolean
    index: number
  }

  export interface AnnouncementEntriesSeqFieldEvent {
    field: '$.entries[].seq'
    value: number
    index: number
  }

  export interface AnnouncementEntriesPartialFieldEvent {
    field: '$.entries[].partial'
    value: boolean
    index: number
  }

  export interface AnnouncementEntriesHaveFieldEvent {
    field: '$.entries[].have'
    value: Uint8Array<ArrayBuffer>
    index: number
  }

  export function encode (obj: Partial<Announcement>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, Announcement.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Announcement>): Announcement {
    return decodeMessage(buf, Announcement.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Announcement>): Generator<AnnouncementNodeNameFieldEvent | AnnouncementNodeGenerationFieldEvent | AnnouncementNodeSequenceFieldEvent | AnnouncementNodeAddrsFieldEvent | AnnouncementNodeRoleFieldEvent | AnnouncementNodeDatasetsFieldEvent | AnnouncementFromSequenceFieldEvent | AnnouncementEntriesDatasetFieldEvent | AnnouncementEntriesPathFieldEvent | AnnouncementEntriesSizeFieldEvent | AnnouncementEntriesMtimeMsFieldEvent | AnnouncementEntriesModeFieldEvent | AnnouncementEntriesContentIdFieldEvent | AnnouncementEntriesChunkSizeFieldEvent | AnnouncementEntriesVersionFieldEvent | AnnouncementEntriesDeletedFieldEvent | AnnouncementEntriesSeqFieldEvent | AnnouncementEntriesPartialFieldEvent | AnnouncementEntriesHaveFieldEvent> {
    return streamMessage(buf, Announcement.codec(), opts)
  }
}

export interface Heartbeat {
  node?: NodeInfo
  load: LoadLevel
  digest: Uint8Array<ArrayBuffer>
  sentMs: number
}

export namespace Heartbeat {
  let _codec: Codec<Heartbeat>

  export const codec = (): Codec<Heartbeat> => {
    if (_codec == null) {
      _codec = message<Heartbeat>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.node != null) {
          w.uint32(10)
          NodeInfo.codec().encode(obj.node, w)
        }

        if (obj.load != null && __LoadLevelValues[obj.load] !== 0) {
          w.uint32(16)
          LoadLevel.codec().encode(obj.load, w)
        }

        if ((obj.digest != null && obj.digest.byteLength > 0)) {
          w.uint32(26)
          w.bytes(obj.digest)
        }

        if ((obj.sentMs != null && obj.sentMs !== 0)) {
          w.uint32(32)
          w.sint64Number(obj.sentMs)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          load: LoadLevel.OK,
          digest: uint8ArrayAlloc(0),
          sentMs: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.node = NodeInfo.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.node
              })
              break
            }
            case 2: {
              obj.load = LoadLevel.codec().decode(reader)
              break
            }
            case 3: {
              obj.digest = reader.bytes()
              break
            }
            case 4: {
              obj.sentMs = reader.sint64Number()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield * NodeInfo.codec().stream(reader, reader.uint32(), `${prefix}.node`, {
                limits: opts.limits?.node
              })

              break
            }
            case 2: {
              yield {
                field: `${prefix}.load`,
                value: LoadLevel.codec().decode(reader)
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.digest`,
                value: reader.bytes()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.sentMs`,
                value: reader.sint64Number()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface HeartbeatNodeNameFieldEvent {
    field: '$.node.name'
    value: string
  }

  export interface HeartbeatNodeGenerationFieldEvent {
    field: '$.node.generation'
    value: number
  }

  export interface HeartbeatNodeSequenceFieldEvent {
    field: '$.node.sequence'
    value: number
  }

  export interface HeartbeatNodeAddrsFieldEvent {
    field: '$.node.addrs[]'
    index: number
    value: string
  }

  export interface HeartbeatNodeRoleFieldEvent {
    field: '$.node.role'
    value: string
  }

  export interface HeartbeatNodeDatasetsFieldEvent {
    field: '$.node.datasets[]'
    index: number
    value: string
  }

  export interface HeartbeatLoadFieldEvent {
    field: '$.load'
    value: LoadLevel
  }

  export interface HeartbeatDigestFieldEvent {
    field: '$.digest'
    value: Uint8Array<ArrayBuffer>
  }

  export interface HeartbeatSentMsFieldEvent {
    field: '$.sentMs'
    value: number
  }

  export function encode (obj: Partial<Heartbeat>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, Heartbeat.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Heartbeat>): Heartbeat {
    return decodeMessage(buf, Heartbeat.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Heartbeat>): Generator<HeartbeatNodeNameFieldEvent | HeartbeatNodeGenerationFieldEvent | HeartbeatNodeSequenceFieldEvent | HeartbeatNodeAddrsFieldEvent | HeartbeatNodeRoleFieldEvent | HeartbeatNodeDatasetsFieldEvent | HeartbeatLoadFieldEvent | HeartbeatDigestFieldEvent | HeartbeatSentMsFieldEvent> {
    return streamMessage(buf, Heartbeat.codec(), opts)
  }
}

export enum ManifestRequestKind {
  RECORD = 'RECORD',
  SUMMARY = 'SUMMARY'
}

enum __ManifestRequestKindValues {
  RECORD = 0,
  SUMMARY = 1
}

export namespace ManifestRequestKind {
  export const codec = (): Codec<ManifestRequestKind> => {
    return enumeration<ManifestRequestKind>(__ManifestRequestKindValues)
  }
}

export interface ManifestRequest {
  generation: number
  sinceSequence: number
  kind: ManifestRequestKind
  peerId: string
}

export namespace ManifestRequest {
  let _codec: Codec<ManifestRequest>

  export const codec = (): Codec<ManifestRequest> => {
    if (_codec == null) {
      _codec = message<ManifestRequest>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.generation != null && obj.generation !== 0)) {
          w.uint32(8)
          w.uint64Number(obj.generation)
        }

        if ((obj.sinceSequence != null && obj.sinceSequence !== 0)) {
          w.uint32(16)
          w.uint64Number(obj.sinceSequence)
        }

        if (obj.kind != null && __ManifestRequestKindValues[obj.kind] !== 0) {
          w.uint32(24)
          ManifestRequestKind.codec().encode(obj.kind, w)
        }

        if ((obj.peerId != null && obj.peerId !== '')) {
          w.uint32(34)
          w.string(obj.peerId)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          generation: 0,
          sinceSequence: 0,
          kind: ManifestRequestKind.RECORD,
          peerId: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.generation = reader.uint64Number()
              break
            }
            case 2: {
              obj.sinceSequence = reader.uint64Number()
              break
            }
            case 3: {
              obj.kind = ManifestRequestKind.codec().decode(reader)
              break
            }
            case 4: {
              obj.peerId = reader.string()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.generation`,
                value: reader.uint64Number()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.sinceSequence`,
                value: reader.uint64Number()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.kind`,
                value: ManifestRequestKind.codec().decode(reader)
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.peerId`,
                value: reader.string()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface ManifestRequestGenerationFieldEvent {
    field: '$.generation'
    value: number
  }

  export interface ManifestRequestSinceSequenceFieldEvent {
    field: '$.sinceSequence'
    value: number
  }

  export interface ManifestRequestKindFieldEvent {
    field: '$.kind'
    value: ManifestRequestKind
  }

  export interface ManifestRequestPeerIdFieldEvent {
    field: '$.peerId'
    value: string
  }

  export function encode (obj: Partial<ManifestRequest>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, ManifestRequest.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ManifestRequest>): ManifestRequest {
    return decodeMessage(buf, ManifestRequest.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ManifestRequest>): Generator<ManifestRequestGenerationFieldEvent | ManifestRequestSinceSequenceFieldEvent | ManifestRequestKindFieldEvent | ManifestRequestPeerIdFieldEvent> {
    return streamMessage(buf, ManifestRequest.codec(), opts)
  }
}

export interface NodeVersion {
  peerId: string
  generation: number
  sequence: number
}

export namespace NodeVersion {
  let _codec: Codec<NodeVersion>

  export const codec = (): Codec<NodeVersion> => {
    if (_codec == null) {
      _codec = message<NodeVersion>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.peerId != null && obj.peerId !== '')) {
          w.uint32(10)
          w.string(obj.peerId)
        }

        if ((obj.generation != null && obj.generation !== 0)) {
          w.uint32(16)
          w.uint64Number(obj.generation)
        }

        if ((obj.sequence != null && obj.sequence !== 0)) {
          w.uint32(24)
          w.uint64Number(obj.sequence)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          peerId: '',
          generation: 0,
          sequence: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.peerId = reader.string()
              break
            }
            case 2: {
              obj.generation = reader.uint64Number()
              break
            }
            case 3: {
              obj.sequence = reader.uint64Number()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.peerId`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.generation`,
                value: reader.uint64Number()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.sequence`,
                value: reader.uint64Number()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface NodeVersionPeerIdFieldEvent {
    field: '$.peerId'
    value: string
  }

  export interface NodeVersionGenerationFieldEvent {
    field: '$.generation'
    value: number
  }

  export interface NodeVersionSequenceFieldEvent {
    field: '$.sequence'
    value: number
  }

  export function encode (obj: Partial<NodeVersion>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, NodeVersion.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NodeVersion>): NodeVersion {
    return decodeMessage(buf, NodeVersion.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NodeVersion>): Generator<NodeVersionPeerIdFieldEvent | NodeVersionGenerationFieldEvent | NodeVersionSequenceFieldEvent> {
    return streamMessage(buf, NodeVersion.codec(), opts)
  }
}

export interface ManifestSummary {
  nodes: NodeVersion[]
}

export namespace ManifestSummary {
  let _codec: Codec<ManifestSummary>

  export const codec = (): Codec<ManifestSummary> => {
    if (_codec == null) {
      _codec = message<ManifestSummary>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.nodes != null && obj.nodes.length > 0) {
          for (const value of obj.nodes) {
            w.uint32(10)
            NodeVersion.codec().encode(value, w)
          }
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          nodes: []
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.nodes != null && obj.nodes.length === opts.limits.nodes) {
                throw new MaxLengthError('Decode error - repeated field "nodes" had too many elements')
              }

              if (obj.nodes.length === 10000) {
                throw new MaxLengthError('Decode error - repeated field "nodes" had too many elements')
              }

              obj.nodes.push(NodeVersion.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.nodes$
              }))
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          nodes: 10000
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.nodes != null && obj.nodes === opts.limits.nodes) {
                throw new MaxLengthError('Streaming decode error - repeated field "nodes" had too many elements')
              }

              if (obj.nodes === 10000) {
                throw new MaxLengthError('Streaming decode error - repeated field "nodes" had too many elements')
              }

              for (const evt of NodeVersion.codec().stream(reader, reader.uint32(), `${prefix}.nodes[]`, {
                limits: opts.limits?.nodes$
              })) {
                yield {
                  ...evt,
                  index: obj.nodes
                }
              }

              obj.nodes++

              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface ManifestSummaryNodesPeerIdFieldEvent {
    field: '$.nodes[].peerId'
    value: string
    index: number
  }

  export interface ManifestSummaryNodesGenerationFieldEvent {
    field: '$.nodes[].generation'
    value: number
    index: number
  }

  export interface ManifestSummaryNodesSequenceFieldEvent {
    field: '$.nodes[].sequence'
    value: number
    index: number
  }

  export function encode (obj: Partial<ManifestSummary>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, ManifestSummary.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ManifestSummary>): ManifestSummary {
    return decodeMessage(buf, ManifestSummary.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ManifestSummary>): Generator<ManifestSummaryNodesPeerIdFieldEvent | ManifestSummaryNodesGenerationFieldEvent | ManifestSummaryNodesSequenceFieldEvent> {
    return streamMessage(buf, ManifestSummary.codec(), opts)
  }
}

export interface ManifestPage {
  node?: NodeInfo
  full: boolean
  entries: FileEntry[]
  last: boolean
}

export namespace ManifestPage {
  let _codec: Codec<ManifestPage>

  export const codec = (): Codec<ManifestPage> => {
    if (_codec == null) {
      _codec = message<ManifestPage>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.node != null) {
          w.uint32(10)
          NodeInfo.codec().encode(obj.node, w)
        }

        if ((obj.full != null && obj.full !== false)) {
          w.uint32(16)
          w.bool(obj.full)
        }

        if (obj.entries != null && obj.entries.length > 0) {
          for (const value of obj.entries) {
            w.uint32(26)
            FileEntry.codec().encode(value, w)
          }
        }

        if ((obj.last != null && obj.last !== false)) {
          w.uint32(32)
          w.bool(obj.last)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          full: false,
          entries: [],
          last: false
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.node = NodeInfo.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.node
              })
              break
            }
            case 2: {
              obj.full = reader.bool()
              break
            }
            case 3: {
              if (opts.limits?.entries != null && obj.entries.length === opts.limits.entries) {
                throw new MaxLengthError('Decode error - repeated field "entries" had too many elements')
              }

              if (obj.entries.length === 20000) {
                throw new MaxLengthError('Decode error - repeated field "entries" had too many elements')
              }

              obj.entries.push(FileEntry.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.entries$
              }))
              break
            }
            case 4: {
              obj.last = reader.bool()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          entries: 20000
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield * NodeInfo.codec().stream(reader, reader.uint32(), `${prefix}.node`, {
                limits: opts.limits?.node
              })

              break
            }
            case 2: {
              yield {
                field: `${prefix}.full`,
                value: reader.bool()
              }
              break
            }
            case 3: {
              if (opts.limits?.entries != null && obj.entries === opts.limits.entries) {
                throw new MaxLengthError('Streaming decode error - repeated field "entries" had too many elements')
              }

              if (obj.entries === 20000) {
                throw new MaxLengthError('Streaming decode error - repeated field "entries" had too many elements')
              }

              for (const evt of FileEntry.codec().stream(reader, reader.uint32(), `${prefix}.entries[]`, {
                limits: opts.limits?.entries$
              })) {
                yield {
                  ...evt,
                  index: obj.entries
                }
              }

              obj.entries++

              break
            }
            case 4: {
              yield {
                field: `${prefix}.last`,
                value: reader.bool()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface ManifestPageNodeNameFieldEvent {
    field: '$.node.name'
    value: string
  }

  export interface ManifestPageNodeGenerationFieldEvent {
    field: '$.node.generation'
    value: number
  }

  export interface ManifestPageNodeSequenceFieldEvent {
    field: '$.node.sequence'
    value: number
  }

  export interface ManifestPageNodeAddrsFieldEvent {
    field: '$.node.addrs[]'
    index: number
    value: string
  }

  export interface ManifestPageNodeRoleFieldEvent {
    field: '$.node.role'
    value: string
  }

  export interface ManifestPageNodeDatasetsFieldEvent {
    field: '$.node.datasets[]'
    index: number
    value: string
  }

  export interface ManifestPageFullFieldEvent {
    field: '$.full'
    value: boolean
  }

  export interface ManifestPageEntriesDatasetFieldEvent {
    field: '$.entries[].dataset'
    value: string
    index: number
  }

  export interface ManifestPageEntriesPathFieldEvent {
    field: '$.entries[].path'
    value: string
    index: number
  }

  export interface ManifestPageEntriesSizeFieldEvent {
    field: '$.entries[].size'
    value: number
    index: number
  }

  export interface ManifestPageEntriesMtimeMsFieldEvent {
    field: '$.entries[].mtimeMs'
    value: number
    index: number
  }

  export interface ManifestPageEntriesModeFieldEvent {
    field: '$.entries[].mode'
    value: number
    index: number
  }

  export interface ManifestPageEntriesContentIdFieldEvent {
    field: '$.entries[].contentId'
    value: Uint8Array<ArrayBuffer>
    index: number
  }

  export interface ManifestPageEntriesChunkSizeFieldEvent {
    field: '$.entries[].chunkSize'
    value: number
    index: number
  }

  export interface ManifestPageEntriesVersionFieldEvent {
    field: '$.entries[].version'
    value: number
    index: number
  }

  export interface ManifestPageEntriesDeletedFieldEvent {
    field: '$.entries[].deleted'
    value: boolean
    index: number
  }

  export interface ManifestPageEntriesSeqFieldEvent {
    field: '$.entries[].seq'
    value: number
    index: number
  }

  export interface ManifestPageEntriesPartialFieldEvent {
    field: '$.entries[].partial'
    value: boolean
    index: number
  }

  export interface ManifestPageEntriesHaveFieldEvent {
    field: '$.entries[].have'
    value: Uint8Array<ArrayBuffer>
    index: number
  }

  export interface ManifestPageLastFieldEvent {
    field: '$.last'
    value: boolean
  }

  export function encode (obj: Partial<ManifestPage>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, ManifestPage.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ManifestPage>): ManifestPage {
    return decodeMessage(buf, ManifestPage.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ManifestPage>): Generator<ManifestPageNodeNameFieldEvent | ManifestPageNodeGenerationFieldEvent | ManifestPageNodeSequenceFieldEvent | ManifestPageNodeAddrsFieldEvent | ManifestPageNodeRoleFieldEvent | ManifestPageNodeDatasetsFieldEvent | ManifestPageFullFieldEvent | ManifestPageEntriesDatasetFieldEvent | ManifestPageEntriesPathFieldEvent | ManifestPageEntriesSizeFieldEvent | ManifestPageEntriesMtimeMsFieldEvent | ManifestPageEntriesModeFieldEvent | ManifestPageEntriesContentIdFieldEvent | ManifestPageEntriesChunkSizeFieldEvent | ManifestPageEntriesVersionFieldEvent | ManifestPageEntriesDeletedFieldEvent | ManifestPageEntriesSeqFieldEvent | ManifestPageEntriesPartialFieldEvent | ManifestPageEntriesHaveFieldEvent | ManifestPageLastFieldEvent> {
    return streamMessage(buf, ManifestPage.codec(), opts)
  }
}

export interface ChunkRange {
  start: number
  count: number
}

export namespace ChunkRange {
  let _codec: Codec<ChunkRange>

  export const codec = (): Codec<ChunkRange> => {
    if (_codec == null) {
      _codec = message<ChunkRange>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.start != null && obj.start !== 0)) {
          w.uint32(8)
          w.uint32(obj.start)
        }

        if ((obj.count != null && obj.count !== 0)) {
          w.uint32(16)
          w.uint32(obj.count)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          start: 0,
          count: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.start = reader.uint32()
              break
            }
            case 2: {
              obj.count = reader.uint32()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.start`,
                value: reader.uint32()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.count`,
                value: reader.uint32()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface ChunkRangeStartFieldEvent {
    field: '$.start'
    value: number
  }

  export interface ChunkRangeCountFieldEvent {
    field: '$.count'
    value: number
  }

  export function encode (obj: Partial<ChunkRange>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, ChunkRange.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChunkRange>): ChunkRange {
    return decodeMessage(buf, ChunkRange.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChunkRange>): Generator<ChunkRangeStartFieldEvent | ChunkRangeCountFieldEvent> {
    return streamMessage(buf, ChunkRange.codec(), opts)
  }
}

export enum ChunkRequestKind {
  CHUNKS = 'CHUNKS',
  HASHES = 'HASHES'
}

enum __ChunkRequestKindValues {
  CHUNKS = 0,
  HASHES = 1
}

export namespace ChunkRequestKind {
  export const codec = (): Codec<ChunkRequestKind> => {
    return enumeration<ChunkRequestKind>(__ChunkRequestKindValues)
  }
}

export interface ChunkRequest {
  kind: ChunkRequestKind
  contentId: Uint8Array<ArrayBuffer>
  ranges: ChunkRange[]
}

export namespace ChunkRequest {
  let _codec: Codec<ChunkRequest>

  export const codec = (): Codec<ChunkRequest> => {
    if (_codec == null) {
      _codec = message<ChunkRequest>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.kind != null && __ChunkRequestKindValues[obj.kind] !== 0) {
          w.uint32(8)
          ChunkRequestKind.codec().encode(obj.kind, w)
        }

        if ((obj.contentId != null && obj.contentId.byteLength > 0)) {
          w.uint32(18)
          w.bytes(obj.contentId)
        }

        if (obj.ranges != null && obj.ranges.length > 0) {
          for (const value of obj.ranges) {
            w.uint32(26)
            ChunkRange.codec().encode(value, w)
          }
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          kind: ChunkRequestKind.CHUNKS,
          contentId: uint8ArrayAlloc(0),
          ranges: []
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.kind = ChunkRequestKind.codec().decode(reader)
              break
            }
            case 2: {
              obj.contentId = reader.bytes()
              break
            }
            case 3: {
              if (opts.limits?.ranges != null && obj.ranges.length === opts.limits.ranges) {
                throw new MaxLengthError('Decode error - repeated field "ranges" had too many elements')
              }

              if (obj.ranges.length === 64) {
                throw new MaxLengthError('Decode error - repeated field "ranges" had too many elements')
              }

              obj.ranges.push(ChunkRange.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.ranges$
              }))
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          ranges: 64
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.kind`,
                value: ChunkRequestKind.codec().decode(reader)
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.contentId`,
                value: reader.bytes()
              }
              break
            }
            case 3: {
              if (opts.limits?.ranges != null && obj.ranges === opts.limits.ranges) {
                throw new MaxLengthError('Streaming decode error - repeated field "ranges" had too many elements')
              }

              if (obj.ranges === 64) {
                throw new MaxLengthError('Streaming decode error - repeated field "ranges" had too many elements')
              }

              for (const evt of ChunkRange.codec().stream(reader, reader.uint32(), `${prefix}.ranges[]`, {
                limits: opts.limits?.ranges$
              })) {
                yield {
                  ...evt,
                  index: obj.ranges
                }
              }

              obj.ranges++

              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface ChunkRequestKindFieldEvent {
    field: '$.kind'
    value: ChunkRequestKind
  }

  export interface ChunkRequestContentIdFieldEvent {
    field: '$.contentId'
    value: Uint8Array<ArrayBuffer>
  }

  export interface ChunkRequestRangesStartFieldEvent {
    field: '$.ranges[].start'
    value: number
    index: number
  }

  export interface ChunkRequestRangesCountFieldEvent {
    field: '$.ranges[].count'
    value: number
    index: number
  }

  export function encode (obj: Partial<ChunkRequest>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, ChunkRequest.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChunkRequest>): ChunkRequest {
    return decodeMessage(buf, ChunkRequest.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChunkRequest>): Generator<ChunkRequestKindFieldEvent | ChunkRequestContentIdFieldEvent | ChunkRequestRangesStartFieldEvent | ChunkRequestRangesCountFieldEvent> {
    return streamMessage(buf, ChunkRequest.codec(), opts)
  }
}

export enum ChunkStatus {
  FOUND = 'FOUND',
  BUSY = 'BUSY',
  NOT_FOUND = 'NOT_FOUND',
  BAD_REQUEST = 'BAD_REQUEST',
  FAILED = 'FAILED'
}

enum __ChunkStatusValues {
  FOUND = 0,
  BUSY = 1,
  NOT_FOUND = 2,
  BAD_REQUEST = 3,
  FAILED = 4
}

export namespace ChunkStatus {
  export const codec = (): Codec<ChunkStatus> => {
    return enumeration<ChunkStatus>(__ChunkStatusValues)
  }
}

export interface ChunkResponse {
  status: ChunkStatus
  retryAfterMs: number
  size: number
  chunkSize: number
  hashes: Uint8Array<ArrayBuffer>
  index: number
  data: Uint8Array<ArrayBuffer>
  last: boolean
  message: string
}

export namespace ChunkResponse {
  let _codec: Codec<ChunkResponse>

  export const codec = (): Codec<ChunkResponse> => {
    if (_codec == null) {
      _codec = message<ChunkResponse>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.status != null && __ChunkStatusValues[obj.status] !== 0) {
          w.uint32(8)
          ChunkStatus.codec().encode(obj.status, w)
        }

        if ((obj.retryAfterMs != null && obj.retryAfterMs !== 0)) {
          w.uint32(16)
          w.uint32(obj.retryAfterMs)
        }

        if ((obj.size != null && obj.size !== 0)) {
          w.uint32(24)
          w.uint64Number(obj.size)
        }

        if ((obj.chunkSize != null && obj.chunkSize !== 0)) {
          w.uint32(32)
          w.uint32(obj.chunkSize)
        }

        if ((obj.hashes != null && obj.hashes.byteLength > 0)) {
          w.uint32(42)
          w.bytes(obj.hashes)
        }

        if ((obj.index != null && obj.index !== 0)) {
          w.uint32(48)
          w.uint32(obj.index)
        }

        if ((obj.data != null && obj.data.byteLength > 0)) {
          w.uint32(58)
          w.bytes(obj.data)
        }

        if ((obj.last != null && obj.last !== false)) {
          w.uint32(64)
          w.bool(obj.last)
        }

        if ((obj.message != null && obj.message !== '')) {
          w.uint32(74)
          w.string(obj.message)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          status: ChunkStatus.FOUND,
          retryAfterMs: 0,
          size: 0,
          chunkSize: 0,
          hashes: uint8ArrayAlloc(0),
          index: 0,
          data: uint8ArrayAlloc(0),
          last: false,
          message: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.status = ChunkStatus.codec().decode(reader)
              break
            }
            case 2: {
              obj.retryAfterMs = reader.uint32()
              break
            }
            case 3: {
              obj.size = reader.uint64Number()
              break
            }
            case 4: {
              obj.chunkSize = reader.uint32()
              break
            }
            case 5: {
              obj.hashes = reader.bytes()
              break
            }
            case 6: {
              obj.index = reader.uint32()
              break
            }
            case 7: {
              obj.data = reader.bytes()
              break
            }
            case 8: {
              obj.last = reader.bool()
              break
            }
            case 9: {
              obj.message = reader.string()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.status`,
                value: ChunkStatus.codec().decode(reader)
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.retryAfterMs`,
                value: reader.uint32()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.size`,
                value: reader.uint64Number()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.chunkSize`,
                value: reader.uint32()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.hashes`,
                value: reader.bytes()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.index`,
                value: reader.uint32()
              }
              break
            }
            case 7: {
              yield {
                field: `${prefix}.data`,
                value: reader.bytes()
              }
              break
            }
            case 8: {
              yield {
                field: `${prefix}.last`,
                value: reader.bool()
              }
              break
            }
            case 9: {
              yield {
                field: `${prefix}.message`,
                value: reader.string()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface ChunkResponseStatusFieldEvent {
    field: '$.status'
    value: ChunkStatus
  }

  export interface ChunkResponseRetryAfterMsFieldEvent {
    field: '$.retryAfterMs'
    value: number
  }

  export interface ChunkResponseSizeFieldEvent {
    field: '$.size'
    value: number
  }

  export interface ChunkResponseChunkSizeFieldEvent {
    field: '$.chunkSize'
    value: number
  }

  export interface ChunkResponseHashesFieldEvent {
    field: '$.hashes'
    value: Uint8Array<ArrayBuffer>
  }

  export interface ChunkResponseIndexFieldEvent {
    field: '$.index'
    value: number
  }

  export interface ChunkResponseDataFieldEvent {
    field: '$.data'
    value: Uint8Array<ArrayBuffer>
  }

  export interface ChunkResponseLastFieldEvent {
    field: '$.last'
    value: boolean
  }

  export interface ChunkResponseMessageFieldEvent {
    field: '$.message'
    value: string
  }

  export function encode (obj: Partial<ChunkResponse>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, ChunkResponse.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChunkResponse>): ChunkResponse {
    return decodeMessage(buf, ChunkResponse.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChunkResponse>): Generator<ChunkResponseStatusFieldEvent | ChunkResponseRetryAfterMsFieldEvent | ChunkResponseSizeFieldEvent | ChunkResponseChunkSizeFieldEvent | ChunkResponseHashesFieldEvent | ChunkResponseIndexFieldEvent | ChunkResponseDataFieldEvent | ChunkResponseLastFieldEvent | ChunkResponseMessageFieldEvent> {
    return streamMessage(buf, ChunkResponse.codec(), opts)
  }
}

export interface Directive {
  id: string
  dataset: string
  path: string
  contentId: Uint8Array<ArrayBuffer>
  version: number
  priority: string
  targets: string[]
  deadlineMs: number
  issuedMs: number
}

export namespace Directive {
  let _codec: Codec<Directive>

  export const codec = (): Codec<Directive> => {
    if (_codec == null) {
      _codec = message<Directive>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.id != null && obj.id !== '')) {
          w.uint32(10)
          w.string(obj.id)
        }

        if ((obj.dataset != null && obj.dataset !== '')) {
          w.uint32(18)
          w.string(obj.dataset)
        }

        if ((obj.path != null && obj.path !== '')) {
          w.uint32(26)
          w.string(obj.path)
        }

        if ((obj.contentId != null && obj.contentId.byteLength > 0)) {
          w.uint32(34)
          w.bytes(obj.contentId)
        }

        if ((obj.version != null && obj.version !== 0)) {
          w.uint32(40)
          w.uint64Number(obj.version)
        }

        if ((obj.priority != null && obj.priority !== '')) {
          w.uint32(50)
          w.string(obj.priority)
        }

        if (obj.targets != null && obj.targets.length > 0) {
          for (const value of obj.targets) {
            w.uint32(58)
            w.string(value)
          }
        }

        if ((obj.deadlineMs != null && obj.deadlineMs !== 0)) {
          w.uint32(64)
          w.sint64Number(obj.deadlineMs)
        }

        if ((obj.issuedMs != null && obj.issuedMs !== 0)) {
          w.uint32(72)
          w.sint64Number(obj.issuedMs)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          id: '',
          dataset: '',
          path: '',
          contentId: uint8ArrayAlloc(0),
          version: 0,
          priority: '',
          targets: [],
          deadlineMs: 0,
          issuedMs: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.id = reader.string()
              break
            }
            case 2: {
              obj.dataset = reader.string()
              break
            }
            case 3: {
              obj.path = reader.string()
              break
            }
            case 4: {
              obj.contentId = reader.bytes()
              break
            }
            case 5: {
              obj.version = reader.uint64Number()
              break
            }
            case 6: {
              obj.priority = reader.string()
              break
            }
            case 7: {
              if (opts.limits?.targets != null && obj.targets.length === opts.limits.targets) {
                throw new MaxLengthError('Decode error - repeated field "targets" had too many elements')
              }

              if (obj.targets.length === 10000) {
                throw new MaxLengthError('Decode error - repeated field "targets" had too many elements')
              }

              obj.targets.push(reader.string())
              break
            }
            case 8: {
              obj.deadlineMs = reader.sint64Number()
              break
            }
            case 9: {
              obj.issuedMs = reader.sint64Number()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          targets: 10000
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.id`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.dataset`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.path`,
                value: reader.string()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.contentId`,
                value: reader.bytes()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.version`,
                value: reader.uint64Number()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.priority`,
                value: reader.string()
              }
              break
            }
            case 7: {
              if (opts.limits?.targets != null && obj.targets === opts.limits.targets) {
                throw new MaxLengthError('Streaming decode error - repeated field "targets" had too many elements')
              }

              if (obj.targets === 10000) {
                throw new MaxLengthError('Streaming decode error - repeated field "targets" had too many elements')
              }

              yield {
                field: `${prefix}.targets[]`,
                index: obj.targets,
                value: reader.string()
              }

              obj.targets++

              break
            }
            case 8: {
              yield {
                field: `${prefix}.deadlineMs`,
                value: reader.sint64Number()
              }
              break
            }
            case 9: {
              yield {
                field: `${prefix}.issuedMs`,
                value: reader.sint64Number()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface DirectiveIdFieldEvent {
    field: '$.id'
    value: string
  }

  export interface DirectiveDatasetFieldEvent {
    field: '$.dataset'
    value: string
  }

  export interface DirectivePathFieldEvent {
    field: '$.path'
    value: string
  }

  export interface DirectiveContentIdFieldEvent {
    field: '$.contentId'
    value: Uint8Array<ArrayBuffer>
  }

  export interface DirectiveVersionFieldEvent {
    field: '$.version'
    value: number
  }

  export interface DirectivePriorityFieldEvent {
    field: '$.priority'
    value: string
  }

  export interface DirectiveTargetsFieldEvent {
    field: '$.targets[]'
    index: number
    value: string
  }

  export interface DirectiveDeadlineMsFieldEvent {
    field: '$.deadlineMs'
    value: number
  }

  export interface DirectiveIssuedMsFieldEvent {
    field: '$.issuedMs'
    value: number
  }

  export function encode (obj: Partial<Directive>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, Directive.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Directive>): Directive {
    return decodeMessage(buf, Directive.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Directive>): Generator<DirectiveIdFieldEvent | DirectiveDatasetFieldEvent | DirectivePathFieldEvent | DirectiveContentIdFieldEvent | DirectiveVersionFieldEvent | DirectivePriorityFieldEvent | DirectiveTargetsFieldEvent | DirectiveDeadlineMsFieldEvent | DirectiveIssuedMsFieldEvent> {
    return streamMessage(buf, Directive.codec(), opts)
  }
}
