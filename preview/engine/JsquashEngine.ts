/**
 * The alternative engine: Squoosh's codecs packaged by @jsquash (MozJPEG, libwebp, the Rust PNG
 * codec and resizer). JPEG, PNG and still WebP only; CMYK JPEGs and animations are refused from the
 * header (the codec would abort with an emscripten `ExitStatus`). Each codec is initialised with its
 * compiled module (the default loaders fetch `file:` URLs, which fails in Node).
 */
import * as jpegDecode from "@jsquash/jpeg/decode.js"
import * as jpegEncode from "@jsquash/jpeg/encode.js"
import * as pngDecode from "@jsquash/png/decode.js"
import * as pngEncode from "@jsquash/png/encode.js"
import * as resizeModule from "@jsquash/resize"
import * as webpDecode from "@jsquash/webp/decode.js"
import * as webpEncode from "@jsquash/webp/encode.js"
import { imageSize } from "image-size"
import * as NodeFs from "node:fs/promises"
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import { EngineFailure, fitWithin, type ImageEngine, magicFormat as sniff, type ProbeInfo, type TransformParams } from "./Engine.ts"

interface Pixels {
  readonly data: Uint8ClampedArray
  readonly width: number
  readonly height: number
}

/** Node has no `ImageData`; the codecs construct it. */
class ImageDataShim implements Pixels {
  readonly colorSpace = "srgb"
  constructor(readonly data: Uint8ClampedArray, readonly width: number, readonly height: number) {}
}

const installImageData = () => {
  const g = globalThis as { ImageData?: unknown }
  if (g.ImageData === undefined) g.ImageData = ImageDataShim
}

const asImageData = (p: Pixels): ImageData => p as unknown as ImageData

const compile = async (pkg: string, file: string): Promise<WebAssembly.Module> => {
  const require = createRequire(import.meta.url)
  const root = NodePath.dirname(require.resolve(`${pkg}/package.json`))
  return WebAssembly.compile(await NodeFs.readFile(NodePath.join(root, file)))
}

/** Number of colour components of a JPEG's frame (3 = YCbCr, 1 = grey, 4 = CMYK/YCCK). */
const jpegComponents = (b: Uint8Array): number | undefined => {
  let i = 2
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) {
      i++
      continue
    }
    const marker = b[i + 1]!
    if (marker === 0xff) {
      i++
      continue
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2
      continue
    }
    const length = (b[i + 2]! << 8) | b[i + 3]!
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc
    if (isSof) return b[i + 9]
    if (marker === 0xda || marker === 0xd9) return undefined
    i += 2 + length
  }
  return undefined
}

/** WebP with the animation flag in its VP8X chunk. */
const webpAnimated = (b: Uint8Array): boolean =>
  b.length >= 21 && String.fromCharCode(...b.subarray(12, 16)) === "VP8X" && (b[20]! & 0x02) !== 0

const webpAlpha = (b: Uint8Array): boolean =>
  b.length >= 21 && (String.fromCharCode(...b.subarray(12, 16)) === "VP8L" || (String.fromCharCode(...b.subarray(12, 16)) === "VP8X" && (b[20]! & 0x10) !== 0))

/** Shrink by an integer factor with a box filter (cheap pre-shrink before the Lanczos pass). */
const boxShrink = (src: Pixels, factor: number): Pixels => {
  const width = Math.floor(src.width / factor)
  const height = Math.floor(src.height / factor)
  const out = new Uint8ClampedArray(width * height * 4)
  const sums = new Uint32Array(width * 4)
  const area = factor * factor
  const rowStride = src.width * 4
  for (let y = 0; y < height; y++) {
    sums.fill(0)
    for (let dy = 0; dy < factor; dy++) {
      const row = (y * factor + dy) * rowStride
      for (let x = 0; x < width; x++) {
        let p = row + x * factor * 4
        const o = x * 4
        for (let dx = 0; dx < factor; dx++, p += 4) {
          sums[o] += src.data[p]!
          sums[o + 1] += src.data[p + 1]!
          sums[o + 2] += src.data[p + 2]!
          sums[o + 3] += src.data[p + 3]!
        }
      }
    }
    const base = y * width * 4
    for (let i = 0; i < width * 4; i++) out[base + i] = (sums[i]! + (area >> 1)) / area
  }
  return new ImageDataShim(out, width, height)
}

const flattenOnWhite = (p: Pixels): Pixels => {
  const d = p.data
  let opaque = true
  for (let i = 3; i < d.length; i += 4) {
    if (d[i] !== 255) {
      opaque = false
      break
    }
  }
  if (opaque) return p
  const out = new Uint8ClampedArray(d.length)
  for (let i = 0; i < d.length; i += 4) {
    const a = d[i + 3]!
    const inv = 255 - a
    out[i] = (d[i]! * a + 255 * inv + 127) / 255
    out[i + 1] = (d[i + 1]! * a + 255 * inv + 127) / 255
    out[i + 2] = (d[i + 2]! * a + 255 * inv + 127) / 255
    out[i + 3] = 255
  }
  return new ImageDataShim(out, p.width, p.height)
}

const messageOf = (e: unknown): string => {
  if (e instanceof Error) return e.message
  if (typeof e === "object" && e !== null && "message" in e) return String((e as { message: unknown }).message)
  return String(e)
}

/** An emscripten abort (`ExitStatus`) leaves the codec's heap in an unknown state: recycle the worker. */
const isAbort = (e: unknown): boolean =>
  typeof e === "object" && e !== null && ((e as { name?: unknown }).name === "ExitStatus" || (e as { constructor?: { name?: string } }).constructor?.name === "ExitStatus" || e instanceof WebAssembly.RuntimeError)

/** Initialise every codec with its compiled module and build the engine. */
export const make = async (): Promise<ImageEngine<Pixels>> => {
  installImageData()
  // The emscripten codecs take (module, overrides) at run time; their typings only declare overrides.
  type EmscriptenInit = (module: WebAssembly.Module, overrides: object) => Promise<unknown>
  const quiet = { print: () => {}, printErr: () => {} }
  // MozJPEG reports corrupt data as warnings on stderr and decodes on (grey or garbled blocks):
  // keep them, so a corrupt JPEG is refused as libvips (fail_on=warning) and sharp refuse it
  const jpegWarnings: Array<string> = []
  const listening = { print: () => {}, printErr: (line: string) => void (jpegWarnings.length < 10 && jpegWarnings.push(String(line))) }
  await (jpegDecode.init as unknown as EmscriptenInit)(await compile("@jsquash/jpeg", "codec/dec/mozjpeg_dec.wasm"), listening)
  await (jpegEncode.init as unknown as EmscriptenInit)(await compile("@jsquash/jpeg", "codec/enc/mozjpeg_enc.wasm"), quiet)
  await (webpDecode.init as unknown as EmscriptenInit)(await compile("@jsquash/webp", "codec/dec/webp_dec.wasm"), quiet)
  await (webpEncode.init as unknown as EmscriptenInit)(await compile("@jsquash/webp", "codec/enc/webp_enc_simd.wasm"), quiet)
  await pngDecode.init(await compile("@jsquash/png", "codec/pkg/squoosh_png_bg.wasm"))
  await pngEncode.init(await compile("@jsquash/png", "codec/pkg/squoosh_png_bg.wasm"))
  await resizeModule.initResize(await compile("@jsquash/resize", "lib/resize/pkg/squoosh_resize_bg.wasm"))

  const probe = (input: Uint8Array): ProbeInfo => {
    const format = sniff(input)
    if (format === undefined || format === "gif") {
      throw new EngineFailure("unsupported_format", `unsupported image format for the jsquash engine${format ? ` (${format})` : ""}`)
    }
    let size: { width?: number; height?: number }
    try {
      size = imageSize(input)
    } catch (e) {
      throw new EngineFailure("decode_failed", `unreadable ${format} header: ${messageOf(e)}`)
    }
    if (!size.width || !size.height) throw new EngineFailure("decode_failed", `unreadable ${format} header`)
    if (format === "jpeg") {
      const components = jpegComponents(input)
      if (components === undefined) throw new EngineFailure("decode_failed", "JPEG has no frame header")
      if (components === 4) throw new EngineFailure("unsupported_color_space", "CMYK JPEGs are not supported by the jsquash engine")
    }
    if (format === "webp" && webpAnimated(input)) throw new EngineFailure("unsupported_format", "animated WebP is not supported by the jsquash engine")
    const hasAlpha = format === "png" ? input[25] === 4 || input[25] === 6 || input[25] === 3 : format === "webp" ? webpAlpha(input) : false
    return { format, width: size.width, height: size.height, frames: 1, hasAlpha }
  }

  const decodeResize = async (input: Uint8Array, probe: ProbeInfo, params: TransformParams): Promise<Pixels> => {
    const buffer = input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength) as ArrayBuffer
    let decoded: Pixels
    jpegWarnings.length = 0
    try {
      decoded = probe.format === "jpeg"
        ? await jpegDecode.default(buffer, { preserveOrientation: true })
        : probe.format === "png"
        ? await pngDecode.decode(buffer)
        : await webpDecode.default(buffer)
    } catch (e) {
      throw new EngineFailure("decode_failed", `could not decode the image: ${messageOf(e)}`, isAbort(e))
    }
    const corrupt = jpegWarnings.find((w) => /corrupt|premature|bogus|invalid/i.test(w))
    if (corrupt !== undefined) throw new EngineFailure("decode_failed", `the image is corrupt: ${corrupt.trim().slice(0, 200)}`)
    const target = fitWithin(decoded.width, decoded.height, params.maxWidth, params.maxHeight)
    if (target.width === decoded.width && target.height === decoded.height) return decoded
    const factor = Math.floor(Math.min(decoded.width / target.width, decoded.height / target.height) / 2)
    const shrunk = factor >= 2 ? boxShrink(decoded, factor) : decoded
    try {
      return await resizeModule.default(asImageData(shrunk), {
        width: target.width,
        height: target.height,
        method: "lanczos3",
        fitMethod: "stretch",
        premultiply: true,
        linearRGB: false
      })
    } catch (e) {
      throw new EngineFailure("decode_failed", `could not resize the image: ${messageOf(e)}`, isAbort(e))
    }
  }

  const encode = async (decoded: Pixels, params: TransformParams) => {
    try {
      let bytes: ArrayBuffer
      switch (params.format) {
        case "jpeg":
          bytes = await jpegEncode.default(asImageData(flattenOnWhite(decoded)), {
            quality: params.quality,
            progressive: false,
            optimize_coding: true,
            trellis_loops: 1,
            trellis_multipass: false,
            trellis_opt_zero: false,
            trellis_opt_table: false
          })
          break
        case "webp":
          bytes = await webpEncode.default(asImageData(decoded), { quality: params.quality, method: 2 })
          break
        case "png":
          bytes = await pngEncode.default(asImageData(decoded))
          break
      }
      return { bytes: new Uint8Array(bytes), width: decoded.width, height: decoded.height }
    } catch (e) {
      throw new EngineFailure("encode_failed", `could not encode the image: ${messageOf(e)}`, isAbort(e))
    }
  }

  return { name: "jsquash", probe, decodeResize, encode }
}
