/** Files the uploads tests send: real images, PDFs made with pdf-lib, hostile files. */
import { PDFDocument, PDFName, PDFString, StandardFonts } from "pdf-lib"
import sharp from "sharp"
import * as NodeZlib from "node:zlib"

/** A JPEG with EXIF orientation 6 (stored 300×200, seen 200×300), a camera make and a GPS position. */
export const jpegWithGps = async (): Promise<Uint8Array> =>
  new Uint8Array(
    await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 200, g: 30, b: 30 } } })
      .jpeg({ quality: 90 })
      .withMetadata({ orientation: 6 })
      .withExifMerge({
        IFD0: { Make: "TroupeCam" },
        IFD3: { GPSLatitudeRef: "N", GPSLatitude: "48/1 51/1 2400/100", GPSLongitudeRef: "E", GPSLongitude: "2/1 21/1 700/100" }
      })
      .toBuffer()
  )

/** Whether EXIF (little-endian, as sharp writes it) has a GPS IFD pointer (tag 0x8825). */
export const hasGpsIfd = (exif: Uint8Array | undefined): boolean => exif !== undefined && Buffer.from(exif).includes(Buffer.from([0x25, 0x88]))

/** A large JPEG of noise (hard to compress): about `megapixels` MP. */
export const noisyJpeg = async (width: number, height: number): Promise<Uint8Array> =>
  new Uint8Array(await sharp({ create: { width, height, channels: 3, noise: { type: "gaussian", mean: 128, sigma: 60 } } }).jpeg({ quality: 95 }).toBuffer())

/** A small PNG. */
export const png = async (): Promise<Uint8Array> =>
  new Uint8Array(await sharp({ create: { width: 64, height: 48, channels: 4, background: { r: 0, g: 120, b: 255, alpha: 0.5 } } }).png().toBuffer())

/** A PNG whose header claims `width`×`height` (no pixels follow: a pixel bomb's header). */
export const pngBomb = (width: number, height: number): Uint8Array => {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  const ihdr = Buffer.alloc(25)
  ihdr.writeUInt32BE(13, 0)
  ihdr.write("IHDR", 4, "ascii")
  ihdr.writeUInt32BE(width, 8)
  ihdr.writeUInt32BE(height, 12)
  ihdr[16] = 8
  ihdr[17] = 2
  const idat = Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.from("IDAT"), NodeZlib.deflateSync(Buffer.alloc(2)).subarray(0, 10), Buffer.alloc(4)])
  const iend = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82])
  return new Uint8Array(Buffer.concat([signature, ihdr, idat, iend]))
}

/** A PDF with `pages` pages, the first saying `text`; `tweak` may add something hostile. */
export const pdf = async (text: string, pages = 1, tweak?: (doc: PDFDocument) => void): Promise<Uint8Array> => {
  const doc = await PDFDocument.create()
  const font = await doc.embedFont(StandardFonts.Helvetica)
  for (let i = 0; i < pages; i++) {
    const page = doc.addPage([400, 300])
    page.drawText(i === 0 ? text : `page ${i + 1}`, { x: 30, y: 200, size: 18, font })
  }
  tweak?.(doc)
  return doc.save({ useObjectStreams: false })
}

/** A PDF whose catalog opens with JavaScript. */
export const pdfWithJavaScript = () =>
  pdf("hello", 1, (doc) => {
    doc.catalog.set(PDFName.of("OpenAction"), doc.context.obj({ S: "JavaScript", JS: PDFString.of("app.alert('hi')") }))
  })

/** A PDF whose page opens with a launch action. */
export const pdfWithLaunch = () =>
  pdf("hello", 1, (doc) => {
    const action = doc.context.register(doc.context.obj({ Type: "Action", S: "Launch", F: PDFString.of("calc.exe") }))
    doc.catalog.set(PDFName.of("OpenAction"), action)
  })

/** A PDF with an encryption dictionary in its trailer. */
export const pdfEncrypted = () =>
  pdf("secret", 1, (doc) => {
    doc.context.trailerInfo.Encrypt = doc.context.register(doc.context.obj({
      Filter: "Standard",
      V: 1,
      R: 2,
      O: PDFString.of("0123456789abcdef0123456789abcdef"),
      U: PDFString.of("0123456789abcdef0123456789abcdef"),
      P: -4
    }))
  })

/** The EICAR anti-virus test string (harmless; every scanner reports it). */
export const eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
