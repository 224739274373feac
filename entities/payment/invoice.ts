/**
 * The invoice document: one A4 page made with pdf-lib (pure JavaScript, runs on Node and Deno),
 * from what the invoice row froze when the number was taken — so rendering it again (after a
 * crash, or for a download) gives the same content.
 */
import { PDFDocument, rgb, StandardFonts } from "pdf-lib"
import type { Seller } from "./config.ts"

/** The buyer as printed (kept encrypted in the invoice row). */
export interface Buyer {
  readonly name: string
  readonly email: string
  readonly userId: string
}

/** Everything on an invoice. */
export interface InvoiceData {
  readonly number: string
  readonly issuedAt: Date
  readonly seller: Seller
  readonly buyer: Buyer
  readonly paymentId: string
  readonly provider: string
  readonly providerPaymentId: string | null
  readonly packageName: string
  readonly credits: number
  readonly netCents: number
  readonly vatCents: number
  readonly grossCents: number
  readonly vatPercent: number
  readonly currency: string
}

/** Minor units as `12.34 EUR`. */
export const money = (cents: number, currency: string): string => {
  const sign = cents < 0 ? "-" : ""
  const abs = Math.abs(cents)
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")} ${currency}`
}

/** Text the standard PDF fonts can show (WinAnsi): accents kept where Latin-1 has them, others replaced. */
const printable = (text: string): string =>
  Array.from(text.normalize("NFC"))
    .map((c) => {
      const code = c.codePointAt(0)!
      if ((code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff)) return c
      const stripped = c.normalize("NFD").replace(/[\u0300-\u036f]/g, "")
      return /^[\x20-\x7e]$/.test(stripped) ? stripped : "?"
    })
    .join("")

const percent = (p: number) => `${Number.isInteger(p) ? p : p.toFixed(2).replace(/0+$/, "")}%`

/** Render the invoice as PDF bytes. */
export const render = async (data: InvoiceData): Promise<Uint8Array> => {
  const pdf = await PDFDocument.create()
  pdf.setTitle(`Invoice ${data.number}`)
  pdf.setAuthor(printable(data.seller.name))
  pdf.setCreationDate(data.issuedAt)
  pdf.setModificationDate(data.issuedAt)
  pdf.setProducer("Troupe")
  const page = pdf.addPage([595.28, 841.89])
  const regular = await pdf.embedFont(StandardFonts.Helvetica)
  const bold = await pdf.embedFont(StandardFonts.HelveticaBold)
  const grey = rgb(0.35, 0.35, 0.35)
  const left = 56
  let y = 780
  const line = (text: string, options: { readonly x?: number; readonly size?: number; readonly bold?: boolean; readonly color?: ReturnType<typeof rgb> } = {}) => {
    page.drawText(printable(text), { x: options.x ?? left, y, size: options.size ?? 10, font: options.bold ? bold : regular, color: options.color ?? rgb(0, 0, 0) })
  }
  const right = (text: string, xRight: number, options: { readonly bold?: boolean } = {}) => {
    const t = printable(text)
    const font = options.bold ? bold : regular
    page.drawText(t, { x: xRight - font.widthOfTextAtSize(t, 10), y, size: 10, font })
  }

  line("INVOICE", { size: 22, bold: true })
  y -= 28
  line(`Invoice number: ${data.number}`, { bold: true })
  y -= 14
  line(`Date: ${data.issuedAt.toISOString().slice(0, 10)}`)
  y -= 14
  line(`Payment: ${data.paymentId}`)
  y -= 14
  line(`Paid via ${data.provider}${data.providerPaymentId ? ` (${data.providerPaymentId})` : ""}`, { color: grey })

  // seller (left) and buyer (right)
  y -= 36
  const top = y
  line("From", { bold: true })
  for (const text of [data.seller.name, ...data.seller.address, ...(data.seller.vatId ? [`VAT ID: ${data.seller.vatId}`] : []), ...(data.seller.email ? [data.seller.email] : [])]) {
    y -= 14
    line(text)
  }
  const sellerBottom = y
  y = top
  line("Bill to", { bold: true, x: 320 })
  for (const text of [data.buyer.name, data.buyer.email, `Account: ${data.buyer.userId}`]) {
    y -= 14
    line(text, { x: 320 })
  }
  y = Math.min(y, sellerBottom) - 40

  // the line item
  const cols = { qty: 330, net: 420, total: 539 }
  line("Description", { bold: true })
  right("Qty", cols.qty, { bold: true })
  right("Unit price (net)", cols.net, { bold: true })
  right("Amount (net)", cols.total, { bold: true })
  y -= 6
  page.drawLine({ start: { x: left, y }, end: { x: cols.total, y }, thickness: 0.7, color: grey })
  y -= 16
  line(`${data.packageName} - ${data.credits} credits`)
  right("1", cols.qty)
  right(money(data.netCents, data.currency), cols.net)
  right(money(data.netCents, data.currency), cols.total)
  y -= 10
  page.drawLine({ start: { x: left, y }, end: { x: cols.total, y }, thickness: 0.7, color: grey })

  // totals
  y -= 20
  line("Net", { x: 330 })
  right(money(data.netCents, data.currency), cols.total)
  y -= 16
  line(`VAT ${percent(data.vatPercent)}`, { x: 330 })
  right(money(data.vatCents, data.currency), cols.total)
  y -= 18
  line("Total (gross)", { x: 330, bold: true })
  right(money(data.grossCents, data.currency), cols.total, { bold: true })
  y -= 40
  line("Paid in full. Thank you!", { color: grey })

  return pdf.save({ useObjectStreams: false })
}
