/**
 * The default engine: libvips compiled to WebAssembly (wasm-vips). Shrink-on-load thumbnails, EXIF
 * auto-rotation, CMYK → sRGB, 16-bit, first frame of GIF/WebP animations, AVIF/HEIF via the heif module.
 * Decoding fails on the decoder's first warning (`fail_on=warning`, sharp's default): a corrupt
 * image is refused, never served half-decoded.
 */
import Vips from "wasm-vips"
import { EngineFailure, type ImageEngine, magicFormat, type ProbeInfo, type TransformParams } from "./Engine.ts"

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

/**
 * The JPEG decoder's own shrink (1, 2, 4 or 8) for a resize into the params' box: the largest that
 * keeps the image at least as large as the result, whichever way EXIF turns it. libvips' thumbnail
 * keeps a 2× margin here and so decodes 4× the pixels sharp does; decoding in the DCT at the full
 * factor is what sharp does by default (`fastShrinkOnLoad`) and costs ~35 % less CPU per image.
 */
export const jpegShrink = (probe: Pick<ProbeInfo, "width" | "height">, params: Pick<TransformParams, "maxWidth" | "maxHeight">): number => {
  const factor = (w: number, h: number) =>
    Math.max(params.maxWidth > 0 ? w / params.maxWidth : 0, params.maxHeight > 0 ? h / params.maxHeight : 0)
  const scale = Math.min(factor(probe.width, probe.height), factor(probe.height, probe.width))
  return scale >= 8 ? 8 : scale >= 4 ? 4 : scale >= 2 ? 2 : 1
}

/** The size of a `w`×`h` image fitted into the params' box (never larger), the limiting side exact. */
export const fitInto = (w: number, h: number, params: Pick<TransformParams, "maxWidth" | "maxHeight">): readonly [number, number] => {
  const byWidth = params.maxWidth > 0 ? w / params.maxWidth : 0
  const byHeight = params.maxHeight > 0 ? h / params.maxHeight : 0
  if (Math.max(byWidth, byHeight) <= 1) return [w, h]
  return byWidth >= byHeight
    ? [params.maxWidth, Math.max(1, Math.round(h / byWidth))]
    : [Math.max(1, Math.round(w / byHeight)), params.maxHeight]
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
      // a file that starts like an image we read but does not load is broken, not of another kind
      if (magicFormat(input) !== undefined) throw new EngineFailure("decode_failed", `the image is corrupt: ${messageOf(e)}`)
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

  const decodeResize = async (input: Uint8Array, probe: ProbeInfo, params: TransformParams): Promise<Image> => {
    const width = params.maxWidth > 0 ? params.maxWidth : UNBOUNDED
    const shrink = probe.format === "jpeg" ? jpegShrink(probe, params) : 1
    try {
      if (shrink === 1) {
        return vips.Image.thumbnailBuffer(input, width, { height: params.maxHeight > 0 ? params.maxHeight : UNBOUNDED, size: "down", option_string: "fail_on=warning" })
      }
      // let the JPEG decoder scale down in the DCT (as sharp's fastShrinkOnLoad does), then resize
      const loaded = vips.Image.newFromBuffer(input, `shrink=${shrink}`, { access: "sequential", fail_on: "warning" })
      try {
        // the decoder rounds the shrunk size up, so the result's size comes from the original's,
        // the way EXIF turns it (thumbnail rotates, and its target is the rotated image)
        const orientation = loaded.getTypeof("orientation") !== 0 ? loaded.getInt("orientation") : 1
        const [w, h] = orientation >= 5 && orientation <= 8 ? [probe.height, probe.width] : [probe.width, probe.height]
        const [tw, th] = fitInto(w, h, params)
        return loaded.thumbnailImage(tw, { height: th, size: "force" })
      } finally {
        loaded.delete()
      }
    } catch (e) {
      throw new EngineFailure("decode_failed", `could not decode the image: ${messageOf(e)}`)
    }
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
