/**
 * PDFs: the harmful-content checks (pdf-lib: encryption, JavaScript, launch actions, page count)
 * and what a PDF gives back (page 1 rendered by @hyzyla/pdfium as a PNG, and the pages' text).
 */
import { PDFiumLibrary } from "@hyzyla/pdfium"
import { PDFArray, PDFDict, PDFDocument, PDFName, PDFRef, PDFStream } from "pdf-lib"
import * as NodeZlib from "node:zlib"

/** Why a PDF is refused. */
export type PdfRefusal =
  | { readonly code: "pdf_encrypted"; readonly message: string }
  | { readonly code: "pdf_javascript"; readonly message: string }
  | { readonly code: "pdf_launch_action"; readonly message: string }
  | { readonly code: "pdf_too_many_pages"; readonly message: string }
  | { readonly code: "pdf_invalid"; readonly message: string }

const JavaScript = PDFName.of("JavaScript")
const JS = PDFName.of("JS")
const Launch = PDFName.of("Launch")
const S = PDFName.of("S")

/** Every dictionary of the document (streams' dictionaries too). */
function* dictionaries(doc: PDFDocument): Generator<PDFDict> {
  for (const [, object] of doc.context.enumerateIndirectObjects()) {
    if (object instanceof PDFDict) yield object
    else if (object instanceof PDFStream) yield object.dict
  }
}

/** Look for actions that run code or programs anywhere in the document (catalog, pages, annotations, outlines, forms). */
const findActive = (doc: PDFDocument): PdfRefusal | undefined => {
  const check = (dict: PDFDict): PdfRefusal | undefined => {
    const kind = dict.get(S)
    if (kind === JavaScript || dict.has(JS)) return { code: "pdf_javascript", message: "the PDF carries JavaScript" }
    if (kind === Launch) return { code: "pdf_launch_action", message: "the PDF carries a launch action (it would start a program)" }
    if (dict.has(JavaScript)) return { code: "pdf_javascript", message: "the PDF carries JavaScript (document-level scripts)" }
    return undefined
  }
  for (const dict of dictionaries(doc)) {
    const found = check(dict)
    if (found) return found
  }
  // direct (not indirect) action dictionaries inside the catalog's and pages' entries
  const visit = (value: unknown, depth: number): PdfRefusal | undefined => {
    if (depth > 8) return undefined
    if (value instanceof PDFDict) {
      const found = check(value)
      if (found) return found
      for (const [, v] of value.entries()) {
        if (v instanceof PDFRef) continue
        const inner = visit(v, depth + 1)
        if (inner) return inner
      }
    } else if (value instanceof PDFArray) {
      for (const v of value.asArray()) {
        if (v instanceof PDFRef) continue
        const inner = visit(v, depth + 1)
        if (inner) return inner
      }
    }
    return undefined
  }
  for (const dict of dictionaries(doc)) {
    const found = visit(dict, 0)
    if (found) return found
  }
  return undefined
}

/** Check a PDF; undefined when it may be kept. */
export const check = async (bytes: Uint8Array, maxPages: number): Promise<PdfRefusal | undefined> => {
  let doc: PDFDocument
  try {
    doc = await PDFDocument.load(bytes, { ignoreEncryption: true, updateMetadata: false, throwOnInvalidObject: false })
  } catch (e) {
    return { code: "pdf_invalid", message: `the PDF could not be read: ${e instanceof Error ? e.message.slice(0, 200) : "unknown error"}` }
  }
  try {
    if (doc.isEncrypted) return { code: "pdf_encrypted", message: "the PDF is encrypted (password-protected PDFs are not accepted)" }
    const pages = doc.getPageCount()
    if (pages > maxPages) return { code: "pdf_too_many_pages", message: `the PDF has ${pages} pages; the limit is ${maxPages}` }
    if (pages === 0) return { code: "pdf_invalid", message: "the PDF has no pages" }
    return findActive(doc)
  } catch (e) {
    return { code: "pdf_invalid", message: `the PDF could not be read: ${e instanceof Error ? e.message.slice(0, 200) : "unknown error"}` }
  }
}

let library: Promise<PDFiumLibrary> | undefined
const pdfium = () => (library ??= PDFiumLibrary.init())

const crcTable = (() => {
  const table = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c
  }
  return table
})()

const crc32 = (parts: ReadonlyArray<Uint8Array>) => {
  let c = -1
  for (const p of parts) for (let i = 0; i < p.length; i++) c = crcTable[(c ^ p[i]!) & 0xff]! ^ (c >>> 8)
  return (c ^ -1) >>> 0
}

const chunk = (type: string, data: Uint8Array) => {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.byteLength, 0)
  head.write(type, 4, "ascii")
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32([head.subarray(4), data]))
  return Buffer.concat([head, data, crc])
}

/** RGBA pixels as a PNG (the image pool then makes the WebP preview from it). */
export const rgbaToPng = (rgba: Uint8Array, width: number, height: number): Uint8Array => {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8
  ihdr[9] = 6
  const stride = width * 4
  const raw = Buffer.alloc((stride + 1) * height)
  for (let y = 0; y < height; y++) raw.set(rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1)
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", NodeZlib.deflateSync(raw, { level: 3 })),
    chunk("IEND", new Uint8Array())
  ])
}

/** Page 1 as a PNG within `size`×`size`, and the text of the first pages (at most `maxChars`). */
export const render = async (bytes: Uint8Array, size: number, maxChars: number): Promise<{ readonly png: Uint8Array; readonly text: string; readonly pages: number }> => {
  const lib = await pdfium()
  const doc = await lib.loadDocument(bytes)
  try {
    const pages = doc.getPageCount()
    const page = doc.getPage(0)
    const { originalWidth, originalHeight } = page.getOriginalSize()
    const scale = Math.min(4, size / Math.max(originalWidth, originalHeight, 1))
    const rendered = await page.render({ scale, render: "bitmap" })
    const png = rgbaToPng(rendered.data, rendered.width, rendered.height)
    let text = ""
    for (let i = 0; i < pages && text.length < maxChars; i++) {
      const pageText = doc.getPage(i).getText().replace(/\r\n?/g, "\n").trim()
      if (pageText.length > 0) text += (text.length > 0 ? "\n\n" : "") + pageText
    }
    return { png, text: text.slice(0, maxChars), pages }
  } finally {
    doc.destroy()
  }
}
