import { describe, expect, it } from "vitest"
import { fitInto, jpegShrink } from "./VipsEngine.ts"

describe("vips engine sizing", () => {
  it("lets the JPEG decoder shrink as far as the result allows, whichever way the image is turned", () => {
    const box = { maxWidth: 800, maxHeight: 800 }
    expect(jpegShrink({ width: 4000, height: 3000 }, box)).toBe(4) // 5× down: decode at 1/4, resize the rest
    expect(jpegShrink({ width: 1600, height: 1200 }, box)).toBe(2)
    expect(jpegShrink({ width: 1000, height: 750 }, box)).toBe(1)
    expect(jpegShrink({ width: 12000, height: 9000 }, { maxWidth: 1000, maxHeight: 0 })).toBe(8)
    // stored wide, shown tall (EXIF turns it): it already fits a tall box and must not lose pixels
    expect(jpegShrink({ width: 4000, height: 1000 }, { maxWidth: 1000, maxHeight: 4000 })).toBe(1)
    expect(jpegShrink({ width: 4000, height: 3000 }, { maxWidth: 0, maxHeight: 0 })).toBe(1)
  })

  it("fits into the box with the limiting side exact and the aspect ratio kept, never upscaling", () => {
    expect(fitInto(4000, 3000, { maxWidth: 800, maxHeight: 800 })).toEqual([800, 600])
    expect(fitInto(1800, 1350, { maxWidth: 1000, maxHeight: 90 })).toEqual([120, 90])
    expect(fitInto(640, 427, { maxWidth: 64, maxHeight: 64 })).toEqual([64, 43])
    expect(fitInto(300, 200, { maxWidth: 800, maxHeight: 800 })).toEqual([300, 200])
    expect(fitInto(4000, 3000, { maxWidth: 200, maxHeight: 0 })).toEqual([200, 150])
  })
})
