/** The text of a PDF, extracted with Mozilla's PDF.js (for tests that check what a document says). */
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import { getDocument } from "pdfjs-dist/legacy/build/pdf.mjs"

const standardFontDataUrl = NodePath.join(NodePath.dirname(createRequire(import.meta.url).resolve("pdfjs-dist/package.json")), "standard_fonts") + NodePath.sep

/** Every page's text, pages separated by a blank line, items on a line joined by spaces. */
export const pdfText = async (bytes: Uint8Array): Promise<string> => {
  const doc = await getDocument({ data: new Uint8Array(bytes), useSystemFonts: false, isEvalSupported: false, standardFontDataUrl }).promise
  const pages: Array<string> = []
  for (let n = 1; n <= doc.numPages; n++) {
    const page = await doc.getPage(n)
    const content = await page.getTextContent()
    const lines = new Map<number, Array<{ x: number; text: string }>>()
    for (const item of content.items) {
      if (!("str" in item)) continue
      const y = Math.round(item.transform[5] as number)
      lines.set(y, [...(lines.get(y) ?? []), { x: item.transform[4] as number, text: item.str }])
    }
    pages.push([...lines.entries()].sort((a, b) => b[0] - a[0]).map(([, items]) => items.sort((a, b) => a.x - b.x).map((i) => i.text).join(" ")).join("\n"))
  }
  await doc.destroy()
  return pages.join("\n\n")
}
