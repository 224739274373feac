/**
 * The default engine: libvips compiled to WebAssembly (wasm-vips). Shrink-on-load thumbnails, EXIF
 * auto-rotation, CMYK → sRGB, 16-bit, first frame of GIF/WebP animations, AVIF/HEIF via the heif module.
 */
import Vips from "wasm-vips"
import { EngineFailure, type ImageEngine, type ProbeInfo, type TransformParams } from "./Engine.ts"

type VipsModule = Awaited<ReturnType<typeof Vips>>
type Image = InstanceType<VipsModule["Image"]>

const LOADERS: Record<string, string> = {
  jpegload_buffer: "jpeg",
  pngload_buffer: "png",
  webpload_buffer: "webp",
  gifload_buffer: "gif",
  heifload_buffer: "heif",
  tiffload_buffer: "tiff",
  jxlload_buffer: "jxl"
}

const UNBOUNDED = 10_000_000

const messageOf = (e: unknown): string => {
  // wasm-vips throws a WebAssembly.Exception whose `message` is [type, text].
  const raw = typeof e === "object" && e !== null && "message" in e ? (e as { message: unknown }).message : e
  const text = Array.isArray(raw) ? String(raw[raw.length - 1]) : String(raw)
  return text.replace(/^vips::Error,?\s*/, "").split("\n").filter((l) => l.trim().length > 0).slice(0, 3).join("; ").slice(0, 300)
}

/** Load wasm-vips (one instance per worker) and build the engine. */
export const make = async (): Promise<ImageEngine<Image>> => {
  const vips = await Vips({
    dynamicLibraries: ["vips-heif.wasm"],
    print: () => {},
    printErr: () => {},
    preRun: [(module: { ENV: Record<string, string> }) => {
      module.ENV["VIPS_WARNING"] = "0"
    }]
  })
  vips.concurrency(1)
  vips.Cache.max(0)

  const load = (input: Uint8Array, access: "sequential" | "random"): Image => {
    try {
      return vips.Image.newFromBuffer(input, "", { access, fail_on: "none" })
    } catch (e) {
      throw new EngineFailure("unsupported_format", `not a decodable image: ${messageOf(e)}`)
    }
  }

  const probe = (input: Uint8Array): ProbeInfo => {
    const image = load(input, "sequential")
    try {
      const loader = image.getString("vips-loader")
      const format = LOADERS[loader]
      if (!format) throw new EngineFailure("unsupported_format", `unsupported image format (${loader.replace(/load.*$/, "")})`)
      const frames = image.getTypeof("n-pages") !== 0 ? image.getInt("n-pages") : 1
      return { format, width: image.width, height: image.height, frames, hasAlpha: image.hasAlpha() }
    } finally {
      image.delete()
    }
  }

  const decodeResize = async (input: Uint8Array, _probe: ProbeInfo, params: TransformParams): Promise<Image> => {
    let image: Image
    try {
      image = vips.Image.thumbnailBuffer(input, params.maxWidth > 0 ? params.maxWidth : UNBOUNDED, {
        height: params.maxHeight > 0 ? params.maxHeight : UNBOUNDED,
        size: "down",
        fail_on: "none"
      })
    } catch (e) {
      throw new EngineFailure("decode_failed", `could not decode the image: ${messageOf(e)}`)
    }
    return image
  }

  const encode = async (decoded: Image, params: TransformParams) => {
    const owned: Array<Image> = [decoded]
    const step = (next: Image) => {
      owned.push(next)
      return next
    }
    try {
      let image = decoded
      if (image.interpretation !== "srgb" || image.format !== "uchar") image = step(image.colourspace("srgb"))
      if (image.format !== "uchar") image = step(image.cast("uchar"))
      if (params.format === "jpeg" && image.hasAlpha()) image = step(image.flatten({ background: [255, 255, 255] }))
      let bytes: Uint8Array
      switch (params.format) {
        case "jpeg":
          bytes = image.writeToBuffer(".jpg", { Q: params.quality, keep: "none", optimize_coding: true, subsample_mode: "auto" })
          break
        case "webp":
          bytes = image.writeToBuffer(".webp", { Q: params.quality, keep: "none", effort: 2 })
          break
        case "png":
          bytes = image.writeToBuffer(".png", { compression: 6, keep: "none", effort: 3 })
          break
      }
      return { bytes: new Uint8Array(bytes), width: image.width, height: image.height }
    } catch (e) {
      if (e instanceof EngineFailure) throw e
      throw new EngineFailure("decode_failed", `could not process the image: ${messageOf(e)}`)
    } finally {
      for (const image of owned) image.delete()
    }
  }

  return { name: "vips", probe, decodeResize, encode }
}
