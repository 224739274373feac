/**
 * What a file is, decided from its bytes (`file-type`, then a UTF-8 check for text), never from its
 * name or declared type — those only have to agree with it. The allowlist, and the refusals that
 * have their own codes: SVG, archives, executables, a declared type or extension that disagrees.
 */
import { fileTypeFromFile } from "file-type"
import { imageSize } from "image-size"
import * as NodeFs from "node:fs"
import * as NodeFsP from "node:fs/promises"

/** What an accepted file is. */
export type Kind = "image" | "pdf" | "text" | "audio"

/** An accepted type. */
export interface Sniffed {
  readonly kind: Kind
  readonly mime: string
}

/** A refusal with its machine-readable code and HTTP status. */
export interface Refusal {
  readonly status: number
  readonly code: string
  readonly message: string
}

const allowed: Record<string, Sniffed> = {
  "image/jpeg": { kind: "image", mime: "image/jpeg" },
  "image/png": { kind: "image", mime: "image/png" },
  "image/webp": { kind: "image", mime: "image/webp" },
  "image/gif": { kind: "image", mime: "image/gif" },
  "application/pdf": { kind: "pdf", mime: "application/pdf" },
  "audio/mpeg": { kind: "audio", mime: "audio/mpeg" },
  "audio/wav": { kind: "audio", mime: "audio/wav" },
  "audio/ogg": { kind: "audio", mime: "audio/ogg" },
  "audio/opus": { kind: "audio", mime: "audio/ogg" },
  "audio/flac": { kind: "audio", mime: "audio/flac" },
  "audio/x-flac": { kind: "audio", mime: "audio/flac" },
  "audio/aac": { kind: "audio", mime: "audio/aac" },
  "audio/mp4": { kind: "audio", mime: "audio/mp4" },
  "audio/x-m4a": { kind: "audio", mime: "audio/mp4" },
  "audio/webm": { kind: "audio", mime: "audio/webm" }
}

const archives = new Set(["zip", "rar", "7z", "gz", "bz2", "xz", "tar", "zst", "lz", "lzh", "cab", "ar", "cpio", "arj", "lz4", "Z", "jar", "apk", "xpi", "epub", "docx", "xlsx", "pptx", "odt", "ods", "odp", "iso", "dmg", "vhd", "asar"])
const executables = new Set(["exe", "elf", "macho", "mach-o", "msi", "deb", "rpm", "class", "wasm", "swf", "dex", "dll", "com", "lnk", "pyc", "crx", "chm"])

/** Common spellings of a declared type, reduced to one. */
const aliases: Record<string, string> = {
  "image/jpg": "image/jpeg",
  "image/pjpeg": "image/jpeg",
  "audio/mp3": "audio/mpeg",
  "audio/x-wav": "audio/wav",
  "audio/wave": "audio/wav",
  "audio/vnd.wave": "audio/wav",
  "audio/x-flac": "audio/flac",
  "audio/opus": "audio/ogg",
  "audio/x-m4a": "audio/mp4",
  "audio/m4a": "audio/mp4",
  "text/x-markdown": "text/markdown"
}

/** Types a client may declare for anything (it does not know better). */
const unspecific = new Set(["", "application/octet-stream", "binary/octet-stream", "application/unknown"])

const extensionTypes: Record<string, string> = {
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  png: "image/png",
  webp: "image/webp",
  gif: "image/gif",
  pdf: "application/pdf",
  mp3: "audio/mpeg",
  wav: "audio/wav",
  ogg: "audio/ogg",
  oga: "audio/ogg",
  opus: "audio/ogg",
  flac: "audio/flac",
  m4a: "audio/mp4",
  aac: "audio/aac",
  txt: "text/plain",
  md: "text/markdown",
  markdown: "text/markdown",
  svg: "image/svg+xml",
  html: "text/html",
  htm: "text/html"
}

/** A declared content type reduced to its essence (`Image/JPG; q=1` → `image/jpeg`). */
export const normalise = (declared: string | undefined): string => {
  const essence = (declared ?? "").split(";")[0]!.trim().toLowerCase()
  return aliases[essence] ?? essence
}

const family = (mime: string) => (mime === "text/plain" || mime === "text/markdown" ? "text" : mime)

const refuse = (status: number, code: string, message: string): Refusal => ({ status, code, message })

/** Whether `path` is UTF-8 text without NUL bytes (read in pieces; never whole in memory). */
const isText = async (path: string): Promise<{ text: boolean; head: string }> => {
  const decoder = new TextDecoder("utf-8", { fatal: true })
  let head = ""
  try {
    for await (const piece of NodeFs.createReadStream(path, { highWaterMark: 256 * 1024 })) {
      const bytes = piece as Buffer
      if (bytes.includes(0)) return { text: false, head }
      const s = decoder.decode(bytes, { stream: true })
      if (head.length < 4096) head += s.slice(0, 4096 - head.length)
    }
    decoder.decode()
    return { text: true, head }
  } catch {
    return { text: false, head }
  }
}

/**
 * Sniff the file at `path`: the accepted type, or the refusal. `declared` is the Content-Type the
 * client gave (multipart part or raw body), `name` the file name.
 */
export const sniff = async (path: string, declared: string | undefined, name: string): Promise<Sniffed | Refusal> => {
  const detected = await fileTypeFromFile(path)
  let sniffed: Sniffed
  if (detected === undefined) {
    const { head, text } = await isText(path)
    if (!text) return refuse(415, "unsupported_type", "the file's type could not be recognised (accepted: JPEG, PNG, WebP, GIF, PDF, plain text, Markdown, MP3, WAV, Ogg, FLAC, AAC, M4A)")
    if (/<svg[\s>]/i.test(head) && /^\s*(?:<\?xml[^>]*>\s*)?(?:<!--[\s\S]*?-->\s*)*(?:<!doctype[^>]*>\s*)?<svg[\s>]/i.test(head)) {
      return refuse(415, "svg_refused", "SVG files are not accepted (they can carry scripts); upload a PNG instead")
    }
    const ext = name.toLowerCase().split(".").pop() ?? ""
    sniffed = { kind: "text", mime: ext === "md" || ext === "markdown" || normalise(declared) === "text/markdown" ? "text/markdown" : "text/plain" }
  } else {
    if (detected.ext === "xml" || detected.mime.includes("xml") || detected.mime === "text/html") {
      const { head } = await isText(path)
      if (/<svg[\s>]/i.test(head)) return refuse(415, "svg_refused", "SVG files are not accepted (they can carry scripts); upload a PNG instead")
    }
    if (detected.mime === "image/svg+xml" || detected.ext === "svg") return refuse(415, "svg_refused", "SVG files are not accepted (they can carry scripts); upload a PNG instead")
    if (executables.has(detected.ext) || /x-msdownload|x-executable|x-elf|x-mach-binary|x-sharedlib|vnd\.microsoft\.portable-executable/.test(detected.mime)) {
      return refuse(415, "executable_refused", `executables are not accepted (the file is ${detected.ext})`)
    }
    if (archives.has(detected.ext) || /zip|compressed|x-tar|x-7z|x-rar|gzip|x-bzip|x-xz|zstd|archive/.test(detected.mime)) {
      return refuse(415, "archive_refused", `archives are not accepted (the file is ${detected.ext})`)
    }
    const found = allowed[detected.mime]
    if (!found) return refuse(415, "unsupported_type", `files of type ${detected.mime} are not accepted`)
    sniffed = found
  }
  const claimed = normalise(declared)
  if (!unspecific.has(claimed) && family(claimed) !== family(sniffed.mime)) {
    return refuse(415, "type_mismatch", `the file was declared as ${claimed} but is ${sniffed.mime}`)
  }
  const ext = name.includes(".") ? name.toLowerCase().split(".").pop()! : ""
  const byExt = extensionTypes[ext]
  if (byExt !== undefined && family(byExt) !== family(sniffed.mime)) {
    return refuse(415, "type_mismatch", `the file is named .${ext} but is ${sniffed.mime}`)
  }
  return sniffed
}

/** Read at most `max` bytes from the start of a file. */
const head = async (path: string, max: number): Promise<Uint8Array> => {
  const handle = await NodeFsP.open(path, "r")
  try {
    const buffer = Buffer.alloc(max)
    const { bytesRead } = await handle.read(buffer, 0, max, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

/** An image's dimensions from its header (no pixels decoded); a refusal for pixel bombs and unreadable headers. */
export const checkImageHeader = async (path: string, maxPixels: number): Promise<{ readonly width: number; readonly height: number } | Refusal> => {
  // a JPEG's frame header may follow large EXIF or ICC segments
  const bytes = await head(path, 1024 * 1024)
  let size: { width?: number; height?: number; orientation?: number }
  try {
    size = imageSize(bytes)
  } catch (e) {
    return refuse(422, "image_unreadable", `the image's header could not be read: ${e instanceof Error ? e.message.slice(0, 120) : "unknown"}`)
  }
  const width = size.width ?? 0
  const height = size.height ?? 0
  if (width <= 0 || height <= 0) return refuse(422, "image_unreadable", "the image has no dimensions")
  if (width * height > maxPixels) {
    return refuse(422, "image_too_large", `the image is ${width}x${height} (${Math.round((width * height) / 1e6)} MP); the limit is ${Math.round(maxPixels / 1e6)} MP`)
  }
  return { width, height }
}

/** Whether a sniff result is a refusal. */
export const isRefusal = (r: Sniffed | Refusal | { readonly width: number } | undefined): r is Refusal => r !== undefined && "code" in r
