/**
 * A file encrypted in 64 KiB chunks, each sealed with AES-256-GCM under the file's own key
 * (`KeyRing.seal`: header naming the file, a fresh nonce, the tag), bound to its place by the
 * associated data `<file id>:<chunk index>:<1 if last>` — so chunks cannot be reordered, dropped
 * or the file cut short without the decryption failing. Every sealed chunk has the same overhead,
 * which maps a plaintext byte range to a ciphertext byte range: downloads with `Range` read and
 * decrypt only the chunks they need.
 */
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import { Transform, type TransformCallback } from "node:stream"
import { pipeline } from "node:stream/promises"
import * as KeyRing from "../runtime/KeyRing.ts"

/** Plaintext bytes per chunk. */
export const chunkSize = 64 * 1024

/** Bytes a sealed chunk adds: version, id length, id, nonce, tag. */
export const overhead = (fileId: string) => 2 + Buffer.byteLength(fileId) + 12 + 16

/** How many chunks a file of `size` bytes has (an empty file has one, empty, chunk). */
export const chunkCount = (size: number) => Math.max(1, Math.ceil(size / chunkSize))

/** The ciphertext size of a file of `size` bytes. */
export const sealedSize = (fileId: string, size: number) => size + chunkCount(size) * overhead(fileId)

const aad = (fileId: string, index: number, last: boolean) => `${fileId}:${index}:${last ? 1 : 0}`

/** A new random file key. */
export const newKey = (): Uint8Array => NodeCrypto.randomBytes(32)

/** Encrypt the file at `from` (of `size` bytes) into `to`, chunk by chunk. */
export const encryptFile = async (raw: Uint8Array, fileId: string, size: number, from: string, to: string): Promise<void> => {
  const key = NodeCrypto.createSecretKey(raw)
  const last = chunkCount(size) - 1
  let index = 0
  let pending: Buffer = Buffer.alloc(0)
  const seal = (bytes: Uint8Array) => {
    const sealed = KeyRing.seal(key, fileId, bytes, aad(fileId, index, index === last))
    index++
    return sealed
  }
  const chunker = new Transform({
    transform(piece: Buffer, _enc: BufferEncoding, callback: TransformCallback) {
      pending = pending.byteLength === 0 ? piece : Buffer.concat([pending, piece])
      while (pending.byteLength >= chunkSize && index < last) {
        this.push(seal(pending.subarray(0, chunkSize)))
        pending = pending.subarray(chunkSize)
      }
      callback()
    },
    flush(callback: TransformCallback) {
      while (index < last) {
        this.push(seal(pending.subarray(0, chunkSize)))
        pending = pending.subarray(chunkSize)
      }
      this.push(seal(pending))
      callback()
    }
  })
  await pipeline(NodeFs.createReadStream(from, { highWaterMark: chunkSize }), chunker, NodeFs.createWriteStream(to))
}

/** The ciphertext bytes (inclusive) holding plaintext bytes `start..end` of a file of `size` bytes. */
export const sealedRange = (fileId: string, size: number, start: number, end: number) => {
  const block = chunkSize + overhead(fileId)
  const first = Math.floor(start / chunkSize)
  const lastChunk = Math.floor(Math.max(end, 0) / chunkSize)
  return { first, start: first * block, end: Math.min(sealedSize(fileId, size), (lastChunk + 1) * block) - 1 }
}

/**
 * Decrypt sealed chunks starting at chunk `first` and pass on plaintext bytes `start..end`
 * (inclusive, in file positions) of a file of `size` bytes. Fails the stream on any tampering.
 */
export const decryptStream = (raw: Uint8Array, fileId: string, size: number, first: number, start: number, end: number): Transform => {
  const key = NodeCrypto.createSecretKey(raw)
  const block = chunkSize + overhead(fileId)
  const last = chunkCount(size) - 1
  let index = first
  let pending: Buffer = Buffer.alloc(0)
  const emit = (stream: Transform, sealed: Uint8Array) => {
    const plain = KeyRing.open(key, sealed, aad(fileId, index, index === last))
    const offset = index * chunkSize
    index++
    const from = Math.max(0, start - offset)
    const to = Math.min(plain.byteLength, end - offset + 1)
    if (to > from) stream.push(plain.subarray(from, to))
  }
  return new Transform({
    transform(piece: Buffer, _enc, callback) {
      try {
        pending = pending.byteLength === 0 ? piece : Buffer.concat([pending, piece])
        while (pending.byteLength >= block && index <= last) {
          emit(this, pending.subarray(0, block))
          pending = pending.subarray(block)
        }
        callback()
      } catch {
        callback(new Error("the stored file does not decrypt (tampered or wrong key)"))
      }
    },
    flush(callback) {
      try {
        if (pending.byteLength > 0) emit(this, pending)
        callback()
      } catch {
        callback(new Error("the stored file does not decrypt (tampered or wrong key)"))
      }
    }
  })
}
