import { describe, expect, it } from "vitest"
import * as Text from "./Text.ts"

const article = `The James Webb Space Telescope has captured new images of a distant galaxy cluster. Astronomers say the images reveal galaxies that formed shortly after the Big Bang. The telescope, launched in December 2021, observes the universe in infrared light. This allows it to see through clouds of dust that block visible light. Scientists hope the data will help explain how the first galaxies formed. The cluster, known as SMACS 0723, acts as a gravitational lens.

It bends and magnifies light from galaxies behind it. Some of that light left its source more than 13 billion years ago. The team plans to publish detailed findings later this year.`

describe("extractive text skills", () => {
  it("summarizes with the most representative sentences, in their original order", () => {
    const s = Text.extractiveSummary(article, 2)
    expect(s.total).toBe(9)
    expect(s.selected).toBe(2)
    expect(s.summary).toContain("The James Webb Space Telescope has captured new images of a distant galaxy cluster.")
    expect(s.summary.indexOf("James Webb")).toBe(4)
  })

  it("returns short texts whole", () => {
    expect(Text.extractiveSummary("One sentence. Two sentences.", 3).summary).toBe("One sentence. Two sentences.")
  })

  it("shortens to whole sentences within the limit, counting user-perceived characters", () => {
    const short = Text.extractiveShorten(article, 200)
    expect(Text.length(short)).toBeLessThanOrEqual(200)
    expect(short).toMatch(/\.$/)
    expect(Text.length("👩‍👩‍👧 café")).toBe(6)
  })

  it("cuts a single long sentence at a word boundary with an ellipsis", () => {
    const cut = Text.extractiveShorten("Supercalifragilistic words everywhere in this single sentence without any punctuation at all", 30)
    expect(cut).toBe("Supercalifragilistic words…")
    expect(Text.length(cut)).toBeLessThanOrEqual(30)
  })
})
