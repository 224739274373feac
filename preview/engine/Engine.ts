/**
 * The image engine contract: probe (header only), decode + resize, encode. Two implementations run
 * inside the worker pool: wasm-vips (`VipsEngine.ts`, the default) and @jsquash (`JsquashEngine.ts`).
 * Engines throw `EngineFailure`; the worker turns it into a typed reply.
 */

/** Engines the pool can run. */
export type EngineName = "vips" | "jsquash"

/** Encodings we produce. */
export type OutputFormat = "jpeg" | "webp" | "png"

/** Machine-readable reasons an engine refuses or fails an image. */
export type EngineFailureCode =
  | "unsupported_format"
  | "unsupported_color_space"
  | "image_too_large"
  | "too_many_frames"
  | "decode_failed"
  | "encode_failed"

/** A refusal or failure inside an engine; `recycle` asks the pool to replace the worker. */
export class EngineFailure extends Error {
  constructor(readonly code: EngineFailureCode, message: string, readonly recycle = false) {
    super(message)
  }
}

/** What an engine learns from the header, before decoding pixels. */
export interface ProbeInfo {
  readonly format: string
  readonly width: number
  readonly height: number
  readonly frames: number
  readonly hasAlpha: boolean
}

/** Limits checked before decoding. */
export interface Limits {
  readonly maxPixels: number
  readonly maxFrames: number
}

/** What to produce. `0` for a dimension means no limit; never upscales. */
export interface TransformParams {
  readonly maxWidth: number
  readonly maxHeight: number
  readonly quality: number
  readonly format: OutputFormat
}

/** The encoded result. */
export interface TransformResult {
  readonly bytes: Uint8Array
  readonly width: number
  readonly height: number
  readonly format: OutputFormat
  readonly source: { readonly format: string; readonly width: number; readonly height: number; readonly frames: number }
}

/** One engine, parameterised by its decoded image representation. */
export interface ImageEngine<Decoded> {
  readonly name: EngineName
  /** Header only: format, dimensions, frames. Throws `EngineFailure` for unsupported input. */
  readonly probe: (input: Uint8Array) => ProbeInfo
  /** Decode the first frame, honour EXIF orientation, convert to 8-bit sRGB and fit within the box. */
  readonly decodeResize: (input: Uint8Array, probe: ProbeInfo, params: TransformParams) => Promise<Decoded>
  /** Encode (flattening alpha onto white for JPEG) and release the decoded image. */
  readonly encode: (decoded: Decoded, params: TransformParams) => Promise<{ bytes: Uint8Array; width: number; height: number }>
}

/** Probe, enforce the limits, refuse incomplete files, decode+resize and encode. */
export const transform = async <D>(engine: ImageEngine<D>, input: Uint8Array, params: TransformParams, limits: Limits): Promise<TransformResult> => {
  const probe = engine.probe(input)
  checkLimits(probe, limits)
  checkComplete(probe.format, input)
  const decoded = await engine.decodeResize(input, probe, params)
  const out = await engine.encode(decoded, params)
  return { ...out, format: params.format, source: { format: probe.format, width: probe.width, height: probe.height, frames: probe.frames } }
}

/** Refuse pixel bombs and frame bombs from the header. */
export const checkLimits = (probe: Pick<ProbeInfo, "width" | "height" | "frames">, limits: Limits): void => {
  if (probe.width <= 0 || probe.height <= 0) throw new EngineFailure("decode_failed", "image has no pixels")
  if (probe.width * probe.height > limits.maxPixels) {
    throw new EngineFailure("image_too_large", `image is ${probe.width}x${probe.height} (${Math.round(probe.width * probe.height / 1e6)} MP); the limit is ${Math.round(limits.maxPixels / 1e6)} MP`)
  }
  if (probe.frames > limits.maxFrames) throw new EngineFailure("too_many_frames", `image has ${probe.frames} frames; the limit is ${limits.maxFrames}`)
}

const ascii = (b: Uint8Array, at: number, length: number) => String.fromCharCode(...b.subarray(at, at + length))

/** The image format the first bytes announce (JPEG, PNG, WebP, GIF), if any. */
export const magicFormat = (b: Uint8Array): "jpeg" | "png" | "webp" | "gif" | undefined => {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg"
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "png"
  if (b.length >= 12 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP") return "webp"
  if (b.length >= 6 && ascii(b, 0, 3) === "GIF") return "gif"
  return undefined
}

const lastIndexOfPair = (b: Uint8Array, first: number, second: number): number => {
  for (let i = b.byteLength - 2; i >= 0; i--) if (b[i] === first && b[i + 1] === second) return i
  return -1
}

/**
 * Refuse a file that ends before its image does (a cut-off download or upload), which decoders
 * would otherwise fill with grey: a JPEG's last scan must be followed by its end marker (`FF D9`
 * cannot occur inside entropy-coded data), a PNG needs its `IEND` chunk, a WebP its whole RIFF
 * body, a GIF its trailer. Formats without a cheap structural end (HEIF, TIFF, JXL) are left to
 * the decoder.
 */
export const checkComplete = (format: string, b: Uint8Array): void => {
  const truncated = () => {
    throw new EngineFailure("decode_failed", `the ${format.toUpperCase()} file is truncated (it ends before the image does)`)
  }
  switch (format) {
    case "jpeg": {
      const lastScan = lastIndexOfPair(b, 0xff, 0xda)
      if (lastScan < 0 || lastIndexOfPair(b, 0xff, 0xd9) < lastScan) truncated()
      return
    }
    case "png": {
      // IEND is the last chunk: length 0, type, CRC; allow trailing bytes after it
      let found = false
      for (let i = b.byteLength - 8; i >= 8 && i >= b.byteLength - 4096; i--) {
        if (b[i] === 0x49 && b[i + 1] === 0x45 && b[i + 2] === 0x4e && b[i + 3] === 0x44) {
          found = true
          break
        }
      }
      if (!found) truncated()
      return
    }
    case "webp": {
      if (b.byteLength < 12 || ascii(b, 0, 4) !== "RIFF") truncated()
      const size = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4, true)
      if (size + 8 > b.byteLength) truncated()
      return
    }
    case "gif": {
      // the trailer (0x3B) ends the stream; some encoders add padding after it
      let end = b.byteLength - 1
      while (end > 0 && b[end] === 0x00) end--
      if (b[end] !== 0x3b) truncated()
      return
    }
  }
}

/** The largest size fitting `max` (0 = unbounded) keeping the aspect ratio, never upscaling. */
export const fitWithin = (width: number, height: number, maxWidth: number, maxHeight: number): { width: number; height: number } => {
  const sx = maxWidth > 0 ? maxWidth / width : Infinity
  const sy = maxHeight > 0 ? maxHeight / height : Infinity
  const scale = Math.min(1, sx, sy)
  if (scale >= 1) return { width, height }
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) }
}
